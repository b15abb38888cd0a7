//! Finding GPIO lines on the GPIO character devices (`/dev/gpiochipN`, uAPI v2 through the
//! pure-Rust `gpiocdev` crate), for the buttons ([`super::gpio`]) and an SPI panel's DC, RESET
//! and backlight lines.
//!
//! A line is given either by NAME (`GPIO17`: the name the board's device tree gives it, as
//! `gpioinfo` prints it; case-sensitive) or by NUMBER (`17`: its offset on one chip, named by
//! path, `/dev/gpiochip0` unless set). Names are looked for on every chip, so they do not
//! depend on how the kernel numbers the chips: a Raspberry Pi 5's header is `/dev/gpiochip4` on
//! older kernels and `/dev/gpiochip0` on newer ones, and `GPIO17` finds it on either. Numbers
//! stay accepted so that configs written for earlier versions keep working.
//!
//! The board profile names the GPIO controller its header belongs to, by the chip's label
//! (`[buttons] controller`: `pinctrl-rp1` on a Pi 5, `pinctrl-bcm2711` on a Pi 4,
//! `tegra234-gpio` on a Jetson Orin Nano; none on the generic profile). A line found on a chip
//! with another label is refused, with both labels and the fix: driving a line of another
//! controller would switch some other pin, possibly one the SoC itself uses. When a name is on
//! several chips, the one on the expected controller is taken; without an expected controller,
//! the first in `/dev` order.
//!
//! Chips are read through [`Chips`], so the tests run the lookup on fake chips. Labels and
//! line names come from the kernel's drivers and are shown quoted and escaped (`{:?}`), never
//! raw.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

pub use super::LineRef;

/// What the lookup needs of one chip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipInfo {
    /// The character device, e.g. `/dev/gpiochip0`.
    pub path: PathBuf,
    /// The driver's label, e.g. `pinctrl-rp1`.
    pub label: String,
    /// The line names by offset (empty where a line has none); one per line of the chip.
    pub names: Vec<String>,
}

/// The GPIO chips of this machine.
pub trait Chips {
    /// Every chip's path, in `/dev` order (`gpiochip0`, `gpiochip1`, ... `gpiochip10`).
    fn paths(&self) -> Result<Vec<PathBuf>>;
    /// The label and line names of the chip at `path`.
    fn read(&self, path: &Path) -> Result<ChipInfo>;
}

/// The real chips, through `gpiocdev`.
pub struct SystemChips;

/// Lines beyond this are not read: the largest controllers have a few hundred, and the count
/// comes from a driver.
const MAX_LINES: u32 = 2048;

impl Chips for SystemChips {
    fn paths(&self) -> Result<Vec<PathBuf>> {
        gpiocdev::chip::chips().map_err(|e| anyhow!("cannot list the GPIO chips in /dev: {e}"))
    }

    fn read(&self, path: &Path) -> Result<ChipInfo> {
        let fail = |e: gpiocdev::Error| {
            anyhow!(
                "cannot read GPIO chip {}: {e}{}",
                path.display(),
                access_hint(&e)
            )
        };
        let chip = gpiocdev::Chip::from_path(path).map_err(fail)?;
        let info = chip.info().map_err(fail)?;
        let names = (0..info.num_lines.min(MAX_LINES))
            .map(|o| chip.line_info(o).map(|l| l.name).unwrap_or_default())
            .collect();
        Ok(ChipInfo {
            path: path.to_path_buf(),
            label: info.label,
            names,
        })
    }
}

/// Where a line was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The chip holding it.
    pub chip: PathBuf,
    /// That chip's label.
    pub label: String,
    /// The line's offset on the chip.
    pub offset: u32,
    /// The line's name (empty if it has none).
    pub name: String,
}

impl fmt::Display for Found {
    /// `"GPIO17" (line 17 of /dev/gpiochip0, "pinctrl-rp1")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.name.is_empty() {
            write!(f, "{:?} (", self.name)?;
        }
        write!(
            f,
            "line {} of {}, {:?}",
            self.offset,
            self.chip.display(),
            self.label
        )?;
        if !self.name.is_empty() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The error hint for a failed open or request: a missing group or a line in use.
