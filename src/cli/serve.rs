//! `exitwise serve`: the classification service (HTTP/JSON), for systemd on small boxes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use exitwise::policy::PolicyKind;
use exitwise::server::metrics::Metrics;
use exitwise::server::worker::{Worker, WorkerOptions};
use exitwise::server::{AppState, Limits, router, systemd};

use super::classify::PolicyArgument;
use super::{EXIT_OK, GlobalOptions, load_pack, resolve_model_path};

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
    /// `budget`, `threads`, `gpu_layers`, `queue`, `max_texts`, `max_body_bytes`,
    /// `request_timeout_s`); flags win, unknown keys are an error
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
    #[arg(long, value_name = "POINTS")]
    budget: Option<f64>,

    /// Requests that may wait for the model; beyond, requests get 429 at once [default: 16]
    #[arg(long, value_name = "N")]
    queue: Option<usize>,

    /// Most texts in one request [default: 64]
    #[arg(long, value_name = "N")]
    max_texts: Option<usize>,

    /// Largest request body in bytes [default: 1048576]
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,

    /// Longest time from request to answer, in seconds; beyond, 408 [default: 60]
    #[arg(long, value_name = "SECONDS")]
    request_timeout_s: Option<f64>,
}

/// `--config`: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeConfig {
    listen: Option<String>,
    model: Option<PathBuf>,
    adapters: Option<PathBuf>,
    policy: Option<String>,
    budget: Option<f64>,
    threads: Option<usize>,
    gpu_layers: Option<u32>,
    queue: Option<usize>,
    max_texts: Option<usize>,
    max_body_bytes: Option<usize>,
    request_timeout_s: Option<f64>,
}

fn read_config(path: &Path) -> anyhow::Result<ServeConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration `{}`", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("cannot read the configuration `{}`", path.display()))
}

/// Where the server listens.
enum Address {
    Tcp(String),
    Unix(PathBuf),
}

/// A bound socket, ready to accept.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// The first socket passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`), if any.
/// Must run inside the runtime, which the adopted socket is registered with.
fn inherited_listener() -> anyhow::Result<Option<Listener>> {
    let mut sockets = listenfd::ListenFd::from_env();
    if sockets.len() == 0 {
        return Ok(None);
    }
    if sockets.len() > 1 {
        tracing::warn!(
            "systemd passed {} sockets; only the first is used",
            sockets.len()
        );
    }
    let context = "cannot use the socket passed by systemd (LISTEN_FDS)";
    // The TCP attempt leaves the descriptor in place when it is not a TCP socket.
    if let Ok(Some(listener)) = sockets.take_tcp_listener(0) {
        listener.set_nonblocking(true).context(context)?;
        return Ok(Some(Listener::Tcp(
            tokio::net::TcpListener::from_std(listener).context(context)?,
        )));
    }
    match sockets.take_unix_listener(0) {
        Ok(Some(listener)) => {
            listener.set_nonblocking(true).context(context)?;
            Ok(Some(Listener::Unix(
                tokio::net::UnixListener::from_std(listener).context(context)?,
            )))
        }
        Ok(None) => Ok(None),
        Err(error) => Err(anyhow::anyhow!(
            "{context}: it is not a listening TCP or Unix stream socket ({error})"
        )),
    }
}

fn parse_address(listen: &str) -> Address {
    match listen.strip_prefix("unix:") {
        Some(path) => Address::Unix(PathBuf::from(path)),
        None => Address::Tcp(listen.to_string()),
    }
}

/// Runs `exitwise serve` until SIGTERM or Ctrl-C.
pub fn run(args: &ServeArgs, global: &GlobalOptions) -> anyhow::Result<u8> {
    let config = match &args.config {
        Some(path) => read_config(path)?,
        None => ServeConfig::default(),
    };
    let policy = match (args.policy, &config.policy) {
        (Some(policy), _) => PolicyKind::from(policy),
        (None, Some(name)) => PolicyKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .with_context(|| {
                format!(
                    "unknown policy `{name}` in the configuration; known: 2d, layer, sentence, full"
                )
            })?,
        (None, None) => PolicyKind::TwoDimensional,
    };
    let budget = args.budget.or(config.budget).unwrap_or(1.0);
    let timeout = args
        .request_timeout_s
        .or(config.request_timeout_s)
        .unwrap_or(60.0);
    anyhow::ensure!(
        timeout.is_finite() && timeout > 0.0,
        "the request timeout must be a positive number of seconds"
    );
    let limits = Limits {
        max_body_bytes: args
            .max_body_bytes
            .or(config.max_body_bytes)
            .unwrap_or(1 << 20),
        max_texts: args.max_texts.or(config.max_texts).unwrap_or(64).max(1),
        request_timeout: Duration::from_secs_f64(timeout),
        queue_capacity: args.queue.or(config.queue).unwrap_or(16).max(1),
        default_policy: policy,
        default_budget: budget,
    };
    let listen = args
        .listen
        .clone()
        .or(config.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());

    let pack = Arc::new(load_pack(
        args.adapters.as_ref().or(config.adapters.as_ref()),
    )?);
    // The default setting must exist before the first request needs it.
    pack.operating_point(policy, budget)?;
    let model_path = resolve_model_path(args.model.as_ref().or(config.model.as_ref()), global)?;
    let metrics = Arc::new(Metrics::new(pack.manifest.model.layers));
    let worker_options = WorkerOptions {
        model_path,
        model_options: exitwise::engine::ModelOptions {
            gpu_layers: global.model_options().gpu_layers.or(config.gpu_layers),
        },
        threads: global.threads().or(config.threads),
        token_limit: pack.manifest.token_limit,
        queue_capacity: limits.queue_capacity,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        // The model thread does the work; two threads serve HTTP on a small box.
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(listen, limits, pack, metrics, worker_options))?;
    Ok(EXIT_OK)
}

