//! DICOM files from CR/DX readers and PACS exports.
//!
//! Only what a chest film needs is read: the image of a projection radiograph, with the
//! modality rescale, the window stored in the file and MONOCHROME1 turned the right way round.
//! The header is checked first, so a CT slice, a lateral view or a knee is refused with the
//! reason instead of being classified. Patient attributes (name, ID, birth date...) are never
//! read: nothing here can copy them into a record, a log or an output file.
//!
//! Before the parser runs, [`scan`] walks every element header, into sequences, items and
//! pixel-data fragments, and checks each length against what remains, so nothing the parser
//! allocates can exceed the file. Every size is checked against [`Limits`] before pixel data is
//! decoded, and the decoders run under `catch_unwind`: a hostile file costs an error, never the
//! process.

mod scan;

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{
    ConvertOptions, ModalityLutOption, PixelDecoder, VoiLutFunction, VoiLutOption, WindowLevel,
};

use super::limits::{shown, DecodeError, Limits};
use super::{dicom_magic, Frame};

/// Modalities of projection radiographs: computed and digital radiography (RG: radiographic
/// imaging with indirect capture; DR: not a DICOM term, but written by some DR systems).
const PROJECTION_MODALITIES: &[&str] = &["CR", "DX", "RG", "DR"];

/// View positions that are not frontal (lateral and oblique); the model was trained on PA and
/// AP views only.
const NOT_FRONTAL_VIEWS: &[&str] = &["LL", "RL", "LLO", "RLO", "LAT", "LATERAL"];

/// Body parts a chest film is filed under.
const CHEST_PARTS: &[&str] = &["CHEST", "THORAX", "LUNG", "LUNGS", "TORAX", "THORAX_CHEST"];

/// Messages from the parser may quote the file; they are made safe to show like header text.
fn corrupt(detail: impl std::fmt::Display) -> DecodeError {
    DecodeError::DicomCorrupt(shown(&detail.to_string(), 300))
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.to_str().ok()?;
    let v = v
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string();
    (!v.is_empty()).then_some(v)
}

/// A code string (VR CS: at most 16 of `A-Z 0-9 _` and space, PS3.5 6.2), upper-cased first
/// because real readers write `chest`. `Err` holds the value made safe to show.
fn code(obj: &DefaultDicomObject, tag: Tag) -> Option<Result<String, String>> {
    let v = text(obj, tag)?.to_uppercase();
    let valid = v.len() <= 16
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_');
    Some(if valid { Ok(v) } else { Err(shown(&v, 16)) })
}

fn number(obj: &DefaultDicomObject, tag: Tag) -> Option<u64> {
    let v = obj.get(tag)?;
    v.to_int::<i64>()
        .ok()
        .or_else(|| text(obj, tag)?.parse().ok())
        .and_then(|n| u64::try_from(n).ok())
}

/// Whether the header describes something other than a frontal chest radiograph; the reason
/// in words when it does.
fn refusal(obj: &DefaultDicomObject) -> Option<String> {
    match code(obj, tags::MODALITY) {
        None => {
            return Some(
                "the file does not say what kind of image it is (no Modality); only chest radiographs (CR, DX) are accepted".into(),
            )
        }
        Some(Err(bad)) => {
            return Some(format!(
                "the Modality in the header is not a valid code ({bad}); only chest radiographs (CR, DX) are accepted"
            ))
        }
        Some(Ok(m)) if !PROJECTION_MODALITIES.contains(&m.as_str()) => {
            return Some(format!(
                "this is a {m} image, not a radiograph; only chest radiographs (CR, DX) are accepted"
            ))
        }
        _ => {}
    }
    match code(obj, tags::VIEW_POSITION) {
        Some(Err(bad)) => {
            return Some(format!(
                "the View Position in the header is not a valid code ({bad}); only frontal (PA or AP) chest films are analysed"
            ))
        }
        Some(Ok(view)) if NOT_FRONTAL_VIEWS.contains(&view.as_str()) => {
            return Some(format!(
                "the header says this is a {view} (lateral or oblique) view; only frontal (PA or AP) chest films are analysed"
            ));
        }
        _ => {}
    }
    match code(obj, tags::BODY_PART_EXAMINED) {
        Some(Err(bad)) => Some(format!(
            "the Body Part Examined in the header is not a valid code ({bad})"
        )),
        Some(Ok(part)) if !CHEST_PARTS.contains(&part.as_str()) => Some(format!(
            "the header says this image is of the {part}, not the chest"
        )),
        _ => None,
    }
}

