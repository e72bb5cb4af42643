//! Fits one head per layer on cached sentence-prefix features and chooses the feature kind,
//! the L2 penalty and the calibration temperature on dev data.

use ndarray::{Array2, Axis};

use serde::{Deserialize, Serialize};

use super::logistic::{
    FitOptions, LayerHead, LinearHead, Standardizer, accuracy, fit_logistic, fit_temperature,
};
use crate::features::FeatureKind;
use crate::features::extraction::PrefixSet;

/// L2 penalties tried per layer, strongest first (each fit starts from the previous one).
/// On the IMDB pack most layers chose the strongest penalty of a grid that started at 0.1, so
/// the grid reaches 3: hidden states of 640 dimensions overfit a few thousand documents easily.
pub const L2_GRID: [f64; 8] = [3.0, 1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3];

/// Per-layer facts of a trained head, as a pack stores them (`[[layers]]` of `adapter.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerReport {
    /// Layer index, from 0 (the pack format's numbering).
    pub layer: usize,
    /// L2 penalty chosen on dev.
    pub l2: f64,
    /// Calibration temperature fitted on dev.
    pub temperature: f32,
    /// Dev accuracy over all sentence prefixes.
    pub dev_accuracy_prefixes: f64,
    /// Dev accuracy on whole documents.
    pub dev_accuracy_full: f64,
    /// Dev accuracy after the first sentence.
    pub dev_accuracy_1: f64,
    /// Dev accuracy after two sentences.
    pub dev_accuracy_2: f64,
    /// Dev accuracy after four sentences.
    pub dev_accuracy_4: f64,
}

/// Heads of one feature kind with their dev reports.
#[derive(Debug, Clone)]
pub struct TrainedHeads {
    /// The feature kind.
    pub kind: FeatureKind,
    /// One head per layer.
    pub heads: Vec<LayerHead>,
    /// One report per layer.
    pub reports: Vec<LayerReport>,
}

impl TrainedHeads {
    /// Mean dev accuracy over layers and sentence prefixes: how well this kind serves early
    /// exits as a whole.
    pub fn mean_prefix_accuracy(&self) -> f64 {
        self.reports
            .iter()
            .map(|report| report.dev_accuracy_prefixes)
            .sum::<f64>()
            / self.reports.len().max(1) as f64
    }

    /// The layer with the best dev accuracy on whole documents (the earliest on ties).
    pub fn best_layer(&self) -> usize {
        self.reports
            .iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |(best, best_accuracy), (layer, report)| {
                    if report.dev_accuracy_full > best_accuracy + 1e-12 {
                        (layer, report.dev_accuracy_full)
                    } else {
                        (best, best_accuracy)
                    }
                },
            )
            .0
    }
}

fn rows(matrix: &Array2<f32>, rows: &[usize]) -> Array2<f32> {
    matrix.select(Axis(0), rows)
}

fn labels_of(labels: &[usize], rows: &[usize]) -> Vec<usize> {
    rows.iter().map(|&row| labels[row]).collect()
}

/// Accuracy of one layer's head on a prefix set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAccuracy {
    /// Over all sentence prefixes.
    pub prefixes: f64,
    /// On whole documents.
    pub full: f64,
    /// After the first sentence.
    pub after_1: f64,
    /// After two sentences.
    pub after_2: f64,
    /// After four sentences.
    pub after_4: f64,
}

fn accuracy_of_logits(logits: &Array2<f32>, set: &PrefixSet) -> LayerAccuracy {
    let accuracy_at = |sentences: Option<usize>| {
        let selected = set.rows_at(sentences);
        accuracy(
            rows(logits, &selected).view(),
            &labels_of(&set.labels, &selected),
        )
    };
    LayerAccuracy {
        prefixes: accuracy(logits.view(), &set.labels),
        full: accuracy_at(None),
        after_1: accuracy_at(Some(1)),
        after_2: accuracy_at(Some(2)),
        after_4: accuracy_at(Some(4)),
    }
}

/// Accuracy of `head` (the head of `layer`) on the rows of `set`.
pub fn evaluate_layer(head: &LayerHead, set: &PrefixSet, layer: usize) -> LayerAccuracy {
    let features = head.standardizer.apply(set.layers[layer].view());
    accuracy_of_logits(&head.head.logits(features.view()), set)
}

/// Trains the head of one layer: standardisation on train, L2 chosen by dev accuracy over all
/// prefixes, temperature fitted on dev.
pub fn train_layer(
    train: &PrefixSet,
    dev: &PrefixSet,
    layer: usize,
    classes: usize,
) -> (LayerHead, LayerReport) {
    let standardizer = Standardizer::fit(train.layers[layer].view());
    let train_features = standardizer.apply(train.layers[layer].view());
    let dev_features = standardizer.apply(dev.layers[layer].view());
    let mut best: Option<(f64, f64, LinearHead)> = None;
    let mut previous: Option<LinearHead> = None;
    for l2 in L2_GRID {
        let options = FitOptions {
            l2,
            ..FitOptions::default()
        };
        let head = fit_logistic(
            train_features.view(),
            &train.labels,
            classes,
            &options,
            previous.as_ref(),
        );
        let dev_accuracy = accuracy(head.logits(dev_features.view()).view(), &dev.labels);
        // Strictly better only: on ties the stronger penalty (seen first) stays.
        if best
            .as_ref()
            .is_none_or(|(accuracy, _, _)| dev_accuracy > *accuracy)
        {
            best = Some((dev_accuracy, l2, head.clone()));
        }
        previous = Some(head);
    }
    let (dev_accuracy_prefixes, l2, mut head) = best.unwrap_or((
        f64::NAN,
        L2_GRID[0],
        LinearHead::zeros(classes, dev_features.ncols()),
    ));
    let dev_logits = head.logits(dev_features.view());
    head.temperature = fit_temperature(dev_logits.view(), &dev.labels);
    let accuracy = accuracy_of_logits(&dev_logits, dev);
    let report = LayerReport {
        layer,
        l2,
        temperature: head.temperature,
        dev_accuracy_prefixes,
        dev_accuracy_full: accuracy.full,
        dev_accuracy_1: accuracy.after_1,
        dev_accuracy_2: accuracy.after_2,
        dev_accuracy_4: accuracy.after_4,
    };
    (LayerHead { standardizer, head }, report)
}

/// Trains every layer's head for one feature kind, spreading layers over `threads` threads.
/// `progress(layers_done)` is called as layers finish.
pub fn train_heads(
    train: &PrefixSet,
    dev: &PrefixSet,
    classes: usize,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> TrainedHeads {
    let layers = train.layers.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(vec![None; layers]);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, layers.max(1)) {
            scope.spawn(|| {
                loop {
                    let layer = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if layer >= layers {
                        break;
                    }
                    let trained = train_layer(train, dev, layer, classes);
                    if let Ok(mut results) = results.lock() {
                        results[layer] = Some(trained);
                    }
                    progress(done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
                }
            });
        }
    });
    let (heads, reports) = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .unzip();
    TrainedHeads {
        kind: train.kind,
        heads,
        reports,
    }
}
