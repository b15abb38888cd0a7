//! Camera controls against the fake device: the exact ids and values it receives, at open and
//! after a reconnect, and what is reported (once) when a camera lacks or refuses one.

use super::super::super::controls::*;
use super::*;

fn menu(id: u32, name: &str, items: &[(i64, &str)], default: i64) -> ControlInfo {
    ControlInfo {
        id,
        name: name.into(),
        kind: ControlKind::Menu,
        min: items.first().map_or(0, |i| i.0),
        max: items.last().map_or(0, |i| i.0),
        step: 1,
        default,
        value: Some(default),
        menu: items.iter().map(|(v, l)| (*v, l.to_string())).collect(),
        inactive: false,
    }
}

fn integer(id: u32, name: &str, range: (i64, i64), default: i64) -> ControlInfo {
    ControlInfo {
        id,
        name: name.into(),
        kind: ControlKind::Integer,
        min: range.0,
        max: range.1,
        step: 1,
        default,
        value: Some(default),
        menu: Vec::new(),
        inactive: false,
    }
}

fn boolean(id: u32, name: &str, default: i64) -> ControlInfo {
    ControlInfo {
        kind: ControlKind::Boolean,
        ..integer(id, name, (0, 1), default)
    }
}

/// What a UVC webcam with autofocus lists (uvcvideo's names; its exposure menu has only the
/// manual and aperture priority items).
fn webcam() -> Vec<ControlInfo> {
    vec![
        menu(
            POWER_LINE_FREQUENCY,
            "Power Line Frequency",
            &[(0, "Disabled"), (1, "50 Hz"), (2, "60 Hz")],
            2,
        ),
        menu(
            EXPOSURE_AUTO,
            "Auto Exposure",
            &[(1, "Manual Mode"), (3, "Aperture Priority Mode")],
            3,
        ),
        integer(EXPOSURE_ABSOLUTE, "Exposure Time, Absolute", (3, 2047), 250),
        boolean(FOCUS_AUTO, "Focus, Automatic Continuous", 1),
        integer(FOCUS_ABSOLUTE, "Focus (absolute)", (0, 250), 0),
    ]
}

fn camera(controls: Vec<ControlInfo>) -> Fake {
    let fake = Fake::new(vec![fmt(b"GREY", &[(64, 48)])]);
    fake.with(|s| s.controls = controls);
    fake
}

fn wanting(controls: CameraControls) -> CameraOptions {
    CameraOptions {
        controls,
        ..quick()
    }
}

fn sent(fake: &Fake) -> Vec<(u32, i64)> {
    fake.with(|s| s.set.clone())
}

fn value_of(fake: &Fake, id: u32) -> Option<i64> {
    fake.with(|s| s.controls.iter().find(|c| c.id == id).and_then(|c| c.value))
}

/// Three timeouts in a row: the source closes the camera and opens it again.
fn restart(fake: &Fake, src: &mut CameraSource) {
    for _ in 0..3 {
        assert!(matches!(src.next_frame(), Err(SourceError::Timeout { .. })));
    }
    fake.push(Step::Frame(vec![7; 64 * 48]));
    assert_eq!(src.next_frame().unwrap().mean(), 7.0);
}

#[test]
fn controls_are_applied_at_open() {
    let fake = camera(webcam());
    fake.push(Step::Frame(vec![3; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Fifty),
        exposure: Some(Exposure::Auto),
        focus: Some(Focus::Locked),
    }));
    assert_eq!(src.next_frame().unwrap().mean(), 3.0);
    assert_eq!(
        sent(&fake),
        vec![
            (POWER_LINE_FREQUENCY, 1),
            (EXPOSURE_AUTO, 3),
            (FOCUS_AUTO, 0)
        ]
    );
    assert_eq!(src.control_problems(), &[]);
}

#[test]
fn manual_exposure_and_focus_turn_the_automatic_mode_off_first() {
    let fake = camera(webcam());
    fake.push(Step::Frame(vec![3; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Sixty),
        exposure: Some(Exposure::Manual(500)),
        focus: Some(Focus::Manual(40)),
    }));
    src.next_frame().unwrap();
    assert_eq!(
        sent(&fake),
        vec![
            (POWER_LINE_FREQUENCY, 2),
            (EXPOSURE_AUTO, 1),
            (EXPOSURE_ABSOLUTE, 500),
            (FOCUS_AUTO, 0),
            (FOCUS_ABSOLUTE, 40),
        ]
    );
    assert_eq!(src.control_problems(), &[]);
}

