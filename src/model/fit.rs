//! Fitting a site's calibration (`cxr-edge calibrate`): the temperature by negative
//! log-likelihood, each label's operating point by the same rule the training pipeline used on
//! its validation split (`models/train/calibrate.py`), and patient-level bootstrap intervals.
//!
//! Pure arithmetic on logits and labels; reading results and labels is the command's business.
//! Deterministic: the bootstrap draws from a seeded SplitMix64.

use thiserror::Error;

/// The temperature is searched in this range, as the training pipeline's grid is.
pub const T_RANGE: (f64, f64) = (0.2, 10.0);

/// How a label's operating point is chosen (the manifest's rules, on the site's films).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// The highest threshold that keeps sensitivity (recall) at or above the value.
    MinSensitivity(f64),
    /// The threshold that maximises Youden's J (sensitivity + specificity - 1).
    Youden,
}

impl Rule {
    /// The rule the shipped manifest used for `label` (`calibrate.py`), if there is one.
    pub fn for_label(label: &str) -> Option<Rule> {
        match label {
            // Missing a COVID-19 pattern costs more than a false flag: sensitivity first.
            "covid" => Some(Rule::MinSensitivity(0.90)),
            // "Not a chest X-ray" withholds a result; it must catch nearly every such image.
            "other" => Some(Rule::MinSensitivity(0.99)),
            "pneumonia" | "normal" => Some(Rule::Youden),
            _ => None,
        }
    }

    /// The rule in words, as the profile writes it beside the value.
    pub fn describe(&self) -> String {
        match self {
            Rule::MinSensitivity(s) => {
                format!("highest threshold with site sensitivity >= {s:.2}")
            }
            Rule::Youden => "Youden's J maximum on the site's films".into(),
        }
    }

    /// The operating point for positives' and negatives' probabilities (both non-empty).
    pub fn threshold(&self, pos: &[f64], neg: &[f64]) -> f64 {
        match *self {
            Rule::MinSensitivity(s) => threshold_min_sensitivity(pos, s),
            Rule::Youden => threshold_youden(pos, neg),
        }
    }
}

/// Down to 4 decimals, so that the positive at the threshold still reaches it once written.
fn floor4(x: f64) -> f64 {
    (x * 1e4).floor() / 1e4
}

fn threshold_min_sensitivity(pos: &[f64], target: f64) -> f64 {
    let mut s = pos.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = ((target * s.len() as f64).ceil() as usize).saturating_sub(1);
    floor4(s[k.min(s.len() - 1)])
}

fn threshold_youden(pos: &[f64], neg: &[f64]) -> f64 {
    let (mut p, mut n) = (pos.to_vec(), neg.to_vec());
    p.sort_by(f64::total_cmp);
    n.sort_by(f64::total_cmp);
    let mut cands: Vec<f64> = p
        .iter()
        .chain(&n)
        .map(|v| (v * 1e4).round() / 1e4)
        .collect();
    cands.sort_by(f64::total_cmp);
    cands.dedup();
    let (mut best, mut bt) = (f64::NEG_INFINITY, 0.5);
    for t in cands {
        // Sorted ascending: those below t are the first partition_point ones.
        let se = 1.0 - p.partition_point(|&v| v < t) as f64 / p.len() as f64;
        let sp = n.partition_point(|&v| v < t) as f64 / n.len() as f64;
        if se + sp - 1.0 > best {
            (best, bt) = (se + sp - 1.0, t);
        }
    }
    // Already a 4-decimal candidate; flooring it again could step below by float error.
    bt
}

