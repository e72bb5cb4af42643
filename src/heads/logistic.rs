//! Classifier heads: per-layer standardisation, multinomial logistic regression with L2
//! regularisation (fitted by L-BFGS), and temperature scaling. Pure ndarray code.

use std::collections::VecDeque;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// Per-feature standardisation learned on training data: `z = (x − mean) · scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Array1<f32>,
    /// Inverse standard deviations (constant features get scale 1).
    pub scale: Array1<f32>,
}

impl Standardizer {
    /// Learns means and standard deviations (population) of the columns of `features`.
    pub fn fit(features: ArrayView2<'_, f32>) -> Self {
        let rows = features.nrows().max(1) as f64;
        let width = features.ncols();
        let mut sum = vec![0f64; width];
        let mut square = vec![0f64; width];
        for row in features.axis_iter(Axis(0)) {
            for (column, value) in row.iter().enumerate() {
                let value = f64::from(*value);
                sum[column] += value;
                square[column] += value * value;
            }
        }
        let mean: Array1<f32> = sum.iter().map(|total| (total / rows) as f32).collect();
        let scale: Array1<f32> = sum
            .iter()
            .zip(&square)
            .map(|(total, squares)| {
                let average = total / rows;
                let variance = (squares / rows - average * average).max(0.0);
                let deviation = variance.sqrt();
                if deviation > 1e-6 {
                    (1.0 / deviation) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer { mean, scale }
    }

    /// Standardises every row of `features`.
    pub fn apply(&self, features: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut result = features.to_owned();
        for mut row in result.axis_iter_mut(Axis(0)) {
            row -= &self.mean;
            row *= &self.scale;
        }
        result
    }

    /// Standardises one feature vector.
    pub fn apply_one(&self, feature: ArrayView1<'_, f32>) -> Array1<f32> {
        (&feature - &self.mean) * &self.scale
    }
}

/// A linear classifier over standardised features, with a calibration temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// `classes × width`.
    pub weights: Array2<f32>,
    /// One bias per class.
    pub bias: Array1<f32>,
    /// Logits are divided by this before the softmax (temperature scaling).
    pub temperature: f32,
}

impl LinearHead {
    /// A head with all weights zero (uniform probabilities).
    pub fn zeros(classes: usize, width: usize) -> Self {
        LinearHead {
            weights: Array2::zeros((classes, width)),
            bias: Array1::zeros(classes),
            temperature: 1.0,
        }
    }

    /// Raw logits (before temperature) of standardised rows, `rows × classes`.
    pub fn logits(&self, standardized: ArrayView2<'_, f32>) -> Array2<f32> {
        standardized.dot(&self.weights.t()) + &self.bias
    }

    /// Calibrated class probabilities of one standardised vector.
    pub fn probabilities(&self, standardized: ArrayView1<'_, f32>) -> Array1<f32> {
        let logits = self.weights.dot(&standardized) + &self.bias;
        softmax(logits.view(), self.temperature)
    }
}

/// A layer's complete head: standardisation, then the linear classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerHead {
    /// Standardisation learned on the training prefixes.
    pub standardizer: Standardizer,
    /// The classifier.
    pub head: LinearHead,
}

impl LayerHead {
    /// Calibrated class probabilities of a raw feature vector.
    pub fn probabilities(&self, feature: ArrayView1<'_, f32>) -> Array1<f32> {
        self.head
            .probabilities(self.standardizer.apply_one(feature).view())
    }
}

/// `exp(value − maximum)` of every value and their sum: softmax and log-sum-exp computed
/// stably (the largest exponential is 1, so nothing overflows). The one place the heads
/// compute them.
pub(crate) struct StableExponentials {
    maximum: f64,
    exponentials: Vec<f64>,
    total: f64,
}

impl StableExponentials {
    /// The exponentials of `values`.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.into_iter().collect();
        let maximum = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exponentials: Vec<f64> = values.iter().map(|value| (value - maximum).exp()).collect();
        let total = exponentials.iter().sum();
        StableExponentials {
            maximum,
            exponentials,
            total,
        }
    }

