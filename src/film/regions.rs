//! Binary regions at working scale: connected components, hole filling, a cheap identity, and
//! erosion / dilation by a square window (summed-area table).

/// Area and bounding box of a region, as a cheap identity.
pub fn signature(m: &[bool], w: usize, h: usize) -> (usize, usize, usize, usize, usize) {
    let (mut a, mut x0, mut y0, mut x1, mut y1) = (0, w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if m[y * w + x] {
                a += 1;
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    // Quantise the area so that a few noisy pixels do not make a "new" region.
    (a / 8, x0, y0, x1, y1)
}

/// 4-connected components of `mask` with at least `min_px` pixels, as pixel-index lists.
pub fn components(mask: &[bool], w: usize, h: usize, min_px: usize) -> Vec<Vec<usize>> {
    let mut label = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] {
            continue;
        }
        let mut comp = Vec::new();
        label[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            comp.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && !label[j] {
                    label[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if comp.len() >= min_px {
            out.push(comp);
        }
    }
    out
}

/// Bounding box `(x0, y0, x1, y1)`, inclusive, of a pixel-index list (non-empty).
pub fn index_bbox(comp: &[usize], w: usize) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &i in comp {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    (x0, y0, x1, y1)
}

/// The region with every enclosed hole filled: whatever the outside cannot reach. The flood
/// runs only over the region's bounding box and a one-pixel ring around it (everything beyond
/// is outside anyway).
pub fn fill_holes(comp: &[usize], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; w * h];
    if comp.is_empty() {
        return out;
    }
    let (x0, y0, x1, y1) = index_bbox(comp, w);
    let (px0, py0) = (x0.saturating_sub(1), y0.saturating_sub(1));
    let (px1, py1) = ((x1 + 1).min(w - 1), (y1 + 1).min(h - 1));
    let (cw, ch) = (px1 - px0 + 1, py1 - py0 + 1);
    let mut inside = vec![false; cw * ch];
    for &i in comp {
        inside[(i / w - py0) * cw + i % w - px0] = true;
    }
    let mut outside = vec![false; cw * ch];
    let mut stack: Vec<usize> = (0..cw)
        .flat_map(|x| [x, (ch - 1) * cw + x])
        .chain((0..ch).flat_map(|y| [y * cw, y * cw + cw - 1]))
        .filter(|&i| !inside[i])
        .collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % cw, i / cw);
        let nb = [
            (x > 0).then(|| i - 1),
            (x + 1 < cw).then(|| i + 1),
            (y > 0).then(|| i - cw),
            (y + 1 < ch).then(|| i + cw),
        ];
        for j in nb.into_iter().flatten() {
            if !inside[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    for cy in 0..ch {
        for cx in 0..cw {
            if !outside[cy * cw + cx] {
                out[(cy + py0) * w + cx + px0] = true;
            }
        }
    }
    out
}

/// Morphological opening (erosion then dilation, square window of radius `r`) computed over
/// the region's bounding box grown by `r + 1` only.
pub fn open_region(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let mut out = vec![false; w * h];
    let sig = signature(m, w, h);
    if sig.3 < sig.1 {
        return out;
    }
    let (x0, y0) = (sig.1.saturating_sub(r + 1), sig.2.saturating_sub(r + 1));
    let (x1, y1) = ((sig.3 + r + 2).min(w), (sig.4 + r + 2).min(h));
    let (cw, ch) = (x1 - x0, y1 - y0);
    let crop: Vec<bool> = (0..cw * ch)
        .map(|k| m[(k / cw + y0) * w + k % cw + x0])
        .collect();
    let opened = dilate(&erode(&crop, cw, ch, r), cw, ch, r);
    for k in 0..cw * ch {
        out[(k / cw + y0) * w + k % cw + x0] = opened[k];
    }
    out
}

/// Binary erosion with a square window of radius `r` (summed-area table).
pub fn erode(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let sat = summed(m, w, h);
    window_count(&sat, w, h, r)
        .into_iter()
        .map(|(c, full)| c == full)
        .collect()
}

pub fn dilate(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let sat = summed(m, w, h);
    window_count(&sat, w, h, r)
        .into_iter()
        .map(|(c, _)| c > 0)
        .collect()
}

fn summed(m: &[bool], w: usize, h: usize) -> Vec<u32> {
    let mut s = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        for x in 0..w {
            s[(y + 1) * (w + 1) + x + 1] =
                m[y * w + x] as u32 + s[y * (w + 1) + x + 1] + s[(y + 1) * (w + 1) + x]
                    - s[y * (w + 1) + x];
        }
    }
    s
}

/// (set pixels, window pixels) in the clipped window around each pixel.
fn window_count(s: &[u32], w: usize, h: usize, r: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let c = s[y1 * (w + 1) + x1] + s[y0 * (w + 1) + x0]
                - s[y0 * (w + 1) + x1]
                - s[y1 * (w + 1) + x0];
            out.push((c, ((y1 - y0) * (x1 - x0)) as u32));
        }
    }
    out
}
