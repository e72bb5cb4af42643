//! `eval` on one model: every chosen policy (and with `--plot` every calibrated operating
//! point) timed side by side, then the oracle and the schedules from cached features.

use std::collections::BTreeMap;

use anyhow::Context as _;

use exitwise::classifier::Feeding;
use exitwise::evaluation::machine::MachineFacts;
use exitwise::evaluation::report::{EvalReport, Measured, simulations};
use exitwise::evaluation::runner::{
    EvaluationError, PreparedData, interleaved_runs, measure_one, prepare_documents, timed_entries,
    warmed_classifier,
};
use exitwise::evaluation::trace::{TRACE_FORMAT, Trace, TraceHeader, TracedData, TracedModel};
use exitwise::exit::{DocumentGrid, GridDocument, PolicyConfig, PolicyKind};
use exitwise::features::extraction::FeatureSource;
use exitwise::locations::file_name;
use exitwise::pack::calibrate::labelled_grids;

use super::render::{plot_points, render};
use super::{EvalArgs, chosen_kinds, labelled_data, token_limit, warn_left_out, write_report};
use crate::cli::feature_source::cached_features;
use crate::cli::resolve::{check_token_limit, load_model_for_pack, load_pack};
use crate::cli::{EXIT_OK, GlobalOptions, output, plot};

/// Runs `exitwise eval` without `--models`.
pub fn run(args: &EvalArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let runs = args.runs as usize;
    let pack = load_pack(args.adapters.as_ref())?;
    let manifest = &pack.manifest;
    let data = labelled_data(args, &pack)?;
    let (model, model_sha256) = load_model_for_pack(&pack, args.model.as_ref(), global, false)?;
    check_token_limit(&model, token_limit(args, &pack))?;

    let kinds = chosen_kinds(args);
    let entries = timed_entries(&pack, &kinds, args.budget, args.plot.is_some())?;

    // Tokenize once; documents without text are left out (and said so).
    let PreparedData {
        documents,
        left_out,
    } = prepare_documents(&[&model], &data, &manifest.labels, token_limit(args, &pack))?;
    warn_left_out(&left_out, documents.len(), args)?;

    let configs: Vec<PolicyConfig> = entries.iter().map(|entry| entry.config).collect();
    let (mut classifier, threads) = warmed_classifier(
        &model,
        &pack,
        token_limit(args, &pack),
        global.threads(),
        &configs,
        &documents[0].prepared[0],
    )?;

    let bar = output::documents_bar((documents.len() * runs) as u64, "eval");
    // What the first run fed, per document and entry, for --trace.
    let mut feedings: Vec<Vec<(usize, Feeding)>> = vec![Vec::new(); documents.len()];
    let results = interleaved_runs(
        runs,
        documents.len(),
        entries.len(),
        &|| bar.inc(1),
        |which, position, run, results| {
            let document = &documents[position];
            classifier.set_config(entries[which].config);
            measure_one(
                &mut classifier,
                &document.prepared[0],
                (position, document.class, &document.id),
                run,
                results,
            )?;
            if run == 0 && args.trace.is_some() {
                feedings[position].push((which, classifier.last_feeding().clone()));
            }
            Ok::<(), EvaluationError>(())
        },
    )?;
    bar.finish_and_clear();
    if let Some(path) = &args.trace {
        let header = TraceHeader {
            exitwise_trace: TRACE_FORMAT,
            model: TracedModel::new(model.path(), &model_sha256, model.facts()),
            data: TracedData::new(&args.data, &data.sha256, &args.fields.names(manifest).text),
            pack: manifest.name.clone(),
            token_limit: token_limit(args, &pack),
            settings: entries.clone(),
        };
        let trace = Trace::of_run(header, &documents, feedings);
        trace.write(path)?;
        eprintln!("trace written to `{}`", path.display());
    }

    let measured = Measured {
        entries: &entries,
        results: &results,
        budget: args.budget,
        classes: manifest.labels.len(),
    };

    // The oracle and the staircase from every cell's features.
    let mut simulated = None;
    if !args.no_simulation {
        let source = FeatureSource {
            model: &model,
            model_sha256: &model_sha256,
            token_limit: token_limit(args, &pack),
            cache_root: args.cache_dir.as_deref(),
            threads: global.threads(),
        };
        let (mut cache, _, _) = cached_features(&source, &data, "features (oracle)")?;
        let by_index: BTreeMap<usize, GridDocument> =
            labelled_grids(&pack, &model, &mut cache, &data)?
                .into_iter()
                .map(|grid| (grid.index, grid))
                .collect();
        let grids: Vec<(&DocumentGrid, usize)> = documents
            .iter()
            .map(|document| {
                by_index
                    .get(&document.index)
                    .map(|grid| (&grid.grid, document.class))
                    .with_context(|| format!("no cached features for document {}", document.index))
            })
            .collect::<anyhow::Result<_>>()?;
        let calibrated_2d = if kinds.contains(&PolicyKind::TwoDimensional) {
            Some(pack.operating_point(PolicyKind::TwoDimensional, args.budget)?)
        } else {
            None
        };
        simulated = simulations(
            &grids,
            calibrated_2d.as_ref(),
            pack.heads.len(),
            pack.exit_models(),
        );
    }
    let (oracle, oracle_costs, schedule) = match simulated {
        Some((oracle, costs, schedule)) => (Some(oracle), Some(costs), schedule),
        None => (None, None, None),
    };

    let report = EvalReport {
        documents: documents.len(),
        runs,
        budget: args.budget,
        data: args.data.display().to_string(),
        labels: manifest.labels.clone(),
        machine: MachineFacts {
            placement: model.placement(),
            ..MachineFacts::collect(
                threads,
                model.path().display().to_string(),
                model_sha256.clone(),
                model.facts().quantization.clone().unwrap_or_default(),
                manifest.name.clone(),
            )
        },
        policies: measured.policy_summaries(&kinds),
        oracle,
        schedule,
        operating_points: measured.operating_points(),
        per_document: measured.document_reports(&documents, oracle_costs.as_deref()),
    };

    output::print(&render(&report, &kinds))?;
    write_report(args, &report)?;
    if let Some(path) = &args.plot {
        plot::draw_operating_points(
            path,
            &plot_points(&report),
            report.oracle.as_ref().map(|oracle| oracle.accuracy),
            &format!("{} on {}", manifest.name, file_name(&args.data)),
        )
        .with_context(|| format!("cannot draw the plot `{}`", path.display()))?;
        eprintln!("plot written to `{}`", path.display());
    }
    Ok(EXIT_OK)
}
