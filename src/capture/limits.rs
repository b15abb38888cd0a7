//! What a decoder may spend on one file ([`Limits`]) and why a file could not become a frame
//! ([`DecodeError`]). Their own file so that both decoders (images in `decode`, DICOM in `dicom`)
//! use them without importing each other.

use std::fmt;

use image::ImageFormat;

/// Caps applied to every decoded image.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest file read into memory.
    pub max_file_bytes: u64,
    /// Largest width or height.
    pub max_side: u32,
    /// Largest pixel count (width x height); guards against decompression bombs.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make.
    pub max_alloc: u64,
    /// Bytes one analysis may hold at its peak: the file's bytes, the decoder's buffer and the
    /// grey frame made from it (what the rest of the analysis works on is far smaller). A file
    /// whose header promises more is refused before decoding; see [`Limits::memory_needed`].
    pub memory_budget: u64,
    /// Smallest width or height that still carries a film worth classifying.
    pub min_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 128 << 20,
            max_side: 16_384,
            max_pixels: 64_000_000,
            max_alloc: 512 << 20,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            min_side: 32,
        }
    }
}

/// The default [`Limits::memory_budget`]: 256 MiB, so that a 2 GB Pi 4 runs the kiosk, the upload
/// page and the desktop with room to spare. Enough for a 40-megapixel 16-bit film.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

impl Limits {
    /// The peak bytes of analysing a `pixels`-pixel picture from a file of `file_bytes` whose
    /// decoder needs `decoder_bytes` for its own buffer: all three are alive at once while the
    /// decoded picture becomes the grey frame (4 bytes a pixel). Measured peaks (`classify`,
    /// README "Safety and limits") follow this within the process's fixed ~45 MB.
    pub fn memory_needed(file_bytes: u64, decoder_bytes: u64, pixels: u64) -> u64 {
        file_bytes
            .saturating_add(decoder_bytes)
            .saturating_add(pixels.saturating_mul(4))
    }

    /// Refuse a picture whose analysis would need more than [`Limits::memory_budget`].
    pub fn check_memory(&self, what: &str, needed: u64) -> Result<(), DecodeError> {
        if needed <= self.memory_budget {
            return Ok(());
        }
        Err(DecodeError::OverBudget {
            what: what.to_string(),
            needed_mb: needed.div_ceil(1 << 20),
            budget_mb: self.memory_budget >> 20,
        })
    }
}

/// Why a file could not become a [`Frame`](crate::pixels::Frame). Each message says what was wrong with the file,
/// not what the decoder was doing.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Pixel values that are not numbers (NaN) or infinite: a float TIFF, a DICOM rescale or
    /// window of "NaN". Refused, because a model fed NaN answers with an arbitrary label.
    #[error(
        "{count} pixel values are not numbers (NaN or infinite); the image cannot be analysed"
    )]
    NotFinite {
        /// How many pixels are not finite.
        count: usize,
    },
    /// The file could not be opened or read.
    #[error("cannot read file: {0}")]
    Io(#[from] std::io::Error),
    /// The path is a directory, device or other non-regular file.
    #[error("not a regular file")]
    NotAFile,
    /// The file has no bytes.
    #[error("file is empty")]
    Empty,
    /// The file is larger than [`Limits::max_file_bytes`].
    #[error("file is {size} bytes, larger than the {limit}-byte limit")]
    FileTooLarge {
        /// File size in bytes.
        size: u64,
        /// The limit it exceeds, in bytes.
        limit: u64,
    },
    /// The content is none of the supported image formats.
    #[error("not a supported image (PNG, JPEG, BMP, TIFF or DICOM expected; content was checked, not the name)")]
    UnknownFormat,
    /// The header's dimensions exceed a size limit, so decoding is refused.
    #[error("{format} image of {width}x{height} pixels exceeds the limit ({limit}); refusing to decode it")]
    TooLarge {
        /// Format of the image.
        format: Fmt,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// The limit exceeded, in words.
        limit: String,
    },
    /// Decoding would need more memory than [`Limits::memory_budget`] allows.
    #[error("{what} needs about {needed_mb} MB to decode, more than the {budget_mb} MB memory budget of one analysis (memory_mb in the config); refusing to decode it")]
    OverBudget {
        /// The picture, in words (format and size).
        what: String,
        /// Estimated peak, MiB.
        needed_mb: u64,
        /// The budget, MiB.
        budget_mb: u64,
    },
    /// The image is smaller than [`Limits::min_side`] on a side.
    #[error("image is only {width}x{height} pixels; at least {min}x{min} is needed")]
    TooSmall {
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
        /// Smallest accepted side, in pixels.
        min: u32,
    },
    /// The decoder failed on damaged or truncated data.
    #[error("{format} data is corrupt or truncated: {detail}")]
    Corrupt {
        /// Format of the image.
        format: Fmt,
        /// The decoder's description of the fault.
        detail: String,
    },
    /// The pixel layout (colour type, bit depth) is one this build cannot convert.
    #[error("{format} pixel layout {layout} is not supported")]
    Unsupported {
        /// Format of the image.
        format: Fmt,
        /// The layout found, in words.
        layout: String,
    },
    /// The DICOM file could not be parsed or its pixel data is incomplete.
    #[error("DICOM file is corrupt or truncated: {0}")]
    DicomCorrupt(String),
    /// The header says the image is not a frontal chest radiograph (or cannot be one).
    #[error("DICOM file refused: {0}")]
    DicomRefused(String),
    /// The DICOM transfer syntax or pixel encoding is not supported by this build.
    #[error("DICOM file uses an encoding this build cannot read: {0}")]
    DicomUnsupported(String),
}

/// Text from a file (a DICOM header value, a decoder's message about the file) as it may be shown
/// to a person, logged, recorded or sent to systemd: as is when it is short printable ASCII, else
/// escaped (`\n`, `\u{1b}`) and cut to `max` characters. The text is the file's, not ours: a
/// Modality of `CT\nWATCHDOG_USEC=1` must not become a line of its own anywhere.
pub(crate) fn shown(value: &str, max: usize) -> String {
    let plain = value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    let escaped: String = if plain {
        value.to_string()
    } else {
        value.escape_debug().collect()
    };
    match escaped.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &escaped[..cut]),
        None => escaped,
    }
}

/// Image format name for messages.
#[derive(Debug, Clone, Copy)]
pub struct Fmt(pub ImageFormat);

impl fmt::Display for Fmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.extensions_str().first().copied().unwrap_or("image");
        write!(f, "{}", name.to_uppercase())
    }
}
