//! Camera pixel formats to grayscale [`Frame`]s.
//!
//! A film is grey, so only luminance is kept: YUYV and GREY give it directly (the Y samples),
//! MJPEG is decoded to luma only, which skips the chroma planes and the colour conversion.
//! Buffers are taken as the driver filled them: only the first `bytesused` bytes are data
//! (the rest of an mmap buffer holds whatever an earlier, larger frame left there), and rows
//! may be padded to `bytesperline`.

use std::fmt;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::Frame;

/// The pixel formats a camera is asked for, in the order of preference used when the caller
/// has none: MJPEG first because a USB 2 camera sends 1280x720 YUYV at only ~10 frames/s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Motion JPEG, decoded to luma only.
    Mjpeg,
    /// Packed YUV 4:2:2; the Y samples are kept.
    Yuyv,
    /// 8-bit grayscale.
    Grey,
}

impl PixelFormat {
    /// All formats, in the order tried when the caller names none.
    pub const PREFERENCE: [PixelFormat; 3] =
        [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Grey];

    /// The V4L2 FourCC code of this format.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Grey => *b"GREY",
        }
    }

    /// The format with this FourCC, if we can convert it. `JPEG` is what some drivers call
    /// the same motion-JPEG stream.
    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        match &code {
            b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"GREY" => Some(PixelFormat::Grey),
            _ => None,
        }
    }

    /// Bytes per pixel of an uncompressed format.
    fn bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Mjpeg => None,
            PixelFormat::Yuyv => Some(2),
            PixelFormat::Grey => Some(1),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fourcc_str(self.fourcc()))
    }
}

/// A FourCC for people: `YUYV`, or the bytes escaped when they are not printable.
pub fn fourcc_str(code: [u8; 4]) -> String {
    code.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// What the driver actually set (read back after setting it, never assumed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFormat {
    /// Pixel format of the stream.
    pub format: PixelFormat,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per row, padding included; 0 from the driver means "no padding".
    pub bytes_per_line: u32,
}

impl StreamFormat {
    /// Bytes per row; None when it does not fit in `usize` (a driver's numbers on 32-bit).
    fn stride(&self) -> Option<usize> {
        let packed =
            (self.width as usize).checked_mul(self.format.bytes_per_pixel().unwrap_or(1))?;
        Some((self.bytes_per_line as usize).max(packed))
    }

    /// Bytes a whole uncompressed frame needs (the last row needs no padding); None for a
    /// compressed format, or when the size does not fit in `usize` (the sizes come from the
    /// driver, and on a 32-bit board a wrapped product would pass the length check).
    pub fn frame_bytes(&self) -> Option<usize> {
        let bpp = self.format.bytes_per_pixel()?;
        let h = self.height as usize;
        if h == 0 {
            return Some(0);
        }
        let last_row = (self.width as usize).checked_mul(bpp)?;
        self.stride()?.checked_mul(h - 1)?.checked_add(last_row)
    }
}

/// Why one camera buffer could not become a frame. The stream itself may be fine: the next
/// buffer is usually good.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// The buffer held no valid bytes.
    #[error("the camera delivered an empty buffer")]
    Empty,
    /// An uncompressed buffer holds fewer bytes than the frame size needs.
    #[error("short {format} frame: {got} bytes, {need} needed for {width}x{height}")]
    Short {
        /// Pixel format of the stream.
        format: PixelFormat,
        /// Valid bytes in the buffer.
        got: usize,
        /// Bytes a whole frame needs.
        need: usize,
        /// Frame width in pixels.
        width: u32,
        /// Frame height in pixels.
        height: u32,
    },
    /// An MJPEG frame is truncated or could not be decoded; holds the reason.
    #[error("corrupt MJPEG frame: {0}")]
    Jpeg(String),
    /// A decoded MJPEG frame differs in size from the stream's format.
    #[error("MJPEG frame is {got_w}x{got_h}, but the stream was set to {width}x{height}")]
    SizeMismatch {
        /// Decoded width in pixels.
        got_w: usize,
        /// Decoded height in pixels.
        got_h: usize,
        /// Stream width in pixels.
        width: u32,
        /// Stream height in pixels.
        height: u32,
    },
}

