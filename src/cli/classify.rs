//! `cxr-edge classify`: a batch of inputs in, one record per input out, in input order.
//!
//! Each input is handled on its own: a broken file becomes a record with an `error`, never a
//! crash and never the end of the batch. Workers share one optimised network.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result};

use super::output::{Summary, TableWriter};
use super::{ClassifyArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::analysis::{analyse, How, InputMode, Subject};
use crate::capture::{self, expand_inputs, Input, InputSource, Limits};
use crate::config::Config;
use crate::lang::Language;
use crate::model::{Classifier, ProfileChoice};
use crate::record::Record;
use crate::store::{Origin, ResultsLog};

/// How a batch is classified.
pub struct BatchOptions {
    /// What the images are.
    pub input: InputMode,
    /// Caps on reading and decoding each file.
    pub limits: Limits,
    /// Write each film's heatmap picture into this folder.
    pub heatmap_dir: Option<PathBuf>,
    /// Images analysed at once.
    pub jobs: usize,
    /// Also record each result (with its heatmap picture) in this results log.
    pub store: Option<ResultsLog>,
    /// The study's case code, already checked (a batch of one film).
    pub case_code: Option<String>,
}

/// One input of the batch: analysed, its heatmap written where asked.
fn classify_one(
    input: &Input,
    clf: &Classifier,
    opts: &BatchOptions,
    heatmap: Option<&Path>,
) -> Record {
    let how = How {
        mode: opts.input,
        limits: opts.limits,
        heatmap: heatmap.is_some() || opts.store.is_some(),
    };
    let mut a = analyse(Subject::Input(input), &how, clf);
    a.record.case_code = opts.case_code.clone();
    if let Some(path) = heatmap {
        a.save_heatmap(path);
    }
    if let Some(log) = &opts.store {
        // The log names the input by its hash (file names may carry the patient's); the table
        // and --json keep naming the file the user gave. A record that cannot be stored says
        // so in its `error`, and the batch goes on.
        let given = a.record.path.clone();
        if let Err(e) = log.record(&mut a, Origin::Classify, true) {
            tracing::error!("{e:#}");
        }
        a.record.path = given;
    }
    a.record
}

/// Heatmap file names: the input's stem, made unique within the batch.
fn heatmap_names(inputs: &[Input], dir: &Path) -> Vec<Option<PathBuf>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    inputs
        .iter()
        .map(|i| {
            let stem = match &i.source {
                InputSource::File(p) => p.file_stem()?.to_string_lossy().into_owned(),
                InputSource::Sample(s) => Path::new(s.name)
                    .file_stem()?
                    .to_string_lossy()
                    .into_owned(),
                InputSource::Problem(_) => return None,
            };
            let n = seen.entry(stem.clone()).or_insert(0);
            *n += 1;
            let name = if *n == 1 {
                format!("{stem}.heatmap.png")
            } else {
                format!("{stem}-{n}.heatmap.png")
            };
            Some(dir.join(name))
        })
        .collect()
}

/// Classify `inputs` on `opts.jobs` threads; `sink` receives records in input order.
pub fn classify_inputs(
    inputs: &[Input],
    clf: &Classifier,
    opts: &BatchOptions,
    mut sink: impl FnMut(Record),
) {
    let names = match &opts.heatmap_dir {
        Some(dir) => heatmap_names(inputs, dir),
        None => vec![None; inputs.len()],
    };
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Record)>();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, inputs.len().max(1)) {
            let tx = tx.clone();
            let (next, names) = (&next, &names);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= inputs.len() {
                    break;
                }
                let rec = classify_one(&inputs[i], clf, opts, names[i].as_deref());
                if tx.send((i, rec)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        // Re-order: print as soon as the next record in input order is ready.
        let mut pending: HashMap<usize, Record> = HashMap::new();
        let mut want = 0;
        for (i, rec) in rx {
            pending.insert(i, rec);
            while let Some(r) = pending.remove(&want) {
                sink(r);
                want += 1;
            }
        }
    });
}

