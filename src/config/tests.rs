//! The configuration file: parsing, defaults, errors and the shipped board profiles.

use super::*;

#[test]
fn empty_file_gives_the_sample_kiosk_without_camera_or_framebuffer() {
    let c = Config::default();
    // Parsing looks at no hardware: `auto` is resolved when the source or display is
    // opened (the first camera, else the samples; DRM, else /dev/fb0, else PNG files).
    assert_eq!(c.source, SourceSpec::Auto);
    assert_eq!(c.display, DisplaySpec::Auto);
    match crate::capture::first_camera() {
        None => assert_eq!(c.source.clone().resolve(), SourceSpec::Samples),
        Some(cam) => assert_eq!(c.source.clone().resolve(), SourceSpec::Camera(cam)),
    }
    assert!(c.storage.keep_images);
    assert!(c.auto_capture);
    assert_eq!(c.camera_size, (1280, 720));
    assert!(c.buttons.lines.is_empty() && c.buttons.keyboard);
    assert!(c.buttons.evdev);
    assert_eq!(c.buttons.keys, KeyMap::default());
}

#[test]
fn input_device_settings() {
    let c =
        Config::parse("[buttons]\nevdev = false\nkeys = \"capture=KEY_F13, next=kp6\"\n").unwrap();
    assert!(!c.buttons.evdev);
    assert_eq!(
        c.buttons.keys.button(183),
        Some(crate::input::Button::Capture)
    );
    assert_eq!(c.buttons.keys.button(77), Some(crate::input::Button::Next));
    assert_eq!(c.buttons.keys.button(28), None);
    let c = Config::parse("[buttons]\nkeys = \" \"\n").unwrap();
    assert_eq!(c.buttons.keys, KeyMap::default());
    let e = Config::parse("[buttons]\nkeys = \"capture=ENTER+PEDAL\"\n").unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("unknown key 'PEDAL'") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    assert_eq!(
        Config::parse("source = \"camera:/dev/video0\"")
            .unwrap()
            .source,
        SourceSpec::Camera("/dev/video0".into())
    );
    let e = Config::parse("source = \"webcam\"").unwrap_err();
    assert!(format!("{e:#}").contains("'camera:DEVICE'"), "{e:#}");
    assert!(Config::parse("steady_frames = 0").is_err());
    assert!(Config::parse("camera_size = \"big\"").is_err());
    assert_eq!(
        Config::parse("display = \"fb:/dev/fb1\"").unwrap().display,
        DisplaySpec::Framebuffer("/dev/fb1".into())
    );
    let e = Config::parse("display = \"hdmi\"").unwrap_err();
    assert!(format!("{e:#}").contains("'fb:/dev/fbN'"), "{e:#}");
    assert!(
        format!("{e:#}").contains("'drm:/dev/dri/cardN?mode=WxH'"),
        "{e:#}"
    );
    assert!(Config::parse("poll_ms = 5").is_err());
    assert!(Config::parse("screen_size = \"800by480\"").is_err());
    assert!(Config::parse("screen_size = \"10x10\"").is_err());
    assert_eq!(
        Config::parse("screen_size = \"240x240\"")
            .unwrap()
            .screen_size,
        (240, 240)
    );
    let e = Config::parse("[storage]\ndirectory = \"x\"").unwrap_err();
    assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    assert!(format!("{e:#}").contains("line 2"), "{e:#}");
}

#[test]
fn camera_controls_parse_and_bad_ones_are_refused_with_the_line() {
    assert_eq!(Config::default().camera_controls, CameraControls::default());
    let c = Config::parse("mains_hz = 50\nexposure = \"auto\"\nfocus = \"locked\"\n").unwrap();
    assert_eq!(
        c.camera_controls,
        CameraControls {
            mains_hz: Some(MainsHz::Fifty),
            exposure: Some(Exposure::Auto),
            focus: Some(Focus::Locked)
        }
    );
    let c = Config::parse("mains_hz = 60\nexposure = 250\nfocus = 30\n").unwrap();
    assert_eq!(
        c.camera_controls,
        CameraControls {
            mains_hz: Some(MainsHz::Sixty),
            exposure: Some(Exposure::Manual(250)),
            focus: Some(Focus::Manual(30))
        }
    );
    assert_eq!(
        Config::parse("focus = \"auto\"")
            .unwrap()
            .camera_controls
            .focus,
        Some(Focus::Auto)
    );
    for (text, words) in [
        ("mains_hz = 55", "mains_hz = 55: use 50 or 60"),
        ("mains_hz = \"50Hz\"", "mains_hz = \"50Hz\": use 50 or 60"),
        (
            "exposure = \"manual\"",
            "exposure = \"manual\": use \"auto\" or a fixed exposure time",
        ),
        ("exposure = 0", "exposure = 0: use \"auto\""),
        ("exposure = 2.5", "exposure = 2.5: use \"auto\""),
        (
            "focus = \"fixed\"",
            "focus = \"fixed\": use \"auto\", \"locked\"",
        ),
        ("focus = true", "focus = true: use"),
    ] {
        let e = format!(
            "{:#}",
            Config::parse(&format!("poll_ms = 1000\n{text}\n")).unwrap_err()
        );
        assert!(e.contains(words) && e.contains("line 2"), "{text}: {e}");
    }
}

