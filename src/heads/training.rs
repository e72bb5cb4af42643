//! Fits one head per layer on cached sentence-prefix features, choosing the L2 penalty, the
//! calibration temperature, the feature kind and the best layer by **cross-fitting** on the
//! training documents, so the dev data is left for the exit calibration alone.
//!
//! The training documents are split into [`FOLDS`] folds (by a hash of the document, so all
//! prefixes of a document stay together). For every penalty, a head fitted on the other folds
//! gives each fold's logits; the penalty with the best accuracy over these out-of-fold logits
//! wins, the temperature is fitted on them, and the final head is fitted on all training
//! documents. The out-of-fold probabilities are also what the learned exit rule is trained on:
//! they come from heads that never saw the document, as the probabilities of new documents do
//! (the heads are over-confident on their own training prefixes).

use ndarray::{Array2, Axis};

use serde::{Deserialize, Serialize};

use super::logistic::{
    FitOptions, LayerHead, LinearHead, Standardizer, accuracy, fit_logistic, fit_temperature,
    softmax,
};
use crate::features::FeatureKind;
use crate::features::extraction::PrefixSet;
use crate::threads::map_in_parallel;

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
    /// L2 penalty chosen (by cross-fitting on train; on dev in format 1 packs).
    pub l2: f64,
    /// Calibration temperature (fitted on the cross-fitted logits; on dev in format 1 packs).
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
    /// Cross-fitted accuracy on the training data over all prefixes (absent in format 1 packs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_fitted_accuracy_prefixes: Option<f64>,
    /// Cross-fitted accuracy on whole training documents (absent in format 1 packs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_fitted_accuracy_full: Option<f64>,
}

/// Folds of the cross-fitting.
pub const FOLDS: usize = 2;

/// The fold of a training document: a hash of its index, so that files sorted by label or
/// source still give balanced folds.
pub fn fold_of(document: usize) -> usize {
    let mut hash = document as u64 ^ 0x9e37_79b9_7f4a_7c15;
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash % FOLDS as u64) as usize
}

/// Heads of one feature kind with their reports.
#[derive(Debug, Clone)]
pub struct TrainedHeads {
    /// The feature kind.
    pub kind: FeatureKind,
    /// One head per layer.
    pub heads: Vec<LayerHead>,
    /// One report per layer.
    pub reports: Vec<LayerReport>,
    /// Per layer, the calibrated class probabilities of every training row (`rows × classes`)
    /// from the heads of the other folds.
    pub out_of_fold: Vec<Array2<f32>>,
}

impl TrainedHeads {
    /// Mean cross-fitted accuracy over layers and sentence prefixes: how well this kind serves
    /// early exits as a whole.
    pub fn mean_prefix_accuracy(&self) -> f64 {
        self.reports
            .iter()
            .map(|report| {
                report
                    .cross_fitted_accuracy_prefixes
                    .unwrap_or(report.dev_accuracy_prefixes)
            })
            .sum::<f64>()
            / self.reports.len().max(1) as f64
    }

