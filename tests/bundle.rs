//! Signed model bundles end to end, through the binary: `model keygen`, `sign`, `install`,
//! `status`, `rollback`; keys and signatures shared with Debian's `minisign` tool; and the
//! kiosk (`run`) taking a bundle from its update folder, from an https address (`openssl
//! s_server`) and from a retained message on a real mosquitto, then reloading its model.
//!
//! What is checked: a tampered, unsigned or foreign-key bundle is refused and the unit keeps
//! its model; a signed bundle whose model answers differently on the sample films is rolled
//! back and not taken again; an older serial (a replay) is refused; rollback goes back to the
//! previous bundle; records made after a switch carry the new model file's sha256.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxr_edge::model::bundle::sign::{assemble, load_secret_key};
use cxr_edge::model::bundle::EXPECTED;

#[path = "common/client.rs"]
#[allow(dead_code)]
mod client;
#[allow(dead_code)]
mod common;
#[path = "common/served.rs"]
mod served;
#[path = "common/servers.rs"]
#[allow(dead_code)]
mod servers;

fn cxr_edge() -> Command {
    common::command(&PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
}

fn run_ok(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A copy of the shipped model whose default variant is `variant`, so that records say which
/// one the kiosk ran (the two files have different sha256s).
fn model_copy(dir: &Path, variant: &str) -> PathBuf {
    let m = dir.join(format!("model-{variant}"));
    std::fs::create_dir_all(&m).unwrap();
    let root = common::root().join("models");
    for f in std::fs::read_dir(&root).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "onnx") {
            std::fs::copy(&f, m.join(f.file_name().unwrap())).unwrap();
        }
    }
    let text = std::fs::read_to_string(root.join("cxr-net.toml")).unwrap();
    let text = text.replace(
        "default_variant = \"int8\"",
        &format!("default_variant = \"{variant}\""),
    );
    std::fs::write(m.join("cxr-net.toml"), text).unwrap();
    m.join("cxr-net.toml")
}

struct Study {
    dir: PathBuf,
}

impl Study {
    fn new(dir: &Path) -> Study {
        let (code, text) = run_ok(cxr_edge().args(["model", "keygen"]).arg(dir.join("study")));
        assert_eq!(code, 0, "{text}");
        Study {
            dir: dir.to_path_buf(),
        }
    }

    fn key(&self) -> PathBuf {
        self.dir.join("study.key")
    }

    fn public(&self) -> PathBuf {
        self.dir.join("study.pub")
    }

    fn sign(&self, manifest: &Path, serial: u64) -> PathBuf {
        let out = self.dir.join(format!("bundle-{serial}.cxrb"));
        let (code, text) = run_ok(
            cxr_edge()
                .args(["model", "sign", "--manifest"])
                .arg(manifest)
                .arg("--key")
                .arg(self.key())
                .args(["--serial", &serial.to_string(), "--out"])
                .arg(&out),
        );
        assert_eq!(code, 0, "{text}");
        out
    }

    /// `model install` (or another `model` subcommand) against the store in `store`.
    fn model(&self, store: &Path, args: &[&str]) -> (i32, String) {
        let mut c = cxr_edge();
        c.arg("model").args(args);
        c.arg("--dir")
            .arg(store)
            .arg("--public-key")
            .arg(self.public());
        // no /etc/cxr-edge/config.toml of the machine running the tests
        c.arg("--config").arg(self.dir.join("none.toml"));
        std::fs::write(self.dir.join("none.toml"), "").unwrap();
        run_ok(&mut c)
    }
}

fn current(store: &Path) -> Option<String> {
    std::fs::read_link(store.join("current"))
        .ok()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
}

/// The members of a bundle file.
fn members(file: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(file).unwrap();
    let mut a = tar::Archive::new(&bytes[..]);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut d).unwrap();
            (name, d)
        })
        .collect()
}

fn write_tar(file: &Path, m: &[(String, Vec<u8>)]) {
    let mut t = tar::Builder::new(Vec::new());
    for (n, d) in m {
        cxr_edge::model::bundle::sign::append(&mut t, n, d).unwrap();
    }
    std::fs::write(file, t.into_inner().unwrap()).unwrap();
}

