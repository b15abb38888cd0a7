//! Button presses typed on stdin, one per line: `c`, space or `capture` for
//! [`Button::Capture`], `n` or `next` for [`Button::Next`], `b` or `back` for
//! [`Button::Back`] (case-insensitive, then Enter). For a bench setup over SSH, or a board
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

/// What to tell the user about a line that is no button (None: say nothing).
pub fn hint_for_line(line: &str) -> Option<String> {
    let word = line.trim();
    if word.is_empty() || button_for_line(line).is_some() {
        return None;
    }
    let word: String = word.chars().take(20).collect();
    Some(format!(
        "cxr-edge: '{word}' is no button: type c (capture), n (next) or b (back), then Enter"
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
                    match button_for_line(&line) {
                        Some(b) => {
                            if tx.send(b).is_err() {
                                return;
                            }
                        }
                        None => {
                            if let Some(hint) = hint_for_line(&line) {
                                eprintln!("{hint}");
                            }
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
