//! The fuzz targets' bodies, shared by the libFuzzer binaries (`fuzz/fuzz_targets/*.rs`, nightly)
//! and the corpus replay in `tests/fuzz_corpus.rs` (stable, CI), so the two cannot drift. Each
//! takes the raw input, drives one entry point that reads bytes from outside, and panics when an
//! invariant does not hold; a panic in the code under test is a finding too.
//!
//! Include with `#[path = "common/fuzz_targets.rs"] mod fuzz_targets;`.
#![allow(dead_code)]

use std::path::Path;

use cxr_edge::capture::{decode_image, DecodeError, Limits};
use cxr_edge::config::Config;
use cxr_edge::model::manifest::Manifest;
use cxr_edge::serve::upload::parse_upload;

/// A target's body: one input in, a panic when an invariant does not hold.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo fuzz run <name>` and `fuzz/corpus/<name>/` know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_image", decode_image_target),
    ("decode_dicom", decode_dicom_target),
    ("upload", upload_target),
    ("config", config_target),
    ("manifest", manifest_target),
];

static SKIP_JPEG2000: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Init of the libFuzzer binaries of the decoder targets.
///
/// A panic that the code under test catches itself (the DICOM decoder runs the parser under
/// `catch_unwind` by design) is not a crash; one that escapes still is (libFuzzer's wrapper
/// aborts on it). The first few are written to stderr, to be looked at.
///
/// DICOM files in JPEG 2000 are not decoded there: openjp2 0.6.1 (the newest) calls `dealloc`
/// on the null `decoded_data` of every code block it never decoded
/// (`opj_tcd_code_block_dec_deallocate`), which the nightly standard library's precondition
/// checks (on in fuzz builds) abort on, for every JPEG 2000 file, valid ones included. Stable
/// release builds do not check it (the allocator's free of null is a no-op), and the stable
/// replay in `tests/fuzz_corpus.rs` still decodes those files.
pub fn fuzzing_init() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    SKIP_JPEG2000.store(true, Ordering::Relaxed);
    std::panic::set_hook(Box::new(|info| {
        if SHOWN.fetch_add(1, Ordering::Relaxed) < 20 {
            eprintln!("panic (caught unless the run stops here): {info}");
        }
    }));
}

/// Whether the input names a JPEG 2000 transfer syntax (1.2.840.10008.1.2.4.9x, .4.20x).
fn names_jpeg2000(data: &[u8]) -> bool {
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    has(b"1.2.840.10008.1.2.4.9") || has(b"1.2.840.10008.1.2.4.20")
}

fn skipped(data: &[u8]) -> bool {
    SKIP_JPEG2000.load(std::sync::atomic::Ordering::Relaxed) && names_jpeg2000(data)
}

/// The caps the decoders are fuzzed under: the defaults with at most 4 megapixels, 4096 pixels
/// a side and 64 MB a decoder allocation, so that no valid input can need more than the fuzzer's
/// 512 MB RSS limit (with the default 64 megapixels, a 62 KB PNG of 8000x8000 grey decoded to a
/// 313 MB peak before the memory budget existed). An out-of-memory finding under these caps is a
/// cap that is not applied, not a big picture.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_side: 4096,
        max_pixels: 4_000_000,
        max_alloc: 64 << 20,
        ..Limits::default()
    }
}

/// A decoder error must be something to show a person: one line, printable, bounded.
fn check_message(what: &str, message: &str) {
    assert!(!message.is_empty(), "{what}: empty error message");
    assert!(
        message.len() <= 2000,
        "{what}: error message of {} bytes",
        message.len()
    );
    assert!(
        !message.chars().any(|c| c.is_control()),
        "{what}: control characters in the error message {message:?}"
    );
}

fn check_decoded(what: &str, result: Result<cxr_edge::pixels::Frame, DecodeError>, l: &Limits) {
    match result {
        Ok(f) => {
            assert!(
                f.width >= l.min_side as usize && f.height >= l.min_side as usize,
                "{what}: a {}x{} frame passed min_side",
                f.width,
                f.height
            );
            assert!(
                f.width <= l.max_side as usize && f.height <= l.max_side as usize,
                "{what}: a {}x{} frame passed max_side",
                f.width,
                f.height
            );
            assert!((f.width * f.height) as u64 <= l.max_pixels);
            assert_eq!(f.data.len(), f.width * f.height);
            assert!(
                f.data
                    .iter()
                    .all(|v| v.is_finite() && (0.0..=255.0).contains(v)),
                "{what}: grey levels outside 0..=255"
            );
        }
        Err(e) => check_message(what, &e.to_string()),
    }
}

/// `decode_image`: what every file, upload and watched-folder film goes through.
pub fn decode_image_target(data: &[u8]) {
    if skipped(data) {
        return;
    }
    let l = fuzz_limits();
    check_decoded("decode_image", decode_image(data, &l), &l);
    // The header peek `--input auto` uses on the same bytes.
    let _ = cxr_edge::capture::is_grey_file(data);
}

/// The DICOM reader behind `decode_image`. Inputs without the `DICM` marker get one (and the
/// 128-byte preamble) put in front, so the fuzzer spends its time inside the data set.
pub fn decode_dicom_target(data: &[u8]) {
    if skipped(data) {
        return;
    }
    let l = fuzz_limits();
    let mut file;
    let bytes = if cxr_edge::capture::dicom_magic(data) {
        data
    } else {
        file = vec![0u8; 128];
        file.extend_from_slice(b"DICM");
        file.extend_from_slice(data);
        &file
    };
    check_decoded(
        "decode_dicom",
        cxr_edge::capture::dicom::decode_dicom(bytes, &l),
        &l,
    );
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// The upload form of `POST /api/classify`: the first line of the input is the request's
/// Content-Type, the rest its body.
pub fn upload_target(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(head);
    let result = RUNTIME.with(|rt| rt.block_on(parse_upload(&content_type, body.to_vec())));
    match result {
        Ok(u) => {
            assert!(!u.bytes.is_empty(), "upload: an empty file was accepted");
            assert!(u.bytes.len() <= body.len());
        }
        Err(r) => {
            assert!(
                r.status.is_client_error(),
                "upload: refused with {} ({})",
                r.status,
                r.message
            );
            assert!(!r.message.is_empty());
        }
    }
}

/// `Config::parse`: the config file of `run` and `serve`.
pub fn config_target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse(text) {
            // What `serve` does next with the [serve] table (the listen address, the token).
            Ok(c) => {
                let _ = cxr_edge::serve::ServeOptions::from_config(&c.serve, None, false);
            }
            Err(e) => assert!(!format!("{e:#}").is_empty()),
        }
    }
}

/// `Manifest::parse`: the model manifest a model directory brings.
pub fn manifest_target(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match Manifest::parse(text, Path::new("/nonexistent")) {
            Ok(m) => {
                assert!(!m.labels.is_empty());
                assert!(m.variants.contains_key(&m.default_variant));
                assert!(m.calibration.temperature > 0.0);
            }
            Err(e) => assert!(!format!("{e:#}").is_empty()),
        }
    }
}