/// Convert one buffer. `buffer` is the whole mmap buffer; `bytes_used` is the driver's count
/// of valid bytes in it (clamped to the buffer, since a confused driver must not make us read
/// past it).
pub fn frame_from_buffer(
    fmt: &StreamFormat,
    buffer: &[u8],
    bytes_used: usize,
) -> Result<Frame, FrameError> {
    let data = &buffer[..bytes_used.min(buffer.len())];
    if data.is_empty() {
        return Err(FrameError::Empty);
    }
    let (w, h) = (fmt.width as usize, fmt.height as usize);
    match fmt.format {
        // The size in the frame's header is checked against the stream's before decoding, so
        // a damaged or hostile frame cannot make the decoder allocate for a bigger picture.
        PixelFormat::Mjpeg => decode_mjpeg(data, Some(fmt)),
        PixelFormat::Yuyv | PixelFormat::Grey => {
            let need = fmt.frame_bytes().unwrap_or(0);
            if data.len() < need || need == 0 {
                return Err(FrameError::Short {
                    format: fmt.format,
                    got: data.len(),
                    need,
                    width: fmt.width,
                    height: fmt.height,
                });
            }
            // frame_bytes() succeeded, so the stride fits too.
            let stride = fmt.stride().unwrap_or(usize::MAX);
            let step = fmt.format.bytes_per_pixel().unwrap_or(1);
            let mut out = Vec::with_capacity(w * h);
            for row in data.chunks(stride).take(h) {
                // YUYV is Y0 U Y1 V: every other byte is a Y sample.
                out.extend(row[..w * step].iter().step_by(step).map(|&y| y as f32));
            }
            Ok(Frame::new(w, h, out))
        }
    }
}

/// Decode a (motion) JPEG to its luma plane. UVC cameras often leave out the Huffman tables
/// (the MJPEG convention); the decoder supplies the standard ones then.
pub fn decode_mjpeg_luma(data: &[u8]) -> Result<Frame, FrameError> {
    decode_mjpeg(data, None)
}

/// [`decode_mjpeg_luma`], refusing before decoding a frame whose header size is not `stream`'s.
fn decode_mjpeg(data: &[u8], stream: Option<&StreamFormat>) -> Result<Frame, FrameError> {
    // A frame cut short on the USB link still decodes (the decoder fills the rest with grey),
    // so look for the end-of-image marker first. Some cameras pad with zeros after it.
    let end = data.len() - data.iter().rev().take_while(|&&b| b == 0).count();
    let tail = &data[end.saturating_sub(16)..end];
    if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(FrameError::Jpeg(
            "truncated (no end-of-image marker)".into(),
        ));
    }
    let patched;
    let data = if lacks_huffman_tables(data) {
        // The decoder supplies the standard tables only for frames marked as AVI MJPEG;
        // mark it, as the many cameras that leave out both the tables and the mark need.
        patched = [&data[..2], &AVI1_APP0[..], &data[2..]].concat();
        &patched[..]
    } else {
        data
    };
    // With a stream to compare against, any size a header can hold is read and compared below
    // (so the error names it); without one, the decoder's own limit refuses huge pictures.
    let max = if stream.is_some() { 65_535 } else { 16_384 };
    let opts = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(max)
        .set_max_height(max);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(data), opts);
    dec.decode_headers()
        .map_err(|e| FrameError::Jpeg(e.to_string()))?;
    let (w, h) = dec
        .dimensions()
        .ok_or_else(|| FrameError::Jpeg("no image size in the header".into()))?;
    if let Some(f) = stream {
        if (w, h) != (f.width as usize, f.height as usize) {
            return Err(FrameError::SizeMismatch {
                got_w: w,
                got_h: h,
                width: f.width,
                height: f.height,
            });
        }
    }
    let pixels = dec.decode().map_err(|e| FrameError::Jpeg(e.to_string()))?;
    if pixels.len() != w * h {
        return Err(FrameError::Jpeg(format!(
            "{} luma bytes for {w}x{h}",
            pixels.len()
        )));
    }
    Ok(Frame::new(
        w,
        h,
        pixels.into_iter().map(f32::from).collect(),
    ))
}

