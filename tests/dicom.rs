//! DICOM input: every transfer syntax we claim decodes to the film's pixels, the header's
//! refusals come with their reason, broken files are errors (never panics), and patient
//! attributes never reach the output.
#![cfg(feature = "dicom")]

mod common;
#[path = "common/dicom.rs"]
mod dicom_files;

use std::path::PathBuf;

use cxr_edge::capture::{decode_image, DecodeError, Limits};
use cxr_edge::pixels::Frame;
use dicom_dictionary_std::uids;
use dicom_files::{rle_frame, sample_grey, write, Pixels, Spec, PATIENT_ID, PATIENT_NAME};

const FILM: &str = "nih-normal-1.png";

fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    decode_image(bytes, &Limits::default())
}

fn png_frame() -> Frame {
    let bytes = std::fs::read(common::root().join("tests/fixtures/samples").join(FILM)).unwrap();
    decode(&bytes).unwrap()
}

fn max_diff(a: &Frame, b: &Frame) -> f32 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn uncompressed_8_bit_is_the_png() {
    let (w, h, g) = sample_grey(FILM);
    let f = decode(&write(&Spec::film(w, h, g))).unwrap();
    assert_eq!(max_diff(&f, &png_frame()), 0.0);
}

/// The film as a 13-bit reader would store it: 16 x + 1000, which a rescale of slope 1/16 and
/// intercept -62.5 turns back into x exactly. No rescale set here.
fn film_13_bit() -> Spec {
    let (w, h, g) = sample_grey(FILM);
    let mut spec = Spec::film(w, h, vec![]);
    spec.pixels = Pixels::U16(g.iter().map(|&v| v as u16 * 16 + 1000).collect(), 13);
    spec
}

#[test]
fn rescale_and_window_of_a_12_bit_file_are_applied() {
    let mut spec = film_13_bit();
    spec.rescale = Some((0.0625, -62.5));
    let f = decode(&write(&spec)).unwrap();
    assert_eq!(max_diff(&f, &png_frame()), 0.0);

    // Without the rescale the same window would show a white page: the rescale matters.
    spec.rescale = None;
    let f = decode(&write(&spec)).unwrap();
    assert!(f.mean() > 250.0, "mean {}", f.mean());
}

#[test]
fn monochrome1_is_inverted() {
    let (w, h, g) = sample_grey(FILM);
    let mut spec = Spec::film(w, h, g.iter().map(|v| 255 - v).collect());
    spec.photometric = "MONOCHROME1";
    let f = decode(&write(&spec)).unwrap();
    assert_eq!(max_diff(&f, &png_frame()), 0.0);
}

#[test]
fn without_a_window_the_full_range_is_used() {
    let mut spec = film_13_bit();
    spec.window = None;
    let f = decode(&write(&spec)).unwrap();
    let lo = f.data.iter().cloned().fold(f32::MAX, f32::min);
    let hi = f.data.iter().cloned().fold(f32::MIN, f32::max);
    assert!(lo <= 1.0 && hi >= 254.0, "range {lo}..{hi}");
}

/// Found by fuzzing (a contained panic in the RLE decoder): the decoder allocates a table of
/// as many entries as the header's segment count before checking it; 0xFFFFFFFF asks for 16 GB,
/// and a failed allocation aborts the process. Refused before decoding, like a short fragment.
#[test]
fn an_rle_header_with_an_impossible_segment_count_is_refused_before_decoding() {
    let (w, h) = (40u32, 36u32);
    let grey = vec![100u8; (w * h) as usize];
    for (count, len, word) in [
        (u32::MAX, None, "claims 4294967295 segments"),
        (16, None, "claims 16 segments"),
        (1, Some(2), "shorter than its 64-byte header"),
    ] {
        let mut frame = rle_frame(&grey, w as usize);
        frame[0..4].copy_from_slice(&count.to_le_bytes());
        if let Some(n) = len {
            frame.truncate(n);
        }
        let mut spec = Spec::film(w, h, vec![]);
        spec.pixels = Pixels::Encapsulated(frame);
        spec.transfer_syntax = uids::RLE_LOSSLESS;
        let e = decode(&write(&spec)).unwrap_err();
        assert!(matches!(e, DecodeError::DicomCorrupt(_)), "{e}");
        assert!(e.to_string().contains(word), "{e}");
    }
}

