//! `heads.safetensors`: per layer `l`, `layers.<l>.weight` `[classes, width]`,
//! `layers.<l>.bias` `[classes]`, `layers.<l>.mean` and `layers.<l>.scale` `[width]`; with a
//! layer-0 head (format 3), `layer_zero.idf` `[buckets]`, `layer_zero.weight`
//! `[classes, buckets]` and `layer_zero.bias` `[classes]`; all little-endian f32.

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::manifest::{PACK_FORMAT_VERSION, PackManifest};
use crate::heads::lexical::LexicalHead;
use crate::heads::{LayerHead, LinearHead, Standardizer};

/// The heads of `bytes` (a safetensors file) — one per layer, and the layer-0 head when the
/// manifest has one — checked against `manifest`: every tensor present, F32, of the expected
/// shape and finite.
pub fn read_heads(
    manifest: &PackManifest,
    bytes: &[u8],
) -> Result<(Vec<LayerHead>, Option<LexicalHead>), String> {
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|error| format!("not a safetensors file: {error}"))?;
    let classes = manifest.labels.len();
    let width = manifest.model.width;
    let read = |name: String, shape: &[usize]| -> Result<Vec<f32>, String> {
        let view = tensors
            .tensor(&name)
            .map_err(|_| format!("tensor `{name}` is missing"))?;
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            ));
        }
        if view.shape() != shape {
            return Err(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                view.shape()
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect();
        if values.iter().any(|value| !value.is_finite()) {
            return Err(format!("tensor `{name}` holds non-finite values"));
        }
        Ok(values)
    };
    let layer_zero = match &manifest.layer_zero {
        Some(report) => {
            let buckets = report.buckets;
            let head = LexicalHead {
                idf: read("layer_zero.idf".into(), &[buckets])?,
                weights: Array2::from_shape_vec(
                    (classes, buckets),
                    read("layer_zero.weight".into(), &[classes, buckets])?,
                )
                .map_err(|error| error.to_string())?,
                bias: Array1::from(read("layer_zero.bias".into(), &[classes])?),
                temperature: report.temperature,
            };
            head.validate()?;
            Some(head)
        }
        None => None,
    };
    let heads = (0..manifest.model.layers)
        .map(|layer| {
            let weights = read(format!("layers.{layer}.weight"), &[classes, width])?;
            let bias = read(format!("layers.{layer}.bias"), &[classes])?;
            let mean = read(format!("layers.{layer}.mean"), &[width])?;
            let scale = read(format!("layers.{layer}.scale"), &[width])?;
            Ok(LayerHead {
                standardizer: Standardizer {
                    mean: Array1::from(mean),
                    scale: Array1::from(scale),
                },
                head: LinearHead {
                    weights: Array2::from_shape_vec((classes, width), weights)
                        .map_err(|error| error.to_string())?,
                    bias: Array1::from(bias),
                    temperature: manifest.layers[layer].temperature,
                },
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((heads, layer_zero))
}

/// `heads` and the layer-0 head as the bytes of a safetensors file.
pub fn write_heads(
    heads: &[LayerHead],
    layer_zero: Option<&LexicalHead>,
) -> Result<Vec<u8>, String> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let little_endian = |values: &[f32]| -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect()
    };
    if let Some(head) = layer_zero {
        let weights: Vec<f32> = head.weights.iter().copied().collect();
        buffers.push((
            "layer_zero.idf".into(),
            vec![head.buckets()],
            little_endian(&head.idf),
        ));
        buffers.push((
            "layer_zero.weight".into(),
            head.weights.shape().to_vec(),
            little_endian(&weights),
        ));
        buffers.push((
            "layer_zero.bias".into(),
            vec![head.classes()],
            little_endian(&head.bias.to_vec()),
        ));
    }
    for (layer, head) in heads.iter().enumerate() {
        let tensors: [(&str, Vec<usize>, Vec<f32>); 4] = [
            (
                "weight",
                head.head.weights.shape().to_vec(),
                head.head.weights.iter().copied().collect(),
            ),
            ("bias", vec![head.head.bias.len()], head.head.bias.to_vec()),
            (
                "mean",
                vec![head.standardizer.mean.len()],
                head.standardizer.mean.to_vec(),
            ),
            (
                "scale",
                vec![head.standardizer.scale.len()],
                head.standardizer.scale.to_vec(),
            ),
        ];
        for (name, shape, values) in tensors {
            buffers.push((
                format!("layers.{layer}.{name}"),
                shape,
                little_endian(&values),
            ));
        }
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|error| error.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = std::collections::HashMap::from([(
        "format".to_string(),
        format!("exitwise adapter heads v{PACK_FORMAT_VERSION}"),
    )]);
    safetensors::serialize(views, Some(metadata)).map_err(|error| error.to_string())
}
