//! Messages of the service (`cxr-edge run`, `cxr-edge serve`) through `tracing`, so that under
//! systemd each line reaches the journal at its own priority (`journalctl -p warning` shows the
//! problems, not every result line).
//!
//! One event is one line on stderr. When stderr is the journal (`JOURNAL_STREAM` names it), the
//! line starts with the sd-daemon priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>`
//! debug) and nothing else, the journal keeps the time; on a terminal it reads
//! `cxr-edge: warning: ...`, `cxr-edge: error: ...` or `cxr-edge: ...`. Control characters in
//! a message (a file name with a newline or an escape sequence in it) are escaped, so a message
//! can neither start a line of its own nor forge a prefix. `CXR_EDGE_LOG` filters, in
//! `EnvFilter` syntax (`debug`, `cxr_edge::input=debug`); the default is `info`.

use std::fmt::Write as _;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The variable that holds the filter.
pub const ENV: &str = "CXR_EDGE_LOG";

const DEFAULT: &str = "info";

/// Install the subscriber writing to stderr. Called once at the start of the binary; a second
/// call changes nothing.
pub fn init() {
    let (filter, bad) = filter(std::env::var(ENV).ok().as_deref());
    let sub = subscriber(to_journal(), filter, std::io::stderr);
    if tracing::subscriber::set_global_default(sub).is_ok() {
        if let Some(bad) = bad {
            tracing::warn!("{ENV}: {bad}; using '{DEFAULT}'");
        }
    }
}

/// The filter for `value` (unset or empty: the default), and why `value` was not taken.
fn filter(value: Option<&str>) -> (EnvFilter, Option<String>) {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => (EnvFilter::new(DEFAULT), None),
        Some(v) => match EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(DEFAULT),
                Some(format!("'{}': {e}", escape(v))),
            ),
        },
    }
}

fn subscriber<W>(journal: bool, filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(Lines { journal })
        .finish()
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM=DEV:INODE` for a service whose
/// stderr is the journal. The pair is compared with stderr itself, so a program started from such
/// a service with its stderr elsewhere (a pipe, a terminal) is not taken for it.
fn to_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes only into the zeroed struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let same = st.st_dev as u64 == dev && st.st_ino as u64 == ino;
    same
}

/// The line format: a priority prefix for the journal, `cxr-edge: ` on a terminal.
struct Lines {
    journal: bool,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut text), event)?;
        let level = *event.metadata().level();
        writeln!(w, "{}{}", prefix(level, self.journal), escape(&text))
    }
}

fn prefix(level: Level, journal: bool) -> &'static str {
    match (journal, level) {
        (true, Level::ERROR) => "<3>",
        (true, Level::WARN) => "<4>",
        (true, Level::INFO) => "<6>",
        (true, _) => "<7>",
        (false, Level::ERROR) => "cxr-edge: error: ",
        (false, Level::WARN) => "cxr-edge: warning: ",
        (false, _) => "cxr-edge: ",
    }
}

/// `text` with its control characters written out (`\n`, `\u{1b}`).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `f` logs, as written, with the filter `filter`.
    fn render(journal: bool, filter: Option<&str>, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = subscriber(journal, super::filter(filter).0, move || out.clone());
        tracing::subscriber::with_default(sub, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn all_levels() {
        tracing::error!("stopped");
        tracing::warn!("degraded");
        tracing::info!("result");
        tracing::debug!("chatter");
        tracing::trace!("detail");
    }

    #[test]
    fn terminal_lines() {
        let text = render(false, None, all_levels);
        assert_eq!(
            text,
            "cxr-edge: error: stopped\ncxr-edge: warning: degraded\ncxr-edge: result\n"
        );
    }

    #[test]
    fn journal_lines_carry_the_priority_and_nothing_else() {
        let text = render(true, Some("trace"), all_levels);
        assert_eq!(
            text,
            "<3>stopped\n<4>degraded\n<6>result\n<7>chatter\n<7>detail\n"
        );
    }

    /// One line, no control character in it: no forged line, prefix or terminal sequence.
    fn one_clean_line(text: &str) -> &str {
        let line = text
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{text:?}"));
        assert!(!line.chars().any(char::is_control), "{text:?}");
        line
    }

    #[test]
    fn control_characters_cannot_forge_a_line() {
        // (tracing-subscriber writes ESC and BEL as `\x1b`, `\x07` itself; the rest is escaped
        // here.)
        let name = "a.png\n<3>forged\x1b[2J\r\x07";
        let text = render(true, None, || tracing::info!("analysed {name}"));
        let line = one_clean_line(&text);
        assert!(
            line.starts_with("<6>analysed a.png\\n<3>forged\\"),
            "{line}"
        );
        assert!(line.ends_with("[2J\\r\\x07"), "{line}");
        let text = render(false, None, || tracing::warn!("{name}"));
        let line = one_clean_line(&text);
        assert!(
            line.starts_with("cxr-edge: warning: a.png\\n<3>forged"),
            "{line}"
        );
    }

    #[test]
    fn escape_writes_controls_out() {
        assert_eq!(escape("a\nb\u{1b}c\td é"), "a\\nb\\u{1b}c\\td é");
    }

    #[test]
    fn fields_are_escaped_too() {
        let text = render(false, None, || tracing::info!(file = "x\ny", "moved"));
        let line = one_clean_line(&text);
        assert!(line.contains("x\\ny"), "{line}");
    }

    #[test]
    fn the_filter_picks_levels_and_modules() {
        assert_eq!(render(false, Some("warn"), all_levels).lines().count(), 2);
        assert_eq!(render(false, Some(" "), all_levels).lines().count(), 3);
        let text = render(false, Some("cxr_edge::log=debug"), all_levels);
        assert!(text.ends_with("cxr-edge: chatter\n"), "{text}");
    }

    #[test]
    fn a_bad_filter_falls_back_to_the_default() {
        let (_, bad) = filter(Some("cxr_edge=loud"));
        assert!(bad.unwrap().contains("'cxr_edge=loud'"));
        assert!(filter(Some("cxr_edge=debug")).1.is_none());
        assert!(filter(None).1.is_none());
        assert_eq!(
            render(false, Some("cxr_edge=loud"), all_levels)
                .lines()
                .count(),
            3
        );
    }
}