async fn serve(
    listen: String,
    limits: Limits,
    pack: Arc<exitwise::pack::AdapterPack>,
    metrics: Arc<Metrics>,
    worker_options: WorkerOptions,
) -> anyhow::Result<()> {
    // Bind first: a taken port is a set-up error before minutes of model loading.
    // A socket file this process made, removed at the end (not one systemd passed).
    let (listener, description, own_socket_file) = match inherited_listener()? {
        Some(listener) => (listener, "the socket passed by systemd".to_string(), None),
        None => match parse_address(&listen) {
            Address::Tcp(address) => (
                Listener::Tcp(
                    tokio::net::TcpListener::bind(&address)
                        .await
                        .with_context(|| format!("cannot listen on `{address}`"))?,
                ),
                listen.clone(),
                None,
            ),
            Address::Unix(path) => {
                remove_stale_socket(&path)?;
                let listener = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("cannot listen on `unix:{}`", path.display()))?;
                (Listener::Unix(listener), listen.clone(), Some(path))
            }
        },
    };

    let (loaded, loaded_receiver) = tokio::sync::oneshot::channel();
    let worker = Worker::start(
        worker_options,
        Arc::clone(&pack),
        Arc::clone(&metrics),
        Box::new(move |outcome| {
            let _ = loaded.send(outcome);
        }),
    )
    .context("cannot start the model thread")?;
    let state = Arc::new(AppState::new(worker, pack, metrics, limits));
    let app = router(Arc::clone(&state));

    // Readiness: facts stored and systemd told once the model is loaded; a model that cannot
    // load ends the server (exit 2) instead of leaving it unready forever.
    let (failed, failure) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        match loaded_receiver.await {
            Ok(Ok(_)) => {
                if let Err(error) = systemd::notify("READY=1") {
                    tracing::warn!("cannot notify systemd: {error}");
                }
                tracing::info!("ready: model and pack loaded");
            }
            Ok(Err(reason)) => {
                let _ = failed.send(reason);
            }
            Err(_) => {
                let _ = failed.send("the model thread stopped while loading".into());
            }
        }
    });
    // The watchdog is pinged as long as the runtime runs, draining after SIGTERM included.
    if let Some(interval) = systemd::watchdog_interval() {
        tokio::spawn(async move {
            loop {
                let _ = systemd::notify("WATCHDOG=1");
                tokio::time::sleep(interval).await;
            }
        });
    }
    let load_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let shutdown = {
        let load_failure = Arc::clone(&load_failure);
        async move {
            tokio::select! {
                () = terminate_signal() => {
                    tracing::info!("stopping: answering the accepted requests");
                }
                Ok(reason) = failure => {
                    *load_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
                }
            }
            let _ = systemd::notify("STOPPING=1");
        }
    };
    eprintln!("listening on {description}");
    let outcome = match listener {
        Listener::Tcp(listener) => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the server failed"),
        Listener::Unix(listener) => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("the server failed"),
    };
    let failure = load_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let outcome = match failure {
        Some(reason) => Err(anyhow::anyhow!(reason)),
        None => outcome,
    };
    state.worker.shut_down();
    if let Some(path) = own_socket_file {
        let _ = std::fs::remove_file(path);
    }
    outcome
}

/// Removes a socket file left by a previous run; anything else at the path is an error.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the old socket `{}`", path.display())),
        Ok(_) => anyhow::bail!(
            "cannot listen on `unix:{}`: a file that is not a socket is in the way",
            path.display()
        ),
        Err(_) => Ok(()),
    }
}

/// SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn terminate_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
