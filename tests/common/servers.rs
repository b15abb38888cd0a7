//! Real servers for the sync tests, from Debian's packages, on loopback with a throwaway
//! config and port each: the MQTT broker `mosquitto` (and a subscriber), the DICOM archive
//! `orthanc` with its DICOMweb plugin; and a test PKI made with `openssl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn mosquitto_bin() -> PathBuf {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A mosquitto on loopback; killed when dropped. `extra` goes into its listener section.
pub struct Broker {
    dir: PathBuf,
    pub port: u16,
    extra: String,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path, port: u16, extra: &str) -> Broker {
        let mut b = Broker {
            dir: dir.to_path_buf(),
            port,
            extra: extra.to_string(),
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        self.stop();
        std::fs::create_dir_all(&self.dir).unwrap();
        let conf = self.dir.join("mosquitto.conf");
        // Persistence on, so a subscriber's session and its queued messages survive a restart
        // of the broker, as they would on a study's server. One QoS 1 message in flight to each
        // client: after a restart the broker sends again what the subscriber had not yet
        // acknowledged (at least once, on that leg too), and with one in flight that is at most
        // one message, so the test can tell the unit's resends from the broker's.
        let mut text = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nmax_inflight_messages 1\nlog_dest file {}/broker.log\n\
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

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: mosquitto saves its persistence file, as a server being restarted does.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
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
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    pub fn start(port: u16, topic: &str, id: &str) -> Subscriber {
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

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn messages(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(s).unwrap())
            .collect()
    }

    pub fn wait_for(&self, n: usize, secs: u64) {
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

pub fn openssl(dir: &Path, args: &[&str]) {
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
pub fn issue(dir: &Path, ca: &str, cert: &str, san: &str) {
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

pub fn orthanc_bin() -> (PathBuf, PathBuf) {
    let bin = std::env::var("CXR_EDGE_ORTHANC")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/sbin/Orthanc"));
    let plugin = PathBuf::from("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
    assert!(
        bin.is_file() && plugin.is_file(),
        "no Orthanc with its DICOMweb plugin: install Debian's `orthanc` and `orthanc-dicomweb` (scripts/setup --tests does), or set CXR_EDGE_ORTHANC"
    );
    (bin, plugin)
}

/// An Orthanc on loopback with the DICOMweb plugin and one user; killed when dropped.
pub struct Orthanc {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

pub const ARCHIVE_USER: (&str, &str) = ("unit-1", "archive-secret");

impl Orthanc {
    pub fn start(dir: &Path, port: u16) -> Orthanc {
        let (bin, plugin) = orthanc_bin();
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("orthanc.json");
        let db = dir.join("db");
        let config = serde_json::json!({
            "Name": "cxr-edge-test", "StorageDirectory": db, "IndexDirectory": db,
            "HttpPort": port, "DicomPort": free_port(), "RemoteAccessAllowed": false,
            "AuthenticationEnabled": true,
            "RegisteredUsers": { ARCHIVE_USER.0: ARCHIVE_USER.1 },
            "Plugins": [plugin], "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        });
        std::fs::write(&conf, config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("orthanc.log")).unwrap();
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start Orthanc");
        let o = Orthanc {
            dir: dir.to_path_buf(),
            port,
            child: Some(child),
        };
        let until = Instant::now() + Duration::from_secs(30);
        while o.get("/system").map(|r| r.status) != Some(200) {
            assert!(
                Instant::now() < until,
                "Orthanc did not answer: {}",
                o.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        o
    }

    pub fn get(&self, path: &str) -> Option<crate::client::Reply> {
        let auth = format!(
            "Basic {}",
            base64(&format!("{}:{}", ARCHIVE_USER.0, ARCHIVE_USER.1))
        );
        crate::client::request_with(
            ([127, 0, 0, 1], self.port).into(),
            "GET",
            path,
            &[
                ("Authorization", &auth),
                ("Accept", "application/dicom+json"),
            ],
            None,
            Duration::from_secs(30),
        )
        .ok()
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).expect("Orthanc answers");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("orthanc.log")).unwrap_or_default()
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

pub fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Publish `messages` (topic, payload) retained at QoS 1, as another unit would have.
pub fn publish_retained(port: u16, messages: &[(&str, &str)]) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let (client, mut conn) = Client::new(MqttOptions::new("other-unit", "127.0.0.1", port), 16);
    for (t, p) in messages {
        client
            .publish(*t, QoS::AtLeastOnce, true, p.as_bytes().to_vec())
            .unwrap();
    }
    let (mut acked, mut bye) = (0, false);
    for ev in conn.iter() {
        match ev.expect("the broker answers") {
            Event::Incoming(Packet::PubAck(_)) => acked += 1,
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
        if acked == messages.len() && !bye {
            client.disconnect().unwrap();
            bye = true;
        }
    }
}
