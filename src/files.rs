//! Writing files so that a reader, or a power cut, never sees half of one: write to a hidden
//! temporary name in the same folder, flush it to disk, rename it over the real name. Used by
//! the results log, the kept pictures and the PNG screen output.

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
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
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
}
