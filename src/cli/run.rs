//! `cxr-edge run`: load the configuration, apply command-line overrides, start the loop.

use anyhow::Result;

use super::{RunArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::app::config::{Config, DisplaySpec, SourceSpec};

pub fn run(args: RunArgs) -> Result<i32> {
    let mut cfg = Config::find(args.config.as_deref())?;
    if let Some(s) = &args.source {
        cfg.source = SourceSpec::parse(s)?;
    }
    if let Some(d) = &args.display {
        cfg.display = DisplaySpec::parse(d)?;
    }
    if let Some(dir) = &args.storage {
        cfg.storage.dir = dir.clone();
    }
    let totals = crate::app::run(&cfg, args.once)?;
    eprintln!(
        "cxr-edge run: {} analysed, {} failed. {}",
        totals.analysed,
        totals.failed,
        crate::NOTICE
    );
    Ok(if totals.failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    })
}
