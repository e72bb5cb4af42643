//! Measuring what early exit buys: `exitwise eval`'s interleaved timing of the policies
//! ([`runner`]), its statistics ([`statistics`]), the oracle ([`oracle`]), the paper's staircase
//! schedule against the depth-capped 2d walk ([`schedules`]), the reports built from them
//! ([`report`]) with the machine's facts ([`machine`]), and the engine benchmark
//! ([`engine_benchmark`]) with its check that a GPU computes what the CPU does
//! ([`device_agreement`]), whether a pack's budgets hold on labelled data ([`budgets`]), and
//! traces of what `eval` fed to the model, replayed elsewhere for their cost ([`trace`]).

pub mod budgets;
pub mod device_agreement;
pub mod engine_benchmark;
pub mod machine;
pub mod oracle;
pub mod report;
pub mod runner;
pub mod schedules;
pub mod statistics;
pub mod trace;

pub use statistics::{DocumentResult, PolicySummary, median, quantile, summarise};
