//! A debouncer for one momentary switch, fed with samples (time in milliseconds, pressed or
//! not). Pure: no clock, no thread, so synthetic bounce patterns test it exactly.
//!
//! A press is reported once, when the input has read "pressed" continuously for `stable`
//! after having read "released" continuously for `stable`. Contact bounce and glitches
//! shorter than `stable` produce nothing; holding the button produces one press (no
//! auto-repeat). A button already held when sampling starts is not a press: it must be
//! released first.

use std::time::Duration;

/// How long a level must hold before it counts.
pub const DEFAULT_STABLE: Duration = Duration::from_millis(30);

/// Debounce state for one switch; see the module documentation.
#[derive(Clone, Debug)]
pub struct Debouncer {
    stable_ms: u64,
    /// The level of the latest sample and when the input changed to it.
    candidate: Option<(bool, u64)>,
    /// The last level that held for `stable` (None until one has).
    settled: Option<bool>,
}

impl Default for Debouncer {
    fn default() -> Self {
        Debouncer::new(DEFAULT_STABLE)
    }
}

impl Debouncer {
    /// A debouncer for which a level counts once it has held for `stable`.
    pub fn new(stable: Duration) -> Debouncer {
        Debouncer {
            stable_ms: u64::try_from(stable.as_millis()).unwrap_or(u64::MAX),
            candidate: None,
            settled: None,
        }
    }

    /// Feed one sample taken at `now_ms` (any monotonic millisecond clock); true when this
    /// sample completes a press.
    pub fn update(&mut self, now_ms: u64, pressed: bool) -> bool {
        let since = match self.candidate {
            Some((level, since)) if level == pressed => since,
            _ => {
                self.candidate = Some((pressed, now_ms));
                now_ms
            }
        };
        if now_ms.saturating_sub(since) < self.stable_ms || self.settled == Some(pressed) {
            return false;
        }
        let was = self.settled.replace(pressed);
        pressed && was == Some(false)
    }

    /// The debounced level: Some(true) while stably pressed, None before anything settled.
    pub fn level(&self) -> Option<bool> {
        self.settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A level that changes at the given times (ms), sampled every `period` ms until `end`.
    /// `edges` are (time, level) in time order; the level before the first edge is released.
    fn run(d: &mut Debouncer, period: u64, end: u64, edges: &[(u64, bool)]) -> Vec<u64> {
        let mut presses = Vec::new();
        let mut t = 0;
        while t <= end {
            let level = edges
                .iter()
                .take_while(|(at, _)| *at <= t)
                .last()
                .is_some_and(|(_, l)| *l);
            if d.update(t, level) {
                presses.push(t);
            }
            t += period;
        }
        presses
    }

    /// Contact bounce: alternating pulses of the given lengths starting at `start` with
    /// "pressed", ending on `settle`.
    fn bounce(start: u64, pulses: &[u64], settle: bool) -> Vec<(u64, bool)> {
        let mut edges = Vec::new();
        let mut t = start;
        let mut level = true;
        for p in pulses {
            edges.push((t, level));
            t += p;
            level = !level;
        }
        edges.push((t, settle));
        edges
    }

    #[test]
    fn a_clean_press_counts_once_after_the_stable_time() {
        let mut d = Debouncer::default();
        let presses = run(&mut d, 1, 300, &[(100, true), (200, false)]);
        assert_eq!(presses, [130]);
    }

    #[test]
    fn contact_bounce_gives_one_press() {
        // 1-10 ms pulses for ~40 ms, then held for 150 ms, then a bouncy release.
        let mut edges = bounce(100, &[1, 3, 2, 7, 1, 10, 4, 5, 2, 9], true);
        let held_from = edges.last().unwrap().0;
        // The release bounces too: released first, settling released.
        let release = bounce(held_from + 150, &[2, 1, 6, 3, 8], true);
        edges.extend(release.into_iter().map(|(t, l)| (t, !l)));
        for period in [1, 5] {
            let mut d = Debouncer::default();
            let presses = run(&mut d, period, 600, &edges);
            assert_eq!(presses.len(), 1, "period {period}: {presses:?}");
            assert!(presses[0] >= held_from + 30, "{presses:?}");
            assert!(presses[0] <= held_from + 30 + period, "{presses:?}");
        }
    }

    #[test]
    fn bounce_that_never_settles_gives_nothing() {
        let pulses: Vec<u64> = (0..40).map(|i| 1 + (i * 7) % 10).collect();
        let mut d = Debouncer::default();
        assert!(run(&mut d, 1, 600, &bounce(100, &pulses, false)).is_empty());
    }

    #[test]
    fn a_5ms_glitch_is_ignored() {
        for period in [1, 5] {
            let mut d = Debouncer::default();
            let presses = run(&mut d, period, 300, &[(100, true), (105, false)]);
            assert!(presses.is_empty(), "period {period}");
        }
        // Nor does a glitch to "released" during a hold make a second press.
        let mut d = Debouncer::default();
        let presses = run(
            &mut d,
            1,
            500,
            &[(100, true), (200, false), (205, true), (400, false)],
        );
        assert_eq!(presses, [130]);
    }

    #[test]
    fn two_presses_200ms_apart() {
        let mut edges = bounce(100, &[2, 1, 3], true);
        edges.push((180, false));
        edges.extend(bounce(300, &[1, 4, 2], true));
        edges.push((380, false));
        for period in [1, 5] {
            let mut d = Debouncer::default();
            let presses = run(&mut d, period, 600, &edges);
            assert_eq!(presses.len(), 2, "period {period}: {presses:?}");
            assert!(presses[1] - presses[0] >= 190, "{presses:?}");
        }
    }

    #[test]
    fn a_long_hold_is_one_press() {
        let mut d = Debouncer::default();
        let presses = run(&mut d, 5, 10_000, &[(100, true)]);
        assert_eq!(presses, [130]);
        assert_eq!(d.level(), Some(true));
    }

    #[test]
    fn held_at_start_is_not_a_press_until_released() {
        let mut d = Debouncer::default();
        let presses = run(&mut d, 5, 1000, &[(0, true), (300, false), (600, true)]);
        assert_eq!(presses, [630]);
    }

    #[test]
    fn custom_stable_time_and_uneven_sampling() {
        let mut d = Debouncer::new(Duration::from_millis(50));
        assert!(!d.update(0, false));
        assert!(!d.update(60, false));
        assert!(!d.update(61, true));
        assert!(!d.update(100, true));
        assert!(d.update(111, true));
        assert!(!d.update(5000, true));
        // A clock going backwards does not panic or press.
        assert!(!d.update(10, true));
    }
}
