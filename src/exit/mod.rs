//! The exit decision, pure Rust over class probabilities (testable without a model):
//!
//! - [`setting`]: what a pack stores per operating point — the policy, the rule, its threshold
//!   and limits ([`PolicyConfig`]) — and the accuracy [`Budget`];
//! - [`policy`]: the four policies behind the [`ExitPolicy`] trait, the exit rule's state, and
//!   [`simulate`], which walks a policy over a document's probability grid;
//! - [`calibration`]: the search for the cheapest setting of each policy within each budget on
//!   dev grids.
//!
//! The online classifier ([`crate::classifier`]) walks documents through the same trait, so a
//! setting calibrated here behaves the same when it classifies.

pub mod calibration;
pub mod policy;
pub mod setting;

pub use calibration::{DEFAULT_BUDGETS, LabelledGrid, OperatingPoint};
pub use policy::{Cell, DocumentGrid, ExitPolicy, ExitState, Outcome, Reading, argmax, simulate};
pub use setting::{Budget, BudgetError, ExitRule, NumberedSetting, PolicyConfig, PolicyKind};
