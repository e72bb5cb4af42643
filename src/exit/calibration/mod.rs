//! Exit calibration: for each policy and accuracy budget, the setting to use.
//!
//! **With a guarantee** ([`calibrate_fixed_sequence`], Learn then Test as CALM does for early
//! exit): a document is *lost* when `full` answers it correctly and the setting does not
//! ([`LossKind::AccuracyLoss`]), or, without labels, when the setting answers differently from
//! `full` ([`LossKind::Disagreement`]); either share bounds the accuracy a setting loses against
//! `full`. For a budget of ε points and a risk δ, the settings of a policy are tested in a fixed
//! order from conservative to aggressive ([`ExitSequence`], fixed on the training data before
//! the calibration data is seen); a setting passes when the Clopper–Pearson upper bound
//! ([`super::bound`]) of its loss rate on the calibration documents is at most ε, and the test
//! stops at the first that fails. The last setting that passed is used: with probability at
//! least 1 − δ over the calibration sample, its loss on new documents from the same
//! distribution is at most ε. When not even the first passes, the policy uses `full`'s setting.
//!
//! **By point estimates** ([`calibrate_point_estimates`], what packs of format 1 did): the
//! cheapest setting whose dev accuracy is within the budget. Kept to compare against; it picks
//! the winner of many noisy estimates and is optimistic by construction.
//!
//! Cost is the share of the whole documents' token×layer operations at full depth that a setting
//! computes, summed over all documents (long documents weigh what they cost). The search runs
//! over probability grids; [`crate::pack`] builds them from cached features.
//!
//! The work is split by what it does: `measurement.rs` simulates settings over the calibration
//! documents (quality, cost, losses); `sequences.rs` lays out the settings searched and the
//! order they are tested in; `operating_points.rs` chooses each policy's setting per budget.

mod measurement;
mod operating_points;
mod sequences;
#[cfg(test)]
mod tests;

pub use measurement::{
    CalibrationSet, GridDocument, LossKind, Measurement, full_answers, measure, measure_all,
};
pub use operating_points::{
    CalibrationMethod, DEFAULT_BUDGETS, DEFAULT_DELTA, NumberedOperatingPoint, OperatingPoint,
    calibrate_fixed_sequence, calibrate_point_estimates, certify,
};
pub use sequences::{
    ExitSequence, LAYER_ZERO_THRESHOLDS, RuleSet, SEQUENCE_LENGTH, candidate_configs,
    exit_sequences, layer_zero_path,
};
