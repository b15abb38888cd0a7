//! Embeds the licensed sample films so the binary can demonstrate itself without any files.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("tests/fixtures/samples");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                // Synthetic parity fixtures (odd sizes, colour, 16-bit) are test data, not films.
                .filter(|n| !n.starts_with("synthetic-"))
                .filter(|n| {
                    let l = n.to_ascii_lowercase();
                    [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"]
                        .iter()
                        .any(|x| l.ends_with(x))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut src = String::from("static SAMPLES: &[Sample] = &[\n");
    for n in &names {
        let p = dir.join(n);
        println!("cargo:rerun-if-changed={}", p.display());
        src.push_str(&format!(
            "    Sample {{ name: {n:?}, bytes: include_bytes!({:?}) }},\n",
            p.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("samples.rs");
    fs::write(out, src).unwrap();
}
