//! `exitwise serve`: the router in-process with the real model and the default pack, and the
//! command's set-up errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use exitwise::exit::{Budget, PolicyKind};
use exitwise::formats::isolation::ChildLimits;
use exitwise::formats::{Isolation, ReadOptions};
use exitwise::pack::AdapterPack;
use exitwise::server::auth::ApiKey;
use exitwise::server::metrics::Metrics;
use exitwise::server::worker::{Worker, WorkerOptions};
use exitwise::server::{AppState, Limits, router};

use crate::common::{TestModel, answering_layer, exitwise, model_path, text};

/// A started server state (model loaded) with `queue` places and at most 3 texts a request.
fn state(queue: usize, max_body_bytes: usize, timeout: Duration) -> Option<Arc<AppState>> {
    state_with_workers(queue, max_body_bytes, timeout, 1)
}

/// [`state`] with `workers` sessions taking jobs.
fn state_with_workers(
    queue: usize,
    max_body_bytes: usize,
    timeout: Duration,
    workers: usize,
) -> Option<Arc<AppState>> {
    let model = model_path(TestModel::Gemma)?;
    let pack = Arc::new(
        AdapterPack::embedded()
            .expect("a compiled-in pack")
            .expect("it loads"),
    );
    let metrics = Arc::new(Metrics::new(pack.manifest.model.layers));
    let worker = Worker::start(
        WorkerOptions {
            model_path: model,
            model_options: exitwise::engine::ModelOptions::default(),
            workers,
            threads: Some(1),
            token_limit: pack.manifest.token_limit,
            queue_capacity: queue,
        },
        Arc::clone(&pack),
        Arc::clone(&metrics),
        Box::new(|outcome| assert!(outcome.is_ok(), "{outcome:?}")),
    )
    .expect("worker starts");
    let limits = Limits {
        api_key: None,
        metrics_need_key: false,
        max_body_bytes,
        max_texts: 3,
        request_timeout: timeout,
        queue_capacity: queue,
        default_policy: PolicyKind::TwoDimensional,
        default_budget: Budget::from_hundredths(100),
        reading: reading(),
    };
    let state = Arc::new(AppState::new(worker, pack, metrics, limits));
    let started = Instant::now();
    while !state.worker.is_ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the model never loaded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(state)
}

