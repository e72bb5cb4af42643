//! What `exitwise eval` reports, built from the measured results: per policy, per operating
//! point and per document, with the oracle and the schedules (single model), or the models ×
//! policies matrix with the product check (`--models`). Every layer and sentence figure here is
//! numbered from 1.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::exit::{Budget, DocumentGrid, ExitModels, PolicyConfig, PolicyKind};

use super::machine::MachineFacts;
use super::oracle::{OracleReport, oracle_report};
use super::runner::{Entry, EvalDocument};
use super::schedules::{ScheduleReport, compare_schedules};
use super::statistics::{DocumentResult, PolicySummary, summarise};

/// One operating point's figures (every calibrated budget with `--plot`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatingPointReport {
    /// The policy's name.
    pub policy: &'static str,
    /// The budget.
    pub budget: Budget,
    /// Accuracy on the data.
    pub accuracy: f64,
    /// Wall-clock speed-up over `full`, when `full` was timed.
    pub speedup_vs_full_wall: Option<f64>,
    /// Operation speed-up over `full`, when `full` was timed.
    pub speedup_vs_full_ops: Option<f64>,
}

/// One document's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentReport {
    /// Position in the data file (from 0, as in the file's order).
    pub index: usize,
    /// True class index.
    pub class: usize,
    /// Each policy's result at the reported budget.
    pub policies: BTreeMap<&'static str, DocumentPolicyReport>,
    /// The oracle's cost, when simulated.
    pub oracle_token_layers: Option<u64>,
}

/// One policy's result on one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentPolicyReport {
    /// Predicted class index.
    pub predicted: usize,
    /// Number of the answering layer, from 1.
    pub exit_layer: usize,
    /// Sentences read.
    pub sentences_read: usize,
    /// Token×layer operations computed.
    pub token_layers: u64,
    /// Token×layer operations of the whole document at full depth.
    pub full_token_layers: u64,
    /// Milliseconds of each run.
    pub ms: Vec<f64>,
}

/// `eval`'s report on one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Documents classified.
    pub documents: usize,
    /// Runs over them.
    pub runs: usize,
    /// The reported budget.
    pub budget: Budget,
    /// The data file.
    pub data: String,
    /// The pack's labels.
    pub labels: Vec<String>,
    /// Where it was measured.
    pub machine: MachineFacts,
    /// Each policy at the reported budget.
    pub policies: BTreeMap<&'static str, PolicySummary>,
    /// The oracle, when simulated.
    pub oracle: Option<OracleReport>,
    /// The schedule comparison, when simulated and 2d was run.
    pub schedule: Option<ScheduleReport>,
    /// Every timed operating point.
    pub operating_points: Vec<OperatingPointReport>,
    /// Every document.
    pub per_document: Vec<DocumentReport>,
}

/// The measured entries and their results, side by side.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    /// The settings timed.
    pub entries: &'a [Entry],
    /// Their results, one list per entry, in document order.
    pub results: &'a [Vec<DocumentResult>],
    /// The reported budget.
    pub budget: Budget,
    /// Classes of the pack.
    pub classes: usize,
}

