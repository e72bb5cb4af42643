//! The layer-0 head: a multinomial logistic regression on the hashed TF-IDF n-grams of a
//! document's token ids ([`crate::features::lexical`]). It answers before layer 1, at no
//! transformer cost, and is trained like the layer heads: the penalty and the temperature are
//! chosen by cross-fitting on the training documents (the same folds,
//! [`super::training::fold_of`]), whose out-of-fold probabilities the calibration's training
//! side sees; the final head is fitted on every training document.
//!
//! Sparse rows would make a dense matrix of documents × 2^18 buckets (5 GB for 5,000
//! documents), so the objective is computed here over sparse rows and minimised by the same
//! L-BFGS as the layer heads.

use ndarray::{Array1, Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use super::logistic::{StableExponentials, accuracy, fit_temperature, minimize_lbfgs, softmax};
use super::training::{FOLDS, fold_of};
use crate::features::lexical::{SparseVector, bucket_counts, inverse_document_frequencies, tf_idf};

/// L2 penalties tried, strongest first (each fit starts from the previous one). In the mean
/// loss's scale: scikit-learn's default `C = 1` on 5,000 documents is `1 / 5000 = 2e-4`.
pub const L2_GRID: [f64; 7] = [1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6];

/// Most L-BFGS iterations per fit.
const MAX_ITERATIONS: usize = 200;

/// The layer-0 head: IDF weights, then a linear classifier with a temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHead {
    /// Inverse document frequency of every bucket (its length is the number of buckets, a
    /// power of two).
    pub idf: Vec<f32>,
    /// `classes × buckets`.
    pub weights: Array2<f32>,
    /// One bias per class.
    pub bias: Array1<f32>,
    /// Logits are divided by this before the softmax.
    pub temperature: f32,
}

impl LexicalHead {
    /// Buckets of the hashed n-gram space.
    pub fn buckets(&self) -> usize {
        self.idf.len()
    }

    /// Classes it tells apart.
    pub fn classes(&self) -> usize {
        self.bias.len()
    }

    /// The TF-IDF vector of a document's token ids.
    pub fn vector(&self, tokens: &[u32]) -> SparseVector {
        tf_idf(&bucket_counts(tokens, self.buckets()), &self.idf)
    }

    /// Raw logits (before temperature) of a TF-IDF vector.
    pub fn logits(&self, vector: &SparseVector) -> Array1<f32> {
        let mut logits = self.bias.clone();
        for (class, logit) in logits.iter_mut().enumerate() {
            let row = self.weights.row(class);
            *logit += vector
                .indices
                .iter()
                .zip(&vector.values)
                .map(|(&index, &value)| value * row[index as usize])
                .sum::<f32>();
        }
        logits
    }

    /// Calibrated class probabilities of a document given by its token ids.
    pub fn probabilities(&self, tokens: &[u32]) -> Vec<f32> {
        softmax(self.logits(&self.vector(tokens)).view(), self.temperature).to_vec()
    }

    /// Checks the shapes agree and every value is finite.
    pub fn validate(&self) -> Result<(), String> {
        let buckets = self.buckets();
        if !buckets.is_power_of_two() {
            return Err(format!(
                "the layer-0 head has {buckets} buckets, not a power of two"
            ));
        }
        if self.weights.dim() != (self.classes(), buckets) {
            return Err(format!(
                "the layer-0 head's weights are {:?}, not {} classes × {buckets} buckets",
                self.weights.dim(),
                self.classes()
            ));
        }
        let finite = self
            .idf
            .iter()
            .all(|value| value.is_finite() && *value > 0.0)
            && self.weights.iter().all(|value| value.is_finite())
            && self.bias.iter().all(|value| value.is_finite())
            && self.temperature.is_finite()
            && self.temperature > 0.0;
        if !finite {
            return Err("the layer-0 head holds non-finite or non-positive values".into());
        }
        Ok(())
    }
}

