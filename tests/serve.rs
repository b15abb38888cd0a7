//! `cxr-edge serve` as a user starts it: the real model, the results log, the refusals over
//! HTTP, and the rule that the network needs a token.
#![cfg(all(feature = "serve", feature = "dicom"))]

mod common;
#[path = "common/dicom.rs"]
mod dicom_files;
#[path = "common/served.rs"]
mod served;

use std::path::PathBuf;
use std::time::Duration;

#[path = "common/client.rs"]
mod client;
use client::{post_file, request};
use dicom_files::{sample_grey, write, Spec};
use served::serve;

const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "test-token-0123456789";

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge"))
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(common::root().join("tests/fixtures/samples").join(name)).unwrap()
}

#[test]
fn uploads_are_classified_recorded_and_match_classify() {
    let s = serve("", &["--variant", "f32"]);
    let png = sample("nih-normal-1.png");
    let r = post_file(s.addr, None, &png, None, T).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    assert_eq!(rec["notice"], cxr_edge::NOTICE);
    assert_eq!(rec["input"], "digital");
    assert!(rec["path"].as_str().unwrap().starts_with("upload:"));

    // The same object as `classify --json` (bar the path, the time and the heatmap's place).
    let out = common::command(&exe())
        .args(["classify", "--json", "--variant", "f32"])
        .arg(common::root().join("tests/fixtures/samples/nih-normal-1.png"))
        .output()
        .unwrap();
    let cli: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    for key in [
        "label", "result", "probs", "decision", "quality", "model", "input",
    ] {
        assert_eq!(rec[key], cli[key], "{key}");
    }
    let mut keys_api: Vec<_> = rec.as_object().unwrap().keys().cloned().collect();
    let mut keys_cli: Vec<_> = cli.as_object().unwrap().keys().cloned().collect();
    keys_api.retain(|k| k != "heatmap");
    keys_api.sort();
    keys_cli.sort();
    assert_eq!(keys_api, keys_cli);

    // The pictures the page shows.
    let heat = rec["heatmap"].as_str().unwrap();
    let pic = request(s.addr, "GET", heat, None, None, T).unwrap();
    assert_eq!(
        (pic.status, pic.header("content-type")),
        (200, Some("image/png"))
    );
    let film = heat.replace("heatmap.png", "film.png");
    assert_eq!(
        request(s.addr, "GET", &film, None, None, T).unwrap().status,
        200
    );

    // A DICOM of the same film gives the same result, and leaves no patient data anywhere.
    let (w, h, g) = sample_grey("nih-normal-1.png");
    let dcm = write(&Spec::film(w, h, g));
    let d = post_file(s.addr, None, &dcm, None, T).unwrap();
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(d.json()["probs"], rec["probs"]);
    assert!(!d.text().contains("SECRET"));

    let recs = common::records(&s.results);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["source"], "upload");
        assert_eq!(r["notice"], cxr_edge::NOTICE);
        assert!(
            r.get("heatmap").is_none(),
            "the log keeps the file name, not the URL"
        );
    }
    for e in std::fs::read_dir(&s.results).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
    }
}

#[test]
fn every_refusal_has_a_reason_and_the_server_goes_on() {
    let s = serve("max_upload_mb = 1", &["--variant", "f32"]);
    let check = |bytes: &[u8], status: u16, words: &str| {
        let r = post_file(s.addr, None, bytes, None, T).unwrap();
        assert_eq!(r.status, status, "{}", r.text());
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(err.contains(words), "'{err}' should say '{words}'");
        assert_eq!(r.json()["notice"], cxr_edge::NOTICE);
    };
    // Too large: over the upload limit (1 MiB here).
    check(&vec![0u8; 3 << 19], 413, "");
    // Not an image, whatever its name says.
    check(b"%PDF-1.7 not a film at all", 422, "not a supported image");
    // A truncated DICOM.
    let (w, h, g) = sample_grey("nih-normal-1.png");
    let whole = write(&Spec::film(w, h, g.clone()));
    check(
        &whole[..whole.len() / 2],
        422,
        "DICOM file is corrupt or truncated",
    );
    // The wrong modality.
    let mut ct = Spec::film(w, h, g);
    ct.modality = Some("CT");
    check(&write(&ct), 422, "CT image, not a radiograph");
    // Still serving, and a good upload after all that works.
    let ok = post_file(s.addr, None, &sample("kermany-normal-1.png"), None, T).unwrap();
    assert_eq!(ok.status, 200);
    let h = request(s.addr, "GET", "/api/health", None, None, T).unwrap();
    assert_eq!(h.json()["status"], "ok");
    // Analysed uploads are recorded, refused ones too when they reached the model (with the
    // reason); the too-large one never did.
    let recs = common::records(&s.results);
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(recs.iter().filter(|r| r["error"].is_null()).count(), 1);
}

