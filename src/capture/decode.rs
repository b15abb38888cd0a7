//! Safe image decoding: every limit is checked before memory is committed, so a hostile or
//! broken file costs a clear error and never the process.

use std::io::{Cursor, Read};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::limits::{shown, DecodeError, Fmt, Limits};
use super::Frame;

/// Read at most `limit` bytes of a regular file; larger files are refused without reading them.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, DecodeError> {
    // Check before opening: opening a FIFO or a device could block forever.
    if !std::fs::metadata(path)?.is_file() {
        return Err(DecodeError::NotAFile);
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.len() > limit {
        return Err(DecodeError::FileTooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size can change between stat and read; `take` keeps the cap honest anyway.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(DecodeError::FileTooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Decode image bytes (format sniffed from the content) into a gray [`Frame`].
///
/// Gray conversion is the contract shared with the training pipeline ("cxr-area-v1"):
/// 8-bit gray as is, 16-bit divided by 257, colour as 0.299 R + 0.587 G + 0.114 B, alpha ignored.
pub fn decode_image(bytes: &[u8], limits: &Limits) -> Result<Frame, DecodeError> {
    let frame = decode_any(bytes, limits)?;
    // Every decoder ends here: NaN or infinite values (float TIFF, a DICOM rescale of NaN) never
    // reach the model.
    match frame.data.iter().filter(|v| !v.is_finite()).count() {
        0 => Ok(frame),
        count => Err(DecodeError::NotFinite { count }),
    }
}

fn decode_any(bytes: &[u8], limits: &Limits) -> Result<Frame, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if super::dicom_magic(bytes) {
        #[cfg(feature = "dicom")]
        return super::dicom::decode_dicom(bytes, limits);
        #[cfg(not(feature = "dicom"))]
        return Err(DecodeError::DicomUnsupported(
            "this build of cxr-edge was made without DICOM support (cargo feature `dicom`)".into(),
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(DecodeError::Io)?;
    let format = Fmt(reader.format().ok_or(DecodeError::UnknownFormat)?);
    let corrupt = |e: image::ImageError| classify_image_error(format, e);
    // The JPEG decoder pads a truncated scan with grey and reports success; a film with its
    // bottom half missing must not be classified as if it were whole.
    if format.0 == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        let detail = "the file ends before the end-of-image marker".to_string();
        return Err(DecodeError::Corrupt { format, detail });
    }
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    let pixels = width as u64 * height as u64;
    if width > limits.max_side || height > limits.max_side {
        let limit = format!("{} pixels per side", limits.max_side);
        return Err(DecodeError::TooLarge {
            format,
            width,
            height,
            limit,
        });
    }
    if pixels > limits.max_pixels {
        let limit = format!("{} megapixels", limits.max_pixels / 1_000_000);
        return Err(DecodeError::TooLarge {
            format,
            width,
            height,
            limit,
        });
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min: limits.min_side,
        });
    }
    let what = format!(
        "{format} image of {width}x{height} ({:?})",
        decoder.color_type()
    );
    if format.0 == ImageFormat::Png {
        drop(decoder);
        if let Some(frame) = png_to_grey(bytes, limits, format, &what)? {
            return Ok(frame);
        }
        // Interlaced: decoded whole below.
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(DecodeError::Io)?;
        decoder = reader.into_decoder().map_err(corrupt)?;
    }
    // A phone's photo is stored as the sensor saw it, with a tag saying how to turn it. A tag
    // that cannot be read leaves the picture as it is (as every image viewer does).
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // Memory in bytes, not pixels: a 512 KB PNG of 8000x8000 RGBA16 asks the decoder for
    // 512 MB, four times what the same size in 8-bit grey does.
    let mut needed = Limits::memory_needed(bytes.len() as u64, decoder.total_bytes(), pixels);
    if super::orient::needs_copy(orientation) {
        // A quarter turn holds the grey frame twice (the decoded picture is gone by then).
        needed = needed.max(Limits::memory_needed(
            bytes.len() as u64,
            0,
            pixels.saturating_mul(2),
        ));
    }
    limits.check_memory(&what, needed)?;
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc.min(limits.memory_budget));
    decoder.set_limits(l).map_err(corrupt)?;
    let img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    Ok(super::orient::apply(to_frame(img, format)?, orientation))
}

/// A PNG straight to grey, one row at a time, so the peak is the grey frame and one row rather
/// than the whole decoded picture beside it (a 16-bit RGBA film is 8 bytes a pixel decoded, 4 as
/// grey). The same decoder and expansion as the `image` crate's, and the same arithmetic as
/// [`to_frame`], so the values are identical (`tests/parity.rs`). `None` for an interlaced PNG,
/// whose rows arrive in seven passes: the caller decodes it whole.
fn png_to_grey(
    bytes: &[u8],
    limits: &Limits,
    format: Fmt,
    what: &str,
) -> Result<Option<Frame>, DecodeError> {
    let corrupt = |e: png::DecodingError| match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Corrupt {
                format,
                detail: "unexpected end of data".into(),
            }
        }
        png::DecodingError::LimitsExceeded => DecodeError::TooLarge {
            format,
            width: 0,
            height: 0,
            limit: "decoder memory limit".into(),
        },
        other => DecodeError::Corrupt {
            format,
            detail: shown(other.to_string().trim(), 300),
        },
    };
    let budget = usize::try_from(limits.memory_budget).unwrap_or(usize::MAX);
    let mut d = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: budget });
    d.set_transformations(png::Transformations::EXPAND);
    let mut reader = d.read_info().map_err(corrupt)?;
    if reader.info().interlaced {
        return Ok(None);
    }
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    let (colour, depth) = reader.output_color_type();
    let channels = colour.samples();
    let size = if depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    let row_bytes = reader
        .output_line_size(reader.info().width)
        .unwrap_or(usize::MAX);
    let needed = Limits::memory_needed(bytes.len() as u64, row_bytes as u64, w as u64 * h as u64);
    limits.check_memory(what, needed)?;
    let mut data: Vec<f32> = Vec::new();
    if data.try_reserve_exact(w * h).is_err() {
        return Err(limits.check_memory(what, u64::MAX).unwrap_err());
    }
    while let Some(row) = reader.next_row().map_err(corrupt)? {
        for px in row.data().chunks_exact(channels * size) {
            let s = |i: usize| match size {
                2 => u16::from_be_bytes([px[2 * i], px[2 * i + 1]]) as f32 / 257.0,
                _ => px[i] as f32,
            };
            data.push(if channels >= 3 {
                bt601(s(0), s(1), s(2))
            } else {
                s(0)
            });
        }
    }
    if data.len() != w * h {
        let detail = format!(
            "{} pixels decoded where the header says {w}x{h}",
            data.len()
        );
        return Err(DecodeError::Corrupt { format, detail });
    }
    Ok(Some(Frame::new(w, h, data)))
}

