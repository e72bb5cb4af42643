//! The figures of `exitwise eval` per policy: accuracy, macro-F1, exit statistics, wall-clock
//! and operation speed-ups, and the order statistics they use. Pure Rust over per-document
//! results.

use serde::Serialize;

/// One policy's result on one document, with its time in every run.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentResult {
    /// True class.
    pub class: usize,
    /// Predicted class.
    pub predicted: usize,
    /// Number of the layer whose head answered, from 1 (0: the layer-0 head).
    pub exit_layer: usize,
    /// Sentences read (from 1).
    pub sentences_read: usize,
    /// Token×layer operations computed.
    pub token_layers: u64,
    /// Token×layer operations of the whole document at full depth.
    pub full_token_layers: u64,
    /// Milliseconds of each run.
    pub milliseconds: Vec<f64>,
}

/// A policy's figures over a data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySummary {
    /// Share of documents answered correctly.
    pub accuracy: f64,
    /// Mean over classes of the per-class F1 score.
    pub macro_f1: f64,
    /// Documents per second (documents over the median, across runs, of the total time).
    pub docs_per_s: f64,
    /// Median over documents of the per-document median time (ms).
    pub ms_median: f64,
    /// 90th percentile over documents of the per-document median time (ms).
    pub ms_p90: f64,
    /// Share of documents the layer-0 head answered (before any model layer).
    pub layer_zero_share: f64,
    /// Mean number (from 1; 0 for the layer-0 head) of the answering head's layer.
    pub mean_exit_layer: f64,
    /// Median number (from 1) of the answering head's layer.
    pub median_exit_layer: f64,
    /// Mean number of sentences read.
    pub mean_sentences_read: f64,
    /// Median number of sentences read.
    pub median_sentences_read: f64,
    /// Mean token×layer operations per document.
    pub token_layers_mean: f64,
    /// Median total time of `full` over this policy's (runs' medians).
    pub speedup_vs_full_wall: Option<f64>,
    /// Median total time of `layer` over this policy's.
    pub speedup_vs_layer_wall: Option<f64>,
    /// Operations of `full` over this policy's.
    pub speedup_vs_full_ops: Option<f64>,
    /// Operations of `layer` over this policy's.
    pub speedup_vs_layer_ops: Option<f64>,
    /// Median, across runs, of the total seconds over all documents.
    pub total_seconds: f64,
    /// Total token×layer operations.
    pub token_layers_total: u64,
}

/// The median of `values` (the mean of the middle two for an even count; NaN when empty: a
/// median of nothing is not a number).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    match count {
        0 => f64::NAN,
        _ if count % 2 == 1 => sorted[count / 2],
        _ => (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0,
    }
}

/// The `quantile` (0..=1) of `values` by linear interpolation between order statistics (NaN
/// when empty).
pub fn quantile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = quantile.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}

/// Mean over classes of the F1 score; classes that occur neither as truth nor as prediction
/// are left out (they have no F1).
pub fn macro_f1(pairs: &[(usize, usize)], classes: usize) -> f64 {
    let mut scores = Vec::new();
    for class in 0..classes {
        let true_positive = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth == class && predicted == class)
            .count();
        let false_positive = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth != class && predicted == class)
            .count();
        let false_negative = pairs
            .iter()
            .filter(|&&(truth, predicted)| truth == class && predicted != class)
            .count();
        let denominator = 2 * true_positive + false_positive + false_negative;
        if denominator > 0 {
            scores.push(2.0 * true_positive as f64 / denominator as f64);
        }
    }
    if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

