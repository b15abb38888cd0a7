//! GPIO line lookup against fake chips with labels: names, numbers, the controller check.

use super::*;

/// Chips that exist only in the test; `broken` paths are listed but cannot be read.
pub(crate) struct FakeChips {
    pub(crate) chips: Vec<ChipInfo>,
    pub(crate) broken: Vec<PathBuf>,
}

impl Chips for FakeChips {
    fn paths(&self) -> Result<Vec<PathBuf>> {
        let mut p: Vec<PathBuf> = self.chips.iter().map(|c| c.path.clone()).collect();
        p.extend(self.broken.iter().cloned());
        Ok(p)
    }

    fn read(&self, path: &Path) -> Result<ChipInfo> {
        self.chips
            .iter()
            .find(|c| c.path == path)
            .cloned()
            .with_context(|| {
                format!(
                    "cannot read GPIO chip {}: Permission denied",
                    path.display()
                )
            })
    }
}

/// A chip whose lines are named `prefix0`, `prefix1`, ... (`n` of them).
pub(crate) fn chip(path: &str, label: &str, prefix: &str, n: u32) -> ChipInfo {
    ChipInfo {
        path: PathBuf::from(path),
        label: label.to_string(),
        names: (0..n).map(|i| format!("{prefix}{i}")).collect(),
    }
}

/// An older Pi 5 kernel: the SoC's own controller first, RP1 (the header) as gpiochip4.
pub(crate) fn pi5_old_kernel() -> FakeChips {
    FakeChips {
        chips: vec![
            chip("/dev/gpiochip0", "pinctrl-bcm2712", "SOC", 32),
            chip("/dev/gpiochip4", "pinctrl-rp1", "GPIO", 54),
        ],
        broken: vec![],
    }
}

fn name(s: &str) -> LineRef {
    LineRef::Name(s.to_string())
}

fn find(c: &FakeChips, line: LineRef, chip: &str, expect: Option<&str>) -> Result<Found> {
    Lookup::scan(c, expect, "[buttons] controller").find(c, &line, Path::new(chip))
}

