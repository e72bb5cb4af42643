//! `exitwise eval`: every policy side by side, figures consistent with the per-document results.

use std::path::Path;

use serde_json::Value;

use crate::common::{TestModel, answering_layer, exitwise, model_path, text};

/// 20 labelled reviews: the fixtures' train and dev files.
fn twenty_reviews(dir: &Path) -> std::path::PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut lines = String::new();
    for name in ["reviews-train.jsonl", "reviews-dev.jsonl"] {
        lines.push_str(&std::fs::read_to_string(fixtures.join(name)).expect("fixture"));
    }
    let lines: Vec<&str> = lines.lines().take(20).collect();
    assert_eq!(lines.len(), 20);
    let path = dir.join("reviews.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the data");
    path
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {value}"))
}

#[test]
fn eval_runs_every_policy_and_its_figures_match_the_documents() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = twenty_reviews(dir.path());
    let json = dir.path().join("eval.json");
    let plot = dir.path().join("eval.svg");
    let output = exitwise(
        &[
            "eval",
            "--threads",
            "1",
            "--model",
            model.to_str().expect("utf-8 path"),
            "--data",
            data.to_str().expect("utf-8 path"),
            "--runs",
            "2",
            "--json",
            json.to_str().expect("utf-8 path"),
            "--plot",
            plot.to_str().expect("utf-8 path"),
            "--cache-dir",
            dir.path().join("cache").to_str().expect("utf-8 path"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    for policy in ["full", "layer", "sentence", "2d", "oracle", "staircase"] {
        assert!(table.contains(policy), "{policy} missing from:\n{table}");
    }
    let svg = std::fs::read_to_string(&plot).expect("the plot is written");
    assert!(svg.starts_with("<svg") && svg.contains("2d"), "{svg}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    assert_eq!(report["documents"], 20);
    for fact in ["cpu", "threads", "build_features", "model_sha256", "pack"] {
        assert!(!report["machine"][fact].is_null(), "machine.{fact} missing");
    }
    assert_eq!(report["machine"]["pack"], "gemma3-270m-imdb");
    let documents = report["per_document"]
        .as_array()
        .expect("per-document results");
    assert_eq!(documents.len(), 20);

    // Recompute every policy's figures from the per-document results.
    let total = |policy: &str, field: &str| -> f64 {
        documents
            .iter()
            .map(|document| {
                let value = &document["policies"][policy][field];
                match value {
                    Value::Array(runs) => {
                        // Times: the median of two runs is their mean.
                        runs.iter().filter_map(Value::as_f64).sum::<f64>() / runs.len() as f64
                    }
                    _ => value.as_f64().expect("a number"),
                }
            })
            .sum()
    };
    for policy in ["full", "layer", "sentence", "2d"] {
        let summary = &report["policies"][policy];
        for field in [
            "accuracy",
            "macro_f1",
            "docs_per_s",
            "ms_median",
            "ms_p90",
            "mean_exit_layer",
            "mean_sentences_read",
            "token_layers_mean",
            "speedup_vs_full_wall",
            "speedup_vs_layer_wall",
            "speedup_vs_full_ops",
            "speedup_vs_layer_ops",
        ] {
            assert!(
                summary[field].is_number(),
                "{policy}.{field} missing: {summary}"
            );
        }
        let correct = documents
            .iter()
            .filter(|document| document["policies"][policy]["predicted"] == document["class"])
            .count();
        assert!((number(summary, "accuracy") - correct as f64 / 20.0).abs() < 1e-9);
        let operations = total(policy, "token_layers");
        assert!(
            (number(summary, "token_layers_mean") - operations / 20.0).abs() < 1e-6,
            "{policy}"
        );
        assert!(
            (number(summary, "speedup_vs_full_ops") - total("full", "token_layers") / operations)
                .abs()
                < 1e-9
        );
        assert!(
            (number(summary, "speedup_vs_layer_ops") - total("layer", "token_layers") / operations)
                .abs()
                < 1e-9
        );
        // Wall-clock: the median over runs of the run totals; with two runs, their mean, which
        // is the sum of the per-document means.
        let wall = total(policy, "ms");
        let expected = total("full", "ms") / wall;
        assert!(
            (number(summary, "speedup_vs_full_wall") - expected).abs() < 1e-6 * expected,
            "{policy}: {} vs {expected}",
            number(summary, "speedup_vs_full_wall")
        );
        assert!((number(summary, "docs_per_s") - 20.0 / (wall / 1000.0)).abs() < 1e-6 * 20.0);
    }
    assert_eq!(
        number(&report["policies"]["full"], "speedup_vs_full_ops"),
        1.0
    );
    // Layers are numbered from 1 in every output: `full` answers with the pack's best layer.
    let answering_layer = answering_layer();
    assert_eq!(
        number(&report["policies"]["full"], "mean_exit_layer"),
        answering_layer as f64
    );
    for document in documents {
        assert_eq!(
            document["policies"]["full"]["exit_layer"], answering_layer,
            "{document}"
        );
        for policy in ["layer", "sentence", "2d"] {
            let result = &document["policies"][policy];
            let layer = result["exit_layer"].as_u64().expect("exit layer");
            assert!((0..=18).contains(&layer), "{policy}: {document}");
            // Layer 0 is the pack's layer-0 head: no model layer ran.
            if layer == 0 {
                assert_eq!(result["token_layers"], 0, "{policy}: {document}");
            }
        }
    }

    // The oracle: never dearer than a policy that answers the document correctly.
    let oracle = &report["oracle"];
    assert!(number(oracle, "accuracy") >= number(&report["policies"]["full"], "accuracy"));
    for document in documents {
        let oracle_cost = document["oracle_token_layers"]
            .as_u64()
            .expect("oracle cost");
        for policy in ["full", "layer", "sentence", "2d"] {
            let result = &document["policies"][policy];
            if result["predicted"] == document["class"] {
                assert!(
                    oracle_cost <= result["token_layers"].as_u64().expect("cost"),
                    "{policy}: {document}"
                );
            }
        }
    }
}

#[test]
fn eval_refuses_zero_runs_and_a_plot_format_it_cannot_write() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = twenty_reviews(dir.path());
    let base = [
        "eval",
        "--model",
        model.to_str().expect("utf-8 path"),
        "--data",
        data.to_str().expect("utf-8 path"),
    ];
    let zero = exitwise(&[&base[..], &["--runs", "0"]].concat(), b"");
    assert_eq!(zero.status.code(), Some(2), "{}", text(&zero.stderr));
    assert!(
        text(&zero.stderr).contains("--runs"),
        "{}",
        text(&zero.stderr)
    );
    let pdf = dir.path().join("plot.pdf");
    let output = exitwise(
        &[&base[..], &["--plot", pdf.to_str().expect("utf-8 path")]].concat(),
        b"",
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("name the file `*.svg` or `*.png`"),
        "{}",
        text(&output.stderr)
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn eval_of_several_models_prints_the_matrix_and_the_product_check() {
    let Some(model) = model_path(TestModel::Gemma) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = twenty_reviews(dir.path());
    let json = dir.path().join("matrix.json");
    let model = model.to_str().expect("utf-8 path");
    let both = format!("{model},{model}");
    let output = exitwise(
        &[
            "eval",
            "--threads",
            "1",
            "--models",
            &both,
            "--policies",
            "layer,2d",
            "--data",
            data.to_str().expect("utf-8 path"),
            "--max-docs",
            "8",
            "--runs",
            "1",
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.contains("Q4_K_M"), "{table}");
    assert!(table.contains("quantization alone"), "{table}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid JSON");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        // `full` is always measured: it is the reference of every speed-up.
        for policy in ["full", "layer", "2d"] {
            assert!(row["policies"][policy]["accuracy"].is_number(), "{row}");
        }
        assert!(number(row, "rss_added_mb") >= 0.0);
    }
    // The same file twice: the same answers.
    assert_eq!(
        rows[0]["policies"]["2d"]["accuracy"],
        rows[1]["policies"]["2d"]["accuracy"]
    );
    let checks = report["product_check"].as_array().expect("product check");
    assert_eq!(checks.len(), 2);
    for check in checks {
        let predicted = number(check, "quantization_speedup") * number(check, "exit_speedup");
        assert!((number(check, "predicted") - predicted).abs() < 1e-9);
    }
}

#[test]
fn a_trace_replays_what_eval_fed_and_refuses_another_model_or_data() {
    let (Some(model), Some(other_model)) =
        (model_path(TestModel::Gemma), model_path(TestModel::Smol))
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = twenty_reviews(dir.path());
    let report_path = dir.path().join("eval.json");
    let trace_path = dir.path().join("trace.jsonl");
    let replay_path = dir.path().join("replay.json");
    let path = |path: &Path| path.to_str().expect("utf-8 path").to_string();
    let output = exitwise(
        &[
            "eval",
            "--threads",
            "1",
            "--model",
            &path(&model),
            "--data",
            &path(&data),
            "--runs",
            "1",
            "--no-simulation",
            "--json",
            &path(&report_path),
            "--trace",
            &path(&trace_path),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("trace written to"));

    // Replayed on the CPU with the same model: every walk is fed again as recorded (a replay
    // that feeds anything else fails), and the token×layer counts are eval's.
    let replay = |model: &Path, data: &Path| {
        exitwise(
            &[
                "bench-engine",
                "--threads",
                "1",
                "--model",
                &path(model),
                "--replay",
                &path(&trace_path),
                "--data",
                &path(data),
                "--runs",
                "1",
                "--json",
                &path(&replay_path),
            ],
            b"",
        )
    };
    let output = replay(&model, &data);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    for setting in ["full", "layer@1", "sentence@1", "2d@1"] {
        assert!(table.contains(setting), "{setting} missing from:\n{table}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("eval.json"))
            .expect("valid JSON");
    let trace = std::fs::read_to_string(&trace_path).expect("the trace");
    let mut lines = trace.lines();
    let header: Value = serde_json::from_str(lines.next().expect("a header")).expect("JSON");
    let kinds: Vec<String> = header["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .map(|setting| setting["kind"].as_str().expect("a kind").to_string())
        .collect();
    assert_eq!(kinds, ["full", "layer", "sentence", "2d"]);
    let documents: Vec<Value> = lines
        .map(|line| serde_json::from_str(line).expect("a document line"))
        .collect();
    let evaluated = report["per_document"].as_array().expect("per_document");
    assert_eq!(documents.len(), 20);
    let replayed: Value =
        serde_json::from_str(&std::fs::read_to_string(&replay_path).expect("replay.json"))
            .expect("valid JSON");
    for (which, kind) in kinds.iter().enumerate() {
        let mut total = 0;
        for (traced, evaluated) in documents.iter().zip(evaluated) {
            let recorded = traced["feedings"][which]["token_layers"]
                .as_u64()
                .expect("count");
            assert_eq!(
                Some(recorded),
                evaluated["policies"][kind]["token_layers"].as_u64(),
                "{kind}, document {}",
                traced["id"]
            );
            total += recorded;
        }
        assert_eq!(
            replayed["settings"][which]["token_layers"].as_u64(),
            Some(total),
            "{kind}"
        );
        assert!(
            replayed["settings"][which]["seconds"]
                .as_f64()
                .expect("seconds")
                > 0.0
        );
    }

    // A trace that says a pass stopped elsewhere than the walk does is refused, not timed.
    let mut tampered: Vec<Value> = documents.clone();
    tampered[0]["feedings"][0]["passes"][0]["layers"] = Value::from(5);
    let tampered_text = std::iter::once(header.to_string())
        .chain(tampered.iter().map(Value::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&trace_path, tampered_text + "\n").expect("write the tampered trace");
    let output = replay(&model, &data);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("under full: the replay fed 1 pass(es): tokens 0..")
            && stderr.contains("to layer 18, where the trace has"),
        "{stderr}"
    );
    std::fs::write(&trace_path, &trace).expect("restore the trace");

    // Another model (other shapes) and other data are refused, each in one line.
    let refused = |output: std::process::Output, expected: &str| {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    refused(
        replay(&other_model, &data),
        "the trace was recorded with `gemma3-270m.gguf` (gemma3, 18 layers of width 640",
    );
    let other_data = dir.path().join("other.jsonl");
    let reviews = std::fs::read_to_string(&data).expect("data");
    let shifted: Vec<&str> = reviews.lines().skip(1).collect();
    std::fs::write(&other_data, shifted.join("\n") + "\n").expect("write");
    refused(
        replay(&model, &other_data),
        "the trace was recorded on other data: document 1 is",
    );
}
