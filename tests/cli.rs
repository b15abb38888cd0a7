//! The `cxr-edge classify` command as a user runs it: output schema, bad inputs, exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod common;
use common::{command, root};

#[path = "cli/calibrate.rs"]
mod calibrate;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge"))
}

fn run(args: &[&str]) -> Output {
    command(&bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("binary runs")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn labels() -> Vec<String> {
    let m = cxr_edge::model::Manifest::load(&root().join("models/cxr-net.toml")).unwrap();
    m.labels
}

/// Every record has exactly these fields with these types, success or failure.
fn check_schema(r: &Value) {
    let obj = r.as_object().expect("record is an object");
    let mut keys: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !["heatmap", "film_corners", "logits", "case_code"].contains(k))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "decision",
            "elapsed_ms",
            "error",
            "input",
            "label",
            "model",
            "notice",
            "path",
            "probs",
            "quality",
            "result"
        ]
    );
    assert!(r["path"].is_string());
    assert!(r["notice"].as_str().unwrap().contains("Research use only"));
    assert!(r["model"]["name"].is_string() && r["model"]["variant"].is_string());
    assert_eq!(r["model"]["sha256"].as_str().unwrap().len(), 12);
    assert!(
        r["model"]["profile"]["name"].is_string(),
        "the calibration is named"
    );
    assert!(r["quality"].is_array());
    for w in r["quality"].as_array().unwrap() {
        assert!(w["code"].is_string() && w["message"].is_string());
    }
    if r["error"].is_null() {
        let label = r["label"].as_str().expect("label when no error");
        assert!(labels().iter().any(|l| l == label));
        let probs = r["probs"].as_object().unwrap();
        let keys: Vec<&String> = probs.keys().collect();
        assert_eq!(
            keys,
            labels().iter().collect::<Vec<_>>(),
            "probs keyed by label, in label order"
        );
        let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "probs sum to {sum}");
        let best = probs
            .iter()
            .max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap())
            .unwrap()
            .0;
        assert_eq!(best, label, "label is the most probable class");
        assert!(r["decision"]["flags"].is_array() && r["decision"]["summary"].is_string());
        let logits = r["logits"].as_object().expect("logits when no error");
        assert!(logits.keys().eq(labels().iter()), "logits keyed by label");
        assert!(logits
            .values()
            .all(|v| v.as_f64().is_some_and(f64::is_finite)));
    } else {
        assert!(r["error"].as_str().unwrap().len() > 5);
        assert!(r["label"].is_null() && r["probs"].is_null() && r["decision"].is_null());
    }
}