#[test]
fn a_token_is_needed_when_set_and_for_the_network() {
    let s = serve(&format!("token = \"{TOKEN}\""), &["--variant", "f32"]);
    let png = sample("nih-normal-1.png");
    assert_eq!(post_file(s.addr, None, &png, None, T).unwrap().status, 401);
    assert_eq!(
        post_file(s.addr, Some("test-token-0123456780"), &png, None, T)
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        post_file(s.addr, Some(TOKEN), &png, None, T)
            .unwrap()
            .status,
        200
    );
    assert_eq!(common::records(&s.results).len(), 1);

    // Listening beyond loopback without a token: refused before anything listens.
    let out = common::command(&exe())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set an access token first"), "{err}");
}

/// A page on another site cannot use the device: a cross-site POST (Origin and Host of the
/// attacker, as DNS rebinding makes them) is refused before anything is read or recorded, a
/// POST without the page's own header is refused, and the answers say who may read them.
/// Before, a POST with `Origin: http://evil.example` and `Host: evil.example` became an
/// `upload` record.
#[test]
fn cross_site_and_rebinding_requests_are_refused() {
    let s = serve("hosts = [\"cxr-unit-7.local\"]\n", &["--variant", "f32"]);
    let png = sample("nih-normal-1.png");
    let body = client::multipart_body(&[("file", Some("film.png"), &png)]);
    let post = |headers: &[(&str, &str)]| {
        client::request_with(s.addr, "POST", "/api/classify", headers, Some(&body), T).unwrap()
    };
    let xrw = ("X-Requested-With", "cxr-edge");
    let rebound = post(&[
        ("Host", "evil.example"),
        ("Origin", "http://evil.example"),
        xrw,
    ]);
    assert_eq!(rebound.status, 421, "{}", rebound.text());
    let addr = s.addr.to_string();
    let cross = post(&[("Origin", "http://evil.example"), xrw]);
    assert_eq!(cross.status, 403, "{}", cross.text());
    let form = post(&[("Host", addr.as_str())]);
    assert_eq!(form.status, 403, "{}", form.text());
    assert!(form.json()["error"]
        .as_str()
        .unwrap()
        .contains("X-Requested-With"));
    assert!(
        common::records(&s.results).is_empty(),
        "nothing refused is recorded"
    );

    // The device's own page, by address or by a configured name, is served.
    let origin = format!("http://{addr}");
    let own = post(&[("Origin", origin.as_str()), xrw]);
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        own.header("cross-origin-resource-policy"),
        Some("same-origin")
    );
    let named = client::request_with(
        s.addr,
        "GET",
        "/api/health",
        &[("Host", "cxr-unit-7.local:8080")],
        None,
        T,
    )
    .unwrap();
    assert_eq!(named.status, 200, "{}", named.text());
    let heat = own.json()["heatmap"].as_str().unwrap().to_string();
    let pic = request(s.addr, "GET", &heat, None, None, T).unwrap();
    assert_eq!(pic.header("cache-control"), Some("no-store"));
    assert_eq!(common::records(&s.results).len(), 1);
}

/// With `case_code = "required"`: an upload without a code, or with one of another form, is
/// refused before the model sees it (the message never repeats the code); a valid code goes
/// into the answer and the results log; the page learns the rule from /api/health.
#[test]
fn case_codes_are_required_checked_and_recorded() {
    let s = served::serve_with(
        "case_code = \"required\"\ncase_code_pattern = 'S\\d{2}-\\d{4}'",
        "",
        &[],
    );
    let health = request(s.addr, "GET", "/api/health", None, None, T).unwrap();
    assert_eq!(health.json()["case_code"], "required");
    let film = sample("kermany-normal-1.png");
    let post = |code: Option<&str>| {
        let mut fields: Vec<client::Field> = Vec::new();
        if let Some(c) = code {
            fields.push(("case_code", None, c.as_bytes()));
        }
        fields.push(("file", Some("f.png"), &film));
        let body = client::multipart_body(&fields);
        request(s.addr, "POST", "/api/classify", None, Some(&body), T).unwrap()
    };
    let r = post(None);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("required"), "{}", r.text());
    let r = post(Some("DOE^JANE"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.text().contains("DOE"), "{}", r.text());
    assert!(common::records(&s.results).is_empty());
    let r = post(Some(" S01-0042 "));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["case_code"], "S01-0042");
    let kept = common::records(&s.results);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["case_code"], "S01-0042");
}
