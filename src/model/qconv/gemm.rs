//! The integer arithmetic of [`super::Int8Conv`]: im2col into packed panels, a 16 x 6 matrix
//! kernel on pairs of 16-bit values, and the per-channel requantization of each tile as it
//! leaves the kernel. Plain `std`: nothing here knows about tract.
//!
//! Why pairs of i16 (issue 22, README "Performance"): x86's `vpmaddwd` multiplies sixteen i16
//! pairs and adds each pair into an i32, 16 multiply-adds per instruction where an f32 FMA does
//! 8, and it is exact for our operands: `(x - x0)` and `(w - w0)` of 8-bit tensors lie in
//! [-255, 255], a pair's sum in [-130050, 130050], and a whole reduction of up to 2^14 pairs fits
//! an i32. tract's own AVX2 int8 kernel widens bytes to i32 and multiplies with `vpmulld`-class
//! instructions, 8 products per instruction at best. Measured on the model's shapes with packed
//! operands against an f32 FMA kernel of the same 16 x 6 tile: 1.6x the multiply-adds per
//! second (README "Performance").
//!
//! Layouts. A (weights, M x K) is packed once, in panels of [`MR`] output channels; panel `i`,
//! pair `p` holds, for each of its rows `r`, `[a(r, 2p), a(r, 2p + 1)]` (32 i16). B (the
//! image, K x P pixels) is packed per call, in panels of [`NR`] pixels; panel `q`, pair `p`
//! holds, for each pixel `j`, one u32 whose low half is `b(2p, j)` and high half `b(2p + 1, j)`.
//! An odd K gets one zero row. Pixels past P in the last panel read zeros and are not stored.

/// The longest reduction whose sums cannot overflow an i32: 2^14 pairs of at most
/// 2 x 255 x 255 each is 2,130,739,200 < 2^31.
pub const MAX_K: usize = 1 << 15;

/// Output channels per kernel tile.
pub const MR: usize = 16;
/// Pixels per kernel tile.
pub const NR: usize = 6;

/// The weights minus their zero points, as i16 pairs in panels of [`MR`] rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedWeights {
    /// Output channels.
    pub m: usize,
    /// Reduction length (input channels x kernel height x kernel width).
    pub k: usize,
    /// `k` rounded up to pairs.
    pub pairs: usize,
    data: Vec<i16>,
}

impl PackedWeights {
    /// `w` holds `m` rows of `k` values `w - w0`, each in [-255, 255] (checked by the caller,
    /// which builds them from 8-bit tensors).
    pub fn new(w: &[i16], m: usize, k: usize) -> PackedWeights {
        assert_eq!(w.len(), m * k, "weights: {} values for {m} x {k}", w.len());
        let pairs = k.div_ceil(2);
        let panels = m.div_ceil(MR);
        let mut data = vec![0i16; panels * pairs * MR * 2];
        for r in 0..m {
            let (panel, row) = (r / MR, r % MR);
            for kk in 0..k {
                let at = ((panel * pairs + kk / 2) * MR + row) * 2 + kk % 2;
                data[at] = w[r * k + kk];
            }
        }
        PackedWeights { m, k, pairs, data }
    }

    fn panel(&self, i: usize) -> &[i16] {
        let len = self.pairs * MR * 2;
        &self.data[i * len..(i + 1) * len]
    }
}

/// One 2-D convolution on one image (group 1, no dilation), all sizes checked by
/// [`Geometry::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Vertical and horizontal stride.
    pub stride: (usize, usize),
    /// Zero rows / columns before the image (top, left).
    pub pad_before: (usize, usize),
    /// Zero rows / columns after the image (bottom, right).
    pub pad_after: (usize, usize),
    /// Output height.
    pub out_height: usize,
    /// Output width.
    pub out_width: usize,
}