/// Grey from colour, the contract with the training pipeline: 0.299 R + 0.587 G + 0.114 B in
/// f32, in this order. Both conversions (row by row and whole picture) use it, so they agree to
/// the bit.
fn bt601(r: f32, g: f32, b: f32) -> f32 {
    0.299f32 * r + 0.587f32 * g + 0.114f32 * b
}

/// Whether an image file stores grey levels only (read from its header; `None` if the header
/// cannot be read). Readers and PACS export grey files; cameras and phones write colour, even
/// of a grey film, which is what `--input auto` leans on first.
pub fn is_grey_file(bytes: &[u8]) -> Option<bool> {
    // DICOM files come from readers and PACS, never from a camera pointed at a light box.
    if super::dicom_magic(bytes) {
        return Some(true);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let decoder = reader.into_decoder().ok()?;
    use image::ColorType as C;
    Some(matches!(
        decoder.color_type(),
        C::L8 | C::La8 | C::L16 | C::La16
    ))
}

/// True when an end-of-image marker follows the last start-of-scan marker. Inside entropy-coded
/// data 0xFF is always stuffed (0xFF00) or a restart marker, so 0xFFD9 there is the real end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_sos {
        Some(i) => bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// The image decoders' messages are made safe to show like DICOM header text: some end in a
/// newline, and a few quote the file (a chunk name, a tag value).
fn classify_image_error(format: Fmt, e: image::ImageError) -> DecodeError {
    use image::error::ImageError as E;
    let said = |what: &dyn std::fmt::Display| shown(what.to_string().trim(), 300);
    match e {
        E::Limits(l) => DecodeError::TooLarge {
            format,
            width: 0,
            height: 0,
            limit: format!("decoder memory limit: {}", said(&l)),
        },
        E::Unsupported(u) => DecodeError::Unsupported {
            format,
            layout: said(&u),
        },
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => DecodeError::Corrupt {
            format,
            detail: "unexpected end of data".into(),
        },
        other => DecodeError::Corrupt {
            format,
            detail: said(&other),
        },
    }
}

/// A float sample in 0..1 as a grey level; NaN or infinite stays NaN, for `decode_image` to
/// refuse (clamping would turn +inf into white).
fn unit_float(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0) * 255.0
    } else {
        f32::NAN
    }
}

