//! Waiting for a good camera picture: a film must be found in several frames in a row, with its
//! corners still, before it is analysed. One blurred or half-framed frame is never classified
//! just because it came first.

use crate::film::gates::blocking_reason;
use crate::film::{find_film, Quad, Warning};
use crate::lang::{Language, Texts};
use crate::pixels::Frame;

/// What the last frame showed, for the preview hint.
#[derive(Clone, Debug, PartialEq)]
pub enum Look {
    /// No usable film: why, in words (`no_film`, `film_cut_off`, `film_too_small`).
    NoFilm(Warning),
    /// A film, but it moved since the last frame (or this is the first sighting).
    Moving {
        /// Film corners in frame pixels.
        corners: Quad,
    },
    /// A film held still for `still` of the `need` frames.
    Steadying {
        /// Film corners in frame pixels.
        corners: Quad,
        /// Frames in a row the film has been still.
        still: usize,
        /// Frames in a row needed.
        need: usize,
    },
    /// Still for long enough: analyse this frame.
    Ready {
        /// Film corners in frame pixels.
        corners: Quad,
    },
}

impl Look {
    /// The film's corners, when a film was found.
    pub fn corners(&self) -> Option<&Quad> {
        match self {
            Look::NoFilm(_) => None,
            Look::Moving { corners }
            | Look::Steadying { corners, .. }
            | Look::Ready { corners } => Some(corners),
        }
    }

    /// The hint for the person holding the camera.
    pub fn hint(&self) -> String {
        self.hint_in(Language::En.texts())
    }

    /// [`Look::hint`] in a language (the kiosk's screen).
    pub fn hint_in(&self, words: &Texts) -> String {
        let h = &words.hints;
        match self {
            Look::NoFilm(w) => words.warning(w.code.as_str(), &w.message).to_string(),
            Look::Moving { .. } => h.moving.into(),
            Look::Steadying { still, need, .. } => (h.steadying)(*still, *need),
            Look::Ready { .. } => h.ready.into(),
        }
    }
}

/// Largest corner movement between frames that still counts as still, as a share of the film
/// diagonal.
const STILL: f32 = 0.01;

/// Tracks the film across frames until it has been still for enough frames in a row.
pub struct Steady {
    need: usize,
    last: Option<Quad>,
    still: usize,
}

impl Steady {
    /// `need` consecutive still frames (at least 1).
    pub fn new(need: usize) -> Steady {
        Steady {
            need: need.max(1),
            last: None,
            still: 0,
        }
    }

    /// Forget what was seen (after an analysis, or when the camera was lost).
    pub fn reset(&mut self) {
        self.last = None;
        self.still = 0;
    }

    /// Find the film in `frame` and update the count of still frames.
    pub fn observe(&mut self, frame: &Frame) -> Look {
        match find_film(frame) {
            Err(e) => {
                self.reset();
                Look::NoFilm(blocking_reason(&e))
            }
            Ok(found) => self.observe_corners(found.corners),
        }
    }

    /// The tracking step alone (the finder already ran).
    pub fn observe_corners(&mut self, corners: Quad) -> Look {
        let moved = match &self.last {
            None => f32::INFINITY,
            Some(prev) => corner_shift(prev, &corners),
        };
        self.last = Some(corners);
        if moved > STILL {
            self.still = 1;
        } else {
            self.still += 1;
        }
        if self.still >= self.need {
            // Stays ready while the film stays still; the caller decides whether to analyse
            // the same film again.
            Look::Ready { corners }
        } else if self.still <= 1 {
            Look::Moving { corners }
        } else {
            Look::Steadying {
                corners,
                still: self.still,
                need: self.need,
            }
        }
    }
}

/// How far the film moved from `a` to `b`: the largest corner movement, as a share of the
/// longer diagonal of `b`.
pub fn corner_shift(a: &Quad, b: &Quad) -> f32 {
    let d1 = (b[0][0] - b[2][0]).hypot(b[0][1] - b[2][1]);
    let d2 = (b[1][0] - b[3][0]).hypot(b[1][1] - b[3][1]);
    a.iter()
        .zip(b)
        .map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1]))
        .fold(0.0, f32::max)
        / d1.max(d2).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quad(dx: f32) -> Quad {
        [
            [100.0 + dx, 50.0],
            [500.0 + dx, 50.0],
            [500.0 + dx, 550.0],
            [100.0 + dx, 550.0],
        ]
    }

    #[test]
    fn needs_consecutive_still_frames() {
        let mut s = Steady::new(3);
        assert!(matches!(s.observe_corners(quad(0.0)), Look::Moving { .. }));
        assert!(matches!(
            s.observe_corners(quad(1.0)),
            Look::Steadying { still: 2, .. }
        ));
        // A jump of 5% of the diagonal starts over.
        assert!(matches!(s.observe_corners(quad(33.0)), Look::Moving { .. }));
        assert!(matches!(
            s.observe_corners(quad(33.0)),
            Look::Steadying { .. }
        ));
        assert!(matches!(s.observe_corners(quad(34.0)), Look::Ready { .. }));
        assert!(matches!(s.observe_corners(quad(34.5)), Look::Ready { .. }));
        // A move starts over.
        assert!(matches!(s.observe_corners(quad(80.0)), Look::Moving { .. }));
    }

    #[test]
    fn a_frame_without_film_resets() {
        let mut s = Steady::new(2);
        s.observe_corners(quad(0.0));
        let empty = Frame::new(320, 240, vec![30.0; 320 * 240]);
        let look = s.observe(&empty);
        assert!(
            matches!(&look, Look::NoFilm(w) if w.code == crate::film::Code::NoFilm),
            "{look:?}"
        );
        assert!(!look.hint().is_empty());
        assert!(matches!(s.observe_corners(quad(0.0)), Look::Moving { .. }));
    }
}
