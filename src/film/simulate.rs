//! Deterministic film-photo simulator: renders a digital chest film as a phone or board camera
//! would see it on a light box, with the ground-truth corners, so the finder, the rectifier and
//! the gates can be tested and measured without hardware or a photo collection.
//!
//! The physics is deliberately simple but keeps the cues a real photo has (and lacks): a film
//! transmits at most ~55-75% of the back-light (the film base absorbs the rest), so the light
//! box is the brightest thing in view; the film's own black areas are dark but not zero; the
//! back-light is uneven; the lens vignettes, blurs and glares; the sensor adds noise and moiré;
//! the camera compresses to JPEG.

use std::f32::consts::PI;

use crate::pixels::resize_area;
use crate::pixels::Frame;

use super::filters::gaussian_blur;
use super::geometry::Quad;
use super::rectify::{sample_bilinear, Homography};

/// splitmix64: tiny, fast, and identical on every platform, so a seed names a frame forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng::from_state(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// A generator started from the raw splitmix64 state (no seed mixing), for callers whose
    /// sequences were defined that way (`model::fit`'s bootstrap).
    pub fn from_state(state: u64) -> Self {
        Rng(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        self.f32() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u = self.f32().max(1e-7);
        let v = self.f32();
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }
}

/// What is behind the film.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    /// The light box fills the whole camera frame.
    LightBox,
    /// A light box smaller than the frame, with a darker room around it.
    LightBoxInRoom,
    /// No back-light: the film lies on a dark surface, lit from the front.
    DarkBackground,
}

/// Where the film is relative to the camera frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Fully inside the frame, at a useful size.
    Inside,
    /// Partly outside the frame: at least one edge is cut off.
    CutOff,
    /// Fully inside but tiny (a few percent of the frame).
    Small,
    /// No film at all (empty light box, a hand, a blank sheet...).
    Absent,
}

/// What to render. `None` fields are drawn at random from the seed.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// 0 = near-ideal photo, 1 = every effect at its worst.
    pub severity: f32,
    /// Where the film lies relative to the frame.
    pub placement: Placement,
    /// Seed for every random choice; the same options and seed give the same frame.
    pub seed: u64,
    /// What is behind the film; random when `None`.
    pub scene: Option<Scene>,
    /// Gaussian defocus sigma in pixels of a 640-wide frame.
    pub defocus: Option<f32>,
    /// Whether to add a glare spot on the film; random when `None`.
    pub glare: Option<bool>,
    /// Whether to draw a hand in view; random when `None`.
    pub hand: Option<bool>,
    /// JPEG quality; `Some(0)` skips compression.
    pub jpeg_quality: Option<u8>,
}

impl SimOptions {
    /// Options with the given size, severity, placement and seed; everything else random.
    pub fn new(
        width: usize,
        height: usize,
        severity: f32,
        placement: Placement,
        seed: u64,
    ) -> Self {
        SimOptions {
            width,
            height,
            severity,
            placement,
            seed,
            scene: None,
            defocus: None,
            glare: None,
            hand: None,
            jpeg_quality: None,
        }
    }
}

/// A rendered camera frame with its ground truth.
#[derive(Clone, Debug)]
pub struct SimFrame {
    /// The rendered camera frame.
    pub frame: Frame,
    /// Film corners TL, TR, BR, BL in frame pixels (may lie outside the frame when cut off);
    /// `None` when no film was drawn.
    pub corners: Option<Quad>,
    /// True when the whole film is inside the frame.
    pub fully_inside: bool,
    /// The scene that was drawn.
    pub scene: Scene,
    /// Whether a glare spot was drawn.
    pub had_glare: bool,
    /// Whether a hand was drawn.
    pub had_hand: bool,
}

