//! Film finding, rectification and photo gates on simulated camera frames of the committed
//! sample films. Deterministic (fixed seeds) and small (320x240 frames) so it runs in seconds.

use std::path::Path;

use cxr_edge::capture::{decode_image, Limits};
use cxr_edge::film::gates::{
    auto_is_bare_film, blur_score, check_photo, looks_inverted, BLUR_LIMIT,
};
use cxr_edge::film::simulate::{invert, simulate, Placement, Scene, SimOptions};
use cxr_edge::film::{find_film, rectify, Code, FindError, Quad};
use cxr_edge::pixels::Frame;

const FILMS: [&str; 5] = [
    "ieee8023-covid-1.png",
    "kermany-normal-1.png",
    "kermany-pneumonia-1.png",
    "nih-normal-1.png",
    "nih-pneumonia-1.png",
];

fn film(name: &str) -> Frame {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/samples")
        .join(name);
    decode_image(&std::fs::read(p).unwrap(), &Limits::default()).unwrap()
}

fn films() -> Vec<Frame> {
    FILMS.iter().map(|n| film(n)).collect()
}

/// Largest corner distance as a share of the film diagonal.
fn corner_error(found: &Quad, truth: &Quad) -> f32 {
    let diag = (truth[0][0] - truth[2][0])
        .hypot(truth[0][1] - truth[2][1])
        .max((truth[1][0] - truth[3][0]).hypot(truth[1][1] - truth[3][1]));
    (0..4)
        .map(|k| (found[k][0] - truth[k][0]).hypot(found[k][1] - truth[k][1]))
        .fold(0f32, f32::max)
        / diag
}

