//! Human-readable output: the results table and the end-of-batch summary, in the operator's
//! language (`--lang`, or the config's `language`). Codes (quality warnings, labels in `--json`)
//! stay as records write them: they are what a person would search the documentation for.

use std::io::{self, Write};

use crate::lang::{Language, Texts};
use crate::model::ModelId;
use crate::record::Record;

const PATH_WIDTH: usize = 38;
const RESULT_WIDTH: usize = 28;

/// Keep the end of long paths: the file name is the informative part.
fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        format!("{s:<width$}")
    } else {
        let tail: String = s.chars().skip(n - (width - 1)).collect();
        format!("…{tail}")
    }
}

/// The notice as a heading line: `*** RESEARCH USE ONLY - NOT A DIAGNOSIS. ***`.
pub fn notice_line(words: &Texts) -> String {
    format!("*** {}. ***", words.notice.to_uppercase())
}

pub struct TableWriter {
    labels: Vec<String>,
    model: ModelId,
    words: &'static Texts,
}

impl TableWriter {
    pub fn new(labels: &[String], model: &ModelId, language: Language) -> Self {
        TableWriter {
            labels: labels.to_vec(),
            model: model.clone(),
            words: language.texts(),
        }
    }

    pub fn header(&mut self, out: &mut impl Write) -> io::Result<()> {
        let (m, w) = (&self.model, &self.words.cli);
        writeln!(out, "{}", notice_line(self.words))?;
        writeln!(
            out,
            "{} {} v{} ({}, sha256 {})",
            w.model, m.name, m.version, m.variant, m.sha256
        )?;
        // Which calibration set the operating points: a site's own, or the model's.
        match &m.profile.sha256 {
            Some(sha) => writeln!(out, "site profile {} (sha256 {sha})\n", m.profile.name)?,
            None => writeln!(out)?,
        }
        write!(out, "{:<PATH_WIDTH$}  {:<RESULT_WIDTH$}", w.file, w.result)?;
        for l in &self.labels {
            write!(out, " {:>9}", self.words.short_label(l).to_uppercase())?;
        }
        writeln!(out, "  {}", w.notes)
    }

    pub fn row(&mut self, out: &mut impl Write, r: &Record) -> io::Result<()> {
        let words = self.words;
        write!(out, "{}  ", fit_left(&r.path, PATH_WIDTH))?;
        if let Some(err) = &r.error {
            if r.label.is_none() {
                return writeln!(out, "{}: {err}", words.cli.error);
            }
        }
        let flags: &[String] = r.decision.as_ref().map_or(&[], |d| &d.flags);
        let result = match (&r.result, &r.label) {
            (Some(res), _) if words.speaks_records() => res.as_str(),
            (_, Some(label)) => words.result(label, flags),
            _ => "-",
        };
        write!(out, "{result:<RESULT_WIDTH$}")?;
        for l in &self.labels {
            match r
                .probs
                .as_ref()
                .and_then(|p| p.get(l))
                .and_then(|v| v.as_f64())
            {
                Some(p) => write!(out, " {:>9.3}", p)?,
                None => write!(out, " {:>9}", "-")?,
            }
        }
        let mut notes: Vec<String> = Vec::new();
        if let Some(d) = &r.decision {
            if !d.flags.is_empty() {
                notes.push(format!("{}: {}", words.cli.above, d.flags.join("+")));
            } else {
                notes.push(words.cli.indeterminate.into());
            }
        }
        notes.extend(
            r.quality
                .iter()
                .filter(|w| w.code != crate::film::Code::NotChestXray)
                .map(|w| w.code.to_string()),
        );
        if let Some(err) = &r.error {
            notes.push(format!("{}: {err}", words.cli.error));
        }
        writeln!(out, "  {}", notes.join("; "))
    }
}

/// Counts per label and failures over a batch.
pub struct Summary {
    labels: Vec<String>,
    counts: Vec<usize>,
    pub total: usize,
    pub failed: usize,
    words: &'static Texts,
}

impl Summary {
    pub fn new(labels: &[String], language: Language) -> Self {
        Summary {
            labels: labels.to_vec(),
            counts: vec![0; labels.len()],
            total: 0,
            failed: 0,
            words: language.texts(),
        }
    }

    pub fn add(&mut self, r: &Record) {
        self.total += 1;
        if r.error.is_some() {
            self.failed += 1;
        }
        if let Some(i) = r
            .label
            .as_ref()
            .and_then(|l| self.labels.iter().position(|x| x == l))
        {
            self.counts[i] += 1;
        }
    }

    pub fn render(&self) -> String {
        let w = self.words;
        let per: Vec<String> = self
            .labels
            .iter()
            .zip(&self.counts)
            .map(|(l, c)| format!("{} {c}", w.short_label(l)))
            .collect();
        format!(
            "{}: {}; {}. {}.",
            (w.cli.inputs)(self.total),
            per.join(", "),
            (w.cli.failed)(self.failed),
            w.notice
        )
    }
}