#[test]
fn nothing_wanted_touches_no_control() {
    let fake = camera(webcam());
    fake.push(Step::Frame(vec![3; 64 * 48]));
    let mut src = fake.source(quick());
    src.next_frame().unwrap();
    assert_eq!(sent(&fake), vec![]);
}

#[test]
fn controls_are_applied_again_after_a_reconnect() {
    let fake = camera(webcam());
    fake.push(Step::Frame(vec![1; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Fifty),
        exposure: None,
        focus: Some(Focus::Manual(120)),
    }));
    src.next_frame().unwrap();
    let once = vec![
        (POWER_LINE_FREQUENCY, 1),
        (FOCUS_AUTO, 0),
        (FOCUS_ABSOLUTE, 120),
    ];
    assert_eq!(sent(&fake), once);

    // Unplugged and back: the fake's fresh device starts from its defaults (60 Hz, autofocus).
    fake.with(|s| s.plugged = false);
    assert!(matches!(
        src.next_frame(),
        Err(SourceError::Unavailable { .. })
    ));
    fake.with(|s| {
        s.plugged = true;
        s.steps.push_back(Step::Frame(vec![2; 64 * 48]));
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match src.next_frame() {
            Ok(f) => break assert_eq!(f.mean(), 2.0),
            Err(SourceError::Unavailable { .. }) if Instant::now() < deadline => continue,
            Err(e) => panic!("camera did not come back: {e}"),
        }
    }
    assert_eq!(fake.with(|s| s.connects), 2);
    assert_eq!(sent(&fake), [once.clone(), once].concat());
    assert_eq!(value_of(&fake, POWER_LINE_FREQUENCY), Some(1));
    assert_eq!(value_of(&fake, FOCUS_AUTO), Some(0));
    assert_eq!(value_of(&fake, FOCUS_ABSOLUTE), Some(120));
}

#[test]
fn a_camera_lacking_a_control_says_so_once_and_still_streams() {
    // A fixed-focus camera: no focus controls at all.
    let mut controls = webcam();
    controls.retain(|c| c.id != FOCUS_AUTO && c.id != FOCUS_ABSOLUTE);
    let fake = camera(controls);
    fake.push(Step::Frame(vec![4; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Fifty),
        exposure: None,
        focus: Some(Focus::Locked),
    }));
    assert_eq!(src.next_frame().unwrap().mean(), 4.0);
    restart(&fake, &mut src);
    restart(&fake, &mut src);
    assert_eq!(fake.with(|s| s.connects), 3);
    // The power line frequency was set at every open; the focus never asked for.
    assert_eq!(sent(&fake), vec![(POWER_LINE_FREQUENCY, 1); 3]);
    let problems = src.control_problems();
    assert_eq!(
        problems,
        &[ControlProblem::Missing {
            id: FOCUS_AUTO,
            setting: "focus = \"locked\"".into()
        }]
    );
    assert_eq!(
        problems[0].to_string(),
        "the camera has no autofocus control, so focus = \"locked\" is not applied"
    );
}

#[test]
fn an_exposure_out_of_range_is_refused_with_the_range() {
    let fake = camera(webcam());
    fake.push(Step::Frame(vec![5; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        exposure: Some(Exposure::Manual(5000)),
        ..CameraControls::default()
    }));
    assert_eq!(src.next_frame().unwrap().mean(), 5.0);
    // Not even the manual mode: it would keep the camera's old exposure time.
    assert_eq!(sent(&fake), vec![]);
    assert_eq!(value_of(&fake, EXPOSURE_AUTO), Some(3));
    let problems: Vec<String> = src
        .control_problems()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        problems,
        ["exposure = 5000 is outside this camera's range for Exposure Time, Absolute, 3 ..= 2047 \
          (see `cxr-edge devices`); not applied, the camera keeps its own setting"]
    );
}

