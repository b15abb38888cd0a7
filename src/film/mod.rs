//! The film itself: checks on the image before and after the model has looked at it.
//!
//! Camera work (finding the film in a frame, rectifying it) will live here too; for digital
//! images the film is the whole image, and only the quality checks apply.

mod candidates;
pub mod filters;
pub mod finder;
pub mod gates;
mod geometry;
pub mod quality;
pub mod rectify;
mod refine;
mod regions;
pub mod simulate;

pub use finder::{find_film, find_film_with, FindError, FinderConfig, FoundFilm};
pub use quality::{assess, Warning};
pub use rectify::{rectify, Homography, Quad};
