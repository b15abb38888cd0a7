//! EXIF orientation: a phone stores the sensor's picture as it came off the sensor and a tag
//! saying how to turn it for viewing. A photo of a film taken in portrait is stored on its side;
//! the film finder and the model must see it upright, as the person who took it did, so the
//! turn is applied right after decoding, before anything else looks at the pixels.

use image::metadata::Orientation;

use super::Frame;

/// Whether turning a frame this way needs a second frame's worth of memory (a rotation by 90 or
/// 270 degrees cannot be done in place here; flips and 180 degrees can).
pub fn needs_copy(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// `frame` turned as the EXIF orientation says, with the `image` crate's meaning of each value
/// (1 as is, 2 mirrored, 3 upside down, 4 flipped, 5-8 on their side).
pub fn apply(frame: Frame, o: Orientation) -> Frame {
    match o {
        Orientation::NoTransforms => frame,
        Orientation::Rotate90 => rotate90(&frame),
        Orientation::Rotate180 => rotate180(frame),
        Orientation::Rotate270 => rotate270(&frame),
        Orientation::FlipHorizontal => flip_h(frame),
        Orientation::FlipVertical => flip_v(frame),
        Orientation::Rotate90FlipH => flip_h(rotate90(&frame)),
        Orientation::Rotate270FlipH => flip_h(rotate270(&frame)),
    }
}

/// A quarter turn clockwise: the bottom-left corner comes to the top left.
fn rotate90(f: &Frame) -> Frame {
    let (w, h) = (f.width, f.height);
    let mut data = Vec::with_capacity(f.data.len());
    for y in 0..w {
        for x in 0..h {
            data.push(f.data[(h - 1 - x) * w + y]);
        }
    }
    Frame::new(h, w, data)
}

/// A quarter turn anticlockwise: the top-right corner comes to the top left.
fn rotate270(f: &Frame) -> Frame {
    let (w, h) = (f.width, f.height);
    let mut data = Vec::with_capacity(f.data.len());
    for y in 0..w {
        for x in 0..h {
            data.push(f.data[x * w + (w - 1 - y)]);
        }
    }
    Frame::new(h, w, data)
}

/// Upside down: the pixels in reverse order.
fn rotate180(mut f: Frame) -> Frame {
    f.data.reverse();
    f
}

/// Mirrored left to right.
fn flip_h(mut f: Frame) -> Frame {
    if f.width > 0 {
        for row in f.data.chunks_exact_mut(f.width) {
            row.reverse();
        }
    }
    f
}

/// Flipped top to bottom.
fn flip_v(mut f: Frame) -> Frame {
    let (w, h) = (f.width, f.height);
    for y in 0..h / 2 {
        let (top, bottom) = f.data.split_at_mut((h - 1 - y) * w);
        top[y * w..(y + 1) * w].swap_with_slice(&mut bottom[..w]);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::decode::decode_image;
    use crate::capture::limits::Limits;
    use image::{DynamicImage, GrayImage, Luma};

    /// A picture no turn or flip maps onto itself: four blocks of different grey, wider than
    /// tall, so that the result's size also tells a quarter turn from none.
    fn blocks() -> GrayImage {
        GrayImage::from_fn(96, 48, |x, y| {
            Luma([match (x < 48, y < 24) {
                (true, true) => 20,
                (false, true) => 90,
                (true, false) => 160,
                (false, false) => 230,
            }])
        })
    }

    /// A baseline JPEG of `img` with an APP1 EXIF segment whose only tag is Orientation = `o`,
    /// laid out as a phone writes it (little-endian TIFF header, one IFD entry of type SHORT).
    fn jpeg_with_orientation(img: &GrayImage, o: u16) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(img)
            .unwrap();
        let mut tiff = b"II*\0".to_vec();
        tiff.extend(8u32.to_le_bytes()); // the first IFD follows the header
        tiff.extend(1u16.to_le_bytes()); // one entry
        tiff.extend(0x0112u16.to_le_bytes()); // Orientation
        tiff.extend(3u16.to_le_bytes()); // SHORT
        tiff.extend(1u32.to_le_bytes()); // one value
        tiff.extend(o.to_le_bytes());
        tiff.extend([0, 0]); // the value's field is 4 bytes
        tiff.extend(0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend([0xFF, 0xE1]);
        out.extend(((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend(&jpeg[2..]);
        out
    }

    /// The mean of each of the four blocks (quarters) of a frame, row by row.
    fn quarters(f: &Frame) -> [f32; 4] {
        let mut sum = [0f32; 4];
        let mut n = [0f32; 4];
        for y in 0..f.height {
            for x in 0..f.width {
                let q = usize::from(x >= f.width / 2) + 2 * usize::from(y >= f.height / 2);
                sum[q] += f.data[y * f.width + x];
                n[q] += 1.0;
            }
        }
        std::array::from_fn(|q| sum[q] / n[q])
    }

    /// Every EXIF orientation 1-8 in a JPEG comes out as the `image` crate itself turns the same
    /// picture (its `apply_orientation`, an implementation independent of this one).
    #[test]
    fn exif_orientations_1_to_8_are_applied_on_decoding() {
        let img = blocks();
        for o in 1..=8u8 {
            let orientation = Orientation::from_exif(o).unwrap();
            let frame = decode_image(&jpeg_with_orientation(&img, o.into()), &Limits::default())
                .unwrap_or_else(|e| panic!("orientation {o}: {e}"));
            let mut expected = DynamicImage::ImageLuma8(img.clone());
            expected.apply_orientation(orientation);
            let expected = expected.to_luma8();
            assert_eq!(
                (frame.width as u32, frame.height as u32),
                expected.dimensions(),
                "orientation {o}"
            );
            let want = Frame::new(
                expected.width() as usize,
                expected.height() as usize,
                expected.into_raw().into_iter().map(f32::from).collect(),
            );
            let (got, want) = (quarters(&frame), quarters(&want));
            for q in 0..4 {
                // JPEG blurs the block edges a little; the blocks are 70 grey levels apart.
                assert!(
                    (got[q] - want[q]).abs() < 6.0,
                    "orientation {o}: {got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn turns_match_their_definitions_pixel_for_pixel() {
        // 3 wide, 2 tall:  0 1 2
        //                  3 4 5
        let f = || Frame::new(3, 2, (0..6).map(|v| v as f32).collect());
        let cases: [(Orientation, (usize, usize), [f32; 6]); 7] = [
            (
                Orientation::FlipHorizontal,
                (3, 2),
                [2., 1., 0., 5., 4., 3.],
            ),
            (Orientation::Rotate180, (3, 2), [5., 4., 3., 2., 1., 0.]),
            (Orientation::FlipVertical, (3, 2), [3., 4., 5., 0., 1., 2.]),
            (Orientation::Rotate90, (2, 3), [3., 0., 4., 1., 5., 2.]),
            (Orientation::Rotate270, (2, 3), [2., 5., 1., 4., 0., 3.]),
            (Orientation::Rotate90FlipH, (2, 3), [0., 3., 1., 4., 2., 5.]),
            (
                Orientation::Rotate270FlipH,
                (2, 3),
                [5., 2., 4., 1., 3., 0.],
            ),
        ];
        for (o, (w, h), data) in cases {
            let t = apply(f(), o);
            assert_eq!(
                (t.width, t.height, t.data.as_slice()),
                (w, h, &data[..]),
                "{o:?}"
            );
        }
        assert_eq!(apply(f(), Orientation::NoTransforms).data, f().data);
    }

    #[test]
    fn a_picture_without_exif_is_left_as_it_is() {
        let img = blocks();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&img)
            .unwrap();
        let f = decode_image(&jpeg, &Limits::default()).unwrap();
        assert_eq!((f.width, f.height), (96, 48));
        let q = quarters(&f);
        assert!(q[0] < q[1] && q[1] < q[2] && q[2] < q[3], "{q:?}");
    }
}
