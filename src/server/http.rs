//! The HTTP layer (axum on tokio). The model lives on its own thread ([`super::worker`]);
//! handlers validate requests, queue them without waiting and await the answer.
//!
//! Statuses: 200 answered; 400 malformed JSON (or query); 413 body too large or too many texts
//! (or messages); 415 not JSON, or a raw document of a `Content-Type` that is not read; 422
//! wrong types, empty text, a document that cannot be read, unknown policy or uncalibrated
//! budget; 429 queue full, or as many documents being read as the queue holds (with
//! `Retry-After`); 408 the request took longer than the request timeout; 503 not ready or
//! stopping. Errors are JSON: `{"error": "<reason>"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, oneshot};
use tower_http::timeout::TimeoutLayer;

use crate::classifier::ResultRecord;
use crate::exit::{Budget, PolicyKind};
use crate::pack::AdapterPack;

use super::auth::ApiKey;
use super::metrics::Metrics;
use super::request::{ClassifyBody, ClassifyRequest, Documents, policy_and_budget};
use super::worker::{Job, JobDocument, SubmitError, Worker};
use crate::exit::PolicyConfig;
use crate::formats::{Format, ReadOptions, TextEncoding};
use crate::text::input::read_stream;

/// Limits, defaults and access of the HTTP layer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The API key `/v1/*` requests must bear (`None`: open).
    pub api_key: Option<ApiKey>,
    /// Whether `/metrics` needs the key too.
    pub metrics_need_key: bool,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most texts in one request (413 beyond).
    pub max_texts: usize,
    /// Longest time from request to answer (408 beyond).
    pub request_timeout: Duration,
    /// Jobs that may wait for the model (429 beyond).
    pub queue_capacity: usize,
    /// Policy when a request names none.
    pub default_policy: PolicyKind,
    /// Budget when a request names none.
    pub default_budget: Budget,
    /// How raw documents (`POST /v1/classify/document`) are read: text limit and the child
    /// process of the container readers. Its `format` and `encoding` are the defaults a
    /// request's `Content-Type` overrides.
    pub reading: ReadOptions,
}

/// What every handler shares.
pub struct AppState {
    /// The model thread.
    pub worker: Worker,
    /// The adapter pack.
    pub pack: Arc<AdapterPack>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Limits and defaults.
    pub limits: Limits,
    /// Numbers requests for the log.
    next_request: AtomicU64,
    /// Raw documents being read at once: as many as the queue holds, more wait for nothing
    /// and are answered 429 (reading a PDF costs a process and up to seconds).
    readings: Arc<Semaphore>,
}

impl AppState {
    /// The shared state of a server around a started worker.
    pub fn new(
        worker: Worker,
        pack: Arc<AdapterPack>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Self {
        AppState {
            worker,
            pack,
            metrics,
            readings: Arc::new(Semaphore::new(limits.queue_capacity.max(1))),
            limits,
            next_request: AtomicU64::new(1),
        }
    }
}

/// The answer to a batch request.
#[derive(Debug, Serialize, Deserialize)]
pub struct BatchResponse {
    /// One record per text, in order.
    pub results: Vec<ResultRecord>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.reason })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Exit cells of an answered request, for the request log line.
#[derive(Debug, Clone)]
struct ExitSummary(String);

/// The router with every route, limit and the request log.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.limits.clone();
    let mut keyed = Router::new()
        .route("/v1/classify", post(classify))
        .route("/v1/classify/document", post(classify_document))
        .route("/v1/info", get(info));
    let mut open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if limits.metrics_need_key {
        keyed = keyed.route("/metrics", get(metrics_text));
    } else {
        open = open.route("/metrics", get(metrics_text));
    }
    let keyed = keyed.route_layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        require_key,
    ));
    open.merge(keyed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // Inside the log, so that a timed-out request is counted and logged as 408.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            log_and_measure,
        ))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(state)
}

