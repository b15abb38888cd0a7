//! Case codes at the camera kiosk: typed on a keyboard or keypad, or read from a QR code or a
//! Code 128 barcode on a card beside the film. The codes are drawn by `zint` (Debian's package,
//! an implementation independent of the rxing decoder under test) and pasted into simulated
//! camera photos of a film at the size a card at arm's length would have.

use std::path::Path;
use std::process::Command;

use cxr_edge::app::live::{LiveKiosk, State};
use cxr_edge::capture::{decode_image, samples, Limits};
use cxr_edge::case::{Mode, Policy};
use cxr_edge::config::DisplaySpec;
use cxr_edge::display::Output;
use cxr_edge::film::barcode::read_code;
use cxr_edge::film::find_film;
use cxr_edge::film::simulate::{simulate, Placement, SimOptions};
use cxr_edge::input::Button;
use cxr_edge::model::Classifier;
use cxr_edge::pixels::Frame;
use cxr_edge::store::ResultsLog;
use cxr_edge::ui::Problem;

#[allow(dead_code)]
mod common;

const CODE: &str = "S01-0042";

/// `zint` draws `text` as symbology `kind` (20: Code 128, 58: QR) into a grey frame.
fn symbol(dir: &Path, kind: u32, text: &str) -> Frame {
    let out = dir.join(format!("symbol-{kind}.png"));
    let st = Command::new("zint")
        .args(["-b", &kind.to_string(), "--scale=2", "-d", text, "-o"])
        .arg(&out)
        .status()
        .expect("zint (scripts/setup --tests installs it)");
    assert!(st.success());
    decode_image(&std::fs::read(&out).unwrap(), &Limits::default()).unwrap()
}

/// A camera photo of a film (the finder finds it) with `card` pasted, on a white margin, into
/// its top left corner.
fn photo_with(card: Option<&Frame>, seed: u64) -> Frame {
    let s = samples::all()
        .iter()
        .find(|s| s.name == "nih-normal-1.png")
        .unwrap();
    let film = decode_image(s.bytes, &Limits::default()).unwrap();
    let mut f = (seed..seed + 100)
        .map(|seed| {
            simulate(
                &film,
                &SimOptions::new(640, 480, 0.1, Placement::Inside, seed),
            )
        })
        .find(|s| find_film(&s.frame).is_ok())
        .unwrap()
        .frame;
    if let Some(c) = card {
        let m = 12;
        for y in 0..c.height + 2 * m {
            for x in 0..c.width + 2 * m {
                let v = if x >= m && y >= m && x < c.width + m && y < c.height + m {
                    c.pixel(x - m, y - m)
                } else {
                    255.0
                };
                if x < f.width && y < f.height {
                    f.data[y * f.width + x] = v;
                }
            }
        }
    }
    f
}

#[test]
fn qr_codes_and_code_128_are_read_from_a_camera_frame() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [58, 20] {
        let card = symbol(tmp.path(), kind, CODE);
        assert_eq!(
            read_code(&photo_with(Some(&card), 3)).as_deref(),
            Some(CODE),
            "symbology {kind}"
        );
    }
    assert_eq!(read_code(&photo_with(None, 3)), None);
}

fn classifier() -> Classifier {
    Classifier::load(&common::root().join("models/cxr-net.toml"), Some("int8")).unwrap()
}

