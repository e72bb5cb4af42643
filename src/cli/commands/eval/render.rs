//! The tables `eval` prints, and the points of its plot. Layers are numbered from 1.

use std::fmt::Write as _;

use exitwise::evaluation::report::{EvalReport, MatrixReport};
use exitwise::exit::PolicyKind;

use crate::cli::plot::PlotPoint;

/// Every timed operating point that has a wall-clock speed-up over `full`.
pub fn plot_points(report: &EvalReport) -> Vec<PlotPoint> {
    report
        .operating_points
        .iter()
        .filter_map(|point| {
            Some(PlotPoint {
                series: point.policy,
                budget: point.budget.points(),
                accuracy: point.accuracy,
                speedup: point.speedup_vs_full_wall?,
            })
        })
        .collect()
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |value| format!("{value:.2}x"))
}

/// The table of one model's policies, with the oracle and the schedules below it.
pub fn render(report: &EvalReport, kinds: &[PolicyKind]) -> String {
    let mut text = format!(
        "{} documents of `{}`, {} run(s), budget {}, {} threads, pack {}\n",
        report.documents,
        report.data,
        report.runs,
        report.budget,
        report.machine.threads,
        report.machine.pack
    );
    let _ = writeln!(
        text,
        "{:<9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "policy",
        "accuracy",
        "macro-F1",
        "docs/s",
        "ms med",
        "ms p90",
        "at L0",
        "layer",
        "sent.",
        "tok×layer",
        "wall/full",
        "wall/layer",
        "ops/full",
        "ops/layer"
    );
    for kind in kinds {
        let Some(summary) = report.policies.get(kind.name()) else {
            continue;
        };
        let _ = writeln!(
            text,
            "{:<9} {:>8.4} {:>8.4} {:>9.2} {:>8.1} {:>8.1} {:>5.1}% {:>7.2} {:>7.2} {:>10.0} {:>9} {:>9} {:>9} {:>9}",
            kind.name(),
            summary.accuracy,
            summary.macro_f1,
            summary.docs_per_s,
            summary.ms_median,
            summary.ms_p90,
            100.0 * summary.layer_zero_share,
            summary.mean_exit_layer,
            summary.mean_sentences_read,
            summary.token_layers_mean,
            ratio(summary.speedup_vs_full_wall),
            ratio(summary.speedup_vs_layer_wall),
            ratio(summary.speedup_vs_full_ops),
            ratio(summary.speedup_vs_layer_ops),
        );
    }
    text.push_str("(at L0: documents answered by the layer-0 head, before layer 1; layer: mean exit layer, 1-based, 0 for layer 0; sent.: mean sentences read; wall/x and ops/x: speed-up over policy x in wall-clock and in token×layer operations)\n");
    if let Some(oracle) = &report.oracle {
        let _ = writeln!(
            text,
            "oracle (cheapest correct cell per document): accuracy {:.4}, {:.1}% right at layer 0, {:.0} token×layers, {:.2}x fewer operations than full",
            oracle.accuracy,
            100.0 * oracle.layer_zero_share,
            oracle.token_layers_mean,
            oracle.speedup_vs_full_ops
        );
    }
    if let Some(schedule) = &report.schedule {
        let _ = writeln!(
            text,
            "schedules at the calibrated 2d accuracy on this data ({:.4}; calibrated 2d: {:.2}x fewer operations than full):",
            schedule.target_accuracy,
            1.0 / schedule.calibrated_2d_cost.max(1e-12)
        );
        for (name, choice) in [
            ("2d (depth cap, best on this data)", &schedule.best_2d),
            (
                "paper's staircase (best on this data)",
                &schedule.best_staircase,
            ),
        ] {
            match choice {
                Some(choice) => {
                    let _ = writeln!(
                        text,
                        "  {name:<38} accuracy {:.4}, {:.2}x fewer operations than full ({} {} threshold {}, deepest layer {}{})",
                        choice.accuracy,
                        choice.speedup_vs_full_ops,
                        choice.config.rule.name(),
                        if choice.config.patience > 1 {
                            format!("patience {}", choice.config.patience)
                        } else {
                            String::new()
                        },
                        choice.config.threshold,
                        choice.config.depth_cap + 1,
                        choice.step.map_or_else(String::new, |step| format!(
                            ", {step} layer(s) per sentence"
                        ))
                    );
                }
                None => {
                    let _ = writeln!(text, "  {name:<38} no setting reaches the target");
                }
            }
        }
    }
    text
}

/// The models × policies matrix and the product check.
pub fn render_matrix(report: &MatrixReport, kinds: &[PolicyKind]) -> String {
    let mut text = format!(
        "{} documents of `{}`, {} run(s), budget {}, {} threads, pack {}; cells: accuracy, documents/s (speed-up over the first row's full)\n",
        report.documents,
        report.data,
        report.runs,
        report.budget,
        report.machine.threads,
        report.machine.pack
    );
    let _ = write!(text, "{:<28} {:>8} {:>9}", "model", "quant", "+RSS MB");
    for kind in kinds {
        let _ = write!(text, " {:>26}", kind.name());
    }
    text.push('\n');
    for row in &report.rows {
        let _ = write!(
            text,
            "{:<28} {:>8} {:>9.0}",
            row.model, row.quantization, row.rss_added_mb
        );
        for kind in kinds {
            match row.policies.get(kind.name()) {
                Some(summary) => {
                    let _ = write!(
                        text,
                        " {:>26}",
                        format!(
                            "{:.4} {:>6.2}/s ({:.2}x)",
                            summary.accuracy,
                            summary.docs_per_s,
                            summary.speedup_vs_full_wall.unwrap_or(0.0)
                        )
                    );
                }
                None => {
                    let _ = write!(text, " {:>26}", "-");
                }
            }
        }
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "peak resident memory of the process: {:.0} MB",
        report.peak_rss_mb
    );
    for check in &report.product_check {
        let _ = writeln!(
            text,
            "{} + {} against the first row's full: measured {:.2}x; quantization alone {:.2}x × {} alone {:.2}x = {:.2}x",
            check.model,
            check.policy,
            check.measured,
            check.quantization_speedup,
            check.policy,
            check.exit_speedup,
            check.predicted
        );
    }
    text
}
