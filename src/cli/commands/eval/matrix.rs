//! `eval --models`: every model × policy timed side by side in one interleaved run, the
//! resident memory each model adds, and the product check.

use std::collections::BTreeMap;

use exitwise::evaluation::machine::{MachineFacts, resident_memory_mb};
use exitwise::evaluation::report::{MatrixReport, MatrixRow, product_checks};
use exitwise::evaluation::runner::{
    PreparedData, interleaved_runs, measure_one, prepare_documents, warmed_classifier,
};
use exitwise::evaluation::{DocumentResult, summarise};
use exitwise::exit::{PolicyConfig, PolicyKind};
use exitwise::locations::file_name;

use super::render::render_matrix;
use super::{EvalArgs, chosen_kinds, labelled_data, token_limit, warn_left_out, write_report};
use crate::cli::resolve::{load_model, load_pack};
use crate::cli::{EXIT_OK, GlobalOptions, output};

/// Runs `exitwise eval --models`.
pub fn run(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let runs = args.runs as usize;
    let pack = load_pack(args.adapters.as_ref())?;
    let manifest = &pack.manifest;
    let data = labelled_data(args, &pack)?;
    let mut kinds = chosen_kinds(args);
    if !kinds.contains(&PolicyKind::Full) {
        // Every speed-up of the matrix is against the reference's `full`.
        kinds.insert(0, PolicyKind::Full);
    }
    let configs: Vec<PolicyConfig> = kinds
        .iter()
        .map(|&kind| pack.operating_point(kind, args.budget))
        .collect::<Result<_, _>>()?;

    // Resident memory is measured around each model's load and, below, around its session's
    // creation and warm-up (which faults its compute buffers in): their sum is the row's cost.
    let mut models = Vec::new();
    let mut rss_added = Vec::new();
    for path in &args.models {
        let before = resident_memory_mb().0;
        let model = load_model(Some(path), global)?;
        for warning in pack.check_model(model.facts(), None, false)? {
            eprintln!("warning: {warning}");
        }
        models.push(model);
        rss_added.push(resident_memory_mb().0 - before);
    }
    // Tokenization comes from each file's vocabulary (quantizations of one model agree).
    let model_refs: Vec<&exitwise::engine::Model> = models.iter().collect();
    let PreparedData {
        documents,
        left_out,
    } = prepare_documents(
        &model_refs,
        &data,
        &manifest.labels,
        token_limit(args, &pack),
    )?;
    warn_left_out(&left_out, documents.len(), args)?;

    let mut classifiers = Vec::new();
    let mut threads = 0;
    for (which, model) in models.iter().enumerate() {
        let before = resident_memory_mb().0;
        let (classifier, session_threads) = warmed_classifier(
            model,
            &pack,
            token_limit(args, &pack),
            global.threads(),
            &configs,
            &documents[0].prepared[which],
        )?;
        threads = session_threads;
        classifiers.push(classifier);
        rss_added[which] += resident_memory_mb().0 - before;
    }
    let entries: Vec<(usize, usize)> = (0..models.len())
        .flat_map(|model| (0..kinds.len()).map(move |policy| (model, policy)))
        .collect();
    let bar = output::documents_bar((documents.len() * runs) as u64, "eval");
    let results = interleaved_runs(
        runs,
        documents.len(),
        entries.len(),
        &|| bar.inc(1),
        |which, position, run, results| {
            let document = &documents[position];
            let (model, policy) = entries[which];
            let classifier = &mut classifiers[model];
            classifier.set_config(configs[policy]);
            measure_one(
                classifier,
                &document.prepared[model],
                (position, document.class, &document.id),
                run,
                results,
            )
        },
    )?;
    bar.finish_and_clear();
    let (_, peak) = resident_memory_mb();

    let classes = manifest.labels.len();
    let at = |model: usize, kind: PolicyKind| -> Option<&[DocumentResult]> {
        let policy = kinds.iter().position(|&known| known == kind)?;
        let which = entries.iter().position(|&entry| entry == (model, policy))?;
        Some(results[which].as_slice())
    };
    let reference_full = at(0, PolicyKind::Full);
    let reference_layer = at(0, PolicyKind::Layer);
    let rows: Vec<MatrixRow> = models
        .iter()
        .zip(&args.models)
        .enumerate()
        .map(|(index, (model, path))| MatrixRow {
            model: file_name(path),
            quantization: model.facts().quantization.clone().unwrap_or_default(),
            rss_added_mb: rss_added[index],
            policies: kinds
                .iter()
                .filter_map(|&kind| {
                    at(index, kind).map(|own| {
                        (
                            kind.name(),
                            summarise(own, classes, reference_full, reference_layer),
                        )
                    })
                })
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    let model_list = args
        .models
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let report = MatrixReport {
        documents: documents.len(),
        runs,
        budget: args.budget,
        data: args.data.display().to_string(),
        machine: MachineFacts::collect(
            threads,
            model_list,
            String::new(),
            String::new(),
            manifest.name.clone(),
        ),
        peak_rss_mb: peak,
        product_check: product_checks(&rows, &kinds),
        rows,
    };
    output::print(&render_matrix(&report, &kinds))?;
    write_report(args, &report)?;
    Ok(EXIT_OK)
}
