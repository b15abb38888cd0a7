//! The screens of the device, drawn with embedded-graphics on any `DrawTarget<Color = Rgb888>`
//! (a PNG canvas, a framebuffer, an SPI panel), laid out from the target's size so the same code
//! serves a 240x240 SPI panel and a 1920x1080 monitor.
//!
//! Every screen ends with the research-use banner; it is drawn last, so nothing covers it.
//!
//! Every word comes from the screen's language table ([`crate::lang`]); the fonts are the
//! ISO-8859-1 ones, and any other character (a file name, an error) is drawn as `?`.

mod layout;

use embedded_graphics::{
    mono_font::MonoTextStyle,
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{Line, PrimitiveStyle, PrimitiveStyleBuilder, Rectangle},
    text::{Baseline, Text},
};
use image::RgbImage;

pub use layout::{Fonts, Scaled};

use crate::film::Code;
use crate::lang::{latin1, Language, ProblemWords, Texts};
use crate::record::Record;

const BG: Rgb888 = Rgb888::new(20, 20, 24);
const FG: Rgb888 = Rgb888::new(235, 235, 235);
const DIM: Rgb888 = Rgb888::new(150, 150, 160);
const AMBER: Rgb888 = Rgb888::new(255, 200, 80);
const BANNER: Rgb888 = Rgb888::new(150, 20, 20);
const BAR: Rgb888 = Rgb888::new(70, 130, 220);
const BAR_FLAGGED: Rgb888 = Rgb888::new(230, 120, 40);
const GOOD: Rgb888 = Rgb888::new(80, 220, 110);
const BUTTON: Rgb888 = Rgb888::new(40, 50, 70);

/// The live camera view while the device waits for a film.
pub struct PreviewView<'a> {
    /// The camera picture (any size; scaled to fit).
    pub picture: &'a RgbImage,
    /// The film's outline in picture pixels (TL, TR, BR, BL), when one is found.
    pub outline: Option<[[f32; 2]; 4]>,
    /// What to do now: "move closer", "hold still"...
    pub hint: &'a str,
    /// Film found and still: the outline turns green.
    pub steady: bool,
    /// The case code being typed or scanned, while case codes are on.
    pub case: Option<CaseLine<'a>>,
}

/// The case-code line of the preview.
pub struct CaseLine<'a> {
    /// Typed or scanned so far (empty: none yet).
    pub code: &'a str,
    /// Read from a barcode.
    pub scanned: bool,
    /// The study requires one: shown in amber while there is none.
    pub required: bool,
}

/// What a result screen shows, taken from the analysis record.
pub struct ResultView<'a> {
    /// The analysis record to show.
    pub record: &'a Record,
    /// The film with its heatmap (from [`crate::explain::heatmap_image`]), if there is one.
    pub picture: Option<&'a RgbImage>,
}

/// Errors the device explains to its user, each with what to do next.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Problem {
    /// No picture from the camera.
    NoCamera,
    /// No usable film in the camera's view.
    NoFilm,
    /// The image does not look like a frontal chest X-ray.
    NotChest,
    /// The model could not be loaded.
    ModelFailed,
    /// The image could not be read or analysed.
    BadImage,
    /// Capture without a valid case code where the study requires one.
    CaseCode,
}

impl Problem {
    /// The problem's heading and advice in a language.
    pub fn words(self, t: &Texts) -> &ProblemWords {
        let s = &t.screen;
        match self {
            Problem::NoCamera => &s.no_camera,
            Problem::NoFilm => &s.no_film,
            Problem::NotChest => &s.not_chest,
            Problem::ModelFailed => &s.model_failed,
            Problem::BadImage => &s.bad_image,
            Problem::CaseCode => &s.case_code,
        }
    }

    /// The problem's heading, a few words, in English (for the log and systemd's status).
    pub fn title(self) -> &'static str {
        self.words(Language::En.texts()).title
    }

    /// What the user should do about it, in one or two sentences, in English.
    pub fn advice(self) -> &'static str {
        self.words(Language::En.texts()).advice
    }
}

