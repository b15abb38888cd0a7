//! Driving the camera kiosk: frames from a source, presses from the buttons, and the scripted
//! runs (`--script capture,next,wait:3,back`) that tests and `cxr-edge bench` use.

use super::LiveKiosk;
use crate::capture::SourceError;
use crate::input::Button;

/// One step of a scripted run (`--script capture,next,wait:3,back`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Take one frame, then press the button.
    Press(Button),
    /// Take this many frames, pressing nothing.
    Frames(usize),
}

/// Parse a `--script` value: comma-separated `capture`, `next`, `back`, `wait` or `wait:N`.
pub fn parse_script(s: &str) -> anyhow::Result<Vec<Step>> {
    s.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| {
            if let Some(b) = Button::parse(w) {
                return Ok(Step::Press(b));
            }
            match w.split_once(':') {
                None if w == "wait" || w == "frame" => Ok(Step::Frames(1)),
                Some(("wait" | "frame", n)) => n
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| (1..=100_000).contains(&n))
                    .map(Step::Frames)
                    .ok_or_else(|| anyhow::anyhow!("'{w}': wait:N needs N from 1 to 100000")),
                _ => anyhow::bail!(
                    "unknown script step '{w}': use capture, next, back, wait or wait:N"
                ),
            }
        })
        .collect()
}

/// Feed the kiosk: frames from `source`, presses from `buttons` (and from `script`, which ends
/// the run when it is done). Without a script this runs until the source finishes, which a
/// camera never does, or a stop is asked for ([`crate::app::stop`]).
pub fn run_live(
    kiosk: &mut LiveKiosk,
    source: &mut dyn crate::capture::FrameSource,
    buttons: &mut dyn crate::input::Buttons,
    script: Option<&[Step]>,
    notifier: &crate::app::notify::Notifier,
) {
    let mut one_frame = |kiosk: &mut LiveKiosk| -> bool {
        if crate::app::stop::requested() {
            return false;
        }
        notifier.watchdog();
        kiosk.poll(false);
        kiosk.set_touch_buttons(buttons.touch_screen());
        for b in buttons.poll() {
            kiosk.on_button(b);
        }
        for b in kiosk.display_presses() {
            kiosk.on_button(b);
        }
        match source.next_frame() {
            Ok(f) => kiosk.on_frame(f),
            Err(SourceError::Finished { .. }) => return false,
            Err(e) => kiosk.on_source_error(&e),
        }
        true
    };
    match script {
        Some(steps) => {
            for step in steps {
                match *step {
                    Step::Press(b) => {
                        one_frame(kiosk);
                        kiosk.on_button(b);
                    }
                    Step::Frames(n) => {
                        for _ in 0..n {
                            one_frame(kiosk);
                        }
                    }
                }
            }
        }
        None => while one_frame(kiosk) {},
    }
    // An analysis still running is finished and recorded before the run ends.
    kiosk.poll(true);
}