fn correlation(a: &Frame, b: &Frame) -> f32 {
    let (ma, mb) = (a.mean(), b.mean());
    let (mut sab, mut saa, mut sbb) = (0f64, 0f64, 0f64);
    for (x, y) in a.data.iter().zip(&b.data) {
        let (dx, dy) = ((x - ma) as f64, (y - mb) as f64);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    (sab / (saa * sbb).sqrt().max(1e-9)) as f32
}

/// Measured level, not the goal: at 320x240 on these five small sample films the finder gets
/// about half of the frames within 2% (see the report in finder_eval for 640x480 numbers); the
/// goal is 95%. This guards against regressions.
#[test]
fn films_in_simulated_photos_are_found_precisely() {
    let films = films();
    let mut errors = Vec::new();
    for i in 0..12u64 {
        let f = &films[i as usize % films.len()];
        let severity = (i % 6) as f32 / 5.0;
        let sim = simulate(
            f,
            &SimOptions::new(320, 240, severity, Placement::Inside, 100 + i),
        );
        let err = match find_film(&sim.frame) {
            Ok(found) => corner_error(&found.corners, &sim.corners.unwrap()),
            Err(_) => f32::INFINITY,
        };
        errors.push(err);
    }
    let good = errors.iter().filter(|&&e| e <= 0.02).count();
    let shown: Vec<f32> = errors.iter().map(|e| (e * 1000.0).round() / 10.0).collect();
    assert!(
        good >= 6,
        "only {good}/12 within 2% of the diagonal: {shown:?}"
    );
    // Where the film is found at all, it is found precisely more often than not.
    let found: Vec<&f32> = errors.iter().filter(|e| e.is_finite()).collect();
    assert!(
        found.iter().filter(|&&&e| e <= 0.02).count() * 3 >= found.len() * 2,
        "{shown:?}"
    );
}

#[test]
fn cut_off_and_empty_frames_are_rejected_never_guessed() {
    let films = films();
    for i in 0..8u64 {
        let f = &films[i as usize % films.len()];
        let severity = (i % 4) as f32 / 3.0;
        let cut = simulate(
            f,
            &SimOptions::new(320, 240, severity, Placement::CutOff, 200 + i),
        );
        let res = find_film(&cut.frame);
        assert!(
            res.is_err(),
            "seed {}: cut-off film accepted: {res:?}",
            200 + i
        );
        let empty = simulate(
            f,
            &SimOptions::new(320, 240, severity, Placement::Absent, 300 + i),
        );
        let res = find_film(&empty.frame);
        assert!(
            res.is_err(),
            "seed {}: empty frame ({:?}) accepted: {res:?}",
            300 + i,
            empty.scene
        );
    }
}

/// A hand on a back-lit film is as dark as the film, and its arm joins the film to the dark
/// room or the frame border; the finder must still find the film (inside the light box), and
/// must still reject a cut-off film held the same way. A measured level, as a guard: the finder
/// before the light-box sweep found 8 of these 10 films and accepted seed 400's cut-off frame
/// (the film's bright lungs merged with the light box below them looked like a whole film).
#[test]
fn a_hand_holding_a_film_on_a_light_box_neither_hides_nor_completes_it() {
    let films = films();
    let (mut errors, mut accepted) = (Vec::new(), Vec::new());
    for i in 0..10u64 {
        let f = &films[i as usize % films.len()];
        let mut opt = SimOptions::new(320, 240, 0.3, Placement::Inside, 400 + i);
        opt.scene = Some(Scene::LightBoxInRoom);
        opt.hand = Some(true);
        let sim = simulate(f, &opt);
        errors.push(match find_film(&sim.frame) {
            Ok(found) => corner_error(&found.corners, &sim.corners.unwrap()),
            Err(_) => f32::INFINITY,
        });
        let mut cut = opt.clone();
        cut.placement = Placement::CutOff;
        if find_film(&simulate(f, &cut).frame).is_ok() {
            accepted.push(400 + i);
        }
    }
    let shown: Vec<f32> = errors.iter().map(|e| (e * 1000.0).round() / 10.0).collect();
    let good = errors.iter().filter(|&&e| e <= 0.02).count();
    assert!(good >= 9, "only {good}/10 within 2%: {shown:?}");
    assert!(
        accepted.is_empty(),
        "cut-off films accepted, seeds {accepted:?}"
    );
}

#[test]
fn a_tiny_film_is_reported_as_too_small() {
    let f = film("nih-normal-1.png");
    let sim = simulate(&f, &SimOptions::new(320, 240, 0.1, Placement::Small, 7));
    assert!(
        matches!(
            find_film(&sim.frame),
            Err(FindError::TooSmall { .. }) | Err(FindError::NoFilm)
        ),
        "{:?}",
        find_film(&sim.frame)
    );
    let blocked = check_photo(&sim.frame).unwrap_err();
    assert!([Code::FilmTooSmall, Code::NoFilm].contains(&blocked.reason.code));
}

#[test]
fn rectified_film_matches_the_original() {
    for (i, name) in ["nih-normal-1.png", "ieee8023-covid-1.png"]
        .iter()
        .enumerate()
    {
        let f = film(name);
        // This checks the warp, not the finder: a clean photo.
        let mut opt = SimOptions::new(320, 240, 0.2, Placement::Inside, 400 + i as u64);
        opt.hand = Some(false);
        opt.glare = Some(false);
        opt.scene = Some(Scene::LightBox);
        let sim = simulate(&f, &opt);
        // The finder is tested above; here the warp is checked with the true corners.
        let truth = sim.corners.unwrap();
        let r = rectify(&sim.frame, &truth, 96, 96).unwrap();
        let orig = cxr_edge::pixels::resize_area(&f, 96, 96);
        let c = correlation(&r, &orig);
        assert!(c > 0.9, "{name}: correlation {c}");
        // A wrong quad (here: the frame itself) correlates much less.
        let whole = [[0.0, 0.0], [320.0, 0.0], [320.0, 240.0], [0.0, 240.0]];
        assert!(correlation(&rectify(&sim.frame, &whole, 96, 96).unwrap(), &orig) < c - 0.2);
    }
}

#[test]
fn photo_check_flags_inverted_and_blurred_films() {
    let f = film("nih-normal-1.png");
    let mut opt = SimOptions::new(320, 240, 0.1, Placement::Inside, 11);
    opt.glare = Some(false);
    opt.hand = Some(false);
    opt.defocus = Some(0.0);
    let sharp = check_photo(&simulate(&f, &opt).frame).expect("film found");
    assert!(
        !sharp.inverted
            && sharp
                .warnings
                .iter()
                .all(|w| w.code != Code::Blurred && w.code != Code::Inverted),
        "{:?}",
        sharp.warnings
    );

    let neg = check_photo(&simulate(&invert(&f), &opt).frame).expect("negative found");
    assert!(neg.inverted && neg.warnings[0].code == Code::Inverted);
    // Inverted back: the analysed film correlates with the positive original.
    let r = cxr_edge::pixels::resize_area(&neg.film, 64, 64);
    assert!(correlation(&r, &cxr_edge::pixels::resize_area(&f, 64, 64)) > 0.8);

    opt.defocus = Some(7.0);
    let blurred = check_photo(&simulate(&f, &opt).frame).expect("blurred film still found");
    assert!(
        blurred.warnings.iter().any(|w| w.code == Code::Blurred),
        "score {}",
        blur_score(&blurred.film)
    );
    assert!(blur_score(&blurred.film) > BLUR_LIMIT && blur_score(&sharp.film) < BLUR_LIMIT);
}

#[test]
fn inverted_sample_films_are_detected() {
    for f in films() {
        assert!(!looks_inverted(&f));
        assert!(looks_inverted(&invert(&f)));
    }
}

#[test]
fn auto_mode_tells_bare_films_from_photos() {
    let films = films();
    let bare = films.iter().filter(|f| auto_is_bare_film(f)).count();
    let photos = films
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            !auto_is_bare_film(
                &simulate(
                    f,
                    &SimOptions::new(320, 240, 0.3, Placement::Inside, 500 + *i as u64),
                )
                .frame,
            )
        })
        .count();
    assert!(
        bare >= 3 && photos >= 3,
        "bare films taken as bare: {bare}/5, photos taken as photos: {photos}/5"
    );
}