/// What the device shows; [`draw`] renders it.
pub enum Screen<'a> {
    /// Waiting for input, with a hint for the user.
    Waiting {
        /// Text telling the user what to do.
        hint: &'a str,
    },
    /// The camera's view with the film outline and a hint.
    Preview(PreviewView<'a>),
    /// A film is being analysed.
    Analysing,
    /// The result of an analysis.
    Result(ResultView<'a>),
    /// A problem, its advice and an optional detail.
    Error {
        /// Which problem to explain.
        problem: Problem,
        /// Extra detail in smaller text; empty for none.
        detail: &'a str,
    },
    /// Another screen with the on-screen buttons ([`TOUCH_KEYS`]) along its bottom, shown
    /// while a touch screen is attached.
    WithTouchButtons(&'a Screen<'a>),
    /// Another screen in a language other than English (the config's `language`). The texts a
    /// screen carries (hints, details) are the caller's, already in that language.
    InLanguage(Language, &'a Screen<'a>),
}

impl<'a> Screen<'a> {
    /// The screen itself, without on-screen buttons or language.
    pub fn base(&self) -> &Screen<'a> {
        match self {
            Screen::WithTouchButtons(s) | Screen::InLanguage(_, s) => s.base(),
            s => s,
        }
    }

    /// The language the screen is drawn in: English unless wrapped in [`Screen::InLanguage`].
    pub fn language(&self) -> Language {
        match self {
            Screen::InLanguage(l, _) => *l,
            Screen::WithTouchButtons(s) => s.language(),
            _ => Language::En,
        }
    }

    /// Whether the on-screen buttons are drawn ([`Screen::WithTouchButtons`] at any depth).
    pub fn has_touch_buttons(&self) -> bool {
        match self {
            Screen::WithTouchButtons(_) => true,
            Screen::InLanguage(_, s) => s.has_touch_buttons(),
            _ => false,
        }
    }
}

/// The on-screen buttons drawn along the bottom while a touch screen is attached, left to
/// right; each is named like the button it presses (`crate::input::Button`). What they read
/// is the language's [`crate::lang::ScreenWords::buttons`].
pub const TOUCH_KEYS: [&str; 3] = ["Back", "Capture", "Next"];

/// The share of the screen's height, from its bottom edge, that the on-screen buttons answer
/// to. The research-use banner is in it: a tap on the banner presses the button above it, so
/// the buttons stay easy to hit on small panels where the banner takes most of the strip.
pub const TOUCH_STRIP: f32 = 0.25;

/// Which of [`TOUCH_KEYS`] a tap at (`x`, `y`) presses, on a 0 ..= 1 scale from the top left
/// of the screen: the bottom [`TOUCH_STRIP`] split into three equal columns. Defined on the
/// whole screen rather than in pixels, so the touch screen needs no knowledge of the display.
pub fn touch_key(x: f32, y: f32) -> Option<usize> {
    let on_screen = (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y);
    if !on_screen || y < 1.0 - TOUCH_STRIP {
        return None;
    }
    Some(((x * TOUCH_KEYS.len() as f32) as usize).min(TOUCH_KEYS.len() - 1))
}

