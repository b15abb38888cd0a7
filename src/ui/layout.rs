//! Layout helpers for the screens: font sizes per panel width, word-wrapped paragraphs,
//! probability bars, fitting a picture into a box, and pixel doubling for large monitors.

use embedded_graphics::{
    mono_font::{iso_8859_1 as latin, MonoFont, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use image::RgbImage;

use crate::lang::latin1;

/// Fonts chosen by panel width: the smallest panels (240 px) get 6x10 text, 320-479 px 7x13,
/// wider ones 9x15 with 10x20 titles. All ISO-8859-1 (Latin-1), for the accents of French,
/// Spanish and Portuguese; their ASCII glyphs are those of the ASCII fonts.
pub struct Fonts {
    body: &'static MonoFont<'static>,
    title: &'static MonoFont<'static>,
    small: &'static MonoFont<'static>,
}

impl Fonts {
    /// The fonts for a target `w` pixels wide.
    pub fn for_width(w: u32) -> Fonts {
        if w < 320 {
            Fonts {
                body: &latin::FONT_6X10,
                title: &latin::FONT_7X13_BOLD,
                small: &latin::FONT_5X8,
            }
        } else if w < 480 {
            Fonts {
                body: &latin::FONT_7X13,
                title: &latin::FONT_9X15_BOLD,
                small: &latin::FONT_6X10,
            }
        } else {
            Fonts {
                body: &latin::FONT_9X15,
                title: &latin::FONT_10X20,
                small: &latin::FONT_7X13,
            }
        }
    }
    /// Style for body text in colour `c`.
    pub fn body(&self, c: Rgb888) -> MonoTextStyle<'static, Rgb888> {
        MonoTextStyle::new(self.body, c)
    }
    /// Style for titles in colour `c`.
    pub fn title(&self, c: Rgb888) -> MonoTextStyle<'static, Rgb888> {
        MonoTextStyle::new(self.title, c)
    }
    /// Style for small print in colour `c`.
    pub fn small(&self, c: Rgb888) -> MonoTextStyle<'static, Rgb888> {
        MonoTextStyle::new(self.small, c)
    }
    /// Style for the research-use banner (the title font) in colour `c`.
    pub fn banner(&self, c: Rgb888) -> MonoTextStyle<'static, Rgb888> {
        MonoTextStyle::new(self.title, c)
    }
    /// Height of a body text line in pixels.
    pub fn body_h(&self) -> i32 {
        self.body.character_size.height as i32
    }
    /// Height of a title line in pixels.
    pub fn title_h(&self) -> i32 {
        self.title.character_size.height as i32
    }
    /// Spacing between blocks in pixels: half a body line, at least 4.
    pub fn pad(&self) -> i32 {
        (self.body.character_size.height as i32 / 2).max(4)
    }
}

/// Draw `text` word-wrapped to the width of `area`, starting at `y`; stops at the bottom of
/// `area`. Returns the y below the last line drawn.
pub fn paragraph<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    text: &str,
    area: Rectangle,
    mut y: i32,
    style: MonoTextStyle<'static, Rgb888>,
) -> Result<i32, D::Error> {
    let cw = style.font.character_size.width + style.font.character_spacing;
    let lh = style.font.character_size.height as i32;
    let cols = (area.size.width / cw.max(1)).max(1) as usize;
    let bottom = area.top_left.y + area.size.height as i32;
    for line in wrap(&latin1(text), cols) {
        if y + lh > bottom {
            break;
        }
        Text::with_baseline(&line, Point::new(area.top_left.x, y), style, Baseline::Top).draw(t)?;
        y += lh;
    }
    Ok(y)
}

/// Greedy word wrap to `cols` characters (longer words are cut).
pub fn wrap(text: &str, cols: usize) -> Vec<String> {
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

/// One probability bar: `label  [#####     ] 42%`. Returns the y below it.
#[allow(clippy::too_many_arguments)]
pub fn bar<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    label: &str,
    p: f32,
    flagged: bool,
    area: Rectangle,
    y: i32,
    fonts: &super::Fonts,
    (normal, hot): (Rgb888, Rgb888),
) -> Result<i32, D::Error> {
    let style = fonts.body(super::FG);
    let cw = (style.font.character_size.width + style.font.character_spacing) as i32;
    let lh = style.font.character_size.height as i32;
    if y + lh > area.top_left.y + area.size.height as i32 {
        return Ok(y);
    }
    let x = area.top_left.x;
    let label: String = latin1(label).chars().take(9).collect();
    Text::with_baseline(&label, Point::new(x, y), style, Baseline::Top).draw(t)?;
    let pct = format!("{:>3.0}%", 100.0 * p.clamp(0.0, 1.0));
    let bar_x = x + 10 * cw;
    let bar_w = (area.size.width as i32 - 10 * cw - 5 * cw).max(10);
    Rectangle::new(
        Point::new(bar_x, y + 1),
        Size::new(bar_w as u32, (lh - 2).max(2) as u32),
    )
    .into_styled(PrimitiveStyle::with_stroke(super::DIM, 1))
    .draw(t)?;
    let fill = ((bar_w - 2) as f32 * p.clamp(0.0, 1.0)).round() as u32;
    if fill > 0 {
        Rectangle::new(
            Point::new(bar_x + 1, y + 2),
            Size::new(fill, (lh - 4).max(1) as u32),
        )
        .into_styled(PrimitiveStyle::with_fill(if flagged {
            hot
        } else {
            normal
        }))
        .draw(t)?;
    }
    Text::with_baseline(
        &pct,
        Point::new(bar_x + bar_w + cw / 2, y),
        style,
        Baseline::Top,
    )
    .draw(t)?;
    Ok(y + lh + 2)
}

