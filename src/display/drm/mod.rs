//! HDMI and DSI screens through DRM/KMS (`display = "drm"`), the way a kiosk without a desktop
//! should drive them: the console and a desktop's invisible framebuffer (`/dev/fb0`) are out of
//! the way, and screens change without tearing.
//!
//! The card (`/dev/dri/cardN`, or the first with a screen plugged in) is opened, its connected
//! connector, the preferred mode (or `?mode=WxH`) and a CRTC the connector's encoders can drive
//! are chosen, and two dumb buffers are made (XRGB8888, or RGB565 where the screen takes only
//! that). Each screen is drawn in memory at the mode's own size (the screens lay themselves out
//! for any size, see [`crate::ui`]), copied into the back buffer and shown: with `set_crtc` the
//! first time, then by page flips at vblank, or by `set_crtc` where the driver cannot flip
//! (some virtio-gpu set-ups). Dropping the screen puts back what the CRTC showed before (the
//! console) and gives up DRM master.
//!
//! A desktop or compositor holding DRM master makes mode setting fail; the error then says so
//! and what to do ([`choose::busy_message`]). Written for vc4-kms-v3d (Raspberry Pi 4/5),
//! nvidia-drm (Jetson, `modeset=1`) and virtio-gpu (the test VM); only dumb buffers and legacy
//! mode setting are used, which every KMS driver has.

pub mod choose;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::drm::buffer::{Buffer as _, DrmFourcc};
use ::drm::control::{
    connector, crtc, dumbbuffer::DumbBuffer, framebuffer, Device as ControlDevice, Mode, ModeFlags,
    ModeTypeFlags, PageFlipFlags,
};
use ::drm::{ClientCapability, Device as _};
use anyhow::{anyhow, bail, Context, Result};

use super::canvas::{Canvas, Geometry, PixelFormat};
pub use choose::DrmConfig;
use choose::{ConnectorInfo, ModeInfo};

/// How long to wait for a page flip to complete before showing screens with `set_crtc` instead.
const FLIP_TIMEOUT: Duration = Duration::from_millis(500);

/// An open DRM card (the primary node, `/dev/dri/cardN`).
struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl ::drm::Device for Card {}
impl ControlDevice for Card {}

impl Card {
    fn open(path: &Path) -> Result<Card> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map(Card)
            .map_err(|e| anyhow!(choose::open_error(path, &e)))
    }

    /// The connectors of this card, as the chooser sees them, with their handles.
    fn connectors(&self) -> Result<Vec<(connector::Info, ConnectorInfo)>> {
        let res = self
            .resource_handles()
            .context("cannot list the card's outputs")?;
        let mut out = Vec::new();
        for &h in res.connectors() {
            // A forced probe: the cached state may be "unknown" until someone has asked.
            let Ok(info) = self.get_connector(h, true) else {
                continue;
            };
            let plain = ConnectorInfo {
                name: format!("{}-{}", info.interface().as_str(), info.interface_id()),
                connected: info.state() == connector::State::Connected,
                modes: info.modes().len(),
            };
            out.push((info, plain));
        }
        Ok(out)
    }
}

/// The first `/dev/dri/card*` with a screen plugged into one of its connectors.
pub fn first_connected_card() -> Result<PathBuf> {
    let dir = Path::new("/dev/dri");
    let names = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cards = choose::card_paths(dir, names);
    if cards.is_empty() {
        bail!("no DRM cards (/dev/dri/card*): this machine has no KMS display driver loaded");
    }
    let mut why = Vec::new();
    for path in &cards {
        let found = Card::open(path).and_then(|c| {
            let conns = c.connectors()?;
            choose::choose_connector(&conns.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), path)
        });
        match found {
            Ok(_) => return Ok(path.clone()),
            Err(e) => why.push(format!("{e:#}")),
        }
    }
    bail!("no DRM card has a screen connected: {}", why.join("; "))
}

/// One of the two buffers: its memory and the framebuffer object that scans it out.
struct Buffer {
    memory: DumbBuffer,
    fb: framebuffer::Handle,
}

/// A screen on a DRM card; see the module documentation.
pub struct DrmScreen {
    card: Card,
    path: PathBuf,
    connector: connector::Handle,
    crtc: crtc::Handle,
    mode: Mode,
    buffers: Vec<Buffer>,
    /// The buffer drawn next (the other one is on the screen).
    back: usize,
    canvas: Canvas,
    /// `set_crtc` has put one of our buffers on the screen.
    on_screen: bool,
    /// Page flips work here (cleared at the first refusal or timeout).
    flips: bool,
    /// What the CRTC showed before, put back on drop.
    saved: Option<crtc::Info>,
    /// Why SET_MASTER failed, if it did: the likely reason mode setting fails later.
    master_error: Option<std::io::Error>,
}

