//! `cxr-edge serve` started for a test on a free loopback port, with its own config and results
//! folder. Include with `#[path = "common/served.rs"] mod served;` beside `mod common;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};

/// A running server; killed when dropped.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub results: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `serve` with `extra` lines in its [serve] section and `args` after `serve`.
pub fn serve(extra: &str, args: &[&str]) -> Served {
    serve_with("", extra, args)
}

/// [`serve`] with `top` lines at the top of the config (keys outside any table).
pub fn serve_with(top: &str, extra: &str, args: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{top}\n[storage]\ndir = \"{}\"\n\n[serve]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
            results.display()
        ),
    )
    .unwrap();
    let mut child = super::common::command(&PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
        .arg("serve")
        .args(args)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading, so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in '{line}'"))
        .parse()
        .unwrap();
    Served {
        child,
        addr,
        results,
        _dir: dir,
    }
}
