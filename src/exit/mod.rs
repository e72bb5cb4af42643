//! The exit decision, pure Rust over class probabilities (testable without a model):
//!
//! - [`setting`]: what a pack stores per operating point — the policy, the rule, its threshold
//!   and limits ([`PolicyConfig`]) — and the accuracy [`Budget`];
//! - [`policy`]: the four policies behind the [`ExitPolicy`] trait, the exit rule's state, and
//!   [`simulate`], which walks a policy over a document's probability grid;
//! - [`learned`]: the learned exit rule — what a walk knows at a cell, and the small model that
//!   turns it into the probability that the answer there is final-quality;
//! - [`calibration`]: the choice of each policy's setting for each budget on calibration grids,
//!   with an upper confidence bound of the loss ([`bound`]) so that the budget holds on new
//!   documents of the same kind.
//!
//! The online classifier ([`crate::classifier`]) walks documents through the same trait, so a
//! setting calibrated here behaves the same when it classifies.

pub mod bound;
pub mod calibration;
pub mod learned;
pub mod policy;
pub mod setting;

pub use calibration::{DEFAULT_BUDGETS, DEFAULT_DELTA, GridDocument, OperatingPoint};
pub use learned::{ExitModel, ExitModels, WalkContext};
pub use policy::{Cell, DocumentGrid, ExitPolicy, ExitState, Outcome, Reading, argmax, simulate};
pub use setting::{
    Budget, BudgetError, ExitRule, ExitTarget, NumberedSetting, PolicyConfig, PolicyKind,
};