/// One gate each, on a real sample film: every warning fires on the defect it names and stays
/// quiet on the clean film; the blocking gates give their stable codes.
#[test]
fn every_photo_gate_fires_on_its_defect() {
    use cxr_edge::film::filters::gaussian_blur;
    use cxr_edge::film::gates::film_warnings;
    let f = film("nih-normal-1.png");
    let codes = |x: &Frame| {
        film_warnings(x)
            .into_iter()
            .map(|w| w.code)
            .collect::<Vec<_>>()
    };
    // The clean film as the gates see it: a sharp simulated photo, found and rectified.
    let mut opt = SimOptions::new(320, 240, 0.1, Placement::Inside, 11);
    opt.glare = Some(false);
    opt.hand = Some(false);
    opt.defocus = Some(0.0);
    let rep = check_photo(&simulate(&f, &opt).frame).expect("film found");
    let clean = rep.film;
    let (w, h) = (clean.width, clean.height);
    assert!(codes(&clean).is_empty(), "{:?}", codes(&clean));
    let map = |k: f32| {
        Frame::new(
            w,
            h,
            clean.data.iter().map(|v| (v * k).min(255.0)).collect(),
        )
    };
    assert!(codes(&map(0.15)).contains(&Code::Underexposed));
    assert!(codes(&map(3.0)).contains(&Code::Overexposed));
    // Focus blur and horizontal camera shake (a 12-pixel smear).
    assert!(codes(&gaussian_blur(&clean, 4.0)).contains(&Code::Blurred));
    let mut shaken = clean.clone();
    for y in 0..h {
        for x in 0..w {
            shaken.data[y * w + x] = (0..12)
                .map(|k| clean.data[y * w + (x + k).min(w - 1)])
                .sum::<f32>()
                / 12.0;
        }
    }
    assert!(
        codes(&shaken).contains(&Code::Blurred),
        "{}",
        blur_score(&shaken)
    );
    // A saturated glare spot over the right lung.
    let mut glare = clean.clone();
    for y in h * 3 / 10..h * 4 / 10 {
        for x in w / 4..w * 4 / 10 {
            glare.data[y * w + x] = 255.0;
        }
    }
    assert_eq!(codes(&glare), vec![Code::GlareOverLungs]);

    // Blocking gates through check_photo: no film, cut off.
    let absent = simulate(&f, &SimOptions::new(320, 240, 0.2, Placement::Absent, 21));
    assert_eq!(
        check_photo(&absent.frame).unwrap_err().reason.code,
        Code::NoFilm
    );
    let cut = simulate(&f, &SimOptions::new(320, 240, 0.2, Placement::CutOff, 22));
    let code = check_photo(&cut.frame).unwrap_err().reason.code;
    assert!([Code::FilmCutOff, Code::NoFilm].contains(&code), "{code}");
}
