//! One module per subcommand: its arguments (clap derive; the doc comments are the help text)
//! and a `run` that calls the library and prints.

pub mod accuracy;
pub mod bench_engine;
pub mod calibrate;
pub mod classify;
pub mod completions;
pub mod eval;
pub mod inspect;
pub mod models;
pub mod quantize;
pub mod segment;
pub mod serve;
pub mod train;