/// What a pack records about its layer-0 head (`[layer_zero]` of `adapter.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LexicalReport {
    /// What the head reads.
    pub features: String,
    /// Buckets of the hashed n-gram space.
    pub buckets: usize,
    /// L2 penalty chosen by cross-fitting.
    pub l2: f64,
    /// Calibration temperature, fitted on the cross-fitted logits.
    pub temperature: f32,
    /// Training documents.
    pub training_documents: usize,
    /// Cross-fitted accuracy on the training documents.
    pub cross_fitted_accuracy: f64,
    /// Accuracy on the dev documents.
    pub dev_accuracy: Option<f64>,
    /// Weights with a magnitude above 1e-6 (the rest could be left out).
    pub nonzero_weights: usize,
}

/// What [`LexicalReport::features`] says of the features this build computes.
pub const LEXICAL_FEATURES: &str =
    "hashed token-id unigrams and bigrams, sublinear TF × smoothed IDF, unit length";

/// A training document: its position in the data file (which decides its fold), its token ids
/// as the classifier feeds them, and its class.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalDocument {
    /// Position in the data file.
    pub index: usize,
    /// Token ids.
    pub tokens: Vec<u32>,
    /// True class.
    pub class: usize,
}

/// A trained layer-0 head with its report and the training documents' out-of-fold
/// probabilities.
#[derive(Debug, Clone)]
pub struct TrainedLexicalHead {
    /// The head fitted on every training document.
    pub head: LexicalHead,
    /// Its report (without dev accuracy).
    pub report: LexicalReport,
    /// Per training document (in the order given), calibrated probabilities from the head that
    /// did not see it.
    pub out_of_fold: Vec<Vec<f32>>,
}

/// Mean cross-entropy plus `l2 / 2 · ‖W‖²` over sparse rows, and its gradient, for the head
/// packed in `parameters` (weights `classes × buckets` row-major, then biases).
pub fn sparse_logistic_objective(
    rows: &[SparseVector],
    labels: &[usize],
    classes: usize,
    buckets: usize,
    l2: f64,
    parameters: &[f64],
) -> (f64, Vec<f64>) {
    let mut gradient = vec![0f64; parameters.len()];
    let mut loss = 0f64;
    let mut logits = vec![0f64; classes];
    for (row, &label) in rows.iter().zip(labels) {
        for (class, logit) in logits.iter_mut().enumerate() {
            let weights = &parameters[class * buckets..(class + 1) * buckets];
            *logit = parameters[classes * buckets + class]
                + row
                    .indices
                    .iter()
                    .zip(&row.values)
                    .map(|(&index, &value)| f64::from(value) * weights[index as usize])
                    .sum::<f64>();
        }
        let exponentials = StableExponentials::of(logits.iter().copied());
        loss += exponentials.log_sum_exp() - logits[label];
        for (class, probability) in exponentials.probabilities().enumerate() {
            let residual = probability - f64::from(u8::from(class == label));
            let weights = &mut gradient[class * buckets..(class + 1) * buckets];
            for (&index, &value) in row.indices.iter().zip(&row.values) {
                weights[index as usize] += residual * f64::from(value);
            }
            gradient[classes * buckets + class] += residual;
        }
    }
    let count = rows.len().max(1) as f64;
    let mut penalty = 0f64;
    for (index, entry) in gradient.iter_mut().enumerate() {
        *entry /= count;
        if index < classes * buckets {
            let weight = parameters[index];
            penalty += weight * weight;
            *entry += l2 * weight;
        }
    }
    (loss / count + 0.5 * l2 * penalty, gradient)
}

/// One fold of the cross-fitting: the other folds' rows fit, this fold's rows are held out.
struct FoldSides {
    fitting_rows: Vec<SparseVector>,
    fitting_labels: Vec<usize>,
    held: Vec<usize>,
    held_rows: Vec<SparseVector>,
}

/// Fits weights and biases on sparse rows (temperature 1), from `start` or from zero.
fn fit(
    rows: &[SparseVector],
    labels: &[usize],
    classes: usize,
    buckets: usize,
    l2: f64,
    start: Option<Vec<f64>>,
) -> Vec<f64> {
    let mut parameters = start.unwrap_or_else(|| vec![0.0; classes * buckets + classes]);
    let objective = |parameters: &[f64]| {
        sparse_logistic_objective(rows, labels, classes, buckets, l2, parameters)
    };
    minimize_lbfgs(&objective, &mut parameters, MAX_ITERATIONS, 1e-6);
    parameters
}

