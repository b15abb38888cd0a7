//! The tract-linalg fork in `third_party/tract-linalg` (issue 22; `third_party/README.md`):
//! that the build uses it, and that its x86 kernels keep the fix it carries.
//!
//! tract-linalg 0.23.9's AVX2 int8 kernel loaded A with a legacy-SSE `movq` inside its inner
//! loop. After the first VEX instruction has dirtied the upper register halves, every legacy
//! SSE instruction pays for them (a state transition on older Intel cores, a merge with the
//! upper half on newer ones): on this project's development machine (AMD EPYC, AVX2 without
//! VNNI) the int8 file took 180 ms instead of 14 ms. The templates are assembled by the fork's
//! build script, so the rule is checked on them: no legacy-SSE *move* names an xmm register.
//! (Other legacy instructions are left in epilogues that rely on them keeping the upper half:
//! `pinsrd` building a vector in two halves, `extractps` for stores; they run once per tile,
//! not per k.) Research use only - not a diagnosis.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn templates(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            templates(&p, out);
        } else if p.to_string_lossy().ends_with(".j2") || p.extension().is_some_and(|e| e == "S") {
            out.push(p);
        }
    }
}

/// The instruction lines of an assembly template that are legacy-SSE moves of an xmm register.
fn legacy_moves(text: &str) -> Vec<String> {
    const MOVES: [&str; 8] = [
        "movd", "movq", "movaps", "movups", "movdqa", "movdqu", "movss", "movsd",
    ];
    text.lines()
        .filter_map(|l| {
            let code = l.split("//").next().unwrap_or("").trim();
            let (mnemonic, operands) = code.split_once(char::is_whitespace)?;
            (MOVES.contains(&mnemonic) && operands.contains("xmm")).then(|| code.to_string())
        })
        .collect()
}

#[test]
fn the_x86_kernels_use_no_legacy_sse_moves() {
    let mut files = Vec::new();
    templates(&root().join("third_party/tract-linalg/x86_64"), &mut files);
    assert!(files.len() > 40, "templates not found: {}", files.len());
    let mut found = Vec::new();
    for f in &files {
        for line in legacy_moves(&std::fs::read_to_string(f).unwrap()) {
            found.push(format!("{}: {line}", f.display()));
        }
    }
    assert!(found.is_empty(), "legacy-SSE moves:\n{}", found.join("\n"));
}

#[test]
fn the_rule_catches_the_line_that_was_fixed() {
    let before = "    movq            xmm8, qword ptr [rax]          // read 8 bytes\n";
    assert_eq!(legacy_moves(before).len(), 1);
    assert!(legacy_moves(&before.replace("movq ", "vmovq")).is_empty());
    // A general-purpose `mov` or a comment naming xmm is not a legacy-SSE move.
    assert!(legacy_moves("    mov rax, [rdi]\n    // movq xmm8 was here\n").is_empty());
}

#[test]
fn the_build_uses_the_fork() {
    // A [patch.crates-io] path dependency is locked without a registry source; if the patch
    // line goes, tract-linalg comes from crates.io again and the slow kernel with it.
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"tract-linalg\""))
        .expect("tract-linalg in Cargo.lock");
    assert!(
        !entry.contains("source ="),
        "tract-linalg is not the fork:{entry}"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(manifest.contains("tract-linalg = { path = \"third_party/tract-linalg\" }"));
}