/// `display = "drm..."`: the card and mode are taken as written; no card is opened.
#[cfg(feature = "drm")]
#[test]
fn drm_displays_parse_without_touching_the_hardware() {
    use crate::display::drm::DrmConfig;
    let drm = |text: &str| Config::parse(&format!("display = \"{text}\"")).map(|c| c.display);
    assert_eq!(
        drm("drm").unwrap(),
        DisplaySpec::Drm(DrmConfig {
            card: None,
            mode: None
        })
    );
    assert_eq!(
        drm("drm:/dev/dri/card0?mode=1280x720").unwrap(),
        DisplaySpec::Drm(DrmConfig {
            card: Some("/dev/dri/card0".into()),
            mode: Some((1280, 720))
        })
    );
    assert_eq!(
        drm("drm:/dev/dri/card7").unwrap(),
        DisplaySpec::Drm(DrmConfig {
            card: Some("/dev/dri/card7".into()),
            mode: None
        })
    );
    let e = drm("drm:/dev/dri/card0?mode=wide").unwrap_err();
    assert!(format!("{e:#}").contains("bad mode 'wide'"), "{e:#}");
    assert!(drm("drm:/dev/dri/card0?depth=16").is_err());
}

/// The token's line never comes back in an error (it went to the journal before).
#[test]
fn a_broken_config_does_not_echo_the_token() {
    for text in [
        "[serve]\ntoken = \"s3cret-token-abcdef0123\n",
        "[serve]\ntoken = \"s3cret-token-abcdef0123\" junk\n",
        "[serve]\ntoken = \"s3cret-token-abcdef0123\"\ntoken = \"s3cret-token-abcdef0123\"\n",
    ] {
        let e = format!("{:#}", Config::parse(text).unwrap_err());
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("line 2") || e.contains("line 3"), "{e}");
    }
}

/// The commented-out kiosk lines of the board profiles, switched on.
#[test]
fn the_kiosk_settings_of_the_profiles_parse() {
    let c = Config::parse(
        "source = \"camera:/dev/v4l/by-id/usb-YOUR_CAMERA-video-index0\"\n\
         camera_size = \"1280x720\"\nauto_capture = true\n\
         mains_hz = 50\nexposure = \"auto\"\nfocus = \"locked\"\n\
         display = \"fb:/dev/fb0\"\n\
         [buttons]\nchip = \"/dev/gpiochip0\"\nlines = \"capture=17,next=27,back=22\"\n\
         controller = \"pinctrl-rp1\"\n",
    )
    .unwrap();
    assert!(matches!(c.source, SourceSpec::Camera(_)));
    assert_eq!(
        crate::input::parse_button_lines(&c.buttons.lines)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(c.buttons.controller(), Some("pinctrl-rp1"));
    let c =
        Config::parse("[buttons]\nlines = \"capture=GPIO17,next=GPIO27,back=GPIO22\"\n").unwrap();
    assert_eq!(c.buttons.controller(), None);
    assert!(crate::input::parse_button_lines(&c.buttons.lines).is_ok());
    #[cfg(feature = "spi-panel")]
    assert!(matches!(
        Config::parse("display = \"spi:st7789:/dev/spidev0.0?dc=24&reset=25&bl=18\"")
            .unwrap()
            .display,
        DisplaySpec::Spi(_)
    ));
}

#[test]
fn the_language_is_one_of_the_codes() {
    use crate::lang::Language;
    assert_eq!(Config::default().language, Language::En);
    assert_eq!(
        Config::parse("language = \"pt\"").unwrap().language,
        Language::Pt
    );
    let e = format!("{:#}", Config::parse("\nlanguage = \"de\"").unwrap_err());
    assert!(
        e.contains("line 2") && e.contains("\"en\", \"fr\", \"es\", \"pt\""),
        "{e}"
    );
}

/// Each board profile names the label of the controller its header lines are on.
#[test]
fn board_profiles_name_their_gpio_controller() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    for (board, label) in [
        ("rpi5", Some("pinctrl-rp1")),
        ("rpi4", Some("pinctrl-bcm2711")),
        ("jetson-orin-nano", Some("tegra234-gpio")),
        ("generic", None),
    ] {
        let c = Config::load(&boards.join(board).join("config.toml")).unwrap();
        assert_eq!(c.buttons.controller(), label, "{board}");
    }
}

/// An SPI panel's lines are checked against `[buttons] controller` unless its spec says.
#[cfg(feature = "spi-panel")]
#[test]
fn an_spi_panel_takes_the_board_controller() {
    let label = |text: &str| match Config::parse(text).unwrap().display {
        DisplaySpec::Spi(s) => s.expected_gpio_controller().map(String::from),
        _ => panic!("not a panel: {text}"),
    };
    let panel = "display = \"spi:st7789:/dev/spidev0.0?dc=GPIO24";
    let board = "\"\n[buttons]\ncontroller = \"pinctrl-rp1\"\n";
    assert_eq!(
        label(&format!("{panel}{board}")).as_deref(),
        Some("pinctrl-rp1")
    );
    assert_eq!(
        label(&format!("{panel}&gpio=x{board}")).as_deref(),
        Some("x")
    );
    assert_eq!(label(&format!("{panel}&gpio=none{board}")), None);
    assert_eq!(label(&format!("{panel}\"\n")), None);
}

/// The board profiles shipped in board/ and in the package must stay loadable.
#[test]
fn every_board_profile_parses() {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("board");
    let mut n = 0;
    for e in std::fs::read_dir(&boards).unwrap() {
        let p = e.unwrap().path().join("config.toml");
        if p.exists() {
            let c = Config::load(&p).unwrap_or_else(|e| panic!("{e:#}"));
            assert!(matches!(c.source, SourceSpec::Inbox(_)), "{}", p.display());
            assert!(c.storage.dir.is_absolute(), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 3, "expected rpi4, rpi5 and jetson profiles, found {n}");
}
