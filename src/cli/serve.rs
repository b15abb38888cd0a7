//! `cxr-edge serve`: resolve the configuration, load the model, open the results log, serve.

use anyhow::Result;

use super::{ServeArgs, EXIT_OK};
use crate::config::Config;
use crate::model::manifest::Search;
use crate::model::Classifier;
use crate::serve::{run as serve, ServeOptions};
use crate::store::ResultsLog;

pub fn run(args: ServeArgs) -> Result<i32> {
    let mut cfg = Config::find(args.config.as_deref())?;
    if let Some(dir) = &args.storage {
        cfg.storage.dir = dir.clone();
    }
    // Checked before the model loads, so a refused address is reported at once.
    let mut opts =
        ServeOptions::from_config(&cfg.serve, args.listen.as_deref(), cfg.storage.keep_images)?;
    opts.memory_budget = cfg.limits().memory_budget;
    let manifest = crate::config::locate_model(
        args.model
            .model
            .as_deref()
            .or(cfg.model.manifest.as_deref()),
        &cfg.updates,
        Search::for_this_process(),
    )?;
    let variant = args
        .model
        .variant
        .as_deref()
        .or(cfg.model.variant.as_deref());
    let profile = cfg.model.profile(args.profile.site_profile.as_deref());
    let clf = Classifier::load_with_profile(&manifest, variant, &profile)?;
    let log = ResultsLog::open(&cfg.storage.dir)?;
    #[cfg(feature = "sync")]
    let _sync = crate::sync::Background::start(&cfg.sync, &cfg.storage.dir);
    serve(opts, clf, log)?;
    Ok(EXIT_OK)
}
