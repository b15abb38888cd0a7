//! `cxr-edge sync` and the sync thread of `run` against real servers from Debian's packages,
//! started here on loopback with a throwaway config and port each (scripts/setup --tests
//! installs them): the MQTT broker `mosquitto`, with a subscriber that reads what arrives, and
//! the DICOM archive `orthanc` with its DICOMweb plugin (`orthanc-dicomweb`), read back with
//! QIDO-RS and WADO-RS.
//!
//! What is checked: records made while the broker is down all arrive once it is up, each id
//! once, in the order they were made; a broker restarted mid-drain and a `run` killed with
//! SIGKILL mid-drain lose nothing (and resend at most the one record in flight each time);
//! TLS with a test CA, a wrong client certificate refused; the archive stores each record's
//! report and picture as one study, once, even when a record is sent again. Set
//! CXR_EDGE_MOSQUITTO or CXR_EDGE_ORTHANC to use other binaries.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cxr_edge::analysis::Analysis;
use cxr_edge::store::{Origin, ResultsLog};

#[path = "common/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "common/servers.rs"]
mod servers;
use servers::{free_port, issue, Broker, Orthanc, Subscriber, ARCHIVE_USER};
#[allow(dead_code)]
mod common;

fn cxr_edge() -> Command {
    common::command(&PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
}

fn model() -> cxr_edge::model::ModelId {
    cxr_edge::model::ModelId {
        name: "cxr-net".into(),
        version: "1".into(),
        variant: "int8".into(),
        sha256: "ab".repeat(32),
        profile: Default::default(),
    }
}

/// `n` records in the log at `dir`, as the watch folder would make for unreadable files; their
/// names, oldest first.
fn make_records(dir: &Path, n: u32) -> Vec<String> {
    let log = ResultsLog::open(dir).unwrap();
    (0..n)
        .map(|i| {
            let mut a = Analysis::failed("x", model(), "cannot decode /inbox/DOE^JANE.png: bad");
            a.input_sha256 = Some(format!("{i:064x}"));
            log.record(&mut a, Origin::Inbox, false).unwrap().name
        })
        .collect()
}

fn config(dir: &Path, storage: &Path, sync: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        format!(
            "source = \"dir:{}\"\ndisplay = \"none\"\n[storage]\ndir = \"{}\"\n[sync]\nsite = \"site-a\"\ndevice = \"unit-1\"\ninterval_s = 1\n{sync}\n",
            dir.join("inbox").display(),
            storage.display()
        ),
    )
    .unwrap();
    p
}

