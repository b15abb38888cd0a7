//! `cxr-edge run` as a board service uses it: a watch folder in, records, screens and filed-away
//! inputs out, systemd told it is ready.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::root;

fn command() -> Command {
    common::command(&PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `cxr-edge run --once --config CFG`, to its end.
fn run_once(cfg: &Path) -> std::process::Output {
    command()
        .args(["run", "--once", "--config"])
        .arg(cfg)
        .output()
        .unwrap()
}

/// `<dir>/config.toml` for a watch folder `<dir>/inbox` with results in `<dir>/results`, the
/// given display, and `storage` lines added to the `[storage]` table; returns its path.
fn watch_config(dir: &Path, display: &str, storage: &str) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "source = \"dir:{}\"\ndisplay = \"{display}\"\n[model]\nmanifest = \"{}\"\n[storage]\ndir = \"{}\"\n{storage}",
            dir.join("inbox").display(),
            root().join("models/cxr-net.toml").display(),
            dir.join("results").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn inbox_films_are_analysed_recorded_and_filed_away() {
    let d = tempfile::tempdir().unwrap();
    let inbox = d.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    // A file name such as a reader export might write, with a (made-up) patient name in it.
    let good = inbox.join("DOE^JANE_chest.png");
    std::fs::copy(
        root().join("tests/fixtures/samples/kermany-pneumonia-1.png"),
        &good,
    )
    .unwrap();
    std::fs::write(inbox.join("broken.jpg"), b"not a jpeg at all").unwrap();
    std::fs::write(inbox.join(".partial-copy.png"), b"ignored").unwrap();
    std::fs::write(inbox.join("notes.txt"), b"ignored").unwrap();
    let cfg = watch_config(
        d.path(),
        &format!("png:{}", d.path().join("screen").display()),
        "",
    );
    // systemd's notify socket, to check the READY=1 handshake of Type=notify.
    let sock_path = d.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();

    let out = command()
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one film failed\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("1 analysed, 1 failed"), "{stderr}");

    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notify message was sent");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("READY=1"));

    // Inputs are filed away, renamed after their records; ignored files stay put; nothing is
    // left in processing/, where each film sat while it was analysed.
    assert_eq!(
        files(&inbox),
        [
            ".partial-copy.png",
            "done",
            "failed",
            "notes.txt",
            "processing"
        ]
    );
    assert!(files(&inbox.join("processing")).is_empty());
    let done = files(&inbox.join("done"));
    let failed = files(&inbox.join("failed"));
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(failed.len(), 2, "the input and its .error.txt: {failed:?}");
    let reason = failed.iter().find(|f| f.ends_with(".error.txt")).unwrap();
    let reason = std::fs::read_to_string(inbox.join("failed").join(reason)).unwrap();
    assert!(!reason.trim().is_empty());

    // Two records, whole, no file names, the notice on each; one picture for the good film.
    let results = d.path().join("results");
    let names = files(&results);
    let records: Vec<Value> = cxr_edge::store::read_all(&results)
        .unwrap()
        .into_iter()
        .map(|(_, r)| serde_json::to_value(r.unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".png")).count(), 1);
    for r in &records {
        let text = r.to_string();
        assert!(!text.contains("DOE") && !text.contains("broken"), "{text}");
        assert_eq!(r["notice"], "Research use only - not a diagnosis.");
        assert_eq!(r["source"], "inbox");
        assert_eq!(r["input_sha256"].as_str().unwrap().len(), 64);
    }
    let ok = records.iter().find(|r| r["error"].is_null()).unwrap();
    // Which class the model picks is the model's business (tests/parity.rs pins it); here the
    // record must name a manifest label and put it in the same words as `classify`.
    let label = ok["label"].as_str().unwrap().to_string();
    assert!(["covid", "pneumonia", "normal", "other"].contains(&label.as_str()));
    assert_eq!(ok["result"], cxr_edge::model::label_words(&label));
    assert!(results.join(ok["image"].as_str().unwrap()).exists());
    let done_stem = done[0].trim_end_matches(".png");
    assert!(ok["path"].as_str().unwrap().ends_with(done_stem), "{ok}");

    // `history` lists both records and exports them as CSV, still without file names.
    let out = command()
        .args(["history", "--csv", "-", "--storage"])
        .arg(&results)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{csv}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "header + 2 records: {csv}");
    assert!(rows[0].starts_with("time,source,input_sha256,label,result,p_covid"));
    let words = cxr_edge::model::label_words(&label);
    assert!(
        csv.contains(&format!(",{label},{words},")) && !csv.contains("DOE"),
        "{csv}"
    );

    // The screen shows the last event (the failure), drawn with the banner.
    let screen = image::open(d.path().join("screen/screen.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(screen.get_pixel(2, screen.height() - 2).0, [150, 20, 20]);
}

/// A film that crashed, hung or exhausted the last run (it is still in `processing/`) is not
/// analysed again: it goes to `failed/` with the reason, and the films behind it are analysed.
/// Before, the inbox analysed a file in place, so a poison file was hit at every restart until
/// systemd gave up, and every film behind it waited for ever.
#[test]
fn a_film_the_last_run_died_on_is_quarantined_not_retried() {
    let d = tempfile::tempdir().unwrap();
    let inbox = d.path().join("inbox");
    std::fs::create_dir_all(inbox.join("processing")).unwrap();
    std::fs::write(
        inbox.join("processing/poison.png"),
        b"whatever killed the last run",
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/fixtures/samples/nih-normal-1.png"),
        inbox.join("next.png"),
    )
    .unwrap();
    let cfg = watch_config(d.path(), "none", "");
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 analysed, 1 failed"), "{stderr}");
    assert!(files(&inbox.join("processing")).is_empty());
    let failed = files(&inbox.join("failed"));
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed
        .iter()
        .all(|f| f.starts_with("stopped-") && !f.contains("poison")));
    let reason = failed.iter().find(|f| f.ends_with(".error.txt")).unwrap();
    let why = std::fs::read_to_string(inbox.join("failed").join(reason)).unwrap();
    assert!(why.contains("stopped while analysing this file"), "{why}");
    assert_eq!(files(&inbox.join("done")).len(), 1);
}

