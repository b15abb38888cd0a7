//! The upload page end to end in headless Chromium (Debian's `chromium` package; `.ci/run` and
//! `scripts/setup` install it): pick a file in the page's file input, press Analyse, read what
//! the page shows. Driven over the Chrome DevTools Protocol with a plain WebSocket.
//!
//! Set CXR_EDGE_CHROMIUM to use another browser binary.
#![cfg(all(feature = "serve", feature = "dicom"))]

#[path = "common/client.rs"]
#[allow(dead_code)]
mod client;
mod common;
#[path = "common/dicom.rs"]
mod dicom_files;
#[path = "common/served.rs"]
mod served;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

const T: Duration = Duration::from_secs(90);

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge"))
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium_binary() -> String {
    if let Ok(b) = std::env::var("CXR_EDGE_CHROMIUM") {
        return b;
    }
    for b in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return b.to_string();
        }
    }
    panic!(
        "no Chromium found: install Debian's `chromium` package (scripts/setup does), or set CXR_EDGE_CHROMIUM"
    );
}

/// Start headless Chromium; returns it and the DevTools port.
fn start_chromium(profile: &Path) -> (Killed, u16) {
    let mut child = Command::new(chromium_binary())
        .args([
            "--headless=new",
            "--no-sandbox", // CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let start = Instant::now();
    let mut line = String::new();
    let port = loop {
        line.clear();
        if err.read_line(&mut line).unwrap_or(0) == 0 || start.elapsed() > T {
            panic!("Chromium did not start its DevTools server");
        }
        if let Some(rest) = line
            .trim()
            .strip_prefix("DevTools listening on ws://127.0.0.1:")
        {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so Chromium never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = err.read_to_end(&mut sink);
    });
    (Killed(child), port)
}

/// The WebSocket address of the first page target.
fn page_socket(port: u16) -> String {
    let start = Instant::now();
    loop {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let r = client::request(addr, "GET", "/json/list", None, None, T);
        if let Ok(r) = r {
            let targets: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            if let Some(url) = targets.as_array().and_then(|a| {
                a.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            }) {
                return url.to_string();
            }
        }
        assert!(start.elapsed() < T, "Chromium has no page target");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
}

impl Cdp {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, js: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": js, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, js: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(js);
            if v.as_bool() != Some(false) && !v.is_null() {
                return v;
            }
            assert!(start.elapsed() < T, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Load the page, put `file` in the file input, press Analyse, wait for the answer.
    fn analyse(&mut self, url: &str, file: &Path) -> Value {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for(
            "the page",
            "document.readyState === 'complete' && !!document.getElementById('go')",
        );
        let doc = self.call("DOM.getDocument", json!({}));
        let root = doc["root"]["nodeId"].clone();
        let input = self.call(
            "DOM.querySelector",
            json!({ "nodeId": root, "selector": "#file" }),
        );
        self.call(
            "DOM.setFileInputFiles",
            json!({ "files": [file.display().to_string()], "nodeId": input["nodeId"] }),
        );
        self.eval("document.getElementById('go').click()");
        self.wait_for(
            "the result",
            "['Done.', 'Not analysed.'].includes(document.getElementById('status').textContent)",
        );
        self.wait_for(
            "the heatmap picture",
            "document.getElementById('heatmap').src.startsWith('blob:') && document.getElementById('heatmap').complete",
        );
        self.eval(
            "({ title: document.getElementById('title').textContent,
                banner: document.getElementById('banner').textContent,
                bars: [...document.querySelectorAll('#bars .bar')].map(b => b.textContent),
                summary: document.getElementById('summary').textContent,
                notice: document.getElementById('notice').textContent,
                film: document.getElementById('film').naturalWidth,
                heatmap: document.getElementById('heatmap').naturalWidth })",
        )
    }
}

#[test]
fn the_upload_page_shows_the_result_and_a_dicom_matches_its_png() {
    let dir = tempfile::tempdir().unwrap();
    let server = served::serve("", &[]);
    let addr = server.addr;
    let (_browser, port) = start_chromium(&dir.path().join("profile"));
    let (ws, _) = tungstenite::connect(page_socket(port)).unwrap();
    let mut cdp = Cdp { ws, next: 0 };
    cdp.call("Page.enable", json!({}));
    cdp.call("DOM.enable", json!({}));

    let png = common::root().join("tests/fixtures/samples/nih-normal-1.png");
    let (w, h, g) = dicom_files::sample_grey("nih-normal-1.png");
    let dcm = dir.path().join("nih-normal-1.dcm");
    std::fs::write(&dcm, dicom_files::write(&dicom_files::Spec::film(w, h, g))).unwrap();

    // What the command line says about the same film.
    let out = common::command(&exe())
        .args(["classify", "--json"])
        .arg(&png)
        .output()
        .unwrap();
    let cli: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();

    let url = format!("http://{addr}/");
    let from_png = cdp.analyse(&url, &png);
    assert_eq!(from_png["title"], cli["result"], "{from_png:#}");
    assert_eq!(from_png["summary"], cli["decision"]["summary"]);
    assert_eq!(from_png["banner"], "RESEARCH USE ONLY - NOT A DIAGNOSIS");
    assert_eq!(from_png["notice"], cxr_edge::NOTICE);
    assert_eq!(from_png["bars"].as_array().unwrap().len(), 4);
    assert!(from_png["film"].as_u64().unwrap() > 0 && from_png["heatmap"].as_u64().unwrap() > 0);

    // `CXR_EDGE_SCREENSHOT=docs/serve-page.png cargo test --test browser` refreshes the
    // README's picture of the page.
    if let Ok(path) = std::env::var("CXR_EDGE_SCREENSHOT") {
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1100, "height": 760, "deviceScaleFactor": 1, "mobile": false }),
        );
        let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" }));
        let b64 = shot["data"].as_str().unwrap();
        std::fs::write(common::root().join(path), base64_decode(b64)).unwrap();
    }

    let from_dicom = cdp.analyse(&url, &dcm);
    assert_eq!(from_dicom["title"], from_png["title"]);
    assert_eq!(from_dicom["bars"], from_png["bars"]);
    assert_eq!(from_dicom["summary"], from_png["summary"]);
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