/// Draw `screen` over the whole target.
pub fn draw<D: DrawTarget<Color = Rgb888>>(
    screen: &Screen,
    target: &mut D,
) -> Result<(), D::Error> {
    let area = target.bounding_box();
    target.clear(BG)?;
    let fonts = Fonts::for_width(area.size.width);
    let t = screen.language().texts();
    let banner = draw_banner(target, &fonts, t)?;
    let mut bottom = area.size.height.saturating_sub(banner);
    if screen.has_touch_buttons() {
        // The bottom TOUCH_STRIP of the screen, less the banner; on a small panel, where that is
        // lower than a line of text, raised to fit one (the tap zone stays where it was).
        let line = fonts.body(FG).font.character_size.height + 2 * (fonts.pad() as u32 / 2).max(2);
        let top = ((area.size.height as f32 * (1.0 - TOUCH_STRIP)) as u32)
            .min(bottom.saturating_sub(line));
        let strip = Rectangle::new(
            area.top_left + Point::new(0, top as i32),
            Size::new(area.size.width, bottom.saturating_sub(top)),
        );
        draw_touch_buttons(target, strip, &fonts, t)?;
        bottom = bottom.min(top);
    }
    let screen = screen.base();
    let content = Rectangle::new(area.top_left, Size::new(area.size.width, bottom));
    let pad = fonts.pad();
    let inner = Rectangle::new(
        content.top_left + Point::new(pad, pad),
        Size::new(
            content.size.width.saturating_sub(2 * pad as u32),
            content.size.height.saturating_sub(2 * pad as u32),
        ),
    );
    let top = inner.top_left.y;
    match screen {
        Screen::Waiting { hint } => {
            let y = layout::paragraph(target, t.screen.ready, inner, top, fonts.title(AMBER))?;
            layout::paragraph(target, hint, inner, y + pad, fonts.body(FG))?;
        }
        Screen::Analysing => {
            let words = &t.screen;
            let y = layout::paragraph(target, words.analysing, inner, top, fonts.title(FG))?;
            layout::paragraph(
                target,
                words.analysing_hint,
                inner,
                y + pad,
                fonts.body(DIM),
            )?;
        }
        Screen::Error { problem, detail } => {
            // Titles wrap too: some languages' are longer than a small panel is wide.
            let words = problem.words(t);
            let mut y = layout::paragraph(target, words.title, inner, top, fonts.title(AMBER))?;
            y = layout::paragraph(target, words.advice, inner, y + pad, fonts.body(FG))?;
            if !detail.is_empty() {
                layout::paragraph(target, detail, inner, y + pad, fonts.body(DIM))?;
            }
        }
        Screen::Result(view) => draw_result(target, view, inner, &fonts, t)?,
        Screen::Preview(view) => draw_preview(target, view, inner, &fonts, t)?,
        Screen::WithTouchButtons(_) | Screen::InLanguage(..) => {
            unreachable!("base() unwraps it")
        }
    }
    Ok(())
}

/// The on-screen buttons ([`TOUCH_KEYS`]) side by side in `strip` (nothing when it is too low
/// for a line of text).
fn draw_touch_buttons<D: DrawTarget<Color = Rgb888>>(
    target: &mut D,
    strip: Rectangle,
    fonts: &Fonts,
    t: &Texts,
) -> Result<(), D::Error> {
    let gap = (fonts.pad() / 2).max(2);
    // The title font where the strip is tall enough for it and the longest label fits a
    // button in it (some languages' labels are longer), else the body font.
    let title = fonts.title(FG);
    let longest = t.screen.buttons.iter().map(|b| b.chars().count()).max();
    let button_w = (strip.size.width / TOUCH_KEYS.len() as u32).saturating_sub(2 * gap as u32);
    let title_w = longest.unwrap_or(0) as u32
        * (title.font.character_size.width + title.font.character_spacing);
    let style = if strip.size.height >= title.font.character_size.height + 2 * gap as u32
        && title_w + 4 <= button_w
    {
        title
    } else {
        fonts.body(FG)
    };
    let (cw, lh) = (
        style.font.character_size.width + style.font.character_spacing,
        style.font.character_size.height,
    );
    if strip.size.height < lh + 2 * gap as u32 {
        return Ok(());
    }
    let n = TOUCH_KEYS.len() as i32;
    let w = strip.size.width as i32;
    for (i, label) in t.screen.buttons.iter().enumerate() {
        let label = latin1(label);
        let (x0, x1) = (w * i as i32 / n + gap, w * (i as i32 + 1) / n - gap);
        let b = Rectangle::new(
            strip.top_left + Point::new(x0, gap),
            Size::new((x1 - x0).max(1) as u32, strip.size.height - 2 * gap as u32),
        );
        b.into_styled(
            PrimitiveStyleBuilder::new()
                .fill_color(BUTTON)
                .stroke_color(BAR)
                .stroke_width(2)
                .build(),
        )
        .draw(target)?;
        let tw = label.chars().count() as u32 * cw;
        let at = b.top_left
            + Point::new(
                (b.size.width.saturating_sub(tw) / 2) as i32,
                (b.size.height.saturating_sub(lh) / 2) as i32,
            );
        Text::with_baseline(&label, at, style, Baseline::Top).draw(target)?;
    }
    Ok(())
}