/// Found by fuzzing (decode_image, 548 MB RSS from 1.7 KB): the JPEG stream's own frame header
/// sets what the decoder allocates; one larger than Rows x Columns is refused before decoding.
#[test]
fn a_jpeg_stream_larger_than_the_header_is_refused_before_decoding() {
    let jpg =
        std::fs::read(common::root().join("tests/fixtures/samples/nih-normal-1.jpg")).unwrap();
    let direct = decode(&jpg).unwrap();
    let mut spec = Spec::film(direct.width as u32 / 2, direct.height as u32, vec![]);
    spec.pixels = Pixels::Encapsulated(jpg);
    spec.transfer_syntax = uids::JPEG_BASELINE8_BIT;
    let e = decode(&write(&spec)).unwrap_err();
    assert!(matches!(e, DecodeError::DicomCorrupt(_)), "{e}");
    assert!(
        e.to_string()
            .contains("larger than the 160x320 of the header"),
        "{e}"
    );
}

#[test]
fn rle_lossless_is_the_png() {
    let (w, h, g) = sample_grey(FILM);
    let mut spec = Spec::film(w, h, vec![]);
    spec.pixels = Pixels::Encapsulated(rle_frame(&g, w as usize));
    spec.transfer_syntax = uids::RLE_LOSSLESS;
    let f = decode(&write(&spec)).unwrap();
    assert_eq!(max_diff(&f, &png_frame()), 0.0);
}

#[test]
fn jpeg_2000_lossless_is_the_png() {
    let (w, h, _) = sample_grey(FILM);
    let j2k = std::fs::read(common::root().join("tests/fixtures/dicom/nih-normal-1.j2k")).unwrap();
    let mut spec = Spec::film(w, h, vec![]);
    spec.pixels = Pixels::Encapsulated(j2k);
    spec.transfer_syntax = uids::JPEG2000_LOSSLESS;
    let f = decode(&write(&spec)).unwrap();
    assert_eq!(max_diff(&f, &png_frame()), 0.0);
}

#[test]
fn jpeg_baseline_matches_the_same_jpeg_file() {
    let jpg =
        std::fs::read(common::root().join("tests/fixtures/samples/nih-normal-1.jpg")).unwrap();
    let direct = decode(&jpg).unwrap();
    let mut spec = Spec::film(direct.width as u32, direct.height as u32, vec![]);
    spec.pixels = Pixels::Encapsulated(jpg);
    spec.transfer_syntax = uids::JPEG_BASELINE8_BIT;
    let f = decode(&write(&spec)).unwrap();
    // Two JPEG decoders may round the inverse DCT differently by a level or two.
    assert!(
        max_diff(&f, &direct) <= 3.0,
        "max diff {}",
        max_diff(&f, &direct)
    );
}

fn refused(spec: &Spec) -> String {
    match decode(&write(spec)) {
        Err(e @ DecodeError::DicomRefused(_)) => e.to_string(),
        other => panic!(
            "expected a refusal, got {:?}",
            other.map(|f| (f.width, f.height))
        ),
    }
}

#[test]
fn header_refusals_say_why() {
    let (w, h, g) = sample_grey(FILM);
    let base = || Spec::film(w, h, g.clone());

    let mut ct = base();
    ct.modality = Some("CT");
    assert!(
        refused(&ct).contains("CT image, not a radiograph"),
        "{}",
        refused(&ct)
    );

    let mut none = base();
    none.modality = None;
    assert!(refused(&none).contains("no Modality"));

    let mut lateral = base();
    lateral.view = Some("LL");
    assert!(refused(&lateral).contains("LL (lateral or oblique) view"));

    let mut knee = base();
    knee.body_part = Some("KNEE");
    assert!(refused(&knee).contains("of the KNEE, not the chest"));

    let mut colour = base();
    colour.samples_per_pixel = 3;
    colour.photometric = "RGB";
    colour.pixels = Pixels::U8(g.iter().flat_map(|&v| [v, v, v]).collect());
    assert!(refused(&colour).contains("RGB"));

    // CR and an AP view with no body part are fine.
    let mut cr = base();
    cr.modality = Some("CR");
    cr.view = Some("AP");
    cr.body_part = None;
    assert!(decode(&write(&cr)).is_ok());
}

