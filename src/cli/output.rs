//! Human-readable output: the results table and the end-of-batch summary.

use std::io::{self, Write};

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

pub struct TableWriter {
    labels: Vec<String>,
    model: ModelId,
}

impl TableWriter {
    pub fn new(labels: &[String], model: &ModelId) -> Self {
        TableWriter {
            labels: labels.to_vec(),
            model: model.clone(),
        }
    }

    pub fn header(&mut self, out: &mut impl Write) -> io::Result<()> {
        let m = &self.model;
        writeln!(out, "*** {} ***", crate::NOTICE.to_uppercase())?;
        writeln!(
            out,
            "model {} v{} ({}, sha256 {})\n",
            m.name, m.version, m.variant, m.sha256
        )?;
        write!(out, "{:<PATH_WIDTH$}  {:<RESULT_WIDTH$}", "FILE", "RESULT")?;
        for l in &self.labels {
            write!(out, " {:>9}", l.to_uppercase())?;
        }
        writeln!(out, "  NOTES")
    }

    pub fn row(&mut self, out: &mut impl Write, r: &Record) -> io::Result<()> {
        write!(out, "{}  ", fit_left(&r.path, PATH_WIDTH))?;
        if let Some(err) = &r.error {
            if r.label.is_none() {
                return writeln!(out, "ERROR: {err}");
            }
        }
        write!(out, "{:<RESULT_WIDTH$}", r.result.as_deref().unwrap_or("-"))?;
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
                notes.push(format!("above op. point: {}", d.flags.join("+")));
            } else {
                notes.push("indeterminate".into());
            }
        }
        notes.extend(
            r.quality
                .iter()
                .filter(|w| w.code != crate::film::Code::NotChestXray)
                .map(|w| w.code.to_string()),
        );
        if let Some(err) = &r.error {
            notes.push(format!("ERROR: {err}"));
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
}

impl Summary {
    pub fn new(labels: &[String]) -> Self {
        Summary {
            labels: labels.to_vec(),
            counts: vec![0; labels.len()],
            total: 0,
            failed: 0,
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
        let per: Vec<String> = self
            .labels
            .iter()
            .zip(&self.counts)
            .map(|(l, c)| format!("{l} {c}"))
            .collect();
        format!(
            "{} input{}: {}; {} failed. {}",
            self.total,
            if self.total == 1 { "" } else { "s" },
            per.join(", "),
            self.failed,
            crate::NOTICE
        )
    }
}