impl Geometry {
    /// None when a size is zero, the kernel does not fit the padded image, the reduction is
    /// longer than [`MAX_K`], or a buffer size would overflow (sizes come from a model file).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        channels: usize,
        (height, width): (usize, usize),
        kernel: (usize, usize),
        stride: (usize, usize),
        pad_before: (usize, usize),
        pad_after: (usize, usize),
    ) -> Option<Geometry> {
        let ph = height.checked_add(pad_before.0)?.checked_add(pad_after.0)?;
        let pw = width.checked_add(pad_before.1)?.checked_add(pad_after.1)?;
        if [
            channels, height, width, kernel.0, kernel.1, stride.0, stride.1,
        ]
        .contains(&0)
            || kernel.0 > ph
            || kernel.1 > pw
            || channels.checked_mul(kernel.0)?.checked_mul(kernel.1)? > MAX_K
        {
            return None;
        }
        let out_height = (ph - kernel.0) / stride.0 + 1;
        let out_width = (pw - kernel.1) / stride.1 + 1;
        // Every buffer below is at most one of these products (in elements of 4 bytes at most).
        channels.checked_mul(ph)?.checked_mul(pw)?.checked_mul(4)?;
        channels
            .checked_mul(kernel.0 * kernel.1)?
            .checked_add(1)?
            .checked_mul(out_height.checked_mul(out_width)?.checked_add(NR)?)?
            .checked_mul(4)?;
        Some(Geometry {
            channels,
            height,
            width,
            kernel,
            stride,
            pad_before,
            pad_after,
            out_height,
            out_width,
        })
    }

    /// The reduction length K.
    pub fn k(&self) -> usize {
        self.channels * self.kernel.0 * self.kernel.1
    }

    /// Output pixels P.
    pub fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    fn padded(&self) -> (usize, usize) {
        (
            self.height + self.pad_before.0 + self.pad_after.0,
            self.width + self.pad_before.1 + self.pad_after.1,
        )
    }
}

/// The image minus its zero point, as i16, inside a border of zeros (a padded position holds
/// x0, which contributes nothing once x0 is subtracted).
pub(super) fn padded_image<T: Copy + Into<i32>>(
    x: &[T],
    x0: i32,
    g: &Geometry,
    out: &mut Vec<i16>,
) {
    let (ph, pw) = g.padded();
    out.clear();
    out.resize(g.channels * ph * pw, 0);
    for c in 0..g.channels {
        for y in 0..g.height {
            let src = &x[(c * g.height + y) * g.width..][..g.width];
            let row = (c * ph + y + g.pad_before.0) * pw + g.pad_before.1;
            for (d, &v) in out[row..row + g.width].iter_mut().zip(src) {
                // [-255, 255] for 8-bit values and zero points: exact in i16
                *d = (v.into() - x0) as i16;
            }
        }
    }
}

/// im2col of the padded image into B panels (see the module notes).
pub(super) fn pack_image(xp: &[i16], g: &Geometry, out: &mut Vec<u32>) {
    let (ph, pw) = g.padded();
    let (k, p) = (g.k(), g.pixels());
    let pairs = k.div_ceil(2);
    let panels = p.div_ceil(NR);
    let taps = g.kernel.0 * g.kernel.1;
    // Offset of reduction index kk = (c, ky, kx) from a pixel's top-left tap. An odd K's last
    // pair repeats its first half: the packed weights hold a zero there, so any in-bounds value
    // contributes nothing, and the loop below needs no branch.
    let koff = |kk: usize| {
        let kk = kk.min(k - 1);
        let (c, r) = (kk / taps, kk % taps);
        (c * ph + r / g.kernel.1) * pw + r % g.kernel.1
    };
    let offs: Vec<(usize, usize)> = (0..pairs)
        .map(|pp| (koff(2 * pp), koff(2 * pp + 1)))
        .collect();
    out.clear();
    out.resize(panels * pairs * NR, 0);
    for (q, dst) in out.chunks_exact_mut(pairs * NR).enumerate() {
        // Pixels past P (last panel) keep their zeros: they are computed and never stored.
        let cols = (p - q * NR).min(NR);
        let mut base = [0usize; NR];
        for (j, b) in base.iter_mut().enumerate().take(cols) {
            let px = q * NR + j;
            *b = (px / g.out_width) * g.stride.0 * pw + (px % g.out_width) * g.stride.1;
        }
        for (d, &(o0, o1)) in dst.chunks_exact_mut(NR).zip(&offs) {
            for (dj, &b) in d.iter_mut().zip(&base).take(cols) {
                *dj = xp[b + o0] as u16 as u32 | (xp[b + o1] as u16 as u32) << 16;
            }
        }
    }
}

