//! `exitwise inspect`: a model's facts, and the llama.cpp back ends that run it here.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use exitwise::catalog::{Catalog, sha256_file};

use crate::cli::resolve::load_model;
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Arguments of `exitwise inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    path: String,
    #[serde(flatten)]
    facts: exitwise::engine::ModelFacts,
    sha256: String,
    /// The catalog model with this exact hash, if any.
    catalog_model: Option<String>,
    /// What runs the model's graphs here.
    backend: exitwise::engine::BackendReport,
}

/// Runs `exitwise inspect`.
pub fn run(args: &InspectArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    // Loading through the engine validates the file and proves llama.cpp accepts it.
    let model = load_model(args.model.as_ref(), global)?;
    let facts = model.facts().clone();
    let bar = output::bytes_bar(facts.file_size, "sha256");
    let sha256 = sha256_file(model.path(), &|done| bar.set_position(done))
        .with_context(|| format!("cannot hash `{}`", model.path().display()))?;
    bar.finish_and_clear();
    let catalog_model = Catalog::embedded()?
        .models
        .iter()
        .find(|entry| entry.sha256 == sha256)
        .map(|entry| entry.name.clone());
    let report = Report {
        path: model.path().display().to_string(),
        facts,
        sha256,
        catalog_model,
        backend: exitwise::engine::backend_report()?,
    };
    if args.json {
        output::print(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        output::print(&render_text(&report))?;
    }
    Ok(EXIT_OK)
}

fn render_text(report: &Report) -> String {
    let facts = &report.facts;
    let mut rows: Vec<(&str, String)> = vec![("model", report.path.clone())];
    if let Some(name) = &facts.name {
        rows.push(("name", name.clone()));
    }
    rows.push(("architecture", facts.architecture.clone()));
    rows.push(("layers", facts.layers.to_string()));
    rows.push(("width", facts.width.to_string()));
    rows.push((
        "parameters",
        format!(
            "{} ({:.1} M)",
            facts.parameters,
            facts.parameters as f64 / 1e6
        ),
    ));
    rows.push((
        "quantization",
        facts
            .quantization
            .clone()
            .unwrap_or_else(|| "unknown".into()),
    ));
    rows.push((
        "tensor types",
        facts
            .tensor_types
            .iter()
            .map(|(kind, count)| format!("{kind} ×{count}"))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    rows.push(("vocabulary", format!("{} tokens", facts.vocabulary_size)));
    if let Some(context) = facts.trained_context {
        rows.push(("trained context", format!("{context} tokens")));
    }
    rows.push((
        "file size",
        format!(
            "{} bytes ({:.1} MiB)",
            facts.file_size,
            facts.file_size as f64 / (1024.0 * 1024.0)
        ),
    ));
    rows.push(("sha256", report.sha256.clone()));
    rows.push((
        "catalog",
        report.catalog_model.as_deref().map_or_else(
            || "not a catalog model".into(),
            |name| format!("{name} (hash matches)"),
        ),
    ));
    let backend = &report.backend;
    rows.push(("cpu back end", backend.cpu.clone()));
    rows.push(("cpu features", backend.cpu_features.join(" ")));
    rows.push((
        "gpu devices",
        if backend.gpu_devices.is_empty() {
            "none".to_string()
        } else {
            backend.gpu_devices.join(", ")
        },
    ));
    // A portable build says which GPU plug-ins it found and what became of them: a plug-in
    // that cannot load (no CUDA runtime, no driver) must not just vanish.
    if let Some(plugins) = backend.plugins_summary() {
        rows.push(("gpu plug-ins", plugins));
    }
    let mut text = String::new();
    for (key, value) in rows {
        let _ = writeln!(text, "{key:<16}{value}");
    }
    text
}