/// Softmax of `z / t`, in f64.
pub fn softmax(z: &[f64], t: f64) -> Vec<f64> {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&v| ((v - max) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Mean negative log-likelihood of the films `idx` at temperature `t`.
pub fn nll(z: &[Vec<f64>], y: &[usize], idx: &[usize], t: f64) -> f64 {
    let mut total = 0.0;
    for &i in idx {
        let max = z[i].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = z[i]
            .iter()
            .map(|&v| ((v - max) / t).exp())
            .sum::<f64>()
            .ln();
        total += lse - (z[i][y[i]] - max) / t;
    }
    total / idx.len().max(1) as f64
}

/// The temperature in [`T_RANGE`] with the lowest NLL on the films `idx`, and whether it sits
/// at an end of the range (the site's films then say "even more/less confident than allowed").
/// The NLL is convex in 1/t, so a golden-section search on 1/t finds the minimum.
pub fn fit_temperature(z: &[Vec<f64>], y: &[usize], idx: &[usize]) -> (f64, bool) {
    let (mut a, mut b) = (1.0 / T_RANGE.1, 1.0 / T_RANGE.0);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let f = |beta: f64| nll(z, y, idx, 1.0 / beta);
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-6 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    let t = 2.0 / (a + b);
    let at_bound = t <= T_RANGE.0 * 1.001 || t >= T_RANGE.1 * 0.999;
    (t, at_bound)
}

/// Share of `scores` at or above `t`; `None` when there are none.
pub fn share_at_or_above(scores: impl Iterator<Item = f64>, t: f64) -> Option<f64> {
    let (mut n, mut k) = (0usize, 0usize);
    for s in scores {
        n += 1;
        k += usize::from(s >= t);
    }
    (n > 0).then(|| k as f64 / n as f64)
}

/// One-vs-rest ROC AUC (Mann-Whitney, ties count half); `None` without both classes.
pub fn auc(scored: &mut [(f64, bool)]) -> Option<f64> {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let npos = scored.iter().filter(|s| s.1).count();
    let nneg = scored.len() - npos;
    if npos == 0 || nneg == 0 {
        return None;
    }
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * scored[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    let u = rank_sum - (npos * (npos + 1)) as f64 / 2.0;
    Some(u / (npos as f64 * nneg as f64))
}

/// SplitMix64 (the photo simulator's generator, started from the raw seed): small, seeded, the
/// same on every platform.
pub struct Rng(crate::film::simulate::Rng);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(crate::film::simulate::Rng::from_state(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is below 2^-40 for any n here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The 2.5th and 97.5th percentiles (linear interpolation, as numpy's default) of the values
/// that are numbers; `None` when fewer than half the replicates gave one.
pub fn ci95(values: &[f64], reps: usize) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = values.iter().cloned().filter(|x| x.is_finite()).collect();
    if v.is_empty() || v.len() * 2 < reps {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q = |q: f64| {
        let pos = q * (v.len() - 1) as f64;
        let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
        let hi = (lo + 1).min(v.len() - 1);
        v[lo] + (v[hi] - v[lo]) * frac
    };
    Some([q(0.025), q(0.975)])
}

/// A patient-level bootstrap sample: patients drawn with replacement, each with all its films.
pub fn resample(members: &[Vec<usize>], rng: &mut Rng) -> Vec<usize> {
    let mut idx = Vec::new();
    for _ in 0..members.len() {
        idx.extend_from_slice(&members[rng.below(members.len())]);
    }
    idx
}

/// Films grouped by patient: `group[i]` is film i's patient number, `0..n_groups`.
pub fn members(group: &[usize], n_groups: usize) -> Vec<Vec<usize>> {
    let mut m = vec![Vec::new(); n_groups];
    for (i, &g) in group.iter().enumerate() {
        m[g].push(i);
    }
    m.retain(|v| !v.is_empty());
    m
}

/// Why a site's films cannot give a profile. The command names it and exits with 2.
#[derive(Debug, Error, PartialEq)]
pub enum Refusal {
    /// A label has some films, but too few to fit its operating point.
    #[error(
        "`{label}` has {positives} positive and {negatives} negative films; fitting its \
         operating point needs at least {min} of each (add films, or keep the shipped point \
         for it with --keep {label})"
    )]
    TooFew {
        /// The label.
        label: String,
        /// Films of that label.
        positives: usize,
        /// Films of the other labels.
        negatives: usize,
        /// The minimum (`--min-positives`).
        min: usize,
    },
    /// Too few films, or films of a single label: the temperature would be a guess.
    #[error(
        "{films} usable films of {labels} label(s); fitting a temperature needs at least \
         {need} films of at least two labels"
    )]
    TooFewFilms {
        /// Usable films.
        films: usize,
        /// Labels present among them.
        labels: usize,
        /// The minimum number of films (twice `--min-positives`).
        need: usize,
    },
}

/// What to fit: the site's films as logits (any constant offset per film), their label indices
/// and patient numbers, and the shipped calibration.
pub struct FitInput<'a> {
    /// Labels in manifest order.
    pub labels: &'a [String],
    /// Logits per film, in label order.
    pub z: Vec<Vec<f64>>,
    /// Label index per film.
    pub y: Vec<usize>,
    /// Patient number per film, `0..n_groups`.
    pub group: Vec<usize>,
    /// Number of patients.
    pub n_groups: usize,
    /// The manifest's operating points, in label order.
    pub shipped: Vec<f64>,
    /// Labels whose shipped operating point is to be kept (`--keep`).
    pub keep: Vec<bool>,
    /// Minimum positives and negatives for a label's point to be fitted.
    pub min_positives: usize,
    /// Bootstrap repetitions.
    pub reps: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

/// One label's operating point with its site figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelFit {
    /// Operating point on calibrated probabilities.
    pub value: f64,
    /// `None` when fitted on the site; else why the shipped point was kept.
    pub kept: Option<String>,
    /// The rule in words (or the reason it was kept).
    pub rule: String,
    /// Films of the label.
    pub positives: usize,
    /// Films of the other labels.
    pub negatives: usize,
    /// Sensitivity at `value`, and its bootstrap interval.
    pub sensitivity: (Option<f64>, Option<[f64; 2]>),
    /// Specificity at `value`, and its bootstrap interval.
    pub specificity: (Option<f64>, Option<[f64; 2]>),
    /// AUC, and its bootstrap interval.
    pub auc: (Option<f64>, Option<[f64; 2]>),
}

/// The fitted site calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Temperature, with its bootstrap interval.
    pub temperature: (f64, Option<[f64; 2]>),
    /// Whether the temperature sits at an end of [`T_RANGE`].
    pub at_bound: bool,
    /// Mean NLL at the shipped temperature and at the fitted one.
    pub nll: (f64, f64),
    /// One per label, in label order.
    pub labels: Vec<LabelFit>,
}

