//! Reading what `cxr-edge calibrate` fits on: the site's labels CSV and its `classify --json`
//! output, and pairing their lines. Both files come from outside: sizes and line lengths are
//! capped, numbers checked, and text from them is escaped before it is printed.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::model::Manifest;

/// Far more films than any site labels; a bigger file is a mistake.
const MAX_FILE_BYTES: u64 = 1 << 30;
/// A record line is about 700 bytes, a CSV row far less.
const MAX_LINE_BYTES: usize = 64 * 1024;
const MAX_LINES: usize = 2_000_000;
/// Probabilities below this (records round to 6 decimals) are taken as this.
const P_FLOOR: f64 = 1e-7;

/// One labelled film of the CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelRow {
    /// The path as written (components split on `/`).
    pub path: String,
    /// Index into the manifest's labels.
    pub label: usize,
    /// Patient id; `None`: the film is its own patient.
    pub patient: Option<String>,
}

/// Lines of `path`, each at most [`MAX_LINE_BYTES`]; numbered from 1.
fn lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    ensure!(
        len <= MAX_FILE_BYTES,
        "{} is {len} bytes, more than the {MAX_FILE_BYTES} this command reads",
        path.display()
    );
    let mut r = BufReader::new(f.take(MAX_FILE_BYTES));
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        let no = out.len() + 1;
        ensure!(
            buf.len() <= MAX_LINE_BYTES,
            "{} line {no} is longer than {MAX_LINE_BYTES} bytes",
            path.display()
        );
        ensure!(
            no <= MAX_LINES,
            "{} has more than {MAX_LINES} lines",
            path.display()
        );
        let text = String::from_utf8_lossy(&buf);
        out.push((no, text.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(out)
}

/// The fields of one CSV line: commas separate, double quotes may enclose a field (with `""`
/// for a quote inside).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Read the labels CSV: a header naming `path` and `label` (and optionally `patient`), then
/// one film a line. Labels are the manifest's; a film listed twice is an error.
pub fn read_labels(path: &Path, m: &Manifest) -> Result<Vec<LabelRow>> {
    let lines = lines(path)?;
    let mut rows = lines.iter().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = rows
        .next()
        .with_context(|| format!("{} is empty", path.display()))?;
    let head: Vec<String> = csv_fields(header)
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let col = |name: &str| head.iter().position(|h| h == name);
    let (Some(pc), Some(lc)) = (col("path"), col("label")) else {
        bail!(
            "{}: the first line must name the columns, with `path` and `label` among them \
             (and optionally `patient`), e.g. `path,label,patient`",
            path.display()
        );
    };
    let patient_col = col("patient");
    let mut out: Vec<LabelRow> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (no, line) in rows {
        let f = csv_fields(line);
        let get = |c: usize| f.get(c).map(String::as_str).unwrap_or("");
        let (film, label) = (get(pc), get(lc));
        ensure!(!film.is_empty(), "{} line {no}: no path", path.display());
        let label_idx = m
            .label_index(&label.to_ascii_lowercase())
            .with_context(|| {
                format!(
                    "{} line {no}: label {:?} is not one of the model's ({})",
                    path.display(),
                    label.escape_debug().to_string(),
                    m.labels.join(", ")
                )
            })?;
        let key = normalise(film).join("/");
        if let Some(first) = seen.insert(key, *no) {
            bail!(
                "{} lists {:?} twice (lines {first} and {no})",
                path.display(),
                film.escape_debug().to_string()
            );
        }
        out.push(LabelRow {
            path: film.to_string(),
            label: label_idx,
            patient: patient_col
                .map(get)
                .filter(|p| !p.is_empty())
                .map(String::from),
        });
    }
    Ok(out)
}

/// Path components: split on `/`, without empty and `.` parts and without a record's
/// `sample:` prefix (the bundled films are named `sample:NAME` in records).
fn normalise(path: &str) -> Vec<&str> {
    let path = path.strip_prefix("sample:").unwrap_or(path);
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Whether one path is the other's tail, whole components at a time (`scans/a.png` and
/// `/data/site/scans/a.png`).
fn same_film(a: &[&str], b: &[&str]) -> bool {
    let n = a.len().min(b.len());
    n > 0 && a[a.len() - n..] == b[b.len() - n..]
}

/// The CSV row for each record path: equal paths first; else the one row whose path is the
/// other's tail. `Err(true)`: several rows fit (ambiguous); `Err(false)`: none.
pub struct Matcher<'a> {
    by_name: HashMap<&'a str, Vec<(usize, Vec<&'a str>)>>,
}