/// Hint on top (it is what the person at the light box reads), the camera view below it with
/// the film outline: green when the film is found and still, amber while it moves.
fn draw_preview<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    view: &PreviewView,
    inner: Rectangle,
    fonts: &Fonts,
    words: &Texts,
) -> Result<(), D::Error> {
    let pad = fonts.pad();
    let colour = if view.steady { GOOD } else { AMBER };
    let mut y = layout::paragraph(t, view.hint, inner, inner.top_left.y, fonts.title(colour))?;
    if let Some(c) = &view.case {
        let h = &words.hints;
        let (text, c_colour) = match (c.code.is_empty(), c.scanned) {
            (true, _) => (
                format!("{}: _  ({})", h.case_code, h.case_hint),
                if c.required { AMBER } else { DIM },
            ),
            (false, true) => (
                format!("{}: {}  ({})", h.case_code, c.code, h.case_scanned),
                GOOD,
            ),
            (false, false) => (format!("{}: {}_", h.case_code, c.code), FG),
        };
        y = layout::paragraph(t, &text, inner, y + pad / 2, fonts.body(c_colour))?;
    }
    let bottom = inner.top_left.y + inner.size.height as i32;
    let area = Rectangle::new(
        Point::new(inner.top_left.x, y + pad / 2),
        Size::new(inner.size.width, (bottom - y - pad / 2).max(1) as u32),
    );
    let (origin, scale) = layout::blit_fit(t, view.picture, area)?;
    if let Some(q) = view.outline {
        let at = |p: [f32; 2]| origin + Point::new((p[0] * scale) as i32, (p[1] * scale) as i32);
        let width = (inner.size.width / 200).clamp(2, 5);
        let style = PrimitiveStyle::with_stroke(colour, width);
        for i in 0..4 {
            Line::new(at(q[i]), at(q[(i + 1) % 4]))
                .into_styled(style)
                .draw(t)?;
        }
    }
    Ok(())
}

/// The red banner across the bottom, the notice in the screen's language; returns its height.
fn draw_banner<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    fonts: &Fonts,
    words: &Texts,
) -> Result<u32, D::Error> {
    let area = t.bounding_box();
    let text = latin1(words.notice).to_uppercase();
    let style = fonts.banner(Rgb888::WHITE);
    let cw = style.font.character_size.width + style.font.character_spacing;
    let fits = (text.chars().count() as u32 + 2) * cw <= area.size.width;
    let lines: Vec<&str> = if fits {
        vec![&text]
    } else {
        text.split(" - ").collect()
    };
    let lh = style.font.character_size.height;
    let h = lh * lines.len() as u32 + 2 * fonts.pad() as u32;
    let top = area.top_left.y + area.size.height as i32 - h as i32;
    Rectangle::new(
        Point::new(area.top_left.x, top),
        Size::new(area.size.width, h),
    )
    .into_styled(PrimitiveStyle::with_fill(BANNER))
    .draw(t)?;
    for (i, l) in lines.iter().enumerate() {
        let w = l.chars().count() as u32 * cw;
        let x = area.top_left.x + (area.size.width.saturating_sub(w) / 2) as i32;
        Text::with_baseline(
            l,
            Point::new(x, top + fonts.pad() + (i as u32 * lh) as i32),
            style,
            Baseline::Top,
        )
        .draw(t)?;
    }
    Ok(h)
}