#[test]
fn parse_line_refs() {
    assert_eq!(LineRef::parse(" 17 ").unwrap(), LineRef::Offset(17));
    assert_eq!(LineRef::parse("GPIO17").unwrap(), name("GPIO17"));
    assert_eq!(LineRef::parse("PH.00").unwrap(), name("PH.00"));
    for bad in ["", "-1", "+3", "99999999999", "GPIO 17", "a\u{1b}[2J"] {
        assert!(LineRef::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn name_is_found_on_the_chip_with_the_expected_label() {
    let f = find(
        &pi5_old_kernel(),
        name("GPIO17"),
        "/dev/gpiochip0",
        Some("pinctrl-rp1"),
    )
    .unwrap();
    assert_eq!(
        (f.chip.to_str().unwrap(), f.label.as_str(), f.offset),
        ("/dev/gpiochip4", "pinctrl-rp1", 17)
    );
    assert_eq!(f.name, "GPIO17");
}

#[test]
fn name_on_a_chip_with_another_label_is_refused_naming_both() {
    // A Pi 4 profile on a machine where GPIO17 is on the RP1.
    let e = find(
        &pi5_old_kernel(),
        name("GPIO17"),
        "/dev/gpiochip0",
        Some("pinctrl-bcm2711"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("\"pinctrl-rp1\"") && e.contains("\"pinctrl-bcm2711\""),
        "{e}"
    );
    assert!(
        e.contains("/dev/gpiochip4") && e.contains("refusing"),
        "{e}"
    );
    assert!(e.contains("[buttons] controller"), "names the setting: {e}");
}

#[test]
fn number_on_a_chip_path_with_another_label_is_refused() {
    // Numbers on gpiochip0 of an older Pi 5 kernel are the SoC's lines, not the header's.
    let c = pi5_old_kernel();
    let e = find(
        &c,
        LineRef::Offset(17),
        "/dev/gpiochip0",
        Some("pinctrl-rp1"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("/dev/gpiochip0")
            && e.contains("\"pinctrl-bcm2712\"")
            && e.contains("\"pinctrl-rp1\""),
        "{e}"
    );
    assert!(
        e.contains("/dev/gpiochip4") && e.contains("\"GPIO17\""),
        "the fix: {e}"
    );
    // The same number on the right chip, and without a check, is taken.
    let f = find(
        &c,
        LineRef::Offset(17),
        "/dev/gpiochip4",
        Some("pinctrl-rp1"),
    )
    .unwrap();
    assert_eq!((f.offset, f.name.as_str()), (17, "GPIO17"));
    let f = find(&c, LineRef::Offset(17), "/dev/gpiochip0", None).unwrap();
    assert_eq!(
        (f.chip, f.name),
        (PathBuf::from("/dev/gpiochip0"), "SOC17".into())
    );
    let e = find(&c, LineRef::Offset(60), "/dev/gpiochip4", None).unwrap_err();
    assert!(e.to_string().contains("54 lines (0-53)"), "{e}");
    let e = find(&c, LineRef::Offset(1), "/dev/gpiochip9", None).unwrap_err();
    assert!(e.to_string().contains("/dev/gpiochip9"), "{e}");
}

#[test]
fn missing_name_lists_what_exists_briefly() {
    let mut c = pi5_old_kernel();
    c.broken.push(PathBuf::from("/dev/gpiochip5"));
    let e = find(&c, name("GPIO99"), "/dev/gpiochip0", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"GPIO99\""), "{e}");
    assert!(
        e.contains("/dev/gpiochip0 \"pinctrl-bcm2712\" (32 lines: \"SOC0\"")
            && e.contains("/dev/gpiochip4 \"pinctrl-rp1\" (54 lines: \"GPIO0\""),
        "{e}"
    );
    assert!(!e.contains("GPIO5\""), "at most 5 names a chip: {e}");
    assert!(
        e.contains("/dev/gpiochip5 unreadable") && e.contains("Permission denied"),
        "{e}"
    );
    let e = find(&c, name("gpio17"), "/dev/gpiochip0", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("case-sensitive: \"GPIO17\""), "{e}");
    let none = FakeChips {
        chips: vec![],
        broken: vec![],
    };
    let e = find(&none, name("GPIO17"), "/dev/gpiochip0", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no GPIO chips"), "{e}");
}

#[test]
fn name_on_two_chips_takes_the_one_with_the_expected_label() {
    let c = FakeChips {
        chips: vec![
            chip("/dev/gpiochip0", "gpio-expander", "GPIO", 8),
            chip("/dev/gpiochip1", "pinctrl-bcm2711", "GPIO", 58),
            chip("/dev/gpiochip2", "other", "GPIO", 8),
        ],
        broken: vec![],
    };
    let f = find(&c, name("GPIO4"), "/dev/gpiochip0", Some("pinctrl-bcm2711")).unwrap();
    assert_eq!(f.chip, PathBuf::from("/dev/gpiochip1"));
    let f = find(&c, name("GPIO4"), "/dev/gpiochip0", Some("other")).unwrap();
    assert_eq!(f.chip, PathBuf::from("/dev/gpiochip2"));
    // No expected label (the generic profile): the first chip in /dev order.
    let f = find(&c, name("GPIO4"), "/dev/gpiochip1", None).unwrap();
    assert_eq!(f.chip, PathBuf::from("/dev/gpiochip0"));
    let f = find(&c, name("GPIO4"), "/dev/gpiochip1", Some(" ")).unwrap();
    assert_eq!(
        f.chip,
        PathBuf::from("/dev/gpiochip0"),
        "blank means no check"
    );
}

#[test]
fn no_chip_with_the_expected_label_says_so() {
    let c = pi5_old_kernel();
    let e = find(&c, name("GPIO17"), "/dev/gpiochip0", Some("tegra234-gpio"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("No chip here is labelled \"tegra234-gpio\""),
        "{e}"
    );
    assert!(e.contains("\"pinctrl-rp1\""), "{e}");
}

#[test]
fn device_text_is_escaped() {
    let c = FakeChips {
        chips: vec![ChipInfo {
            path: PathBuf::from("/dev/gpiochip0"),
            label: "evil\u{1b}[2J".into(),
            names: vec!["x\ny".into()],
        }],
        broken: vec![],
    };
    let e = find(&c, name("GPIO1"), "/dev/gpiochip0", None)
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\u{1b}') && !e.contains('\n'), "{e:?}");
    let e = find(&c, LineRef::Offset(0), "/dev/gpiochip0", Some("x"))
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\u{1b}'), "{e:?}");
}

#[test]
fn find_lines_refuses_one_line_twice() {
    let c = pi5_old_kernel();
    let lines = [
        ("capture button".to_string(), name("GPIO17")),
        ("next button".to_string(), LineRef::Offset(17)),
    ];
    let e = find_lines(
        &c,
        &lines,
        Path::new("/dev/gpiochip4"),
        None,
        "[buttons] controller",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("capture") && e.contains("next"), "{e}");
    let ok = find_lines(&c, &lines[..1], Path::new("/dev/gpiochip4"), None, "x").unwrap();
    assert_eq!(ok[0].offset, 17);
}