impl<'a> Matcher<'a> {
    /// Index `rows` by file name.
    pub fn new(rows: &'a [LabelRow]) -> Matcher<'a> {
        let mut by_name: HashMap<&str, Vec<(usize, Vec<&str>)>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let parts = normalise(&r.path);
            if let Some(name) = parts.last() {
                by_name.entry(name).or_default().push((i, parts));
            }
        }
        Matcher { by_name }
    }

    /// The row index for a record's path.
    pub fn find(&self, record_path: &str) -> Result<usize, bool> {
        let parts = normalise(record_path);
        let Some(cands) = parts.last().and_then(|n| self.by_name.get(n)) else {
            return Err(false);
        };
        if let Some((i, _)) = cands.iter().find(|(_, p)| *p == parts) {
            return Ok(*i);
        }
        let fits: Vec<usize> = cands
            .iter()
            .filter(|(_, p)| same_film(p, &parts))
            .map(|(i, _)| *i)
            .collect();
        match fits[..] {
            [i] => Ok(i),
            [] => Err(false),
            _ => Err(true),
        }
    }
}

/// What one result line gave.
pub enum Line {
    /// A film with its model id and logits (up to a constant), in label order.
    Film {
        /// The record's `path`.
        path: String,
        /// `model.sha256` (12 hex digits) of the record.
        model_sha: String,
        /// Logits, in label order.
        z: Vec<f64>,
    },
    /// Left out, with the reason (a key of the report's "left out" counts).
    LeftOut(&'static str),
}

fn numbers(obj: Option<&Value>, labels: &[String]) -> Option<Vec<f64>> {
    let obj = obj?.as_object()?;
    labels
        .iter()
        .map(|l| obj.get(l)?.as_f64().filter(|v| v.is_finite()))
        .collect()
}

/// One line of `classify --json` output. Raw `logits` are used when the record has them;
/// older records only have the probabilities, from which logits are recovered up to a
/// constant (`ln p = z / T - logsumexp`), which is all a softmax needs, provided they were
/// scored with the manifest's own temperature `shipped_t`.
pub fn parse_line(text: &str, labels: &[String], shipped_t: f64) -> Line {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Line::LeftOut("not a JSON record");
    };
    let (Some(path), Some(model)) = (v["path"].as_str(), v["model"].as_object()) else {
        return Line::LeftOut("not a JSON record");
    };
    if !v["error"].is_null() || v["probs"].is_null() {
        return Line::LeftOut("failed analysis (no result)");
    }
    let model_sha = model
        .get("sha256")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let z = match numbers(v.get("logits"), labels) {
        Some(z) if z.iter().all(|x| x.abs() <= 1e4) => z,
        Some(_) => return Line::LeftOut("unusable numbers"),
        None => {
            let shipped = model
                .get("profile")
                .is_none_or(|p| p["name"] == crate::model::profile::SHIPPED);
            if !shipped {
                return Line::LeftOut("scored with a site profile, without logits");
            }
            let Some(p) = numbers(v.get("probs"), labels) else {
                return Line::LeftOut("unusable numbers");
            };
            let sum: f64 = p.iter().sum();
            if p.iter().any(|x| !(0.0..=1.0).contains(x)) || (sum - 1.0).abs() > 0.01 {
                return Line::LeftOut("unusable numbers");
            }
            p.iter().map(|x| shipped_t * x.max(P_FLOOR).ln()).collect()
        }
    };
    Line::Film {
        path: path.to_string(),
        model_sha,
        z,
    }
}