fn head_from(parameters: &[f64], idf: Vec<f32>, classes: usize, temperature: f32) -> LexicalHead {
    let buckets = idf.len();
    let weights = Array2::from_shape_fn((classes, buckets), |(class, bucket)| {
        parameters[class * buckets + bucket] as f32
    });
    let bias = (0..classes)
        .map(|class| parameters[classes * buckets + class] as f32)
        .collect();
    LexicalHead {
        idf,
        weights,
        bias,
        temperature,
    }
}

/// Trains the layer-0 head on `documents` with `buckets` buckets (a power of two): for every
/// penalty of [`L2_GRID`], heads fitted on one fold give the other fold's logits (each fold
/// with IDF weights of the other fold only); the penalty with the best out-of-fold accuracy
/// wins, the temperature is fitted on its out-of-fold logits, and the final head is fitted on
/// every document.
///
/// # Panics
/// If `buckets` is not a power of two or a class is not below `classes`.
pub fn train_lexical_head(
    documents: &[LexicalDocument],
    classes: usize,
    buckets: usize,
) -> TrainedLexicalHead {
    assert!(buckets.is_power_of_two(), "buckets must be a power of two");
    assert!(documents.iter().all(|document| document.class < classes));
    let counts: Vec<Vec<(u32, u32)>> = documents
        .iter()
        .map(|document| bucket_counts(&document.tokens, buckets))
        .collect();
    let labels: Vec<usize> = documents.iter().map(|document| document.class).collect();
    let folds: Vec<usize> = documents
        .iter()
        .map(|document| fold_of(document.index))
        .collect();
    // Per fold: the rows of the other folds (the fitting side) and of this fold, vectorised
    // with the fitting side's IDF.
    let sides: Vec<FoldSides> = (0..FOLDS)
        .map(|fold| {
            let (held, fitting): (Vec<usize>, Vec<usize>) =
                (0..documents.len()).partition(|&row| folds[row] == fold);
            let idf = inverse_document_frequencies(
                fitting.iter().map(|&row| counts[row].as_slice()),
                buckets,
            );
            FoldSides {
                fitting_rows: fitting
                    .iter()
                    .map(|&row| tf_idf(&counts[row], &idf))
                    .collect(),
                fitting_labels: fitting.iter().map(|&row| labels[row]).collect(),
                held_rows: held.iter().map(|&row| tf_idf(&counts[row], &idf)).collect(),
                held,
            }
        })
        .collect();
    let mut best: Option<(f64, f64, Array2<f32>)> = None;
    let mut starts: Vec<Option<Vec<f64>>> = vec![None; FOLDS];
    for l2 in L2_GRID {
        let mut out_of_fold = Array2::<f32>::zeros((documents.len(), classes));
        for (fold, side) in sides.iter().enumerate() {
            let parameters = fit(
                &side.fitting_rows,
                &side.fitting_labels,
                classes,
                buckets,
                l2,
                starts[fold].take(),
            );
            let head = head_from(&parameters, vec![1.0; buckets], classes, 1.0);
            for (&row, vector) in side.held.iter().zip(&side.held_rows) {
                out_of_fold.row_mut(row).assign(&head.logits(vector));
            }
            starts[fold] = Some(parameters);
        }
        let score = accuracy(out_of_fold.view(), &labels);
        if best
            .as_ref()
            .is_none_or(|(best_score, _, _)| score > *best_score)
        {
            best = Some((score, l2, out_of_fold));
        }
    }
    let (cross_fitted_accuracy, l2, logits) = best.expect("the penalty grid is not empty");
    let temperature = fit_temperature(logits.view(), &labels);
    let idf = inverse_document_frequencies(counts.iter().map(Vec::as_slice), buckets);
    let rows: Vec<SparseVector> = counts.iter().map(|counts| tf_idf(counts, &idf)).collect();
    let parameters = fit(&rows, &labels, classes, buckets, l2, None);
    let head = head_from(&parameters, idf, classes, temperature);
    let nonzero_weights = head
        .weights
        .iter()
        .filter(|weight| weight.abs() > 1e-6)
        .count();
    let out_of_fold = logits
        .rows()
        .into_iter()
        .map(|row: ArrayView1<'_, f32>| softmax(row, temperature).to_vec())
        .collect();
    TrainedLexicalHead {
        head,
        report: LexicalReport {
            features: LEXICAL_FEATURES.to_string(),
            buckets,
            l2,
            temperature,
            training_documents: documents.len(),
            cross_fitted_accuracy,
            dev_accuracy: None,
            nonzero_weights,
        },
        out_of_fold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::lexical::{Gram, bucket_of};

    #[test]
    fn the_objective_matches_hand_computed_values_and_its_gradient() {
        // One row with value 1 in bucket 1, two classes, two buckets: logits (w01 + b0, w11 + b1).
        let rows = vec![SparseVector {
            indices: vec![1],
            values: vec![1.0],
        }];
        let parameters = [0.0, 0.5, 0.0, -0.5, 0.1, 0.0];
        let (loss, gradient) = sparse_logistic_objective(&rows, &[0], 2, 2, 0.2, &parameters);
        let (first, second) = (0.6f64, -0.5f64);
        let probability = first.exp() / (first.exp() + second.exp());
        let expected = -probability.ln() + 0.1 * (0.25 + 0.25);
        assert!((loss - expected).abs() < 1e-9, "{loss} vs {expected}");
        // d/dw01 = p0 − 1 + 0.2 · 0.5; d/dw00 = 0; d/db1 = p1.
        assert!((gradient[1] - (probability - 1.0 + 0.1)).abs() < 1e-9);
        assert_eq!(gradient[0], 0.0);
        assert!((gradient[5] - (1.0 - probability)).abs() < 1e-9);
        // Finite differences agree.
        for index in 0..parameters.len() {
            let mut moved = parameters;
            moved[index] += 1e-6;
            let (moved_loss, _) = sparse_logistic_objective(&rows, &[0], 2, 2, 0.2, &moved);
            let numeric = (moved_loss - loss) / 1e-6;
            assert!(
                (numeric - gradient[index]).abs() < 1e-4,
                "parameter {index}"
            );
        }
    }

    #[test]
    fn a_head_learns_words_and_answers_from_token_ids() {
        // Class 1 documents contain token 7, class 0 documents token 9; both share token 3.
        let documents: Vec<LexicalDocument> = (0..40)
            .map(|index| LexicalDocument {
                index,
                tokens: if index % 2 == 1 {
                    vec![3, 7, 3, index as u32 + 100]
                } else {
                    vec![3, 9, index as u32 + 100]
                },
                class: index % 2,
            })
            .collect();
        let trained = train_lexical_head(&documents, 2, 1 << 10);
        assert!(trained.report.cross_fitted_accuracy > 0.95);
        assert_eq!(trained.out_of_fold.len(), 40);
        assert!(trained.head.validate().is_ok());
        let positive = trained.head.probabilities(&[3, 7]);
        let negative = trained.head.probabilities(&[3, 9]);
        assert!(
            positive[1] > 0.7 && negative[0] > 0.7,
            "{positive:?} {negative:?}"
        );
        assert!((positive.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // The weight of token 7's bucket points to class 1.
        let bucket = bucket_of(Gram::Unigram(7), 1 << 10) as usize;
        let weights = &trained.head.weights;
        assert!(weights[[1, bucket]] > weights[[0, bucket]]);
        // An empty document gets the biases alone.
        assert_eq!(trained.head.probabilities(&[]).len(), 2);
    }

    #[test]
    fn broken_heads_are_refused() {
        let mut head = LexicalHead {
            idf: vec![1.0; 4],
            weights: Array2::zeros((2, 4)),
            bias: Array1::zeros(2),
            temperature: 1.0,
        };
        assert!(head.validate().is_ok());
        head.weights[[0, 1]] = f32::NAN;
        assert!(head.validate().is_err());
        head.weights = Array2::zeros((2, 3));
        assert!(head.validate().is_err());
        head.idf = vec![1.0; 3];
        assert!(head.validate().unwrap_err().contains("power of two"));
    }
}
