//! DICOM files for the tests, written from the sample PNGs with `dicom-object`, so each case
//! (transfer syntax, photometric interpretation, rescale, window, header refusals) is visible
//! in the test that uses it. Include with `#[path = "common/dicom.rs"] mod dicom_files;`.
#![allow(dead_code)]

use dicom_core::value::{PixelFragmentSequence, Value};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// Put into every file, so tests can check that they never come out again.
pub const PATIENT_NAME: &str = "DOE^JANE^SECRET";
pub const PATIENT_ID: &str = "PID-7731-SECRET";

pub enum Pixels {
    /// One byte per pixel, row-major.
    U8(Vec<u8>),
    /// Two bytes per pixel with this many bits stored.
    U16(Vec<u16>, u16),
    /// One encapsulated frame (a JPEG, JPEG 2000 or RLE stream), 8 bits per pixel.
    Encapsulated(Vec<u8>),
}

pub struct Spec {
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
    pub transfer_syntax: &'static str,
    pub modality: Option<&'static str>,
    pub view: Option<&'static str>,
    pub body_part: Option<&'static str>,
    pub photometric: &'static str,
    pub samples_per_pixel: u16,
    /// (slope, intercept)
    pub rescale: Option<(f64, f64)>,
    /// (center, width)
    pub window: Option<(f64, f64)>,
}

impl Spec {
    /// An uncompressed 8-bit MONOCHROME2 DX chest film, PA, with the identity window.
    pub fn film(width: u32, height: u32, grey: Vec<u8>) -> Spec {
        Spec {
            width,
            height,
            pixels: Pixels::U8(grey),
            transfer_syntax: uids::EXPLICIT_VR_LITTLE_ENDIAN,
            modality: Some("DX"),
            view: Some("PA"),
            body_part: Some("CHEST"),
            photometric: "MONOCHROME2",
            samples_per_pixel: 1,
            rescale: None,
            // center 128, width 256 maps 0..255 onto 0..255 exactly (DICOM's linear VOI).
            window: Some((128.0, 256.0)),
        }
    }
}

fn el(tag: Tag, vr: VR, v: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, v.into())
}

/// The Part 10 file (preamble, meta group, data set) as bytes.
pub fn write(spec: &Spec) -> Vec<u8> {
    let sop_class = if spec.modality == Some("CR") {
        uids::COMPUTED_RADIOGRAPHY_IMAGE_STORAGE
    } else {
        uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION
    };
    let instance = "1.2.826.0.1.3680043.10.1234.1.1";
    let mut obj = InMemDicomObject::new_empty();
    obj.put(el(tags::SOP_CLASS_UID, VR::UI, sop_class));
    obj.put(el(tags::SOP_INSTANCE_UID, VR::UI, instance));
    obj.put(el(tags::PATIENT_NAME, VR::PN, PATIENT_NAME));
    obj.put(el(tags::PATIENT_ID, VR::LO, PATIENT_ID));
    obj.put(el(tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"));
    if let Some(m) = spec.modality {
        obj.put(el(tags::MODALITY, VR::CS, m));
    }
    if let Some(v) = spec.view {
        obj.put(el(tags::VIEW_POSITION, VR::CS, v));
    }
    if let Some(b) = spec.body_part {
        obj.put(el(tags::BODY_PART_EXAMINED, VR::CS, b));
    }
    obj.put(el(tags::SAMPLES_PER_PIXEL, VR::US, spec.samples_per_pixel));
    obj.put(el(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        spec.photometric,
    ));
    obj.put(el(tags::ROWS, VR::US, spec.height as u16));
    obj.put(el(tags::COLUMNS, VR::US, spec.width as u16));
    let (bits, stored) = match &spec.pixels {
        Pixels::U16(_, stored) => (16u16, *stored),
        _ => (8, 8),
    };
    obj.put(el(tags::BITS_ALLOCATED, VR::US, bits));
    obj.put(el(tags::BITS_STORED, VR::US, stored));
    obj.put(el(tags::HIGH_BIT, VR::US, stored - 1));
    obj.put(el(tags::PIXEL_REPRESENTATION, VR::US, 0u16));
    if spec.samples_per_pixel > 1 {
        obj.put(el(tags::PLANAR_CONFIGURATION, VR::US, 0u16));
    }
    if let Some((slope, intercept)) = spec.rescale {
        obj.put(el(tags::RESCALE_SLOPE, VR::DS, format!("{slope}")));
        obj.put(el(tags::RESCALE_INTERCEPT, VR::DS, format!("{intercept}")));
        obj.put(el(tags::RESCALE_TYPE, VR::LO, "US"));
    }
    if let Some((c, w)) = spec.window {
        obj.put(el(tags::WINDOW_CENTER, VR::DS, format!("{c}")));
        obj.put(el(tags::WINDOW_WIDTH, VR::DS, format!("{w}")));
    }
    match &spec.pixels {
        Pixels::U8(v) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(v.clone()),
        )),
        Pixels::U16(v, _) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(v.clone().into()),
        )),
        Pixels::Encapsulated(frame) => obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::from(PixelFragmentSequence::new(vec![], vec![frame.clone()])),
        )),
    };
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(spec.transfer_syntax)
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(instance),
        )
        .expect("valid meta group");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("DICOM writes to memory");
    out
}

/// RLE Lossless (PackBits) of one 8-bit frame: one segment, each row as literal runs of at most
/// 128 bytes. Valid, not small; enough to exercise the decoder.
pub fn rle_frame(grey: &[u8], width: usize) -> Vec<u8> {
    let mut seg = Vec::new();
    for row in grey.chunks(width) {
        for run in row.chunks(128) {
            seg.push((run.len() - 1) as u8);
            seg.extend_from_slice(run);
        }
    }
    if seg.len() % 2 == 1 {
        seg.push(0x80); // no-op, keeps the segment even
    }
    let mut out = vec![0u8; 64];
    out[0..4].copy_from_slice(&1u32.to_le_bytes());
    out[4..8].copy_from_slice(&64u32.to_le_bytes());
    out.extend_from_slice(&seg);
    out
}

/// The sample film `name` (in tests/fixtures/samples) as 8-bit grey: (width, height, pixels).
pub fn sample_grey(name: &str) -> (u32, u32, Vec<u8>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(name);
    let img = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_luma8();
    (img.width(), img.height(), img.into_raw())
}
