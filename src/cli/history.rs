//! `cxr-edge history`: the results log as a table, or as CSV for a spreadsheet.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{HistoryArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::config::Config;
use crate::record::Record;
use crate::store::{read_all, StoredRecord};

fn storage_dir(args: &HistoryArgs) -> Result<PathBuf> {
    if let Some(d) = &args.storage {
        return Ok(d.clone());
    }
    Ok(Config::find(args.config.as_deref())?.storage.dir)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV field, quoted when it needs to be (RFC 4180).
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The label names of the log's records, in manifest order (from the first with a result).
fn label_names(records: &[(String, Result<StoredRecord>)]) -> Vec<String> {
    records
        .iter()
        .find_map(|(_, r)| {
            Some(
                r.as_ref()
                    .ok()?
                    .record
                    .probs
                    .as_ref()?
                    .keys()
                    .cloned()
                    .collect(),
            )
        })
        .unwrap_or_else(|| {
            ["covid", "pneumonia", "normal", "other"]
                .map(String::from)
                .to_vec()
        })
}

fn csv_header(labels: &[String]) -> String {
    let mut head: Vec<String> = ["time", "source", "input_sha256", "label", "result"]
        .map(String::from)
        .to_vec();
    head.extend(labels.iter().map(|l| format!("p_{l}")));
    head.extend(
        [
            "flags", "quality", "model", "variant", "profile", "error", "notice",
        ]
        .map(String::from),
    );
    head.join(",")
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn quality_codes(r: &Record) -> Vec<String> {
    r.quality.iter().map(|w| w.code.to_string()).collect()
}

fn csv_row(stored: &StoredRecord, labels: &[String]) -> String {
    let r = &stored.record;
    let mut row = vec![
        stored.time.clone(),
        stored.source.as_str().to_string(),
        opt(&stored.input_sha256),
        opt(&r.label),
        opt(&r.result),
    ];
    row.extend(labels.iter().map(|l| {
        r.probs
            .as_ref()
            .and_then(|p| p.get(l))
            .map(s)
            .unwrap_or_default()
    }));
    let flags = r.decision.as_ref().map(|d| d.flags.join(" "));
    row.extend([
        flags.unwrap_or_default(),
        quality_codes(r).join(" "),
        r.model.name.clone(),
        r.model.variant.clone(),
        // The calibration it was scored with: `shipped`, or `name@sha256` of a site profile.
        match &r.model.profile.sha256 {
            Some(sha) => format!("{}@{sha}", r.model.profile.name),
            None => r.model.profile.name.clone(),
        },
        opt(&r.error),
        r.notice.to_string(),
    ]);
    row.iter().map(|f| csv(f)).collect::<Vec<_>>().join(",")
}

fn table_row(stored: &StoredRecord) -> String {
    let r = &stored.record;
    let top = r
        .label
        .as_ref()
        .and_then(|l| r.probs.as_ref()?.get(l)?.as_f64());
    let notes = match &r.error {
        Some(e) => format!("failed: {e}"),
        None => quality_codes(r).join(", "),
    };
    format!(
        "{:<21} {:<30} {:>6}  {}",
        stored.time,
        opt(&r.result),
        top.map(|p| format!("{:.0}%", 100.0 * p))
            .unwrap_or_default(),
        notes
    )
}

/// `cxr-edge history`: one line (or CSV row) per record, oldest first. Unreadable records are
/// reported on stderr and counted; they make the exit code 1, and hide nothing else.
pub fn run(args: HistoryArgs) -> Result<i32> {
    let dir = storage_dir(&args)?;
    let records = read_all(&dir)?;
    let labels = label_names(&records);
    let mut out: Box<dyn Write> = match &args.csv {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        _ => Box::new(std::io::stdout().lock()),
    };
    if args.csv.is_some() {
        writeln!(out, "{}", csv_header(&labels))?;
    } else {
        writeln!(out, "*** {} ***", crate::NOTICE.to_uppercase())?;
        writeln!(
            out,
            "{:<21} {:<30} {:>6}  NOTES",
            "TIME (UTC)", "RESULT", "P"
        )?;
    }
    let mut bad = 0;
    for (_, r) in &records {
        match r {
            Ok(r) if args.csv.is_some() => writeln!(out, "{}", csv_row(r, &labels))?,
            Ok(r) => writeln!(out, "{}", table_row(r))?,
            Err(e) => {
                eprintln!("cxr-edge history: {e:#}");
                bad += 1;
            }
        }
    }
    out.flush()?;
    if args.csv.is_none() {
        eprintln!(
            "{} records in {}{}",
            records.len() - bad,
            dir.display(),
            if bad > 0 {
                format!(", {bad} unreadable")
            } else {
                String::new()
            }
        );
    }
    Ok(if bad > 0 { EXIT_SOME_FAILED } else { EXIT_OK })
}

#[cfg(test)]
mod tests {
    use super::csv;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
