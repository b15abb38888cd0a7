//! Plane geometry for the film finder: convex hulls, the largest quadrilateral inside a hull,
//! robust line fits and corner ordering. Points are `[x, y]` in pixels, y pointing down.

/// Four corners TL, TR, BR, BL as `[x, y]` in frame pixel coordinates.
pub type Quad = [[f32; 2]; 4];

pub type Pt = [f32; 2];

/// A line `n . p = c` with unit normal `n`.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub n: Pt,
    pub c: f32,
}

impl Line {
    pub fn through(a: Pt, b: Pt) -> Option<Line> {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len < 1e-6 {
            return None;
        }
        let n = [-dy / len, dx / len];
        Some(Line {
            n,
            c: n[0] * a[0] + n[1] * a[1],
        })
    }

    pub fn dist(&self, p: Pt) -> f32 {
        self.n[0] * p[0] + self.n[1] * p[1] - self.c
    }

    /// The unit normal that points away from `inside` (e.g. a quad's centroid).
    pub fn normal_away_from(&self, inside: Pt) -> Pt {
        let s = if self.dist(inside) > 0.0 { -1.0 } else { 1.0 };
        [self.n[0] * s, self.n[1] * s]
    }

    pub fn intersect(&self, o: &Line) -> Option<Pt> {
        let det = self.n[0] * o.n[1] - self.n[1] * o.n[0];
        if det.abs() < 1e-4 {
            return None;
        }
        Some([
            (self.c * o.n[1] - self.n[1] * o.c) / det,
            (self.n[0] * o.c - self.c * o.n[0]) / det,
        ])
    }