/// Split the content box into (picture, text): side by side on wide panels, stacked otherwise.
pub fn split(inner: Rectangle, has_picture: bool, pad: i32) -> (Option<Rectangle>, Rectangle) {
    if !has_picture {
        return (None, inner);
    }
    let (w, h) = (inner.size.width as i32, inner.size.height as i32);
    if w * 10 >= h * 13 {
        let pw = (w * 9 / 20).min(h);
        let pic = Rectangle::new(inner.top_left, Size::new(pw as u32, h as u32));
        let text = Rectangle::new(
            inner.top_left + Point::new(pw + pad, 0),
            Size::new((w - pw - pad).max(1) as u32, h as u32),
        );
        (Some(pic), text)
    } else {
        let ph = (h * 2 / 5).min(w);
        let pic = Rectangle::new(inner.top_left, Size::new(w as u32, ph as u32));
        let text = Rectangle::new(
            inner.top_left + Point::new(0, ph + pad),
            Size::new(w as u32, (h - ph - pad).max(1) as u32),
        );
        (Some(pic), text)
    }
}

/// Draw `img` scaled (nearest neighbour, aspect kept) and centred in `area`; returns where its
/// top-left corner went and the scale, to draw over it.
pub fn blit_fit<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    img: &RgbImage,
    area: Rectangle,
) -> Result<(Point, f32), D::Error> {
    blit_fit_rows(t, img, img.height(), area)
}

/// [`blit_fit`] of the top `rows` rows of `img` only (the heatmap picture without the caption
/// strip burned in below it, which the screen draws as text instead).
pub fn blit_fit_rows<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    img: &RgbImage,
    rows: u32,
    area: Rectangle,
) -> Result<(Point, f32), D::Error> {
    let (iw, ih) = (img.width().max(1), rows.clamp(1, img.height().max(1)));
    let s = (area.size.width as f32 / iw as f32).min(area.size.height as f32 / ih as f32);
    let (w, h) = (
        ((iw as f32 * s) as u32).max(1),
        ((ih as f32 * s) as u32).max(1),
    );
    let origin =
        area.top_left + Point::new(((area.size.width - w.min(area.size.width)) / 2) as i32, 0);
    let colors = (0..h).flat_map(move |y| {
        let sy = ((y as f32 + 0.5) / s) as u32;
        (0..w).map(move |x| {
            let sx = ((x as f32 + 0.5) / s) as u32;
            let p = img.get_pixel(sx.min(iw - 1), sy.min(ih - 1)).0;
            Rgb888::new(p[0], p[1], p[2])
        })
    });
    t.fill_contiguous(&Rectangle::new(origin, Size::new(w, h)), colors)?;
    Ok((origin, s))
}

/// A draw target that is `k` times smaller than the one it wraps: every pixel becomes a k x k
/// block. Used for large monitors, where the bitmap fonts would otherwise be too small.
pub struct Scaled<'a, D> {
    inner: &'a mut D,
    k: u32,
}

impl<'a, D> Scaled<'a, D> {
    /// Wrap `inner`, scaling by `k` (at least 1).
    pub fn new(inner: &'a mut D, k: u32) -> Self {
        Scaled { inner, k: k.max(1) }
    }
}

impl<D: DrawTarget<Color = Rgb888>> OriginDimensions for Scaled<'_, D> {
    fn size(&self) -> Size {
        let s = self.inner.bounding_box().size;
        Size::new(s.width / self.k, s.height / self.k)
    }
}

impl<D: DrawTarget<Color = Rgb888>> DrawTarget for Scaled<'_, D> {
    type Color = Rgb888;
    type Error = D::Error;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), D::Error> {
        let k = self.k;
        if k == 1 {
            return self.inner.draw_iter(pixels);
        }
        for Pixel(p, c) in pixels {
            let r = Rectangle::new(p * k as i32, Size::new(k, k));
            self.inner.fill_solid(&r, c)?;
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Rgb888) -> Result<(), D::Error> {
        let k = self.k as i32;
        let r = Rectangle::new(area.top_left * k, area.size * self.k);
        self.inner.fill_solid(&r, color)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries() {
        assert_eq!(wrap("aaa bbb ccc", 7), vec!["aaa bbb", "ccc"]);
        assert!(wrap("", 7).is_empty());
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd"]);
    }

    #[test]
    fn wide_panels_put_the_picture_beside_the_text() {
        let inner = Rectangle::new(Point::new(0, 0), Size::new(800, 400));
        let (pic, text) = split(inner, true, 8);
        let pic = pic.unwrap();
        assert!(pic.size.width <= 400 && text.top_left.x > pic.size.width as i32);
        let square = Rectangle::new(Point::new(0, 0), Size::new(230, 200));
        let (pic, text) = split(square, true, 4);
        assert!(text.top_left.y > pic.unwrap().size.height as i32);
    }
}