/// An APP0 segment saying "AVI1": motion JPEG, standard Huffman tables implied.
const AVI1_APP0: [u8; 9] = [0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// True when the segments before the scan hold no Huffman table (DHT).
fn lacks_huffman_tables(data: &[u8]) -> bool {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return false; // not a marker: let the decoder report the damage
        }
        match data[i + 1] {
            0xC4 => return false,
            0xDA => return true,
            0xFF => i += 1, // fill byte
            _ => i += 2 + u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize,
        }
    }
    false
}

/// A frame as the camera would send it, for fakes, recordings and tests. MJPEG is encoded at
/// quality 90.
pub fn encode_frame(f: &Frame, format: PixelFormat) -> Vec<u8> {
    let y = f.to_luma8().into_raw();
    match format {
        PixelFormat::Grey => y,
        PixelFormat::Yuyv => y.iter().flat_map(|&v| [v, 128]).collect(),
        PixelFormat::Mjpeg => {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode(
                    &y,
                    f.width as u32,
                    f.height as u32,
                    image::ExtendedColorType::L8,
                )
                .expect("encoding a frame in memory cannot fail");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Frame {
        Frame::new(w, h, (0..w * h).map(|i| ((i * 7) % 256) as f32).collect())
    }

    fn fmt(format: PixelFormat, w: u32, h: u32, bpl: u32) -> StreamFormat {
        StreamFormat {
            format,
            width: w,
            height: h,
            bytes_per_line: bpl,
        }
    }

    #[test]
    fn yuyv_keeps_the_y_samples_and_ignores_bytes_past_bytesused() {
        let f = ramp(6, 4);
        let mut buf = encode_frame(&f, PixelFormat::Yuyv);
        let used = buf.len();
        buf.extend(std::iter::repeat_n(0xEE, 100)); // stale bytes of a bigger frame
        let got = frame_from_buffer(&fmt(PixelFormat::Yuyv, 6, 4, 12), &buf, used).unwrap();
        assert_eq!(got, f);
    }

    #[test]
    fn padded_rows_are_skipped() {
        let f = ramp(5, 3);
        let mut buf = Vec::new();
        for row in encode_frame(&f, PixelFormat::Grey).chunks(5) {
            buf.extend_from_slice(row);
            buf.extend_from_slice(&[0xAA; 3]); // bytesperline 8
        }
        let got = frame_from_buffer(&fmt(PixelFormat::Grey, 5, 3, 8), &buf, buf.len()).unwrap();
        assert_eq!(got, f);
        // The last row's padding may be missing.
        let got = frame_from_buffer(&fmt(PixelFormat::Grey, 5, 3, 8), &buf, 8 * 2 + 5).unwrap();
        assert_eq!(got, f);
    }

    #[test]
    fn short_and_empty_buffers_are_errors_not_panics() {
        let f = ramp(6, 4);
        let buf = encode_frame(&f, PixelFormat::Yuyv);
        let e = frame_from_buffer(&fmt(PixelFormat::Yuyv, 6, 4, 0), &buf, buf.len() - 1);
        assert!(
            matches!(
                e,
                Err(FrameError::Short {
                    need: 48,
                    got: 47,
                    ..
                })
            ),
            "{e:?}"
        );
        let e = frame_from_buffer(&fmt(PixelFormat::Grey, 6, 4, 0), &buf, 0);
        assert_eq!(e, Err(FrameError::Empty));
        // bytesused larger than the buffer is clamped, not trusted.
        let e = frame_from_buffer(&fmt(PixelFormat::Grey, 6, 4, 0), &buf[..10], 1 << 20);
        assert!(matches!(e, Err(FrameError::Short { got: 10, .. })), "{e:?}");
    }

    #[test]
    fn mjpeg_uses_bytesused_and_checks_the_size() {
        let f = ramp(64, 48);
        let jpeg = encode_frame(&f, PixelFormat::Mjpeg);
        let mut buf = jpeg.clone();
        buf.resize(jpeg.len() + 4096, 0x55);
        let got = frame_from_buffer(&fmt(PixelFormat::Mjpeg, 64, 48, 0), &buf, jpeg.len()).unwrap();
        let err: f32 = got
            .data
            .iter()
            .zip(&f.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / f.data.len() as f32;
        assert!(err < 12.0, "mean abs error {err}");
        let e = frame_from_buffer(&fmt(PixelFormat::Mjpeg, 640, 480, 0), &buf, jpeg.len());
        assert!(matches!(e, Err(FrameError::SizeMismatch { .. })), "{e:?}");
        let e = frame_from_buffer(&fmt(PixelFormat::Mjpeg, 64, 48, 0), &buf, jpeg.len() / 3);
        assert!(matches!(e, Err(FrameError::Jpeg(_))), "{e:?}");
    }

    /// A frame whose header claims a far bigger picture than the stream's is refused with the
    /// header's size, before the decoder allocates for it (before, up to 16384x16384 was
    /// decoded, 256 MB of luma and 1 GB as floats, and only then compared).
    #[test]
    fn an_mjpeg_header_bigger_than_the_stream_is_refused_before_decoding() {
        let jpeg = encode_frame(&ramp(64, 48), PixelFormat::Mjpeg);
        let sof = (0..jpeg.len() - 1)
            .find(|&i| jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0)
            .expect("a baseline SOF0 segment");
        for (w, h) in [(20_000u16, 20_000u16), (16_000, 16_000), (64, 49)] {
            let mut big = jpeg.clone();
            // SOF0: FF C0, length (2), precision (1), height (2), width (2).
            big[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
            big[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
            let e = frame_from_buffer(&fmt(PixelFormat::Mjpeg, 64, 48, 0), &big, big.len());
            assert_eq!(
                e,
                Err(FrameError::SizeMismatch {
                    got_w: w as usize,
                    got_h: h as usize,
                    width: 64,
                    height: 48
                })
            );
        }
    }

    /// Frame sizes from the driver cannot wrap: on a 32-bit board a wrapped product would have
    /// passed the length check and the copy would read past the buffer (on 64-bit, a debug
    /// build panicked on the overflow).
    #[test]
    fn frame_size_arithmetic_cannot_wrap() {
        for (w, h, bpl) in [
            (u32::MAX, u32::MAX, 0),
            (u32::MAX, 2, 0),
            (2, u32::MAX, u32::MAX),
            (1 << 16, 1 << 16, 1 << 17),
        ] {
            let f = fmt(PixelFormat::Yuyv, w, h, bpl);
            let need = f.frame_bytes();
            let exact = (w as u128 * 2).max(bpl as u128) * (h as u128 - 1) + w as u128 * 2;
            match need {
                Some(n) => assert_eq!(n as u128, exact, "{w}x{h} stride {bpl}"),
                None => assert!(exact > usize::MAX as u128, "{w}x{h} stride {bpl}"),
            }
            let e = frame_from_buffer(&f, &[0u8; 64], 64);
            assert!(matches!(e, Err(FrameError::Short { .. })), "{e:?}");
        }
    }

    #[test]
    fn mjpeg_without_huffman_tables_decodes() {
        // Strip every DHT segment (FF C4 len ...), as UVC cameras do.
        let f = ramp(32, 16);
        let jpeg = encode_frame(&f, PixelFormat::Mjpeg);
        let mut out = Vec::new();
        let mut i = 0;
        while i < jpeg.len() {
            if jpeg[i] == 0xFF && jpeg.get(i + 1) == Some(&0xC4) {
                let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
                i += 2 + len;
                continue;
            }
            if jpeg[i] == 0xFF && jpeg.get(i + 1) == Some(&0xDA) {
                out.extend_from_slice(&jpeg[i..]);
                break;
            }
            out.push(jpeg[i]);
            i += 1;
        }
        assert!(out.len() < jpeg.len(), "no DHT found to strip");
        assert!(lacks_huffman_tables(&out) && !lacks_huffman_tables(&jpeg));
        // The encoder uses the standard tables, so the table-less frame decodes identically.
        assert_eq!(
            decode_mjpeg_luma(&out).unwrap(),
            decode_mjpeg_luma(&jpeg).unwrap()
        );
    }

    #[test]
    fn fourcc_names() {
        assert_eq!(PixelFormat::from_fourcc(*b"JPEG"), Some(PixelFormat::Mjpeg));
        assert_eq!(PixelFormat::from_fourcc(*b"NV12"), None);
        assert_eq!(fourcc_str([b'Y', b'U', 0, b'V']), "YU\\x00V");
        assert_eq!(PixelFormat::Yuyv.to_string(), "YUYV");
    }
}