/// Render `film` as a camera photo.
pub fn simulate(film: &Frame, opt: &SimOptions) -> SimFrame {
    let mut rng = Rng::new(opt.seed);
    let (w, h) = (opt.width, opt.height);
    let sev = opt.severity.clamp(0.0, 1.0);
    let px = w as f32 / 640.0; // effect sizes are specified for a 640-wide frame
    let scene = opt.scene.unwrap_or_else(|| match rng.f32() {
        x if x < 0.5 => Scene::LightBox,
        x if x < 0.85 => Scene::LightBoxInRoom,
        _ => Scene::DarkBackground,
    });

    let quad = match opt.placement {
        Placement::Absent => None,
        p => Some(place_film(&mut rng, film, w, h, sev, p)),
    };
    let fully_inside = quad.is_some_and(|q| {
        q.iter()
            .all(|c| c[0] >= 0.0 && c[1] >= 0.0 && c[0] <= w as f32 && c[1] <= h as f32)
    });

    // Back-light (or room light) level: a tilted plane times a broad bump, i.e. the uneven
    // lamps of a real light box.
    let base = match scene {
        Scene::DarkBackground => rng.range(110.0, 170.0),
        _ => rng.range(215.0, 265.0),
    };
    let tilt = rng.range(0.03, 0.05 + 0.2 * sev);
    let tilt_ang = rng.range(0.0, 2.0 * PI);
    let (bx, by) = (
        rng.range(0.2, 0.8) * w as f32,
        rng.range(0.2, 0.8) * h as f32,
    );
    let bump = rng.range(-0.08, 0.12) * (0.3 + sev);
    let bump_r = rng.range(0.3, 0.7) * w as f32;
    let light = |x: f32, y: f32| {
        let (nx, ny) = (x / w as f32 - 0.5, y / h as f32 - 0.5);
        let plane = 1.0 + tilt * (nx * tilt_ang.cos() + ny * tilt_ang.sin()) * 2.0;
        let d2 = ((x - bx).powi(2) + (y - by).powi(2)) / (bump_r * bump_r);
        base * plane * (1.0 + bump * (-d2).exp())
    };

    // The light box rectangle in the room scene: around the film, with a margin.
    let room_level = rng.range(25.0, 95.0);
    let lb_rect = {
        let (mut x0, mut y0, mut x1, mut y1) = match quad {
            Some(q) => bbox(&q),
            None => (
                0.35 * w as f32,
                0.3 * h as f32,
                0.65 * w as f32,
                0.7 * h as f32,
            ),
        };
        let m = w.min(h) as f32;
        x0 -= rng.range(0.04, 0.2) * m;
        y0 -= rng.range(0.04, 0.2) * m;
        x1 += rng.range(0.04, 0.2) * m;
        y1 += rng.range(0.04, 0.2) * m;
        (x0, y0, x1, y1)
    };
    let room_tex = (
        rng.range(0.0, 2.0 * PI),
        rng.range(0.005, 0.03),
        rng.range(5.0, 20.0),
    );
    let background = |x: f32, y: f32| -> f32 {
        match scene {
            Scene::LightBox => light(x, y),
            Scene::LightBoxInRoom => {
                let inside = x >= lb_rect.0 && x < lb_rect.2 && y >= lb_rect.1 && y < lb_rect.3;
                if inside {
                    light(x, y)
                } else {
                    let (a, f, amp) = room_tex;
                    room_level + amp * ((x * f + a).sin() * (y * f * 0.7 - a).cos())
                }
            }
            Scene::DarkBackground => {
                let (a, f, amp) = room_tex;
                0.15 * light(x, y) + 0.5 * amp * ((x * f + a).sin() * (y * f * 0.7).cos())
            }
        }
    };

    // How the film turns light into brightness: transmission on a light box (film base caps it),
    // reflection when front-lit on a dark surface.
    let t_max = rng.range(0.55, 0.75);
    let t_min = rng.range(0.03, 0.1);
    let gamma = rng.range(0.85, 1.2);
    let film_px = quad.map(|q| prepare_film(film, &q));
    let hinv = quad.and_then(|q| {
        let (fw, fh) = (
            film_px.as_ref().unwrap().width as f64,
            film_px.as_ref().unwrap().height as f64,
        );
        Homography::rect_to_quad(fw, fh, &q).and_then(|hm| hm.inverse())
    });

    let mut img = vec![0f32; w * h];
    // 2x2 supersampling gives the film's edge the partial coverage a real lens would.
    let offs = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (ox, oy) in offs {
                let (sx, sy) = (x as f32 + ox, y as f32 + oy);
                let mut v = background(sx, sy);
                if let (Some(hi), Some(fp)) = (&hinv, &film_px) {
                    let (u, vv) = hi.apply(sx as f64, sy as f64);
                    if u >= 0.0 && vv >= 0.0 && u < fp.width as f64 && vv < fp.height as f64 {
                        let d = sample_bilinear(fp, u as f32, vv as f32) / 255.0;
                        let t = t_min + (t_max - t_min) * d.max(0.0).powf(gamma);
                        v = match scene {
                            Scene::DarkBackground => light(sx, sy) * (0.35 + 0.6 * t),
                            _ => light(sx, sy) * t,
                        };
                    }
                }
                acc += v;
            }
            img[y * w + x] = acc / 4.0;
        }
    }
    let mut frame = Frame::new(w, h, img);

    let want_clip = quad.is_some() && rng.chance(0.15 + 0.2 * sev);
    let had_hand = opt.hand.unwrap_or_else(|| rng.chance(0.1 + 0.25 * sev));
    if let (true, Some(q)) = (want_clip, quad) {
        draw_clip(&mut frame, &mut rng, &q, scene);
    }
    if had_hand {
        draw_hand(&mut frame, &mut rng, quad.as_ref(), scene, px);
    }

    let had_glare = quad.is_some() && opt.glare.unwrap_or_else(|| rng.chance(0.15 + 0.5 * sev));
    if let (true, Some(q)) = (had_glare, quad) {
        let (x0, y0, x1, y1) = bbox(&q);
        let (gx, gy) = (rng.range(x0, x1), rng.range(y0, y1));
        let (sx, sy) = (rng.range(8.0, 30.0) * px, rng.range(5.0, 20.0) * px);
        let amp = rng.range(60.0, 120.0 + 120.0 * sev);
        for y in 0..h {
            for x in 0..w {
                let d = ((x as f32 - gx) / sx).powi(2) + ((y as f32 - gy) / sy).powi(2);
                if d < 16.0 {
                    frame.data[y * w + x] += amp * (-0.5 * d).exp();
                }
            }
        }
    }

    // Optics: defocus, then camera shake.
    let sigma = opt
        .defocus
        .unwrap_or_else(|| rng.range(0.0, 0.4 + 2.0 * sev))
        * px;
    frame = gaussian_blur(&frame, sigma);
    if rng.chance(0.5 * sev) {
        let len = rng.range(1.0, 2.0 + 5.0 * sev) * px;
        frame = motion_blur(&frame, len, rng.range(0.0, PI));
    }

    // Vignetting, exposure, sensor noise, moiré, clipping.
    let vig = rng.range(0.05, 0.1 + 0.35 * sev);
    let gain = rng.range(0.85, 1.1);
    let noise = rng.range(0.5, 1.5 + 5.0 * sev);
    let (mp, ma) = (
        rng.range(3.0, 8.0) * px.max(0.5),
        rng.range(0.0, 1.0 + 3.0 * sev),
    );
    let mang = rng.range(0.0, PI);
    let (mc, ms) = (mang.cos(), mang.sin());
    let rmax2 = (w * w + h * h) as f32 / 4.0;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
            let mut v = frame.data[i] * gain * (1.0 - vig * (dx * dx + dy * dy) / rmax2);
            v += ma * (2.0 * PI * (x as f32 * mc + y as f32 * ms) / mp).sin();
            v += noise * rng.normal() * (0.5 + (v.max(0.0) / 255.0).sqrt());
            frame.data[i] = v.clamp(0.0, 255.0);
        }
    }

    let q = opt
        .jpeg_quality
        .unwrap_or((92.0 - 55.0 * sev - rng.range(0.0, 10.0)).clamp(30.0, 95.0) as u8);
    if q > 0 {
        frame = jpeg_roundtrip(&frame, q);
    }
    SimFrame {
        frame,
        corners: quad,
        fully_inside,
        scene,
        had_glare,
        had_hand,
    }
}

