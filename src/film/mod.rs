//! The film itself. For a camera photo: find the film in the frame ([`finder`], built on the
//! private `candidates` regions, `refine`d edges and plane `geometry`), straighten it
//! ([`mod@rectify`]), check it ([`gates`]: blocking reasons and photo warnings), and wait until it
//! is held still ([`steady`]). For a digital image the film is the whole image and only the
//! quality checks apply ([`quality`]). [`simulate`] renders camera photos of digital films for
//! the tests and the evaluation examples.

pub mod barcode;
mod candidates;
mod edges;
pub mod filters;
pub mod finder;
pub mod gates;
mod geometry;
pub mod quality;
pub mod rectify;
mod refine;
mod regions;
pub mod simulate;
pub mod steady;

pub use finder::{find_film, find_film_with, FindError, FinderConfig, FoundFilm};
pub use geometry::Quad;
pub use quality::{assess, Code, Warning};
pub use rectify::{rectify, Homography};