fn text_line<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    s: &str,
    x: i32,
    y: i32,
    style: MonoTextStyle<'static, Rgb888>,
) -> Result<i32, D::Error> {
    Text::with_baseline(&latin1(s), Point::new(x, y), style, Baseline::Top).draw(t)?;
    Ok(y + style.font.character_size.height as i32)
}

fn draw_result<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    view: &ResultView,
    inner: Rectangle,
    fonts: &Fonts,
    words: &Texts,
) -> Result<(), D::Error> {
    let rec = view.record;
    let pad = fonts.pad();
    // Wide panels: picture on the left, words on the right. Square or tall: picture on top.
    let (pic, column) = layout::split(inner, view.picture.is_some(), pad);
    // The footer line (model, time) has its own row at the bottom of the text column.
    let small_h = fonts.small(DIM).font.character_size.height as i32;
    let text = Rectangle::new(
        column.top_left,
        Size::new(
            column.size.width,
            (column.size.height as i32 - small_h - pad / 2).max(1) as u32,
        ),
    );
    if let (Some(img), Some(area)) = (view.picture, pic) {
        draw_heatmap(t, img, rec, area, fonts, words)?;
    }
    let x = text.top_left.x;
    let mut y = text.top_left.y;
    if let Some(err) = &rec.error {
        let title = Problem::BadImage.words(words).title;
        y = layout::paragraph(t, title, text, y, fonts.title(AMBER))?;
        // The error itself stays as the record says it (it may come from a decoder).
        layout::paragraph(t, err, text, y + pad, fonts.body(FG))?;
        return Ok(());
    }
    let not_chest = rec.not_chest();
    let flags: &[String] = rec.decision.as_ref().map_or(&[], |d| &d.flags);
    let title = match (&rec.result, &rec.label) {
        (Some(r), _) if words.speaks_records() => r.as_str(),
        (_, Some(label)) => words.result(label, flags),
        _ => words.screen.result,
    };
    y = layout::paragraph(
        t,
        title,
        text,
        y,
        fonts.title(if not_chest { AMBER } else { FG }),
    )?;
    if let Some(code) = &rec.case_code {
        let line = format!("{}: {code}", words.hints.case_code);
        y = layout::paragraph(t, &line, text, y + pad / 2, fonts.body(FG))?;
    }
    y += pad;
    if let Some(probs) = &rec.probs {
        for (label, p) in probs {
            let p = p.as_f64().unwrap_or(0.0) as f32;
            y = layout::bar(
                t,
                words.short_label(label),
                p,
                flags.contains(label),
                text,
                y,
                fonts,
                (BAR, BAR_FLAGGED),
            )?;
        }
    }
    if let Some(d) = &rec.decision {
        let summary = if words.speaks_records() {
            d.summary.clone()
        } else {
            words.summary(&d.flags)
        };
        y = layout::paragraph(t, &summary, text, y + pad, fonts.body(FG))?;
    }
    for w in rec.quality.iter().filter(|w| w.code != Code::NotChestXray) {
        y = layout::paragraph(
            t,
            &format!("! {}", words.warning(w.code.as_str(), &w.message)),
            text,
            y + pad / 2,
            fonts.body(AMBER),
        )?;
    }
    let footer = format!(
        "{} v{} {} - {:.0} ms",
        rec.model.name, rec.model.version, rec.model.variant, rec.elapsed_ms
    );
    let fy = column.top_left.y + column.size.height as i32 - small_h;
    text_line(t, &footer, x, fy, fonts.small(DIM))?;
    Ok(())
}