fn bbox(q: &Quad) -> (f32, f32, f32, f32) {
    let xs = q.map(|p| p[0]);
    let ys = q.map(|p| p[1]);
    let min = |a: [f32; 4]| a.iter().cloned().fold(f32::MAX, f32::min);
    let max = |a: [f32; 4]| a.iter().cloned().fold(f32::MIN, f32::max);
    (min(xs), min(ys), max(xs), max(ys))
}

fn quad_area(q: &Quad) -> f32 {
    let mut a = 0.0;
    for i in 0..4 {
        let (p, n) = (q[i], q[(i + 1) % 4]);
        a += p[0] * n[1] - n[0] * p[1];
    }
    a.abs() / 2.0
}

/// Choose the film's pose: a rectangle of the film's aspect, tilted in 3-D, rotated in plane,
/// projected by a pinhole camera, scaled and moved to the requested placement.
fn place_film(rng: &mut Rng, film: &Frame, w: usize, h: usize, sev: f32, p: Placement) -> Quad {
    let (wf, hf) = (w as f32, h as f32);
    let aspect = film.width as f32 / film.height as f32;
    let rot = rng.range(-1.0, 1.0) * (8.0 + 22.0 * sev).to_radians();
    let ax = rng.range(-1.0, 1.0) * (3.0 + 22.0 * sev).to_radians();
    let ay = rng.range(-1.0, 1.0) * (3.0 + 22.0 * sev).to_radians();
    let (cz, sz, cx, sx, cy, sy) = (rot.cos(), rot.sin(), ax.cos(), ax.sin(), ay.cos(), ay.sin());
    let focal = 1.3;
    let dist = 2.5;
    let proj = |u: f32, v: f32| -> [f32; 2] {
        // Tilt about x then y, then rotate in the image plane, then project.
        let (x, y, z) = (u, v * cx, v * sx);
        let (x, z) = (x * cy + z * sy, -x * sy + z * cy);
        let (x, y) = (x * cz - y * sz, x * sz + y * cz);
        let d = dist + z;
        [focal * x / d, focal * y / d]
    };
    let (hw, hh) = (aspect.sqrt() / 2.0, 1.0 / aspect.sqrt() / 2.0);
    let mut q: Quad = [proj(-hw, -hh), proj(hw, -hh), proj(hw, hh), proj(-hw, hh)];
    let frac = match p {
        Placement::Small => rng.range(0.03, 0.06),
        Placement::CutOff => rng.range(0.25, 0.6),
        _ => rng.range(0.18, 0.55),
    };
    let s = (frac * wf * hf / quad_area(&q)).sqrt();
    for c in q.iter_mut() {
        *c = [c[0] * s, c[1] * s];
    }
    let (x0, y0, x1, y1) = bbox(&q);
    let margin = 0.03 * wf.min(hf);
    // Shrink if the pose does not fit (tall films in a landscape frame).
    let fit = ((wf - 2.0 * margin) / (x1 - x0))
        .min((hf - 2.0 * margin) / (y1 - y0))
        .min(1.0);
    for c in q.iter_mut() {
        *c = [c[0] * fit, c[1] * fit];
    }
    let (x0, y0, x1, y1) = bbox(&q);
    let (bw, bh) = (x1 - x0, y1 - y0);
    let (mut ox, mut oy) = (
        rng.range(margin - x0, wf - margin - x1),
        rng.range(margin - y0, hf - margin - y1),
    );
    if p == Placement::CutOff {
        // Push one or two edges out of view by 10-35% of the film.
        let first = (rng.next_u64() % 4) as usize;
        let mut sides = vec![first];
        if rng.chance(0.3) {
            // A second, perpendicular edge: the film sticks out of a corner.
            sides.push(if first < 2 {
                2 + (rng.next_u64() % 2) as usize
            } else {
                (rng.next_u64() % 2) as usize
            });
        }
        for side in sides {
            let out = rng.range(0.1, 0.35);
            match side {
                0 => ox = -x0 - out * bw,
                1 => ox = wf - x1 + out * bw,
                2 => oy = -y0 - out * bh,
                _ => oy = hf - y1 + out * bh,
            }
        }
    }
    q.map(|c| [c[0] + ox, c[1] + oy])
}

