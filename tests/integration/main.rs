//! exitwise's integration tests: one binary, a module per area.
//!
//! Tests that need a model use the real GGUF files fetched by `make test` (models/). When a
//! model is absent they print why and skip, unless `EXITWISE_REQUIRE_MODELS=1` (set by
//! `make test` and CI), where a missing model fails the test instead of hiding it.

mod batch;
mod classifier;
mod classify;
mod cli;
mod common;
mod document;
mod engine;
mod eval;
mod formats;
mod quantize;
mod serve;
mod train;
