//! The screens, compared with committed golden images at two panel sizes (tolerant: a few
//! pixels may differ, e.g. after a font-rendering fix, but not the layout), in English and in
//! French (`fr-*.png`: the accents of the Latin-1 fonts, the longer words), plus the banner on
//! every screen at every supported panel size in every language.
//!
//! After an intended change: CXR_EDGE_UPDATE_GOLDEN=1 cargo test --test ui, then look at the
//! images in tests/fixtures/golden/ before committing them.

use std::path::PathBuf;

use cxr_edge::film::{Code, Warning};
use cxr_edge::lang::Language;
use cxr_edge::model::{Decision, ModelId};
use cxr_edge::record::Record;
use cxr_edge::ui::{render, PreviewView, Problem, ResultView, Screen};
use image::RgbImage;

const PANELS: [(u32, u32); 6] = [
    (240, 240),
    (320, 240),
    (480, 320),
    (800, 480),
    (1024, 600),
    (1920, 1080),
];
const GOLDEN: [(u32, u32); 2] = [(320, 240), (800, 480)];

fn record(label: &str, probs: [f64; 4], flags: &[&str], summary: &str) -> Record {
    let model = ModelId {
        name: "cxr-net".into(),
        version: "1".into(),
        variant: "int8".into(),
        sha256: "47c765a29576".into(),
        profile: Default::default(),
    };
    let mut r = Record::new("sample", model);
    r.label = Some(label.into());
    r.result = Some(cxr_edge::model::label_words(label).into());
    let labels = ["covid", "pneumonia", "normal", "other"];
    r.probs = Some(
        labels
            .iter()
            .map(|l| l.to_string())
            .zip(probs.iter().map(|&p| serde_json::json!(p)))
            .collect(),
    );
    r.decision = Some(Decision {
        flags: flags.iter().map(|s| s.to_string()).collect(),
        summary: summary.into(),
    });
    r.elapsed_ms = 212.0;
    r
}

/// A stand-in for the film + heatmap picture: a smooth gradient with a "hot" blob.
fn picture() -> RgbImage {
    RgbImage::from_fn(300, 344, |x, y| {
        let g = (60 + (x + y) / 5) as u8;
        let d = ((x as i32 - 200).pow(2) + (y as i32 - 120).pow(2)) as f32;
        let hot = (-d / 2000.0).exp();
        image::Rgb([
            (g as f32 * (1.0 - hot) + 220.0 * hot) as u8,
            g,
            (g as f32 * (1.0 - hot)) as u8,
        ])
    })
}