/// Pre-shrink the film to about its rendered size so bilinear sampling does not alias.
fn prepare_film(film: &Frame, q: &Quad) -> Frame {
    let (nw, _) = super::rectify::natural_size(q);
    let k = film.width as f32 / nw.max(1) as f32;
    if k > 1.5 {
        let (w, h) = (
            (film.width as f32 / k).round() as usize,
            (film.height as f32 / k).round() as usize,
        );
        resize_area(film, w.max(2), h.max(2))
    } else {
        film.clone()
    }
}

/// A binder clip: a dark rectangle over the film's top edge.
fn draw_clip(f: &mut Frame, rng: &mut Rng, q: &Quad, scene: Scene) {
    let t = rng.range(0.2, 0.8);
    let cx = q[0][0] + t * (q[1][0] - q[0][0]);
    let cy = q[0][1] + t * (q[1][1] - q[0][1]);
    let side = super::rectify::natural_size(q).0 as f32;
    let (hw, hh) = (side * rng.range(0.04, 0.08), side * rng.range(0.03, 0.06));
    let v = if scene == Scene::DarkBackground {
        rng.range(150.0, 200.0)
    } else {
        rng.range(15.0, 50.0)
    };
    fill(f, |x, y| (x - cx).abs() < hw && (y - cy).abs() < hh, v);
}

