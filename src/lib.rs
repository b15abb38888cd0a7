//! cxr-edge: a research-only chest X-ray film classifier for small ARM boards.
//!
//! The modules follow the data path of the device, lowest first. A module uses modules on its
//! own line or below, never above (`scripts/check-layout` checks it in CI):
//!
//! * [`pixels`], [`files`]: the grey image every stage passes on and the area resampler;
//!   writing files so that a power cut leaves whole ones; [`log`]: the service's messages with
//!   journald priorities (`tracing`, filtered by `CXR_EDGE_LOG`); [`lang`]: every word a person
//!   reads on the screens, the upload page and `classify`'s table, one table per language;
//! * [`capture`]: where pixels come from (image and DICOM files, bundled samples, cameras,
//!   frame files played as a camera) and safe decoding with size and memory caps;
//! * [`film`]: the film itself: finding it in a camera photo, straightening it, waiting for it
//!   to be still ([`film::steady`]), quality gates and warnings ([`film::Code`]), and the
//!   deterministic photo simulator;
//! * [`model`]: the model manifest, the preprocessing shared with the training pipeline,
//!   inference in `tract` and the calibrated decision;
//! * [`explain`]: class-activation heatmaps drawn over the film;
//! * [`record`]: the [`record::Record`] of one film, what every output prints, keeps or shows;
//! * [`analysis`]: one film from input to record ([`analysis::analyse`]), the same for every
//!   face;
//! * [`ui`]: the screens, drawn from records on any embedded-graphics target;
//! * [`display`], [`input`]: where screens go (PNG, framebuffer, SPI panel) behind one
//!   [`display::Display`] trait; the operator's buttons (GPIO lines, keyboard);
//! * [`store`]: the results log, written only through [`store::ResultsLog::record`];
//! * [`config`]: the configuration file of `run` and `serve`;
//! * [`sync`]: the results log forwarded to a study's MQTT broker, store-and-forward from the
//!   results database (feature `sync`);
//! * [`app`], [`serve`]: the faces: the unattended loop of a board service (`cxr-edge run`:
//!   watch folder, samples, camera kiosk), the local upload page and JSON API (`cxr-edge serve`,
//!   feature `serve`);
//! * [`cli`]: the commands of the `cxr-edge` binary (`src/main.rs` only calls [`cli::main`]).
//!
//! Unit tests sit at the bottom of their file in `mod tests`; when they outgrow it, in
//! `<module>/tests.rs` beside it. Integration tests are in `tests/`.
//!
//! Nothing here is a medical device. Every result carries [`NOTICE`].

#![warn(missing_docs)]

pub mod analysis;
pub mod app;
pub mod capture;
pub mod case;
pub mod cli;
pub mod config;
pub mod display;
pub mod explain;
pub mod files;
pub mod film;
pub mod input;
pub mod lang;
pub mod log;
pub mod model;
pub mod pixels;
pub mod record;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
#[cfg(feature = "sync")]
pub mod sync;
pub mod time;
pub mod ui;

/// Shown with every result, on every output: the device must never look like a diagnosis.
pub const NOTICE: &str = "Research use only - not a diagnosis.";