    /// `ln Σ exp(value)`.
    pub(crate) fn log_sum_exp(&self) -> f64 {
        self.total.ln() + self.maximum
    }

    /// The softmax probabilities, in the values' order.
    pub(crate) fn probabilities(&self) -> impl Iterator<Item = f64> + '_ {
        self.exponentials
            .iter()
            .map(|exponential| exponential / self.total)
    }
}

/// Softmax of `logits / temperature`, computed stably.
pub fn softmax(logits: ArrayView1<'_, f32>, temperature: f32) -> Array1<f32> {
    let temperature = f64::from(temperature);
    StableExponentials::of(logits.iter().map(|&logit| f64::from(logit) / temperature))
        .probabilities()
        .map(|probability| probability as f32)
        .collect()
}

/// Index of the largest value (first on ties).
pub fn argmax(values: ArrayView1<'_, f32>) -> usize {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |(best, best_value), (index, &value)| {
                if value > best_value {
                    (index, value)
                } else {
                    (best, best_value)
                }
            },
        )
        .0
}

/// Share of rows whose largest logit is the label.
pub fn accuracy(logits: ArrayView2<'_, f32>, labels: &[usize]) -> f64 {
    if labels.is_empty() {
        return f64::NAN;
    }
    let correct = logits
        .axis_iter(Axis(0))
        .zip(labels)
        .filter(|(row, label)| argmax(*row) == **label)
        .count();
    correct as f64 / labels.len() as f64
}

/// Mean negative log-likelihood of the labels under `softmax(logits / temperature)`.
pub fn negative_log_likelihood(
    logits: ArrayView2<'_, f32>,
    labels: &[usize],
    temperature: f64,
) -> f64 {
    let mut total = 0.0;
    for (row, &label) in logits.axis_iter(Axis(0)).zip(labels) {
        let scaled = |logit: f32| f64::from(logit) / temperature;
        total += StableExponentials::of(row.iter().map(|&logit| scaled(logit))).log_sum_exp()
            - scaled(row[label]);
    }
    total / labels.len().max(1) as f64
}

/// The temperature that minimises the negative log-likelihood of `labels` (golden-section
/// search on log T over [0.05, 20]).
pub fn fit_temperature(logits: ArrayView2<'_, f32>, labels: &[usize]) -> f32 {
    let objective =
        |log_temperature: f64| negative_log_likelihood(logits, labels, log_temperature.exp());
    let (mut low, mut high) = (0.05f64.ln(), 20f64.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut left = high - ratio * (high - low);
    let mut right = low + ratio * (high - low);
    let (mut left_value, mut right_value) = (objective(left), objective(right));
    for _ in 0..80 {
        if left_value < right_value {
            high = right;
            right = left;
            right_value = left_value;
            left = high - ratio * (high - low);
            left_value = objective(left);
        } else {
            low = left;
            left = right;
            left_value = right_value;
            right = low + ratio * (high - low);
            right_value = objective(right);
        }
    }
    ((low + high) / 2.0).exp() as f32
}

/// Settings of the logistic-regression fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 penalty on the weights (not the bias): `l2 / 2 · ‖W‖²` added to the mean loss.
    pub l2: f64,
    /// Most L-BFGS iterations.
    pub max_iterations: usize,
    /// Stop when the largest gradient component falls below this.
    pub gradient_tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            l2: 1e-3,
            max_iterations: 300,
            gradient_tolerance: 1e-5,
        }
    }
}

/// Weights (`classes × width`, row-major) and biases from the optimiser's flat parameters.
fn unpack_parameters(
    parameters: &[f64],
    classes: usize,
    width: usize,
) -> (Array2<f32>, Array1<f32>) {
    let weights = Array2::from_shape_vec(
        (classes, width),
        parameters[..classes * width]
            .iter()
            .map(|value| *value as f32)
            .collect(),
    )
    .expect("parameter length matches the shape");
    let bias = parameters[classes * width..]
        .iter()
        .map(|value| *value as f32)
        .collect();
    (weights, bias)
}