/// A hand holding the film: fingers over one edge, palm and arm reaching out of the frame.
/// Back-lit by the light box it is a dark silhouette; front-lit it is mid-grey skin.
fn draw_hand(f: &mut Frame, rng: &mut Rng, q: Option<&Quad>, scene: Scene, px: f32) {
    let (w, h) = (f.width as f32, f.height as f32);
    // Pick the left or right side (people hold films by the sides) and a point on that edge.
    let left = rng.chance(0.5);
    let t = rng.range(0.3, 0.7);
    let (ex, ey) = match q {
        Some(q) => {
            let (a, b) = if left { (q[0], q[3]) } else { (q[1], q[2]) };
            (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
        }
        None => (if left { 0.25 * w } else { 0.75 * w }, t * h),
    };
    let dir = if left { -1.0 } else { 1.0 };
    let palm_r = rng.range(30.0, 45.0) * px;
    let (pcx, pcy) = (ex + dir * palm_r * 1.1, ey);
    let finger_len = palm_r * rng.range(1.3, 1.8);
    let finger_w = palm_r * 0.22;
    let arm_w = palm_r * 0.8;
    let arm_end = (
        if left { -20.0 } else { w + 20.0 },
        pcy + rng.range(-0.2, 0.2) * h,
    );
    let v = if scene == Scene::DarkBackground {
        rng.range(110.0, 160.0)
    } else {
        rng.range(35.0, 80.0)
    };
    let fingers: Vec<(f32, f32)> = (0..2)
        .map(|k| (pcy + (k as f32 - 0.5) * palm_r * 0.6, 0.0))
        .collect();
    fill(
        f,
        |x, y| {
            let palm = (x - pcx).powi(2) + (y - pcy).powi(2) < palm_r * palm_r;
            let arm = seg_dist(x, y, (pcx, pcy), arm_end) < arm_w;
            let finger = fingers
                .iter()
                .any(|&(fy, _)| seg_dist(x, y, (pcx, fy), (pcx - dir * finger_len, fy)) < finger_w);
            palm || arm || finger
        },
        v,
    );
}

fn seg_dist(x: f32, y: f32, a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let t = (((x - a.0) * dx + (y - a.1) * dy) / (dx * dx + dy * dy).max(1e-6)).clamp(0.0, 1.0);
    ((x - a.0 - t * dx).powi(2) + (y - a.1 - t * dy).powi(2)).sqrt()
}

fn fill(f: &mut Frame, inside: impl Fn(f32, f32) -> bool, v: f32) {
    for y in 0..f.height {
        for x in 0..f.width {
            if inside(x as f32 + 0.5, y as f32 + 0.5) {
                f.data[y * f.width + x] = v;
            }
        }
    }
}

/// Linear motion blur: the mean of samples along a segment of `len` pixels.
fn motion_blur(f: &Frame, len: f32, ang: f32) -> Frame {
    let n = (len.ceil() as usize).max(2) + 1;
    let (dx, dy) = (ang.cos() * len, ang.sin() * len);
    let mut out = vec![0f32; f.data.len()];
    for y in 0..f.height {
        for x in 0..f.width {
            let mut a = 0.0;
            for k in 0..n {
                let t = k as f32 / (n - 1) as f32 - 0.5;
                a += sample_bilinear(f, x as f32 + 0.5 + t * dx, y as f32 + 0.5 + t * dy);
            }
            out[y * f.width + x] = a / n as f32;
        }
    }
    Frame::new(f.width, f.height, out)
}

/// Encode to JPEG at `quality` and decode again, as the camera's compression would.
pub fn jpeg_roundtrip(f: &Frame, quality: u8) -> Frame {
    let mut buf = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality.clamp(1, 100));
    let img = f.to_luma8();
    if img.write_with_encoder(enc).is_err() {
        return f.clone();
    }
    match image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg) {
        Ok(d) => Frame::new(
            f.width,
            f.height,
            d.to_luma8().into_raw().into_iter().map(f32::from).collect(),
        ),
        Err(_) => f.clone(),
    }
}

