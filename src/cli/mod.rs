//! The `cxr-edge` command line. Each subcommand lives in its own module; `main` only parses
//! arguments and turns errors into exit codes.

mod bench;
mod calibrate;
mod capture;
mod classify;
mod devices;
#[cfg(feature = "sync")]
mod fleet;
mod generate;
mod history;
mod model;
mod output;
mod run;
#[cfg(feature = "serve")]
mod serve;
#[cfg(feature = "sync")]
mod sync;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::analysis::InputMode;
pub use crate::record::Record;
pub use classify::{classify_inputs, BatchOptions};

/// Exit codes: 0 everything worked, 1 some inputs failed, 2 the command could not run at all.
pub const EXIT_OK: i32 = 0;
/// Exit code when some inputs failed.
pub const EXIT_SOME_FAILED: i32 = 1;
/// Exit code when the command could not run at all.
pub const EXIT_FATAL: i32 = 2;

/// The parsed command line.
#[derive(Parser, Debug)]
#[command(
    name = "cxr-edge",
    version,
    about = "Chest X-ray film classifier for edge boards. Research use only - not a diagnosis.",
    after_help = "Every result is for research use only and is not a diagnosis."
)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `cxr-edge`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify image files, directories or globs (the bundled sample films when none given).
    Classify(ClassifyArgs),
    /// Run unattended (as the board's service does): analyse every film that arrives, keep a
    /// results log, show each result on the screen; never stop on a bad film.
    Run(RunArgs),
    /// List the results log (what `run` recorded), or export it as CSV.
    History(HistoryArgs),
    /// Watch a camera (or recorded frames) until a film is found and held still, then
    /// classify it once.
    Capture(CaptureArgs),
    /// List the cameras on this machine with their formats and frame sizes.
    Devices,
    /// Serve the upload page and JSON API (local only unless a token is configured).
    #[cfg(feature = "serve")]
    Serve(ServeArgs),
    /// Forward the results log to the `[sync]` destinations (an MQTT broker): everything
    /// waiting now (`--once`), or until stopped; `--status` says where each stands.
    #[cfg(feature = "sync")]
    Sync(sync::SyncArgs),
    /// List the study's units as the MQTT broker knows them (version, model, last seen,
    /// outbox, free disk), marking those silent for more than a day.
    #[cfg(feature = "sync")]
    Fleet(fleet::FleetArgs),
    /// Fit a site profile (temperature and operating points) on the site's own labelled
    /// `classify --json` output, with patient-level bootstrap 95% intervals; refuses, with
    /// the reason, when a label has too few films or the results come from another model.
    Calibrate(calibrate::CalibrateArgs),
    /// Signed model bundles: what this unit runs (`status`), `install` one (verified against
    /// the study's key, checked on the sample films, switched atomically), `rollback`; and for
    /// the study coordinator, `keygen` and `sign`.
    Model(model::BundleArgs),
    /// Time every stage (decode, film finding, rectification, preprocessing, inference,
    /// heatmap, screen) for each model variant on this machine.
    Bench(BenchArgs),
    /// Write the manual pages (into DIR) or a shell completion script (to stdout), for packagers.
    #[command(hide = true)]
    Generate {
        /// man, bash, zsh or fish.
        #[arg(value_enum)]
        what: generate::What,
        /// The folder for the manual pages.
        dir: Option<PathBuf>,
    },
}

