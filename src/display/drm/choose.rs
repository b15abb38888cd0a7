//! The decisions of the DRM backend that need no hardware, kept apart so they are tested on
//! any machine: the `drm:` spec string, which card, connector, mode, CRTC and pixel format to
//! use, and the error messages a person reads when none fits or the screen is taken.
//!
//! The hardware side ([`super::DrmScreen`]) turns what the kernel reports into the plain
//! values these functions take ([`ConnectorInfo`], [`ModeInfo`], fourcc codes) and back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::display::canvas::PixelFormat;

/// DRM fourcc of XRGB8888 (`XR24`): bytes B, G, R, unused.
pub const FOURCC_XRGB8888: u32 = u32::from_le_bytes(*b"XR24");
/// DRM fourcc of RGB565 (`RG16`).
pub const FOURCC_RGB565: u32 = u32::from_le_bytes(*b"RG16");

/// A `drm` display as configured: `drm`, `drm:/dev/dri/cardN`, either with `?mode=WxH`.
#[derive(Clone, Debug, PartialEq)]
pub struct DrmConfig {
    /// The card; `None`: the first `/dev/dri/card*` with a connected screen.
    pub card: Option<PathBuf>,
    /// The mode to set, width x height; `None`: the screen's preferred mode.
    pub mode: Option<(u32, u32)>,
}

impl DrmConfig {
    /// `drm`, `drm:/dev/dri/card0`, `drm:/dev/dri/card0?mode=1280x720` or `drm:?mode=1280x720`.
    pub fn parse(s: &str) -> Result<DrmConfig> {
        let rest = match s.strip_prefix("drm:") {
            Some(r) => r,
            None if s == "drm" => "",
            None => bail!("not a drm display: '{s}'"),
        };
        let (card, query) = rest.split_once('?').unwrap_or((rest, ""));
        let card = (!card.is_empty()).then(|| PathBuf::from(card));
        let mut mode = None;
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("mode", v)) => {
                    mode = Some(
                        parse_mode(v).with_context(|| format!("display '{s}': bad mode '{v}'"))?,
                    )
                }
                _ => bail!(
                    "display '{s}': unknown option '{kv}' (the one option is mode=WIDTHxHEIGHT)"
                ),
            }
        }
        Ok(DrmConfig { card, mode })
    }
}

fn parse_mode(v: &str) -> Result<(u32, u32)> {
    let (w, h) = v
        .split_once('x')
        .context("expected WIDTHxHEIGHT, e.g. 1280x720")?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    if w == 0 || h == 0 {
        bail!("a mode cannot be empty");
    }
    Ok((w, h))
}

/// `/dev/dri/card*` among `names` (the entries of `/dev/dri`), in card-number order; render
/// nodes (`renderD128`) cannot set modes and are left out.
pub fn card_paths<I: IntoIterator<Item = String>>(dir: &Path, names: I) -> Vec<PathBuf> {
    let mut cards: Vec<(u32, String)> = names
        .into_iter()
        .filter_map(|n| Some((n.strip_prefix("card")?.parse().ok()?, n)))
        .collect();
    cards.sort();
    cards.into_iter().map(|(_, n)| dir.join(n)).collect()
}

/// A display mode as the connector offers it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeInfo {
    /// Visible pixels across.
    pub width: u32,
    /// Visible lines.
    pub height: u32,
    /// Refresh rate in Hz.
    pub refresh: u32,
    /// The screen's own preferred mode (its native resolution, from EDID).
    pub preferred: bool,
    /// Interlaced (1080i): used only when asked for by size and nothing else has that size.
    pub interlaced: bool,
}

impl std::fmt::Display for ModeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)?;
        if self.interlaced {
            write!(f, "i")?;
        }
        write!(f, "@{}", self.refresh)?;
        if self.preferred {
            write!(f, " (preferred)")?;
        }
        Ok(())
    }
}