/// acc[j * MR + r] = sum over pairs of a(r, .) . b(., j), portable.
fn kernel_portable(pairs: usize, a: &[i16], b: &[u32], acc: &mut [i32; MR * NR]) {
    *acc = [0; MR * NR];
    for p in 0..pairs {
        let ap = &a[p * MR * 2..][..MR * 2];
        let bp = &b[p * NR..][..NR];
        for (j, &bj) in bp.iter().enumerate() {
            let (b0, b1) = (bj as u16 as i16 as i32, (bj >> 16) as u16 as i16 as i32);
            for r in 0..MR {
                acc[j * MR + r] += ap[2 * r] as i32 * b0 + ap[2 * r + 1] as i32 * b1;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn kernel_avx2(pairs: usize, a: &[i16], b: &[u32], acc: &mut [i32; MR * NR]) {
    use std::arch::x86_64::*;
    assert!(a.len() >= pairs * MR * 2 && b.len() >= pairs * NR);
    let mut c = [_mm256_setzero_si256(); 2 * NR];
    let (a, b) = (a.as_ptr(), b.as_ptr());
    for p in 0..pairs {
        // SAFETY: p < pairs and the lengths were checked above.
        unsafe {
            let a0 = _mm256_loadu_si256(a.add(p * MR * 2) as *const __m256i);
            let a1 = _mm256_loadu_si256(a.add(p * MR * 2 + 16) as *const __m256i);
            for j in 0..NR {
                let bj = _mm256_set1_epi32(*b.add(p * NR + j) as i32);
                c[2 * j] = _mm256_add_epi32(c[2 * j], _mm256_madd_epi16(a0, bj));
                c[2 * j + 1] = _mm256_add_epi32(c[2 * j + 1], _mm256_madd_epi16(a1, bj));
            }
        }
    }
    for (q, v) in c.iter().enumerate() {
        // SAFETY: 2 NR stores of 8 i32 fill exactly MR * NR.
        unsafe { _mm256_storeu_si256(acc.as_mut_ptr().add(q * 8) as *mut __m256i, *v) };
    }
}

/// `clamp(round_half_even(|acc| x scale) x sign(acc) + zero_point)`, one value exactly as tract's
/// `Scale` -> `Add(y0)` -> `Min` -> `Max` -> `Cast` chain computes it (also used by
/// [`super::super::requant`]).
#[inline(always)]
pub fn requant_one(acc: i32, scale: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    // 2^23: adding and subtracting it rounds a float below 2^22 to an integer, ties to even (the
    // trick tract's own round_ties_to_even uses; `f32::round_ties_even` is a libm call per value
    // on x86_64 without SSE4.1). Magnitudes are capped first: anything past 2^16 saturates below
    // anyway (|zero point| <= 255), so the cap changes no result.
    const TOINT: f32 = 8_388_608.0;
    let v = acc as f32;
    let m = (v.abs() * scale).min(65_536.0);
    let r = (m + TOINT) - TOINT;
    // tract's scale_by: round the magnitude, then put the sign back.
    let scaled = if v < 0.0 { -(r as i32) } else { r as i32 };
    scaled.saturating_add(zero_point).clamp(lo, hi)
}

/// How accumulators become 8-bit outputs: one scale per output channel, then the output's zero
/// point and range (0..=255 for u8, -128..=127 for i8).
#[derive(Clone, Copy, Debug)]
pub struct Requant<'a> {
    /// One factor per output channel.
    pub scale: &'a [f32],
    /// The output zero point.
    pub zero_point: i32,
    /// The smallest output value.
    pub lo: i32,
    /// The largest output value.
    pub hi: i32,
}

fn epilogue_portable(acc: &mut [i32; MR * NR], bias: &[i32; MR], scale: &[f32; MR], rq: &Requant) {
    for col in acc.chunks_exact_mut(MR) {
        for ((v, &b), &s) in col.iter_mut().zip(bias).zip(scale) {
            *v = requant_one(v.saturating_add(b), s, rq.zero_point, rq.lo, rq.hi);
        }
    }
}

/// [`requant_one`] on eight lanes: the same operations in the same order (conversion, |v| x
/// scale, min, +-2^23, truncation of an integral float, sign, zero point, clamp).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn epilogue_avx2(
    acc: &mut [i32; MR * NR],
    bias: &[i32; MR],
    scale: &[f32; MR],
    rq: &Requant,
) {
    use std::arch::x86_64::*;
    let toint = _mm256_set1_ps(8_388_608.0);
    let cap = _mm256_set1_ps(65_536.0);
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let (y0, lo, hi) = (
        _mm256_set1_epi32(rq.zero_point),
        _mm256_set1_epi32(rq.lo),
        _mm256_set1_epi32(rq.hi),
    );
    // SAFETY: every pointer below stays inside `acc` (MR * NR), `bias` and `scale` (MR).
    unsafe {
        let b = [
            _mm256_loadu_si256(bias.as_ptr() as *const __m256i),
            _mm256_loadu_si256(bias.as_ptr().add(8) as *const __m256i),
        ];
        let s = [
            _mm256_loadu_ps(scale.as_ptr()),
            _mm256_loadu_ps(scale.as_ptr().add(8)),
        ];
        for q in 0..2 * NR {
            let ptr = acc.as_mut_ptr().add(q * 8) as *mut __m256i;
            // The caller guarantees |acc| + |bias| < 2^31 (the op refuses larger models), so the
            // wrapping add here equals the portable path's saturating one.
            let a = _mm256_add_epi32(_mm256_loadu_si256(ptr), b[q % 2]);
            let v = _mm256_cvtepi32_ps(a);
            let m = _mm256_min_ps(_mm256_mul_ps(_mm256_and_ps(v, abs_mask), s[q % 2]), cap);
            let r = _mm256_sub_ps(_mm256_add_ps(m, toint), toint);
            let scaled = _mm256_sign_epi32(_mm256_cvttps_epi32(r), a);
            let y = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(scaled, y0), lo), hi);
            _mm256_storeu_si256(ptr, y);
        }
    }
}