/// Summarises one policy's per-document results; `full` and `layer` are the references of the
/// speed-ups (absent when those policies were not run).
pub fn summarise(
    results: &[DocumentResult],
    classes: usize,
    full: Option<&[DocumentResult]>,
    layer: Option<&[DocumentResult]>,
) -> PolicySummary {
    let count = results.len().max(1) as f64;
    let pairs: Vec<(usize, usize)> = results
        .iter()
        .map(|result| (result.class, result.predicted))
        .collect();
    let correct = pairs
        .iter()
        .filter(|(truth, predicted)| truth == predicted)
        .count();
    let per_document: Vec<f64> = results
        .iter()
        .map(|result| median(&result.milliseconds))
        .collect();
    let seconds = total_seconds(results);
    let token_layers_total: u64 = results.iter().map(|result| result.token_layers).sum();
    let exit_layers: Vec<f64> = results
        .iter()
        .map(|result| result.exit_layer as f64)
        .collect();
    let sentences: Vec<f64> = results
        .iter()
        .map(|result| result.sentences_read as f64)
        .collect();
    let ratio = |reference: Option<&[DocumentResult]>,
                 measure: &dyn Fn(&[DocumentResult]) -> f64| {
        reference.map(|reference| {
            let own = measure(results);
            if own > 0.0 {
                measure(reference) / own
            } else {
                f64::INFINITY
            }
        })
    };
    let operations =
        |set: &[DocumentResult]| set.iter().map(|result| result.token_layers as f64).sum();
    PolicySummary {
        accuracy: correct as f64 / count,
        macro_f1: macro_f1(&pairs, classes),
        docs_per_s: if seconds > 0.0 {
            results.len() as f64 / seconds
        } else {
            0.0
        },
        ms_median: median(&per_document),
        ms_p90: quantile(&per_document, 0.9),
        layer_zero_share: results
            .iter()
            .filter(|result| result.exit_layer == 0)
            .count() as f64
            / count,
        mean_exit_layer: exit_layers.iter().sum::<f64>() / count,
        median_exit_layer: median(&exit_layers),
        mean_sentences_read: sentences.iter().sum::<f64>() / count,
        median_sentences_read: median(&sentences),
        token_layers_mean: token_layers_total as f64 / count,
        speedup_vs_full_wall: ratio(full, &total_seconds),
        speedup_vs_layer_wall: ratio(layer, &total_seconds),
        speedup_vs_full_ops: ratio(full, &operations),
        speedup_vs_layer_ops: ratio(layer, &operations),
        total_seconds: seconds,
        token_layers_total,
    }
}

/// The median, across runs, of the total time over all documents (seconds).
fn total_seconds(results: &[DocumentResult]) -> f64 {
    let runs = results
        .iter()
        .map(|result| result.milliseconds.len())
        .max()
        .unwrap_or(0);
    let totals: Vec<f64> = (0..runs)
        .map(|run| {
            results
                .iter()
                .filter_map(|result| result.milliseconds.get(run))
                .sum::<f64>()
                / 1000.0
        })
        .collect();
    median(&totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        class: usize,
        predicted: usize,
        token_layers: u64,
        milliseconds: &[f64],
    ) -> DocumentResult {
        DocumentResult {
            class,
            predicted,
            exit_layer: 2,
            sentences_read: 1,
            token_layers,
            full_token_layers: 100,
            milliseconds: milliseconds.to_vec(),
        }
    }

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.9), 4.6);
        assert_eq!(quantile(&[7.0], 0.9), 7.0);
    }

    #[test]
    fn macro_f1_matches_a_hand_computation() {
        // Class 0: TP 2, FP 1, FN 0 → F1 0.8; class 1: TP 1, FP 0, FN 1 → F1 2/3.
        let pairs = [(0, 0), (0, 0), (1, 0), (1, 1)];
        assert!((macro_f1(&pairs, 2) - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // A class never seen is left out.
        assert!((macro_f1(&pairs, 3) - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn summaries_count_accuracy_time_and_speedups() {
        let full = vec![
            result(0, 0, 100, &[10.0, 12.0]),
            result(1, 1, 100, &[10.0, 8.0]),
        ];
        let fast = vec![result(0, 0, 25, &[2.0, 3.0]), result(1, 0, 50, &[5.0, 4.0])];
        let summary = summarise(&fast, 2, Some(&full), None);
        assert_eq!(summary.accuracy, 0.5);
        // Run totals 7 ms and 7 ms → 0.007 s; full: 20 and 20 ms.
        assert!((summary.total_seconds - 0.007).abs() < 1e-12);
        assert!((summary.docs_per_s - 2.0 / 0.007).abs() < 1e-6);
        assert!((summary.speedup_vs_full_wall.expect("full") - 20.0 / 7.0).abs() < 1e-9);
        assert!((summary.speedup_vs_full_ops.expect("full") - 200.0 / 75.0).abs() < 1e-12);
        assert_eq!(summary.speedup_vs_layer_wall, None);
        // Per-document medians 2.5 and 4.5.
        assert_eq!(summary.ms_median, 3.5);
        assert_eq!(summary.token_layers_mean, 37.5);
    }
}