/// The mode to set: `wanted` (width x height) if given, else the preferred mode, else the
/// first (the kernel lists the best first). Among modes of the wanted size: preferred first,
/// then progressive, then the highest refresh. An error lists what the screen offers.
pub fn choose_mode(
    modes: &[ModeInfo],
    wanted: Option<(u32, u32)>,
    connector: &str,
) -> Result<usize> {
    if modes.is_empty() {
        bail!("{connector} is connected but offers no modes (its EDID could not be read?)");
    }
    let Some((w, h)) = wanted else {
        return Ok(modes.iter().position(|m| m.preferred).unwrap_or(0));
    };
    let best = modes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.width == w && m.height == h)
        .max_by_key(|(i, m)| (m.preferred, !m.interlaced, m.refresh, std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    match best {
        Some(i) => Ok(i),
        None => bail!(
            "mode {w}x{h} is not offered by {connector}; it offers: {} (set mode= to one of these, or leave it out for the preferred mode)",
            mode_list(modes)
        ),
    }
}

/// The modes, each once, in the connector's order.
pub fn mode_list(modes: &[ModeInfo]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in modes {
        let s = m.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(", ")
}

/// A connector as the kernel reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorInfo {
    /// Its name as in `/sys/class/drm`, e.g. `HDMI-A-1`.
    pub name: String,
    /// A screen is plugged in.
    pub connected: bool,
    /// How many modes it offers.
    pub modes: usize,
}

/// The first connector with a screen on it. A connected connector without modes is chosen only
/// when there is no other (and then [`choose_mode`] says what is wrong).
pub fn choose_connector(conns: &[ConnectorInfo], card: &Path) -> Result<usize> {
    if let Some(i) = conns.iter().position(|c| c.connected && c.modes > 0) {
        return Ok(i);
    }
    if let Some(i) = conns.iter().position(|c| c.connected) {
        return Ok(i);
    }
    if conns.is_empty() {
        bail!(
            "{} has no display outputs (a GPU that only renders, such as v3d on a Raspberry Pi): use display = \"drm\" to find the card with the screen, or another /dev/dri/card*",
            card.display()
        );
    }
    let all: Vec<String> = conns.iter().map(|c| c.name.clone()).collect();
    bail!(
        "no screen is connected to {} (connectors: {}); plug in the screen and check its cable and power",
        card.display(),
        all.join(", ")
    )
}

/// The CRTC to drive the connector with: the one already driving it (no mode change for the
/// firmware's or console's set-up), else the first one any of its encoders can use.
/// `candidates` holds, for each of the connector's encoders, the CRTCs that encoder can drive.
pub fn choose_crtc<T: Copy + PartialEq>(current: Option<T>, candidates: &[Vec<T>]) -> Option<T> {
    let possible = |c: &T| candidates.iter().any(|l| l.contains(c));
    current
        .filter(possible)
        .or_else(|| candidates.iter().flatten().copied().next())
}

/// The pixel format for the screen's buffers, from the fourcc codes the primary plane accepts
/// (`None`: not known, as with drivers that list no planes): XRGB8888, else RGB565.
pub fn choose_format(offered: Option<&[u32]>) -> Result<PixelFormat> {
    let Some(offered) = offered else {
        return Ok(PixelFormat::Xrgb8888);
    };
    if offered.contains(&FOURCC_XRGB8888) {
        Ok(PixelFormat::Xrgb8888)
    } else if offered.contains(&FOURCC_RGB565) {
        Ok(PixelFormat::Rgb565)
    } else {
        let names: Vec<String> = offered.iter().map(|f| fourcc_name(*f)).collect();
        bail!(
            "the screen takes neither XRGB8888 nor RGB565 buffers (it takes {})",
            names.join(", ")
        )
    }
}

/// The four characters of a fourcc code (`XR24`).
pub fn fourcc_name(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// The fourcc code of a buffer of `format`.
pub fn fourcc_of(format: PixelFormat) -> u32 {
    match format {
        PixelFormat::Xrgb8888 => FOURCC_XRGB8888,
        PixelFormat::Rgb565 => FOURCC_RGB565,
    }
}

/// What to do when another program holds the screen (DRM master): a desktop or compositor.
pub fn busy_message(card: &Path, detail: &str) -> String {
    format!(
        "{} is in use by another program, most likely the desktop (it holds DRM master: {detail}), so cxr-edge cannot show its screen there. \
Either show the kiosk in the desktop session instead (display = \"window\", to come with issue 17), \
or boot to the console instead of the desktop: `sudo systemctl set-default multi-user.target` and reboot \
(on Raspberry Pi OS: `sudo raspi-config nonint do_boot_behaviour B1`)",
        card.display()
    )
}

/// Is this error "another program is DRM master"? The kernel answers EACCES or EPERM to mode
/// setting and to SET_MASTER from a client that is not master, and EBUSY to SET_MASTER from
/// root while another client is.
pub fn is_busy(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
}

/// Why a card could not be opened, with what to do about it.
pub fn open_error(card: &Path, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (the user needs the video group, and a systemd service DeviceAllow=char-drm rw)"
        }
        std::io::ErrorKind::NotFound => " (no such card: see ls /dev/dri)",
        _ => "",
    };
    format!("cannot open {}: {e}{hint}", card.display())
}