#[test]
fn auto_exposure_is_the_auto_mode_where_the_menu_lacks_aperture_priority() {
    let mut controls = webcam();
    controls[1] = menu(
        EXPOSURE_AUTO,
        "Auto Exposure",
        &[(0, "Auto Mode"), (1, "Manual Mode")],
        0,
    );
    let fake = camera(controls);
    fake.push(Step::Frame(vec![5; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        exposure: Some(Exposure::Auto),
        ..CameraControls::default()
    }));
    src.next_frame().unwrap();
    assert_eq!(sent(&fake), vec![(EXPOSURE_AUTO, 0)]);
}

#[test]
fn a_refused_value_or_an_unlisted_menu_item_is_reported_once_and_not_fatal() {
    let mut controls = webcam();
    // A camera whose power line menu lacks 50 Hz, and whose driver refuses autofocus off.
    controls[0] = menu(
        POWER_LINE_FREQUENCY,
        "Power Line Frequency",
        &[(0, "Disabled"), (2, "60 Hz")],
        2,
    );
    let fake = camera(controls);
    fake.with(|s| s.refuse = vec![(FOCUS_AUTO, 13)]);
    fake.push(Step::Frame(vec![6; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Fifty),
        exposure: None,
        focus: Some(Focus::Manual(30)),
    }));
    assert_eq!(src.next_frame().unwrap().mean(), 6.0);
    restart(&fake, &mut src);
    // Tried at each open; the lens position only after autofocus is off, so never.
    assert_eq!(sent(&fake), vec![(FOCUS_AUTO, 0); 2]);
    let problems: Vec<String> = src
        .control_problems()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        problems,
        [
            "mains_hz = 50 is not applied: the camera's Power Line Frequency offers only [0 Disabled, 2 60 Hz]",
            "the camera refused Focus, Automatic Continuous = 0 (for focus = 30): the control is read-only or inactive now",
        ]
    );
}

#[test]
fn a_camera_that_cannot_list_its_controls_still_streams() {
    let fake = camera(webcam());
    fake.with(|s| s.list_error = Some(25));
    fake.push(Step::Frame(vec![8; 64 * 48]));
    let mut src = fake.source(wanting(CameraControls {
        mains_hz: Some(MainsHz::Fifty),
        ..CameraControls::default()
    }));
    assert_eq!(src.next_frame().unwrap().mean(), 8.0);
    restart(&fake, &mut src);
    assert_eq!(sent(&fake), vec![]);
    assert_eq!(src.control_problems().len(), 1);
    assert!(matches!(src.control_problems()[0], ControlProblem::List(_)));
}

#[test]
fn the_devices_line_shows_range_menu_value_and_config_key() {
    let mut c = webcam();
    c[2].value = Some(156);
    c[2].inactive = true;
    assert_eq!(
        c[0].summary(),
        "Power Line Frequency: [0 Disabled, 1 50 Hz, 2 60 Hz], default 2 (60 Hz), now 2 (60 Hz)  <- mains_hz in the config"
    );
    assert_eq!(
        c[2].summary(),
        "Exposure Time, Absolute: 3 ..= 2047 (step 1), default 250, now 156 [inactive]  <- exposure in the config"
    );
    assert_eq!(
        c[3].summary(),
        "Focus, Automatic Continuous: on/off, default on, now on  <- focus in the config"
    );
    let other = integer(0x0098_0900, "Brightness", (-64, 64), 0);
    assert_eq!(
        other.summary(),
        "Brightness: -64 ..= 64 (step 1), default 0, now 0"
    );
}

#[test]
fn control_values_parse_and_refuse() {
    assert_eq!(MainsHz::from_hz(50), Ok(MainsHz::Fifty));
    assert_eq!(MainsHz::from_hz(60), Ok(MainsHz::Sixty));
    assert!(MainsHz::from_hz(55).is_err());
    assert_eq!(Exposure::from_word("auto"), Ok(Exposure::Auto));
    assert_eq!(Exposure::from_number(250), Ok(Exposure::Manual(250)));
    assert!(Exposure::from_number(0).is_err());
    assert!(Exposure::from_number(1 << 31).is_err());
    assert!(Exposure::from_word("manual").is_err());
    assert_eq!(Focus::from_word("locked"), Ok(Focus::Locked));
    assert_eq!(Focus::from_word("auto"), Ok(Focus::Auto));
    assert_eq!(Focus::from_number(0), Ok(Focus::Manual(0)));
    assert!(Focus::from_word("fixed").is_err());
}
