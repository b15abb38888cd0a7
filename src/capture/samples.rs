//! Sample films compiled into the binary (from `tests/fixtures/samples/`, licences in
//! `LICENSES.md` there), so `cxr-edge classify` with no arguments works on any machine.

/// A sample film bundled in the binary.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// The sample's file name in `tests/fixtures/samples/`.
    pub name: &'static str,
    /// The image file's contents (encoded, not decoded pixels).
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/samples.rs"));

/// All bundled samples, sorted by name.
pub fn all() -> &'static [Sample] {
    SAMPLES
}