pub fn access_hint(e: &gpiocdev::Error) -> &'static str {
    // The OS error sits inside gpiocdev's (and its uAPI crate's) error types; its number is in
    // the text as std formats it: "Permission denied (os error 13)".
    let text = e.to_string();
    if text.contains("(os error 13)") || text.contains("(os error 1)") {
        " (add the user to the gpio group: sudo usermod -aG gpio $USER, then log in again)"
    } else if text.contains("(os error 16)") {
        " (the line is in use by another program or a kernel driver; gpioinfo shows by which)"
    } else {
        ""
    }
}

/// The chips as read once, to find lines on.
pub struct Lookup {
    /// Every chip, or why it could not be read.
    chips: Vec<(PathBuf, Result<ChipInfo, String>)>,
    /// Why the chips could not be listed.
    unlisted: Option<String>,
    expect: Option<String>,
    /// The setting that gave `expect`, for the messages (`[buttons] controller`).
    setting: String,
}

impl Lookup {
    /// Read every chip of `chips`. `expect`: the label lines must be on (None or empty: any),
    /// given by the config `setting`.
    pub fn scan(chips: &dyn Chips, expect: Option<&str>, setting: &str) -> Lookup {
        let (paths, unlisted) = match chips.paths() {
            Ok(p) => (p, None),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        };
        let chips = paths
            .into_iter()
            .map(|p| {
                let info = chips.read(&p).map_err(|e| format!("{e:#}"));
                (p, info)
            })
            .collect();
        Lookup {
            chips,
            unlisted,
            expect: expect
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from),
            setting: setting.to_string(),
        }
    }

    fn readable(&self) -> impl Iterator<Item = &ChipInfo> {
        self.chips.iter().filter_map(|(_, c)| c.as_ref().ok())
    }

    /// Find `line`: by name on every chip, by number on the chip at `chip` (read through
    /// `chips` when it is not one of those listed, e.g. a symlink).
    pub fn find(&self, chips: &dyn Chips, line: &LineRef, chip: &Path) -> Result<Found> {
        match line {
            LineRef::Name(name) => self.find_name(name),
            LineRef::Offset(offset) => {
                let listed = self.chips.iter().find(|(p, _)| p == chip);
                let info = match listed {
                    Some((_, Ok(info))) => info.clone(),
                    Some((_, Err(e))) => bail!("{e}"),
                    None => chips.read(chip)?,
                };
                self.find_offset(&info, *offset)
            }
        }
    }

    fn find_name(&self, name: &str) -> Result<Found> {
        let matches: Vec<Found> = self
            .readable()
            .filter_map(|c| {
                let offset = c.names.iter().position(|n| n == name)?;
                Some(found(c, u32::try_from(offset).ok()?))
            })
            .collect();
        let Some(first) = matches.first() else {
            bail!("{}", self.missing(name));
        };
        let Some(want) = &self.expect else {
            return Ok(first.clone());
        };
        if let Some(right) = matches.iter().find(|f| f.label == *want) {
            return Ok(right.clone());
        }
        let fix = match self.readable().find(|c| c.label == *want) {
            Some(c) => format!(
                "{} is labelled {want:?} but has no line named {name:?} (`gpioinfo {}` lists \
                 its names)",
                c.path.display(),
                c.path.display()
            ),
            None => self.no_expected_chip(),
        };
        bail!(
            "GPIO line {name:?} is {first}, not on the board's GPIO controller {want:?} \
             ({}); refusing it. {fix}",
            self.setting
        )
    }

    fn find_offset(&self, chip: &ChipInfo, offset: u32) -> Result<Found> {
        let count = chip.names.len();
        if usize::try_from(offset).unwrap_or(usize::MAX) >= count {
            bail!(
                "{} ({:?}) has no line {offset}: it has {count} lines{}",
                chip.path.display(),
                chip.label,
                if count > 0 {
                    format!(" (0-{})", count - 1)
                } else {
                    String::new()
                }
            );
        }
        let line = found(chip, offset);
        let Some(want) = &self.expect else {
            return Ok(line);
        };
        if chip.label == *want {
            return Ok(line);
        }
        let fix = match self.readable().find(|c| c.label == *want) {
            Some(c) => {
                let named = c
                    .names
                    .get(usize::try_from(offset).unwrap_or(usize::MAX))
                    .filter(|n| !n.is_empty())
                    .map(|n| format!(", where line {offset} is named {n:?}: give it by that name"))
                    .unwrap_or_default();
                format!(
                    "The chip labelled {want:?} is {}{named}, or use chip {}.",
                    c.path.display(),
                    c.path.display()
                )
            }
            None => self.no_expected_chip(),
        };
        bail!(
            "GPIO line {offset} of {} is on a chip labelled {:?}, not on the board's GPIO \
             controller {want:?} ({}); refusing it. {fix}",
            chip.path.display(),
            chip.label,
            self.setting
        )
    }

    /// The fix when no chip has the expected label.
    fn no_expected_chip(&self) -> String {
        format!(
            "No chip here is labelled {:?} ({}): is this the right board profile? Set {} to \
             the label of the chip the lines are on (gpiodetect lists them), or to \"\" to skip \
             the check.",
            self.expect.as_deref().unwrap_or(""),
            self.chip_list(0),
            self.setting
        )
    }

    /// The error for a name no chip has: what is there, briefly.
    fn missing(&self, name: &str) -> String {
        if self.chips.is_empty() {
            let why = self
                .unlisted
                .as_deref()
                .map_or(String::new(), |e| format!(": {e}"));
            return format!("no GPIO line named {name:?}: no GPIO chips found{why}");
        }
        let near = self
            .readable()
            .flat_map(|c| &c.names)
            .find(|n| n.eq_ignore_ascii_case(name))
            .map_or(String::new(), |n| {
                format!(" (names are case-sensitive: {n:?}?)")
            });
        format!(
            "no GPIO line is named {name:?}{near}; the chips here: {} (`gpioinfo` lists every \
             line)",
            self.chip_list(5)
        )
    }

    /// `/dev/gpiochip0 "pinctrl-rp1" (54 lines: "ID_SDA", "ID_SCL", ...)`, one per chip,
    /// with up to `names` line names each.
    fn chip_list(&self, names: usize) -> String {
        let list: Vec<String> = self
            .chips
            .iter()
            .map(|(path, info)| match info {
                Ok(c) => {
                    let shown: Vec<String> = c
                        .names
                        .iter()
                        .filter(|n| !n.is_empty())
                        .take(names)
                        .map(|n| format!("{n:?}"))
                        .collect();
                    let more = if shown.is_empty() {
                        String::new()
                    } else {
                        format!(": {}, ...", shown.join(", "))
                    };
                    format!(
                        "{} {:?} ({} lines{more})",
                        path.display(),
                        c.label,
                        c.names.len()
                    )
                }
                Err(e) => format!("{} unreadable: {e}", path.display()),
            })
            .collect();
        if list.is_empty() {
            "none".to_string()
        } else {
            list.join("; ")
        }
    }
}

fn found(chip: &ChipInfo, offset: u32) -> Found {
    Found {
        chip: chip.path.clone(),
        label: chip.label.clone(),
        offset,
        name: chip
            .names
            .get(usize::try_from(offset).unwrap_or(usize::MAX))
            .cloned()
            .unwrap_or_default(),
    }
}

/// Find every line of `lines` (each with what it is for, for the messages): the chips are
/// read once. Two entries that turn out to be the same line (`GPIO17` and `17`) are refused.
pub fn find_lines(
    chips: &dyn Chips,
    lines: &[(String, LineRef)],
    chip: &Path,
    expect: Option<&str>,
    setting: &str,
) -> Result<Vec<Found>> {
    let lookup = Lookup::scan(chips, expect, setting);
    let mut out: Vec<Found> = Vec::with_capacity(lines.len());
    for (what, line) in lines {
        let f = lookup
            .find(chips, line, chip)
            .with_context(|| format!("GPIO line {line} for the {what}"))?;
        if let Some(i) = out
            .iter()
            .position(|o| o.chip == f.chip && o.offset == f.offset)
        {
            bail!("{f} is given for both the {} and the {what}", lines[i].0);
        }
        out.push(f);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
