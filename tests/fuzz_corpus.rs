//! The fuzzing corpus, kept running in CI on the stable toolchain: every input committed under
//! `fuzz/corpus/<target>/` (what `cargo fuzz` found, minimised) goes through the same target
//! bodies as the libFuzzer binaries (`tests/common/fuzz_targets.rs`), then a fixed-seed mutation
//! pass (bit flips, interesting values, inserts, deletions, truncations, splices) runs a bounded
//! number of variants of them. Deterministic: same inputs, same order, every run; no clock.
//!
//! A failure names the target and writes the input that failed next to the test binary's
//! temporary directory, ready for `cargo +nightly fuzz run <target> <file>`.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seed_inputs` writes the hand-made seed
//! inputs (small images of every layout, DICOM files of every transfer syntax, upload bodies) to
//! `fuzz/seeds/<target>/`, where fuzzing started from.
#![cfg(all(feature = "dicom", feature = "serve"))]

#[path = "common/dicom.rs"]
mod dicom_files;
#[path = "common/fuzz_targets.rs"]
mod fuzz_targets;

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fuzz_targets::{Target, TARGETS};

/// Named inputs: (file name, bytes).
type Files = Vec<(String, Vec<u8>)>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed corpus of one target, in name order.
fn corpus(target: &str) -> Files {
    let dir = root().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// Run one input; on a panic, keep the input and fail with where it is.
fn run(target: &str, f: Target, what: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz_corpus");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{target}-{what}"));
        std::fs::write(&file, input).unwrap();
        panic!(
            "fuzz target {target} failed on {what}; the input is {}",
            file.display()
        );
    }
}

/// xorshift64: a fixed, dependency-free stream of pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: [u32; 10] = [
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x8000_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];

/// One to four mutations of `base`; `other` is the second input of a splice.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => v[at] = INTERESTING[rng.below(5)] as u8,
            2 => {
                let bytes = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = if rng.below(2) == 0 { 2 } else { 4 };
                for (i, b) in bytes[..n].iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, fill);
            }
            4 => {
                let end = (at + 1 + rng.below(32)).min(v.len());
                v.drain(at.min(end)..end);
            }
            5 => v.truncate(at),
            6 => {
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                // Repeat a stretch of the input where it is (a length field that now lies).
                let end = (at + 1 + rng.below(64)).min(v.len());
                let copy = v[at.min(end)..end].to_vec();
                v.splice(at..at, copy);
            }
        }
    }
    v
}

/// Variants per target in the mutation pass; the whole test takes about 10 s in the debug test
/// profile on a loaded 2-core machine.
/// Under qemu (scripts/test-arm) a tenth of them: emulation is ~10 times slower and the
/// corpus itself is replayed in full there too.
fn mutations(target: &str) -> usize {
    let n = match target {
        "decode_image" | "decode_dicom" => 20_000,
        _ => 30_000,
    };
    if std::env::var_os("CXR_EDGE_TEST_RUNNER").is_some() {
        n / 10
    } else {
        n
    }
}

#[test]
fn the_committed_corpus_and_its_mutations_pass_every_target() {
    for &(target, f) in TARGETS {
        let inputs = corpus(target);
        assert!(!inputs.is_empty(), "fuzz/corpus/{target} is empty");
        for (name, bytes) in &inputs {
            run(target, f, name, bytes);
        }
        // Seeded by the target's name, so adding a target leaves the others' variants as they are.
        let seed = target.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        });
        let mut rng = Rng(seed | 1);
        for i in 0..mutations(target) {
            let base = &inputs[rng.below(inputs.len())].1;
            let other = &inputs[rng.below(inputs.len())].1;
            let input = mutate(&mut rng, base, other);
            run(target, f, &format!("mutation-{i}"), &input);
        }
        eprintln!(
            "{target}: {} corpus inputs and {} mutations passed",
            inputs.len(),
            mutations(target)
        );
    }
}

/// Every target's directory exists and the names agree with the fuzz crate's binaries.
#[test]
fn every_target_has_a_corpus_and_a_fuzz_binary() {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    for &(target, _) in TARGETS {
        assert!(
            root().join("fuzz/corpus").join(target).is_dir(),
            "no fuzz/corpus/{target}"
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no binary {target}"
        );
        let body = std::fs::read_to_string(
            root()
                .join("fuzz/fuzz_targets")
                .join(format!("{target}.rs")),
        )
        .unwrap();
        assert!(body.contains(&format!("fuzz_targets::{target}_target")));
    }
}

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// Small images of every layout the decoder converts, in every format it reads.
fn image_seeds() -> Files {
    use image::{DynamicImage as D, ImageFormat as F};
    let g = image::GrayImage::from_fn(40, 36, |x, y| image::Luma([(x * 6 + y) as u8]));
    let layouts = [
        ("l8", D::ImageLuma8(g.clone())),
        (
            "la8",
            D::ImageLumaA8(D::ImageLuma8(g.clone()).to_luma_alpha8()),
        ),
        ("l16", D::ImageLuma16(D::ImageLuma8(g.clone()).to_luma16())),
        ("rgb8", D::ImageRgb8(D::ImageLuma8(g.clone()).to_rgb8())),
        ("rgba8", D::ImageRgba8(D::ImageLuma8(g.clone()).to_rgba8())),
        ("rgb16", D::ImageRgb16(D::ImageLuma8(g.clone()).to_rgb16())),
        (
            "rgb32f",
            D::ImageRgb32F(D::ImageLuma8(g.clone()).to_rgb32f()),
        ),
        ("rgba32f", D::ImageRgba32F(D::ImageLuma8(g).to_rgba32f())),
    ];
    let mut out = Vec::new();
    for (name, img) in layouts {
        for (ext, format) in [
            ("png", F::Png),
            ("jpg", F::Jpeg),
            ("bmp", F::Bmp),
            ("tif", F::Tiff),
        ] {
            let mut out_bytes = Vec::new();
            if img
                .write_to(&mut Cursor::new(&mut out_bytes), format)
                .is_ok()
            {
                out.push((format!("{name}.{ext}"), out_bytes));
            }
        }
    }
    let samples = root().join("tests/fixtures/samples");
    for e in std::fs::read_dir(&samples).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "png" || x == "jpg") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Small DICOM files: each transfer syntax the reader claims, both photometric
