//! `exitwise serve`: the classification service (HTTP/JSON), for systemd on small boxes. This
//! file merges the flags with the configuration file; [`exitwise::server`] serves.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use exitwise::engine::{ModelOptions, SessionPlan, usable_cpus};
use exitwise::exit::{Budget, PolicyKind};
use exitwise::server::auth::ApiKey;
use exitwise::server::config::ServeConfig;
use exitwise::server::connections::ConnectionLimits;
use exitwise::server::worker::WorkerOptions;
use exitwise::server::{Limits, ServeOptions};

use crate::cli::options::{InputFormat, PolicyArgument, read_options};
use crate::cli::resolve::{load_pack, resolve_model_path};
use crate::cli::{EXIT_OK, GlobalOptions};

/// Arguments of `exitwise serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Endpoints: POST /v1/classify, GET /v1/info, /healthz, /readyz, /metrics (see the README).\n\nUnder systemd (Type=notify) it reports READY=1 once the model is loaded, pings the watchdog when WatchdogSec is set, and stops gracefully on SIGTERM: it stops accepting, answers every accepted request, and exits 0."
)]
pub struct ServeArgs {
    /// Where to listen: `HOST:PORT` or `unix:/path/to/socket` [default: 127.0.0.1:8080]
    ///
    /// Under systemd socket activation (`LISTEN_FDS`, e.g. `deploy/exitwise.socket`) the socket
    /// systemd passes is used instead, and this setting is ignored.
    #[arg(long, value_name = "ADDRESS")]
    listen: Option<String>,

    /// TOML file with the same keys as these flags (`listen`, `model`, `adapters`, `policy`,
    /// `budget`, `threads`, `workers`, `gpu_layers`, `queue`, `max_texts`, `max_body_bytes`,
    /// `request_timeout_s`, `header_timeout_s`, `max_connections`, `api_key`, `api_key_file`,
    /// `metrics_need_key`); flags win, unknown
    /// keys are an error
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// GGUF model file, or the name of a catalog model [default: the catalog's default model]
    #[arg(long, value_name = "PATH|NAME")]
    model: Option<PathBuf>,

    /// Adapter pack: a folder, or the name of a pack in `adapters/` [default: the compiled-in
    /// pack]
    #[arg(long, value_name = "NAME|DIR")]
    adapters: Option<PathBuf>,

    /// Exit policy of requests that name none [default: 2d]
    #[arg(long, value_enum)]
    policy: Option<PolicyArgument>,

    /// Accuracy budget of requests that name none [default: 1]
    ///
    /// As for `classify --budget`: with a pack calibrated by fixed-sequence testing, at most
    /// this many points of accuracy lost against `full` on documents like the calibration
    /// data, with probability 1 − δ; `/v1/info` says what the pack promises.
    #[arg(long, value_name = "POINTS")]
    budget: Option<Budget>,

    /// Requests classified at once, each by its own session over the one loaded model
    /// [default: 1]
    ///
    /// Each worker has its own KV cache and compute buffers (gemma3-270m: 40 MB more each for
    /// short texts, up to 150 MB for 512-token documents at full depth) and takes the next
    /// request from the queue when it is free; --threads is split among them (without it, each
    /// takes its share of what other processes leave free). One worker answers a lone request
    /// soonest; on a CPU, one worker per core answers more requests per second under load
    /// (1.16× with 2 on 2 cores; docs/results.md, "Scaling").
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Requests that may wait for the model; beyond, requests get 429 at once [default: 16]
    #[arg(long, value_name = "N")]
    queue: Option<usize>,

    /// Most texts in one request [default: 64]
    #[arg(long, value_name = "N")]
    max_texts: Option<usize>,

    /// Largest request body in bytes [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,

    /// API key that `/v1/*` requests must bear as `Authorization: Bearer <key>` (401
    /// otherwise); `/healthz` and `/readyz` stay open [default: none, the service is open]
    ///
    /// Also `EXITWISE_API_KEY`. A key on the command line shows in the process list: prefer
    /// --api-key-file, e.g. a systemd credential (`LoadCredential=`).
    #[arg(
        long,
        value_name = "KEY",
        env = "EXITWISE_API_KEY",
        hide_env_values = true,
        conflicts_with = "api_key_file"
    )]
    api_key: Option<String>,

    /// File holding the API key (its surrounding whitespace is ignored), e.g.
    /// `$CREDENTIALS_DIRECTORY/api-key` under systemd
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,

    /// `/metrics` needs the API key too [default: open, for scrapers on the host]
    #[arg(long)]
    metrics_need_key: bool,

    /// Longest time from request to answer, in seconds; beyond, 408 [default: 60]
    ///
    /// It includes reading the body: a client that trickles its body gets 408.
    #[arg(long, value_name = "SECONDS")]
    request_timeout_s: Option<f64>,

    /// Longest time to receive a request's headers, in seconds; beyond, the connection is
    /// closed [default: 10]
    ///
    /// Counted from when the connection is ready for a request: a new connection, or one kept
    /// alive between requests. Clients that trickle headers (slowloris) or hold connections
    /// idle free their place after it.
    #[arg(long, value_name = "SECONDS")]
    header_timeout_s: Option<f64>,

    /// Most connections open at once; beyond, new connections wait until one closes
    /// [default: 1024]
    ///
    /// The process's open-files limit is raised to its hard limit at start, so this cap is
    /// what a flood of connections meets.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

