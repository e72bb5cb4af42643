//! `exitwise serve`: classification over HTTP/JSON for systemd on small boxes, as
//! text-embeddings-inference does it. The model lives on its own thread ([`worker`]) and
//! requests reach it through a bounded queue (a full queue is an immediate 429); the HTTP layer
//! ([`http`]) checks requests ([`request`]) and answers with the records `classify` writes.
//! [`listener`] binds the address or adopts systemd's socket, [`config`] reads the TOML
//! configuration, [`auth`] checks the API key, [`metrics`] counts for Prometheus and
//! [`systemd`] speaks the notify protocol.

pub mod auth;
pub mod config;
pub mod connections;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod request;
pub mod systemd;
pub mod worker;

use std::path::PathBuf;
use std::sync::Arc;

pub use http::{AppState, BatchResponse, Limits, router};

use crate::pack::AdapterPack;
use metrics::Metrics;
use worker::{Worker, WorkerOptions};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on `{address}`: {cause}")]
    Listen {
        /// The address as given.
        address: String,
        /// The system's error.
        cause: std::io::Error,
    },
    /// A socket file left by an earlier run cannot be removed.
    #[error("cannot remove the old socket `{}`: {cause}", path.display())]
    StaleSocket {
        /// The socket file.
        path: PathBuf,
        /// The system's error.
        cause: std::io::Error,
    },
    /// Something that is not a socket is at the Unix socket's path.
    #[error(
        "cannot listen on `unix:{}`: a file that is not a socket is in the way",
        .0.display()
    )]
    NotASocket(PathBuf),
    /// The socket systemd passed cannot be used.
    #[error("cannot use the socket passed by systemd (LISTEN_FDS): {0}")]
    Inherited(String),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The model thread could not start.
    #[error("cannot start the model thread: {0}")]
    Worker(std::io::Error),
    /// The model or the pack could not be loaded on the model thread.
    #[error("{0}")]
    Load(String),
}

/// What the server needs to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `HOST:PORT` or `unix:/path` (ignored when systemd passes a socket).
    pub listen: String,
    /// Limits and defaults of the HTTP layer.
    pub limits: Limits,
    /// The adapter pack.
    pub pack: Arc<AdapterPack>,
    /// The model thread's model, threads and queue.
    pub worker: WorkerOptions,
    /// Header timeout and connection cap.
    pub connections: connections::ConnectionLimits,
}

/// Serves until SIGTERM or Ctrl-C, then answers every accepted request and returns. The address
/// is bound before the model loads (a taken port fails at once); a model that cannot load ends
/// the server with an error instead of leaving it unready.
pub fn run(options: ServeOptions) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // The model thread does the work; two threads serve HTTP on a small box.
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(options))
}

async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let ServeOptions {
        listen,
        limits,
        pack,
        worker,
        connections: connection_limits,
    } = options;
    // Every open connection is a file descriptor: the soft limit (often 1024) is raised to the
    // hard one, so the connection cap, not the descriptor limit, is what new clients meet.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-files limit: {error}");
    }
    // Bind first: a taken port is a set-up error before minutes of model loading.
    let bound = listener::bind(&listen).await?;
    let metrics = Arc::new(Metrics::new(pack.manifest.model.layers));

    let (loaded, loaded_receiver) = tokio::sync::oneshot::channel();
    let worker = Worker::start(
        worker,
        Arc::clone(&pack),
        Arc::clone(&metrics),
        Box::new(move |outcome| {
            let _ = loaded.send(outcome);
        }),
    )
    .map_err(ServeError::Worker)?;
    let state = Arc::new(AppState::new(worker, pack, metrics, limits));
    let app = router(Arc::clone(&state));

    // Readiness: systemd is told once the model is loaded; a model that cannot load ends the
    // server (exit 2) instead of leaving it unready forever.
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
    eprintln!("listening on {}", bound.description);
    match bound.listener {
        listener::Listener::Tcp(listener) => {
            connections::serve(listener, app, connection_limits, shutdown).await;
        }
        listener::Listener::Unix(listener) => {
            connections::serve(listener, app, connection_limits, shutdown).await;
        }
    }
    let failure = load_failure
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let outcome = match failure {
        Some(reason) => Err(ServeError::Load(reason)),
        None => Ok(()),
    };
    state.worker.shut_down();
    if let Some(path) = bound.own_socket_file {
        let _ = std::fs::remove_file(path);
    }
    outcome
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