fn sync_once(cfg: &Path) -> (i32, String) {
    let out = cxr_edge()
        .args(["sync", "--once", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The ids of `msgs` in arrival order, and how many arrived more than once.
fn ids(msgs: &[serde_json::Value]) -> (Vec<String>, usize) {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut again = 0;
    for m in msgs {
        let id = m["id"].as_str().unwrap().to_string();
        if seen.insert(id.clone()) {
            order.push(id);
        } else {
            again += 1;
        }
    }
    (order, again)
}

fn expected(names: &[String]) -> Vec<String> {
    names.iter().map(|n| format!("site-a/unit-1/{n}")).collect()
}

#[test]
fn records_made_offline_arrive_once_each_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("results");
    let names = make_records(&storage, 500);
    let (port, archive_port) = (free_port(), free_port());
    std::fs::write(tmp.path().join("pw"), ARCHIVE_USER.1).unwrap();
    let cfg = config(
        tmp.path(),
        &storage,
        &format!(
            "mqtt = \"mqtt://127.0.0.1:{port}\"\ndicomweb = \"http://127.0.0.1:{archive_port}/dicom-web\"\n\
             dicomweb_user = \"{}\"\ndicomweb_password_file = \"{}\"",
            ARCHIVE_USER.0,
            tmp.path().join("pw").display()
        ),
    );

    // The broker and the archive are down: nothing is lost, everything waits, exit 1 says so.
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("mqtt: 0 sent, 0 refused, 500 waiting"),
        "{text}"
    );
    assert!(text.contains("cannot connect to the MQTT broker"), "{text}");
    assert!(
        text.contains("dicomweb: 0 sent, 0 refused, 500 waiting"),
        "{text}"
    );

    let _broker = Broker::start(&tmp.path().join("broker"), port, "");
    let orthanc = Orthanc::start(&tmp.path().join("orthanc"), archive_port);
    let sub = Subscriber::start(port, "cxr-edge/v1/+/+/result", "study-archive");
    std::thread::sleep(Duration::from_millis(300));
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("mqtt: 500 sent, 0 refused, 0 waiting"),
        "{text}"
    );
    assert!(
        text.contains("dicomweb: 500 sent, 0 refused, 0 waiting"),
        "{text}"
    );
    // QIDO-RS: one study per record.
    let studies = orthanc.json("/dicom-web/studies?limit=1000");
    assert_eq!(studies.as_array().unwrap().len(), 500);
    sub.wait_for(500, 30);
    let msgs = sub.messages();
    let (order, again) = ids(&msgs);
    assert_eq!(again, 0, "a clean drain sends each record once");
    assert_eq!(order, expected(&names), "every record, in the order made");
    // What leaves the unit: the result and the notice, never a file name or the input's hash.
    let m = &msgs[0];
    assert_eq!(m["schema"], "cxr-edge/result/v1");
    assert_eq!(m["notice"], cxr_edge::NOTICE);
    assert_eq!(m["source"], "inbox");
    assert_eq!(m["error"], "cannot decode <path> bad");
    let raw = sub.got.lock().unwrap()[0].clone();
    assert!(
        !raw.contains("DOE") && !raw.contains(&"0".repeat(40)),
        "{raw}"
    );

    // Nothing left to send: a second drain sends nothing.
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("mqtt: 0 sent, 0 refused, 0 waiting"),
        "{text}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sub.count(), 500);

    // The unit's retained status, as a fleet overview reads it when it subscribes later.
    let status = Subscriber::start(port, "cxr-edge/v1/site-a/unit-1/status", "fleet");
    status.wait_for(1, 10);
    let s = &status.messages()[0];
    assert_eq!(s["state"], "online");
    assert_eq!(s["outbox"], 0);
    assert_eq!(s["model_sha256"], "ab".repeat(32));
    assert!(s["disk_free_mb"].as_u64().unwrap() > 0);

    // `cxr-edge fleet`: the unit, online, seen just now; a second unit that vanished two days
    // ago (its last will and an old `seen`, as the broker keeps them) is marked silent.
    let fleet = |extra: &[&str]| {
        let out = cxr_edge()
            .args([
                "fleet",
                "--mqtt",
                &format!("mqtt://127.0.0.1:{port}"),
                "--config",
            ])
            .arg(&cfg)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = fleet(&["--json"]);
    assert_eq!(code, Some(0), "{text}");
    let unit: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (unit["site"].as_str(), unit["device"].as_str()),
        (Some("site-a"), Some("unit-1"))
    );
    assert_eq!(
        (unit["state"].as_str(), unit["silent"].as_bool()),
        (Some("online"), Some(false))
    );
    assert_eq!(unit["outbox"], 0);
    servers::publish_retained(
        port,
        &[
            (
                "cxr-edge/v1/site-b/unit-9/status",
                r#"{"schema":"cxr-edge/status/v1","state":"offline"}"#,
            ),
            (
                "cxr-edge/v1/site-b/unit-9/seen",
                r#"{"time":"2000-01-01T00:00:00Z"}"#,
            ),
        ],
    );
    let (code, text) = fleet(&[]);
    assert_eq!(code, Some(1), "a silent unit: exit 1\n{text}");
    let row = text
        .lines()
        .find(|l| l.contains("unit-9"))
        .unwrap_or_default();
    assert!(
        row.contains("offline") && row.contains("SILENT > 24 h"),
        "{text}"
    );
    assert!(text.contains("2 unit(s), 1 silent"), "{text}");
    let (code, text) = fleet(&["--site", "site-a"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("unit-9"), "{text}");

    let out = cxr_edge()
        .args(["sync", "--status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mqtt (mqtt://127.0.0.1"), "{text}");
    assert_eq!(
        text.matches("500 sent, 0 waiting, 0 refused").count(),
        2,
        "{text}"
    );
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_broker_restart_and_a_killed_run_mid_drain_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("results");
    let total = 2000;
    let names = make_records(&storage, total);
    let mut broker = Broker::start(&tmp.path().join("broker"), free_port(), "");
    let cfg = config(
        tmp.path(),
        &storage,
        &format!("mqtt = \"mqtt://127.0.0.1:{}\"", broker.port),
    );
    std::fs::create_dir_all(tmp.path().join("inbox")).unwrap();
    let sub = Subscriber::start(broker.port, "cxr-edge/v1/+/+/result", "study-archive");
    std::thread::sleep(Duration::from_millis(300));

    // The service's own sync thread: `run` on an empty watch folder.
    let mut run = cxr_edge()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the first records", 60, || sub.count() >= 100);
    broker.restart();
    let at_restart = sub.count();
    assert!(
        at_restart < total as usize,
        "the drain ended before the restart"
    );
    wait_until("records after the restart", 60, || {
        sub.count() >= at_restart + 300
    });
    let status = Subscriber::start(broker.port, "cxr-edge/v1/site-a/unit-1/status", "fleet");
    wait_until("the unit's status", 10, || {
        status.messages().iter().any(|m| m["state"] == "online")
    });
    // Said again once the model is loaded: the one the service runs, and no camera (a watch
    // folder).
    let shipped =
        cxr_edge::model::Manifest::load(&common::root().join("models/cxr-net.toml")).unwrap();
    let sha = shipped.variant(None).unwrap().1.sha256[..12].to_string();
    wait_until("the status with the model", 60, || {
        status
            .messages()
            .iter()
            .any(|m| m["state"] == "online" && m["camera"] == "none" && m["model"]["sha256"] == sha)
    });
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
    let at_kill = sub.count();
    assert!(at_kill < total as usize, "the drain ended before the kill");
    // The broker tells the fleet: the unit's last will, a retained "offline".
    wait_until("the last will", 60, || {
        status
            .messages()
            .last()
            .is_some_and(|m| m["state"] == "offline")
    });

    // What the killed service had not sent waits in its database for the next start.
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}");
    let until = Instant::now() + Duration::from_secs(30);
    while ids(&sub.messages()).0.len() < total as usize && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (order, again) = ids(&sub.messages());
    assert_eq!(
        order,
        expected(&names),
        "every record, first arrivals in the order made"
    );
    // QoS 1 is "at least once" on both legs: the unit may resend the one record in flight at
    // each interruption (2), and the restarted broker the one it had not yet seen the
    // subscriber acknowledge (1). The id makes each harmless.
    assert!(again <= 3, "{again} records arrived twice");
    eprintln!(
        "{total} records: restart at {at_restart}, kill at {at_kill}, {again} resent; broker log:\n{}",
        broker.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn tls_with_a_study_ca_and_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    issue(&pki, "study-ca", "broker", "IP:127.0.0.1,DNS:localhost");
    issue(&pki, "study-ca", "unit-1", "DNS:unit-1");
    issue(&pki, "rogue-ca", "rogue-unit", "DNS:unit-1");
    let p = |f: &str| pki.join(f).display().to_string();
    let broker = Broker::start(
        &tmp.path().join("broker"),
        free_port(),
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            p("study-ca.pem"),
            p("broker.pem"),
            p("broker.key")
        ),
    );
    let storage = tmp.path().join("results");
    make_records(&storage, 3);
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let with = |extra: &str| config(tmp.path(), &storage, &format!("mqtt = \"{url}\"\n{extra}"));

    // A certificate from another CA: the broker refuses the unit; nothing counts as sent.
    let cfg = with(&format!(
        "ca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        p("study-ca.pem"),
        p("rogue-unit.pem"),
        p("rogue-unit.key")
    ));
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("0 sent, 0 refused, 3 waiting"), "{text}");
    // No client certificate at all: refused too.
    let (code, text) = sync_once(&with(&format!("ca = \"{}\"", p("study-ca.pem"))));
    assert_eq!(code, 1, "{text}");
    // The unit does not trust a broker whose CA it was not given (the system's CAs only).
    let (code, text) = sync_once(&with(&format!(
        "client_cert = \"{}\"\nclient_key = \"{}\"",
        p("unit-1.pem"),
        p("unit-1.key")
    )));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("3 waiting"), "{text}");
    // The study's CA and the unit's own certificate: delivered.
    let (code, text) = sync_once(&with(&format!(
        "ca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        p("study-ca.pem"),
        p("unit-1.pem"),
        p("unit-1.key")
    )));
    assert_eq!(code, 0, "{text}\n{}", broker.log());
    assert!(
        text.contains("mqtt: 3 sent, 0 refused, 0 waiting"),
        "{text}"
    );
}

