//! Button presses typed on stdin, one per line: `c`, space or `capture` for
//! [`Button::Capture`], `n` or `next` for [`Button::Next`], `b` or `back` for
//! [`Button::Back`] (case-insensitive, then Enter); `#S01-0042` for a case code (it replaces
//! the one typed so far; `#` alone forgets it). For a bench setup over SSH, or a board
//! without buttons. Under systemd stdin is /dev/null: the reader sees end of file at once and
//! ends quietly.

use std::io::{BufRead, ErrorKind};
use std::sync::mpsc::{self, Receiver};

use super::{Button, Buttons};

/// The button a typed line stands for; None for an empty line and for unknown words.
pub fn button_for_line(line: &str) -> Option<Button> {
    let line = line.trim_end_matches(['\n', '\r']);
    if !line.is_empty() && line.trim().is_empty() {
        return Some(Button::Capture); // space(s), then Enter
    }
    match line.trim().to_ascii_lowercase().as_str() {
        "c" | "capture" | "space" => Some(Button::Capture),
        "n" | "next" => Some(Button::Next),
        "b" | "back" => Some(Button::Back),
        _ => None,
    }
}

/// The presses a typed line stands for: a case code (`#CODE`: forget the code so far, then
/// type each character), or one button (see [`button_for_line`]).
pub fn presses_for_line(line: &str) -> Vec<Button> {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(code) = line.trim_start().strip_prefix('#') {
        let mut out = vec![Button::Clear];
        out.extend(code.trim().chars().map(Button::Char));
        return out;
    }
    button_for_line(line).into_iter().collect()
}

/// What to tell the user about a line that is no button (None: say nothing).
pub fn hint_for_line(line: &str) -> Option<String> {
    let word = line.trim();
    if word.is_empty() || !presses_for_line(line).is_empty() {
        return None;
    }
    let word: String = word.chars().take(20).collect();
    Some(format!(
        "cxr-edge: '{word}' is no button: type c (capture), n (next) or b (back), or #CODE for a case code, then Enter"
    ))
}

/// Presses read from stdin (or any reader) by a thread of their own.
pub struct Keyboard {
    rx: Receiver<Button>,
}

impl Keyboard {
    /// Read presses from the process's stdin.
    pub fn stdin() -> Keyboard {
        Keyboard::from_reader(std::io::BufReader::new(std::io::stdin()))
    }

    /// Read lines from `reader` until end of file (or a read error).
    pub fn from_reader<R: BufRead + Send + 'static>(mut reader: R) -> Keyboard {
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("cxr-keyboard".into())
            .spawn(move || {
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => return,
                    }
                    let line = String::from_utf8_lossy(&buf);
                    let presses = presses_for_line(&line);
                    if presses.is_empty() {
                        if let Some(hint) = hint_for_line(&line) {
                            eprintln!("{hint}");
                        }
                    }
                    for b in presses {
                        if tx.send(b).is_err() {
                            return;
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the keyboard reader: {e}");
        }
        Keyboard { rx }
    }
}

impl Buttons for Keyboard {
    fn poll(&mut self) -> Vec<Button> {
        self.rx.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::time::Duration;

    #[test]
    fn lines_map_to_buttons() {
        for (line, want) in [
            ("c\n", Some(Button::Capture)),
            ("C\r\n", Some(Button::Capture)),
            ("  capture  \n", Some(Button::Capture)),
            ("CAPTURE", Some(Button::Capture)),
            (" \n", Some(Button::Capture)),
            ("   ", Some(Button::Capture)),
            ("space", Some(Button::Capture)),
            ("n\n", Some(Button::Next)),
            ("Next\n", Some(Button::Next)),
            ("\tb \n", Some(Button::Back)),
            ("BACK", Some(Button::Back)),
            ("\n", None),
            ("", None),
            ("x\n", None),
            ("cn\n", None),
            ("next please\n", None),
        ] {
            assert_eq!(button_for_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn a_hash_line_types_a_case_code() {
        assert_eq!(
            presses_for_line("#S01-42\n"),
            [
                Button::Clear,
                Button::Char('S'),
                Button::Char('0'),
                Button::Char('1'),
                Button::Char('-'),
                Button::Char('4'),
                Button::Char('2')
            ]
        );
        assert_eq!(presses_for_line("  #\n"), [Button::Clear]);
        assert_eq!(presses_for_line("n\n"), [Button::Next]);
        assert!(presses_for_line("quit\n").is_empty());
        assert_eq!(hint_for_line("#A1\n"), None);
    }

    #[test]
    fn hints_only_for_unknown_words() {
        assert_eq!(hint_for_line("\n"), None);
        assert_eq!(hint_for_line("n\n"), None);
        assert_eq!(hint_for_line(" \n"), None);
        let h = hint_for_line("quit\n").unwrap();
        assert!(h.contains("'quit'") && h.contains("c (capture)"), "{h}");
        assert!(!h.contains('\n'), "one line");
    }

    #[test]
    fn reader_thread_sends_presses_and_ends_at_eof() {
        let kb = Keyboard::from_reader(Cursor::new(b"c\nhello\n\nN\n \nback\nb".to_vec()));
        let mut got = Vec::new();
        // recv until the thread has hung up (end of input).
        while let Ok(b) = kb.rx.recv_timeout(Duration::from_secs(5)) {
            got.push(b);
        }
        assert_eq!(
            got,
            [
                Button::Capture,
                Button::Next,
                Button::Capture,
                Button::Back,
                Button::Back
            ]
        );
    }

    #[test]
    fn empty_input_ends_quietly() {
        let mut kb = Keyboard::from_reader(Cursor::new(Vec::new()));
        assert_eq!(
            kb.rx.recv_timeout(Duration::from_secs(5)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
        assert!(kb.poll().is_empty());
    }

    #[test]
    fn invalid_utf8_is_skipped() {
        let kb = Keyboard::from_reader(Cursor::new(b"\xff\xfe\nn\n".to_vec()));
        assert_eq!(kb.rx.recv_timeout(Duration::from_secs(5)), Ok(Button::Next));
    }
}
