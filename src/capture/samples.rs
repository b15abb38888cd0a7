//! Sample films compiled into the binary (from `tests/fixtures/samples/`, licences in
//! `LICENSES.md` there), so `cxr-edge classify` with no arguments works on any machine.

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

/// All bundled samples, sorted by name.
pub fn all() -> &'static [Sample] {
    SAMPLES
}