/// Which kernel this CPU runs; chosen once per convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU (what the compiler vectorises of it): the reference the others are
    /// tested against, and what a CPU without a kernel of its own would run.
    Portable,
    /// `vpmaddwd` on 256-bit registers.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The kernel to use on this CPU, or None where tract's own integer kernels should stay:
    /// only AVX2 has been measured faster than tract here. On ARM tract has hand-written SMLAL
    /// and SDOT kernels; a NEON kernel of ours has to be timed against them on a board first
    /// (README "Performance").
    pub fn detect() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Some(Kernel::Avx2);
        }
        None
    }

    /// Every kernel this CPU can run (the portable one everywhere): what the tests compare.
    pub fn available() -> Vec<Kernel> {
        let mut all = vec![Kernel::Portable];
        all.extend(Kernel::detect());
        all
    }

    fn run(self, pairs: usize, a: &[i16], b: &[u32], acc: &mut [i32; MR * NR]) {
        match self {
            Kernel::Portable => kernel_portable(pairs, a, b, acc),
            // SAFETY: only chosen when the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { kernel_avx2(pairs, a, b, acc) },
        }
    }

    fn requant(self, acc: &mut [i32; MR * NR], bias: &[i32; MR], scale: &[f32; MR], rq: &Requant) {
        match self {
            Kernel::Portable => epilogue_portable(acc, bias, scale, rq),
            // SAFETY: only chosen when the CPU has AVX2.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { epilogue_avx2(acc, bias, scale, rq) },
        }
    }
}

/// Scratch buffers kept between calls (one convolution's padded image and packed B).
#[derive(Default, Debug)]
pub struct Scratch {
    pub(super) image: Vec<i16>,
    pub(super) packed: Vec<u32>,
}

