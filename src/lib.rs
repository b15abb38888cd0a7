//! cxr-edge: a research-only chest X-ray film classifier for small ARM boards.
//!
//! The modules follow the data path of the device:
//!
//! * [`capture`]: where pixels come from (image and DICOM files, bundled samples, cameras) and
//!   safe decoding with size and memory caps;
//! * [`film`]: checks on the film image itself (quality warnings);
//! * [`model`]: the model manifest, the preprocessing shared with the training pipeline,
//!   inference in `tract` and the calibrated result;
//! * [`explain`]: class-activation heatmaps drawn over the film;
//! * [`store`]: the results log;
//! * [`input`]: the operator's buttons (GPIO lines, debounced) and their keyboard stand-in;
//! * [`app`]: one film from input to record ([`app::analyse`]) and the unattended loop of a
//!   board service (`cxr-edge run`);
//! * [`serve`]: the local upload page and JSON API (`cxr-edge serve`, feature `serve`);
//! * [`cli`]: the commands of the `cxr-edge` binary.
//!
//! Nothing here is a medical device. Every result carries [`NOTICE`].

pub mod app;
pub mod capture;
pub mod cli;
pub mod display;
pub mod explain;
pub mod film;
pub mod input;
pub mod model;
#[cfg(feature = "serve")]
pub mod serve;
pub mod store;
pub mod ui;

/// Shown with every result, on every output: the device must never look like a diagnosis.
pub const NOTICE: &str = "Research use only - not a diagnosis.";
