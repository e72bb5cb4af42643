//! The exit decision, pure Rust over class probabilities (testable without a model):
//!
//! - [`setting`]: what a pack stores per operating point — the policy, the rule, its threshold
//!   and limits ([`PolicyConfig`]) — and the accuracy [`Budget`];
//! - [`grid`]: a document's cells (sentence prefix × layer) and their class probabilities, and
//!   what a walk over them did ([`Outcome`]);
//! - [`learned`]: the learned exit rule as a walk uses it — what a walk knows at a cell, and the
//!   small model that turns it into the probability that the answer there is final-quality;
//! - [`policy`]: the four policies behind the [`ExitPolicy`] trait, the exit rule's state, and
//!   [`simulate`], which walks a policy over a document's probability grid;
//! - [`learned_training`]: the learned rule's training, on the cells the policies' walks visit;
//! - [`calibration`]: the choice of each policy's setting for each budget on calibration grids,
//!   with an upper confidence bound of the loss ([`bound`]) so that the budget holds on new
//!   documents of the same kind.
//!
//! Each module uses only those listed before it (and `setting` and `bound`, which use none).
//!
//! The online classifier ([`crate::classifier`]) walks documents through the same trait, so a
//! setting calibrated here behaves the same when it classifies.

pub mod bound;
pub mod calibration;
pub mod grid;
pub mod learned;
pub mod learned_training;
pub mod policy;
pub mod setting;

pub use calibration::{DEFAULT_BUDGETS, DEFAULT_DELTA, GridDocument, OperatingPoint};
pub use grid::{Cell, DocumentGrid, Outcome, WalkContext, argmax};
pub use learned::{ExitModel, ExitModels};
pub use policy::{ExitPolicy, ExitState, Reading, simulate};
pub use setting::{
    Budget, BudgetError, ExitRule, ExitTarget, NumberedSetting, PolicyConfig, PolicyKind,
};

#[cfg(test)]
mod tests {
    /// The modules of `exit/` in dependency order, with their sources: each may use only those
    /// before it.
    const MODULES: [(&str, &[&str]); 7] = [
        ("setting", &[include_str!("setting.rs")]),
        ("bound", &[include_str!("bound.rs")]),
        ("grid", &[include_str!("grid.rs")]),
        ("learned", &[include_str!("learned.rs")]),
        ("policy", &[include_str!("policy.rs")]),
        ("learned_training", &[include_str!("learned_training.rs")]),
        (
            "calibration",
            &[
                include_str!("calibration/mod.rs"),
                include_str!("calibration/measurement.rs"),
                include_str!("calibration/sequences.rs"),
                include_str!("calibration/operating_points.rs"),
                include_str!("calibration/tests.rs"),
            ],
        ),
    ];

    #[test]
    fn dependencies_point_one_way() {
        for (position, (module, sources)) in MODULES.iter().enumerate() {
            for (later, _) in &MODULES[position + 1..] {
                for source in *sources {
                    // Code only: a doc comment may point the reader to a later module.
                    let uses = source
                        .lines()
                        .filter(|line| !line.trim_start().starts_with("//"))
                        .any(|line| {
                            [format!("super::{later}::"), format!("exit::{later}::")]
                                .iter()
                                .any(|path| line.contains(path.as_str()))
                        });
                    assert!(!uses, "exit::{module} uses the later module exit::{later}");
                }
            }
        }
    }
}
