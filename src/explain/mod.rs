//! Explanations drawn over the film. The heatmap is the network's own class-activation map
//! (an output of the graph), so it costs no extra forward pass.

mod canvas;

use embedded_graphics::{
    mono_font::{ascii, MonoFont, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use image::RgbImage;

pub use canvas::Canvas;

use crate::lang::{Language, Texts};
use crate::model::Cam;
use crate::pixels::resize_area;
use crate::pixels::Frame;

/// Longest side of the written heatmap image.
const MAX_SIDE: usize = 768;
/// Shortest side, so small inputs still give a readable picture.
const MIN_SIDE: usize = 320;

/// Bilinear upsampling with pixel centres aligned (the usual "align_corners = false").
fn upsample(map: &[f32], h: usize, w: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let sample = |src: usize, dst: usize, i: usize| {
        let x = ((i as f32 + 0.5) * src as f32 / dst as f32 - 0.5).clamp(0.0, (src - 1) as f32);
        let x0 = x.floor() as usize;
        (x0, (x0 + 1).min(src - 1), x - x0 as f32)
    };
    let mut out = Vec::with_capacity(out_w * out_h);
    for y in 0..out_h {
        let (y0, y1, fy) = sample(h, out_h, y);
        for x in 0..out_w {
            let (x0, x1, fx) = sample(w, out_w, x);
            let top = map[y0 * w + x0] * (1.0 - fx) + map[y0 * w + x1] * fx;
            let bot = map[y1 * w + x0] * (1.0 - fx) + map[y1 * w + x1] * fx;
            out.push(top * (1.0 - fy) + bot * fy);
        }
    }
    out
}

/// A compact "turbo"-like colour ramp: blue (low) through green and yellow to red (high).
fn ramp(v: f32) -> [f32; 3] {
    let stops: [(f32, [f32; 3]); 5] = [
        (0.0, [48.0, 18.0, 59.0]),
        (0.25, [40.0, 140.0, 235.0]),
        (0.5, [60.0, 220.0, 110.0]),
        (0.75, [250.0, 190.0, 40.0]),
        (1.0, [200.0, 30.0, 10.0]),
    ];
    let v = v.clamp(0.0, 1.0);
    for pair in stops.windows(2) {
        let ((a, ca), (b, cb)) = (pair[0], pair[1]);
        if v <= b {
            let t = (v - a) / (b - a);
            return [0, 1, 2].map(|i| ca[i] + (cb[i] - ca[i]) * t);
        }
    }
    stops[4].1
}

/// Normalise one class map to [0, 1] (min-max); a flat map stays all zero.
pub fn normalised_map(cam: &Cam, class: usize) -> Vec<f32> {
    let m = cam.map(class);
    let (lo, hi) = m
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    if !(hi - lo).is_finite() || hi - lo < 1e-6 {
        return vec![0.0; m.len()];
    }
    m.iter().map(|&v| (v - lo) / (hi - lo)).collect()
}

/// What a heatmap shows, in words: the class it is the map of and that class's probability
/// in percent, e.g. "COVID-19 pattern 64%". The same words under the picture file's map and
/// on the screen.
pub fn map_words(label: &str, percent: f64) -> String {
    map_words_in(Language::En.texts(), label, percent)
}

/// [`map_words`] in a language (the screens'): "aspect de COVID-19 64%".
pub fn map_words_in(words: &Texts, label: &str, percent: f64) -> String {
    format!("{} {percent:.0}%", words.label(label))
}

/// Height in pixels of the strip below the film in [`heatmap_image`]: the research-use notice
/// and the caption. Screens leave it out and draw the caption as their own text.
pub const CAPTION_STRIP: u32 = 44;

/// The film with the heatmap of `class` blended over it and a banner that says what it is.
pub fn heatmap_image(frame: &Frame, cam: &Cam, class: usize, caption: &str) -> RgbImage {
    let longest = frame.width.max(frame.height);
    let scale = if longest > MAX_SIDE {
        MAX_SIDE as f32 / longest as f32
    } else if frame.width.min(frame.height) < MIN_SIDE {
        MIN_SIDE as f32 / frame.width.min(frame.height) as f32
    } else {
        1.0
    };
    let w = ((frame.width as f32 * scale).round() as usize).clamp(1, 4 * MAX_SIDE);
    let h = ((frame.height as f32 * scale).round() as usize).clamp(1, 4 * MAX_SIDE);
    let base = resize_area(frame, w, h);
    let heat = upsample(&normalised_map(cam, class), cam.height, cam.width, w, h);
    let banner = CAPTION_STRIP as usize;
    let mut img = RgbImage::new(w as u32, (h + banner) as u32);
    for y in 0..h {
        for x in 0..w {
            let g = base.data[y * w + x].clamp(0.0, 255.0);
            let v = heat[y * w + x];
            // Low activations stay transparent so the film remains readable under the map.
            let a = 0.55 * ((v - 0.2) / 0.8).clamp(0.0, 1.0);
            let c = ramp(v);
            let px = [0, 1, 2].map(|i| (g * (1.0 - a) + c[i] * a).round() as u8);
            img.put_pixel(x as u32, y as u32, image::Rgb(px));
        }
    }
    let mut canvas = Canvas::new(&mut img);
    let strip = Rectangle::new(Point::new(0, h as i32), Size::new(w as u32, banner as u32));
    strip
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(150, 20, 20)))
        .draw(&mut canvas)
        .ok();
    // The notice must fit whole: pick the largest font whose line fits the image width.
    let notice_chars = crate::NOTICE.len() as u32 + 2;
    let (bold_font, plain_font): (&MonoFont, &MonoFont) = if w as u32 >= notice_chars * 9 {
        (&ascii::FONT_9X15_BOLD, &ascii::FONT_9X15)
    } else {
        (&ascii::FONT_7X13_BOLD, &ascii::FONT_7X13)
    };
    let bold = MonoTextStyle::new(bold_font, Rgb888::WHITE);
    let plain = MonoTextStyle::new(plain_font, Rgb888::WHITE);
    Text::with_baseline(
        &crate::NOTICE.to_uppercase(),
        Point::new(6, h as i32 + 4),
        bold,
        Baseline::Top,
    )
    .draw(&mut canvas)
    .ok();
    Text::with_baseline(caption, Point::new(6, h as i32 + 23), plain, Baseline::Top)
        .draw(&mut canvas)
        .ok();
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_cam_cell_lands_in_the_right_corner() {
        let mut data = vec![0.0; 2 * 4 * 4];
        data[16 + 15] = 5.0; // class 1, bottom-right cell
        let cam = Cam {
            classes: 2,
            height: 4,
            width: 4,
            data,
        };
        let frame = Frame::new(400, 400, vec![100.0; 160_000]);
        let img = heatmap_image(&frame, &cam, 1, "test");
        let tl = img.get_pixel(10, 10).0;
        let br = img.get_pixel(390, 390).0;
        assert_eq!(tl, [100, 100, 100], "cold area keeps the film's grey");
        assert!(br[0] > 140 && br[2] < 80, "hot area is red: {br:?}");
        assert_eq!(img.height(), 400 + 44);
    }
}