/// Mean cross-entropy plus L2 penalty, and its gradient, of the head packed in `parameters`
/// (weights row-major, then biases).
pub fn logistic_objective(
    standardized: ArrayView2<'_, f32>,
    labels: &[usize],
    classes: usize,
    l2: f64,
    parameters: &[f64],
) -> (f64, Vec<f64>) {
    let (rows, width) = standardized.dim();
    let (weights, bias) = unpack_parameters(parameters, classes, width);
    let logits = standardized.dot(&weights.t()) + &bias;
    let mut residual = Array2::<f32>::zeros((rows, classes));
    let mut loss = 0f64;
    for ((row, mut residual_row), &label) in logits
        .axis_iter(Axis(0))
        .zip(residual.axis_iter_mut(Axis(0)))
        .zip(labels)
    {
        let exponentials = StableExponentials::of(row.iter().map(|&logit| f64::from(logit)));
        loss += exponentials.log_sum_exp() - f64::from(row[label]);
        for (class, probability) in exponentials.probabilities().enumerate() {
            let indicator = if class == label { 1.0 } else { 0.0 };
            residual_row[class] = (probability - indicator) as f32;
        }
    }
    let count = rows.max(1) as f64;
    let weight_gradient = residual.t().dot(&standardized);
    let bias_gradient = residual.sum_axis(Axis(0));
    let mut gradient = Vec::with_capacity(parameters.len());
    let mut penalty = 0f64;
    for (index, value) in weight_gradient.iter().enumerate() {
        let weight = parameters[index];
        penalty += weight * weight;
        gradient.push(f64::from(*value) / count + l2 * weight);
    }
    gradient.extend(bias_gradient.iter().map(|value| f64::from(*value) / count));
    (loss / count + 0.5 * l2 * penalty, gradient)
}

/// Fits a multinomial logistic regression on standardised rows by L-BFGS, starting from
/// `start` (a previous fit, e.g. with another penalty) or from zero. The result has
/// temperature 1.
pub fn fit_logistic(
    standardized: ArrayView2<'_, f32>,
    labels: &[usize],
    classes: usize,
    options: &FitOptions,
    start: Option<&LinearHead>,
) -> LinearHead {
    let width = standardized.ncols();
    let mut parameters: Vec<f64> = match start {
        Some(head) => head
            .weights
            .iter()
            .chain(head.bias.iter())
            .map(|value| f64::from(*value))
            .collect(),
        None => vec![0.0; classes * width + classes],
    };
    let objective = |parameters: &[f64]| {
        logistic_objective(standardized, labels, classes, options.l2, parameters)
    };
    minimize_lbfgs(
        &objective,
        &mut parameters,
        options.max_iterations,
        options.gradient_tolerance,
    );
    let (weights, bias) = unpack_parameters(&parameters, classes, width);
    LinearHead {
        weights,
        bias,
        temperature: 1.0,
    }
}

fn dot(left: &[f64], right: &[f64]) -> f64 {
    left.iter().zip(right).map(|(a, b)| a * b).sum()
}

/// A differentiable objective: value and gradient at a point.
pub(crate) type Objective<'a> = dyn Fn(&[f64]) -> (f64, Vec<f64>) + 'a;

