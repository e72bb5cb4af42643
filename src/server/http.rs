//! The HTTP layer (axum on tokio). The model lives on its own thread ([`super::worker`]);
//! handlers validate requests, queue them without waiting and await the answer.
//!
//! Statuses: 200 answered; 400 malformed JSON; 413 body too large or too many texts; 415 not
//! JSON; 422 wrong types, empty text, unknown policy or uncalibrated budget; 429 queue full
//! (with `Retry-After`); 408 the request took longer than the request timeout; 503 not ready or
//! stopping. Errors are JSON: `{"error": "<reason>"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tower_http::timeout::TimeoutLayer;

use crate::classifier::ResultRecord;
use crate::exit::{Budget, PolicyKind};
use crate::pack::AdapterPack;

use super::auth::ApiKey;
use super::metrics::Metrics;
use super::request::{ClassifyBody, ClassifyRequest, Documents};
use super::worker::{Job, SubmitError, Worker};

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
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false, "reason": "the model is loading" })),
        )
            .into_response()
    }
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
        "ready": state.worker.is_ready(),
        "pack": {
            "name": manifest.name,
            "labels": manifest.labels,
            "feature_kind": manifest.feature_kind,
            "token_limit": manifest.token_limit,
            "best_layer": manifest.best_layer + 1,
            "trained_on": manifest.model,
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
        let status = rejection.status();
        let reason = match status {
            StatusCode::PAYLOAD_TOO_LARGE => format!(
                "the request body is larger than {} bytes",
                state.limits.max_body_bytes
            ),
            _ => rejection.body_text(),
        };
        ApiError::new(status, reason)
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
    let policy = request.policy.unwrap_or(state.limits.default_policy);
    let budget = request.budget.unwrap_or(state.limits.default_budget);
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
    let batch = matches!(request.documents, Documents::Batch(_));
    let documents = request.documents.with_ids(request.id.as_deref());
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
    let answers = answer.await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model thread stopped before answering",
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