/// `out[o * P + px] = requant(sum_k (x - x0)(w - w0) + bias[o])` for every output channel `o`
/// and pixel `px`, as bytes (an i8 output is its two's-complement byte). Each tile is
/// requantized as it leaves the kernel; accumulators never go to memory in bulk.
///
/// The caller guarantees `K x 255 x 255 + |bias| < 2^31` (see [`Int8Conv`]'s builder): then no
/// sum wraps and every kernel gives the same bytes.
///
/// [`Int8Conv`]: super::Int8Conv
#[allow(clippy::too_many_arguments)]
pub fn conv<T: Copy + Into<i32>>(
    kernel: Kernel,
    g: &Geometry,
    w: &PackedWeights,
    bias: &[i32],
    x: &[T],
    x0: i32,
    rq: &Requant,
    scratch: &mut Scratch,
    out: &mut [u8],
) {
    let p = g.pixels();
    assert_eq!(x.len(), g.channels * g.height * g.width, "image size");
    assert_eq!(w.k, g.k(), "weights for another reduction length");
    assert_eq!(
        (bias.len(), rq.scale.len()),
        (w.m, w.m),
        "one bias and scale per output channel"
    );
    assert_eq!(out.len(), w.m * p, "output size");
    padded_image(x, x0, g, &mut scratch.image);
    pack_image(&scratch.image, g, &mut scratch.packed);
    let mut acc = [0i32; MR * NR];
    for i in 0..w.m.div_ceil(MR) {
        let a = w.panel(i);
        let rows = (w.m - i * MR).min(MR);
        let (mut pb, mut ps) = ([0i32; MR], [0f32; MR]);
        pb[..rows].copy_from_slice(&bias[i * MR..i * MR + rows]);
        ps[..rows].copy_from_slice(&rq.scale[i * MR..i * MR + rows]);
        for (q, b) in scratch.packed.chunks_exact(w.pairs * NR).enumerate() {
            kernel.run(w.pairs, a, b, &mut acc);
            kernel.requant(&mut acc, &pb, &ps, rq);
            let cols = (p - q * NR).min(NR);
            for r in 0..rows {
                let dst = &mut out[(i * MR + r) * p + q * NR..][..cols];
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = acc[j * MR + r] as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, the definition.
    fn reference(g: &Geometry, w: &[i16], bias: &[i32], x: &[i32], x0: i32) -> Vec<i32> {
        let m = bias.len();
        let mut out = vec![0i32; m * g.pixels()];
        for o in 0..m {
            for oy in 0..g.out_height {
                for ox in 0..g.out_width {
                    let mut s = bias[o];
                    for c in 0..g.channels {
                        for ky in 0..g.kernel.0 {
                            for kx in 0..g.kernel.1 {
                                let iy = (oy * g.stride.0 + ky) as isize - g.pad_before.0 as isize;
                                let ix = (ox * g.stride.1 + kx) as isize - g.pad_before.1 as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= g.height as isize
                                    || ix >= g.width as isize
                                {
                                    continue;
                                }
                                let xv =
                                    x[(c * g.height + iy as usize) * g.width + ix as usize] - x0;
                                let kk = (c * g.kernel.0 + ky) * g.kernel.1 + kx;
                                s += xv * w[o * g.k() + kk] as i32;
                            }
                        }
                    }
                    out[o * g.pixels() + oy * g.out_width + ox] = s;
                }
            }
        }
        out
    }

    fn hash(i: usize, seed: u32) -> u32 {
        ((i as u32) ^ seed.wrapping_mul(0x9e37_79b9))
            .wrapping_mul(0x85eb_ca6b)
            .rotate_left(13)
    }

    fn check(seed: u32, m: usize, g: Geometry, kernel: Kernel) {
        let k = g.k();
        // Full-range operands, including the extremes that must not overflow.
        let w: Vec<i16> = (0..m * k)
            .map(|i| (hash(i, seed) % 511) as i16 - 255)
            .collect();
        let x: Vec<u8> = (0..g.channels * g.height * g.width)
            .map(|i| hash(i, seed + 1) as u8)
            .collect();
        let bias: Vec<i32> = (0..m)
            .map(|i| (hash(i, seed + 2) % 20001) as i32 - 10000)
            .collect();
        let x0 = (seed % 256) as i32;
        let xi: Vec<i32> = x.iter().map(|&v| v as i32).collect();
        let want = reference(&g, &w, &bias, &xi, x0);
        // Scales that put the sums across the whole output range, ties included.
        let scale: Vec<f32> = (0..m).map(|o| 1.0 / (1u32 << (8 + o % 9)) as f32).collect();
        let y0 = (seed % 7) as i32 - 3;
        let rq = Requant {
            scale: &scale,
            zero_point: y0,
            lo: -128,
            hi: 127,
        };
        let want: Vec<u8> = want
            .iter()
            .enumerate()
            .map(|(i, &v)| requant_one(v, scale[i / g.pixels()], y0, -128, 127) as u8)
            .collect();
        let packed = PackedWeights::new(&w, m, k);
        let mut got = vec![0u8; m * g.pixels()];
        let mut scratch = Scratch::default();
        conv(
            kernel,
            &g,
            &packed,
            &bias,
            &x,
            x0,
            &rq,
            &mut scratch,
            &mut got,
        );
        assert_eq!(got, want, "seed {seed} m {m} {g:?} {kernel:?}");
        // and some outputs are neither clamped nor zero: the test sees real values
        let mid = got
            .iter()
            .filter(|&&v| !matches!(v as i8, -128 | 127 | 0))
            .count();
        assert!(
            mid * 4 > got.len(),
            "seed {seed}: only {mid} of {} unclamped",
            got.len()
        );
    }

    fn shapes() -> Vec<(usize, Geometry)> {
        let g = |c, hw, k, s, pb, pa| Geometry::new(c, hw, k, s, pb, pa).unwrap();
        vec![
            // cxr-net's first convolution (one channel: K = 9, odd), stride 2
            (16, g(1, (20, 20), (3, 3), (2, 2), (1, 1), (1, 1))),
            // stride 1, channels not a multiple of anything, P not a multiple of NR
            (21, g(5, (7, 9), (3, 3), (1, 1), (1, 1), (1, 1))),
            // asymmetric padding and strides, a rectangular kernel
            (33, g(3, (11, 8), (3, 2), (2, 1), (0, 1), (2, 0))),
            // the 1x1 head
            (4, g(40, (5, 5), (1, 1), (1, 1), (0, 0), (0, 0))),
            // one output pixel, extreme values everywhere
            (17, g(2, (3, 3), (3, 3), (1, 1), (0, 0), (0, 0))),
        ]
    }

    #[test]
    fn every_kernel_equals_the_direct_convolution() {
        for (seed, (m, g)) in shapes().into_iter().enumerate() {
            for (i, kernel) in Kernel::available().into_iter().enumerate() {
                check(seed as u32 * 97 + i as u32, m, g, kernel);
            }
        }
    }

    #[test]
    fn extreme_operands_do_not_overflow() {
        // every product at +-255 * 255 over a long reduction: the largest sums the layout allows
        let g = Geometry::new(256, (3, 3), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        let (m, k) = (16, g.k());
        let w = vec![-255i16; m * k];
        let x = vec![0u8; 256 * 9];
        let packed = PackedWeights::new(&w, m, k);
        for kernel in Kernel::available() {
            // scale 2^-20: the centre pixel's 256 * 9 products of (0 - 255) * -255 = 149,817,600
            // become 142.88 -> 143, minus 100 from the zero point = 43
            let scale = [1.0 / (1u32 << 20) as f32; 16];
            let rq = Requant {
                scale: &scale,
                zero_point: -100,
                lo: -128,
                hi: 127,
            };
            let mut got = vec![0u8; m * g.pixels()];
            conv(
                kernel,
                &g,
                &packed,
                &[0; 16],
                &x,
                255,
                &rq,
                &mut Scratch::default(),
                &mut got,
            );
            assert_eq!(got[4] as i8, 43, "{kernel:?}");
        }
    }

    #[test]
    fn geometry_refuses_what_cannot_be_convolved() {
        assert!(Geometry::new(0, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).is_none());
        assert!(Geometry::new(1, (2, 2), (5, 5), (1, 1), (0, 0), (0, 0)).is_none());
        assert!(Geometry::new(1, (4, 4), (3, 3), (0, 1), (1, 1), (1, 1)).is_none());
        assert!(Geometry::new(usize::MAX / 2, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).is_none());
        assert!(Geometry::new(MAX_K / 9 + 1, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).is_none());
        assert!(Geometry::new(MAX_K / 9, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).is_some());
        let g = Geometry::new(1, (160, 160), (3, 3), (2, 2), (1, 1), (1, 1)).unwrap();
        assert_eq!((g.out_height, g.out_width), (80, 80));
    }
}
