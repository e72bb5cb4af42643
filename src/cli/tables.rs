//! The tables `train`, `calibrate` and `accuracy` print: per-layer accuracy and the calibrated
//! operating points. Layers are numbered from 1.

use std::fmt::Write as _;

use exitwise::exit::PolicyKind;
use exitwise::exit::setting::WHOLE_DOCUMENT_PASS_TOKENS;
use exitwise::heads::LayerReport;
use exitwise::pack::PackManifest;

/// The calibrated operating points as a table, with what the calibration promises.
pub fn render_operating_points(manifest: &PackManifest) -> String {
    let Some(calibration) = &manifest.calibration else {
        return String::new();
    };
    let data = calibration.data.as_ref().map_or_else(
        || "dev data".to_string(),
        |data| {
            format!(
                "`{}`{}",
                data.file,
                if data.labelled {
                    ""
                } else {
                    " (without labels)"
                }
            )
        },
    );
    let mut text = format!(
        "exit calibration on {} documents of {data}, {}\n",
        calibration.dev_documents,
        calibration.promise()
    );
    text.push_str("(layers numbered from 1; L0 ≥: the layer-0 head answers first when its top probability reaches this; decide: the layer that answers, or the first that may exit; pass: what one decode reads, a sentence, whole sentences up to ≥N tokens, or the document; cost: share of full-depth, whole-document token×layer operations; loss: share of documents lost, and its upper bound)\n");
    let _ = writeln!(
        text,
        "{:<9} {:>6} {:>6} {:<22} {:>9} {:>6} {:>7} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "policy",
        "budget",
        "L0 ≥",
        "rule",
        "threshold",
        "decide",
        "deepest",
        "patience",
        "pass",
        "accuracy",
        "cost",
        "loss",
        "bound"
    );
    for point in &calibration.operating_points {
        let config = &point.config;
        let dash = || "-".to_string();
        let (rule, threshold, patience) = match config.kind {
            PolicyKind::Full => (
                if point.is_fallback() {
                    "none certified: full".to_string()
                } else {
                    dash()
                },
                dash(),
                dash(),
            ),
            _ => (
                config.rule.name().to_string(),
                format!("{:.3}", config.threshold),
                config.patience.to_string(),
            ),
        };
        // Which head answers: a fixed layer for `full` and `sentence`, the exit cell otherwise.
        let decide = match config.kind {
            PolicyKind::Full | PolicyKind::Sentence => (config.decision_layer + 1).to_string(),
            _ => format!("≥{}", config.min_layer + 1),
        };
        let (deepest, pass) = match config.kind {
            PolicyKind::TwoDimensional => (
                (config.depth_cap + 1).to_string(),
                if config.min_pass_tokens == 0 {
                    "1 sent".to_string()
                } else if config.min_pass_tokens >= WHOLE_DOCUMENT_PASS_TOKENS {
                    "doc".to_string()
                } else {
                    format!("≥{}", config.min_pass_tokens)
                },
            ),
            PolicyKind::Sentence => (dash(), "1 sent".to_string()),
            _ => (dash(), "doc".to_string()),
        };
        let share = |value: Option<f64>| value.map_or_else(dash, |value| format!("{value:.4}"));
        let _ = writeln!(
            text,
            "{:<9} {:>6.1} {:>6} {:<22} {:>9} {:>6} {:>7} {:>8} {:>6} {:>8} {:>8.3} {:>8} {:>8}",
            point.policy().name(),
            point.budget.points(),
            config
                .layer_zero_threshold
                .map_or_else(dash, |threshold| format!("{threshold:.3}")),
            rule,
            threshold,
            decide,
            deepest,
            patience,
            pass,
            share(point.dev_accuracy),
            point.dev_cost,
            share(point.dev_loss),
            share(point.loss_bound)
        );
    }
    text
}

/// The per-layer accuracy table (`set` names the data: "dev", "test"); `*` marks `best_layer`.
pub fn render_layer_table(reports: &[LayerReport], best_layer: usize, set: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:>5} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "layer",
        "l2",
        "temp",
        format!("{set} full"),
        format!("{set} @1"),
        format!("{set} @2"),
        format!("{set} @4"),
        "prefixes"
    );
    for report in reports {
        let marker = if report.layer == best_layer { " *" } else { "" };
        let _ = writeln!(
            text,
            "{:>5} {:>8.0e} {:>7.3} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}{marker}",
            report.layer + 1,
            report.l2,
            report.temperature,
            report.dev_accuracy_full,
            report.dev_accuracy_1,
            report.dev_accuracy_2,
            report.dev_accuracy_4,
            report.dev_accuracy_prefixes
        );
    }
    let _ = writeln!(
        text,
        "* the pack's best layer, whose head `full` answers with (chosen on whole training documents, cross-fitted; on dev in format 1 packs)"
    );
    text
}
