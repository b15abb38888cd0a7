//! Status and error screens for the kiosk (the result screen is the heatmap picture from
//! [`crate::explain`]). Drawn with embedded-graphics, so the same code can later draw on panels.

use embedded_graphics::{
    mono_font::{ascii, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use image::RgbImage;

use crate::explain::Canvas;

pub const WIDTH: u32 = 800;
pub const HEIGHT: u32 = 480;

/// A full screen with a title, a few lines of explanation (wrapped) and the research-use banner.
pub fn message_screen(title: &str, lines: &[&str]) -> RgbImage {
    let mut img = RgbImage::from_pixel(WIDTH, HEIGHT, image::Rgb([24, 24, 28]));
    let mut c = Canvas::new(&mut img);
    let title_style = MonoTextStyle::new(&ascii::FONT_10X20, Rgb888::new(255, 210, 90));
    let body = MonoTextStyle::new(&ascii::FONT_9X15, Rgb888::WHITE);
    Text::with_baseline(title, Point::new(24, 24), title_style, Baseline::Top)
        .draw(&mut c)
        .ok();
    let cols = ((WIDTH - 48) / 9) as usize;
    let mut y = 70;
    for line in lines.iter().flat_map(|l| wrap(l, cols)) {
        if y > HEIGHT as i32 - 90 {
            break;
        }
        Text::with_baseline(&line, Point::new(24, y), body, Baseline::Top)
            .draw(&mut c)
            .ok();
        y += 20;
    }
    let banner_top = HEIGHT as i32 - 44;
    Rectangle::new(Point::new(0, banner_top), Size::new(WIDTH, 44))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::new(150, 20, 20)))
        .draw(&mut c)
        .ok();
    let bold = MonoTextStyle::new(&ascii::FONT_10X20, Rgb888::WHITE);
    Text::with_baseline(
        &crate::NOTICE.to_uppercase(),
        Point::new(24, banner_top + 12),
        bold,
        Baseline::Top,
    )
    .draw(&mut c)
    .ok();
    img
}

/// Greedy word wrap to `cols` characters (words longer than a line are cut).
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().take(cols).collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > cols {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("", 7), Vec::<String>::new());
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd"]);
    }

    #[test]
    fn screen_has_banner_and_text() {
        let img = message_screen("No film", &["Put a film on the light box."]);
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        assert_eq!(img.get_pixel(2, HEIGHT - 2).0, [150, 20, 20]);
        let lit = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
        assert!(lit > 500, "text drawn: {lit} white pixels");
    }
}
