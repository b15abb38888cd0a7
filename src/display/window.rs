//! `display = "window"`: a fullscreen window on the desktop (Wayland or X11), for the Raspberry
//! Pi OS desktop image, where the compositor holds the screen and DRM is refused. The window is
//! also an input device: keys typed into it go through the same key map as the evdev keyboards,
//! and a mouse click or a touch on it is a tap on the on-screen buttons, which the screens
//! therefore always draw in a window.
//!
//! winit runs its event loop on a thread of its own ([`with_any_thread`]): the kiosk's loop
//! belongs to the camera, and it must not stall while the compositor is busy. Screens are drawn
//! on the kiosk's thread at the window's size ([`crate::ui::render`]) and handed over through a
//! one-picture slot: [`WindowScreen::show`] waits (at most [`FRAME_WAIT`]) until the previous
//! picture has been presented, so the preview runs at the rate the desktop takes pictures and
//! never queues stale frames. softbuffer presents them (shared memory on X11, `wl_shm` on
//! Wayland); no GPU API is needed, which is what a Pi's desktop and a headless X server offer
//! alike.
//!
//! winit allows one event loop per process. The first [`WindowScreen::open`] starts it; later
//! opens (the kiosk reopens a display after an error) join the same window, or report why it
//! is gone. Closing the window (Alt+F4, the compositor's close) stops the kiosk as SIGTERM
//! would: the person at the desktop asked for it.
//!
//! [`with_any_thread`]: winit::platform::x11::EventLoopBuilderExtX11::with_any_thread

use std::num::NonZeroU32;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, MouseButton, TouchPhase, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::platform::scancode::PhysicalKeyExtScancode;
use winit::window::{Fullscreen, Window, WindowId};

use super::Display;
use crate::input::evdev::decode::Tap;
use crate::input::evdev::{tap_button, KeyMap};
use crate::input::Button;
use crate::ui::{self, Screen};

/// Longest a screen waits for the previous picture to be presented. A compositor that stops
/// taking pictures (screen blanked, session locked) must not stop the kiosk's loop.
pub const FRAME_WAIT: Duration = Duration::from_millis(250);

/// Longest [`WindowScreen::open`] waits for the desktop to map the window.
const OPEN_WAIT: Duration = Duration::from_secs(10);

/// Input held for the kiosk at most; older input is dropped (a stuck kiosk loop must not grow
/// memory while someone leans on a key).
const MAX_INPUT: usize = 64;

/// What a person did in the window.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Input {
    /// A key went down: its Linux key code (the evdev code, as the key map names it).
    Key(u16),
    /// A click or touch at this place, 0 ..= 1 from the top left of the window.
    Tap(Tap),
}

/// A picture for the window, `0x00RRGGBB` per pixel, row by row.
struct Picture {
    width: u32,
    height: u32,
    pixels: Vec<u32>,
}

/// What the kiosk's thread and the window's thread share.
#[derive(Default)]
struct State {
    /// The window's size in pixels, once it is mapped.
    size: Option<(u32, u32)>,
    /// The next picture to present; the window thread takes it.
    next: Option<Picture>,
    input: Vec<Input>,
    /// Pictures presented so far.
    presented: u64,
    /// Why the window is gone (closed, the desktop session ended, it could not be made).
    gone: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the other thread leaves the state as consistent as it was: plain fields.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gone(&self, why: String) {
        let mut st = self.lock();
        if st.gone.is_none() {
            st.gone = Some(why);
        }
        drop(st);
        self.changed.notify_all();
    }
}

/// The process's one window: its shared state and the way to wake its thread.
struct Link {
    shared: Arc<Shared>,
    proxy: Mutex<EventLoopProxy<()>>,
}

static WINDOW: OnceLock<std::result::Result<Arc<Link>, String>> = OnceLock::new();

/// The desktop window as a [`Display`].
pub struct WindowScreen {
    link: Arc<Link>,
}

impl WindowScreen {
    /// The window, made fullscreen on the desktop the first time (this waits until the desktop
    /// has mapped it), the same window later.
    pub fn open() -> Result<WindowScreen> {
        let link = WINDOW
            .get_or_init(start)
            .clone()
            .map_err(|e| anyhow!("{e}"))?;
        let deadline = Instant::now() + OPEN_WAIT;
        let mut st = link.shared.lock();
        loop {
            if let Some(why) = &st.gone {
                bail!("window: {why}");
            }
            if st.size.is_some() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("window: the desktop did not show the window within {OPEN_WAIT:?}");
            }
            st = link
                .shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(st);
        Ok(WindowScreen { link })
    }

    /// Pictures the window has presented so far (`cxr-edge bench` counts them).
    pub fn presented(&self) -> u64 {
        self.link.shared.lock().presented
    }
}