#[test]
fn bad_config_is_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "source = \"webcam0\"\n").unwrap();
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown source 'webcam0'"), "{stderr}");
    assert!(stderr.contains("'camera:DEVICE'"), "{stderr}");
    std::fs::write(&cfg, "steady_frames = 500\n").unwrap();
    let out = run_once(&cfg);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("steady_frames = 500"));
}

/// `run --source DIR --display png:OUT --script ...`: frames played as a camera, buttons from
/// the script, one numbered PNG per screen.
#[test]
fn scripted_camera_run_writes_each_screen_and_records_the_film() {
    use cxr_edge::capture::{decode_image, Limits};
    use cxr_edge::film::find_film;
    use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
    use cxr_edge::pixels::Frame;

    let d = tempfile::tempdir().unwrap();
    let frames = d.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let film = decode_image(
        &std::fs::read(root().join("tests/fixtures/samples/nih-normal-1.png")).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let save = |f: &Frame, name: &str| f.to_luma8().save(frames.join(name)).unwrap();
    let sim = |p, seed| simulate(&film, &SimOptions::new(480, 360, 0.15, p, seed)).frame;
    save(&sim(Placement::Absent, 2), "00.png");
    let good = (1..100)
        .map(|s| sim(Placement::Inside, s))
        .find(|f| find_film(f).is_ok())
        .unwrap();
    for i in 1..5 {
        save(&good, &format!("{i:02}.png"));
    }
    let cfg = d.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "steady_frames = 3\nscreen_size = \"480x320\"\n[model]\nmanifest = \"{}\"\n[storage]\ndir = \"{}\"\n",
            root().join("models/cxr-net.toml").display(),
            d.path().join("results").display()
        ),
    )
    .unwrap();
    let screens = d.path().join("screens");
    let out = command()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--source")
        .arg(&frames)
        .arg("--display")
        .arg(format!("png:{}", screens.display()))
        .args(["--script", "wait:4,next,back"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("1 analysed, 0 failed"), "{err}");
    let names = files(&screens);
    let kinds: Vec<&str> = names
        .iter()
        .filter(|n| *n != "screen.png")
        .map(|n| &n[5..n.len() - 4])
        .collect();
    // Waiting for the first frame, preview x3 (no film, film, steadying), analysing, result;
    // next: the result is dismissed (preview); back: a frame (preview), then the result again.
    assert_eq!(
        kinds,
        [
            "waiting",
            "preview",
            "preview",
            "preview",
            "analysing",
            "result",
            "preview",
            "preview",
            "result"
        ],
        "{names:?}"
    );
    let records = cxr_edge::store::read_all(&d.path().join("results")).unwrap();
    assert_eq!(records.len(), 1);

    // A script needs a camera-like source.
    let out = command()
        .args([
            "run",
            "--source",
            "samples",
            "--display",
            "none",
            "--script",
            "capture",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--script drives a camera"));
    let out = command()
        .arg("run")
        .arg("--source")
        .arg(&frames)
        .args(["--display", "none", "--script", "capture,jump"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown script step 'jump'"));
}

// ---------------------------------------------------------------------------------------------
// The board package (board/common): how much systemd lets the service do, and what the Debian
// maintainer scripts do as root (issue 16). These read the files only; the attack itself, a
// symlinked inbox and an upgrade in a throwaway Debian root, is scripts/postinst-escalation-test.

/// The units the package installs.
const UNITS: [&str; 2] = ["cxr-edge.service", "cxr-edge-serve.service"];

/// What runs as root at install, upgrade and removal: the maintainer scripts and the installer
/// the postinst calls.
const ROOT_SCRIPTS: [&str; 4] = [
    "debian/postinst",
    "debian/prerm",
    "debian/postrm",
    "install.sh",
];

fn board_common(name: &str) -> PathBuf {
    root().join("board/common").join(name)
}

/// `systemd-analyze security --offline=true UNIT`: the "Overall exposure level" figure.
fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run systemd-analyze ({e}): install systemd (scripts/setup --tests does)")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure level for {}:\n{text}\n{}",
                unit.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let figure = line.rsplit(':').next().unwrap().split_whitespace().next();
    figure
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure level in {line:?}"))
}

#[test]
fn units_expose_at_most_3_0_to_systemd_analyze_security() {
    for unit in UNITS {
        let level = exposure(&board_common(unit));
        assert!(
            level <= 3.0,
            "{unit}: exposure {level} > 3.0 (systemd-analyze security --offline=true board/common/{unit})"
        );
    }
}

/// `KEY=VALUE` lines of a unit file, in order.
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(board_common(unit)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting(settings: &[(String, String)], key: &str) -> Option<String> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// What systemd-analyze does not score: core dumps (a film is in the process's memory), a
/// memory cap that fits a 2 GB board, files nobody outside the group can read, the devices.
#[test]
fn units_keep_films_out_of_core_dumps_and_cap_memory_and_devices() {
    for unit in UNITS {
        let s = unit_settings(unit);
        assert_eq!(setting(&s, "LimitCORE").as_deref(), Some("0"), "{unit}");
        let max = setting(&s, "MemoryMax").unwrap_or_else(|| panic!("{unit}: no MemoryMax="));
        let mib: u64 = match max.strip_suffix('M') {
            Some(m) => m.parse().unwrap(),
            None => max.strip_suffix('G').unwrap().parse::<u64>().unwrap() * 1024,
        };
        assert!((512..=1024).contains(&mib), "{unit}: MemoryMax={max}");
        let umask = setting(&s, "UMask").unwrap_or_else(|| panic!("{unit}: no UMask="));
        let umask = u32::from_str_radix(&umask, 8).unwrap();
        assert_eq!(umask & 0o027, 0o027, "{unit}: UMask={umask:o}");
        assert_eq!(
            setting(&s, "DevicePolicy").as_deref(),
            Some("closed"),
            "{unit}"
        );
        assert_eq!(setting(&s, "StateDirectoryMode").as_deref(), Some("0770"));
    }
    // The kiosk: only the device classes the board profiles' udev rules hand to its groups.
    let s = unit_settings("cxr-edge.service");
    let mut allowed: Vec<String> = s
        .iter()
        .filter(|(k, _)| k == "DeviceAllow")
        .map(|(_, v)| v.clone())
        .collect();
    allowed.sort();
    assert_eq!(
        allowed,
        [
            "char-drm rw",
            "char-fb rw",
            "char-gpiochip rw",
            "char-input r",
            "char-spi rw",
            "char-video4linux rw"
        ]
    );
}

/// systemd owns /var/lib/cxr-edge (in root's /var/lib), never a folder below it: the service
/// user and the group can replace one with a symlink, and then systemd would refuse to start the
/// service (252 and 257 fail it with STATE_DIRECTORY); root-side code that fixes owners must
/// never meet a path the service user controls.
#[test]
fn units_own_the_state_folder_and_nothing_below_it() {
    for unit in UNITS {
        let s = unit_settings(unit);
        assert_eq!(
            setting(&s, "StateDirectory").as_deref(),
            Some("cxr-edge"),
            "{unit}"
        );
        for (k, v) in &s {
            assert!(
                !(k.ends_with("Directory") && v.contains("cxr-edge/")),
                "{unit}: {k}={v}"
            );
        }
    }
}

/// A script's logical lines (continuations joined, comments and blank lines dropped), with the
/// variables it assigns a plain path to (`STATE=/var/lib/cxr-edge`) written out.
fn script_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let l = raw.trim();
        if l.starts_with('#') {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(head) => cur.push_str(head),
            None => {
                cur.push_str(l);
                if !cur.trim().is_empty() {
                    lines.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    let vars: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, v)| {
            !k.is_empty()
                && k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && v.starts_with('/')
        })
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    lines
        .into_iter()
        .map(|mut l| {
            for (k, v) in &vars {
                l = l
                    .replace(&format!("${{{k}}}"), v)
                    .replace(&format!("${k}"), v);
            }
            l
        })
        .collect()
}

/// One command line's simple commands: split at `;`, `&&`, `||`, `|`, and the shell words that
/// start a command (`then`, `do`, `else`), each as its words.
fn simple_commands(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for part in line.split([';', '&', '|']) {
        let mut cmd: Vec<String> = Vec::new();
        for w in part.split_whitespace() {
            if ["then", "do", "else", "if", "while", "!"].contains(&w) && cmd.is_empty() {
                continue;
            }
            cmd.push(w.trim_matches(['(', ')']).to_string());
        }
        if !cmd.is_empty() {
            out.push(cmd);
        }
    }
    out
}

/// Root must never create, chown, chmod, copy, link or write anything below /var/lib/cxr-edge:
/// the service user and the cxr-edge group can write there, so any name below it may be a
/// symlink (`inbox -> /etc`) that root would follow. Only a command run as the service user
/// (`setpriv --reuid=cxr-edge ...`) may.
#[test]
fn maintainer_scripts_never_write_below_the_state_folder_as_root() {
    const WRITERS: [&str; 14] = [
        "chown", "chmod", "chgrp", "mkdir", "install", "cp", "ln", "mv", "touch", "rm", "rmdir",
        "tee", "setfacl", "truncate",
    ];
    const BELOW: &str = "/var/lib/cxr-edge/";
    let mut found = Vec::new();
    for name in ROOT_SCRIPTS {
        let text = std::fs::read_to_string(board_common(name)).unwrap();
        for line in script_lines(&text) {
            // Redirections into the folder, whatever writes them.
            for (i, _) in line.match_indices('>') {
                let target = line[i..].trim_start_matches(['>', '&', ' ', '"', '\'']);
                if target.starts_with(BELOW) {
                    found.push(format!("{name}: {line}"));
                }
            }
            for cmd in simple_commands(&line) {
                let as_service_user =
                    cmd[0] == "setpriv" && cmd.iter().any(|w| w == "--reuid=cxr-edge");
                let writes = cmd.iter().any(|w| WRITERS.contains(&w.as_str()));
                let below = cmd
                    .iter()
                    .any(|w| w.trim_matches(['"', '\'']).starts_with(BELOW));
                if writes && below && !as_service_user {
                    found.push(format!("{name}: {}", cmd.join(" ")));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "root writes below /var/lib/cxr-edge:\n{}",
        found.join("\n")
    );
}

/// The configuration may hold the upload page's token: 0640 root:cxr-edge when installed, and
/// a kept one from an earlier version is brought to that too.
#[test]
fn the_installer_keeps_the_config_0640_root_cxr_edge() {
    let text = std::fs::read_to_string(board_common("install.sh")).unwrap();
    let lines = script_lines(&text);
    let installs: Vec<&String> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("install ") && l.contains("config.toml"))
        .collect();
    assert!(!installs.is_empty(), "install.sh installs no config.toml");
    for l in installs {
        assert!(
            l.contains("-m 0640") && l.contains("-o root") && l.contains("-g cxr-edge"),
            "{l}"
        );
    }
    // A config kept from an earlier version (0644 root:root then) is brought to the same.
    let cfg = "\"/etc/cxr-edge/config.toml\"";
    assert!(lines.contains(&format!("chmod 0640 {cfg}")), "{text}");
    assert!(
        lines.contains(&format!("chown root:cxr-edge {cfg}")),
        "{text}"
    );
}

/// The units are enabled, started and restarted by deb-systemd-helper (cargo-deb's systemd
/// support, at `#DEBHELPER#` in each maintainer script): the kiosk is enabled and started on
/// first install and an admin's `disable` survives upgrades; an upgrade restarts the upload page
/// only when it was running, so it does not go on running the replaced binary.
#[test]
fn the_package_hands_its_units_to_deb_systemd_helper() {
    for s in ["debian/postinst", "debian/prerm", "debian/postrm"] {
        let text = std::fs::read_to_string(board_common(s)).unwrap();
        // Exactly once, on a line of its own: cargo-deb replaces every occurrence, one in a
        // comment included, and a postinst once came out a shell syntax error that way.
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{s}");
        assert!(
            text.lines().any(|l| l.trim() == "#DEBHELPER#"),
            "{s} has no #DEBHELPER# line"
        );
        assert!(!text.contains("systemctl enable"), "{s} enables by hand");
    }
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let units = manifest["package"]["metadata"]["deb"]["systemd-units"]
        .as_array()
        .expect("[package.metadata.deb] systemd-units");
    let unit = |name: &str| {
        units
            .iter()
            .find(|u| u["unit-name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no systemd-units entry for {name}"))
    };
    let flag = |u: &toml::Value, k: &str| u[k].as_bool().unwrap_or_else(|| panic!("{k}"));
    let kiosk = unit("cxr-edge");
    assert!(flag(kiosk, "enable") && flag(kiosk, "start") && flag(kiosk, "restart-after-upgrade"));
    let serve = unit("cxr-edge-serve");
    assert!(
        !flag(serve, "enable") && !flag(serve, "start") && flag(serve, "restart-after-upgrade")
    );
    for u in units {
        let name = u["unit-name"].as_str().unwrap();
        assert!(board_common(&format!("{name}.service")).is_file(), "{name}");
    }
    // The udev rules come with the package and run after systemd's 60-persistent-v4l.rules,
    // which sets the properties they match on.
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    let rules: Vec<&str> = assets
        .iter()
        .filter(|a| a[1].as_str().unwrap().starts_with("usr/lib/udev/rules.d/"))
        .map(|a| a[0].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["board/common/70-cxr-edge.rules"]);
}

// ---- Power cuts: `run` killed at random points while it works through an inbox ----

/// `n` distinct films (each a sample with one pixel changed, so every file has its own hash),
/// written into `inbox`; returns their SHA-256s.
fn distinct_films(inbox: &Path, n: usize) -> Vec<String> {
    let samples = [
        "ieee8023-covid-1.png",
        "kermany-normal-1.png",
        "kermany-pneumonia-1.png",
        "nih-normal-1.png",
        "nih-pneumonia-1.png",
    ];
    let bases: Vec<image::GrayImage> = samples
        .iter()
        .map(|s| {
            image::open(root().join("tests/fixtures/samples").join(s))
                .unwrap()
                .to_luma8()
        })
        .collect();
    (0..n)
        .map(|i| {
            let mut img = bases[i % bases.len()].clone();
            let w = img.width();
            let px = img.get_pixel_mut((i as u32 / 5) % w, (i as u32 / 5) / w);
            px.0[0] = px.0[0].wrapping_add(1 + (i / 5 / 255) as u8);
            let path = inbox.join(format!("film-{i:03}.png"));
            img.save(&path).unwrap();
            cxr_edge::model::manifest::sha256_hex(&std::fs::read(&path).unwrap())
        })
        .collect()
}

/// SHA-256 of every file directly in `dir` (not the `.error.txt` notes).
fn film_hashes(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| !n.ends_with(".txt"))
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .map(|p| cxr_edge::model::manifest::sha256_hex(&std::fs::read(p).unwrap()))
        .collect()
}

/// A power cut as a test can make one: SIGKILL at a random moment, `kills` times, while
/// `run --once` works through an inbox of `films` distinct films; then one run to the end. After
/// that every record parses, every film is exactly once in `done/` or `failed/` (the inbox and
/// `processing/` are empty), a film in `done/` has exactly one record, no film has two, and no
/// half-written file is left. `CXR_POWER_CUT_FILMS` and `CXR_POWER_CUT_KILLS` set the sizes
/// (the README's figure: 200 films, 100 kills); the seed is fixed, and the moments are spread
/// over start-up and about two films so that kills land in every phase.
#[test]
fn killed_at_random_points_every_film_is_filed_once_and_recorded_at_most_once() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    // Under qemu (scripts/test-arm) every start loads the model emulated: fewer rounds there.
    let emulated = std::env::var_os("CXR_EDGE_TEST_RUNNER").is_some();
    let (films_default, kills_default) = if emulated { (6, 3) } else { (16, 8) };
    let (n_films, kills) = (
        env("CXR_POWER_CUT_FILMS", films_default),
        env("CXR_POWER_CUT_KILLS", kills_default),
    );
    let d = tempfile::tempdir().unwrap();
    let inbox = d.path().join("inbox");
    let results = d.path().join("results");
    std::fs::create_dir(&inbox).unwrap();
    let cfg = watch_config(
        d.path(),
        &format!("png:{}", d.path().join("screen").display()),
        "keep_images = true\n",
    );
    // Time a start-up on an empty inbox, and two films (the rest held aside), to place the kills.
    let t = std::time::Instant::now();
    assert!(run_once(&cfg).status.success());
    let startup = t.elapsed();
    let shas = distinct_films(&inbox, n_films);
    let rest = files(&inbox)[2..].to_vec();
    let held = d.path().join("held");
    std::fs::create_dir(&held).unwrap();
    for n in &rest {
        std::fs::rename(inbox.join(n), held.join(n)).unwrap();
    }
    let t = std::time::Instant::now();
    assert!(run_once(&cfg).status.success());
    let two = t.elapsed().saturating_sub(startup);
    for n in &rest {
        std::fs::rename(held.join(n), inbox.join(n)).unwrap();
    }
    eprintln!("start-up {startup:?}, two films {two:?}");

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let span = (startup / 2).as_millis() as u64 + two.as_millis() as u64 * 2 + 1;
    for _ in 0..kills {
        let at = startup / 2 + std::time::Duration::from_millis(next() % span);
        let mut child = command()
            .args(["run", "--once", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
    }
    let left_before = files(&inbox).iter().filter(|n| n.ends_with(".png")).count();
    let out = run_once(&cfg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "the last run ended normally\n{stderr}"
    );

    // Every film exactly once, nowhere left half-way.
    let (done, failed) = (
        film_hashes(&inbox.join("done")),
        film_hashes(&inbox.join("failed")),
    );
    assert!(film_hashes(&inbox).is_empty(), "inbox: {:?}", files(&inbox));
    assert!(film_hashes(&inbox.join("processing")).is_empty());
    let mut seen: Vec<&String> = done.iter().chain(&failed).collect();
    seen.sort();
    let mut want: Vec<&String> = shas.iter().collect();
    want.sort();
    assert_eq!(seen, want, "each film exactly once in done/ or failed/");
    // Every record parses; no film has two; a film in done/ has exactly one.
    let mut recorded: std::collections::HashMap<String, usize> = Default::default();
    for (p, r) in cxr_edge::store::read_all(&results).unwrap() {
        let r = r.unwrap_or_else(|e| panic!("{p}: {e:#}"));
        *recorded.entry(r.input_sha256.unwrap()).or_default() += 1;
    }
    assert!(
        recorded.values().all(|&n| n == 1),
        "a film with two records"
    );
    for sha in &done {
        assert_eq!(
            recorded.get(sha),
            Some(&1),
            "a film in done/ without its record"
        );
    }
    // A film set aside as "stopped while analysing" has no record: had it one, the stop came
    // while it was being filed away, and it belongs under that record.
    let failed_dir = inbox.join("failed");
    let stopped: Vec<String> = files(&failed_dir)
        .into_iter()
        .filter(|n| n.starts_with("stopped-") && !n.ends_with(".txt"))
        .collect();
    for n in &stopped {
        let sha =
            cxr_edge::model::manifest::sha256_hex(&std::fs::read(failed_dir.join(n)).unwrap());
        assert_eq!(
            recorded.get(&sha),
            None,
            "{n} was recorded, yet set aside as stopped"
        );
    }
    // No temporaries survive the next start.
    for dir in [&results, &inbox.join("done"), &inbox.join("failed")] {
        let partial: Vec<String> = files(dir)
            .into_iter()
            .filter(|n| n.ends_with(".partial"))
            .collect();
        assert!(partial.is_empty(), "{}: {partial:?}", dir.display());
    }
    eprintln!(
        "{n_films} films, {kills} kills: {left_before} still in the inbox before the last run; {} done, {} failed ({} of them stopped mid-analysis), {} records",
        done.len(),
        failed.len(),
        stopped.len(),
        recorded.len()
    );
}