/// interpretations, rescale and window, and a header it refuses.
fn dicom_seeds() -> Files {
    use dicom_dictionary_std::uids;
    use dicom_files::{rle_frame, write, Pixels, Spec};
    let (w, h) = (40u32, 36u32);
    let grey: Vec<u8> = (0..w * h).map(|i| (i * 7 % 251) as u8).collect();
    let mut out = Vec::new();
    let plain = Spec::film(w, h, grey.clone());
    out.push(("explicit-8bit.dcm".to_string(), write(&plain)));
    let mut s = Spec::film(w, h, grey.clone());
    s.transfer_syntax = uids::IMPLICIT_VR_LITTLE_ENDIAN;
    s.photometric = "MONOCHROME1";
    s.window = None;
    out.push(("implicit-mono1.dcm".into(), write(&s)));
    let mut s = Spec::film(w, h, vec![]);
    s.pixels = Pixels::U16(grey.iter().map(|&v| (v as u16) << 4).collect(), 12);
    s.rescale = Some((0.5, -100.0));
    s.window = Some((900.0, 1400.0));
    s.modality = Some("CR");
    out.push(("explicit-12bit-rescale.dcm".into(), write(&s)));
    let mut s = Spec::film(w, h, vec![]);
    s.pixels = Pixels::Encapsulated(rle_frame(&grey, w as usize));
    s.transfer_syntax = uids::RLE_LOSSLESS;
    out.push(("rle.dcm".into(), write(&s)));
    let jpg = encoded(
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, grey.clone()).unwrap()),
        image::ImageFormat::Jpeg,
    );
    let mut s = Spec::film(w, h, vec![]);
    s.pixels = Pixels::Encapsulated(jpg);
    s.transfer_syntax = uids::JPEG_BASELINE8_BIT;
    out.push(("jpeg-baseline.dcm".into(), write(&s)));
    let j2k = std::fs::read(root().join("tests/fixtures/dicom/nih-normal-1.j2k")).unwrap();
    let mut s = Spec::film(320, 320, vec![]);
    s.pixels = Pixels::Encapsulated(j2k);
    s.transfer_syntax = uids::JPEG2000_LOSSLESS;
    out.push(("j2k-lossless.dcm".into(), write(&s)));
    let mut s = Spec::film(w, h, grey);
    s.view = Some("LL");
    s.modality = Some("CT");
    out.push(("refused-ct.dcm".into(), write(&s)));
    out
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = format!("multipart/form-data; boundary={boundary}\n").into_bytes();
    for (name, filename, value) in parts {
        b.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if let Some(f) = filename {
            b.extend(
                format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").bytes(),
            );
        }
        b.extend(b"\r\n\r\n");
        b.extend_from_slice(value);
        b.extend(b"\r\n");
    }
    b.extend(format!("--{boundary}--\r\n").bytes());
    b
}

fn upload_seeds() -> Files {
    let png = encoded(
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(32, 32, image::Luma([9]))),
        image::ImageFormat::Png,
    );
    let x = "----cxrBoundary7MA4YWxk";
    vec![
        (
            "file.txt".into(),
            multipart(x, &[("file", Some("a.png"), &png)]),
        ),
        (
            "file-and-input.txt".into(),
            multipart(
                x,
                &[
                    ("input", None, b"film-photo"),
                    ("file", Some("f.dcm"), b"DICM..."),
                ],
            ),
        ),
        (
            "extra-fields.txt".into(),
            multipart(
                "b",
                &[
                    ("note", None, b"x"),
                    ("file", Some("x"), b"abc"),
                    ("input", None, b"digital"),
                ],
            ),
        ),
        (
            "bad-input.txt".into(),
            multipart(x, &[("input", None, b"xray"), ("file", None, b"z")]),
        ),
        (
            "empty-file.txt".into(),
            multipart(x, &[("file", Some("e"), b"")]),
        ),
        (
            "no-file.txt".into(),
            multipart(x, &[("input", None, b"auto")]),
        ),
        (
            "not-multipart.txt".into(),
            b"application/json\n{\"file\":1}".to_vec(),
        ),
    ]
}

/// Writes the seeds fuzzing started from to `fuzz/seeds/<target>/` (not committed).
#[test]
#[ignore]
fn write_seed_inputs() {
    let configs = ["generic", "rpi4", "rpi5", "jetson-orin-nano"].map(|b| {
        let p = root().join("board").join(b).join("config.toml");
        (format!("{b}.toml"), std::fs::read(p).unwrap())
    });
    let manifest = std::fs::read(root().join("models/cxr-net.toml")).unwrap();
    let mut images = image_seeds();
    images.extend(dicom_seeds());
    let sets: Vec<(&str, Files)> = vec![
        ("decode_image", images),
        ("decode_dicom", dicom_seeds()),
        ("upload", upload_seeds()),
        ("config", configs.to_vec()),
        ("manifest", vec![("cxr-net.toml".into(), manifest)]),
    ];
    for (target, files) in sets {
        let dir = root().join("fuzz/seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