#[test]
fn tampered_unsigned_replayed_and_failing_bundles_leave_the_model_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let study = Study::new(tmp.path());
    let store = tmp.path().join("store");
    let v1 = study.sign(&model_copy(tmp.path(), "int8"), 1);

    // A good bundle installs, checked on the sample films.
    let (code, text) = study.model(&store, &["install", v1.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("installed bundle"), "{text}");
    let first = current(&store).expect("current");
    let (code, text) = study.model(&store, &["status"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("current: bundle {first}")), "{text}");

    let refused = |file: &Path, words: &str| {
        let (code, text) = study.model(&store, &["install", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{text}");
        assert!(text.contains(words), "wanted {words:?} in: {text}");
        assert_eq!(current(&store).as_deref(), Some(first.as_str()), "{text}");
    };

    // One byte of the model file changed after signing.
    let v2 = study.sign(&model_copy(tmp.path(), "f32"), 2);
    let mut m = members(&v2);
    let onnx = m.iter_mut().find(|(n, _)| n == "cxr-net.onnx").unwrap();
    let mid = onnx.1.len() / 2;
    onnx.1[mid] ^= 0x40;
    let tampered = tmp.path().join("tampered.cxrb");
    write_tar(&tampered, &m);
    refused(&tampered, "not the one that was signed");

    // No signature; a signature by another key.
    let m: Vec<_> = members(&v2)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".minisig"))
        .collect();
    let unsigned = tmp.path().join("unsigned.cxrb");
    write_tar(&unsigned, &m);
    refused(&unsigned, "not signed");
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = Study::new(&other_dir).sign(&model_copy(&other_dir, "f32"), 9);
    refused(&other, "does not verify");

    // Signed by the study, but its model does not answer on the samples as the signer's did
    // (as a board whose kernels compute differently would): installed aside, rolled back.
    let sk = load_secret_key(&study.key(), None).unwrap();
    let mut m: Vec<_> = members(&v2)
        .into_iter()
        .filter(|(n, _)| n.ends_with(".onnx") || n == "model.toml" || n == EXPECTED)
        .collect();
    let exp = m.iter_mut().find(|(n, _)| n == EXPECTED).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&exp.1).unwrap();
    for a in json["answers"].as_array_mut().unwrap() {
        let p = a["probs"][0].as_f64().unwrap();
        a["probs"][0] = serde_json::json!(if p > 0.5 { p - 0.3 } else { p + 0.3 });
    }
    exp.1 = serde_json::to_vec(&json).unwrap();
    let failing = tmp.path().join("failing.cxrb");
    std::fs::write(&failing, assemble(m, "cxr-net", "1", 3, &sk).unwrap()).unwrap();
    refused(&failing, "rolled back");
    let bundles: Vec<_> = std::fs::read_dir(store.join("bundles")).unwrap().collect();
    assert_eq!(bundles.len(), 1, "the failed bundle's files are removed");
    // ... and not tried again, wherever it comes from.
    refused(&failing, "was rolled back on this unit");

    // A newer bundle installs; then the older one (a replay) is refused.
    let (code, text) = study.model(&store, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let second = current(&store).unwrap();
    assert_ne!(first, second);
    let v0 = study.sign(&model_copy(tmp.path(), "int8"), 1);
    let (code, text) = study.model(&store, &["install", v0.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not newer"), "{text}");

    // The installed files are the service's to write: one changed after the install makes the
    // bundle unused (the packaged model runs) until it is installed again.
    let installed = store.join("bundles").join(&second).join("cxr-net.onnx");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&installed, &bytes).unwrap();
    let (code, text) = study.model(&store, &["status"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("NOT USED") && text.contains("changed after it was installed"),
        "{text}"
    );
    bytes[1000] ^= 1;
    std::fs::write(&installed, &bytes).unwrap();
    let (_, text) = study.model(&store, &["status"]);
    assert!(!text.contains("NOT USED"), "{text}");

    // Rollback: back to the first bundle, then to the packaged model.
    let (code, text) = study.model(&store, &["rollback"]);
    assert_eq!(code, 0, "{text}");
    assert_eq!(current(&store).as_deref(), Some(first.as_str()), "{text}");
    let (code, text) = study.model(&store, &["rollback"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("packaged model"), "{text}");
    assert_eq!(current(&store), None);
    // The bundle rolled back by hand is not taken again without --force.
    let (code, text) = study.model(&store, &["install", v2.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    let (code, text) = study.model(&store, &["install", "--force", v2.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
}

/// Debian's `minisign` tool: its keys sign bundles here, and it verifies our signatures.
#[test]
fn keys_and_signatures_are_minisigns_own() {
    let Some(minisign) = ["/usr/bin/minisign", "/usr/local/bin/minisign"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        panic!(
            "no minisign found: install Debian's `minisign` package (scripts/setup --tests does)"
        );
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A key without a password (-W), and one protected by a password (read from stdin when
    // there is no terminal), as a coordinator would keep it.
    let st = Command::new(minisign)
        .args(["-G", "-W", "-p"])
        .arg(d.join("w.pub"))
        .arg("-s")
        .arg(d.join("w.key"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut g = Command::new(minisign)
        .args(["-G", "-p"])
        .arg(d.join("p.pub"))
        .arg("-s")
        .arg(d.join("p.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(g.stdin.as_mut().unwrap(), b"pass phrase\npass phrase\n").unwrap();
    assert!(g.wait().unwrap().success());
    std::fs::write(d.join("pw"), "pass phrase\n").unwrap();
    for (stem, serial, pw) in [("w", "5", false), ("p", "6", true)] {
        let bundle = d.join(format!("{stem}.cxrb"));
        let mut c = cxr_edge();
        c.args(["model", "sign", "--manifest"])
            .arg(common::root().join("models/cxr-net.toml"))
            .arg("--key")
            .arg(d.join(format!("{stem}.key")))
            .args(["--serial", serial, "--out"])
            .arg(&bundle);
        if pw {
            c.arg("--password-file").arg(d.join("pw"));
        }
        let (code, text) = run_ok(&mut c);
        assert_eq!(code, 0, "{text}");
        for (n, data) in members(&bundle) {
            if n == "bundle.toml" || n == "bundle.toml.minisig" {
                std::fs::write(d.join(&n), data).unwrap();
            }
        }
        let out = Command::new(minisign)
            .args(["-V", "-m"])
            .arg(d.join("bundle.toml"))
            .arg("-p")
            .arg(d.join(format!("{stem}.pub")))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains(&format!("cxr-edge bundle cxr-net 1 serial {serial}")),
            "{said}"
        );
    }
}

/// A kiosk running from a watch folder, with `[updates]` as given.
struct Kiosk {
    child: Child,
    inbox: PathBuf,
    storage: PathBuf,
    log: PathBuf,
}

impl Kiosk {
    fn start(dir: &Path, study: &Study, updates: &str, extra: &str) -> Kiosk {
        let inbox = dir.join("inbox");
        let storage = dir.join("results");
        std::fs::create_dir_all(&inbox).unwrap();
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "source = \"dir:{}\"\ndisplay = \"none\"\npoll_ms = 200\n[storage]\ndir = \"{}\"\n\
                 {extra}\n[updates]\ndir = \"{}\"\npublic_key = \"{}\"\n{updates}\n",
                inbox.display(),
                storage.display(),
                dir.join("store").display(),
                study.public().display(),
            ),
        )
        .unwrap();
        let log = dir.join("run.log");
        let child = cxr_edge()
            .args(["run", "--config"])
            .arg(&cfg)
            .env_remove("CXR_EDGE_MODEL")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Kiosk {
            child,
            inbox,
            storage,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Put a sample film in the inbox and wait for its record; the model sha it names.
    fn analyse(&self, name: &str) -> String {
        let before = records(&self.storage).len();
        std::fs::copy(
            common::root().join("tests/fixtures/samples/kermany-normal-1.png"),
            self.inbox.join(name),
        )
        .unwrap();
        wait_until(
            "a record",
            120,
            || records(&self.storage).len() > before,
            &|| self.log(),
        );
        records(&self.storage).pop().unwrap()
    }
}

impl Kiosk {
    /// Wait for the kiosk to say it reloads, then for a film recorded with the model whose
    /// file's sha256 starts with `sha` (the film in hand may still get the old one). Films are
    /// named `<prefix>1.png`, `<prefix>2.png`...
    fn reloads_to(&self, sha: &str, prefix: &str) {
        let log = || self.log();
        wait_until("reload", 60, || log().contains("reloading the model"), &log);
        let end = Instant::now() + Duration::from_secs(120);
        let mut n = 0;
        loop {
            n += 1;
            if self.analyse(&format!("{prefix}{n}.png")) == sha {
                return;
            }
            assert!(Instant::now() < end, "still the old model; log:\n{}", log());
        }
    }
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The model sha256 (12 digits) of each record in the log, oldest first.
fn records(storage: &Path) -> Vec<String> {
    if !storage.join("results.sqlite").exists() {
        return Vec::new();
    }
    cxr_edge::store::read_all(storage)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .map(|r| r.record.model.sha256)
        .collect()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool, log: &dyn Fn() -> String) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < end,
            "no {what} within {secs} s; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn sha12(file: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(file).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect::<String>()[..12].to_string()
}

#[test]
fn the_kiosk_takes_a_bundle_from_its_folder_and_reloads() {
    let tmp = tempfile::tempdir().unwrap();
    let study = Study::new(tmp.path());
    let bundle = study.sign(&model_copy(tmp.path(), "f32"), 1);
    let folder = tmp.path().join("updates");
    std::fs::create_dir_all(&folder).unwrap();
    let k = Kiosk::start(
        tmp.path(),
        &study,
        &format!("folder = \"{}\"", folder.display()),
        "",
    );
    let packaged = k.analyse("a.png");
    assert_eq!(
        packaged,
        sha12(&common::root().join("models/cxr-net.int8.onnx"))
    );
    std::fs::copy(&bundle, folder.join("new.cxrb")).unwrap();
    wait_until(
        "bundle taken",
        120,
        || folder.join("done/new.cxrb.txt").exists(),
        &|| k.log(),
    );
    let f32_sha = sha12(&common::root().join("models/cxr-net.onnx"));
    k.reloads_to(&f32_sha, "b");
    // A bad bundle dropped in: refused, noted, and the kiosk keeps the new model.
    std::fs::write(folder.join("bad.cxrb"), b"not a bundle").unwrap();
    wait_until(
        "refusal",
        60,
        || folder.join("refused/bad.cxrb.txt").exists(),
        &|| k.log(),
    );
    let note = std::fs::read_to_string(folder.join("refused/bad.cxrb.txt")).unwrap();
    assert!(note.contains("refused"), "{note}");
    assert!(current(&tmp.path().join("store")).is_some());
}

#[test]
fn the_kiosk_takes_a_bundle_from_https_and_from_a_retained_mqtt_message() {
    let tmp = tempfile::tempdir().unwrap();
    let study = Study::new(tmp.path());
    let f32_sha = sha12(&common::root().join("models/cxr-net.onnx"));

    // https: openssl's own web server, with a certificate from a test CA.
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    servers::issue(&www, "ca", "server", "DNS:localhost,IP:127.0.0.1");
    let bundle = study.sign(&model_copy(tmp.path(), "f32"), 1);
    std::fs::copy(&bundle, www.join("site.cxrb")).unwrap();
    let port = servers::free_port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(port.to_string())
        .args(["-cert", "server.pem", "-key", "server.key"])
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    wait_until("openssl s_server", 30, up, &String::new);
    let dir = tmp.path().join("https-unit");
    std::fs::create_dir_all(&dir).unwrap();
    let k = Kiosk::start(
        &dir,
        &study,
        &format!(
            "url = \"https://127.0.0.1:{port}/site.cxrb\"\nca = \"{}\"",
            www.join("ca.pem").display()
        ),
        "",
    );
    wait_until(
        "https bundle",
        120,
        || current(&dir.join("store")).is_some(),
        &|| k.log(),
    );
    k.reloads_to(&f32_sha, "h");
    drop(k);
    let _ = server.kill();
    let _ = server.wait();

    // MQTT: the bundle retained on the site's model topic of a real mosquitto.
    let port = servers::free_port();
    let _broker = servers::Broker::start(&tmp.path().join("broker"), port, "");
    publish_retained(
        port,
        "cxr-edge/v1/site-a/model",
        std::fs::read(&bundle).unwrap(),
    );
    let dir = tmp.path().join("mqtt-unit");
    std::fs::create_dir_all(&dir).unwrap();
    let k = Kiosk::start(
        &dir,
        &study,
        "mqtt = true",
        &format!(
            "[sync]\nsite = \"site-a\"\ndevice = \"unit-9\"\nmqtt = \"mqtt://127.0.0.1:{port}\""
        ),
    );
    wait_until(
        "mqtt bundle",
        120,
        || current(&dir.join("store")).is_some(),
        &|| k.log(),
    );
    assert!(
        k.log().contains("mqtt topic cxr-edge/v1/site-a/model"),
        "{}",
        k.log()
    );
}

fn publish_retained(port: u16, topic: &str, payload: Vec<u8>) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut o = MqttOptions::new("coordinator", "127.0.0.1", port);
    o.set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut conn) = Client::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, true, payload)
        .unwrap();
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
            break;
        }
        ev.unwrap();
    }
    client.disconnect().ok();
}

#[test]
fn the_upload_page_switches_to_an_installed_bundle_between_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let study = Study::new(tmp.path());
    let store = tmp.path().join("store");
    let bundle = study.sign(&model_copy(tmp.path(), "f32"), 1);
    let s = served::serve(
        &format!(
            "\n[updates]\ndir = \"{}\"\npublic_key = \"{}\"",
            store.display(),
            study.public().display()
        ),
        &[],
    );
    let film =
        std::fs::read(common::root().join("tests/fixtures/samples/kermany-normal-1.png")).unwrap();
    let upload = || {
        let r = client::post_file(s.addr, None, &film, None, Duration::from_secs(120)).unwrap();
        r.json()["model"]["sha256"].as_str().unwrap().to_string()
    };
    assert_eq!(
        upload(),
        sha12(&common::root().join("models/cxr-net.int8.onnx"))
    );
    let (code, text) = study.model(&store, &["install", bundle.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let f32_sha = sha12(&common::root().join("models/cxr-net.onnx"));
    let end = Instant::now() + Duration::from_secs(90);
    while upload() != f32_sha {
        assert!(Instant::now() < end, "the server kept its old model");
        std::thread::sleep(Duration::from_secs(2));
    }
    let health = client::request(
        s.addr,
        "GET",
        "/api/health",
        None,
        None,
        Duration::from_secs(10),
    )
    .unwrap()
    .json();
    assert_eq!(health["model"]["sha256"], f32_sha.as_str());
}
