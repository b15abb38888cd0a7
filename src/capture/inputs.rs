//! Turning command-line arguments (files, directories, globs) into a list of inputs.
//!
//! Problems found while expanding (a missing path, a directory with no images, a glob that
//! matches nothing) become inputs of their own that carry the error, so they are reported in
//! order with the rest of the batch instead of aborting it.

use std::path::{Path, PathBuf};

use super::samples::Sample;

/// Extensions looked for when walking a directory. Files named explicitly are always tried:
/// the content decides the format, never the name.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff", "dcm", "dicom"];

/// Where one input's image comes from.
#[derive(Clone, Debug)]
pub enum InputSource {
    /// An image file.
    File(PathBuf),
    /// One of the bundled sample films.
    Sample(Sample),
    /// Something named on the command line that yields no image.
    Problem(String),
}

/// One item of a batch, in the order it will be reported.
#[derive(Clone, Debug)]
pub struct Input {
    /// What the user sees in the output: the path as given (or as found in a directory).
    pub display: String,
    /// Where its image comes from.
    pub source: InputSource,
}

impl Input {
    fn file(path: PathBuf) -> Self {
        Input {
            display: path.display().to_string(),
            source: InputSource::File(path),
        }
    }
    fn problem(display: impl Into<String>, why: impl Into<String>) -> Self {
        Input {
            display: display.into(),
            source: InputSource::Problem(why.into()),
        }
    }
}

/// Named like an image file cxr-edge reads (PNG, JPEG, BMP, TIFF, DICOM), case-insensitively.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

fn is_hidden(entry: &walkdir::DirEntry) -> bool {
    entry.depth() > 0
        && entry
            .file_name()
            .to_str()
            .map(|s| s.starts_with('.'))
            .unwrap_or(false)
}

fn walk_dir(dir: &Path, out: &mut Vec<Input>) {
    let before = out.len();
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker.into_iter().filter_entry(|e| !is_hidden(e)) {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                files.push(e.into_path())
            }
            Ok(_) => {}
            Err(err) => {
                let shown = err.path().unwrap_or(dir).display().to_string();
                let why = match err.io_error() {
                    Some(io) => format!("cannot read directory: {io}"),
                    None => format!("cannot walk directory: {err}"),
                };
                out.push(Input::problem(shown, why));
            }
        }
    }
    out.extend(files.into_iter().map(Input::file));
    if out.len() == before {
        out.push(Input::problem(
            dir.display().to_string(),
            format!(
                "no images found in this directory (looked for {})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
}

fn looks_like_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand paths, directories (recursively, sorted, hidden entries skipped) and glob patterns.
pub fn expand_inputs(args: &[String]) -> Vec<Input> {
    let mut out = Vec::new();
    for arg in args {
        let path = Path::new(arg);
        // A path that exists wins over glob interpretation: file names may contain '['.
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => walk_dir(path, &mut out),
            Ok(_) => out.push(Input::file(path.to_path_buf())),
            Err(_) if looks_like_glob(arg) => match glob::glob(arg) {
                Ok(paths) => {
                    let before = out.len();
                    for p in paths {
                        match p {
                            Ok(p) if p.is_dir() => walk_dir(&p, &mut out),
                            Ok(p) => out.push(Input::file(p)),
                            Err(e) => out.push(Input::problem(
                                e.path().display().to_string(),
                                format!("cannot read: {}", e.error()),
                            )),
                        }
                    }
                    if out.len() == before {
                        out.push(Input::problem(arg.clone(), "pattern matches no file"));
                    }
                }
                Err(e) => out.push(Input::problem(arg.clone(), format!("invalid pattern: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Input::problem(arg.clone(), "no such file or directory"))
            }
            Err(e) => out.push(Input::problem(arg.clone(), format!("cannot access: {e}"))),
        }
    }
    out
}

/// The bundled sample films, as inputs.
pub fn sample_inputs() -> Vec<Input> {
    super::samples::all()
        .iter()
        .map(|s| Input {
            display: format!("sample:{}", s.name),
            source: InputSource::Sample(*s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_globs_and_problems() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::write(d.join("a/one.PNG"), b"x").unwrap();
        std::fs::write(d.join("a/b/two.jpg"), b"x").unwrap();
        std::fs::write(d.join("a/notes.txt"), b"x").unwrap();
        std::fs::write(d.join("a/.hidden.png"), b"x").unwrap();
        let s = |p: &Path| p.display().to_string();
        let got = expand_inputs(&[
            s(&d.join("a")),
            s(&d.join("empty")),
            s(&d.join("missing.png")),
            format!("{}/a/*.PNG", s(d)),
            format!("{}/nothing/*.png", s(d)),
        ]);
        let kinds: Vec<_> = got
            .iter()
            .map(|i| match &i.source {
                InputSource::File(p) => {
                    format!("file:{}", p.file_name().unwrap().to_str().unwrap())
                }
                InputSource::Problem(w) => format!("problem:{w}"),
                InputSource::Sample(_) => "sample".into(),
            })
            .collect();
        assert_eq!(kinds[0], "file:two.jpg");
        assert_eq!(kinds[1], "file:one.PNG");
        assert!(kinds[2].starts_with("problem:no images found"), "{kinds:?}");
        assert_eq!(kinds[3], "problem:no such file or directory");
        assert_eq!(kinds[4], "file:one.PNG");
        assert_eq!(kinds[5], "problem:pattern matches no file");
        assert_eq!(kinds.len(), 6);
    }
}