/// The film with its heatmap in `area`, and under it, as text at the screen's own font size,
/// which class the map is of. The picture's own caption strip (for files and the upload page)
/// is left out: scaled down with the picture it was unreadable on a 800x480 panel.
fn draw_heatmap<D: DrawTarget<Color = Rgb888>>(
    t: &mut D,
    img: &RgbImage,
    rec: &Record,
    area: Rectangle,
    fonts: &Fonts,
    words: &Texts,
) -> Result<(), D::Error> {
    let style = fonts.body(FG);
    let gap = (fonts.pad() / 2).max(2);
    let line = style.font.character_size.height + gap as u32;
    let rows = img
        .height()
        .saturating_sub(crate::explain::CAPTION_STRIP)
        .max(1);
    let pic = Rectangle::new(
        area.top_left,
        Size::new(
            area.size.width,
            area.size.height.saturating_sub(line).max(1),
        ),
    );
    let (origin, scale) = layout::blit_fit_rows(t, img, rows, pic)?;
    if let Some(caption) = heatmap_caption(rec, words) {
        let y = origin.y + (rows as f32 * scale) as i32 + gap;
        layout::paragraph(t, &caption, area, y, style)?;
    }
    Ok(())
}

/// "Map: <class> <p>%": the class the heatmap shows, the most probable one (as in
/// `analysis`, which draws the map of the top class).
fn heatmap_caption(rec: &Record, words: &Texts) -> Option<String> {
    let (label, p) = rec
        .probs
        .as_ref()?
        .iter()
        .map(|(l, p)| (l, p.as_f64().unwrap_or(0.0)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(format!(
        "{}: {}",
        words.screen.map,
        crate::explain::map_words_in(words, label, 100.0 * p)
    ))
}

/// Render a screen into a new image of the given size (PNG output, tests, screenshots).
pub fn render(screen: &Screen, width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let mut canvas = crate::explain::Canvas::new(&mut img);
    // Large monitors: lay out at half resolution and double every pixel, so text stays
    // readable at arm's length with the built-in bitmap fonts.
    let k = if width >= 1600 { 2 } else { 1 };
    let mut scaled = Scaled::new(&mut canvas, k);
    let _ = draw(screen, &mut scaled);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_in_the_bottom_strip_pick_a_third() {
        assert_eq!(touch_key(0.1, 0.9), Some(0));
        assert_eq!(touch_key(0.5, 0.8), Some(1));
        assert_eq!(touch_key(0.99, 1.0), Some(2));
        assert_eq!(touch_key(1.0, 1.0), Some(2));
        assert_eq!(touch_key(0.0, 1.0 - TOUCH_STRIP), Some(0));
        assert_eq!(touch_key(0.5, 0.5), None);
        assert_eq!(touch_key(-0.1, 0.9), None);
        assert_eq!(touch_key(0.5, f32::NAN), None);
    }

    #[test]
    fn the_buttons_are_drawn_in_the_strip_above_the_banner() {
        let plain = Screen::Waiting { hint: "Hello" };
        let touch = Screen::WithTouchButtons(&plain);
        assert!(matches!(touch.base(), Screen::Waiting { .. }));
        for (w, h) in [(800, 480), (320, 240), (240, 240), (1920, 1080)] {
            let a = render(&plain, w, h);
            let b = render(&touch, w, h);
            let top = (h as f32 * (1.0 - TOUCH_STRIP)) as u32;
            // The title is untouched; the strip has the buttons' fill colour in each third.
            for y in 0..h / 8 {
                for x in 0..w {
                    assert_eq!(a.get_pixel(x, y), b.get_pixel(x, y), "{w}x{h} at {x},{y}");
                }
            }
            let fill = image::Rgb([BUTTON.r(), BUTTON.g(), BUTTON.b()]);
            for third in 0..3 {
                let found = (top..h).any(|y| {
                    (w * third / 3..w * (third + 1) / 3).any(|x| *b.get_pixel(x, y) == fill)
                });
                assert!(found, "{w}x{h}: no button in third {third}");
            }
            assert!(
                !a.pixels().any(|p| *p == fill),
                "{w}x{h}: buttons without touch"
            );
        }
    }
}