impl<'a> Measured<'a> {
    /// The results of `kind` at the reported budget, if it was run.
    pub fn main_results(&self, kind: PolicyKind) -> Option<&'a [DocumentResult]> {
        self.entries
            .iter()
            .position(|entry| entry.kind == kind && entry.is_main(self.budget))
            .map(|position| self.results[position].as_slice())
    }

    fn summarise(&self, own: &[DocumentResult]) -> PolicySummary {
        summarise(
            own,
            self.classes,
            self.main_results(PolicyKind::Full),
            self.main_results(PolicyKind::Layer),
        )
    }

    /// Each of `kinds` at the reported budget.
    pub fn policy_summaries(&self, kinds: &[PolicyKind]) -> BTreeMap<&'static str, PolicySummary> {
        kinds
            .iter()
            .filter_map(|&kind| {
                self.main_results(kind)
                    .map(|own| (kind.name(), self.summarise(own)))
            })
            .collect()
    }

    /// Every timed operating point.
    pub fn operating_points(&self) -> Vec<OperatingPointReport> {
        self.entries
            .iter()
            .zip(self.results)
            .map(|(entry, own)| {
                let summary = self.summarise(own);
                OperatingPointReport {
                    policy: entry.kind.name(),
                    budget: entry.budget,
                    accuracy: summary.accuracy,
                    speedup_vs_full_wall: summary.speedup_vs_full_wall,
                    speedup_vs_full_ops: summary.speedup_vs_full_ops,
                }
            })
            .collect()
    }

    /// Every document's results at the reported budget, with the oracle's costs (in document
    /// order) when simulated.
    pub fn document_reports(
        &self,
        documents: &[EvalDocument],
        oracle_costs: Option<&[u64]>,
    ) -> Vec<DocumentReport> {
        documents
            .iter()
            .enumerate()
            .map(|(position, document)| DocumentReport {
                index: document.index,
                class: document.class,
                policies: self
                    .entries
                    .iter()
                    .zip(self.results)
                    .filter(|(entry, _)| entry.is_main(self.budget))
                    .map(|(entry, own)| {
                        let result = &own[position];
                        (
                            entry.kind.name(),
                            DocumentPolicyReport {
                                predicted: result.predicted,
                                exit_layer: result.exit_layer,
                                sentences_read: result.sentences_read,
                                token_layers: result.token_layers,
                                full_token_layers: result.full_token_layers,
                                ms: result.milliseconds.clone(),
                            },
                        )
                    })
                    .collect(),
                oracle_token_layers: oracle_costs.map(|costs| costs[position]),
            })
            .collect()
    }
}

/// The oracle and, given the calibrated 2d setting, the schedule comparison, simulated on the
/// probability grids of the evaluated documents (`grids` in document order) on a model with
/// `layers` layers; also the oracle's cost per document. `None` without documents.
pub fn simulations(
    grids: &[(&DocumentGrid, usize)],
    calibrated_2d: Option<&PolicyConfig>,
    layers: usize,
    models: ExitModels<'_>,
) -> Option<(OracleReport, Vec<u64>, Option<ScheduleReport>)> {
    let (oracle, costs) = oracle_report(grids)?;
    let schedule = calibrated_2d.map(|config| compare_schedules(grids, config, layers, models));
    Some((oracle, costs, schedule))
}

/// One model's row of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixRow {
    /// The model file's name.
    pub model: String,
    /// Its quantization.
    pub quantization: String,
    /// Resident memory added by loading the model, creating its session and the warm-up (MB).
    pub rss_added_mb: f64,
    /// Each policy, its speed-ups against the first model's `full` and `layer`.
    pub policies: BTreeMap<&'static str, PolicySummary>,
}

/// Whether quantization and an exit policy multiply their savings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductCheck {
    /// The model.
    pub model: String,
    /// Wall-clock speed-up of this model's `full` over the reference's `full`.
    pub quantization_speedup: f64,
    /// Wall-clock speed-up of the reference's exit policy over its `full`.
    pub exit_speedup: f64,
    /// Their product: what the two savings would give if they multiplied.
    pub predicted: f64,
    /// Measured: this model's exit policy over the reference's `full`.
    pub measured: f64,
    /// The exit policy compared.
    pub policy: &'static str,
}

/// `eval --models`: the models × policies matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatrixReport {
    /// Documents classified.
    pub documents: usize,
    /// Runs over them.
    pub runs: usize,
    /// The budget of the exit policies.
    pub budget: Budget,
    /// The data file.
    pub data: String,
    /// Where it was measured.
    pub machine: MachineFacts,
    /// The process's peak resident memory (MB).
    pub peak_rss_mb: f64,
    /// One row per model, the reference first.
    pub rows: Vec<MatrixRow>,
    /// Every (model after the first, exit policy) pair.
    pub product_check: Vec<ProductCheck>,
}

