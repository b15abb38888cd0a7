use super::*;

const LABELS: [&str; 4] = ["covid", "pneumonia", "normal", "other"];

fn labels() -> Vec<String> {
    LABELS.iter().map(|s| s.to_string()).collect()
}

/// A normal deviate (Box-Muller) from the crate's generator.
fn gauss(rng: &mut Rng) -> f64 {
    let u = rng.unit().max(1e-12);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.unit()).cos()
}

/// `n` films whose labels are drawn from softmax(true logits), so that temperature 1 is the
/// right one for the true logits; `scale` multiplies the logits handed over (the known shift).
/// `weights` thin out labels (a label with weight 0 never appears).
fn site(n: usize, scale: f64, weights: [f64; 4], seed: u64) -> (Vec<Vec<f64>>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let (mut z, mut y) = (Vec::new(), Vec::new());
    while y.len() < n {
        // A film "of" class c: its true logits lean towards c.
        let c = rng.below(4);
        let zt: Vec<f64> = (0..4)
            .map(|k| if k == c { 1.5 } else { 0.0 } + 1.2 * gauss(&mut rng))
            .collect();
        let p = softmax(&zt, 1.0);
        let (mut u, mut label) = (rng.unit(), 0);
        while label < 3 && u >= p[label] {
            u -= p[label];
            label += 1;
        }
        // Thin the labels to the site's mix (weights at most 1).
        if rng.unit() >= weights[label] {
            continue;
        }
        z.push(zt.iter().map(|v| v * scale).collect());
        y.push(label);
    }
    (z, y)
}

fn input<'a>(labels: &'a [String], z: Vec<Vec<f64>>, y: Vec<usize>, reps: usize) -> FitInput<'a> {
    let n = y.len();
    FitInput {
        labels,
        z,
        y,
        // Two films per patient: the bootstrap must keep them together.
        group: (0..n).map(|i| i / 2).collect(),
        n_groups: n.div_ceil(2),
        shipped: vec![0.3024, 0.2703, 0.3234, 0.9286],
        keep: vec![false; 4],
        min_positives: 20,
        reps,
        seed: 7,
    }
}

#[test]
fn the_temperature_recovers_a_known_scale() {
    for (scale, seed) in [(1.6, 1), (0.5, 2), (1.0, 3)] {
        let (z, y) = site(3000, scale, [1.0; 4], seed);
        let all: Vec<usize> = (0..y.len()).collect();
        let (t, at_bound) = fit_temperature(&z, &y, &all);
        assert!(!at_bound);
        assert!((t / scale - 1.0).abs() < 0.08, "scale {scale}: fitted {t}");
        // It is the minimum: a step either way costs likelihood.
        let best = nll(&z, &y, &all, t);
        assert!(best <= nll(&z, &y, &all, t * 1.02) && best <= nll(&z, &y, &all, t / 1.02));
    }
}

#[test]
fn a_temperature_outside_the_range_is_reported_at_its_bound() {
    // Labels that agree with the logits every time: the likelihood wants t -> 0.
    let z: Vec<Vec<f64>> = (0..40)
        .map(|i| (0..4).map(|k| if k == i % 4 { 3.0 } else { 0.0 }).collect())
        .collect();
    let y: Vec<usize> = (0..40).map(|i| i % 4).collect();
    let all: Vec<usize> = (0..40).collect();
    let (t, at_bound) = fit_temperature(&z, &y, &all);
    assert!(at_bound && (t - T_RANGE.0).abs() < 1e-3, "{t}");
}

#[test]
fn min_sensitivity_takes_the_highest_threshold_that_keeps_it() {
    // Positives 0.01, 0.02, ..., 0.20: sensitivity >= 0.90 keeps 18 of 20, so the 18th
    // highest (0.03) is the point; 0.99 keeps all 20 (0.01).
    let pos: Vec<f64> = (1..=20).map(|i| i as f64 / 100.0).collect();
    let neg = [0.5];
    assert_eq!(Rule::MinSensitivity(0.90).threshold(&pos, &neg), 0.03);
    assert_eq!(Rule::MinSensitivity(0.99).threshold(&pos, &neg), 0.01);
    // On any data: the sensitivity holds there, and the next positive up would break it.
    let mut rng = Rng::new(11);
    for _ in 0..50 {
        let pos: Vec<f64> = (0..37).map(|_| rng.unit()).collect();
        let t = Rule::MinSensitivity(0.9).threshold(&pos, &neg);
        assert!(share_at_or_above(pos.iter().cloned(), t).unwrap() >= 0.9);
        let above = pos
            .iter()
            .cloned()
            .filter(|&p| p > t + 1e-4)
            .fold(1.0, f64::min);
        assert!(share_at_or_above(pos.iter().cloned(), above).unwrap() < 0.9);
    }
}

