//! `cxr-edge sync` and the sync thread of `run` against a real MQTT broker: Debian's
//! `mosquitto`, started here on loopback with a throwaway config and port (scripts/setup
//! --tests installs it), and a subscriber that reads what arrives.
//!
//! What is checked: records made while the broker is down all arrive once it is up, each id
//! once, in the order they were made; a broker restarted mid-drain and a `run` killed with
//! SIGKILL mid-drain lose nothing (and resend at most the one record in flight each time);
//! TLS with a test CA, a wrong client certificate refused. Set CXR_EDGE_MOSQUITTO to use
//! another broker binary.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cxr_edge::analysis::Analysis;
use cxr_edge::store::{Origin, ResultsLog};

#[allow(dead_code)] // root(): not needed here
mod common;

fn cxr_edge() -> Command {
    common::command(&PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
}

fn mosquitto_bin() -> PathBuf {
    if let Ok(b) = std::env::var("CXR_EDGE_MOSQUITTO") {
        return b.into();
    }
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!("no mosquitto found: install Debian's `mosquitto` package (scripts/setup --tests does), or set CXR_EDGE_MOSQUITTO");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto on loopback; killed when dropped. `extra` goes into its listener section.
struct Broker {
    dir: PathBuf,
    port: u16,
    extra: String,
    child: Option<Child>,
}

impl Broker {
    fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let mut b = Broker {
            dir: dir.to_path_buf(),
            port,
            extra: extra.to_string(),
            child: None,
        };
        b.restart();
        b
    }

    fn restart(&mut self) {
        self.stop();
        std::fs::create_dir_all(&self.dir).unwrap();
        let conf = self.dir.join("mosquitto.conf");
        // Persistence on, so a subscriber's session and its queued messages survive a restart
        // of the broker, as they would on a study's server.
        let mut text = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nlog_dest file {}/broker.log\n\
             listener {} 127.0.0.1\n{}\n",
            self.dir.display(),
            self.dir.display(),
            self.port,
            self.extra
        );
        // As root mosquitto would switch to its own user, who cannot read this folder.
        if unsafe { libc::geteuid() } == 0 {
            text.push_str("user root\n");
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "mosquitto did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: mosquitto saves its persistence file, as a server being restarted does.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A subscriber with a persistent session (QoS 1): every payload that reaches it, in order,
/// across broker restarts.
struct Subscriber {
    got: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn start(port: u16, topic: &str, id: &str) -> Subscriber {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(o, 64);
        client.subscribe(topic, QoS::AtLeastOnce).unwrap();
        let sink = got.clone();
        let topic = topic.to_string();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::Publish(p))) => sink
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&p.payload).into_owned()),
                    Ok(Event::Incoming(Packet::ConnAck(a))) if !a.session_present => {
                        // A new session (first connection): subscribe again.
                        let _ = client.try_subscribe(&topic, QoS::AtLeastOnce);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Subscriber { got }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn messages(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    fn wait_for(&self, n: usize, secs: u64) {
        let until = Instant::now() + Duration::from_secs(secs);
        while self.count() < n {
            assert!(
                Instant::now() < until,
                "only {} of {n} messages arrived",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
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
    let port = free_port();
    let cfg = config(
        tmp.path(),
        &storage,
        &format!("mqtt = \"mqtt://127.0.0.1:{port}\""),
    );

    // The broker is down: nothing is lost, everything waits, exit 1 says so.
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("mqtt: 0 sent, 0 refused, 500 waiting"),
        "{text}"
    );
    assert!(text.contains("cannot connect to the MQTT broker"), "{text}");

    let _broker = Broker::start(&tmp.path().join("broker"), port, "");
    let sub = Subscriber::start(port, "cxr-edge/v1/+/+/result", "study-archive");
    std::thread::sleep(Duration::from_millis(300));
    let (code, text) = sync_once(&cfg);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("mqtt: 500 sent, 0 refused, 0 waiting"),
        "{text}"
    );
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

    let out = cxr_edge()
        .args(["sync", "--status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("500 sent, 0 waiting, 0 refused"), "{text}");
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
    // QoS 1 is "at least once": each interruption may resend the one record in flight, which
    // the id makes harmless.
    assert!(again <= 2, "{again} records arrived twice");
    eprintln!(
        "{total} records: restart at {at_restart}, kill at {at_kill}, {again} resent; broker log:\n{}",
        broker.log().lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/setup --tests installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name`, and a certificate `cert` signed by it with the subject alternative names `san`.
fn issue(dir: &Path, ca: &str, cert: &str, san: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join(format!("{ca}.pem")).exists() {
        let (k, c, s) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("/CN={ca}"),
        );
        let mut a = vec![
            "req", "-x509", "-days", "2", "-subj", &s, "-keyout", &k, "-out", &c,
        ];
        a.extend(ec);
        openssl(dir, &a);
    }
    let (k, r, s) = (
        format!("{cert}.key"),
        format!("{cert}.csr"),
        format!("/CN={cert}"),
    );
    let mut a = vec!["req", "-subj", &s, "-keyout", &k, "-out", &r];
    a.extend(ec);
    openssl(dir, &a);
    let ext = dir.join(format!("{cert}.ext"));
    std::fs::write(&ext, format!("subjectAltName={san}\n")).unwrap();
    let (c, cak, cac) = (
        format!("{cert}.pem"),
        format!("{ca}.key"),
        format!("{ca}.pem"),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &r,
            "-CA",
            &cac,
            "-CAkey",
            &cak,
            "-CAcreateserial",
            "-out",
            &c,
            "-extfile",
            ext.to_str().unwrap(),
        ],
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
