//! Whether a GPU computes what the CPU computes (`exitwise bench-engine --compare-cpu`): the
//! same prompt is decoded by the model as loaded (layers offloaded to a GPU) and by the same
//! file loaded on the CPU alone, and every layer's hidden states are compared by cosine.
//!
//! The heads of a pack were trained on hidden states computed on the CPU; a back end whose
//! numbers drift (another accumulation order, lower-precision matrix products) would change
//! their answers and the exit decisions silently. The bar is a cosine of 0.999 at every layer,
//! for the layer's states as a whole and for the last token's (the row the heads read): quantized
//! matrix products on different hardware differ in the last digits, not more. The lowest cosine
//! of any single token is reported but not held to the bar: one row can show rounding that the
//! whole does not (on Mesa's lavapipe, 16 tokens of the catalog model at layer 1: one token at
//! 0.99900, the layer as a whole at 0.999996 and the last token at 0.999998).

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use super::engine_benchmark::{
    BenchmarkError, engine_error, prompt_tokens, tapped_session_options,
};
use crate::engine::{Flow, LayerHidden, Model, Session, SessionOptions};

/// The lowest cosine between a layer's hidden states on the two back ends that counts as the
/// same computation.
pub const AGREEMENT_THRESHOLD: f64 = 0.999;

/// How one layer's hidden states compare.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerAgreement {
    /// The layer, numbered from 1.
    pub layer: usize,
    /// Cosine of the layer's states of every token both back ends computed, as one vector.
    pub layer_cosine: f64,
    /// Cosine of the last token's hidden state (the row the heads read).
    pub last_token_cosine: f64,
    /// The lowest cosine over every token row both back ends computed.
    pub worst_token_cosine: f64,
}

/// The comparison of every layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceAgreement {
    /// Prompt tokens, decoded in one batch by each back end.
    pub tokens: usize,
    /// Every layer, from the first.
    pub layers: Vec<LayerAgreement>,
    /// The lowest cosine of a whole layer or of a last token, over the layers.
    pub worst_cosine: f64,
    /// [`AGREEMENT_THRESHOLD`].
    pub threshold: f64,
    /// Whether every layer reached the threshold.
    pub agrees: bool,
}

/// Decodes a prompt of `tokens` tokens with `model` (as loaded, offloaded or not) and with
/// `cpu_model` (the same file on the CPU alone), and compares every layer.
pub fn compare_with_cpu(
    model: &Model,
    cpu_model: &Model,
    tokens: usize,
    threads: Option<usize>,
) -> Result<DeviceAgreement, BenchmarkError> {
    if model.layers() != cpu_model.layers() {
        return Err(BenchmarkError::Check(format!(
            "the two models differ: {} layers against {}",
            model.layers(),
            cpu_model.layers()
        )));
    }
    let prompt = prompt_tokens(model, tokens)?;
    let options = tapped_session_options(tokens, threads);
    let offloaded = every_layer(model, &options, &prompt)?;
    let on_cpu = every_layer(cpu_model, &options, &prompt)?;
    let layers: Vec<LayerAgreement> = offloaded
        .iter()
        .zip(&on_cpu)
        .enumerate()
        .map(|(layer, (left, right))| {
            let (last_token_cosine, worst_token_cosine, layer_cosine) =
                row_cosines(left.view(), right.view());
            LayerAgreement {
                layer: layer + 1,
                layer_cosine,
                last_token_cosine,
                worst_token_cosine,
            }
        })
        .collect();
    let worst_cosine = layers
        .iter()
        .map(|layer| layer.layer_cosine.min(layer.last_token_cosine))
        .fold(f64::INFINITY, f64::min);
    Ok(DeviceAgreement {
        tokens: prompt.len(),
        agrees: worst_cosine >= AGREEMENT_THRESHOLD,
        worst_cosine,
        threshold: AGREEMENT_THRESHOLD,
        layers,
    })
}

