//! exitwise: text classification with two-dimensional early exit on GGUF models.
//!
//! Only [`engine`] touches llama.cpp and contains `unsafe` code; everything else is pure Rust
//! and testable without a model.
#![deny(unsafe_code)]

pub mod calibration;
pub mod catalog;
pub mod classifier;
pub mod dataset;
pub mod document;
pub mod engine;
pub mod evaluation;
pub mod extraction;
pub mod feature_cache;
pub mod features;
pub mod gguf;
pub mod heads;
pub mod pack;
pub mod policy;
pub mod record;
pub mod segment;
pub mod server;
pub mod training;