#[test]
fn the_kiosk_requires_a_code_takes_it_typed_or_scanned_and_records_it() {
    let tmp = tempfile::tempdir().unwrap();
    let clf = classifier();
    let results = tmp.path().join("results");
    let log = ResultsLog::open(&results).unwrap();
    let mut out = Output::new(DisplaySpec::Png(tmp.path().join("screens")), (320, 240));
    let policy = Policy::new(Mode::Required, r"S\d{2}-\d{4}").unwrap();
    let mut k = LiveKiosk::new(&clf, &log, &mut out, true, true, 2).with_case_codes(policy);

    // Auto-capture waits for the code: a still film alone is not analysed.
    let plain = photo_with(None, 3);
    for _ in 0..4 {
        k.on_frame(plain.clone());
    }
    assert_eq!(k.state(), &State::Live);
    assert!(common::records(&results).is_empty());
    // Capture by hand without it: the case-code problem, nothing recorded.
    k.on_button(Button::Capture);
    assert!(matches!(k.state(), State::Problem(Problem::CaseCode, _)));
    // A code of another form: refused, and the message does not repeat it.
    for c in "S1-42".chars() {
        k.on_button(Button::Char(c));
    }
    k.on_button(Button::Capture);
    match k.state() {
        State::Problem(Problem::CaseCode, why) => assert!(!why.contains("S1-42"), "{why}"),
        s => panic!("{s:?}"),
    }
    // Typed on the keyboard, with a slip erased (Backspace).
    k.on_button(Button::Clear); // Escape on a keyboard, `#` on the stdin keyboard
    assert!(k.case_entry().is_empty());
    for c in "S01-00422".chars() {
        k.on_button(Button::Char(c));
    }
    k.on_button(Button::Erase);
    assert_eq!(k.case_entry().text(), CODE);
    for _ in 0..3 {
        k.on_frame(plain.clone());
    }
    assert_eq!(k.state(), &State::Result(0));
    let r = common::records(&results);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["case_code"], CODE);
    assert!(k.case_entry().is_empty(), "the code belongs to one film");

    // Next: a film with a QR card beside it; the code is read from the camera and, the film
    // being still, the film is analysed with it (auto-capture).
    k.on_button(Button::Next);
    let qr = symbol(tmp.path(), 58, "S02-0007");
    let with_card = photo_with(Some(&qr), 40);
    for _ in 0..12 {
        k.on_frame(with_card.clone());
        if common::records(&results).len() == 2 {
            break;
        }
    }
    let r = common::records(&results);
    assert_eq!(r.len(), 2, "{:?}", k.state());
    assert_eq!(r[1]["case_code"], "S02-0007");
    // The card still in view is not taken again for the next film.
    k.on_button(Button::Next);
    for _ in 0..12 {
        k.on_frame(with_card.clone());
    }
    assert!(k.case_entry().is_empty());
}

/// The watch folder takes the code from the file's name; where codes are required, a file
/// whose name is no valid code is not analysed, and its record and note say why.
#[test]
fn the_watch_folder_takes_the_code_from_the_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let sample = common::root().join("tests/fixtures/samples/kermany-normal-1.png");
    std::fs::copy(&sample, inbox.join("S01-0042.png")).unwrap();
    std::fs::copy(&sample, inbox.join("DOE_JANE.png")).unwrap();
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "source = \"dir:{}\"\ndisplay = \"none\"\ncase_code = \"required\"\n\
             case_code_pattern = 'S\\d{{2}}-\\d{{4}}'\n[storage]\ndir = \"{}\"\n",
            inbox.display(),
            d.join("results").display()
        ),
    )
    .unwrap();
    let out = common::command(&std::path::PathBuf::from(env!("CARGO_BIN_EXE_cxr-edge")))
        .args(["run", "--once", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("S01-0042"),
        "the code is never logged:\n{log}"
    );
    let r = common::records(&d.join("results"));
    assert_eq!(r.len(), 2, "{log}");
    let coded: Vec<_> = r.iter().filter(|r| r["case_code"] == "S01-0042").collect();
    assert_eq!(coded.len(), 1);
    assert!(coded[0]["error"].is_null());
    let refused: Vec<_> = r.iter().filter(|r| r["case_code"].is_null()).collect();
    let why = refused[0]["error"].as_str().unwrap();
    assert!(why.contains("case code") && !why.contains("DOE"), "{why}");
    assert_eq!(std::fs::read_dir(inbox.join("failed")).unwrap().count(), 2); // film + note
}
