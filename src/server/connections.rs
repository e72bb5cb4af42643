//! The accept loop and graceful shutdown of the HTTP connections.
//!
//! axum's own `serve(..).with_graceful_shutdown(..)` closes at once every connection that has
//! not yet delivered a complete request when the shutdown starts. A client that connected a
//! moment before SIGTERM, and whose request was still on the wire, then gets an empty reply
//! (curl exit 52): its request was accepted and never answered. This loop keeps the rest of
//! axum's behaviour (stop accepting, finish requests in progress, close idle keep-alive
//! connections) and gives a connection that has not sent its first request yet
//! [`FIRST_REQUEST_GRACE`] to send it; that request is answered, with `Connection: close`.
//! Connections that completed their handshake before the listener closed are accepted first,
//! so they are answered instead of reset.
//!
//! Against slow or idle clients ([`ConnectionLimits`]): a connection that does not deliver a
//! request's headers within the header timeout (trickling them, or idle between keep-alive
//! requests) is closed; a body is read within the request timeout (408, the HTTP layer). At most
//! `max_connections` connections are open at once: beyond, new ones wait in the kernel's accept
//! queue until one closes, so a flood of idle sockets delays a client by at most the header
//! timeout instead of exhausting the process's file descriptors or memory.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// Limits on the connections themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time to receive a request's headers, from when the connection is ready for
    /// them (a new connection, or one idle between requests); the connection is closed beyond.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// How long a connection accepted before the shutdown may take to send its first request.
/// A client sends its request right after connecting, so this is a bound for slow links, not a
/// delay most shutdowns see: a connection that sends nothing is closed after it.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(2);

/// How long the accept queue is read after the shutdown signal: connections the kernel already
/// completed arrive within microseconds; the bound keeps a flood of new ones from delaying the
/// shutdown.
const BACKLOG_DRAIN: Duration = Duration::from_millis(20);

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, answers every
/// request of the accepted connections (see the module documentation) and returns when the
/// last connection has closed.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
{
    let (stopping, stop_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        // A place first: at the cap, new connections wait in the kernel's accept queue.
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        // Said once each time the cap is reached, not for every connection that meets it.
        if open.available_permits() == 0 && !at_cap {
            tracing::warn!(
                "{} connections open: new ones wait until one closes",
                limits.max_connections
            );
        }
        at_cap = open.available_permits() == 0;
        tokio::select! {
            (io, _) = listener.accept() => {
                connections.spawn(serve_connection(io, app.clone(), limits, stop_signal.clone(), Some(permit)));
            }
            () = &mut shutdown => break,
        }
        // Reap finished connections so a long-running server does not keep their results.
        while connections.try_join_next().is_some() {}
    }
    // From here on every answer closes its connection; then the connections already in the
    // accept queue (accepted by the kernel) are taken, to be answered rather than reset when the
    // listener closes.
    let _ = stopping.send(true);
    // One deadline for the whole drain, not one per accept: clients that keep connecting less
    // than BACKLOG_DRAIN apart would otherwise keep the listener open, and the connections
    // accepted before the signal could outlive their FIRST_REQUEST_GRACE waiting for it to close.
    let drain_deadline = tokio::time::Instant::now() + BACKLOG_DRAIN;
    while let Ok((io, _)) = tokio::time::timeout_at(drain_deadline, listener.accept()).await {
        let permit = Arc::clone(&open).try_acquire_owned().ok();
        connections.spawn(serve_connection(
            io,
            app.clone(),
            limits,
            stop_signal.clone(),
            permit,
        ));
    }
    drop(listener);
    tracing::debug!("waiting for {} connection(s) to finish", connections.len());
    while connections.join_next().await.is_some() {}
}

/// Serves one connection with HTTP/1.1 keep-alive until the client closes it, or until the
/// shutdown, after which it ends as the module documentation says.
/// The connection holds `_place` (its place under the connection cap) until it ends.
async fn serve_connection<Io>(
    io: Io,
    app: Router,
    limits: ConnectionLimits,
    mut stop_signal: watch::Receiver<bool>,
    _place: Option<OwnedSemaphorePermit>,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let first_request = Arc::new(AtomicBool::new(false));
    let service = {
        let first_request = Arc::clone(&first_request);
        let stop_signal = stop_signal.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            first_request.store(true, Ordering::Release);
            let mut router = app.clone();
            let stop_signal = stop_signal.clone();
            async move {
                let mut response =
                    tower_service::Service::call(&mut router, request.map(Body::new)).await?;
                // An answer given once the shutdown has begun is the connection's last one.
                if *stop_signal.borrow() {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);

    // Phase 1: serve until the connection ends or the shutdown begins.
    let stopping = async {
        while !*stop_signal.borrow_and_update() {
            if stop_signal.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        result = connection.as_mut() => {
            log_connection_end(result);
            return;
        }
        () = stopping => {}
    }
    // Phase 2: a connection that has not begun a request may still be sending it; its answer
    // closes it (see the service above).
    if !first_request.load(Ordering::Acquire) {
        tokio::select! {
            result = connection.as_mut() => {
                log_connection_end(result);
                return;
            }
            () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
        }
    }
    // Phase 3: a request in progress is answered; an idle connection closes now.
    connection.as_mut().graceful_shutdown();
    log_connection_end(connection.await);
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        tracing::debug!("connection ended with an error: {error}");
    }
}