/// Fit the site's temperature and operating points, or say why not.
pub fn fit(input: &FitInput, shipped_t: f64) -> Result<Fit, Refusal> {
    let n = input.y.len();
    let present = (0..input.labels.len())
        .filter(|&k| input.y.contains(&k))
        .count();
    let need = 2 * input.min_positives;
    if n < need.max(2) || present < 2 {
        return Err(Refusal::TooFewFilms {
            films: n,
            labels: present,
            need,
        });
    }
    let all: Vec<usize> = (0..n).collect();
    let (t, at_bound) = fit_temperature(&input.z, &input.y, &all);
    let probs: Vec<Vec<f64>> = input.z.iter().map(|z| softmax(z, t)).collect();
    let mut labels = Vec::new();
    for (k, label) in input.labels.iter().enumerate() {
        let pos: Vec<f64> = (0..n)
            .filter(|&i| input.y[i] == k)
            .map(|i| probs[i][k])
            .collect();
        let neg: Vec<f64> = (0..n)
            .filter(|&i| input.y[i] != k)
            .map(|i| probs[i][k])
            .collect();
        let rule = Rule::for_label(label);
        let kept = if input.keep[k] {
            Some("shipped point kept (--keep)".to_string())
        } else if pos.is_empty() {
            Some("shipped point kept: no films of this label at the site".to_string())
        } else if rule.is_none() {
            Some("shipped point kept: no site rule for this label".to_string())
        } else if pos.len() < input.min_positives || neg.len() < input.min_positives {
            return Err(Refusal::TooFew {
                label: label.clone(),
                positives: pos.len(),
                negatives: neg.len(),
                min: input.min_positives,
            });
        } else {
            None
        };
        let (value, rule) = match (&kept, rule) {
            (None, Some(r)) => (r.threshold(&pos, &neg), r.describe()),
            (Some(why), _) => (input.shipped[k], why.clone()),
            (None, None) => unreachable!("a label without a rule is kept"),
        };
        labels.push(LabelFit {
            value,
            kept,
            rule,
            positives: pos.len(),
            negatives: neg.len(),
            sensitivity: (share_at_or_above(pos.iter().cloned(), value), None),
            specificity: (
                share_at_or_above(neg.iter().cloned(), value).map(|s| 1.0 - s),
                None,
            ),
            auc: (auc(&mut scored(&probs, &input.y, k, &all)), None),
        });
    }
    let t_ci = bootstrap(input, &probs, &mut labels);
    Ok(Fit {
        temperature: (t, t_ci),
        at_bound,
        nll: (
            nll(&input.z, &input.y, &all, shipped_t),
            nll(&input.z, &input.y, &all, t),
        ),
        labels,
    })
}

fn scored(probs: &[Vec<f64>], y: &[usize], k: usize, idx: &[usize]) -> Vec<(f64, bool)> {
    idx.iter().map(|&i| (probs[i][k], y[i] == k)).collect()
}

/// Patient-level bootstrap: the intervals of each label's sensitivity, specificity (at its
/// chosen point, which stays fixed) and AUC go into `labels`; returns the temperature's.
fn bootstrap(input: &FitInput, probs: &[Vec<f64>], labels: &mut [LabelFit]) -> Option<[f64; 2]> {
    let members = members(&input.group, input.n_groups);
    let mut rng = Rng::new(input.seed);
    let nl = labels.len();
    let (mut ts, mut se, mut sp, mut au) = (
        Vec::new(),
        vec![Vec::new(); nl],
        vec![Vec::new(); nl],
        vec![Vec::new(); nl],
    );
    for _ in 0..input.reps {
        let idx = resample(&members, &mut rng);
        ts.push(fit_temperature(&input.z, &input.y, &idx).0);
        for (k, l) in labels.iter().enumerate() {
            let of = |want: bool| {
                idx.iter()
                    .filter(move |&&i| (input.y[i] == k) == want)
                    .map(move |&i| probs[i][k])
            };
            se[k].push(share_at_or_above(of(true), l.value).unwrap_or(f64::NAN));
            sp[k].push(share_at_or_above(of(false), l.value).map_or(f64::NAN, |s| 1.0 - s));
            au[k].push(auc(&mut scored(probs, &input.y, k, &idx)).unwrap_or(f64::NAN));
        }
    }
    for (k, l) in labels.iter_mut().enumerate() {
        if l.sensitivity.0.is_some() {
            l.sensitivity.1 = ci95(&se[k], input.reps);
        }
        if l.specificity.0.is_some() {
            l.specificity.1 = ci95(&sp[k], input.reps);
        }
        if l.auc.0.is_some() {
            l.auc.1 = ci95(&au[k], input.reps);
        }
    }
    ci95(&ts, input.reps)
}

#[cfg(test)]
mod tests;
