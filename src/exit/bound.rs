//! Upper confidence bounds of a loss rate, for calibration with a guarantee.
//!
//! A setting's loss on a document is 0 or 1 (it answered worse than `full`, or differently).
//! Seeing `losses` out of `n` independent documents, the exact binomial (Clopper–Pearson) upper
//! bound at risk `delta` is the largest rate `p` with `P[Binomial(n, p) ≤ losses] ≥ delta`:
//! the true rate exceeds it with probability at most `delta`.

/// The Clopper–Pearson upper bound of a rate after `losses` of `n` trials, at risk `delta`
/// (0 < delta < 1). 1 when `n` is 0 or every trial was a loss.
pub fn clopper_pearson_upper(losses: usize, n: usize, delta: f64) -> f64 {
    if n == 0 || losses >= n {
        return 1.0;
    }
    let delta = delta.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
    if losses == 0 {
        // P[Binomial(n, p) = 0] = (1 - p)^n = delta.
        return 1.0 - delta.powf(1.0 / n as f64);
    }
    // The binomial CDF falls as p grows: bisect for the p where it crosses delta.
    let (mut low, mut high) = (losses as f64 / n as f64, 1.0);
    for _ in 0..200 {
        let middle = 0.5 * (low + high);
        if binomial_cdf(losses, n, middle) > delta {
            low = middle;
        } else {
            high = middle;
        }
        if high - low < 1e-12 {
            break;
        }
    }
    high
}

/// `P[Binomial(n, p) ≤ k]`, summed in log space so that large `n` neither overflows nor
/// underflows.
pub fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    let (log_p, log_q) = (p.ln(), (-p).ln_1p());
    // log C(n, i), built up term by term.
    let mut log_choose = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(log_choose + i as f64 * log_p + (n - i) as f64 * log_q);
    }
    let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|term| (term - largest).exp()).sum();
    (largest + sum.ln()).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clopper_pearson_matches_hand_computed_values() {
        // Computed with exact binomial sums (Python's math.comb) and bisection.
        for (losses, n, delta, expected) in [
            (1, 10, 0.05, 0.394163),
            (0, 1000, 0.1, 0.002300),
            (5, 1000, 0.1, 0.009255),
            (6, 1000, 0.1, 0.010508),
            (3, 500, 0.1, 0.013312),
            (0, 330, 0.1, 0.006953),
            (1, 330, 0.1, 0.011736),
            (20, 100, 0.05, 0.277200),
            (300, 1000, 0.1, 0.319354),
        ] {
            let bound = clopper_pearson_upper(losses, n, delta);
            assert!(
                (bound - expected).abs() < 2e-6,
                "{losses}/{n} at {delta}: {bound} vs {expected}"
            );
        }
    }

    #[test]
    fn the_bound_behaves_at_the_edges() {
        assert_eq!(clopper_pearson_upper(0, 0, 0.1), 1.0);
        assert_eq!(clopper_pearson_upper(7, 7, 0.1), 1.0);
        // More evidence, a tighter bound; more losses, a looser one; more risk, tighter.
        assert!(clopper_pearson_upper(0, 2000, 0.1) < clopper_pearson_upper(0, 1000, 0.1));
        assert!(clopper_pearson_upper(3, 1000, 0.1) > clopper_pearson_upper(2, 1000, 0.1));
        assert!(clopper_pearson_upper(3, 1000, 0.2) < clopper_pearson_upper(3, 1000, 0.1));
        // The bound is above the observed rate.
        assert!(clopper_pearson_upper(50, 1000, 0.1) > 0.05);
    }

    #[test]
    fn the_binomial_cdf_sums_the_probabilities() {
        // n = 3, p = 0.5: P[X ≤ 1] = (1 + 3) / 8.
        assert!((binomial_cdf(1, 3, 0.5) - 0.5).abs() < 1e-12);
        assert_eq!(binomial_cdf(3, 3, 0.2), 1.0);
        assert!((binomial_cdf(0, 10, 0.1) - 0.9f64.powi(10)).abs() < 1e-12);
        // Large n stays finite.
        let tail = binomial_cdf(10, 100_000, 0.001);
        assert!(tail > 0.0 && tail < 1e-20, "{tail}");
    }
}