/// The product check of every exit policy of `kinds` on every row after the reference (the
/// first): the measured speed-up over the reference's `full` next to quantization alone ×
/// the exit policy alone.
pub fn product_checks(rows: &[MatrixRow], kinds: &[PolicyKind]) -> Vec<ProductCheck> {
    let wall = |row: &MatrixRow, kind: PolicyKind| {
        row.policies
            .get(kind.name())
            .and_then(|summary| summary.speedup_vs_full_wall)
    };
    let Some(reference) = rows.first() else {
        return Vec::new();
    };
    let mut checks = Vec::new();
    for &kind in kinds.iter().filter(|&&kind| kind != PolicyKind::Full) {
        for row in rows.iter().skip(1) {
            if let (Some(quantization), Some(exit), Some(measured)) = (
                wall(row, PolicyKind::Full),
                wall(reference, kind),
                wall(row, kind),
            ) {
                checks.push(ProductCheck {
                    model: row.model.clone(),
                    quantization_speedup: quantization,
                    exit_speedup: exit,
                    predicted: quantization * exit,
                    measured,
                    policy: kind.name(),
                });
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{ExitRule, PolicyConfig};

    fn result(class: usize, predicted: usize, token_layers: u64, ms: f64) -> DocumentResult {
        DocumentResult {
            class,
            predicted,
            exit_layer: 3,
            sentences_read: 2,
            token_layers,
            full_token_layers: 100,
            milliseconds: vec![ms],
        }
    }

    fn entry(kind: PolicyKind, hundredths: u32) -> Entry {
        Entry {
            kind,
            budget: Budget::from_hundredths(hundredths),
            config: PolicyConfig {
                kind,
                rule: ExitRule::MaxProbability,
                ..PolicyConfig::full(4, 3)
            },
        }
    }

    #[test]
    fn reports_use_the_main_budget_and_compare_against_full() {
        let entries = [
            entry(PolicyKind::Full, 0),
            entry(PolicyKind::Layer, 100),
            entry(PolicyKind::Layer, 200),
        ];
        let results = vec![
            vec![result(0, 0, 100, 10.0), result(1, 1, 100, 10.0)],
            vec![result(0, 0, 50, 4.0), result(1, 0, 50, 6.0)],
            vec![result(0, 0, 25, 2.0), result(1, 0, 25, 3.0)],
        ];
        let measured = Measured {
            entries: &entries,
            results: &results,
            budget: Budget::from_hundredths(100),
            classes: 2,
        };
        let summaries = measured.policy_summaries(&[PolicyKind::Full, PolicyKind::Layer]);
        assert_eq!(summaries["layer"].accuracy, 0.5);
        // 20 ms of full against 10 ms of layer at budget 1; 200 against 100 operations.
        assert_eq!(summaries["layer"].speedup_vs_full_wall, Some(2.0));
        assert_eq!(summaries["layer"].speedup_vs_full_ops, Some(2.0));
        assert_eq!(summaries["layer"].mean_exit_layer, 3.0);
        let points = measured.operating_points();
        assert_eq!(points.len(), 3);
        assert_eq!(points[2].budget, Budget::from_hundredths(200));
        assert_eq!(points[2].speedup_vs_full_ops, Some(4.0));
        let documents = [
            EvalDocument {
                index: 7,
                id: "a".into(),
                class: 0,
                prepared: Vec::new(),
            },
            EvalDocument {
                index: 9,
                id: "b".into(),
                class: 1,
                prepared: Vec::new(),
            },
        ];
        let reports = measured.document_reports(&documents, Some(&[11, 12]));
        assert_eq!(reports[1].index, 9);
        assert_eq!(reports[1].oracle_token_layers, Some(12));
        // The budget-2 point is not a document's reported result.
        assert_eq!(reports[1].policies.len(), 2);
        assert_eq!(reports[1].policies["layer"].token_layers, 50);
        assert_eq!(reports[1].policies["layer"].exit_layer, 3);
    }

    #[test]
    fn the_product_check_multiplies_the_separate_speedups() {
        let summary = |wall: f64| PolicySummary {
            speedup_vs_full_wall: Some(wall),
            ..summarise(&[result(0, 0, 1, 1.0)], 2, None, None)
        };
        let row = |model: &str, full: f64, two_dimensional: f64| MatrixRow {
            model: model.into(),
            quantization: String::new(),
            rss_added_mb: 0.0,
            policies: BTreeMap::from([("full", summary(full)), ("2d", summary(two_dimensional))]),
        };
        let rows = [row("f16", 1.0, 5.0), row("q4", 0.9, 4.8)];
        let checks = product_checks(&rows, &[PolicyKind::Full, PolicyKind::TwoDimensional]);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].model, "q4");
        assert_eq!(checks[0].policy, "2d");
        assert!((checks[0].predicted - 4.5).abs() < 1e-12);
        assert_eq!(checks[0].measured, 4.8);
    }
}
