//! Shared by the integration tests that start the `cxr-edge` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the binary under test. When the tests run under qemu-user (ARM builds on an
/// x86 machine, see scripts/target-runner), a child process cannot be an ARM binary by itself
/// (binfmt_misc may be missing), so the runner is named in CXR_EDGE_TEST_RUNNER and put in front.
pub fn command(exe: &Path) -> Command {
    match std::env::var("CXR_EDGE_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().unwrap());
            cmd.args(words).arg(exe);
            cmd
        }
        _ => Command::new(exe),
    }
}

/// The results log in `dir`, oldest first, as JSON (the library's own reader; every record must
/// parse). Not every test binary that shares this module reads the log.
#[allow(dead_code)]
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    cxr_edge::store::read_all(dir)
        .unwrap()
        .into_iter()
        .map(|(_, r)| serde_json::to_value(r.unwrap()).unwrap())
        .collect()
}