/// A stand-in camera view: a bright light box with a darker, tilted film on it.
fn camera_view() -> RgbImage {
    let q = OUTLINE;
    let inside = |x: f32, y: f32| {
        (0..4).all(|i| {
            let (a, b) = (q[i], q[(i + 1) % 4]);
            (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0.0
        })
    };
    RgbImage::from_fn(320, 240, |x, y| {
        let v = if inside(x as f32, y as f32) {
            90 + ((x * 7 + y * 3) % 40) as u8
        } else {
            235 - (y / 12) as u8
        };
        image::Rgb([v, v, v])
    })
}

const OUTLINE: [[f32; 2]; 4] = [[95.0, 30.0], [235.0, 40.0], [225.0, 215.0], [85.0, 205.0]];

/// Draws one screen at a panel size.
type DrawScreen = Box<dyn Fn(u32, u32) -> RgbImage>;

/// `screen` in `lang`, as the kiosk's display output wraps it.
fn render_in(lang: Language, screen: &Screen, w: u32, h: u32) -> RgbImage {
    match lang {
        Language::En => render(screen, w, h),
        l => render(&Screen::InLanguage(l, screen), w, h),
    }
}

fn screens() -> Vec<(&'static str, DrawScreen)> {
    screens_in(Language::En)
}

/// Every screen kind in `lang`. The texts a caller puts on a screen (hints) come from the same
/// table as the kiosk's; the English ones are what the English goldens were made with.
fn screens_in(lang: Language) -> Vec<(&'static str, DrawScreen)> {
    let t = lang.texts();
    let render = move |screen: &Screen, w, h| render_in(lang, screen, w, h);
    vec![
        (
            "waiting",
            Box::new(move |w, h| {
                let hint = (t.hints.copy_into)("/var/lib/cxr-edge/inbox");
                render(&Screen::Waiting { hint: &hint }, w, h)
            }),
        ),
        (
            "analysing",
            Box::new(move |w, h| render(&Screen::Analysing, w, h)),
        ),
        (
            "result",
            Box::new(move |w, h| {
                let mut r = record("pneumonia", [0.039, 0.924, 0.034, 0.002], &["pneumonia"], "Above the operating point for: non-COVID pneumonia pattern. Research use only.");
                r.quality.push(Warning::new(
                    Code::LowContrast,
                    "Low contrast: the film may be under-exposed or faded.",
                ));
                let pic = picture();
                render(
                    &Screen::Result(ResultView {
                        record: &r,
                        picture: Some(&pic),
                    }),
                    w,
                    h,
                )
            }),
        ),
        (
            "not-chest",
            Box::new(move |w, h| {
                let mut r = record(
                    "other",
                    [0.01, 0.02, 0.03, 0.94],
                    &["other"],
                    "Not a chest X-ray: no result about the lungs is given.",
                );
                r.result = Some("not a chest X-ray".into());
                // The analysis decides "not a chest X-ray" and says so with this warning.
                r.quality.push(Warning::new(
                    Code::NotChestXray,
                    "This does not look like a frontal chest X-ray; no result about the lungs is given.",
                ));
                render(
                    &Screen::Result(ResultView {
                        record: &r,
                        picture: None,
                    }),
                    w,
                    h,
                )
            }),
        ),
        (
            "no-camera",
            Box::new(move |w, h| {
                render(
                    &Screen::Error {
                        problem: Problem::NoCamera,
                        detail: "/dev/video0: No such device",
                    },
                    w,
                    h,
                )
            }),
        ),
        (
            "model-failed",
            Box::new(move |w, h| {
                render(
                    &Screen::Error {
                        problem: Problem::ModelFailed,
                        detail: "models/cxr-net.int8.onnx: sha256 mismatch",
                    },
                    w,
                    h,
                )
            }),
        ),
        (
            "preview",
            Box::new(move |w, h| {
                let cam = camera_view();
                render(
                    &Screen::Preview(PreviewView {
                        picture: &cam,
                        outline: Some(OUTLINE),
                        hint: &(t.hints.steadying)(3, 5),
                        steady: true,
                        case: None,
                    }),
                    w,
                    h,
                )
            }),
        ),
        (
            "no-film",
            Box::new(move |w, h| {
                let english = "The film is cut off by the edge of the picture; move the camera back so that all four corners are visible.";
                render(
                    &Screen::Error {
                        problem: Problem::NoFilm,
                        detail: t.warning("film_cut_off", english),
                    },
                    w,
                    h,
                )
            }),
        ),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

/// Share of pixels whose largest channel difference exceeds 24 grey levels.
fn differing(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let n = a
        .pixels()
        .zip(b.pixels())
        .filter(|(p, q)| p.0.iter().zip(q.0).any(|(x, y)| x.abs_diff(y) > 24))
        .count();
    n as f64 / (a.width() * a.height()) as f64
}

#[test]
fn screens_match_their_golden_images() {
    let update = std::env::var_os("CXR_EDGE_UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let all = [("", Language::En), ("fr-", Language::Fr)]
        .into_iter()
        .flat_map(|(prefix, l)| screens_in(l).into_iter().map(move |(n, s)| (prefix, n, s)));
    for (prefix, name, make) in all {
        let name = format!("{prefix}{name}");
        for (w, h) in GOLDEN {
            let img = make(w, h);
            let path = golden_dir().join(format!("{name}-{w}x{h}.png"));
            if update {
                std::fs::create_dir_all(golden_dir()).unwrap();
                img.save(&path).unwrap();
                continue;
            }
            let want = image::open(&path)
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (CXR_EDGE_UPDATE_GOLDEN=1 makes it)",
                        path.display()
                    )
                })
                .to_rgb8();
            let d = differing(&img, &want);
            if d > 0.005 {
                let got = std::env::temp_dir().join(format!("cxr-edge-{name}-{w}x{h}.png"));
                img.save(&got).unwrap();
                failures.push(format!(
                    "{name} {w}x{h}: {:.2}% of pixels differ (got {})",
                    100.0 * d,
                    got.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_screen_at_every_panel_size_carries_the_banner() {
    for (lang, (name, make)) in Language::ALL
        .into_iter()
        .flat_map(|l| screens_in(l).into_iter().map(move |s| (l, s)))
    {
        let name = format!("{lang} {name}");
        for (w, h) in PANELS {
            let img = make(w, h);
            assert_eq!(img.dimensions(), (w, h));
            let bottom = img.get_pixel(1, h - 2).0;
            assert_eq!(
                bottom,
                [150, 20, 20],
                "{name} {w}x{h}: banner colour at the bottom"
            );
            let white = (h * 3 / 4..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0 == [255, 255, 255])
                .count();
            assert!(
                white > 150,
                "{name} {w}x{h}: banner text missing ({white} white pixels)"
            );
        }
    }
}

#[test]
fn the_golden_images_differ_from_each_other() {
    // A guard against a renderer that draws nothing but the banner: the comparison above
    // would then pass for a blank golden set.
    let a = screens()[2].1(800, 480);
    let b = screens()[3].1(800, 480);
    assert!(differing(&a, &b) > 0.02);
}

/// The banner is in the screen's language: its strip differs between any two languages, on
/// every screen kind (so no screen draws a fixed English banner).
#[test]
fn the_banner_is_translated_on_every_screen() {
    let banner = |img: &RgbImage| -> Vec<[u8; 3]> {
        let h = img.height();
        (h - 24..h)
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(x, y).0)
            .collect()
    };
    for (w, h) in [(320, 240), (800, 480)] {
        let strips: Vec<Vec<Vec<[u8; 3]>>> = Language::ALL
            .iter()
            .map(|&l| {
                screens_in(l)
                    .iter()
                    .map(|(_, s)| banner(&s(w, h)))
                    .collect()
            })
            .collect();
        for (i, a) in strips.iter().enumerate() {
            for b in &strips[i + 1..] {
                for (k, (sa, sb)) in a.iter().zip(b).enumerate() {
                    assert_ne!(
                        sa, sb,
                        "{w}x{h}: screen {k}'s banner is the same in two languages"
                    );
                }
            }
        }
    }
}

/// On-screen buttons read in the screen's language.
#[test]
fn touch_buttons_are_translated() {
    const BUTTON: [u8; 3] = [40, 50, 70];
    let plain = Screen::Analysing;
    let touch = Screen::WithTouchButtons(&plain);
    for (w, h) in [(240, 240), (320, 240), (800, 480)] {
        let en = render_in(Language::En, &touch, w, h);
        // The rows of the buttons: their fill just inside the first one's left edge.
        let rows: Vec<u32> = (0..h).filter(|&y| en.get_pixel(8, y).0 == BUTTON).collect();
        assert!(rows.len() > 8, "{w}x{h}: no buttons");
        let strip = |img: &RgbImage| -> Vec<[u8; 3]> {
            rows.iter()
                .flat_map(|&y| (0..w).map(move |x| img.get_pixel(x, y).0))
                .collect()
        };
        for l in [Language::Fr, Language::Es, Language::Pt] {
            assert_ne!(
                strip(&en),
                strip(&render_in(l, &touch, w, h)),
                "{l} {w}x{h}"
            );
        }
    }
}

/// A character the fonts lack (a file name in another script) is drawn as '?', exactly.
#[test]
fn characters_outside_latin1_are_drawn_as_question_marks() {
    let shown = |hint: &str| render(&Screen::Waiting { hint }, 320, 240);
    assert_eq!(shown("снимок x光.png"), shown("?????? x?.png"));
    assert_ne!(shown("é à ç"), shown("? ? ?"), "Latin-1 is drawn as itself");
}
