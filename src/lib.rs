//! exitwise: text classification with two-dimensional early exit on GGUF models.
//!
//! # Module map
//!
//! The folders follow a document's path through the program; each module uses only those
//! listed above it (dependencies point one way, up this list):
//!
//! | module | what it does |
//! |---|---|
//! | [`formats`] | a file's bytes become the text a person reads: mail and mailboxes, web pages, PDF, DOCX, ODT, plain text in any common encoding; recognised by content, each read by a kept crate, bounded in size, time and memory |
//! | [`gguf`] | parses and validates a GGUF file's header before llama.cpp sees the file |
//! | [`engine`] | llama.cpp: models, sessions that tap every layer's hidden states and stop the graph, quantization. The only module with `unsafe` |
//! | [`catalog`], [`dataset`], [`locations`], [`durable`], [`digest`], [`threads`] | the models exitwise can fetch; labelled data files (JSON Lines, CSV, TSV); where models and packs are looked up; files written so that a crash or a power loss never leaves half of one; SHA-256 as lowercase hex; work spread over threads without losing a panic |
//! | [`text`] | a text becomes sentences, and sentences become the model's tokens under a token limit |
//! | [`features`] | per-layer features of sentence prefixes, their on-disk cache, and the extraction that fills it |
//! | [`heads`] | one calibrated logistic-regression head per layer, and how they are trained |
//! | [`exit`] | the exit settings, the four policies and their rules, walked over probability grids, and the calibration search |
//! | [`pack`] | the adapter pack: heads + manifest + calibrated operating points, its file format, assembly and calibration |
//! | [`classifier`] | the online walk through the engine under a policy, the result record users see, several documents at once on sessions over one model, and batch jobs that resume and shard |
//! | [`evaluation`] | `eval`'s measuring, statistics, oracle, schedule comparison, engine benchmark and reports |
//! | [`server`] | the HTTP service: request types, the model thread behind a bounded queue, metrics, systemd |
//!
//! The command-line interface (`src/cli/`, in the binary) parses arguments, calls these modules
//! and prints.
//!
//! # Numbering
//!
//! Inside the library, layers and sentences are 0-based indices ([`exit::Cell`]), as are the
//! layer fields of a pack's `adapter.toml`. Everything a user reads — result records, tables,
//! `eval --json`, metrics, the service's answers — numbers layers and sentences from 1 ("layer
//! 4 of 18", "2 sentences read").
#![deny(unsafe_code)]

pub mod catalog;
pub mod classifier;
pub mod dataset;
pub mod digest;
pub mod durable;
pub mod engine;
pub mod evaluation;
pub mod exit;
pub mod features;
pub mod formats;
pub mod gguf;
pub mod heads;
pub mod locations;
pub mod pack;
pub mod server;
pub mod text;
pub mod threads;