#[test]
fn a_header_that_claims_a_huge_image_is_refused_before_decoding() {
    let mut spec = Spec::film(16, 16, vec![0; 256]);
    spec.width = 60_000;
    spec.height = 60_000;
    let e = decode(&write(&spec)).unwrap_err();
    assert!(matches!(e, DecodeError::DicomRefused(_)), "{e}");
    assert!(e.to_string().contains("60000x60000"), "{e}");
}

#[test]
fn truncated_and_damaged_files_are_errors_not_panics() {
    let (w, h, g) = sample_grey(FILM);
    let whole = write(&Spec::film(w, h, g.clone()));
    for cut in [140, 300, whole.len() / 2, whole.len() - 1] {
        let e = decode(&whole[..cut]).expect_err("a cut file must not decode");
        assert!(
            matches!(e, DecodeError::DicomCorrupt(_)),
            "cut at {cut}: {e}"
        );
    }
    let mut spec = Spec::film(w, h, vec![]);
    spec.pixels = Pixels::Encapsulated(b"\xff\xd8\xff\xe0 not really a JPEG".to_vec());
    spec.transfer_syntax = uids::JPEG_BASELINE8_BIT;
    let e = decode(&write(&spec)).unwrap_err();
    assert!(matches!(e, DecodeError::DicomCorrupt(_)), "{e}");
    // Every 7th byte flipped through the header: errors or films, never a panic. (Before the
    // length pre-scan, three of these took 3-30 s each in the parser.)
    for i in (132..600).step_by(7) {
        let mut b = whole.clone();
        b[i] ^= 0xA5;
        let _ = decode(&b);
    }
}

/// Header text is the file's: control characters and over-long values are escaped and cut, so a
/// Modality of `CT\nWATCHDOG_USEC=1` cannot put a line of its own into a log, a record, a screen
/// or systemd's STATUS= datagram.
#[test]
fn header_text_never_comes_out_verbatim() {
    let (w, h, g) = sample_grey(FILM);
    let mut evil = Spec::film(w, h, g.clone());
    evil.modality = Some("CT\nWATCHDOG_USEC=1\nX");
    let m = refused(&evil);
    assert!(!m.contains('\n'), "{m:?}");
    assert!(m.contains("not a valid code"), "{m}");
    assert!(m.contains("\\n"), "shown escaped: {m}");
    let mut long = Spec::film(w, h, g.clone());
    long.body_part = Some("CHEST_AND_A_VERY_LONG_INVENTED_BODY_PART_NAME_THAT_GOES_ON");
    let m = refused(&long);
    assert!(m.len() < 200 && m.contains("..."), "{m}");
    let mut view = Spec::film(w, h, g);
    view.view = Some("PA\u{1b}[2J");
    let m = refused(&view);
    assert!(!m.contains('\u{1b}'), "{m:?}");
}

/// A rescale or window of NaN gives an error, never a flagged finding.
#[test]
fn nan_rescale_or_window_is_an_error() {
    let (w, h, g) = sample_grey(FILM);
    for (rescale, window) in [
        (Some((f64::NAN, 0.0)), Some((128.0, 256.0))),
        (Some((1.0, f64::NAN)), None),
        (None, Some((f64::NAN, f64::NAN))),
        (Some((f64::INFINITY, 0.0)), None),
    ] {
        let mut spec = Spec::film(w, h, g.clone());
        spec.rescale = rescale;
        spec.window = window;
        match decode(&write(&spec)) {
            Err(e) => assert!(
                matches!(
                    e,
                    DecodeError::NotFinite { .. } | DecodeError::DicomCorrupt(_)
                ),
                "{rescale:?} {window:?}: {e}"
            ),
            // A window of NaN may be read as no window (min-max over the image): then every
            // pixel must be a number.
            Ok(f) => assert!(
                f.data.iter().all(|v| v.is_finite()),
                "{rescale:?} {window:?}"
            ),
        }
    }
}

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge"))
}