    /// The layer with the best cross-fitted accuracy on whole documents (the earliest on ties).
    pub fn best_layer(&self) -> usize {
        self.reports
            .iter()
            .enumerate()
            .fold(
                (0, f64::NEG_INFINITY),
                |(best, best_accuracy), (layer, report)| {
                    let accuracy = report
                        .cross_fitted_accuracy_full
                        .unwrap_or(report.dev_accuracy_full);
                    if accuracy > best_accuracy + 1e-12 {
                        (layer, accuracy)
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

/// What training one layer gives: the final head, its report, and the out-of-fold
/// probabilities of the training rows.
type TrainedLayer = (LayerHead, LayerReport, Array2<f32>);

/// Trains the head of one layer by cross-fitting (see the module docs): the L2 penalty by the
/// out-of-fold accuracy over all training prefixes, the temperature on the out-of-fold logits,
/// the final head on every training row; the dev rows are only measured.
pub fn train_layer(
    train: &PrefixSet,
    dev: &PrefixSet,
    layer: usize,
    classes: usize,
) -> TrainedLayer {
    let folds: Vec<usize> = train
        .documents
        .iter()
        .map(|&document| fold_of(document))
        .collect();
    let fold_rows: Vec<(Vec<usize>, Vec<usize>)> = (0..FOLDS)
        .map(|fold| {
            let (held_out, fitted): (Vec<usize>, Vec<usize>) =
                (0..train.len()).partition(|&row| folds[row] == fold);
            (fitted, held_out)
        })
        .collect();
    // Each fold's standardised fitting and held-out rows, computed once for all penalties.
    let prepared: Vec<(Array2<f32>, Vec<usize>, Array2<f32>)> = fold_rows
        .iter()
        .map(|(fitted, held_out)| {
            let fitted_rows = rows(&train.layers[layer], fitted);
            let standardizer = Standardizer::fit(fitted_rows.view());
            (
                standardizer.apply(fitted_rows.view()),
                labels_of(&train.labels, fitted),
                standardizer.apply(rows(&train.layers[layer], held_out).view()),
            )
        })
        .collect();
    let mut best: Option<(f64, f64, Array2<f32>, LinearHead)> = None;
    let mut previous: Vec<Option<LinearHead>> = vec![None; FOLDS];
    for l2 in L2_GRID {
        let options = FitOptions {
            l2,
            ..FitOptions::default()
        };
        let mut out_of_fold = Array2::<f32>::zeros((train.len(), classes));
        for (fold, ((fitted, fitted_labels, held_out), (_, held_out_rows))) in
            prepared.iter().zip(&fold_rows).enumerate()
        {
            if fitted_labels.is_empty() || held_out_rows.is_empty() {
                continue;
            }
            let head = fit_logistic(
                fitted.view(),
                fitted_labels,
                classes,
                &options,
                previous[fold].as_ref(),
            );
            let logits = head.logits(held_out.view());
            for (position, &row) in held_out_rows.iter().enumerate() {
                out_of_fold.row_mut(row).assign(&logits.row(position));
            }
            previous[fold] = Some(head);
        }
        let cross_fitted = accuracy(out_of_fold.view(), &train.labels);
        // Strictly better only: on ties the stronger penalty (seen first) stays.
        if best
            .as_ref()
            .is_none_or(|(accuracy, _, _, _)| cross_fitted > *accuracy)
        {
            let start = previous[0]
                .clone()
                .unwrap_or_else(|| LinearHead::zeros(classes, 0));
            best = Some((cross_fitted, l2, out_of_fold, start));
        }
    }
    let standardizer = Standardizer::fit(train.layers[layer].view());
    let train_features = standardizer.apply(train.layers[layer].view());
    let (cross_fitted_prefixes, l2, out_of_fold_logits, start) = best.unwrap_or((
        f64::NAN,
        L2_GRID[0],
        Array2::zeros((train.len(), classes)),
        LinearHead::zeros(classes, 0),
    ));
    let temperature = fit_temperature(out_of_fold_logits.view(), &train.labels);
    // The fold heads' weights are a good start (same penalty, half the rows, standardised
    // alike up to the fold's statistics).
    let start = (start.weights.ncols() == train_features.ncols()).then_some(start);
    let mut head = fit_logistic(
        train_features.view(),
        &train.labels,
        classes,
        &FitOptions {
            l2,
            ..FitOptions::default()
        },
        start.as_ref(),
    );
    head.temperature = temperature;
    let out_of_fold = Array2::from_shape_fn((train.len(), classes), |(row, class)| {
        let probabilities = softmax(out_of_fold_logits.row(row), temperature);
        probabilities[class]
    });
    let cross_fitted = accuracy_of_logits(&out_of_fold_logits, train);
    let dev_features = standardizer.apply(dev.layers[layer].view());
    let dev_logits = head.logits(dev_features.view());
    let dev_accuracy = accuracy_of_logits(&dev_logits, dev);
    let report = LayerReport {
        layer,
        l2,
        temperature,
        dev_accuracy_prefixes: dev_accuracy.prefixes,
        dev_accuracy_full: dev_accuracy.full,
        dev_accuracy_1: dev_accuracy.after_1,
        dev_accuracy_2: dev_accuracy.after_2,
        dev_accuracy_4: dev_accuracy.after_4,
        cross_fitted_accuracy_prefixes: Some(cross_fitted_prefixes),
        cross_fitted_accuracy_full: Some(cross_fitted.full),
    };
    (LayerHead { standardizer, head }, report, out_of_fold)
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
    let layers: Vec<usize> = (0..train.layers.len()).collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = map_in_parallel(&layers, threads, |&layer| {
        let trained = train_layer(train, dev, layer, classes);
        progress(done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
        trained
    });
    let mut trained = TrainedHeads {
        kind: train.kind,
        heads: Vec::with_capacity(layers.len()),
        reports: Vec::with_capacity(layers.len()),
        out_of_fold: Vec::with_capacity(layers.len()),
    };
    for (head, report, out_of_fold) in results {
        trained.heads.push(head);
        trained.reports.push(report);
        trained.out_of_fold.push(out_of_fold);
    }
    trained
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 60 documents of two prefixes; each document has a feature of its own and a label
    /// unrelated to anything else: a head memorises the documents it is fitted on and knows
    /// nothing of the others.
    fn memorisable() -> PrefixSet {
        let documents = 60;
        let rows = documents * 2;
        let matrix =
            Array2::from_shape_fn(
                (rows, documents),
                |(row, column)| {
                    if row / 2 == column { 3.0 } else { 0.0 }
                },
            );
        PrefixSet {
            kind: FeatureKind::MeanTokens,
            layers: vec![matrix],
            labels: (0..rows).map(|row| (row / 2) % 2).collect(),
            documents: (0..rows).map(|row| row / 2).collect(),
            sentences_read: (0..rows).map(|row| row % 2 + 1).collect(),
            sentences_total: vec![2; rows],
        }
    }

    #[test]
    fn folds_keep_documents_whole_and_are_balanced() {
        let counts = (0..1000).fold([0usize; FOLDS], |mut counts, document| {
            counts[fold_of(document)] += 1;
            counts
        });
        assert!(
            counts.iter().all(|&count| (400..=600).contains(&count)),
            "{counts:?}"
        );
        assert_eq!(fold_of(17), fold_of(17));
    }

    #[test]
    fn out_of_fold_probabilities_come_from_heads_that_did_not_see_the_document() {
        let set = memorisable();
        // The dev set is the training set here: the final head, fitted on every document,
        // knows them all.
        let (head, report, out_of_fold) = train_layer(&set, &set, 0, 2);
        assert!(report.dev_accuracy_prefixes > 0.95, "{report:?}");
        // The out-of-fold probabilities come from heads that never saw the document: they
        // cannot know its label, and are right about as often as a coin.
        let cross_fitted = report.cross_fitted_accuracy_prefixes.expect("cross-fitted");
        assert!(cross_fitted < 0.7, "{report:?}");
        let right = (0..set.len())
            .filter(|&row| out_of_fold[[row, set.labels[row]]] > 0.5)
            .count() as f64
            / set.len() as f64;
        assert!(
            (right - cross_fitted).abs() < 1e-9,
            "{right} vs {cross_fitted}"
        );
        // They are probabilities, calibrated by the fitted temperature.
        for row in out_of_fold.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        assert_eq!(head.head.temperature, report.temperature);
    }
}