/// The film with grey levels inverted (a negative).
pub fn invert(f: &Frame) -> Frame {
    Frame::new(
        f.width,
        f.height,
        f.data.iter().map(|v| 255.0 - v).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn film() -> Frame {
        // Dark lungs either side of a bright mediastinum, dark surround: a cartoon chest.
        let (w, h) = (120, 140);
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 / w as f32, (i / w) as f32 / h as f32);
                let body = ((x - 0.5) / 0.42).powi(2) + ((y - 0.55) / 0.5).powi(2) < 1.0;
                let lung = ((x - 0.5).abs() - 0.2).abs() < 0.12 && (0.2..0.75).contains(&y);
                if !body {
                    10.0
                } else if lung {
                    50.0
                } else {
                    190.0
                }
            })
            .collect();
        Frame::new(w, h, data)
    }

    #[test]
    fn rng_is_deterministic_and_uniform_enough() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        let m = (0..10_000).map(|_| r.f32()).sum::<f32>() / 10_000.0;
        assert!((m - 0.5).abs() < 0.02);
    }

    #[test]
    fn same_seed_same_frame_and_corners_where_the_film_is() {
        let opt = SimOptions::new(160, 120, 0.5, Placement::Inside, 42);
        let a = simulate(&film(), &opt);
        let b = simulate(&film(), &opt);
        assert_eq!(a.frame, b.frame);
        assert!(a.fully_inside);
        let q = a.corners.unwrap();
        // TL is above-left of BR and the film is darker than the light box around it.
        assert!(q[0][0] < q[2][0] && q[0][1] < q[2][1]);
    }

    #[test]
    fn cut_off_and_absent_have_the_right_truth() {
        for seed in 0..6 {
            let c = simulate(
                &film(),
                &SimOptions::new(160, 120, 0.3, Placement::CutOff, seed),
            );
            assert!(!c.fully_inside && c.corners.is_some());
            let a = simulate(
                &film(),
                &SimOptions::new(160, 120, 0.3, Placement::Absent, seed),
            );
            assert!(a.corners.is_none() && !a.fully_inside);
        }
    }

    #[test]
    fn jpeg_roundtrip_is_close() {
        let f = film();
        let j = jpeg_roundtrip(&f, 90);
        let err = f
            .data
            .iter()
            .zip(&j.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / f.data.len() as f32;
        assert!(err < 4.0, "mean error {err}");
    }
}
