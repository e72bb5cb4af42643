//! The adapter-pack loader on arbitrary `adapter.toml` and `heads.safetensors` contents: a
//! pack or an error naming the problem, never a panic. The input is
//! `[manifest length: u32 little-endian][manifest][weights]`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((length, rest)) = bytes.split_first_chunk::<4>() else {
        return;
    };
    let length = usize::try_from(u32::from_le_bytes(*length))
        .unwrap_or(usize::MAX)
        .min(rest.len());
    let (manifest, weights) = rest.split_at(length);
    let manifest = String::from_utf8_lossy(manifest);
    if let Ok(pack) = exitwise::pack::AdapterPack::from_parts(&manifest, weights, "fuzz") {
        // A loaded pack answers every question about itself.
        let layers = pack.heads.len();
        let width = pack.manifest.model.width;
        let feature = vec![0.5f32; width];
        for layer in 0..layers {
            let probabilities = pack.probabilities(layer, ndarray::ArrayView1::from(&feature[..]));
            assert_eq!(probabilities.len(), pack.manifest.labels.len());
        }
        for kind in exitwise::exit::PolicyKind::ALL {
            for budget in exitwise::exit::DEFAULT_BUDGETS {
                if let Ok(config) = pack.operating_point(kind, budget) {
                    let _ = config.policy(layers, pack.exit_models());
                }
            }
        }
    }
});
