//! Writing files so that a reader, or a power cut, never sees half of one: write to a hidden
//! temporary name in the same folder, flush it to disk, rename it over the real name, flush the
//! folder (the rename lives in the folder, not the file). Used by the results log, the kept
//! pictures, the watch folder's notes and the PNG screen output. A temporary left by a run that
//! died mid-write is removed by [`remove_stale_partials`] at the next start.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The temporary name beside `path`: `.<name>.partial`, hidden from watch folders and listings.
fn partial_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Write `bytes` to `path` atomically (temporary file, `fsync`, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_name(path);
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
            _ => sync_dir(Path::new(".")),
        }
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Make the names in `dir` durable: a rename or a new file is an entry in the folder, and
/// only an fsync of the folder makes it survive a power cut.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Remove the temporaries (`.<name>.partial`) that a run killed mid-write left in `dir`;
/// returns how many. Only plain files with that exact shape of name are touched.
pub fn remove_stale_partials(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file
            && name.starts_with('.')
            && name.ends_with(".partial")
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// Encode `img` as PNG and write it to `path` atomically.
pub fn write_png_atomically(img: &image::RgbImage, path: &Path) -> Result<()> {
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .context("cannot encode the picture as PNG")?;
    write_atomically(path, png.get_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_the_whole_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.png");
        write_png_atomically(&image::RgbImage::new(3, 2), &p).unwrap();
        write_png_atomically(&image::RgbImage::new(4, 2), &p).unwrap();
        assert_eq!(image::open(&p).unwrap().width(), 4);
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary files left behind");
        let e = write_atomically(&d.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(format!("{e:#}").contains("cannot write"), "{e:#}");
    }

    #[test]
    fn stale_partials_are_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        for name in [
            ".a.json.partial",
            ".b.png.partial",
            "c.json",
            ".hidden",
            "d.partial",
        ] {
            std::fs::write(d.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(d.path().join(".e.partial")).unwrap();
        assert_eq!(remove_stale_partials(d.path()), 2);
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".e.partial", ".hidden", "c.json", "d.partial"]);
        assert_eq!(remove_stale_partials(&d.path().join("missing")), 0);
    }
}