#[test]
fn youden_takes_the_best_j_over_every_candidate() {
    let mut rng = Rng::new(5);
    for _ in 0..30 {
        let pos: Vec<f64> = (0..40).map(|_| (0.3 + 0.7 * rng.unit()).min(1.0)).collect();
        let neg: Vec<f64> = (0..60).map(|_| 0.7 * rng.unit()).collect();
        let j = |t: f64| {
            share_at_or_above(pos.iter().cloned(), t).unwrap()
                - share_at_or_above(neg.iter().cloned(), t).unwrap()
        };
        let t = Rule::Youden.threshold(&pos, &neg);
        let best = pos
            .iter()
            .chain(&neg)
            .map(|&v| j((v * 1e4).round() / 1e4))
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            (j(t) - best).abs() < 1e-12,
            "J {} at {t}, best {best}",
            j(t)
        );
    }
    // Separable: the point lies between the two groups.
    let t = Rule::Youden.threshold(&[0.8, 0.9, 0.95], &[0.1, 0.2, 0.3]);
    assert!(t > 0.3 && t <= 0.8, "{t}");
}

#[test]
fn auc_counts_pairs_with_ties_as_half() {
    let mut rng = Rng::new(9);
    let mut s: Vec<(f64, bool)> = (0..80)
        .map(|i| (((rng.unit() * 10.0).floor()) / 10.0, i % 3 == 0))
        .collect();
    let (mut wins, mut pairs) = (0.0, 0.0);
    for a in s.iter().filter(|x| x.1) {
        for b in s.iter().filter(|x| !x.1) {
            pairs += 1.0;
            wins += if a.0 > b.0 {
                1.0
            } else if a.0 == b.0 {
                0.5
            } else {
                0.0
            };
        }
    }
    assert!((auc(&mut s).unwrap() - wins / pairs).abs() < 1e-12);
    assert_eq!(auc(&mut [(0.1, true), (0.2, true)]), None);
}

#[test]
fn the_fit_is_deterministic_and_its_intervals_hold_the_estimates() {
    let l = labels();
    let (z, y) = site(800, 1.6, [1.0; 4], 21);
    let a = fit(&input(&l, z.clone(), y.clone(), 200), 0.7942).unwrap();
    let b = fit(&input(&l, z, y, 200), 0.7942).unwrap();
    assert_eq!(a, b, "same films, same seed, same profile");
    let (t, ci) = a.temperature;
    let [lo, hi] = ci.unwrap();
    assert!(lo <= t && t <= hi && lo < hi, "{lo} {t} {hi}");
    assert!(
        a.nll.1 <= a.nll.0,
        "the fitted temperature is at least as good"
    );
    for f in &a.labels {
        assert!(f.kept.is_none(), "{f:?}");
        for (est, ci) in [f.sensitivity, f.specificity, f.auc] {
            let (e, [lo, hi]) = (est.unwrap(), ci.unwrap());
            assert!(lo <= e && e <= hi, "{f:?}");
        }
    }
}

#[test]
fn too_few_films_are_refused_with_the_label_and_the_counts() {
    let l = labels();
    // `other` is rare: a few films, not enough for its point.
    let (z, y) = site(400, 1.0, [1.0, 1.0, 1.0, 0.03], 31);
    let few = y.iter().filter(|&&k| k == 3).count();
    assert!((1..20).contains(&few), "{few} `other` films");
    match fit(&input(&l, z.clone(), y.clone(), 10), 0.8) {
        Err(Refusal::TooFew {
            label, positives, ..
        }) => assert_eq!((label.as_str(), positives), ("other", few)),
        other => panic!("{other:?}"),
    }
    // --keep other: fitted, with `other` at its shipped point.
    let mut keep = input(&l, z, y, 10);
    keep.keep[3] = true;
    let f = fit(&keep, 0.8).unwrap();
    assert_eq!(f.labels[3].value, 0.9286);
    assert!(f.labels[3].rule.contains("--keep"));
    // Too few films at all, or only one label.
    let (z, y) = site(30, 1.0, [1.0; 4], 32);
    assert!(matches!(
        fit(&input(&l, z, y, 10), 0.8),
        Err(Refusal::TooFewFilms { films: 30, .. })
    ));
    let z = vec![vec![1.0, 0.0, 0.0, 0.0]; 60];
    assert!(matches!(
        fit(&input(&l, z, vec![0; 60], 10), 0.8),
        Err(Refusal::TooFewFilms { labels: 1, .. })
    ));
}

#[test]
fn a_label_absent_from_the_site_keeps_its_shipped_point() {
    let l = labels();
    let (z, y) = site(600, 1.0, [1.0, 1.0, 1.0, 0.0], 41);
    let f = fit(&input(&l, z, y, 10), 0.8).unwrap();
    let other = &f.labels[3];
    assert_eq!((other.value, other.positives), (0.9286, 0));
    assert!(other.kept.as_deref().unwrap().contains("no films"));
    assert!(f.labels[..3].iter().all(|x| x.kept.is_none()));
}

#[test]
fn the_bootstrap_resamples_whole_patients() {
    let group = vec![0, 0, 1, 2, 2, 2];
    let m = members(&group, 3);
    let mut rng = Rng::new(3);
    for _ in 0..20 {
        let idx = resample(&m, &mut rng);
        // Films 3, 4 and 5 are one patient: drawn together or not at all.
        let c = |f| idx.iter().filter(|&&i| i == f).count();
        assert!(c(3) == c(4) && c(4) == c(5) && c(0) == c(1));
    }
}