#[test]
fn sample_films_run_without_arguments_and_follow_the_schema() {
    let out = run(&["classify", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), cxr_edge::capture::samples::all().len());
    for r in &recs {
        check_schema(r);
        assert!(r["error"].is_null(), "{r}");
        assert!(r["path"].as_str().unwrap().starts_with("sample:"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0 failed"),
        "summary on stderr in JSON mode: {stderr}"
    );
}

#[test]
fn table_output_has_the_banner_and_a_summary() {
    let out = run(&["classify"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("*** RESEARCH USE ONLY - NOT A DIAGNOSIS. ***"),
        "{text}"
    );
    assert!(text.contains("0 failed"), "{text}");
    for s in cxr_edge::capture::samples::all() {
        assert!(text.contains(s.name), "{} missing from\n{text}", s.name);
    }
}

/// `--lang fr`: the table and summary in French; the JSON records stay English.
#[test]
fn the_table_speaks_the_asked_language_and_json_stays_english() {
    let out = run(&["classify", "--lang", "fr"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("*** USAGE RECHERCHE UNIQUEMENT - PAS UN DIAGNOSTIC. ***"),
        "{text}"
    );
    assert!(
        text.contains("FICHIER") && text.contains("RÉSULTAT"),
        "{text}"
    );
    assert!(text.contains("0 en échec"), "{text}");
    let out = run(&["classify", "--lang", "fr", "--json"]);
    for r in json_lines(&out) {
        let label = r["label"].as_str().unwrap();
        assert!(r["result"].as_str().unwrap().is_ascii(), "{r}");
        assert_eq!(r["notice"], cxr_edge::NOTICE, "{label}");
    }
    let bad = run(&["classify", "--lang", "de"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"en\", \"fr\", \"es\", \"pt\""),
        "{stderr}"
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
}

/// A valid PNG header that claims 100000 x 100000 pixels: a decompression bomb.
fn bomb_png() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A flat PNG of `w` x `h` RGBA at 16 bits: tiny on disk (zeros compress ~1000:1), 8 bytes a
/// pixel for the decoder. Written row by row so the test never holds the picture itself.
fn flat_rgba16_png(w: u32, h: u32) -> Vec<u8> {
    use std::io::Write;
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([16, 6, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; 1 + w as usize * 8];
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    png_chunk(&mut out, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// Memory is budgeted in bytes, not pixels: a 0.5 MB PNG of 8000x8000 RGBA16 (within the
/// 64-megapixel limit) made `classify` use 790 MB. Now a PNG is turned into grey row by row, so
/// it needs the 244 MB grey frame and not the 512 MB decoded picture too, and under a smaller
/// budget (`--memory-mb 200`) it is refused before decoding, with what it would need, while the
/// batch goes on.
#[test]
fn a_picture_over_the_memory_budget_is_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("flat-rgba16-8000.png");
    std::fs::write(&big, flat_rgba16_png(8000, 8000)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() < 1 << 20);
    let good = tmp.path().join("good.jpg");
    std::fs::write(&good, sample_bytes(".jpg")).unwrap();
    let out = run(&[
        "classify",
        "--json",
        "--memory-mb",
        "200",
        big.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), 2);
    let err = recs[0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("8000x8000")
            && err.contains("needs about 245 MB")
            && err.contains("more than the 200 MB memory budget"),
        "{err}"
    );
    assert!(recs[1]["error"].is_null(), "{:?}", recs[1]);
}

fn sample_bytes(ext: &str) -> Vec<u8> {
    let s = cxr_edge::capture::samples::all()
        .iter()
        .find(|s| s.name.ends_with(ext))
        .expect("sample");
    s.bytes.to_vec()
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[test]
fn every_bad_input_gets_its_own_error_and_the_batch_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let jpeg = sample_bytes(".jpg");
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    };
    let good = write("good.jpg", &jpeg);
    let empty = write("empty.png", b"");
    let truncated = write("truncated.jpg", &jpeg[..jpeg.len() / 3]);
    let garbage = write(
        "garbage.png",
        b"this is a text file pretending to be an image\n",
    );
    let bomb = write("bomb.png", &bomb_png());
    let mut one = Vec::new();
    image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1, 1, image::Luma([9])))
        .write_to(&mut std::io::Cursor::new(&mut one), image::ImageFormat::Png)
        .unwrap();
    let tiny = write("tiny.png", &one);
    let locked = write("locked.png", &jpeg);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let no_images = d.join("no-images");
    std::fs::create_dir(&no_images).unwrap();
    std::fs::set_permissions(&no_images, std::fs::Permissions::from_mode(0o755)).unwrap();
    write("no-images/readme.txt", b"nothing to see");
    let missing = d.join("missing.png");
    // A FIFO named like an image: opening it would block forever, so it must be refused first.
    let fifo = d.join("fifo.png");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);

    // Root reads any file, so the permission case runs the binary as an unprivileged user,
    // from copies that user can read.
    let mut cmd;
    if euid() == 0 {
        let exe = d.join("cxr-edge");
        // A hard link when the temporary folder is on the same file system: a copy of a debug
        // binary is hundreds of megabytes, and CI's disk has been seen full.
        if std::fs::hard_link(bin(), &exe).is_err() {
            std::fs::copy(bin(), &exe).unwrap();
        }
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let models = d.join("models");
        std::fs::create_dir(&models).unwrap();
        std::fs::set_permissions(&models, std::fs::Permissions::from_mode(0o755)).unwrap();
        for e in std::fs::read_dir(root().join("models")).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let to = models.join(e.file_name());
                std::fs::copy(e.path(), &to).unwrap();
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        cmd = command(&exe);
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        cmd.current_dir(d)
            .env("CXR_EDGE_MODEL", models.join("cxr-net.toml"));
    } else {
        cmd = command(&bin());
        cmd.current_dir(root());
    }
    let paths = [
        &empty, &truncated, &garbage, &bomb, &tiny, &locked, &no_images, &missing, &fifo, &good,
    ];
    cmd.arg("classify")
        .arg("--json")
        .args(paths.iter().map(|p| p.as_os_str()));
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code says some inputs failed; stderr: {stderr}"
    );
    let recs = json_lines(&out);
    assert_eq!(recs.len(), paths.len(), "one record per input: {recs:#?}");
    let expect = [
        (&empty, "file is empty"),
        (&truncated, "corrupt or truncated"),
        (&garbage, "not a supported image"),
        (&bomb, "exceeds the limit"),
        (&tiny, "only 1x1 pixels"),
        (&locked, "ermission denied"),
        (&no_images, "no images found"),
        (&missing, "no such file"),
        (&fifo, "not a regular file"),
    ];
    for (rec, (path, needle)) in recs.iter().zip(expect) {
        check_schema(rec);
        assert_eq!(rec["path"].as_str().unwrap(), path.display().to_string());
        let err = rec["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{} should fail: {rec}", path.display()));
        assert!(
            err.contains(needle),
            "{}: error {err:?} should mention {needle:?}",
            path.display()
        );
    }
    let last = recs.last().unwrap();
    check_schema(last);
    assert!(
        last["error"].is_null(),
        "the good file after the bad ones still works: {last}"
    );
    assert!(stderr.contains("9 failed"), "{stderr}");
}

#[test]
fn heatmaps_are_written_one_png_per_input() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&[
        "classify",
        "--json",
        "--heatmap",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in json_lines(&out) {
        let p = Path::new(r["heatmap"].as_str().expect("heatmap path in record"));
        let img = image::open(p).unwrap().to_rgb8();
        assert!(img.width() >= 320 && img.height() > 320);
        // The banner strip at the bottom is drawn in the warning red.
        let px = img.get_pixel(img.width() - 2, img.height() - 2).0;
        assert!(px[0] > 120 && px[1] < 60, "banner colour {px:?}");
    }
    let pngs = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(
        pngs,
        cxr_edge::capture::samples::all().len(),
        "no leftover temporary files"
    );
}

#[test]
fn classify_store_records_every_film_and_history_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("results");
    let dir = store.to_str().unwrap();
    let first = run(&["classify", "--json", "--store", dir]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let printed = json_lines(&first);
    // What is printed still names the films given; the log names them by hash only.
    assert!(printed
        .iter()
        .all(|r| r["path"].as_str().unwrap().starts_with("sample:")));
    let n = printed.len();
    // A second batch adds to the same log.
    let film = root().join("tests/fixtures/samples/nih-normal-1.png");
    let second = run(&["classify", "--json", "--store", dir, film.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0));

    let stored = cxr_edge::store::read_all(&store).unwrap();
    assert_eq!(stored.len(), n + 1);
    for (name, r) in &stored {
        let r = r.as_ref().unwrap();
        assert_eq!(r.source, cxr_edge::store::Origin::Classify);
        assert_eq!(r.record.path, format!("classify:{name}"));
        assert_eq!(r.input_sha256.as_deref().map(str::len), Some(64));
        let pic = r.image.as_deref().expect("the heatmap picture is kept");
        assert!(store.join(pic).is_file(), "{pic}");
        let text = serde_json::to_string(r).unwrap();
        assert!(
            !text.contains("nih-normal-1"),
            "a file name in the log: {text}"
        );
    }
    // The same results as printed (in the order the analyses finished, which with several
    // jobs need not be the input order).
    let mut a: Vec<String> = printed.iter().map(|r| r["label"].to_string()).collect();
    let mut b: Vec<String> = stored[..n]
        .iter()
        .map(|(_, r)| format!("{:?}", r.as_ref().unwrap().record.label.as_deref().unwrap()))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let csv = run(&["history", "--storage", dir, "--csv", "-"]);
    assert_eq!(csv.status.code(), Some(0));
    let text = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        n + 2,
        "a header and one line per record:\n{text}"
    );
}

#[test]
fn a_missing_model_is_a_clear_fatal_error() {
    let out = run(&["classify", "--model", "/nonexistent/model.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read model manifest /nonexistent/model.toml"),
        "{stderr}"
    );
}

/// `--case-code`: one film; checked against the pattern (the message does not repeat it); kept
/// in the record.
#[test]
fn a_case_code_goes_into_the_record_of_one_film() {
    let film = "tests/fixtures/samples/kermany-normal-1.png";
    let out = run(&["classify", "--json", "--case-code", "S01-0042", film]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["case_code"], "S01-0042");
    // without a code, no field at all
    let out = run(&["classify", "--json", film]);
    assert!(json_lines(&out)[0].get("case_code").is_none());
    let out = run(&["classify", "--json", "--case-code", "S01-0042", film, film]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["classify", "--json", "--case-code", "DOE^JANE 1970", film]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("case code") && !err.contains("DOE"), "{err}");
}