/// Refuses a request without the API key (when one is set) with 401 and the reason.
async fn require_key(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.limits.api_key
        && let Err(reason) = key.check(request.headers())
    {
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, reason).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

/// Counts, times and logs every request (one line each).
async fn log_and_measure(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let number = state.next_request.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || "unmatched".to_string(),
        |matched| matched.as_str().to_string(),
    );
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state.metrics.record_request(&route, status, seconds);
    let exits = response
        .extensions()
        .get::<ExitSummary>()
        .map_or_else(String::new, |summary| summary.0.clone());
    tracing::info!(
        target: "exitwise::request",
        request = number,
        %method,
        path,
        status,
        ms = format!("{:.1}", seconds * 1e3),
        exit = exits,
    );
    response
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.worker.is_ready() {
        return Json(serde_json::json!({ "ready": true })).into_response();
    }
    let reason = if state.worker.has_failed() {
        "no worker is left (see the log): restart exitwise"
    } else {
        "the model is loading"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "ready": false, "reason": reason })),
    )
        .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(
        state.worker.queue_depth(),
        state.limits.queue_capacity,
        state.worker.is_ready(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn info(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let manifest = &state.pack.manifest;
    let points = manifest
        .calibration
        .as_ref()
        .map(|calibration| {
            calibration
                .operating_points
                .iter()
                .map(crate::exit::OperatingPoint::numbered)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Json(serde_json::json!({
        "model": state.worker.model_facts(),
        "placement": state.worker.placement(),
        "workers": state.worker.workers(),
        "ready": state.worker.is_ready(),
        "pack": {
            "name": manifest.name,
            "labels": manifest.labels,
            "feature_kind": manifest.feature_kind,
            "token_limit": manifest.token_limit,
            "best_layer": manifest.best_layer + 1,
            "trained_on": manifest.model,
            "layer_zero": manifest.layer_zero,
        },
        "policies": PolicyKind::ALL.iter().map(|kind| kind.name()).collect::<Vec<_>>(),
        "default_policy": state.limits.default_policy.name(),
        "default_budget": state.limits.default_budget,
        "operating_points": points,
        "calibration": manifest.calibration.as_ref().map(|calibration| serde_json::json!({
            "method": calibration.method(),
            "delta": calibration.delta,
            "loss": calibration.loss,
            "data": calibration.data,
            "promise": calibration.promise(),
        })),
        "limits": {
            "max_body_bytes": state.limits.max_body_bytes,
            "max_texts": state.limits.max_texts,
            "queue_capacity": state.limits.queue_capacity,
            "request_timeout_s": state.limits.request_timeout.as_secs_f64(),
        },
    }))
}

async fn classify(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ClassifyBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        body_refused(&state.limits, rejection.status(), rejection.body_text())
    })?;
    let request = ClassifyRequest::try_from(body)
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    if request.documents.len() > state.limits.max_texts {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} texts in one request; at most {} are allowed",
                request.documents.len(),
                state.limits.max_texts
            ),
        ));
    }
    let batch = matches!(request.documents, Documents::Batch(_));
    let config = exit_setting(&state, request.policy, request.budget)?;
    let documents = request
        .documents
        .with_ids(request.id.as_deref())
        .into_iter()
        .map(|(id, text)| JobDocument::text(id, text))
        .collect();
    answer(&state, documents, config, batch).await
}

/// The answer to a body the extractor refused: 413 names the limit, the rest say axum's reason.
fn body_refused(limits: &Limits, status: StatusCode, reason: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            format!(
                "the request body is larger than {} bytes",
                limits.max_body_bytes
            ),
        ),
        _ => ApiError::new(status, reason),
    }
}

/// The exit setting of a request's policy and budget (the server's defaults where it names
/// none), once the model is ready.
fn exit_setting(
    state: &AppState,
    policy: Option<PolicyKind>,
    budget: Option<Budget>,
) -> Result<PolicyConfig, ApiError> {
    let policy = policy.unwrap_or(state.limits.default_policy);
    let budget = budget.unwrap_or(state.limits.default_budget);
    let config = state
        .pack
        .operating_point(policy, budget)
        .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()))?;
    if !state.worker.is_ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading",
        ));
    }
    Ok(config)
}

/// Queues `documents` for the model and answers with their records: a list when `batch`,
/// else the one record.
async fn answer(
    state: &AppState,
    documents: Vec<JobDocument>,
    config: PolicyConfig,
    batch: bool,
) -> Result<Response, ApiError> {
    let (respond, answer) = oneshot::channel();
    state
        .worker
        .submit(Job {
            documents,
            config,
            respond,
        })
        .map_err(|error| match error {
            SubmitError::Full => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: format!(
                    "the queue is full ({} requests waiting); retry later",
                    state.limits.queue_capacity
                ),
                retry_after: Some(1),
            },
            SubmitError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
            }
        })?;
    let answers = answer
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the model thread stopped before answering",
            )
        })?
        .map_err(|panic| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("exitwise failed on this request (a bug, logged): {panic}"),
            )
        })?;
    let mut records = Vec::with_capacity(answers.len());
    for answer in answers {
        records.push(
            answer.map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?,
        );
    }
    let summary = ExitSummary(
        records
            .iter()
            .map(|record| {
                format!(
                    "s{}/{} l{}/{}",
                    record.exit.sentence,
                    record.exit.sentences,
                    record.exit.layer,
                    record.exit.layers
                )
            })
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut response = if batch {
        Json(BatchResponse { results: records }).into_response()
    } else {
        let record = records.pop().ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no answer for the text")
        })?;
        Json(record).into_response()
    };
    response.extensions_mut().insert(summary);
    Ok(response)
}

