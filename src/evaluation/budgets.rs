//! Whether a pack's budgets hold on labelled data: every calibrated operating point simulated
//! on the documents' probability grids (from cached features, no timing), its accuracy lost
//! against `full` next to its budget.

use serde::Serialize;

use crate::exit::calibration::{CalibrationSet, GridDocument, LossKind, full_answers, measure};
use crate::exit::{Budget, NumberedSetting, PolicyKind};
use crate::pack::AdapterPack;

/// One operating point on the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetRow {
    /// The policy.
    pub policy: &'static str,
    /// The budget in points.
    pub budget: Budget,
    /// The setting (layers from 1).
    pub setting: NumberedSetting,
    /// Whether nothing was certified and `full`'s setting runs.
    pub fallback: bool,
    /// Accuracy on the data.
    pub accuracy: f64,
    /// `full`'s accuracy minus this one, in points.
    pub accuracy_loss_points: f64,
    /// Share of documents `full` answers correctly and this setting does not.
    pub lost_share: f64,
    /// The loss bound the calibration certified (absent for point estimates).
    pub calibration_bound: Option<f64>,
    /// Whether the accuracy loss is within the budget.
    pub held: bool,
    /// Share of documents the layer-0 head answered.
    pub layer_zero_share: f64,
    /// Token×layer operations over those of whole documents at full depth.
    pub cost: f64,
    /// Operations of `full` over this setting's.
    pub speedup_vs_full_ops: f64,
    /// Operations of `layer` at the same budget over this setting's.
    pub speedup_vs_layer_ops: Option<f64>,
}

/// Every operating point of a pack on a labelled data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetReport {
    /// The pack.
    pub pack: String,
    /// How its points were calibrated.
    pub method: &'static str,
    /// The calibration's risk δ.
    pub delta: Option<f64>,
    /// Documents simulated.
    pub documents: usize,
    /// `full`'s accuracy on them.
    pub full_accuracy: f64,
    /// One row per policy and budget.
    pub rows: Vec<BudgetRow>,
    /// Rows whose budget did not hold.
    pub violations: usize,
}

/// Simulates every calibrated operating point of `pack` on `documents` (labelled grids from the
/// pack's heads).
pub fn budget_check(pack: &AdapterPack, documents: &[GridDocument]) -> BudgetReport {
    let layers = pack.heads.len();
    let decision_layer = pack.manifest.best_layer;
    let answers = full_answers(documents, layers, decision_layer);
    let set = CalibrationSet {
        documents,
        full_answers: &answers,
        layers,
        models: pack.exit_models(),
    };
    let full = measure(
        &crate::exit::PolicyConfig::full(layers, decision_layer),
        &set,
        LossKind::AccuracyLoss,
    );
    let full_accuracy = full.accuracy.unwrap_or(0.0);
    let calibration = pack.manifest.calibration.as_ref();
    let points: Vec<_> = calibration
        .into_iter()
        .flat_map(|calibration| &calibration.operating_points)
        .filter(|point| point.policy() != PolicyKind::Full)
        .collect();
    let measured: Vec<_> = points
        .iter()
        .map(|point| measure(&point.config, &set, LossKind::AccuracyLoss))
        .collect();
    let layer_cost = |budget: Budget| {
        points
            .iter()
            .zip(&measured)
            .find(|(point, _)| point.policy() == PolicyKind::Layer && point.budget == budget)
            .map(|(_, measurement)| measurement.cost)
    };
    let rows: Vec<BudgetRow> = points
        .iter()
        .zip(&measured)
        .map(|(point, measurement)| {
            let accuracy = measurement.accuracy.unwrap_or(0.0);
            let accuracy_loss_points = (full_accuracy - accuracy) * 100.0;
            BudgetRow {
                policy: point.policy().name(),
                budget: point.budget,
                setting: point.config.numbered(),
                fallback: point.is_fallback(),
                accuracy,
                accuracy_loss_points,
                lost_share: measurement.loss_rate(),
                calibration_bound: point.loss_bound,
                held: accuracy_loss_points <= point.budget.points() + 1e-9,
                layer_zero_share: measurement.layer_zero_answers as f64
                    / measurement.documents.max(1) as f64,
                cost: measurement.cost,
                speedup_vs_full_ops: 1.0 / measurement.cost.max(1e-12),
                speedup_vs_layer_ops: layer_cost(point.budget)
                    .map(|layer| layer / measurement.cost.max(1e-12)),
            }
        })
        .collect();
    BudgetReport {
        pack: pack.manifest.name.clone(),
        method: calibration.map_or("none", |calibration| calibration.method().name()),
        delta: calibration.and_then(|calibration| calibration.delta),
        documents: documents.len(),
        full_accuracy,
        violations: rows.iter().filter(|row| !row.held).count(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::calibration::OperatingPoint;
    use crate::exit::grid::two_class_grid as grid;
    use crate::exit::{ExitRule, PolicyConfig};
    use crate::pack::{CalibrationSection, sample_pack};

    #[test]
    fn rows_compare_each_point_s_loss_with_its_budget() {
        // 10 documents of class 1 on the sample pack's 3 layers; `full` answers with layer 2
        // (right on all); layer 0 is right on the first 8 only.
        let documents: Vec<GridDocument> = (0..10)
            .map(|index| GridDocument {
                index,
                grid: grid(
                    &[10],
                    3,
                    move |_, layer| {
                        if layer == 0 && index >= 8 { 0.2 } else { 0.8 }
                    },
                ),
                class: Some(1),
            })
            .collect();
        let eager = PolicyConfig {
            kind: PolicyKind::Layer,
            rule: ExitRule::MaxProbability,
            threshold: 0.5,
            ..PolicyConfig::full(3, 2)
        };
        let point = |hundredths, config: PolicyConfig| OperatingPoint {
            budget: Budget::from_hundredths(hundredths),
            policy: Some(PolicyKind::Layer),
            config,
            dev_accuracy: None,
            dev_cost: 0.0,
            dev_loss: None,
            loss_bound: Some(0.01),
        };
        let mut pack = sample_pack();
        pack.manifest.calibration = Some(CalibrationSection {
            dev_documents: 10,
            method: None,
            loss: None,
            rules: None,
            delta: None,
            data: None,
            operating_points: vec![
                point(0, PolicyConfig::full(3, 2)),
                point(400, eager),
                point(2000, eager),
            ],
        });
        let report = budget_check(&pack, &documents);
        assert_eq!(report.documents, 10);
        assert_eq!(report.full_accuracy, 1.0);
        assert_eq!(report.rows.len(), 3);
        // Budget 0: nothing certified, `full`'s setting: no loss, held.
        assert!(report.rows[0].fallback && report.rows[0].held);
        assert_eq!(report.rows[0].cost, 1.0);
        // Layer 0 answers: 2 of 10 lost, 20 points; over a budget of 4, within one of 20.
        let at_four = &report.rows[1];
        assert!((at_four.accuracy_loss_points - 20.0).abs() < 1e-9);
        assert!((at_four.lost_share - 0.2).abs() < 1e-12);
        assert!(!at_four.held);
        assert!((at_four.speedup_vs_full_ops - 3.0).abs() < 1e-9);
        assert_eq!(at_four.speedup_vs_layer_ops, Some(1.0));
        assert!(report.rows[2].held);
        assert_eq!(report.violations, 1);
    }
}
