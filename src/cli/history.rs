//! `cxr-edge history`: the results log as a table, or as CSV for a spreadsheet.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{HistoryArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::app::config::Config;
use crate::store::read_all;

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

pub fn run(args: HistoryArgs) -> Result<i32> {
    let dir = storage_dir(&args)?;
    let records = read_all(&dir)?;
    let labels: Vec<String> = records
        .iter()
        .find_map(|(_, r)| {
            r.as_ref()
                .ok()?
                .get("probs")?
                .as_object()
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_else(|| {
            ["covid", "pneumonia", "normal", "other"]
                .map(String::from)
                .to_vec()
        });
    let mut out: Box<dyn Write> = match &args.csv {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        Some(_) => Box::new(std::io::stdout().lock()),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bad = 0;
    if args.csv.is_some() {
        let mut head = vec!["time", "source", "input_sha256", "label", "result"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        head.extend(labels.iter().map(|l| format!("p_{l}")));
        head.extend(["flags", "quality", "model", "variant", "error", "notice"].map(String::from));
        writeln!(out, "{}", head.join(","))?;
    } else {
        writeln!(out, "*** {} ***", crate::NOTICE.to_uppercase())?;
        writeln!(
            out,
            "{:<21} {:<30} {:>6}  {}",
            "TIME (UTC)", "RESULT", "P", "NOTES"
        )?;
    }
    for (_, r) in &records {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cxr-edge history: {e:#}");
                bad += 1;
                continue;
            }
        };
        let probs = r.get("probs").and_then(Value::as_object);
        let flags: Vec<String> = r["decision"]["flags"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        let quality: Vec<String> = r["quality"]
            .as_array()
            .map(|a| a.iter().map(|w| s(&w["code"])).collect())
            .unwrap_or_default();
        if args.csv.is_some() {
            let mut row = vec![
                s(&r["time"]),
                s(&r["source"]),
                s(&r["input_sha256"]),
                s(&r["label"]),
                s(&r["result"]),
            ];
            row.extend(
                labels
                    .iter()
                    .map(|l| probs.and_then(|p| p.get(l)).map(s).unwrap_or_default()),
            );
            row.extend([
                flags.join(" "),
                quality.join(" "),
                s(&r["model"]["name"]),
                s(&r["model"]["variant"]),
                s(&r["error"]),
                s(&r["notice"]),
            ]);
            writeln!(
                out,
                "{}",
                row.iter().map(|f| csv(f)).collect::<Vec<_>>().join(",")
            )?;
        } else {
            let top = r["label"].as_str().and_then(|l| probs?.get(l)?.as_f64());
            let notes = match r["error"].as_str() {
                Some(e) => format!("failed: {e}"),
                None => quality.join(", "),
            };
            writeln!(
                out,
                "{:<21} {:<30} {:>6}  {}",
                s(&r["time"]),
                s(&r["result"]),
                top.map(|p| format!("{:.0}%", 100.0 * p))
                    .unwrap_or_default(),
                notes
            )?;
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