/// The header's picture size against the limits: per side, in pixels (all frames), in bytes of
/// memory (see [`Limits::memory_needed`]) and at least [`Limits::min_side`]. Every number is
/// header text, so products saturate.
fn check_size(
    rows: u64,
    cols: u64,
    frames: u64,
    bits: u64,
    file_bytes: u64,
    limits: &Limits,
) -> Result<(), DecodeError> {
    if rows > limits.max_side as u64 || cols > limits.max_side as u64 {
        return Err(DecodeError::DicomRefused(format!(
            "the image is {cols}x{rows} pixels, larger than the limit of {} pixels per side",
            limits.max_side
        )));
    }
    // All frames are decoded at once by the library, so all of them count.
    // Saturating: the frame count is header text, any number at all.
    if (rows * cols).saturating_mul(frames) > limits.max_pixels {
        return Err(DecodeError::DicomRefused(format!(
            "the image is {cols}x{rows} pixels x {frames} frames, more than the limit of {} megapixels",
            limits.max_pixels / 1_000_000
        )));
    }
    // The library decodes into stored samples, then converts to f64 (8 bytes a pixel) before
    // the grey frame is made: that is the peak, checked in bytes before any of it is allocated.
    let bits = bits.clamp(8, 64);
    let stored = (rows * cols)
        .saturating_mul(frames)
        .saturating_mul(bits.div_ceil(8));
    let needed =
        Limits::memory_needed(file_bytes, stored, rows * cols).saturating_add(rows * cols * 8);
    limits.check_memory(
        &format!("DICOM image of {cols}x{rows} x {frames} frames"),
        needed,
    )?;
    if rows < limits.min_side as u64 || cols < limits.min_side as u64 {
        return Err(DecodeError::TooSmall {
            width: cols as u32,
            height: rows as u32,
            min: limits.min_side,
        });
    }
    Ok(())
}

/// RLE Lossless: each frame is one fragment that starts with a 64-byte header whose first word
/// is the number of segments, 1 to 15 (PS3.5 G.3.1). The decoder allocates a table of that many
/// entries before it looks at the fragment (a word of 0xFFFFFFFF asks for 16 GB, and a failed
/// allocation aborts the process, which `catch_unwind` cannot stop), then slices the header by
/// it; so the header is checked here first.
fn check_rle_headers(obj: &DefaultDicomObject) -> Result<(), DecodeError> {
    if obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']) != uids::RLE_LOSSLESS {
        return Ok(());
    }
    let fragments = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
        .unwrap_or_default();
    for (i, f) in fragments.iter().enumerate() {
        let segments = f
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match segments {
            Some(1..=15) if f.len() >= 64 => {}
            Some(n) if f.len() >= 64 => {
                return Err(corrupt(format!(
                    "RLE fragment {i} claims {n} segments; 1 to 15 are possible"
                )))
            }
            _ => {
                return Err(corrupt(format!(
                    "RLE fragment {i} is {} bytes, shorter than its 64-byte header",
                    f.len()
                )))
            }
        }
    }
    Ok(())
}

/// JPEG (ISO 10918) fragments: the stream's own frame header says how big a picture the decoder
/// allocates, whatever Rows and Columns say; one larger than the header is refused. Found by
/// fuzzing: a 1.7 KB file of 40x36 pixels whose JPEG said 18756x19523 took 548 MB.
fn check_jpeg_frames(obj: &DefaultDicomObject, rows: u64, cols: u64) -> Result<(), DecodeError> {
    let ts = obj.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    let jpeg = ts
        .strip_prefix("1.2.840.10008.1.2.4.")
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (50..=70).contains(&n));
    if !jpeg {
        return Ok(());
    }
    let fragments = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
        .unwrap_or_default();
    for f in fragments.iter().filter(|f| f.starts_with(&[0xFF, 0xD8])) {
        if let Some((height, width)) = jpeg_frame_size(f) {
            if u64::from(height) * u64::from(width) > rows * cols {
                return Err(corrupt(format!(
                    "the JPEG stream inside is {width}x{height} pixels, larger than the {cols}x{rows} of the header"
                )));
            }
        }
    }
    Ok(())
}

