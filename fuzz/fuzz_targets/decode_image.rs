#![no_main]
//! See tests/common/fuzz_targets.rs: the body is shared with the stable corpus replay.

#[path = "../../tests/common/fuzz_targets.rs"]
mod fuzz_targets;

libfuzzer_sys::fuzz_target!(
    init: fuzz_targets::fuzzing_init(),
    |data: &[u8]| fuzz_targets::decode_image_target(data)
);