impl DrmScreen {
    /// Open the card, choose connector, mode and CRTC, and make the two buffers. Nothing is
    /// shown until the first screen.
    pub fn open(cfg: &DrmConfig) -> Result<DrmScreen> {
        let path = match &cfg.card {
            Some(p) => p.clone(),
            None => first_connected_card()?,
        };
        let card = Card::open(&path)?;
        // Opening the primary node makes us master when nobody else is; asking again tells
        // whether someone else is (a desktop). Not fatal yet: old kernels refuse it to non-root
        // even when we are master, so the verdict waits for the first mode set.
        let master_error = card.acquire_master_lock().err();
        let _ = card.set_client_capability(ClientCapability::UniversalPlanes, true);

        let conns = card.connectors()?;
        let plain: Vec<ConnectorInfo> = conns.iter().map(|(_, p)| p.clone()).collect();
        let (conn, conn_plain) = &conns[choose::choose_connector(&plain, &path)?];
        let modes: Vec<ModeInfo> = conn.modes().iter().map(mode_info).collect();
        let mode = conn.modes()[choose::choose_mode(&modes, cfg.mode, &conn_plain.name)?];
        let crtc = pick_crtc(&card, conn).with_context(|| {
            format!(
                "no CRTC can drive {} on {}",
                conn_plain.name,
                path.display()
            )
        })?;
        let format = choose::choose_format(primary_formats(&card, crtc).as_deref())?;
        let (w, h) = mode.size();
        let (w, h) = (u32::from(w), u32::from(h));
        let mut buffers = Vec::new();
        for _ in 0..2 {
            buffers.push(make_buffer(&card, (w, h), format).with_context(|| {
                format!(
                    "cannot make a {w}x{h} {format:?} buffer on {}",
                    path.display()
                )
            })?);
        }
        let stride = buffers[0].memory.pitch() as usize;
        let canvas = Canvas::new(Geometry {
            width: w,
            height: h,
            stride,
            format,
        });
        tracing::info!(
            "display: {} {} {} ({format:?})",
            path.display(),
            conn_plain.name,
            mode_info(&mode)
        );
        Ok(DrmScreen {
            saved: card.get_crtc(crtc).ok(),
            card,
            path,
            connector: conn.handle(),
            crtc,
            mode,
            buffers,
            back: 0,
            canvas,
            on_screen: false,
            flips: true,
            master_error,
        })
    }

    /// The size screens are drawn at (the mode's).
    pub fn size(&self) -> (u32, u32) {
        let g = self.canvas.geometry();
        (g.width, g.height)
    }

    /// Copy the drawn screen into the back buffer and put that on the screen.
    fn present(&mut self) -> Result<()> {
        let buf = &mut self.buffers[self.back];
        {
            let mut map = self
                .card
                .map_dumb_buffer(&mut buf.memory)
                .context("cannot map the screen buffer")?;
            let bytes = self.canvas.bytes();
            let n = bytes.len().min(map.len());
            map[..n].copy_from_slice(&bytes[..n]);
        }
        let fb = buf.fb;
        if self.on_screen && self.flips {
            match self.flip(fb) {
                Ok(()) => {
                    self.back ^= 1;
                    return Ok(());
                }
                Err(e) if choose::is_busy(&e) => return Err(self.busy(&e)),
                Err(e) => {
                    tracing::warn!("display: page flips do not work on {} ({e}); setting the CRTC for each screen instead", self.path.display());
                    self.flips = false;
                }
            }
        }
        self.card
            .set_crtc(
                self.crtc,
                Some(fb),
                (0, 0),
                &[self.connector],
                Some(self.mode),
            )
            .map_err(|e| {
                if choose::is_busy(&e) {
                    self.busy(&e)
                } else {
                    anyhow!("cannot set the mode on {}: {e}", self.path.display())
                }
            })?;
        self.on_screen = true;
        self.back ^= 1;
        Ok(())
    }