/// Limited-memory BFGS with a backtracking (Armijo) line search. Minimises `objective` from
/// `parameters` in place.
pub(crate) fn minimize_lbfgs(
    objective: &Objective<'_>,
    parameters: &mut [f64],
    max_iterations: usize,
    gradient_tolerance: f64,
) {
    const MEMORY: usize = 10;
    let (mut value, mut gradient) = objective(parameters);
    let mut history: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(MEMORY);
    for iteration in 0..max_iterations {
        let largest = gradient
            .iter()
            .fold(0f64, |best, value| best.max(value.abs()));
        if largest < gradient_tolerance {
            break;
        }
        // Two-loop recursion: direction = −H·gradient.
        let mut direction: Vec<f64> = gradient.iter().map(|value| -value).collect();
        let mut alphas = Vec::with_capacity(history.len());
        for (step, change, rho) in history.iter().rev() {
            let alpha = rho * dot(step, &direction);
            for (entry, change) in direction.iter_mut().zip(change) {
                *entry -= alpha * change;
            }
            alphas.push(alpha);
        }
        if let Some((step, change, _)) = history.back() {
            let scaling = dot(step, change) / dot(change, change);
            direction.iter_mut().for_each(|entry| *entry *= scaling);
        }
        for ((step, change, rho), alpha) in history.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(change, &direction);
            for (entry, step) in direction.iter_mut().zip(step) {
                *entry += (alpha - beta) * step;
            }
        }
        let mut slope = dot(&direction, &gradient);
        if slope >= 0.0 {
            history.clear();
            direction = gradient.iter().map(|value| -value).collect();
            slope = dot(&direction, &gradient);
        }
        let mut step_size = if iteration == 0 && history.is_empty() {
            (1.0 / dot(&gradient, &gradient).sqrt()).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..40 {
            let candidate: Vec<f64> = parameters
                .iter()
                .zip(&direction)
                .map(|(parameter, entry)| parameter + step_size * entry)
                .collect();
            let (candidate_value, candidate_gradient) = objective(&candidate);
            if candidate_value <= value + 1e-4 * step_size * slope {
                accepted = Some((candidate, candidate_value, candidate_gradient));
                break;
            }
            step_size *= 0.5;
        }
        let Some((candidate, candidate_value, candidate_gradient)) = accepted else {
            break;
        };
        let step: Vec<f64> = candidate
            .iter()
            .zip(parameters.iter())
            .map(|(new, old)| new - old)
            .collect();
        let change: Vec<f64> = candidate_gradient
            .iter()
            .zip(&gradient)
            .map(|(new, old)| new - old)
            .collect();
        let curvature = dot(&step, &change);
        if curvature > 1e-12 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((step, change, 1.0 / curvature));
        }
        let improvement = value - candidate_value;
        parameters.copy_from_slice(&candidate);
        value = candidate_value;
        gradient = candidate_gradient;
        if improvement.abs() <= 1e-12 * value.abs().max(1.0) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn close(left: f64, right: f64, tolerance: f64) -> bool {
        (left - right).abs() <= tolerance
    }

    #[test]
    fn standardisation_matches_hand_computed_values() {
        let features = array![[1.0f32, 2.0, 5.0], [3.0, 6.0, 5.0]];
        let standardizer = Standardizer::fit(features.view());
        assert_eq!(standardizer.mean, array![2.0, 4.0, 5.0]);
        // Population deviations 1 and 2; the constant column keeps scale 1.
        assert_eq!(standardizer.scale, array![1.0, 0.5, 1.0]);
        assert_eq!(
            standardizer.apply(features.view()),
            array![[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0]]
        );
        assert_eq!(
            standardizer.apply_one(array![4.0f32, 4.0, 5.0].view()),
            array![2.0, 0.0, 0.0]
        );
    }

    #[test]
    fn softmax_and_temperature_match_hand_computed_values() {
        let logits = array![0.0f32, 3f32.ln()];
        let probabilities = softmax(logits.view(), 1.0);
        assert!(close(f64::from(probabilities[0]), 0.25, 1e-7));
        assert!(close(f64::from(probabilities[1]), 0.75, 1e-7));
        // At temperature 2 the odds become √3 : 1.
        let softened = softmax(logits.view(), 2.0);
        let root = 3f64.sqrt();
        assert!(close(f64::from(softened[1]), root / (1.0 + root), 1e-6));
        // Large logits do not overflow.
        let large = softmax(array![1000.0f32, 0.0].view(), 1.0);
        assert!(close(f64::from(large[0]), 1.0, 1e-7));
        assert_eq!(argmax(array![0.1f32, 0.7, 0.7].view()), 1);
    }

    #[test]
    fn objective_and_gradient_match_hand_computed_values() {
        // Two rows, one feature, zero weights: p = 1/2 everywhere.
        let features = array![[1.0f32], [-1.0]];
        let (loss, gradient) =
            logistic_objective(features.view(), &[1, 0], 2, 0.0, &[0.0, 0.0, 0.0, 0.0]);
        assert!(close(loss, 2f64.ln(), 1e-9));
        // Residuals (p − y): [[0.5, −0.5], [−0.5, 0.5]]; gradient = residualᵀ·x / 2.
        let expected = [0.5, -0.5, 0.0, 0.0];
        for (value, expected) in gradient.iter().zip(expected) {
            assert!(close(*value, expected, 1e-9), "{gradient:?}");
        }
        // The penalty adds l2/2·‖W‖² and l2·W.
        let (penalised, gradient) =
            logistic_objective(features.view(), &[1, 0], 2, 0.5, &[2.0, 0.0, 0.0, 0.0]);
        let (plain, plain_gradient) =
            logistic_objective(features.view(), &[1, 0], 2, 0.0, &[2.0, 0.0, 0.0, 0.0]);
        assert!(close(penalised - plain, 0.5 * 0.5 * 4.0, 1e-9));
        assert!(close(gradient[0] - plain_gradient[0], 1.0, 1e-9));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let features = array![[0.5f32, -1.0], [1.5, 0.25], [-0.75, 0.5], [0.1, -0.3]];
        let labels = [0, 2, 1, 2];
        let parameters = [0.1, -0.2, 0.3, 0.05, -0.4, 0.2, 0.01, -0.02, 0.03];
        let (_, gradient) = logistic_objective(features.view(), &labels, 3, 0.1, &parameters);
        for index in 0..parameters.len() {
            let mut up = parameters;
            let mut down = parameters;
            up[index] += 1e-4;
            down[index] -= 1e-4;
            let numeric = (logistic_objective(features.view(), &labels, 3, 0.1, &up).0
                - logistic_objective(features.view(), &labels, 3, 0.1, &down).0)
                / 2e-4;
            assert!(
                close(gradient[index], numeric, 1e-4),
                "parameter {index}: {} vs {numeric}",
                gradient[index]
            );
        }
    }

    #[test]
    fn fit_separates_and_regularisation_shrinks() {
        let features = array![
            [-2.0f32, 0.3],
            [-1.0, -0.2],
            [-1.5, 0.1],
            [1.0, 0.2],
            [2.0, -0.1],
            [1.2, 0.0]
        ];
        let labels = [0, 0, 0, 1, 1, 1];
        let loose = fit_logistic(
            features.view(),
            &labels,
            2,
            &FitOptions {
                l2: 1e-3,
                ..FitOptions::default()
            },
            None,
        );
        assert_eq!(accuracy(loose.logits(features.view()).view(), &labels), 1.0);
        let tight = fit_logistic(
            features.view(),
            &labels,
            2,
            &FitOptions {
                l2: 1.0,
                ..FitOptions::default()
            },
            None,
        );
        let norm = |head: &LinearHead| head.weights.iter().map(|w| w * w).sum::<f32>();
        assert!(norm(&tight) < norm(&loose) / 10.0);
        // At the optimum of the penalised problem the gradient vanishes.
        let parameters: Vec<f64> = tight
            .weights
            .iter()
            .chain(tight.bias.iter())
            .map(|v| f64::from(*v))
            .collect();
        let (_, gradient) = logistic_objective(features.view(), &labels, 2, 1.0, &parameters);
        assert!(
            gradient.iter().all(|value| value.abs() < 1e-4),
            "{gradient:?}"
        );
    }

    #[test]
    fn temperature_softens_overconfident_logits() {
        // Confident logits that are right only 3 times out of 4 deserve a temperature above 1.
        let logits = array![[4.0f32, 0.0], [4.0, 0.0], [4.0, 0.0], [4.0, 0.0]];
        let labels = [0, 0, 0, 1];
        let temperature = fit_temperature(logits.view(), &labels);
        // Optimum: softmax(4/T) = 3/4, i.e. T = 4 / ln 3.
        assert!(
            close(f64::from(temperature), 4.0 / 3f64.ln(), 1e-3),
            "{temperature}"
        );
        assert!(
            negative_log_likelihood(logits.view(), &labels, f64::from(temperature))
                < negative_log_likelihood(logits.view(), &labels, 1.0)
        );
    }
}