fn to_frame(img: DynamicImage, format: Fmt) -> Result<Frame, DecodeError> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data: Vec<f32> = match img {
        DynamicImage::ImageLuma8(b) => b.into_raw().into_iter().map(f32::from).collect(),
        DynamicImage::ImageLumaA8(b) => b.pixels().map(|p| p.0[0] as f32).collect(),
        DynamicImage::ImageLuma16(b) => {
            b.into_raw().into_iter().map(|v| v as f32 / 257.0).collect()
        }
        DynamicImage::ImageLumaA16(b) => b.pixels().map(|p| p.0[0] as f32 / 257.0).collect(),
        DynamicImage::ImageRgb8(b) => b
            .pixels()
            .map(|p| bt601(p.0[0] as f32, p.0[1] as f32, p.0[2] as f32))
            .collect(),
        DynamicImage::ImageRgba8(b) => b
            .pixels()
            .map(|p| bt601(p.0[0] as f32, p.0[1] as f32, p.0[2] as f32))
            .collect(),
        DynamicImage::ImageRgb16(b) => b
            .pixels()
            .map(|p| {
                bt601(
                    p.0[0] as f32 / 257.0,
                    p.0[1] as f32 / 257.0,
                    p.0[2] as f32 / 257.0,
                )
            })
            .collect(),
        DynamicImage::ImageRgba16(b) => b
            .pixels()
            .map(|p| {
                bt601(
                    p.0[0] as f32 / 257.0,
                    p.0[1] as f32 / 257.0,
                    p.0[2] as f32 / 257.0,
                )
            })
            .collect(),
        DynamicImage::ImageRgb32F(b) => b
            .pixels()
            .map(|p| unit_float(bt601(p.0[0], p.0[1], p.0[2])))
            .collect(),
        DynamicImage::ImageRgba32F(b) => b
            .pixels()
            .map(|p| unit_float(bt601(p.0[0], p.0[1], p.0[2])))
            .collect(),
        other => {
            return Err(DecodeError::Unsupported {
                format,
                layout: format!("{:?}", other.color()),
            })
        }
    };
    Ok(Frame::new(w, h, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn sixteen_bit_gray_is_scaled_to_8_bit_range() {
        let img = image::ImageBuffer::from_fn(40, 40, |x, _| {
            image::Luma([if x < 20 { 0u16 } else { 65535 }])
        });
        let f = decode_image(&png(DynamicImage::ImageLuma16(img)), &Limits::default()).unwrap();
        assert_eq!(f.pixel(0, 0), 0.0);
        assert_eq!(f.pixel(39, 0), 255.0);
    }

    /// A float TIFF with NaN or infinite samples is refused, never analysed.
    #[test]
    fn non_finite_float_pixels_are_refused() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let img = image::Rgb32FImage::from_fn(40, 40, |x, y| {
                let v = if (x, y) == (7, 9) { bad } else { 0.5 };
                image::Rgb([v, v, v])
            });
            let mut tiff = Vec::new();
            DynamicImage::ImageRgb32F(img)
                .write_to(&mut Cursor::new(&mut tiff), ImageFormat::Tiff)
                .unwrap();
            let e = decode_image(&tiff, &Limits::default()).unwrap_err();
            assert!(
                matches!(e, DecodeError::NotFinite { count: 1 }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn colour_uses_bt601_weights() {
        let img = image::RgbImage::from_pixel(40, 40, image::Rgb([200, 100, 50]));
        let f = decode_image(&png(DynamicImage::ImageRgb8(img)), &Limits::default()).unwrap();
        let want = 0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0;
        assert!((f.pixel(3, 3) - want).abs() < 1e-4);
    }

    #[test]
    fn truncated_jpeg_is_refused_but_trailing_bytes_are_fine() {
        let img = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([(x * 3 + y) as u8]));
        let mut jpg = Vec::new();
        DynamicImage::ImageLuma8(img)
            .write_to(&mut Cursor::new(&mut jpg), ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_image(&jpg, &Limits::default()).is_ok());
        let mut padded = jpg.clone();
        padded.extend_from_slice(&[0, 0, 0, 0]);
        assert!(decode_image(&padded, &Limits::default()).is_ok());
        let e = decode_image(&jpg[..jpg.len() - 40], &Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::Corrupt { .. }), "{e}");
    }

    /// Found by fuzzing (decode_image): the JPEG decoder's message ended in a newline, which
    /// then started a line of its own in the log and the journal.
    #[test]
    fn decoder_messages_are_one_printable_line() {
        // A quantisation table that claims more bytes than the file holds; the scan and end
        // markers after it keep the truncation check from answering first.
        let mut jpg = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00, 1, 2, 3];
        jpg.extend_from_slice(&[0xFF, 0xDA, 0xFF, 0xD9]);
        let e = decode_image(&jpg, &Limits::default()).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, DecodeError::Corrupt { .. }), "{m}");
        assert!(!m.chars().any(char::is_control), "{m:?}");
        assert!(!m.ends_with(' '), "{m:?}");
    }

    /// The same pixel count passes or not by its bytes: a 1000x1000 grey JPEG (1 byte a pixel
    /// decoded, 4 as the grey frame) fits a 6 MiB budget, a colour one (3 bytes a pixel decoded)
    /// does not, and is refused before decoding with what it would need. A PNG is decoded row by
    /// row to grey, so even 16-bit RGBA needs only the grey frame and fits.
    #[test]
    fn the_memory_budget_counts_bytes_not_pixels() {
        let limits = Limits {
            memory_budget: 6 << 20,
            ..Limits::default()
        };
        let jpeg = |img: DynamicImage| {
            let mut out = Vec::new();
            img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
                .unwrap();
            out
        };
        let grey = image::GrayImage::from_pixel(1000, 1000, image::Luma([90]));
        assert!(decode_image(&jpeg(DynamicImage::ImageLuma8(grey)), &limits).is_ok());
        let colour = image::RgbImage::from_pixel(1000, 1000, image::Rgb([90, 80, 70]));
        let e = decode_image(&jpeg(DynamicImage::ImageRgb8(colour)), &limits).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::OverBudget {
                    needed_mb: 7,
                    budget_mb: 6,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("1000x1000"), "{e}");
        let rgba = image::ImageBuffer::<image::Rgba<u16>, _>::from_pixel(
            1000,
            1000,
            image::Rgba([9000, 9000, 9000, 65535]),
        );
        assert!(decode_image(&png(DynamicImage::ImageRgba16(rgba)), &limits).is_ok());
    }

    /// Row-by-row PNG decoding gives exactly what decoding the whole picture and converting it
    /// gives, for every colour type and depth the decoder can hand over.
    #[test]
    fn png_rows_equal_the_whole_picture_converted() {
        let (w, h) = (37u32, 33u32);
        let v = |x: u32, y: u32, k: u32| ((x * 7 + y * 13 + k * 29) % 256) as u8;
        let v16 = |x: u32, y: u32, k: u32| (x * 1777 + y * 613 + k * 4099) as u16;
        let images = [
            DynamicImage::ImageLuma8(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Luma([v(x, y, 0)])
            })),
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::LumaA([v(x, y, 0), v(x, y, 1)])
            })),
            DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Luma([v16(x, y, 0)])
            })),
            DynamicImage::ImageLumaA16(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::LumaA([v16(x, y, 0), 1])
            })),
            DynamicImage::ImageRgb8(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Rgb([v(x, y, 0), v(x, y, 1), v(x, y, 2)])
            })),
            DynamicImage::ImageRgba8(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Rgba([v(x, y, 0), v(x, y, 1), v(x, y, 2), 9])
            })),
            DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Rgb([v16(x, y, 0), v16(x, y, 1), v16(x, y, 2)])
            })),
            DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(w, h, |x, y| {
                image::Rgba([v16(x, y, 0), v16(x, y, 1), v16(x, y, 2), 7])
            })),
        ];
        for img in images {
            let kind = format!("{:?}", img.color());
            let whole = to_frame(img.clone(), Fmt(ImageFormat::Png)).unwrap();
            let rows = decode_image(&png(img), &Limits::default()).unwrap();
            assert_eq!(rows, whole, "{kind}");
        }
    }

    #[test]
    fn tiny_and_empty_inputs_are_refused() {
        let img = image::GrayImage::from_pixel(1, 1, image::Luma([7]));
        let e = decode_image(&png(DynamicImage::ImageLuma8(img)), &Limits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::TooSmall {
                    width: 1,
                    height: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(matches!(
            decode_image(&[], &Limits::default()),
            Err(DecodeError::Empty)
        ));
        let e = decode_image(b"hello, world, not an image at all", &Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::UnknownFormat), "{e}");
    }
}