/// Options of `cxr-edge capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// Camera: /dev/videoN, N, or a name in /dev/v4l/by-id (see `cxr-edge devices`).
    /// Default: /dev/video0.
    #[arg(long, value_name = "DEVICE")]
    pub camera: Option<String>,
    /// Play recorded frames instead of a camera: an image, or a directory of images or raw
    /// frames (name.WxH.yuyv, name.WxH.grey), each once, in name order.
    #[arg(long, value_name = "PATH")]
    pub frames: Option<PathBuf>,
    /// Frame size to ask the camera for (the nearest it offers at or above it).
    #[arg(long, default_value = "1280x720", value_name = "WxH")]
    pub size: String,
    /// Pixel format to ask for: mjpeg, yuyv or grey (default: the best the camera offers).
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// Frames in a row in which the film must be found and still.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub steady: usize,
    /// Give up after this many seconds without a steady film.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Keep the analysed camera frame and the film with its heatmap in this directory.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// One JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Which model and variant to use.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The calibration to use.
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// Options of `cxr-edge bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Timed runs per stage (after one warm-up run).
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// One JSON object per stage instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Which model to time; every variant is timed unless one is named.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The remaining bench options.
    #[command(flatten)]
    pub more: bench::BenchMore,
}

/// Options of `cxr-edge serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (TOML; the [serve], [model] and [storage] sections). Default:
    /// /etc/cxr-edge/config.toml if it exists, otherwise built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on, IP:PORT (default 127.0.0.1:8080; another address needs the
    /// config's access token).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Override the config's results folder.
    #[arg(long, value_name = "DIR")]
    pub storage: Option<PathBuf>,
    /// Overrides of the config's model and variant.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The calibration to use.
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// Options of `cxr-edge history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Results folder. Default: the one in the config file.
    #[arg(long, value_name = "DIR")]
    pub storage: Option<PathBuf>,
    /// Configuration file to take the results folder from (default /etc/cxr-edge/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write CSV (one row per record) to FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
}

/// Options of `cxr-edge run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML). Default: /etc/cxr-edge/config.toml if it exists, otherwise
    /// built-in defaults (the sample films, screens as PNG in ./cxr-edge-screen).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override the config's source: `camera:DEVICE`, `frames:DIR` or just DIR (images played
    /// as a camera), `dir:DIR` (a watch folder of image files), `samples` or `auto`.
    #[arg(long, value_name = "SPEC")]
    pub source: Option<String>,
    /// Override the config's display: `png:DIR`, `fb:/dev/fbN`,
    /// `spi:st7789:/dev/spidev0.0?dc=24&reset=25&bl=18`, `none` or `auto`.
    #[arg(long, value_name = "SPEC")]
    pub display: Option<String>,
    /// Camera or frames source: take one frame before each step, press the buttons named
    /// (capture, next, back; wait or wait:N takes frames only), write every screen (as
    /// numbered PNG files with a png display), then exit. For demos and tests.
    #[arg(long, value_name = "STEPS")]
    pub script: Option<String>,
    /// Override the config's results folder.
    #[arg(long, value_name = "DIR")]
    pub storage: Option<PathBuf>,
    /// Analyse what is there now, then exit (exit code 1 if any film failed).
    #[arg(long)]
    pub once: bool,
    /// Override the config's site profile.
    #[command(flatten)]
    pub profile: ProfileArgs,
}

/// `--site-profile`: which calibration `classify`, `capture`, `serve` and `run` use.
#[derive(Args, Debug, Clone, Default)]
pub struct ProfileArgs {
    /// Site profile written by `cxr-edge calibrate`: its temperature and operating points
    /// replace the model's (refused if it was fitted for another model file); or `shipped`.
    /// Default: `[model] site_profile` in the config, else /etc/cxr-edge/site-profile.toml
    /// when it exists, else shipped. Every record names the profile it was scored with.
    #[arg(long, value_name = "FILE|shipped")]
    pub site_profile: Option<String>,
}

/// Which model manifest and variant to load.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model manifest (TOML). Default: $CXR_EDGE_MODEL, ./models/cxr-net.toml, then the
    /// installed models.
    #[arg(long, value_name = "MANIFEST")]
    pub model: Option<PathBuf>,
    /// Model variant from the manifest (e.g. int8, f32). Default: the manifest's choice.
    #[arg(long)]
    pub variant: Option<String>,
}