/// (height, width) from the first start-of-frame marker of a JPEG stream, walking its segments.
fn jpeg_frame_size(b: &[u8]) -> Option<(u16, u16)> {
    let mut at = 2;
    loop {
        let marker = *b.get(at + 1)?;
        if b[at] != 0xFF {
            return None;
        }
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([*b.get(at + 2)?, *b.get(at + 3)?]) as usize;
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u16::from_be_bytes([*b.get(at + 5)?, *b.get(at + 6)?]);
            let w = u16::from_be_bytes([*b.get(at + 7)?, *b.get(at + 8)?]);
            return Some((h, w));
        }
        if marker == 0xDA {
            return None;
        }
        at += 2 + len;
    }
}

/// Decode a DICOM Part 10 file into a grey [`Frame`] (0..255, dark = no X-rays through).
pub fn decode_dicom(bytes: &[u8], limits: &Limits) -> Result<Frame, DecodeError> {
    if !dicom_magic(bytes) {
        return Err(corrupt("no DICM marker after the 128-byte preamble"));
    }
    scan::check(bytes)?;
    let obj = catch_unwind(AssertUnwindSafe(|| {
        OpenFileOptions::new().from_reader(&bytes[128..])
    }))
    .map_err(|_| corrupt("the header could not be parsed"))?
    .map_err(corrupt)?;

    if let Some(why) = refusal(&obj) {
        return Err(DecodeError::DicomRefused(why));
    }
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(DecodeError::DicomRefused(
            "the file holds no image (no Pixel Data)".into(),
        ));
    }
    let rows = number(&obj, tags::ROWS).ok_or_else(|| corrupt("no Rows in the header"))?;
    let cols = number(&obj, tags::COLUMNS).ok_or_else(|| corrupt("no Columns in the header"))?;
    let frames = number(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let samples = number(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let photometric = match code(&obj, tags::PHOTOMETRIC_INTERPRETATION) {
        Some(Ok(p)) => p,
        Some(Err(bad)) => bad,
        None => String::new(),
    };
    if samples != 1 || !photometric.starts_with("MONOCHROME") {
        return Err(DecodeError::DicomRefused(format!(
            "the image is {} ({samples} samples per pixel); a radiograph is stored as MONOCHROME1 or MONOCHROME2",
            if photometric.is_empty() { "of unknown colour type" } else { &photometric }
        )));
    }
    let bits = number(&obj, tags::BITS_ALLOCATED).unwrap_or(16);
    check_size(rows, cols, frames, bits, bytes.len() as u64, limits)?;
    check_rle_headers(&obj)?;
    check_jpeg_frames(&obj, rows, cols)?;

    let ts = shown(obj.meta().transfer_syntax().trim_end_matches('\0'), 64);
    let grey = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<f32>, DecodeError> {
        let pixels = obj.decode_pixel_data_frame(0).map_err(|e| {
            let msg = shown(&e.to_string(), 300);
            if msg.contains("nsupported") || msg.contains("not supported") {
                DecodeError::DicomUnsupported(format!("transfer syntax {ts}: {msg}"))
            } else {
                corrupt(format!("pixel data: {msg}"))
            }
        })?;
        // The modality rescale (slope, intercept) by the library; the window ourselves, so
        // the rule is visible here and no image-format features are pulled into the build.
        let options = ConvertOptions::new()
            .with_modality_lut(ModalityLutOption::Default)
            .with_voi_lut(VoiLutOption::Identity);
        let values: Vec<f64> = pixels
            .to_vec_frame_with_options(0, &options)
            .map_err(|e| corrupt(format!("pixel data: {e}")))?;
        if values.len() as u64 != rows * cols {
            return Err(corrupt(format!(
                "{} pixel values where the header says {cols}x{rows}",
                values.len()
            )));
        }
        let window = pixels
            .window()
            .ok()
            .flatten()
            .and_then(|w| w.first().copied());
        let function = pixels
            .voi_lut_function()
            .ok()
            .flatten()
            .and_then(|f| f.first().copied())
            .unwrap_or_default();
        Ok(voi(&values, window.filter(|w| w.width > 0.0), function))
    }))
    .map_err(|_| corrupt("the pixel data could not be decoded"))??;

    let (w, h) = (cols as usize, rows as usize);
    let mut data = grey;
    // MONOCHROME1: high values are dark. A presentation LUT of INVERSE flips once more.
    let mut invert = photometric == "MONOCHROME1";
    if matches!(code(&obj, tags::PRESENTATION_LUT_SHAPE), Some(Ok(s)) if s == "INVERSE") {
        invert = !invert;
    }
    if invert {
        data.iter_mut().for_each(|v| *v = 255.0 - *v);
    }
    Ok(Frame::new(w, h, data))
}

