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
    opts.case = cfg.case.clone();
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
    let _sync = {
        use crate::store::unit::{Camera, RunningModel, UnitState};
        let unit = UnitState::new(Camera::None);
        unit.set_model(RunningModel::from(&clf.id()));
        crate::sync::Background::start(&cfg.sync, &cfg.storage.dir, unit)
    };
    // A model named by --model or [model] manifest is what the server runs, bundle or not.
    let named = args.model.model.is_some() || cfg.model.manifest.is_some();
    let reload = (!named).then(|| bundle_watch(&cfg, variant.map(String::from), profile));
    serve(opts, clf, log, reload)?;
    Ok(EXIT_OK)
}

/// Between uploads: when the installed model bundle is another one than at the last look (a
/// bundle installed or rolled back), load the model `locate_model` names now. A model that
/// does not load is reported once and the server goes on with the one it has.
fn bundle_watch(
    cfg: &crate::config::Config,
    variant: Option<String>,
    profile: crate::model::ProfileChoice,
) -> crate::serve::Reload {
    let updates = cfg.updates.clone();
    let mut seen = updates.store().current_id();
    Box::new(move || {
        let now = updates.store().current_id();
        if now == seen {
            return None;
        }
        seen = now;
        let loaded = crate::config::locate_model(None, &updates, Search::for_this_process())
            .and_then(|m| Classifier::load_with_profile(&m, variant.as_deref(), &profile));
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("the new model does not load, keeping the one in use: {e:#}");
                None
            }
        }
    })
}