/// Options of `cxr-edge classify`.
#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Image files (PNG, JPEG, BMP, TIFF, DICOM), directories (searched recursively) or glob patterns.
    pub paths: Vec<String>,
    /// One JSON object per line on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write each film with its class-activation heatmap as a PNG into this directory.
    #[arg(long, value_name = "DIR")]
    pub heatmap: Option<PathBuf>,
    /// Also record every result in the results log in DIR (its `results.sqlite` and heatmap
    /// pictures, as `run` and `serve` keep them; `cxr-edge history --storage DIR` lists them).
    /// Records name inputs by their SHA-256, never by file name.
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// The study's case code for the film (one input only): checked against the config's
    /// `case_code_pattern`, kept in its record (`--store`, `--json`), never logged. Required
    /// with `--store` when the config says `case_code = "required"`.
    #[arg(long, value_name = "CODE")]
    pub case_code: Option<String>,
    /// Images analysed in parallel (default: the number of CPUs). Capped so that this many
    /// analyses at their memory budget fit in the memory available now.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Peak memory of one analysis in MiB: a picture that needs more is refused before it is
    /// decoded.
    #[arg(long, value_name = "MB", default_value_t = crate::capture::DEFAULT_MEMORY_BUDGET >> 20,
          value_parser = clap::value_parser!(u64).range(32..=4096))]
    pub memory_mb: u64,
    /// What the images are: `digital` films (the whole image is the film), `film-photo`
    /// (a camera photo of a film on a light box: the film is found, straightened and checked
    /// first), or `auto` (decided per image).
    #[arg(long, value_enum, default_value_t = InputArg::Digital)]
    pub input: InputArg,
    /// Language of the table and the summary: en, fr, es or pt (records and --json stay
    /// English). Default: `language` in /etc/cxr-edge/config.toml if it exists, else en.
    #[arg(long, value_name = "LANG", value_parser = parse_language)]
    pub lang: Option<crate::lang::Language>,
    /// Which model and variant to use.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The calibration to use.
    #[command(flatten)]
    pub profile: ProfileArgs,
}

fn parse_language(s: &str) -> Result<crate::lang::Language, String> {
    crate::lang::Language::parse(s).map_err(|e| e.to_string())
}

/// `--input`: the command-line spelling of [`InputMode`] (the analysis itself knows no clap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputArg {
    /// The whole image is the film.
    Digital,
    /// A camera photo of a film.
    FilmPhoto,
    /// Grey files are digital; colour files are decided by the picture.
    Auto,
}

impl From<InputArg> for InputMode {
    fn from(a: InputArg) -> InputMode {
        match a {
            InputArg::Digital => InputMode::Digital,
            InputArg::FilmPhoto => InputMode::FilmPhoto,
            InputArg::Auto => InputMode::Auto,
        }
    }
}

/// Parse the process arguments, run, and return the exit code.
pub fn main() -> i32 {
    crate::log::init();
    let cli = Cli::parse();
    // The services (`run`, `serve`) report a fatal error through the log, at error priority.
    let service = match &cli.command {
        Command::Run(_) => true,
        #[cfg(feature = "serve")]
        Command::Serve(_) => true,
        _ => false,
    };
    let result = match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Run(args) => run::run(args),
        Command::History(args) => history::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Model(args) => model::run(args),
        Command::Capture(args) => capture::run(args),
        Command::Devices => devices::run(),
        Command::Generate { what, dir } => generate::run(what, dir),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "sync")]
        Command::Sync(args) => sync::run(args),
        #[cfg(feature = "sync")]
        Command::Fleet(args) => fleet::run(args),
    };
    match result {
        Ok(code) => code,
        // The same words as the terminal format of error!, which also gives the journal the
        // error's priority when a service stops on it.
        Err(e) if service => {
            tracing::error!("{e:#}");
            EXIT_FATAL
        }
        Err(e) => {
            eprintln!("cxr-edge: error: {e:#}");
            EXIT_FATAL
        }
    }
}