    /// Total-least-squares fit (the principal axis of the points); `None` for < 2 points.
    pub fn fit(pts: &[Pt]) -> Option<Line> {
        if pts.len() < 2 {
            return None;
        }
        let n = pts.len() as f32;
        let mx = pts.iter().map(|p| p[0]).sum::<f32>() / n;
        let my = pts.iter().map(|p| p[1]).sum::<f32>() / n;
        let (mut sxx, mut sxy, mut syy) = (0f32, 0f32, 0f32);
        for p in pts {
            let (dx, dy) = (p[0] - mx, p[1] - my);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        // Direction of largest spread; the normal is perpendicular to it.
        let ang = 0.5 * (2.0 * sxy).atan2(sxx - syy);
        let nrm = [-ang.sin(), ang.cos()];
        Some(Line {
            n: nrm,
            c: nrm[0] * mx + nrm[1] * my,
        })
    }
}

/// Corners where consecutive sides of `q` meet. A side without a fitted line falls back to the
/// line through the two coarse corners it joins; `None` where two sides are parallel.
pub fn corners_from_sides(q: &Quad, sides: &[Option<Line>; 4]) -> [Option<Pt>; 4] {
    std::array::from_fn(|i| {
        let prev = (i + 3) % 4;
        let lp = sides[prev].or_else(|| Line::through(q[prev], q[i]))?;
        let li = sides[i].or_else(|| Line::through(q[i], q[(i + 1) % 4]))?;
        lp.intersect(&li)
    })
}

pub fn cross(o: Pt, a: Pt, b: Pt) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

pub fn dist(a: Pt, b: Pt) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Convex hull (Andrew's monotone chain), in the order that has a positive shoelace sum in
/// y-down coordinates (clockwise on screen), without collinear points.
pub fn convex_hull(mut pts: Vec<Pt>) -> Vec<Pt> {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut lower: Vec<Pt> = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Vec<Pt> = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

/// Signed shoelace area (positive for TL, TR, BR, BL order in y-down coordinates).
pub fn signed_area(poly: &[Pt]) -> f32 {
    let mut a = 0.0;
    for i in 0..poly.len() {
        let (p, n) = (poly[i], poly[(i + 1) % poly.len()]);
        a += p[0] * n[1] - n[0] * p[1];
    }
    a / 2.0
}

/// Drop hull vertices that deviate less than `tol` from the chord of their neighbours, so a
/// pixel-staircase edge becomes a handful of vertices.
fn simplify_closed(poly: &[Pt], tol: f32) -> Vec<Pt> {
    let mut v = poly.to_vec();
    loop {
        if v.len() <= 4 {
            return v;
        }
        let mut best = (f32::MAX, 0);
        for i in 0..v.len() {
            let (a, b, c) = (v[(i + v.len() - 1) % v.len()], v[i], v[(i + 1) % v.len()]);
            let base = dist(a, c).max(1e-6);
            let h = cross(a, c, b).abs() / base;
            if h < best.0 {
                best = (h, i);
            }
        }
        if best.0 > tol {
            return v;
        }
        v.remove(best.1);
    }
}

/// The largest-area quadrilateral with vertices on the convex polygon `hull`.
pub fn max_area_quad(hull: &[Pt]) -> Option<Quad> {
    let mut h = simplify_closed(hull, 0.75);
    if h.len() < 4 {
        return None;
    }
    // Bound the cubic search; keeping every k-th vertex loses little on a simplified hull.
    if h.len() > 48 {
        let k = h.len().div_ceil(48);
        h = h.into_iter().step_by(k).collect();
    }
    let n = h.len();
    let tri = |a: usize, b: usize, c: usize| cross(h[a], h[b], h[c]).abs() / 2.0;
    let mut best = (0f32, [0usize; 4]);
    for i in 0..n {
        for k in i + 2..n {
            // Best vertex on each side of diagonal i-k, by linear scan.
            let (mut bj, mut aj) = (i + 1, 0f32);
            for j in i + 1..k {
                let a = tri(i, j, k);
                if a > aj {
                    (aj, bj) = (a, j);
                }
            }
            let (mut bl, mut al) = (usize::MAX, 0f32);
            for l in (k + 1..n).chain(0..i) {
                let a = tri(k, l, i);
                if a > al {
                    (al, bl) = (a, l);
                }
            }
            if bl != usize::MAX && aj + al > best.0 {
                best = (aj + al, [i, bj, k, bl]);
            }
        }
    }
    if best.0 <= 0.0 {
        return None;
    }
    let mut idx = best.1;
    idx.sort_unstable();
    Some(idx.map(|i| h[i]))
}

/// Put a convex quad in TL, TR, BR, BL order for a film that is upright within about +-40
/// degrees: the rotation whose top and bottom edges point most nearly to the right and whose
/// side edges point most nearly down.
pub fn order_corners(q: Quad) -> Quad {
    let mut q = q;
    if signed_area(&q) < 0.0 {
        q.swap(1, 3);
    }
    let ang = |a: Pt, b: Pt, want: f32| {
        let t = (b[1] - a[1]).atan2(b[0] - a[0]);
        let mut d = (t - want).abs() % (2.0 * std::f32::consts::PI);
        if d > std::f32::consts::PI {
            d = 2.0 * std::f32::consts::PI - d;
        }
        d
    };
    let half_pi = std::f32::consts::FRAC_PI_2;
    let mut best = (f32::MAX, q);
    for r in 0..4 {
        let c = [q[r], q[(r + 1) % 4], q[(r + 2) % 4], q[(r + 3) % 4]];
        let cost = ang(c[0], c[1], 0.0)
            + ang(c[3], c[2], 0.0)
            + ang(c[0], c[3], half_pi)
            + ang(c[1], c[2], half_pi);
        if cost < best.0 {
            best = (cost, c);
        }
    }
    best.1
}

/// True when `p` is inside (or on) the convex quad given in positive order.
pub fn in_quad(q: &Quad, p: Pt) -> bool {
    (0..4).all(|i| cross(q[i], q[(i + 1) % 4], p) >= 0.0)
}

/// Share of quad `inner` that lies inside quad `outer`, from a grid of points across `inner`.
pub fn share_inside(inner: &Quad, outer: &Quad) -> f32 {
    const N: usize = 8;
    let mut hits = 0;
    for i in 0..N {
        for j in 0..N {
            let (u, v) = ((i as f32 + 0.5) / N as f32, (j as f32 + 0.5) / N as f32);
            let top = lerp(inner[0], inner[1], u);
            let bottom = lerp(inner[3], inner[2], u);
            hits += in_quad(outer, lerp(top, bottom, v)) as usize;
        }
    }
    hits as f32 / (N * N) as f32
}

/// The point a share `t` of the way from `a` to `b`.
pub fn lerp(a: Pt, b: Pt, t: f32) -> Pt {
    [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
}

/// Interior angles of a convex quad are all within `[lo, hi]` degrees.
pub fn angles_within(q: &Quad, lo: f32, hi: f32) -> bool {
    (0..4).all(|i| {
        let (a, b, c) = (q[(i + 3) % 4], q[i], q[(i + 1) % 4]);
        let (u, v) = ([a[0] - b[0], a[1] - b[1]], [c[0] - b[0], c[1] - b[1]]);
        let cos = (u[0] * v[0] + u[1] * v[1]) / ((u[0].hypot(u[1]) * v[0].hypot(v[1])).max(1e-6));
        let deg = cos.clamp(-1.0, 1.0).acos().to_degrees();
        (lo..=hi).contains(&deg)
    }) && signed_area(q) > 0.0
        && (0..4).all(|i| cross(q[i], q[(i + 1) % 4], q[(i + 2) % 4]) > 0.0)
}

/// The mean of a quad's corners.
pub fn centroid(q: &Quad) -> Pt {
    [
        q.iter().map(|p| p[0]).sum::<f32>() / 4.0,
        q.iter().map(|p| p[1]).sum::<f32>() / 4.0,
    ]
}

/// Shrink (f < 1) or grow (f > 1) a quad about its centroid.
pub fn scale_about_centroid(q: &Quad, f: f32) -> Quad {
    let [cx, cy] = centroid(q);
    q.map(|p| [cx + (p[0] - cx) * f, cy + (p[1] - cy) * f])
}

/// Move every side of a positively ordered convex quad outward by `d` pixels (inward if
/// negative); the corners are the new sides' intersections.
pub fn offset_quad(q: &Quad, d: f32) -> Quad {
    let mut lines = [None; 4];
    for i in 0..4 {
        // For positive order the interior lies where `Line::through(a, b).dist` is positive.
        lines[i] = Line::through(q[i], q[(i + 1) % 4]).map(|l| Line { n: l.n, c: l.c - d });
    }
    let mut out = *q;
    for i in 0..4 {
        if let (Some(a), Some(b)) = (lines[(i + 3) % 4], lines[i]) {
            if let Some(p) = a.intersect(&b) {
                out[i] = p;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_a_filled_square_is_its_corners() {
        let pts: Vec<Pt> = (0..=10)
            .flat_map(|x| (0..=10).map(move |y| [x as f32, y as f32]))
            .collect();
        let h = convex_hull(pts);
        assert_eq!(h.len(), 4);
        assert!(signed_area(&h) > 0.0);
        assert_eq!(signed_area(&h), 100.0);
    }

    #[test]
    fn max_quad_of_an_octagon_like_hull() {
        // A rectangle with two cut corners: the best quad keeps the long sides.
        let hull = vec![
            [0.0, 0.0],
            [100.0, 0.0],
            [100.0, 70.0],
            [95.0, 80.0],
            [5.0, 80.0],
            [0.0, 75.0],
        ];
        let q = max_area_quad(&hull).unwrap();
        assert!(signed_area(&q) > 7500.0);
    }

    #[test]
    fn offset_moves_sides_outward() {
        let q: Quad = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        assert_eq!(
            offset_quad(&q, 2.0),
            [[-2.0, -2.0], [12.0, -2.0], [12.0, 12.0], [-2.0, 12.0]]
        );
        assert_eq!(offset_quad(&q, -1.0)[0], [1.0, 1.0]);
    }

    #[test]
    fn line_fit_and_intersection() {
        let pts: Vec<Pt> = (0..20).map(|i| [i as f32, 2.0 * i as f32 + 1.0]).collect();
        let l = Line::fit(&pts).unwrap();
        assert!(pts.iter().all(|&p| l.dist(p).abs() < 1e-3));
        let v = Line::through([3.0, -10.0], [3.0, 10.0]).unwrap();
        let p = l.intersect(&v).unwrap();
        assert!((p[0] - 3.0).abs() < 1e-3 && (p[1] - 7.0).abs() < 1e-3);
    }

    #[test]
    fn corners_are_ordered_for_rotated_films() {
        for deg in [-35.0f32, -10.0, 0.0, 20.0, 35.0] {
            let (s, c) = deg.to_radians().sin_cos();
            let rot = |x: f32, y: f32| [100.0 + c * x - s * y, 100.0 + s * x + c * y];
            let truth = [
                rot(-40.0, -50.0),
                rot(40.0, -50.0),
                rot(40.0, 50.0),
                rot(-40.0, 50.0),
            ];
            for shift in 0..4 {
                let mut scrambled = [
                    truth[shift],
                    truth[(shift + 1) % 4],
                    truth[(shift + 2) % 4],
                    truth[(shift + 3) % 4],
                ];
                if shift % 2 == 1 {
                    scrambled.reverse();
                }
                assert_eq!(
                    order_corners(scrambled),
                    truth,
                    "rotation {deg}, shift {shift}"
                );
            }
        }
    }
}