#[test]
fn classify_gives_a_dicom_the_result_of_its_png_and_no_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h, g) = sample_grey(FILM);
    let dcm = dir.path().join("film.dcm");
    std::fs::write(&dcm, write(&Spec::film(w, h, g))).unwrap();
    let png = common::root().join("tests/fixtures/samples").join(FILM);
    let out = common::command(&exe())
        .args(["classify", "--json", "--variant", "f32"])
        .arg(&dcm)
        .arg(&png)
        .arg("--heatmap")
        .arg(dir.path().join("maps"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["input"], "digital");
    assert_eq!(recs[0]["label"], recs[1]["label"]);
    assert_eq!(recs[0]["probs"], recs[1]["probs"]);
    for text in [&stdout, &String::from_utf8_lossy(&out.stderr).into_owned()] {
        assert!(!text.contains("SECRET"), "patient data leaked: {text}");
        assert!(!text.contains(PATIENT_NAME) && !text.contains(PATIENT_ID));
    }
    for entry in std::fs::read_dir(dir.path().join("maps")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
    }
}

#[test]
fn classify_reports_a_refused_dicom_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h, g) = sample_grey(FILM);
    let mut spec = Spec::film(w, h, g);
    spec.modality = Some("MR");
    let mr = dir.path().join("head.dcm");
    std::fs::write(&mr, write(&spec)).unwrap();
    let png = common::root().join("tests/fixtures/samples").join(FILM);
    let out = common::command(&exe())
        .args(["classify", "--json"])
        .arg(&mr)
        .arg(&png)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let err = first["error"].as_str().unwrap();
    assert!(err.contains("MR image, not a radiograph"), "{err}");
    assert!(stdout.lines().nth(1).unwrap().contains("\"label\":\""));
}

/// Raw DICOM bytes for hostile cases: the preamble, a meta group naming explicit VR little
/// endian, then `body` (written by hand, as an attacker would).
fn raw_part10(body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b.extend_from_slice(b"DICM");
    let ts = b"1.2.840.10008.1.2.1\0";
    b.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
    b.extend_from_slice(&(ts.len() as u16).to_le_bytes());
    b.extend_from_slice(ts);
    b.extend_from_slice(body);
    b
}

fn el_long(group: u16, element: u16, vr: &[u8; 2], len: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&group.to_le_bytes());
    b.extend_from_slice(&element.to_le_bytes());
    b.extend_from_slice(vr);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// The reviewer's files: an empty undefined-length sequence, then an element that claims about
/// 4 GB (as OB, UN and UT values: the parser reserved 3.75 GiB for the first two and aborted the
/// process on the allocation for the last). Each must cost an error record, in a process whose
/// address space is capped at 1 GiB, so that a reservation of the claimed size would abort it.
#[test]
fn a_few_hundred_bytes_cannot_take_the_memory_or_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for vr in [b"OB", b"UN", b"UT"] {
        let mut body = Vec::new();
        body.extend_from_slice(&[0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'D', b'X']);
        body.extend(el_long(0x0008, 0x1140, b"SQ", 0xFFFF_FFFF));
        body.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        body.extend(el_long(0x0009, 0x1010, vr, 0xF000_0000));
        body.extend_from_slice(&[0u8; 64]);
        let bytes = raw_part10(&body);
        assert!(bytes.len() < 300);
        let p = dir
            .path()
            .join(format!("hostile-{}.dcm", String::from_utf8_lossy(vr)));
        std::fs::write(&p, &bytes).unwrap();
        paths.push(p);
    }
    let mut cmd = common::command(&exe());
    cmd.args(["classify", "--json", "--variant", "f32", "-j", "1"])
        .args(&paths);
    // Under qemu-user the cap would apply to the emulator's own reservations; the unit tests of
    // the structure check cover the ARM builds there.
    if std::env::var("CXR_EDGE_TEST_RUNNER").map_or(true, |r| r.trim().is_empty()) {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                let cap = libc::rlimit {
                    rlim_cur: 1 << 30,
                    rlim_max: 1 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &cap) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    for r in &recs {
        let e = r["error"].as_str().unwrap_or_default();
        assert!(e.contains("claims 4026531840 bytes"), "{r}");
    }
}