/// The site's films, paired with their labels.
#[derive(Debug, Default)]
pub struct Site {
    /// Logits per film.
    pub z: Vec<Vec<f64>>,
    /// Label index per film.
    pub y: Vec<usize>,
    /// Patient number per film.
    pub group: Vec<usize>,
    /// Number of patients.
    pub n_groups: usize,
    /// Result lines left out, by reason.
    pub left_out: BTreeMap<String, u64>,
    /// Labelled films without a usable result line.
    pub labels_without_result: usize,
    /// `model.sha256` of the films used, with how many lines named each.
    pub model_shas: BTreeMap<String, usize>,
}

/// Pair the result lines with the labels. Each film (CSV row) is used once: a second line for
/// it is a duplicate, and lines whose row several records claim are left out as ambiguous.
pub fn pair(results: &Path, rows: &[LabelRow], m: &Manifest) -> Result<Site> {
    let matcher = Matcher::new(rows);
    let mut site = Site::default();
    let left = |why: &str, site: &mut Site| *site.left_out.entry(why.into()).or_insert(0) += 1;
    // Row index -> (record path, z, model sha) of the first line that claimed it.
    let mut claimed: BTreeMap<usize, (String, Vec<f64>, String)> = BTreeMap::new();
    let mut ambiguous_rows: Vec<usize> = Vec::new();
    let t = m.calibration.temperature as f64;
    for (_, text) in lines(results)? {
        if text.trim().is_empty() {
            continue;
        }
        let (path, model_sha, z) = match parse_line(&text, &m.labels, t) {
            Line::LeftOut(why) => {
                left(why, &mut site);
                continue;
            }
            Line::Film { path, model_sha, z } => (path, model_sha, z),
        };
        match matcher.find(&path) {
            Err(false) => left("no label in the CSV", &mut site),
            Err(true) => left("matches several CSV rows", &mut site),
            Ok(row) => match claimed.get(&row) {
                None => {
                    claimed.insert(row, (path, z, model_sha));
                }
                Some((first, ..)) if *first == path => left("duplicate line", &mut site),
                Some(_) => {
                    // Two different records claim one labelled film: neither can be trusted.
                    left("one CSV row fits several results", &mut site);
                    ambiguous_rows.push(row);
                }
            },
        }
    }
    for row in ambiguous_rows {
        if claimed.remove(&row).is_some() {
            left("one CSV row fits several results", &mut site);
        }
    }
    let mut patients: HashMap<&str, usize> = HashMap::new();
    for (row, (_, z, sha)) in claimed.iter() {
        let group = match &rows[*row].patient {
            Some(p) => {
                let next = site.n_groups;
                *patients.entry(p.as_str()).or_insert(next)
            }
            None => site.n_groups,
        };
        if group == site.n_groups {
            site.n_groups += 1;
        }
        site.z.push(z.clone());
        site.y.push(rows[*row].label);
        site.group.push(group);
        *site.model_shas.entry(sha.clone()).or_insert(0) += 1;
    }
    site.labels_without_result = rows.len() - claimed.len();
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str) -> LabelRow {
        LabelRow {
            path: path.into(),
            label: 0,
            patient: None,
        }
    }

    #[test]
    fn csv_fields_take_quotes_and_commas() {
        assert_eq!(
            csv_fields(r#""a, ""b"".png",covid , p1"#),
            ["a, \"b\".png", "covid", "p1"]
        );
        assert_eq!(csv_fields("x.png,normal"), ["x.png", "normal"]);
    }

    #[test]
    fn records_match_by_path_or_by_whole_trailing_components() {
        let rows = [
            row("scans/a.png"),
            row("b.png"),
            row("x/c.png"),
            row("y/c.png"),
            row("nih-normal-1.png"),
        ];
        let m = Matcher::new(&rows);
        assert_eq!(m.find("/data/site/scans/a.png"), Ok(0));
        assert_eq!(m.find("./scans/a.png"), Ok(0));
        assert_eq!(m.find("other/a.png"), Err(false), "a different folder");
        assert_eq!(m.find("/mnt/b.png"), Ok(1));
        assert_eq!(m.find("ab.png"), Err(false), "not a whole component");
        assert_eq!(m.find("c.png"), Err(true), "two rows fit");
        assert_eq!(m.find("/z/y/c.png"), Ok(3));
        assert_eq!(m.find("sample:nih-normal-1.png"), Ok(4));
    }

    /// Each labelled film is used once; duplicates and films two results claim are counted.
    #[test]
    fn pairing_counts_what_it_leaves_out() {
        let m = Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cxr-net.toml"))
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("l.csv");
        std::fs::write(
            &csv,
            "Label,Path,Patient\ncovid,a/1.png,p\nnormal,2.png,p\nother,3.png,\n",
        )
        .unwrap();
        let rows = read_labels(&csv, &m).unwrap();
        assert_eq!(rows[1].label, 2);
        let line = |p: &str| {
            format!(
                r#"{{"path":"{p}","model":{{"sha256":"abc"}},"error":null,"logits":{{"covid":1,"pneumonia":0,"normal":0,"other":0}},"probs":{{}}}}"#
            )
        };
        let jsonl = [
            line("/x/a/1.png"),
            line("/x/a/1.png"),
            line("/y/2.png"),
            line("/z/2.png"),
            line("9.png"),
        ]
        .join("\n");
        let results = dir.path().join("r.jsonl");
        std::fs::write(&results, jsonl).unwrap();
        let site = pair(&results, &rows, &m).unwrap();
        assert_eq!((site.y.clone(), site.n_groups), (vec![0], 1));
        let left: Vec<(&str, u64)> = site
            .left_out
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        assert_eq!(
            left,
            [
                ("duplicate line", 1),
                ("no label in the CSV", 1),
                ("one CSV row fits several results", 2)
            ]
        );
        assert_eq!(site.labels_without_result, 2);
        std::fs::write(&csv, "path,label\na.png,covid\n./a.png,normal\n").unwrap();
        let e = read_labels(&csv, &m).unwrap_err();
        assert!(format!("{e:#}").contains("twice"), "{e:#}");
        std::fs::write(&csv, "path,label\na.png,tb\n").unwrap();
        assert!(read_labels(&csv, &m).is_err());
    }

    #[test]
    fn result_lines_give_logits_or_a_reason() {
        let labels: Vec<String> = ["covid", "normal"].map(String::from).into();
        let model = r#""model":{"name":"m","version":"1","variant":"int8","sha256":"abc"}"#;
        let with_logits = format!(
            r#"{{"path":"a.png","probs":{{"covid":0.5,"normal":0.5}},"logits":{{"covid":1.0,"normal":-2.0}},{model},"error":null}}"#
        );
        match parse_line(&with_logits, &labels, 0.8) {
            Line::Film { z, .. } => assert_eq!(z, [1.0, -2.0]),
            Line::LeftOut(w) => panic!("{w}"),
        }
        // Only probabilities: ln p * T, equal to the logits up to a constant.
        let probs = format!(
            r#"{{"path":"a.png","probs":{{"covid":0.25,"normal":0.75}},{model},"error":null}}"#
        );
        match parse_line(&probs, &labels, 2.0) {
            Line::Film { z, .. } => {
                assert!(((z[1] - z[0]) - 2.0 * 3f64.ln()).abs() < 1e-9, "{z:?}")
            }
            Line::LeftOut(w) => panic!("{w}"),
        }
        for (line, why) in [
            ("{".to_string(), "not a JSON record"),
            (
                format!(r#"{{"path":"a.png","probs":null,{model},"error":"broken"}}"#),
                "failed analysis (no result)",
            ),
            (
                format!(r#"{{"path":"a.png","probs":{{"covid":1.5,"normal":0.5}},{model},"error":null}}"#),
                "unusable numbers",
            ),
            (
                format!(r#"{{"path":"a.png","probs":{{"covid":0.5}},{model},"error":null}}"#),
                "unusable numbers",
            ),
            (
                r#"{"path":"a.png","probs":{"covid":0.5,"normal":0.5},"model":{"sha256":"abc","profile":{"name":"site","sha256":"0"}},"error":null}"#.to_string(),
                "scored with a site profile, without logits",
            ),
        ] {
            match parse_line(&line, &labels, 1.0) {
                Line::LeftOut(w) => assert_eq!(w, why, "{line}"),
                Line::Film { .. } => panic!("{line} accepted"),
            }
        }
    }
}
