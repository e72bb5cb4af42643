//! Where the server listens: a TCP address, a Unix socket path (`unix:/path`), or the socket
//! systemd passes by socket activation (`LISTEN_FDS`), which wins over the address.

use std::path::{Path, PathBuf};

use super::ServeError;

/// Where to listen, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `HOST:PORT`.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl Address {
    /// Reads `listen`: `unix:` followed by a path, anything else a TCP address.
    pub fn parse(listen: &str) -> Self {
        match listen.strip_prefix("unix:") {
            Some(path) => Address::Unix(PathBuf::from(path)),
            None => Address::Tcp(listen.to_string()),
        }
    }
}

/// A bound socket, ready to accept.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A Unix stream listener.
    Unix(tokio::net::UnixListener),
}

/// A bound listener, what to call it in the log, and the socket file this process made (to
/// remove at the end; never one systemd passed).
#[derive(Debug)]
pub struct Bound {
    /// The listener.
    pub listener: Listener,
    /// `the socket passed by systemd` or the address.
    pub description: String,
    /// A socket file this process created.
    pub own_socket_file: Option<PathBuf>,
}

/// Binds the socket systemd passed, or else `listen`. Must run inside the tokio runtime, which
/// the socket is registered with.
pub async fn bind(listen: &str) -> Result<Bound, ServeError> {
    if let Some(listener) = inherited_listener()? {
        return Ok(Bound {
            listener,
            description: "the socket passed by systemd".to_string(),
            own_socket_file: None,
        });
    }
    let listen_error = |cause| ServeError::Listen {
        address: listen.to_string(),
        cause,
    };
    match Address::parse(listen) {
        Address::Tcp(address) => Ok(Bound {
            listener: Listener::Tcp(
                tokio::net::TcpListener::bind(&address)
                    .await
                    .map_err(listen_error)?,
            ),
            description: listen.to_string(),
            own_socket_file: None,
        }),
        Address::Unix(path) => {
            remove_stale_socket(&path)?;
            let listener = tokio::net::UnixListener::bind(&path).map_err(listen_error)?;
            Ok(Bound {
                listener: Listener::Unix(listener),
                description: listen.to_string(),
                own_socket_file: Some(path),
            })
        }
    }
}

/// The first socket passed by systemd socket activation (`LISTEN_FDS`, `LISTEN_PID`), if any.
fn inherited_listener() -> Result<Option<Listener>, ServeError> {
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
    let inherited = |cause: std::io::Error| ServeError::Inherited(cause.to_string());
    // The TCP attempt leaves the descriptor in place when it is not a TCP socket.
    if let Ok(Some(listener)) = sockets.take_tcp_listener(0) {
        listener.set_nonblocking(true).map_err(inherited)?;
        return Ok(Some(Listener::Tcp(
            tokio::net::TcpListener::from_std(listener).map_err(inherited)?,
        )));
    }
    match sockets.take_unix_listener(0) {
        Ok(Some(listener)) => {
            listener.set_nonblocking(true).map_err(inherited)?;
            Ok(Some(Listener::Unix(
                tokio::net::UnixListener::from_std(listener).map_err(inherited)?,
            )))
        }
        Ok(None) => Ok(None),
        Err(error) => Err(ServeError::Inherited(format!(
            "it is not a listening TCP or Unix stream socket ({error})"
        ))),
    }
}

/// Removes a socket file left by a previous run; anything else at the path is an error.
fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    use std::os::unix::fs::FileTypeExt as _;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|cause| ServeError::StaleSocket {
                path: path.to_path_buf(),
                cause,
            })
        }
        Ok(_) => Err(ServeError::NotASocket(path.to_path_buf())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_tcp_unless_marked_unix() {
        assert_eq!(
            Address::parse("127.0.0.1:8080"),
            Address::Tcp("127.0.0.1:8080".into())
        );
        assert_eq!(
            Address::parse("unix:/run/exitwise.sock"),
            Address::Unix(PathBuf::from("/run/exitwise.sock"))
        );
    }

    #[test]
    fn only_a_stale_socket_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").expect("write");
        assert_eq!(
            remove_stale_socket(&file).unwrap_err().to_string(),
            format!(
                "cannot listen on `unix:{}`: a file that is not a socket is in the way",
                file.display()
            )
        );
        let socket = dir.path().join("old.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
        remove_stale_socket(&socket).expect("a socket file is removed");
        assert!(!socket.exists());
        remove_stale_socket(&socket).expect("nothing to remove");
    }
}
