//! `cxr-edge model`: signed model bundles. On a unit: `status`, `install`, `rollback`; on the
//! study coordinator's machine: `keygen` and `sign` (README "Research network").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::{EXIT_OK, EXIT_SOME_FAILED};
use crate::config::{Config, UpdatesSection};
use crate::model::bundle::{self, BundleError, Outcome};

/// Options of `cxr-edge model`.
#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(subcommand)]
    pub what: ModelCommand,
}

/// Where the unit keeps its bundles and the study's key (default: the config's `[updates]`).
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Config file (default: /etc/cxr-edge/config.toml if it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The bundle store (default: `[updates] dir`, /var/lib/cxr-edge/models).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The study's public key (default: `[updates] public_key`,
    /// /etc/cxr-edge/model-signing.pub).
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

impl StoreArgs {
    fn updates(&self) -> Result<UpdatesSection> {
        let mut u = Config::find(self.config.as_deref())?.updates;
        if let Some(d) = &self.dir {
            u.dir = d.clone();
        }
        if let Some(k) = &self.public_key {
            u.public_key = k.clone();
        }
        Ok(u)
    }
}

/// The `model` subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// The model this unit runs (an installed bundle or the packaged model), the one a
    /// rollback goes back to, and the last install attempt.
    Status(StoreArgs),
    /// Verify a bundle (`*.cxrb`) against the study's key, check it on the sample films and
    /// make it current. Exit 0: installed (or already current); 1: refused or rolled back,
    /// with the reason; the unit keeps its model either way.
    Install {
        /// The bundle file.
        bundle: PathBuf,
        /// Also take a bundle this unit rolled back, or one not newer than the current one.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Go back to the previous bundle (or the packaged model); the bundle left is not taken
    /// again from a folder, URL or topic.
    Rollback(StoreArgs),
    /// Make the study's signing key pair: STEM.key (keep it off the units) and STEM.pub
    /// (install it on every unit as /etc/cxr-edge/model-signing.pub).
    Keygen {
        /// Path of the pair without extension, e.g. `study-2026`.
        stem: PathBuf,
        /// Protect the secret key with the password in this file (recommended).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Make a signed bundle of a model: its manifest and files, what every variant answers on
    /// the sample films (the units check it before switching), signed with the study's key.
    Sign {
        /// The model's manifest (default: the usual search).
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// The secret key (minisign format, from `model keygen` or `minisign -G`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The password of a protected key, in a file.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Larger than every bundle the study published before (units refuse older ones).
        #[arg(long)]
        serial: u64,
        /// Where to write the bundle.
        #[arg(long, short, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(args: BundleArgs) -> Result<i32> {
    match args.what {
        ModelCommand::Status(s) => status(&s.updates()?),
        ModelCommand::Install {
            bundle,
            force,
            store,
        } => install(&store.updates()?, &bundle, force),
        ModelCommand::Rollback(s) => {
            let u = s.updates()?;
            let now = u.store().rollback("rolled back by hand")?;
            match now {
                Some(id) => println!("rolled back: now bundle {id}"),
                None => println!("rolled back: now the packaged model"),
            }
            restart_hint();
            Ok(EXIT_OK)
        }
        ModelCommand::Keygen {
            stem,
            password_file,
        } => {
            let pw = password_file.as_deref().map(read_password).transpose()?;
            bundle::sign::keygen(&stem, pw)?;
            println!(
                "wrote {} (secret: keep it off the units) and {} (install it on every unit as {})",
                stem.with_extension("key").display(),
                stem.with_extension("pub").display(),
                bundle::DEFAULT_PUBLIC_KEY
            );
            Ok(EXIT_OK)
        }
        ModelCommand::Sign {
            manifest,
            key,
            password_file,
            serial,
            out,
        } => {
            let pw = password_file.as_deref().map(read_password).transpose()?;
            let sk = bundle::sign::load_secret_key(&key, pw)?;
            let manifest = crate::model::manifest::locate_manifest(manifest.as_deref())?;
            let bytes = bundle::sign::build(&manifest, &sk, serial)?;
            crate::files::write_atomically(&out, &bytes)?;
            println!(
                "wrote {} ({} bytes, serial {serial})",
                out.display(),
                bytes.len()
            );
            Ok(EXIT_OK)
        }
    }
}

fn read_password(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

fn install(u: &UpdatesSection, file: &Path, force: bool) -> Result<i32> {
    let key = bundle::load_public_key(&u.public_key)?;
    let bytes = read_bundle(file)?;
    let source = file.display().to_string();
    match u.store().install(&bytes, &key, &source, force) {
        Ok(Outcome::Installed {
            id,
            index,
            compared,
        }) => {
            println!(
                "installed bundle {id}: {} {} (serial {}), checked on {compared} sample answers",
                index.name, index.version, index.serial
            );
            restart_hint();
            Ok(EXIT_OK)
        }
        Ok(Outcome::AlreadyCurrent { id }) => {
            println!("bundle {id} is already the current model");
            Ok(EXIT_OK)
        }
        Err(e @ (BundleError::Refused(_) | BundleError::CheckFailed(_))) => {
            eprintln!("cxr-edge: {e}; the unit keeps its model");
            Ok(EXIT_SOME_FAILED)
        }
        Err(e) => Err(e.into()),
    }
}

/// Read a bundle file, no larger than a bundle may be.
fn read_bundle(file: &Path) -> Result<Vec<u8>> {
    bundle::read_file(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn restart_hint() {
    println!(
        "the kiosk (`cxr-edge run`) and the upload page (`cxr-edge serve`) switch to it within \
         seconds, after the film in hand"
    );
}

fn status(u: &UpdatesSection) -> Result<i32> {
    let store = u.store();
    match store.current() {
        Some(c) => {
            let verified =
                bundle::load_public_key(&u.public_key).and_then(|k| store.current_manifest(&k));
            println!(
                "current: bundle {} — {} {} (serial {}, made {})",
                c.id, c.index.name, c.index.version, c.index.serial, c.index.created
            );
            if let Err(e) = verified {
                println!("  NOT USED: {e:#}; the packaged model runs instead");
            }
        }
        None => println!("current: the packaged model (no bundle installed)"),
    }
    if let Some(p) = store.previous() {
        println!(
            "previous: bundle {} — {} {} (serial {})",
            p.id, p.index.name, p.index.version, p.index.serial
        );
    }
    let state = store.state();
    if let Some(a) = &state.last {
        println!(
            "last attempt: {} {} from {}{}",
            a.time,
            a.outcome,
            a.source,
            a.reason
                .as_ref()
                .map_or(String::new(), |r| format!(": {r}"))
        );
    }
    for r in &state.rejected {
        println!(
            "rolled back: bundle {} on {}",
            r.id.as_deref().unwrap_or("?"),
            r.time
        );
    }
    if !u.public_key.exists() {
        println!(
            "no study key at {}: bundles cannot be installed",
            u.public_key.display()
        );
    }
    Ok(EXIT_OK)
}
