//! The button thread on scripted edges: press logic (active low and high, bounce), the channel,
//! errors reported once, and the end of the thread.

use std::collections::VecDeque;

use super::*;

const MS: u64 = 1_000_000;

const BUTTONS: [Button; 3] = [Button::Capture, Button::Next, Button::Back];

fn edge(index: usize, rising: bool, ms: u64) -> Edge {
    Edge {
        index,
        rising,
        time_ns: ms * MS,
    }
}

/// What one wait returns: edges or an error.
type Step = Result<Vec<Edge>, std::io::Error>;

/// Waits that return the scripted steps in order, then end.
struct Script(VecDeque<Step>);

impl EdgeSource for Script {
    fn wait(&mut self, _: Duration) -> Option<Step> {
        self.0.pop_front()
    }
}

fn script(steps: Vec<Step>) -> Script {
    Script(steps.into())
}

/// Contact bounce on line `i` from `at` ms: the edges of a press that bounces for 3 ms, held
/// until `until` ms, then released with a bounce too. `active_low`: pressed is low.
fn bouncy_press(i: usize, at: u64, until: u64, active_low: bool) -> Vec<Edge> {
    let press = !active_low;
    vec![
        edge(i, press, at),
        edge(i, !press, at + 1),
        edge(i, press, at + 3),
        edge(i, !press, until),
        edge(i, press, until + 1),
        edge(i, !press, until + 2),
    ]
}

fn presses(active_low: bool, edges: &[Edge]) -> Vec<Button> {
    let mut p = Presses::new(&BUTTONS, active_low, DEBOUNCE);
    edges.iter().filter_map(|e| p.edge(*e)).collect()
}

#[test]
fn active_low_press_is_the_falling_edge() {
    // Clean (kernel-debounced) edges: falling = pressed, rising = released.
    let edges = [edge(0, false, 100), edge(0, true, 300), edge(1, false, 400)];
    assert_eq!(presses(true, &edges), [Button::Capture, Button::Next]);
    // Releases alone are no presses.
    assert!(presses(true, &[edge(0, true, 100), edge(2, true, 200)]).is_empty());
}

#[test]
fn active_high_press_is_the_rising_edge() {
    let edges = [edge(2, true, 100), edge(2, false, 300), edge(2, true, 500)];
    assert_eq!(presses(false, &edges), [Button::Back, Button::Back]);
    // The same edges read active low: the press is the fall at 300 ms only.
    assert_eq!(presses(true, &edges), [Button::Back]);
}

#[test]
fn bounce_counts_once_for_either_polarity() {
    for active_low in [true, false] {
        let mut edges = bouncy_press(0, 100, 250, active_low);
        edges.extend(bouncy_press(0, 1000, 1200, active_low));
        assert_eq!(
            presses(active_low, &edges),
            [Button::Capture, Button::Capture],
            "active_low {active_low}"
        );
    }
}

#[test]
fn edges_closer_than_the_debounce_period_are_no_press() {
    // Released at 100 ms and pressed again 10 ms later: a bounce, not a second press.
    let edges = [
        edge(1, false, 0),
        edge(1, true, 100),
        edge(1, false, 110),
        edge(1, true, 400),
        edge(1, false, 400 + 30),
    ];
    assert_eq!(presses(true, &edges), [Button::Next, Button::Next]);
    // Two edges into the active level in a row (an event lost) count once.
    let edges = [edge(0, false, 0), edge(0, false, 500)];
    assert_eq!(presses(true, &edges), [Button::Capture]);
    // Edges of an unknown line are ignored.
    assert!(presses(true, &[edge(7, false, 0)]).is_empty());
}

#[test]
fn presses_arrive_in_order_through_the_channel() {
    let mut first = bouncy_press(0, 100, 300, true);
    first.extend(bouncy_press(1, 500, 2000, true));
    let steps = vec![
        Ok(first),
        Ok(vec![]),
        Ok(vec![edge(2, false, 2100), edge(2, true, 2101)]), // a short tap: one press
        Ok(bouncy_press(0, 3000, 3100, true)),
    ];
    let mut b = GpioButtons::with_source(&BUTTONS, true, script(steps)).unwrap();
    b.join().expect("the thread does not panic");
    assert_eq!(
        b.poll(),
        [Button::Capture, Button::Next, Button::Back, Button::Capture]
    );
    assert!(b.poll().is_empty(), "drained");
}

#[test]
fn poll_does_not_block() {
    let mut b = GpioButtons::with_source(&BUTTONS, true, script(vec![Ok(vec![])])).unwrap();
    assert!(b.poll().is_empty());
    b.join().unwrap();
    assert!(b.poll().is_empty());
}

#[test]
fn unreadable_lines_are_reported_once_and_retried() {
    let gone = || Err(std::io::Error::other("ENODEV: the chip went away"));
    let mut steps: Vec<Step> = (0..50).map(|_| gone()).collect();
    steps.push(Ok(bouncy_press(0, 500, 700, true)));
    let mut w = Watcher::new(script(steps), Presses::new(&BUTTONS, true, DEBOUNCE));
    let mut got = Vec::new();
    while let Some(p) = w.step(WAIT) {
        got.extend(p);
    }
    assert_eq!(got, [Button::Capture], "works again after the errors");
    assert_eq!(
        w.reports, 2,
        "one message for the run of failures, one for recovery"
    );
}

#[test]
fn recovery_is_reported_and_failures_again_once_more() {
    let err = || Err(std::io::Error::other("EIO"));
    let steps = vec![err(), err(), Ok(vec![]), err(), Ok(vec![]), Ok(vec![])];
    let mut w = Watcher::new(script(steps), Presses::new(&BUTTONS, true, DEBOUNCE));
    while w.step(WAIT).is_some() {}
    // failed, readable again, failed, readable again
    assert_eq!(w.reports, 4);
}

/// A source that never ends: dropping the buttons stops and joins the thread.
#[test]
fn drop_stops_the_thread() {
    struct Forever;
    impl EdgeSource for Forever {
        fn wait(&mut self, timeout: Duration) -> Option<Step> {
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            Some(Ok(Vec::new()))
        }
    }
    let b = GpioButtons::with_source(&BUTTONS, true, Forever).unwrap();
    let t = Instant::now();
    drop(b);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn open_names_the_chip() {
    let lines = [(Button::Capture, LineRef::Offset(17))];
    let e = GpioButtons::open(&lines, Path::new("/nonexistent/gpiochip9"), None, true)
        .err()
        .unwrap();
    let e = format!("{e:#}");
    assert!(
        e.contains("/nonexistent/gpiochip9") && e.contains("capture"),
        "{e}"
    );
}