/// The query of `POST /v1/classify/document`: what the JSON body says for `/v1/classify`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    /// `2d`, `layer`, `sentence` or `full`.
    pub policy: Option<String>,
    /// Accuracy budget in points.
    pub budget: Option<f64>,
    /// The caller's id, echoed in the record (a mailbox's messages: `ID#N`).
    pub id: Option<String>,
}

/// The reader a `Content-Type` asks for: the format (`None`: recognise it), and the charset
/// of a text type. An unknown type is refused (415) with the types that are read.
pub fn reader_for_content_type(
    content_type: Option<&str>,
) -> Result<(Option<Format>, Option<TextEncoding>), String> {
    const KNOWN: &str = "text/plain, text/html, application/xhtml+xml, message/rfc822, \
                         application/mbox, application/pdf, \
                         application/vnd.openxmlformats-officedocument.wordprocessingml.document, \
                         application/vnd.oasis.opendocument.text, application/octet-stream";
    let Some(content_type) = content_type else {
        return Ok((None, None));
    };
    let mime: mime::Mime = content_type.parse().map_err(|_| {
        format!("the content type `{content_type}` is not a MIME type; send one of: {KNOWN}")
    })?;
    let charset = mime
        .get_param(mime::CHARSET)
        .map(|charset| {
            TextEncoding::from_label(charset.as_str())
                .ok_or_else(|| format!("unknown charset `{charset}` in the content type"))
        })
        .transpose()?;
    let format = match mime.essence_str() {
        "text/plain" => Some(Format::Text),
        "text/html" | "application/xhtml+xml" => Some(Format::Html),
        "message/rfc822" | "application/mbox" => Some(Format::Mail),
        "application/pdf" => Some(Format::Pdf),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            Some(Format::Docx)
        }
        "application/vnd.oasis.opendocument.text" => Some(Format::Odt),
        "application/octet-stream" => None,
        other => {
            return Err(format!(
                "the content type `{other}` is not read here; send one of: {KNOWN}"
            ));
        }
    };
    Ok((format, charset))
}

/// `POST /v1/classify/document`: a raw document (mail, mailbox, page, PDF, DOCX, ODT, text),
/// read by the reader its `Content-Type` names (`application/octet-stream` or none:
/// recognised by content), then classified as `/v1/classify` classifies a text. A mailbox
/// answers `{"results": [...]}`, one record per message.
async fn classify_document(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DocumentQuery>, QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let body = body.map_err(|rejection| {
        body_refused(&state.limits, rejection.status(), rejection.body_text())
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("(not ASCII)"));
    let (format, encoding) = reader_for_content_type(content_type)
        .map_err(|reason| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason))?;
    let (policy, budget) = policy_and_budget(query.policy, query.budget)
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let config = exit_setting(&state, policy, budget)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the document is empty",
        ));
    }
    let permit = Arc::clone(&state.readings)
        .try_acquire_owned()
        .map_err(|_| ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: format!(
                "{} documents are being read already; retry later",
                state.limits.queue_capacity
            ),
            retry_after: Some(1),
        })?;
    let options = ReadOptions {
        format: format.or(state.limits.reading.format),
        encoding: encoding.or(state.limits.reading.encoding),
        ..state.limits.reading.clone()
    };
    let id = query
        .id
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| "0".to_string());
    let read = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut documents = Vec::new();
        let read = read_stream::<std::convert::Infallible>(
            &id,
            None,
            &mut std::io::Cursor::new(body),
            &options,
            &mut |document| {
                documents.push(document);
                Ok(())
            },
        );
        match read {
            Ok(()) => documents,
            Err(never) => match never {},
        }
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the document failed: {error}"),
        )
    })?;
    if read.len() > state.limits.max_texts {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the mailbox holds {} messages; at most {} are allowed in one request",
                read.len(),
                state.limits.max_texts
            ),
        ));
    }
    let batch = read.len() > 1;
    let mut documents = Vec::with_capacity(read.len());
    for document in read {
        let text = document.text.map_err(|reason| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot read the document `{}`: {reason}", document.id),
            )
        })?;
        documents.push(JobDocument {
            id: document.id,
            text,
            format: document.format.unwrap_or(Format::Text),
            encoding: document.encoding,
        });
    }
    answer(&state, documents, config, batch).await
}
