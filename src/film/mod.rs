//! The film itself: checks on the image before and after the model has looked at it.
//!
//! Camera work (finding the film in a frame, rectifying it) will live here too; for digital
//! images the film is the whole image, and only the quality checks apply.

pub mod quality;

pub use quality::{assess, Warning};
