//! Reading a study's case code from the camera: a QR code or a 1-D barcode (Code 128, Code 39,
//! EAN/UPC, ITF, Codabar) on the film sleeve or a card held beside the film, decoded with
//! `rxing` (zxing's decoders). What is read is only a candidate: the caller checks it against
//! the study's pattern ([`crate::case::Policy`]) before showing or recording it.
//!
//! Frames larger than [`MAX_SIDE`] are scaled down first (a code that fills a tenth of a 720p
//! frame is still ~100 pixels wide after that), which bounds the time one look takes.

use std::collections::HashSet;

use rxing::{BarcodeFormat, DecodeHints};

use crate::pixels::{resize_area, Frame};

/// Longest side a frame is looked at with.
pub const MAX_SIDE: usize = 1280;

/// The formats looked for.
const FORMATS: [BarcodeFormat; 8] = [
    BarcodeFormat::QR_CODE,
    BarcodeFormat::CODE_128,
    BarcodeFormat::CODE_39,
    BarcodeFormat::EAN_13,
    BarcodeFormat::EAN_8,
    BarcodeFormat::UPC_A,
    BarcodeFormat::ITF,
    BarcodeFormat::CODABAR,
];

/// The text of a code seen in `frame` (grey values 0..=255), if one can be decoded.
pub fn read_code(frame: &Frame) -> Option<String> {
    if frame.width < 16 || frame.height < 16 {
        return None;
    }
    let longest = frame.width.max(frame.height);
    let small;
    let f = if longest > MAX_SIDE {
        let s = MAX_SIDE as f32 / longest as f32;
        let w = ((frame.width as f32 * s) as usize).max(16);
        let h = ((frame.height as f32 * s) as usize).max(16);
        small = resize_area(frame, w, h);
        &small
    } else {
        frame
    };
    let luma = f.to_luma8().into_raw();
    let mut hints = DecodeHints {
        PossibleFormats: Some(HashSet::from(FORMATS)),
        TryHarder: Some(true),
        ..DecodeHints::default()
    };
    let width = u32::try_from(f.width).ok()?;
    let height = u32::try_from(f.height).ok()?;
    // What is in front of the camera is not ours to trust: a decoder that panics on a strange
    // symbol costs this look, not the kiosk.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        rxing::helpers::detect_in_luma_with_hints(luma, width, height, None, &mut hints)
            .ok()
            .map(|r| r.getText().to_string())
    }))
    .ok()
    .flatten()
}