/// The VOI transform of DICOM PS3.3 C.11.2.1.2 onto 0..255 (rounded to whole grey levels, as
/// an 8-bit export would be); min-max over the image when the file gives no window.
fn voi(values: &[f64], window: Option<WindowLevel>, function: VoiLutFunction) -> Vec<f32> {
    let (ymin, ymax) = (0.0, 255.0);
    let map: Box<dyn Fn(f64) -> f64> = match window {
        Some(WindowLevel {
            center: c,
            width: w,
        }) => match function {
            VoiLutFunction::Linear if w >= 1.0 => Box::new(move |x: f64| {
                if x <= c - 0.5 - (w - 1.0) / 2.0 {
                    ymin
                } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                    ymax
                } else {
                    ((x - (c - 0.5)) / (w - 1.0) + 0.5) * (ymax - ymin) + ymin
                }
            }),
            VoiLutFunction::Sigmoid => {
                Box::new(move |x: f64| (ymax - ymin) / (1.0 + (-4.0 * (x - c) / w).exp()) + ymin)
            }
            // LINEAR_EXACT, and LINEAR with a width below 1 (which LINEAR does not allow).
            _ => Box::new(move |x: f64| ((x - c) / w + 0.5) * (ymax - ymin) + ymin),
        },
        None => {
            let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let span = (hi - lo).max(f64::EPSILON);
            Box::new(move |x: f64| (x - lo) / span * (ymax - ymin) + ymin)
        }
    };
    values
        .iter()
        .map(|&x| map(x).clamp(ymin, ymax).round() as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_part10_files_are_dicom() {
        let mut b = vec![0u8; 140];
        assert!(!dicom_magic(&b));
        b[128..132].copy_from_slice(b"DICM");
        assert!(dicom_magic(&b));
        assert!(!dicom_magic(&b[..131]));
    }

    #[test]
    fn windows_follow_the_standard() {
        let xs = [0.0, 100.0, 127.5, 128.0, 200.0, 255.0, 1000.0];
        let id = WindowLevel {
            center: 128.0,
            width: 256.0,
        };
        let linear = voi(&xs, Some(id), VoiLutFunction::Linear);
        assert_eq!(linear, vec![0.0, 100.0, 128.0, 128.0, 200.0, 255.0, 255.0]);
        let narrow = WindowLevel {
            center: 100.0,
            width: 20.0,
        };
        let n = voi(&xs, Some(narrow), VoiLutFunction::Linear);
        assert_eq!((n[0], n[1], n[4]), (0.0, 134.0, 255.0));
        let s = voi(&[100.0], Some(narrow), VoiLutFunction::Sigmoid);
        assert_eq!(s, vec![128.0]);
        let mm = voi(&[10.0, 20.0, 30.0], None, VoiLutFunction::Linear);
        assert_eq!(mm, vec![0.0, 128.0, 255.0]);
    }

    #[test]
    fn a_preamble_without_a_data_set_is_corrupt() {
        let mut b = vec![0u8; 200];
        b[128..132].copy_from_slice(b"DICM");
        let e = decode_dicom(&b, &Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::DicomCorrupt(_)), "{e}");
    }
}