/// The DICOM JSON value of `tag` (e.g. "0020000D") in a QIDO/WADO answer object.
fn tag(o: &serde_json::Value, t: &str) -> String {
    o[t]["Value"][0].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_archive_gets_each_record_once_as_a_study_with_report_and_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("results");
    let mut names = make_records(&storage, 60);
    // One record with its kept picture, as the kiosk keeps them.
    {
        let log = ResultsLog::open(&storage).unwrap();
        let mut a = Analysis::failed("x", model(), "no film");
        a.input_sha256 = Some("ff".repeat(32));
        a.heatmap = Some(image::RgbImage::from_pixel(
            64,
            48,
            image::Rgb([200, 40, 40]),
        ));
        names.push(log.record(&mut a, Origin::Camera, true).unwrap().name);
    }
    let port = free_port();
    std::fs::write(
        tmp.path().join("archive-password"),
        format!("{}\n", ARCHIVE_USER.1),
    )
    .unwrap();
    let cfg = config(
        tmp.path(),
        &storage,
        &format!(
            "dicomweb = \"http://127.0.0.1:{port}/dicom-web\"\ndicomweb_user = \"{}\"\ndicomweb_password_file = \"{}\"",
            ARCHIVE_USER.0,
            tmp.path().join("archive-password").display()
        ),
    );
    // The archive is down: everything waits.
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("dicomweb: 0 sent, 0 refused, 61 waiting"),
        "{text}"
    );

    let orthanc = Orthanc::start(&tmp.path().join("orthanc"), port);
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}\n{}", orthanc.log());
    assert!(
        text.contains("dicomweb: 61 sent, 0 refused, 0 waiting"),
        "{text}"
    );

    // QIDO-RS: one study per record, a report in each, the picture in the last one.
    let studies = orthanc.json("/dicom-web/studies?limit=1000");
    assert_eq!(studies.as_array().unwrap().len(), 61);
    let instances = orthanc.json("/dicom-web/instances?limit=1000");
    assert_eq!(
        instances.as_array().unwrap().len(),
        62,
        "60 reports, and a report and a picture"
    );

    // A record sent again (the power cut between the archive's answer and the commit): the
    // same UIDs, so the archive still holds one copy.
    let db = rusqlite::Connection::open(storage.join("results.sqlite")).unwrap();
    let undone = db
        .execute(
            "DELETE FROM deliveries WHERE destination = 'dicomweb' AND record_id % 20 = 0",
            [],
        )
        .unwrap();
    assert!(undone >= 3);
    drop(db);
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("dicomweb: {undone} sent")), "{text}");
    let again = orthanc.json("/dicom-web/instances?limit=1000");
    assert_eq!(
        again.as_array().unwrap().len(),
        62,
        "a resend adds no instance"
    );

    // WADO-RS: the last record's study, its picture's pixels and its report's words.
    let pic = instances
        .as_array()
        .unwrap()
        .iter()
        .find(|i| tag(i, "00080016") == "1.2.840.10008.5.1.4.1.1.7")
        .expect("the picture");
    let (study, series, sop) = (
        tag(pic, "0020000D"),
        tag(pic, "0020000E"),
        tag(pic, "00080018"),
    );
    let meta = orthanc.json(&format!(
        "/dicom-web/studies/{study}/series/{series}/instances/{sop}/metadata"
    ));
    assert_eq!(meta[0]["00280010"]["Value"][0], 48, "rows");
    assert_eq!(meta[0]["00280011"]["Value"][0], 64, "columns");
    let series_in_study = orthanc.json(&format!("/dicom-web/studies/{study}/series"));
    assert_eq!(
        series_in_study.as_array().unwrap().len(),
        2,
        "the picture and the report"
    );
    let sr = orthanc.json(&format!("/dicom-web/studies/{study}/instances?00080060=SR"));
    let sr = &sr[0];
    let meta = orthanc.json(&format!(
        "/dicom-web/studies/{study}/series/{}/instances/{}/metadata",
        tag(sr, "0020000E"),
        tag(sr, "00080018")
    ));
    let content = meta[0]["0040A730"]["Value"].as_array().unwrap();
    let texts: Vec<String> = content.iter().map(|i| tag(i, "0040A160")).collect();
    assert_eq!(texts[0], cxr_edge::NOTICE);
    assert!(
        texts.contains(&format!("site-a/unit-1/{}", names.last().unwrap())),
        "{texts:?}"
    );
    // The patient is a pseudonym; nothing of the file or the input's hash.
    let patient = tag(&meta[0], "00100020");
    assert!(patient.starts_with("CXR-"), "{patient}");
    assert!(!meta.to_string().contains(&"ff".repeat(20)));
}