    /// Flip to `fb` at the next vblank and wait until it is on the screen, so the buffer that
    /// was there is free to draw into.
    fn flip(&self, fb: framebuffer::Handle) -> std::io::Result<()> {
        self.card
            .page_flip(self.crtc, fb, PageFlipFlags::EVENT, None)?;
        let mut pfd = libc::pollfd {
            fd: self.card.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = FLIP_TIMEOUT.as_millis() as libc::c_int;
        loop {
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no page-flip event within 500 ms",
                ));
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let events = self.card.receive_events()?;
            if events
                .into_iter()
                .any(|e| matches!(e, ::drm::control::Event::PageFlip(_)))
            {
                return Ok(());
            }
        }
    }

    fn busy(&self, e: &std::io::Error) -> anyhow::Error {
        let detail = match &self.master_error {
            Some(m) => format!("mode setting refused: {e}; becoming master refused: {m}"),
            None => format!("mode setting refused: {e}"),
        };
        anyhow!(choose::busy_message(&self.path, &detail))
    }
}

impl super::Display for DrmScreen {
    fn show(&mut self, screen: &crate::ui::Screen) -> Result<()> {
        // Drawing into memory cannot fail; putting it on the screen can.
        let _ = crate::ui::draw(screen, &mut self.canvas);
        self.present()
    }
}

impl Drop for DrmScreen {
    fn drop(&mut self) {
        if self.on_screen {
            // Put back what was there (the console); failing that, switch the CRTC off so that
            // the kernel's console can take it over when the card is closed.
            let restored = self.saved.as_ref().is_some_and(|s| {
                s.framebuffer().is_some()
                    && self
                        .card
                        .set_crtc(
                            self.crtc,
                            s.framebuffer(),
                            s.position(),
                            &[self.connector],
                            s.mode(),
                        )
                        .is_ok()
            });
            if !restored {
                let _ = self.card.set_crtc(self.crtc, None, (0, 0), &[], None);
            }
        }
        for b in self.buffers.drain(..) {
            let _ = self.card.destroy_framebuffer(b.fb);
            let _ = self.card.destroy_dumb_buffer(b.memory);
        }
        let _ = self.card.release_master_lock();
    }
}

/// A mode as the chooser sees it.
fn mode_info(m: &Mode) -> ModeInfo {
    let (w, h) = m.size();
    ModeInfo {
        width: w.into(),
        height: h.into(),
        refresh: m.vrefresh(),
        preferred: m.mode_type().contains(ModeTypeFlags::PREFERRED),
        interlaced: m.flags().contains(ModeFlags::INTERLACE),
    }
}

/// The CRTC for `conn`: see [`choose::choose_crtc`].
fn pick_crtc(card: &Card, conn: &connector::Info) -> Option<crtc::Handle> {
    let res = card.resource_handles().ok()?;
    let current = conn
        .current_encoder()
        .and_then(|e| card.get_encoder(e).ok())
        .and_then(|e| e.crtc());
    let candidates: Vec<Vec<crtc::Handle>> = conn
        .encoders()
        .iter()
        .filter_map(|&e| card.get_encoder(e).ok())
        .map(|e| res.filter_crtcs(e.possible_crtcs()))
        .collect();
    choose::choose_crtc(current, &candidates)
}

/// The formats of the primary plane that `crtc` can use, if the driver lists planes and types.
fn primary_formats(card: &Card, crtc: crtc::Handle) -> Option<Vec<u32>> {
    let res = card.resource_handles().ok()?;
    for h in card.plane_handles().ok()? {
        let Ok(plane) = card.get_plane(h) else {
            continue;
        };
        if !res.filter_crtcs(plane.possible_crtcs()).contains(&crtc) {
            continue;
        }
        let props = card.get_properties(h).ok()?;
        let primary = props.iter().any(|(&p, &v)| {
            // DRM_PLANE_TYPE_PRIMARY is 1.
            card.get_property(p)
                .is_ok_and(|i| i.name().to_bytes() == b"type" && v == 1)
        });
        if primary {
            return Some(plane.formats().to_vec());
        }
    }
    None
}

/// A dumb buffer of `size` in `format` with a framebuffer object on it.
fn make_buffer(card: &Card, size: (u32, u32), format: PixelFormat) -> Result<Buffer> {
    let fourcc =
        DrmFourcc::try_from(choose::fourcc_of(format)).map_err(|_| anyhow!("unknown fourcc"))?;
    let memory = card.create_dumb_buffer(size, fourcc, format.bits())?;
    match card.add_framebuffer(&memory, format.depth(), format.bits()) {
        Ok(fb) => Ok(Buffer { memory, fb }),
        Err(e) => {
            let _ = card.destroy_dumb_buffer(memory);
            Err(e.into())
        }
    }
}
