//! The data set's `manifest.csv`, for the evaluation examples (the appliance never reads the
//! data set). Included with `#[path = "common/manifest.rs"] mod manifest;`.
// Each example reads only some of the columns.
#![allow(dead_code)]

use std::path::Path;

use anyhow::{Context, Result};

#[derive(Clone)]
pub struct Row {
    pub path: String,
    pub label: String,
    pub patient: String,
}

/// Every row of `split`, sorted by path. A plain comma split is enough: `manifest.csv` quotes
/// nothing before its `split` column (the licence text after it may hold commas).
pub fn split_rows(root: &Path, split: &str) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(root.join("manifest.csv")).context("reading manifest.csv")?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty manifest")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no column {name}"))
    };
    let (cp, cl, cs, cpat) = (
        col("path")?,
        col("label")?,
        col("split")?,
        col("patient_id")?,
    );
    let last = cp.max(cl).max(cs).max(cpat);
    let mut rows: Vec<Row> = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > last && f[cs] == split).then(|| Row {
                path: f[cp].to_string(),
                label: f[cl].to_string(),
                patient: f[cpat].to_string(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(rows)
}