impl Display for WindowScreen {
    fn show(&mut self, screen: &Screen) -> Result<()> {
        let shared = &self.link.shared;
        let deadline = Instant::now() + FRAME_WAIT;
        let mut st = shared.lock();
        while st.next.is_some() && st.gone.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break; // replace the picture the window has not taken: it is older
            }
            st = shared
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(why) = &st.gone {
            bail!("window: {why}");
        }
        let (width, height) = st.size.unwrap_or((800, 480));
        drop(st);
        let picture = render(screen, width, height);
        shared.lock().next = Some(picture);
        let proxy = self.link.proxy.lock().unwrap_or_else(|e| e.into_inner());
        proxy
            .send_event(())
            .map_err(|_| anyhow!("window: the desktop session has ended"))
    }

    fn presses(&mut self, keys: &KeyMap) -> Vec<Button> {
        let input = std::mem::take(&mut self.link.shared.lock().input);
        input
            .into_iter()
            .filter_map(|i| match i {
                Input::Key(code) => keys.button(code),
                Input::Tap(t) => tap_button(t),
            })
            .collect()
    }

    fn pointer(&self) -> bool {
        true
    }
}

/// `screen` drawn at the window's size, as the window's pixels.
fn render(screen: &Screen, width: u32, height: u32) -> Picture {
    let img = ui::render(screen, width, height);
    let pixels = img
        .pixels()
        .map(|p| (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2]))
        .collect();
    Picture {
        width,
        height,
        pixels,
    }
}

/// Start the window's thread and its event loop; the link, or why there can be no window.
fn start() -> std::result::Result<Arc<Link>, String> {
    if ["WAYLAND_DISPLAY", "DISPLAY"]
        .iter()
        .all(|v| std::env::var_os(v).is_none_or(|x| x.is_empty()))
    {
        return Err(
            "no desktop session here ($WAYLAND_DISPLAY and $DISPLAY are unset): \
                    start cxr-edge from the desktop (the autostart entry does), or use \
                    display = \"drm\" on a console without a desktop"
                .into(),
        );
    }
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_shared = shared.clone();
    std::thread::Builder::new()
        .name("window".into())
        .spawn(move || {
            let mut builder = EventLoop::<()>::with_user_event();
            // Both platform traits set the same flag; the kiosk's loop owns the main thread.
            winit::platform::x11::EventLoopBuilderExtX11::with_any_thread(&mut builder, true);
            let event_loop = match builder.build() {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot connect to the desktop: {e}")));
                    return;
                }
            };
            let _ = tx.send(Ok(event_loop.create_proxy()));
            let mut app = App::new(thread_shared.clone());
            let why = match event_loop.run_app(&mut app) {
                Ok(()) => "the window was closed".to_string(),
                Err(e) => format!("the desktop session has ended ({e})"),
            };
            thread_shared.gone(why);
        })
        .map_err(|e| format!("cannot start the window thread: {e}"))?;
    let proxy = rx
        .recv()
        .map_err(|_| "the window thread ended before it started".to_string())??;
    Ok(Arc::new(Link {
        shared,
        proxy: Mutex::new(proxy),
    }))
}

type Surface = softbuffer::Surface<Arc<Window>, Arc<Window>>;

/// The window's side: winit's events in, pictures out.
struct App {
    shared: Arc<Shared>,
    window: Option<(Arc<Window>, Surface)>,
    /// The picture on the window now (presented again when the desktop asks for a redraw).
    current: Option<Picture>,
    cursor: Option<PhysicalPosition<f64>>,
}

impl App {
    fn new(shared: Arc<Shared>) -> App {
        App {
            shared,
            window: None,
            current: None,
            cursor: None,
        }
    }

    fn make_window(&mut self, el: &ActiveEventLoop) -> std::result::Result<(), String> {
        let mut attrs = Window::default_attributes()
            .with_title("cxr-edge - research use only")
            .with_fullscreen(Some(Fullscreen::Borderless(None)));
        // Fullscreen is a request to the window manager; an X server without one (a kiosk
        // session, Xvfb) maps the window at the size asked for, so ask for the whole monitor.
        if let Some(m) = el
            .primary_monitor()
            .or_else(|| el.available_monitors().next())
        {
            attrs = attrs
                .with_inner_size(m.size())
                .with_position(PhysicalPosition::new(0, 0));
        }
        let window = Arc::new(
            el.create_window(attrs)
                .map_err(|e| format!("cannot make the window: {e}"))?,
        );
        let context = softbuffer::Context::new(window.clone())
            .map_err(|e| format!("cannot draw into the window: {e}"))?;
        let surface = Surface::new(&context, window.clone())
            .map_err(|e| format!("cannot draw into the window: {e}"))?;
        self.set_size(window.inner_size());
        self.window = Some((window, surface));
        Ok(())
    }

    fn set_size(&self, size: PhysicalSize<u32>) {
        if size.width > 0 && size.height > 0 {
            self.shared.lock().size = Some((size.width, size.height));
            self.shared.changed.notify_all();
        }
    }

    fn push(&self, input: Input) {
        let mut st = self.shared.lock();
        if st.input.len() >= MAX_INPUT {
            st.input.remove(0);
        }
        st.input.push(input);
    }

    /// A tap at `pos` in window pixels.
    fn tap(&self, pos: PhysicalPosition<f64>) {
        let Some((w, h)) = self.shared.lock().size else {
            return;
        };
        let x = (pos.x / f64::from(w)) as f32;
        let y = (pos.y / f64::from(h)) as f32;
        if (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y) {
            self.push(Input::Tap(Tap { x, y }));
        }
    }