/// Every layer's hidden states of one decode of `prompt`.
fn every_layer(
    model: &Model,
    options: &SessionOptions,
    prompt: &[crate::engine::Token],
) -> Result<Vec<Array2<f32>>, BenchmarkError> {
    let mut session =
        Session::new(model, options).map_err(engine_error("cannot create a session"))?;
    let mut states = Vec::with_capacity(model.layers());
    let mut observer = |hidden: &LayerHidden<'_>| {
        states.push(hidden.states().to_owned());
        Flow::Continue
    };
    session
        .feed(prompt, &mut observer)
        .map_err(engine_error("cannot decode the prompt"))?;
    if states.len() != model.layers() {
        return Err(BenchmarkError::Check(format!(
            "the decode showed {} of {} layers",
            states.len(),
            model.layers()
        )));
    }
    Ok(states)
}

/// The cosine of the last rows of `left` and `right`, the lowest cosine over the rows they both
/// hold, aligned from the end (the last layer computes only the output row), and the cosine of
/// those rows as one vector.
fn row_cosines(left: ArrayView2<'_, f32>, right: ArrayView2<'_, f32>) -> (f64, f64, f64) {
    let rows = left.nrows().min(right.nrows());
    if rows == 0 {
        return (0.0, 0.0, 0.0);
    }
    let tail = |states: ArrayView2<'_, f32>| -> Vec<f32> {
        states
            .slice(ndarray::s![states.nrows() - rows.., ..])
            .iter()
            .copied()
            .collect()
    };
    let whole = cosine(Some(&tail(left)), Some(&tail(right)));
    let cosines: Vec<f64> = (1..=rows)
        .map(|back| {
            cosine(
                left.row(left.nrows() - back).as_slice(),
                right.row(right.nrows() - back).as_slice(),
            )
        })
        .collect();
    let worst = cosines.iter().copied().fold(f64::INFINITY, f64::min);
    (cosines[0], worst, whole)
}

/// Cosine similarity of two vectors (0 when either is zero or missing: a row ndarray could not
/// lend as one slice).
pub fn cosine(left: Option<&[f32]>, right: Option<&[f32]>) -> f64 {
    let (Some(left), Some(right)) = (left, right) else {
        return 0.0;
    };
    let dot: f64 = left
        .iter()
        .zip(right)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let norm = |values: &[f32]| {
        values
            .iter()
            .map(|value| f64::from(*value).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let norms = norm(left) * norm(right);
    if norms == 0.0 { 0.0 } else { dot / norms }
}

#[cfg(test)]
mod tests {
    use super::{cosine, row_cosines};
    use ndarray::array;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(Some(&[1.0, 0.0]), Some(&[1.0, 0.0])) - 1.0).abs() < 1e-12);
        assert!(cosine(Some(&[1.0, 0.0]), Some(&[0.0, 1.0])).abs() < 1e-12);
        assert!((cosine(Some(&[1.0, 1.0]), Some(&[-1.0, -1.0])) + 1.0).abs() < 1e-12);
        let tilted = cosine(Some(&[1.0, 0.0]), Some(&[1.0, 1.0]));
        assert!((tilted - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(cosine(Some(&[0.0, 0.0]), Some(&[1.0, 1.0])), 0.0);
        assert_eq!(cosine(None, Some(&[1.0])), 0.0);
    }

    #[test]
    fn rows_are_aligned_from_the_end_and_the_worst_is_kept() {
        // The last layer holds only the output row: it is compared with the other's last row.
        let many = array![[0.0f32, 1.0], [1.0, 0.0], [1.0, 1.0]];
        let last_only = array![[1.0f32, 1.0]];
        let (last, worst, whole) = row_cosines(many.view(), last_only.view());
        assert!((last - 1.0).abs() < 1e-12);
        assert!((worst - 1.0).abs() < 1e-12);
        assert!((whole - 1.0).abs() < 1e-12);
        let other = array![[1.0f32, 0.0], [1.0, 0.0], [1.0, 1.0]];
        let (last, worst, whole) = row_cosines(many.view(), other.view());
        assert!((last - 1.0).abs() < 1e-12);
        assert!(worst.abs() < 1e-12, "row 0 is orthogonal: {worst}");
        // As one vector: (0,1,1,0,1,1)·(1,0,1,0,1,1) = 3 over √4·√4.
        assert!((whole - 0.75).abs() < 1e-12, "{whole}");
    }
}