/// How the server reads raw documents: as `serve` does, container formats in a child process
/// of the exitwise binary.
fn reading() -> ReadOptions {
    ReadOptions {
        format: None,
        encoding: None,
        text_limit: exitwise::text::byte_limit(2048),
        isolation: Isolation::ChildProcess {
            program: env!("CARGO_BIN_EXE_exitwise").into(),
            arguments: vec!["read-container".into()],
            limits: ChildLimits::default(),
        },
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A server state with an API key whose model never loads (the key is checked before any
/// handler runs).
fn keyed_state(metrics_need_key: bool) -> Arc<AppState> {
    let pack = Arc::new(
        AdapterPack::embedded()
            .expect("a compiled-in pack")
            .expect("it loads"),
    );
    let metrics = Arc::new(Metrics::new(pack.manifest.model.layers));
    let worker = Worker::start(
        WorkerOptions {
            model_path: "/nonexistent/model.gguf".into(),
            model_options: exitwise::engine::ModelOptions::default(),
            workers: 1,
            threads: Some(1),
            token_limit: pack.manifest.token_limit,
            queue_capacity: 1,
        },
        Arc::clone(&pack),
        Arc::clone(&metrics),
        Box::new(|outcome| assert!(outcome.is_err())),
    )
    .expect("worker starts");
    let limits = Limits {
        api_key: Some(ApiKey::new("k3y").expect("key")),
        metrics_need_key,
        max_body_bytes: 4096,
        max_texts: 3,
        request_timeout: Duration::from_secs(60),
        queue_capacity: 1,
        default_policy: PolicyKind::TwoDimensional,
        default_budget: Budget::from_hundredths(100),
        reading: reading(),
    };
    Arc::new(AppState::new(worker, pack, metrics, limits))
}

#[test]
fn an_api_key_guards_v1_and_leaves_health_open() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let state = keyed_state(false);
        for authorization in [None, Some("Bearer wrong"), Some("Basic azN5")] {
            let (status, _, body) = send_with(&state, "GET", "/v1/info", "", authorization).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
            assert!(json(&body)["error"].is_string(), "{body}");
        }
        let (status, _, body) =
            send_with(&state, "POST", "/v1/classify", r#"{"text": "x"}"#, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _, _) = send_with(&state, "GET", "/v1/info", "", Some("Bearer k3y")).await;
        assert_eq!(status, StatusCode::OK);
        // The model never loads here: a keyed classification gets as far as "not ready".
        let (status, _, _) = send_with(
            &state,
            "POST",
            "/v1/classify",
            r#"{"text": "x"}"#,
            Some("Bearer k3y"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        for open in ["/healthz", "/metrics"] {
            let (status, _, _) = send_with(&state, "GET", open, "", None).await;
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{open}");
        }
        let (_, _, metrics) = send_with(&state, "GET", "/metrics", "", None).await;
        assert!(
            metrics.contains(r#"exitwise_requests_total{route="/v1/info",status="401"} 3"#),
            "{metrics}"
        );
        let guarded = keyed_state(true);
        let (status, _, _) = send_with(&guarded, "GET", "/metrics", "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = send_with(&guarded, "GET", "/metrics", "", Some("Bearer k3y")).await;
        assert_eq!(status, StatusCode::OK);
    });
}

/// Sends one request through the router: (status, headers' Retry-After, body text).
async fn send(
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    send_with(state, method, path, body, None).await
}

/// [`send`] with an `Authorization` header.
async fn send_with(
    state: &Arc<AppState>,
    method: &str,
    path: &str,
    body: &str,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    respond(
        state,
        request.body(Body::from(body.to_string())).expect("request"),
    )
    .await
}

/// Runs `request` through the router: (status, headers' Retry-After, body text).
async fn respond(
    state: &Arc<AppState>,
    request: Request<Body>,
) -> (StatusCode, Option<String>, String) {
    let response = router(Arc::clone(state))
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ascii").to_string());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        retry_after,
        String::from_utf8(bytes.to_vec()).expect("utf-8"),
    )
}

/// Sends a raw document to `POST /v1/classify/document` with `content_type`:
/// (status, body text).
async fn send_document(
    state: &Arc<AppState>,
    query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("/v1/classify/document{query}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let (status, _, answer) =
        respond(state, request.body(Body::from(body)).expect("request")).await;
    (status, answer)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

#[test]
fn every_status_of_the_api() {
    let Some(state) = state(4, 4096, Duration::from_secs(60)) else {
        return;
    };
    runtime().block_on(async {
        let (status, _, body) = send(&state, "GET", "/healthz", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _, body) = send(&state, "GET", "/readyz", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // One text: a classify-jsonl record.
        let (status, _, body) = send(
            &state,
            "POST",
            "/v1/classify",
            r#"{"text": "A wonderful, moving film. The cast is superb and I loved it.", "id": "r1"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let record = json(&body);
        assert_eq!(record["id"], "r1");
        assert_eq!(record["label"], "pos");
        for field in [
            "confidence",
            "probs",
            "exit",
            "tokens_read",
            "tokens_total",
            "truncated",
            "cost",
            "ms",
        ] {
            assert!(!record[field].is_null(), "{field} missing: {body}");
        }
        assert_eq!(record["exit"]["policy"], "2d");

        // A batch, with a policy: answers in order.
        let (status, _, body) = send(
            &state,
            "POST",
            "/v1/classify",
            r#"{"texts": ["Dreadful. A boring mess, avoid it.", "Brilliant and funny."], "policy": "full", "id": "b"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let results = json(&body)["results"].as_array().expect("results").clone();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["id"], "b/0");
        assert_eq!(results[0]["label"], "neg");
        assert_eq!(results[1]["label"], "pos");
        assert_eq!(results[1]["exit"]["policy"], "full");
        // `full` answers with the pack's best layer, numbered from 1.
        assert_eq!(results[1]["exit"]["layer"], answering_layer());

        let cases = [
            (r#"{"text": "#, StatusCode::BAD_REQUEST, "parse"),
            (r#"{"text": 5}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid type"),
            (r#"{"txt": "x"}"#, StatusCode::UNPROCESSABLE_ENTITY, "unknown field"),
            (r#"{}"#, StatusCode::UNPROCESSABLE_ENTITY, "needs `text`"),
            (r#"{"text": "  "}"#, StatusCode::UNPROCESSABLE_ENTITY, "empty"),
            (r#"{"texts": ["a", ""]}"#, StatusCode::UNPROCESSABLE_ENTITY, "text 1 is empty"),
            (r#"{"texts": []}"#, StatusCode::UNPROCESSABLE_ENTITY, "empty"),
            (r#"{"text": "a", "texts": ["b"]}"#, StatusCode::UNPROCESSABLE_ENTITY, "not both"),
            (r#"{"text": "a", "policy": "fast"}"#, StatusCode::UNPROCESSABLE_ENTITY, "unknown policy `fast`"),
            (r#"{"text": "a", "budget": 3}"#, StatusCode::UNPROCESSABLE_ENTITY, "calibrated budgets"),
            (r#"{"texts": ["a", "b", "c", "d"]}"#, StatusCode::PAYLOAD_TOO_LARGE, "at most 3"),
        ];
        for (body, expected, reason) in cases {
            let (status, _, answer) = send(&state, "POST", "/v1/classify", body).await;
            assert_eq!(status, expected, "{body} → {answer}");
            let error = json(&answer)["error"].as_str().expect("error text").to_string();
            assert!(error.contains(reason), "{body} → {error}");
        }
        let huge = format!(r#"{{"text": "{}"}}"#, "word ".repeat(2000));
        let (status, _, answer) = send(&state, "POST", "/v1/classify", &huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        let (status, _, _) = send(&state, "GET", "/nowhere", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Info names the model, the pack and its operating points.
        let (status, _, body) = send(&state, "GET", "/v1/info", "").await;
        assert_eq!(status, StatusCode::OK);
        let info = json(&body);
        assert_eq!(info["model"]["architecture"], "gemma3");
        // Where the layers run: a development build without a GPU back end runs them on the CPU.
        assert_eq!(info["placement"], "CPU");
        assert_eq!(info["workers"], 1);
        assert_eq!(info["pack"]["name"], "gemma3-270m-imdb");
        assert_eq!(info["pack"]["labels"], serde_json::json!(["neg", "pos"]));
        assert!(info["operating_points"].as_array().is_some_and(|points| points.len() > 4));
        // Layers from 1, as in every answer.
        assert_eq!(info["pack"]["best_layer"], answering_layer());
        let full = &info["operating_points"][0];
        assert_eq!(full["policy"], "full");
        assert_eq!(full["setting"]["deepest_layer"], 18);
        assert_eq!(full["setting"]["answering_layer"], answering_layer());
        // What a budget promises, in words.
        assert!(info["calibration"]["promise"].is_string(), "{info}");

        // Metrics: Prometheus text that counts what happened.
        let (status, _, body) = send(&state, "GET", "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        for line in body.lines().filter(|line| !line.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("exitwise_"), "{line}");
        }
        assert!(body.contains("exitwise_documents_total 3\n"), "{body}");
        assert!(
            body.contains("exitwise_requests_total{route=\"/v1/classify\",status=\"422\"}"),
            "{body}"
        );
        assert!(body.contains("exitwise_exit_layer_bucket{le=\"18\"} 3\n"), "{body}");
        assert!(body.contains("exitwise_queue_depth 0\n"), "{body}");
    });
}

#[test]
fn a_full_queue_answers_429_at_once_and_every_accepted_request_is_answered() {
    let Some(state) = state(1, 1 << 20, Duration::from_secs(60)) else {
        return;
    };
    let long_review = "The film starts slowly but the middle act is gripping. ".repeat(30);
    let body =
        serde_json::json!({ "texts": [long_review, long_review, long_review], "policy": "full" })
            .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let statuses: Vec<(StatusCode, Option<String>)> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let state = Arc::clone(&state);
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                let (status, retry_after, _) = send(&state, "POST", "/v1/classify", &body).await;
                (status, retry_after)
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.expect("task"));
        }
        statuses
    });
    let accepted = statuses
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let refused: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(accepted + refused.len(), 6, "{statuses:?}");
    // At most one request runs and one waits; the others are refused at once.
    assert!((1..=2).contains(&accepted), "{statuses:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry)| retry.as_deref() == Some("1"))
    );
    state.worker.shut_down();
}

#[test]
fn two_workers_answer_every_accepted_request_alike_and_refuse_the_rest() {
    let Some(state) = state_with_workers(2, 1 << 20, Duration::from_secs(60), 2) else {
        return;
    };
    let reviews = [
        "A charming, warm film with a great cast. I enjoyed it a lot.",
        "Dull, slow and badly acted; I nearly walked out.",
        "The plot is thin, but the lead is great and the ending is moving.",
    ];
    let body = serde_json::json!({ "texts": reviews, "policy": "full" }).to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let answers: Vec<(StatusCode, String)> = runtime.block_on(async {
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (state, body) = (Arc::clone(&state), body.clone());
                tokio::spawn(async move {
                    let (status, _, body) = send(&state, "POST", "/v1/classify", &body).await;
                    (status, body)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task"));
        }
        answers
    });
    let accepted: Vec<&String> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        accepted.len() + refused,
        12,
        "only 200 and 429: {answers:?}"
    );
    // Two run and two wait; a worker that frees up may take one more before all arrive.
    assert!((2..=6).contains(&accepted.len()), "{answers:?}");
    let labels = |body: &str| -> Vec<String> {
        json(body)["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|result| format!("{} {}", result["label"], result["exit"]))
            .collect()
    };
    let first = labels(accepted[0]);
    assert_eq!(first.len(), 3);
    for body in &accepted {
        assert_eq!(labels(body), first, "every worker answers alike");
    }
    state.worker.shut_down();
}

#[test]
fn a_request_over_the_timeout_answers_408_and_is_counted() {
    let Some(state) = state(2, 1 << 20, Duration::from_millis(5)) else {
        return;
    };
    let long_review = "The film starts slowly but the middle act is gripping. ".repeat(40);
    let body = serde_json::json!({ "text": long_review, "policy": "full" }).to_string();
    runtime().block_on(async {
        let (status, _, answer) = send(&state, "POST", "/v1/classify", &body).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{answer}");
        let (_, _, metrics) = send(&state, "GET", "/metrics", "").await;
        assert!(
            metrics.contains("exitwise_requests_total{route=\"/v1/classify\",status=\"408\"} 1"),
            "{metrics}"
        );
    });
    // The abandoned job is still answered (to nobody) or skipped; the thread stops cleanly.
    state.worker.shut_down();
}

#[test]
fn serve_refuses_unknown_configuration_keys_a_taken_address_and_a_pack_for_another_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("serve.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nqueue_size = 3\n").expect("write");
    let output = exitwise(&["serve", "--config", config.to_str().expect("utf-8")], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unknown field `queue_size`"), "{stderr}");
    assert!(stderr.contains("serve.toml"), "{stderr}");

    if model_path(TestModel::Gemma).is_none() {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let output = exitwise(&["serve", "--listen", &address], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!("cannot listen on `{address}`")),
        "{}",
        text(&output.stderr)
    );

    let Some(other) = model_path(TestModel::Smol) else {
        return;
    };
    let output = exitwise(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--model",
            other.to_str().expect("utf-8"),
        ],
        b"",
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("pack `gemma3-270m-imdb` does not fit the model"),
        "{}",
        text(&output.stderr)
    );
}

/// Stands in for systemd's socket activation: binds a listening socket on a free port, prints
/// the port, puts the socket at descriptor 3 and executes the command with `LISTEN_FDS=1` and
/// `LISTEN_PID` set to its own pid (unchanged by exec). The listener may already be descriptor 3,
/// where `dup2` changes nothing: hence the explicit `set_inheritable`.
const SOCKET_ACTIVATION: &str = r#"
import os, socket, sys
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.bind(("127.0.0.1", 0))
listener.listen(16)
print(listener.getsockname()[1], flush=True)
os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], sys.argv[1:])
"#;

/// Kills the server if the test fails before it stops it.
struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the whole answer, or `None` if nobody listens.
fn http(port: u16, request: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn serve_adopts_the_socket_passed_by_systemd_and_answers_a_request_sent_after_sigterm() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    if model_path(TestModel::Gemma).is_none() {
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: python3 (the stand-in for systemd) is not installed");
        return;
    }
    // `--listen` names a place that cannot be bound: the passed socket must be used instead.
    let child = Command::new("python3")
        .args([
            "-c",
            SOCKET_ACTIVATION,
            env!("CARGO_BIN_EXE_exitwise"),
            "serve",
            "--threads",
            "1",
            "--listen",
            "unix:/nonexistent/exitwise.sock",
        ])
        .env_remove("EXITWISE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut server = ServerProcess(child);
    let mut port_line = String::new();
    std::io::BufReader::new(server.0.stdout.take().expect("stdout"))
        .read_line(&mut port_line)
        .expect("the port is printed");
    let port: u16 = port_line.trim().parse().expect("a port number");

    let ready = Instant::now();
    loop {
        let answer = http(
            port,
            "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        );
        if answer.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
            break;
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            let mut stderr = String::new();
            let _ = std::io::Read::read_to_string(
                &mut server.0.stderr.take().expect("stderr"),
                &mut stderr,
            );
            panic!("the server ended before it was ready ({status}): {stderr}");
        }
        assert!(
            ready.elapsed() < Duration::from_secs(120),
            "the server did not become ready on the passed socket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = r#"{"text": "A wonderful film, I loved every minute of it."}"#;
    let answer = http(
        port,
        &format!(
            "POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""label":"pos""#), "{answer}");

    // Two clients connect before SIGTERM: one sends its request just after the signal and must
    // be answered (not closed with an empty reply); the other never sends anything and is
    // closed, so the server can stop.
    use std::io::{Read as _, Write as _};
    let mut late_sender = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    for stream in [&late_sender, &silent] {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
    }
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.0.id().to_string();
    let signal = Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .expect("sh starts");
    assert!(signal.success());
    // Send only once the shutdown has begun, which shows as the listener refusing new
    // connections: a loaded machine may take a while to handle the signal.
    let stopping = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the server still accepts connections 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    late_sender
        .write_all(
            format!(
                "POST /v1/classify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .expect("the request is sent");
    let mut answer = String::new();
    late_sender
        .read_to_string(&mut answer)
        .expect("the answer is read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    let mut nothing = Vec::new();
    silent
        .read_to_end(&mut nothing)
        .expect("the silent connection is closed");
    assert!(nothing.is_empty());
    let status = server.0.wait().expect("the server stops");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr is read");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("listening on the socket passed by systemd"),
        "{stderr}"
    );
}

#[test]
fn raw_documents_are_read_by_their_content_type() {
    let Some(state) = state(2, 64 << 10, Duration::from_secs(60)) else {
        return;
    };
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats");
    let pdf = std::fs::read(fixtures.join("review.pdf")).expect("the fixture");
    let page = "<html><head><title>Review</title><script>var x = 'awful, terrible';</script></head>\
                <body><nav>Worst deals</nav><p>A wonderful, moving film. The cast is superb and I loved it.</p></body></html>";
    let mail = "From: a@example.org\nSubject: A film\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nA wonderful, moving film. Tr=E8s beau. I loved it.\n";
    let mailbox = format!(
        "From a Mon Sep 30 13:53:59 2002\n{mail}\nFrom b Mon Sep 30 13:54:00 2002\nSubject: Another\n\nDull and far too long.\n"
    );
    runtime().block_on(async {
        for (content_type, body, format) in [
            (Some("application/pdf"), pdf.clone(), "pdf"),
            (None, pdf.clone(), "pdf"),
            (Some("application/octet-stream"), pdf.clone(), "pdf"),
            (
                Some("text/html; charset=utf-8"),
                page.as_bytes().to_vec(),
                "html",
            ),
            (Some("message/rfc822"), mail.as_bytes().to_vec(), "mail"),
            (
                Some("text/plain; charset=iso-8859-1"),
                b"A wonderful film, tr\xe8s beau.".to_vec(),
                "text",
            ),
        ] {
            let (status, answer) =
                send_document(&state, "?id=d7&policy=full", content_type, body).await;
            assert_eq!(status, StatusCode::OK, "{content_type:?}: {answer}");
            let record = json(&answer);
            assert_eq!(record["id"], "d7");
            assert_eq!(record["format"], format, "{answer}");
            assert_eq!(record["label"], "pos", "{answer}");
            assert_eq!(record["exit"]["policy"], "full");
        }
        // A page's boilerplate is not read: it would read negative.
        let (_, answer) =
            send_document(&state, "", Some("text/html"), page.as_bytes().to_vec()).await;
        assert_eq!(
            json(&answer)["tokens_total"]
                .as_u64()
                .map(|tokens| tokens < 30),
            Some(true),
            "{answer}"
        );
        // A mailbox: one record per message.
        let (status, answer) = send_document(
            &state,
            "?id=box",
            Some("application/mbox"),
            mailbox.into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let results = json(&answer)["results"]
            .as_array()
            .expect("results")
            .clone();
        let ids: Vec<&str> = results
            .iter()
            .map(|record| record["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["box#1", "box#2"]);
        assert_eq!(results[1]["label"], "neg");

        for (content_type, body, expected, reason) in [
            (
                Some("image/png"),
                b"\x89PNG".to_vec(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content type `image/png` is not read here",
            ),
            (
                Some("not a type"),
                b"x".to_vec(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not a MIME type",
            ),
            (
                Some("text/plain; charset=klingon"),
                b"x".to_vec(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unknown charset",
            ),
            (
                Some("application/pdf"),
                b"no PDF at all".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot read the document `0`: malformed PDF",
            ),
            (
                Some("application/pdf"),
                std::fs::read(fixtures.join("scan.pdf")).expect("fixture"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "no text layer",
            ),
            (
                None,
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not a format exitwise reads: image/png",
            ),
            (
                Some("text/plain"),
                b"  \n".to_vec(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "empty",
            ),
            (
                Some("text/plain"),
                vec![b'a'; 65 << 10],
                StatusCode::PAYLOAD_TOO_LARGE,
                "larger than 65536 bytes",
            ),
        ] {
            let (status, answer) = send_document(&state, "", content_type, body).await;
            assert_eq!(status, expected, "{content_type:?}: {answer}");
            let error = json(&answer)["error"].as_str().expect("error").to_string();
            assert!(error.contains(reason), "{content_type:?}: {error}");
        }
        let (status, answer) = send_document(
            &state,
            "?policy=fast",
            Some("text/plain"),
            b"Good.".to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let (status, answer) =
            send_document(&state, "?colour=red", Some("text/plain"), b"Good.".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    });
}
