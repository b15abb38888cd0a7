//! On aarch64 only: tract chose the kernel family that scripts/test-arm asked the emulated CPU
//! for, so "tests pass under cortex-a72 and cortex-a76" really means both families ran our model.
#![cfg(target_arch = "aarch64")]

use tract_onnx::prelude::tract_linalg;

#[test]
fn tract_sees_the_expected_cpu_features() {
    let dot = tract_linalg::arm64::has_dotprod();
    let fp16 = tract_linalg::arm64::has_fp16();
    eprintln!("tract on aarch64: dot-product {dot}, fp16 {fp16}");
    match std::env::var("CXR_EDGE_EXPECT_DOTPROD").as_deref() {
        Ok("yes") => assert!(dot, "expected the SDOT int8 kernels (Pi 5 class core)"),
        Ok("no") => assert!(!dot, "expected the SMLAL int8 kernels (Pi 4 class core)"),
        _ => {} // a native run on a board: whatever the board has is right
    }
}