/// Runs `exitwise serve` until SIGTERM or Ctrl-C.
pub fn run(args: &ServeArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let config = match &args.config {
        Some(path) => ServeConfig::read(path)?,
        None => ServeConfig::default(),
    };
    let policy = match (args.policy, &config.policy) {
        (Some(policy), _) => PolicyKind::from(policy),
        (None, Some(name)) => PolicyKind::from_name(name).with_context(|| {
            format!(
                "unknown policy `{name}` in the configuration; known: 2d, layer, sentence, full"
            )
        })?,
        (None, None) => PolicyKind::TwoDimensional,
    };
    let budget = args
        .budget
        .or(config.budget)
        .unwrap_or(Budget::from_hundredths(100));
    let request_timeout = seconds(
        args.request_timeout_s.or(config.request_timeout_s),
        60.0,
        "request",
    )?;
    let api_key = match (
        &args.api_key,
        &args.api_key_file,
        &config.api_key,
        &config.api_key_file,
    ) {
        (Some(key), _, _, _) => Some(ApiKey::new(key)?),
        (None, Some(file), _, _) => Some(ApiKey::from_file(file)?),
        (None, None, Some(_), Some(_)) => {
            anyhow::bail!("the configuration sets both `api_key` and `api_key_file`: keep one")
        }
        (None, None, Some(key), None) => Some(ApiKey::new(key)?),
        (None, None, None, Some(file)) => Some(ApiKey::from_file(file)?),
        (None, None, None, None) => None,
    };
    let pack = Arc::new(load_pack(
        args.adapters.as_ref().or(config.adapters.as_ref()),
    )?);
    let limits = Limits {
        metrics_need_key: args.metrics_need_key || config.metrics_need_key.unwrap_or(false),
        api_key,
        max_body_bytes: args
            .max_body_bytes
            .or(config.max_body_bytes)
            .unwrap_or(1 << 20),
        max_texts: args.max_texts.or(config.max_texts).unwrap_or(64).max(1),
        request_timeout,
        queue_capacity: args.queue.or(config.queue).unwrap_or(16).max(1),
        default_policy: policy,
        default_budget: budget,
        reading: read_options(
            InputFormat::Auto,
            None,
            exitwise::text::byte_limit(pack.manifest.token_limit),
        )?,
    };
    let listen = args
        .listen
        .clone()
        .or(config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());

    // The default setting must exist before the first request needs it.
    let default_setting = pack.operating_point(policy, budget)?;
    crate::cli::commands::classify::warn_if_fallback(&pack, policy, budget, &default_setting);
    let model_path = resolve_model_path(args.model.as_ref().or(config.model.as_ref()), global)?;
    let plan = SessionPlan::choose(
        Some(args.workers.or(config.workers).unwrap_or(1).max(1)),
        global.threads().or(config.threads),
        usable_cpus(),
        None,
    );
    let worker = WorkerOptions {
        model_path,
        model_options: ModelOptions {
            gpu_layers: global.model_options().gpu_layers.or(config.gpu_layers),
        },
        workers: plan.sessions,
        threads: plan.threads_per_session,
        token_limit: pack.manifest.token_limit,
        queue_capacity: limits.queue_capacity,
    };
    let header_timeout = seconds(
        args.header_timeout_s.or(config.header_timeout_s),
        10.0,
        "header",
    )?;
    let connections = ConnectionLimits {
        header_timeout,
        max_connections: args
            .max_connections
            .or(config.max_connections)
            .unwrap_or(1024)
            .max(1),
    };
    exitwise::server::run(ServeOptions {
        connections,
        listen,
        limits,
        pack,
        worker,
    })?;
    Ok(EXIT_OK)
}

/// A timeout given in seconds (`default` when not given), which must be a positive number:
/// `what` names it in the error ("the request timeout must be …").
fn seconds(given: Option<f64>, default: f64, what: &str) -> anyhow::Result<Duration> {
    let seconds = given.unwrap_or(default);
    anyhow::ensure!(
        seconds.is_finite() && seconds > 0.0,
        "the {what} timeout must be a positive number of seconds"
    );
    Ok(Duration::from_secs_f64(seconds))
}
