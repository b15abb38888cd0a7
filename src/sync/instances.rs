//! The DICOM instances a record becomes in the study's archive (written with dicom-rs):
//!
//! * a Secondary Capture image of the kept picture (the film as the model saw it, with the
//!   heatmap over it and the research-use notice and the result burned in: Burned In
//!   Annotation is YES), when the record has one;
//! * a Basic Text Structured Report with the result, each probability, the decision, the
//!   quality warnings, the model and its SHA-256, the site profile and the research-use notice.
//!
//! Both in one study per record. Every UID is derived from the record's network-wide id
//! ([`uid`]), so sending a record again gives the same instances and the archive keeps one copy.
//! The patient is a pseudonym made from the same id: the unit never knows who the patient is.

use anyhow::{Context, Result};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A UID under the `2.25` root (ITU-T X.667: a UUID as one decimal number) made from the
/// SHA-256 of `id` and `what`, with the version and variant bits of a UUID version 8 (custom):
/// the same inputs always give the same UID, and different ones never collide in practice.
pub fn uid(id: &str, what: &str) -> String {
    let d = Sha256::new()
        .chain_update(id.as_bytes())
        .chain_update([0])
        .chain_update(what.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A case code as a DICOM LO/PN value: at most 64 characters, and none of the characters that
/// separate values (`\\`) or name components (`^`, `=`) there.
fn dicom_text(code: &str) -> String {
    code.chars()
        .take(64)
        .map(|c| {
            if matches!(c, '\\' | '^' | '=') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// What every instance of a record shares: patient, study, equipment.
struct Study<'a> {
    id: &'a str,
    patient_id: String,
    patient_name: String,
    date: String,
    time: String,
    study_uid: String,
}

impl<'a> Study<'a> {
    fn new(id: &'a str, site: &str, record: &Value) -> Study<'a> {
        // "2026-12-03T10:00:00Z" -> 20261203, 100000
        let t = record["time"].as_str().unwrap_or("");
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let (d, tm) = t.split_once('T').unwrap_or(("", ""));
        Study {
            id,
            // The study's case code when the film has one (so the archive groups a case's
            // films), else a pseudonym of the record; the unit never knows the patient.
            patient_id: match record["case_code"].as_str() {
                Some(code) => dicom_text(code),
                None => format!("CXR-{}", &uid(id, "patient")[5..21]),
            },
            patient_name: match record["case_code"].as_str() {
                Some(code) => format!("Case^{}", dicom_text(code)),
                None => format!("Research^{site}"),
            },
            date: digits(d),
            time: digits(tm.trim_end_matches('Z')),
            study_uid: uid(id, "study"),
        }
    }

    fn elements(&self, obj: &mut InMemDicomObject, modality: &str, series: &str, number: u16) {
        let s = |tag: Tag, vr: VR, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
        for e in [
            s(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
            s(tags::PATIENT_NAME, VR::PN, &self.patient_name),
            s(tags::PATIENT_ID, VR::LO, &self.patient_id),
            s(tags::PATIENT_BIRTH_DATE, VR::DA, ""),
            s(tags::PATIENT_SEX, VR::CS, ""),
            s(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"),
            s(tags::STUDY_INSTANCE_UID, VR::UI, &self.study_uid),
            s(tags::STUDY_DATE, VR::DA, &self.date),
            s(tags::STUDY_TIME, VR::TM, &self.time),
            s(tags::CONTENT_DATE, VR::DA, &self.date),
            s(tags::CONTENT_TIME, VR::TM, &self.time),
            s(tags::STUDY_ID, VR::SH, "1"),
            s(tags::ACCESSION_NUMBER, VR::SH, ""),
            s(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
            s(
                tags::STUDY_DESCRIPTION,
                VR::LO,
                "cxr-edge research result - not a diagnosis",
            ),
            s(tags::MODALITY, VR::CS, modality),
            s(tags::SERIES_INSTANCE_UID, VR::UI, &uid(self.id, series)),
            s(tags::SERIES_DESCRIPTION, VR::LO, series),
            s(tags::MANUFACTURER, VR::LO, "cxr-edge"),
            s(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
            s(
                tags::SOP_INSTANCE_UID,
                VR::UI,
                &uid(self.id, &format!("{series}/1")),
            ),
        ] {
            obj.put(e);
        }
        obj.put(DataElement::new(
            tags::SERIES_NUMBER,
            VR::IS,
            PrimitiveValue::from(number.to_string()),
        ));
        obj.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from("1"),
        ));
    }
}

fn to_bytes(obj: InMemDicomObject) -> Result<Vec<u8>> {
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .context("cannot make the DICOM file meta")?;
    let mut out = Vec::new();
    file.write_all(&mut out)
        .context("cannot write the DICOM instance")?;
    Ok(out)
}

/// The Secondary Capture of the kept picture (RGB, 8 bits).
pub fn picture(id: &str, site: &str, record: &Value, rgb: &image::RgbImage) -> Result<Vec<u8>> {
    let study = Study::new(id, site, record);
    let mut obj = InMemDicomObject::new_empty();
    study.elements(&mut obj, "OT", "heatmap", 1);
    let s = |tag: Tag, vr: VR, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let u = |tag: Tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let (w, h) = (
        u16::try_from(rgb.width()).context("picture too wide for DICOM")?,
        u16::try_from(rgb.height()).context("picture too tall for DICOM")?,
    );
    for e in [
        s(
            tags::SOP_CLASS_UID,
            VR::UI,
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
        ),
        s(tags::CONVERSION_TYPE, VR::CS, "WSD"),
        s(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"),
        s(
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            "the film as the model saw it, with the class-activation heatmap of the result over it and the research-use notice and the result burned in",
        ),
        s(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"),
        u(tags::SAMPLES_PER_PIXEL, 3),
        u(tags::PLANAR_CONFIGURATION, 0),
        u(tags::ROWS, h),
        u(tags::COLUMNS, w),
        u(tags::BITS_ALLOCATED, 8),
        u(tags::BITS_STORED, 8),
        u(tags::HIGH_BIT, 7),
        u(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(rgb.as_raw().clone()),
        ),
    ] {
        obj.put(e);
    }
    to_bytes(obj)
}

fn code(value: &str, meaning: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            PrimitiveValue::from("99CXREDGE"),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
    ])
}

fn text_item(value: &str, meaning: &str, text: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::RELATIONSHIP_TYPE,
            VR::CS,
            PrimitiveValue::from("CONTAINS"),
        ),
        DataElement::new(tags::VALUE_TYPE, VR::CS, PrimitiveValue::from("TEXT")),
        DataElement::new(
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![code(value, meaning)]),
        ),
        DataElement::new(tags::TEXT_VALUE, VR::UT, PrimitiveValue::from(text)),
    ])
}

/// The lines of the report: (code, meaning, text).
fn report_lines(id: &str, record: &Value) -> Vec<(&'static str, String, String)> {
    let str_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    };
    let mut lines = vec![
        ("NOTICE", "Notice".to_string(), str_of(&record["notice"])),
        ("RECORD", "Record".to_string(), id.to_string()),
        ("RESULT", "Result".to_string(), str_of(&record["result"])),
        ("LABEL", "Label".to_string(), str_of(&record["label"])),
    ];
    if let Some(p) = record["probs"].as_object() {
        for (k, v) in p {
            lines.push(("PROB", format!("Probability {k}"), str_of(v)));
        }
    }
    lines.push(("DECISION", "Decision".into(), str_of(&record["decision"])));
    let quality: Vec<String> = record["quality"]
        .as_array()
        .map(|a| a.iter().map(|w| str_of(&w["code"])).collect())
        .unwrap_or_default();
    lines.push(("QUALITY", "Quality warnings".into(), quality.join(", ")));
    let m = &record["model"];
    lines.push((
        "MODEL",
        "Model".into(),
        format!(
            "{} {} ({})",
            str_of(&m["name"]),
            str_of(&m["version"]),
            str_of(&m["variant"])
        ),
    ));
    lines.push(("MODELSHA", "Model SHA-256".into(), str_of(&m["sha256"])));
    lines.push(("PROFILE", "Calibration".into(), str_of(&m["profile"])));
    if !record["error"].is_null() {
        lines.push((
            "ERROR",
            "No result because".into(),
            str_of(&record["error"]),
        ));
    }
    lines
}

/// The Basic Text SR of the record (the message of [`super::message::result_message`]).
pub fn report(id: &str, site: &str, record: &Value) -> Result<Vec<u8>> {
    let study = Study::new(id, site, record);
    let mut obj = InMemDicomObject::new_empty();
    study.elements(&mut obj, "SR", "report", 2);
    let s = |tag: Tag, vr: VR, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let items: Vec<InMemDicomObject> = report_lines(id, record)
        .iter()
        .map(|(c, meaning, text)| text_item(c, meaning, text))
        .collect();
    for e in [
        s(tags::SOP_CLASS_UID, VR::UI, uids::BASIC_TEXT_SR_STORAGE),
        s(tags::VALUE_TYPE, VR::CS, "CONTAINER"),
        s(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"),
        s(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"),
        s(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"),
    ] {
        obj.put(e);
    }
    obj.put(DataElement::new(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![code("CXRRESULT", "Research result - not a diagnosis")]),
    ));
    obj.put(DataElement::new(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::from(Vec::new()),
    ));
    obj.put(DataElement::new(
        tags::PERFORMED_PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::<InMemDicomObject>::from(Vec::new()),
    ));
    obj.put(DataElement::new(
        tags::CONTENT_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(items),
    ));
    to_bytes(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> dicom_object::DefaultDicomObject {
        dicom_object::from_reader(&bytes[128..]).expect("a DICOM file")
    }

    fn text(o: &dicom_object::DefaultDicomObject, t: Tag) -> String {
        o.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn uids_are_stable_valid_and_distinct() {
        let a = uid("s/d/r1", "study");
        assert_eq!(a, uid("s/d/r1", "study"));
        assert_ne!(a, uid("s/d/r2", "study"));
        assert_ne!(a, uid("s/d/r1", "series"));
        assert!(a.starts_with("2.25.") && a.len() <= 64, "{a}");
        assert!(!a[5..].starts_with('0') && a[5..].chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn a_record_becomes_a_picture_and_a_report_of_one_study() {
        let rec = serde_json::json!({
            "time": "2026-12-03T10:20:30Z", "label": "normal", "result": "no pneumonia pattern",
            "probs": {"covid": 0.05, "normal": 0.9}, "decision": {"flag": "normal"},
            "quality": [{"code": "low_contrast"}], "notice": crate::NOTICE, "error": null,
            "model": {"name": "cxr-net", "version": "1", "variant": "int8", "sha256": "ab", "profile": "shipped"},
        });
        let rgb = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
        let pic = read(&picture("s/d/r", "site-a", &rec, &rgb).unwrap());
        let sr = read(&report("s/d/r", "site-a", &rec).unwrap());
        assert_eq!(
            text(&pic, tags::STUDY_INSTANCE_UID),
            text(&sr, tags::STUDY_INSTANCE_UID)
        );
        assert_ne!(
            text(&pic, tags::SOP_INSTANCE_UID),
            text(&sr, tags::SOP_INSTANCE_UID)
        );
        assert_eq!(text(&pic, tags::PATIENT_ID), text(&sr, tags::PATIENT_ID));
        assert_eq!(text(&sr, tags::STUDY_DATE), "20261203");
        assert_eq!(text(&sr, tags::STUDY_TIME), "102030");
        assert_eq!(pic.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(), 3);
        assert_eq!(
            pic.element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .len(),
            4 * 3 * 3
        );
        assert_eq!(text(&sr, tags::SOP_CLASS_UID), uids::BASIC_TEXT_SR_STORAGE);
        let items = sr.element(tags::CONTENT_SEQUENCE).unwrap().items().unwrap();
        let texts: Vec<String> = items
            .iter()
            .map(|i| {
                i.element(tags::TEXT_VALUE)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim_end()
                    .to_string()
            })
            .collect();
        assert_eq!(texts[0], crate::NOTICE);
        assert!(
            texts.contains(&"no pneumonia pattern".to_string()),
            "{texts:?}"
        );
        assert!(texts.contains(&"0.9".to_string()), "{texts:?}");
        assert!(texts.contains(&"low_contrast".to_string()), "{texts:?}");
        // Sent again, the same bytes: the archive sees the same instance.
        assert_eq!(
            report("s/d/r", "site-a", &rec).unwrap(),
            report("s/d/r", "site-a", &rec).unwrap()
        );
        assert!(text(&sr, tags::PATIENT_ID).starts_with("CXR-"));
    }

    #[test]
    fn the_case_code_is_the_patient_of_both_instances() {
        let rec = serde_json::json!({
            "time": "2026-12-03T10:20:30Z", "label": "normal", "notice": crate::NOTICE,
            "model": {"name": "cxr-net"}, "case_code": "S01-0042",
        });
        let rgb = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 20, 30]));
        for bytes in [
            picture("s/d/r", "site-a", &rec, &rgb).unwrap(),
            report("s/d/r", "site-a", &rec).unwrap(),
        ] {
            let o = read(&bytes);
            assert_eq!(text(&o, tags::PATIENT_ID), "S01-0042");
            assert_eq!(text(&o, tags::PATIENT_NAME), "Case^S01-0042");
        }
        assert_eq!(dicom_text("a\\b^c=d"), "a_b_c_d");
    }
}
