//! `eval --simulated`: whether each budget of the pack held on the data, from cached features.

use std::fmt::Write as _;

use exitwise::evaluation::budgets::{BudgetReport, budget_check};
use exitwise::features::extraction::FeatureSource;
use exitwise::pack::calibrate::labelled_grids;

use super::{EvalArgs, labelled_data, write_report};
use crate::cli::feature_source::cached_features;
use crate::cli::resolve::{load_model_for_pack, load_pack};
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Runs `exitwise eval --simulated`.
pub fn run(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let pack = load_pack(args.adapters.as_ref())?;
    let data = labelled_data(args, &pack)?;
    let (model, model_sha256) = load_model_for_pack(&pack, args.model.as_ref(), global, false)?;
    let source = FeatureSource {
        model: &model,
        model_sha256: &model_sha256,
        token_limit: pack.manifest.token_limit,
        cache_root: args.cache_dir.as_deref(),
        threads: global.threads(),
    };
    let (mut cache, _, _) = cached_features(&source, &data, "features")?;
    let grids = labelled_grids(&pack, &model, &mut cache, &data)?;
    anyhow::ensure!(
        !grids.is_empty(),
        "no document of `{}` has cached features and a label of the pack",
        args.data.display()
    );
    let report = budget_check(&pack, &grids);
    output::print(&render(&report, &args.data.display().to_string()))?;
    write_report(args, &report)?;
    Ok(EXIT_OK)
}

fn render(report: &BudgetReport, data: &str) -> String {
    let mut text = format!(
        "pack {} ({} calibration{}) simulated on {} documents of `{data}`: full {:.4}\n",
        report.pack,
        report.method,
        report
            .delta
            .map_or_else(String::new, |delta| format!(", δ = {delta}")),
        report.documents,
        report.full_accuracy
    );
    let _ = writeln!(
        text,
        "{:<9} {:>6} {:<29} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>7} {:>9} {:>10}",
        "policy",
        "budget",
        "rule",
        "accuracy",
        "loss pt",
        "lost",
        "bound",
        "held",
        "at L0",
        "cost",
        "ops/full",
        "ops/layer"
    );
    for row in &report.rows {
        let walk = if row.fallback {
            "(full)".to_string()
        } else if row.setting.policy == "full" {
            "full".to_string()
        } else {
            row.setting.rule.to_string()
        };
        let rule = match row.setting.layer_zero_threshold {
            Some(threshold) => format!("L0≥{threshold} {walk}"),
            None => walk,
        };
        let _ = writeln!(
            text,
            "{:<9} {:>6.1} {:<29} {:>8.4} {:>8.2} {:>8.4} {:>7} {:>6} {:>5.1}% {:>7.3} {:>8.2}x {:>10}",
            row.policy,
            row.budget.points(),
            rule,
            row.accuracy,
            row.accuracy_loss_points,
            row.lost_share,
            row.calibration_bound
                .map_or_else(|| "-".to_string(), |bound| format!("{bound:.4}")),
            if row.held { "yes" } else { "NO" },
            100.0 * row.layer_zero_share,
            row.cost,
            row.speedup_vs_full_ops,
            row.speedup_vs_layer_ops
                .map_or_else(|| "-".to_string(), |ratio| format!("{ratio:.2}x")),
        );
    }
    let _ = writeln!(
        text,
        "(loss pt: accuracy lost against full, in points; lost: share of documents full gets right and the policy wrong; bound: what the calibration certified for that share; held: loss within the budget; at L0: documents the layer-0 head answered; {} of {} budgets broken)",
        report.violations,
        report.rows.len()
    );
    text
}