    /// Present the newest picture (or the current one again), centred on black where the
    /// window's size changed since it was drawn.
    fn present(&mut self) -> std::result::Result<(), String> {
        let Some((window, surface)) = self.window.as_mut() else {
            return Ok(());
        };
        let newer = self.shared.lock().next.take();
        self.shared.changed.notify_all();
        if newer.is_some() {
            self.current = newer;
        }
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(());
        };
        surface
            .resize(w, h)
            .map_err(|e| format!("cannot resize the picture: {e}"))?;
        let mut buf = surface
            .buffer_mut()
            .map_err(|e| format!("cannot draw: {e}"))?;
        match &self.current {
            Some(p) => blit_centred(p, &mut buf, size.width, size.height),
            None => buf.fill(0),
        }
        buf.present().map_err(|e| format!("cannot present: {e}"))?;
        self.shared.lock().presented += 1;
        Ok(())
    }
}

/// `p` into `dst` (`width` x `height`), centred, clipped, black around it.
fn blit_centred(p: &Picture, dst: &mut [u32], width: u32, height: u32) {
    if p.width == width && p.height == height {
        dst.copy_from_slice(&p.pixels);
        return;
    }
    dst.fill(0);
    let (pw, ph) = (p.width as usize, p.height as usize);
    let (w, h) = (width as usize, height as usize);
    let cw = pw.min(w);
    let (sx, dx) = ((pw - cw) / 2, (w - cw) / 2);
    let rows = ph.min(h);
    let (sy, dy) = ((ph - rows) / 2, (h - rows) / 2);
    for r in 0..rows {
        let s = (sy + r) * pw + sx;
        let d = (dy + r) * w + dx;
        dst[d..d + cw].copy_from_slice(&p.pixels[s..s + cw]);
    }
}

impl ApplicationHandler<()> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_none() {
            if let Err(why) = self.make_window(el) {
                self.shared.gone(why);
                el.exit();
            }
        }
    }

    fn user_event(&mut self, _: &ActiveEventLoop, (): ()) {
        if let Some((w, _)) = &self.window {
            w.request_redraw();
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => {
                tracing::info!("window: closed from the desktop; stopping");
                self.shared.gone("the window was closed".into());
                // The kiosk stops as on SIGTERM: it finishes what it is doing and exits.
                // SAFETY: raise() is async-signal-safe and has no preconditions.
                unsafe { libc::raise(libc::SIGTERM) };
                el.exit();
            }
            WindowEvent::Resized(size) => {
                self.set_size(size);
                if let Some((w, _)) = &self.window {
                    w.request_redraw();
                }
            }
            WindowEvent::RedrawRequested => {
                if let Err(why) = self.present() {
                    self.shared.gone(why);
                    el.exit();
                }
            }
            WindowEvent::KeyboardInput { event, .. }
                if event.state == ElementState::Pressed && !event.repeat =>
            {
                // X11 and Wayland key codes are the kernel's evdev codes plus 8; winit gives
                // them back as the evdev code, which is what the key map holds.
                if let Some(code) = event
                    .physical_key
                    .to_scancode()
                    .and_then(|c| u16::try_from(c).ok())
                {
                    self.push(Input::Key(code));
                }
            }
            WindowEvent::CursorMoved { position, .. } => self.cursor = Some(position),
            WindowEvent::CursorLeft { .. } => self.cursor = None,
            WindowEvent::MouseInput {
                state: ElementState::Pressed,
                button: MouseButton::Left,
                ..
            } => {
                if let Some(pos) = self.cursor {
                    self.tap(pos);
                }
            }
            WindowEvent::Touch(t) if t.phase == TouchPhase::Started => self.tap(t.location),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32) -> Picture {
        Picture {
            width,
            height,
            pixels: (0..width * height).collect(),
        }
    }

    #[test]
    fn a_picture_of_the_windows_size_is_copied_as_it_is() {
        let p = picture(4, 3);
        let mut dst = vec![99; 12];
        blit_centred(&p, &mut dst, 4, 3);
        assert_eq!(dst, p.pixels);
    }

    #[test]
    fn a_smaller_picture_is_centred_on_black() {
        let p = picture(2, 1);
        let mut dst = vec![99; 4 * 3];
        blit_centred(&p, &mut dst, 4, 3);
        assert_eq!(dst, [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_larger_picture_is_clipped_around_its_centre() {
        let p = picture(4, 3); // 0..12
        let mut dst = vec![99; 2];
        blit_centred(&p, &mut dst, 2, 1);
        assert_eq!(dst, [5, 6]);
    }

    #[test]
    fn screens_become_xrgb_pixels_at_the_windows_size() {
        let p = render(
            &Screen::Waiting {
                hint: "Copy films into the inbox.",
            },
            320,
            240,
        );
        assert_eq!((p.width, p.height, p.pixels.len()), (320, 240, 320 * 240));
        assert!(p.pixels.iter().all(|&px| px >> 24 == 0));
    }
}
