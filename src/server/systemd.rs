//! systemd's notification protocol (`sd_notify`), in plain Rust over a Unix datagram socket:
//! `READY=1` once the model is loaded, `WATCHDOG=1` pings when the unit sets a watchdog,
//! `STOPPING=1` on the way out. Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `READY=1`) to systemd if this process runs under a unit with
/// `Type=notify`; errors are returned for logging, never fatal.
pub fn notify(state: &str) -> std::io::Result<bool> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => notify_socket(&path, state).map(|()| true),
        None => Ok(false),
    }
}

/// Sends `state` to the notification socket `path` (a file path, or `@name` for an abstract
/// socket).
pub fn notify_socket(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): the name follows the `@`.
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?;
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other("abstract sockets need Linux"));
        }
    }
    socket.send_to(state.as_bytes(), std::path::Path::new(path))?;
    Ok(())
}

/// The interval at which to ping the watchdog: half of `WATCHDOG_USEC`, when it is set for this
/// process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let microseconds: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok()? != std::process::id()
    {
        return None;
    }
    (microseconds > 0).then(|| Duration::from_micros(microseconds / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket_systemd_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        notify_socket(path.as_os_str(), "READY=1").expect("sent");
        let mut buffer = [0u8; 64];
        let received = listener.recv(&mut buffer).expect("received");
        assert_eq!(&buffer[..received], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_sockets_are_named_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("exitwise-test-{}", std::process::id());
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let listener = UnixDatagram::bind_addr(&address).expect("bind");
        notify_socket(std::ffi::OsStr::new(&format!("@{name}")), "WATCHDOG=1").expect("sent");
        let mut buffer = [0u8; 64];
        let received = listener.recv(&mut buffer).expect("received");
        assert_eq!(&buffer[..received], b"WATCHDOG=1");
    }
}
