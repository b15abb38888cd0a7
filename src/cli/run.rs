//! `cxr-edge run`: load the configuration, apply command-line overrides, start the loop.

use anyhow::Result;

use super::{RunArgs, EXIT_OK, EXIT_SOME_FAILED};
use crate::app::{live::parse_script, RunOptions};
use crate::config::{Config, DisplaySpec, SourceSpec};

pub fn run(args: RunArgs) -> Result<i32> {
    let mut cfg = Config::find(args.config.as_deref())?;
    if let Some(s) = &args.source {
        cfg.source = SourceSpec::parse(s)?;
    }
    if let Some(d) = &args.display {
        cfg.display = crate::config::with_gpio_controller(DisplaySpec::parse(d)?, &cfg.buttons);
    }
    if let Some(p) = &args.profile.site_profile {
        cfg.model.site_profile = Some(p.clone());
    }
    if let Some(dir) = &args.storage {
        cfg.storage.dir = dir.clone();
    }
    let script = args.script.as_deref().map(parse_script).transpose()?;
    // `auto` becomes the first camera or the samples here, where the source is about to open.
    cfg.source = cfg.source.resolve();
    let live = matches!(cfg.source, SourceSpec::Camera(_) | SourceSpec::Frames(_));
    if script.is_some() && !live {
        anyhow::bail!("--script drives a camera or frames source (--source camera:DEV or DIR)");
    }
    if args.once && live {
        anyhow::bail!(
            "--once is for the watch folder and the samples; a camera source runs until stopped, or for the steps of --script"
        );
    }
    let opts = RunOptions {
        once: args.once,
        script,
    };
    let totals = crate::app::run(&cfg, &opts)?;
    tracing::info!(
        "{} analysed, {} failed. {}",
        totals.analysed,
        totals.failed,
        crate::NOTICE
    );
    // Stopped by SIGTERM or Ctrl-C: the display is given back by now; exit by that signal,
    // as before it was caught, rather than with the run's exit code.
    crate::app::stop::exit_by_signal();
    Ok(if totals.failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    })
}