/// How many analyses of up to `budget` bytes each fit in `available` bytes (at least one; all
/// `wanted` when the available memory is unknown).
fn jobs_that_fit(wanted: usize, budget: u64, available: Option<u64>) -> usize {
    let fit = available.map_or(usize::MAX, |a| {
        usize::try_from(a / budget.max(1)).unwrap_or(usize::MAX)
    });
    wanted.min(fit).max(1)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// The board's language (`language` in its config): the operator at its terminal reads the
/// same words as on its screen. English without a config; a broken one is only reported, as
/// `classify` needs nothing else from it.
fn configured_language(board: &Result<Config>) -> Language {
    match board {
        Ok(c) => c.language,
        Err(e) => {
            eprintln!("cxr-edge classify: {e:#}; writing in English");
            Language::En
        }
    }
}

/// The calibration to use: `--site-profile`, else the board config's `[model] site_profile`,
/// else the default profile file when it exists. Unlike the language, a config that cannot be
/// read is an error here: scoring with another calibration than the board's would be silent.
fn configured_profile(option: Option<&str>, board: &Result<Config>) -> Result<ProfileChoice> {
    if option.is_some() {
        return Ok(ProfileChoice::from_setting(option));
    }
    let c = board
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("cannot tell which site profile the board uses (or use --site-profile)")?;
    Ok(c.model.profile(None))
}

/// `--case-code`, checked against the board's config: one film only; the config's pattern; a
/// code given by hand is taken even where the config has codes off (a person asked for it),
/// and one is needed for a film stored while the config requires codes.
fn case_code(args: &ClassifyArgs, inputs: usize, board: &Result<Config>) -> Result<Option<String>> {
    use crate::case::{Mode, Policy};
    if args.case_code.is_some() && inputs != 1 {
        anyhow::bail!("--case-code names one film; give exactly one file");
    }
    let policy = board.as_ref().map(|c| c.case.clone()).unwrap_or_default();
    let mode = match (policy.mode, args.store.is_some()) {
        (Mode::Required, true) => Mode::Required,
        _ => Mode::Optional,
    };
    let policy = Policy::new(mode, &policy.pattern_text)?;
    policy
        .check(args.case_code.as_deref())
        .map_err(|e| anyhow::anyhow!("--case-code: {e}"))
}

pub fn run(args: ClassifyArgs) -> Result<i32> {
    let inputs = if args.paths.is_empty() {
        let s = capture::sample_inputs();
        anyhow::ensure!(
            !s.is_empty(),
            "no paths given and this build has no bundled sample films"
        );
        s
    } else {
        expand_inputs(&args.paths)
    };
    if let Some(dir) = &args.heatmap {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create heatmap directory {}", dir.display()))?;
    }
    // The board's config, read once: its installed model bundle, calibration, case-code rule
    // and language.
    let board = Config::find(None);
    let manifest_path = crate::config::locate_model(
        args.model.model.as_deref(),
        &board
            .as_ref()
            .map(|c| c.updates.clone())
            .unwrap_or_default(),
        crate::model::manifest::Search::Anywhere,
    )?;
    let profile = configured_profile(args.profile.site_profile.as_deref(), &board)?;
    let clf =
        Classifier::load_with_profile(&manifest_path, args.model.variant.as_deref(), &profile)?;
    let limits = Limits {
        memory_budget: args.memory_mb << 20,
        ..Limits::default()
    };
    let wanted = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let jobs = jobs_that_fit(wanted, limits.memory_budget, mem_available());
    if jobs < wanted && args.jobs.is_some() {
        eprintln!(
            "cxr-edge classify: {jobs} at a time, not {wanted}: {wanted} analyses of up to {} MB each do not fit in the memory available",
            args.memory_mb
        );
    }
    let case_code = case_code(&args, inputs.len(), &board)?;
    let store = match &args.store {
        Some(dir) => Some(ResultsLog::open(dir)?),
        None => None,
    };
    let opts = BatchOptions {
        input: args.input.into(),
        limits,
        heatmap_dir: args.heatmap.clone(),
        jobs,
        store,
        case_code,
    };

    let progress = if inputs.len() > 1 {
        indicatif::ProgressBar::new(inputs.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} films  {elapsed} (eta {eta})",
        )
        .expect("static template"),
    );
    let language = args.lang.unwrap_or_else(|| configured_language(&board));
    let mut summary = Summary::new(&clf.manifest.labels, language);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table =
        (!args.json).then(|| TableWriter::new(&clf.manifest.labels, &clf.id(), language));
    let mut write_err: Option<std::io::Error> = None;
    if let Some(t) = table.as_mut() {
        progress.suspend(|| t.header(&mut out)).ok();
    }
    classify_inputs(&inputs, &clf, &opts, |rec| {
        summary.add(&rec);
        let res = progress.suspend(|| -> std::io::Result<()> {
            match table.as_mut() {
                Some(t) => t.row(&mut out, &rec)?,
                None => writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&rec).expect("record serialises")
                )?,
            }
            // Stream results when nobody is watching a progress bar (pipes, logs).
            out.flush()
        });
        if let Err(e) = res {
            write_err.get_or_insert(e);
        }
        progress.inc(1);
    });
    progress.finish_and_clear();
    if let Some(e) = write_err {
        // A closed pipe (e.g. `| head`) is not worth a scary message, but is still a failure.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("cxr-edge: error: cannot write results: {e}");
        }
        return Ok(super::EXIT_FATAL);
    }
    if args.json {
        eprintln!("{}", summary.render());
    } else {
        writeln!(out, "\n{}", summary.render())?;
        out.flush()?;
    }
    Ok(if summary.failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_capped_by_the_memory_available() {
        let mb = 1u64 << 20;
        assert_eq!(jobs_that_fit(4, 256 * mb, Some(2048 * mb)), 4);
        assert_eq!(jobs_that_fit(16, 256 * mb, Some(1000 * mb)), 3);
        assert_eq!(jobs_that_fit(4, 256 * mb, Some(100 * mb)), 1, "always one");
        assert_eq!(jobs_that_fit(8, 256 * mb, None), 8, "unknown: as asked");
        assert_eq!(jobs_that_fit(0, 256 * mb, None), 1);
    }
}
