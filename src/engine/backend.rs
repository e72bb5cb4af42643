//! Process-wide llama.cpp set-up: back-end initialisation (once) and routing of llama.cpp's log
//! into `tracing`, so that its chatter never reaches stderr unasked and its last error can be
//! quoted in our own messages.

use std::ffi::{CStr, c_char, c_void};
use std::sync::{Mutex, Once};

use llama_cpp_sys_2 as sys;

static INIT: Once = Once::new();

/// The first error (or, failing that, the last warning) llama.cpp logged since it was last
/// cleared; quoted when a llama.cpp call fails. The first error is the cause; later ones are
/// usually its consequences ("failed to load model").
static LAST_PROBLEM: Mutex<Option<Problem>> = Mutex::new(None);

struct Problem {
    is_error: bool,
    reason: String,
}

/// Initialises llama.cpp's back ends and log routing exactly once per process.
pub(crate) fn ensure_initialized() {
    INIT.call_once(|| {
        // SAFETY: `forward_log` is a plain `extern "C"` function that is valid for the whole
        // program and never unwinds; a null user-data pointer is allowed by llama.h. Setting the
        // log callback before `llama_backend_init` catches its messages too.
        unsafe { sys::llama_log_set(Some(forward_log), std::ptr::null_mut()) };
        // SAFETY: called once per process (guarded by `INIT`), before any other llama.cpp use.
        unsafe { sys::llama_backend_init() };
    });
}

/// Forgets the last logged problem, so that a failure reports only what it caused itself.
pub(crate) fn clear_last_problem() {
    if let Ok(mut last) = LAST_PROBLEM.lock() {
        *last = None;
    }
}

/// The last error or warning llama.cpp logged since [`clear_last_problem`].
pub(crate) fn take_last_problem() -> Option<String> {
    LAST_PROBLEM
        .lock()
        .ok()
        .and_then(|mut last| last.take())
        .map(|problem| problem.reason)
}

unsafe extern "C" fn forward_log(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = text.trim_end();
    if line.is_empty() {
        return;
    }
    // A panic must not unwind into C: everything below is infallible or ignores poisoning.
    match level {
        sys::GGML_LOG_LEVEL_ERROR => {
            tracing::debug!(target: "llama.cpp", "error: {line}");
            remember_problem(line, true);
        }
        sys::GGML_LOG_LEVEL_WARN => {
            tracing::debug!(target: "llama.cpp", "warning: {line}");
            remember_problem(line, false);
        }
        sys::GGML_LOG_LEVEL_INFO => tracing::trace!(target: "llama.cpp", "{line}"),
        _ => tracing::trace!(target: "llama.cpp", "{line}"),
    }
}

fn remember_problem(line: &str, is_error: bool) {
    let Ok(mut last) = LAST_PROBLEM.lock() else {
        return;
    };
    if last.as_ref().is_some_and(|problem| problem.is_error) {
        return;
    }
    *last = Some(Problem {
        is_error,
        reason: user_facing_reason(line),
    });
}

/// Strips llama.cpp's prefixes ("llama_model_load: error loading model: …") down to the reason
/// a user can act on.
fn user_facing_reason(line: &str) -> String {
    let mut reason = line
        .split_once(": ")
        .filter(|(prefix, _)| !prefix.contains(' '))
        .map_or(line, |(_, rest)| rest);
    for prefix in [
        "error loading model: ",
        "error loading model architecture: ",
    ] {
        reason = reason.strip_prefix(prefix).unwrap_or(reason);
    }
    reason.to_string()
}

#[cfg(test)]
mod tests {
    use super::user_facing_reason;

    #[test]
    fn reasons_lose_llama_cpp_prefixes() {
        assert_eq!(
            user_facing_reason(
                "llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'alien'"
            ),
            "unknown model architecture: 'alien'"
        );
        assert_eq!(
            user_facing_reason("plain message: with colon"),
            "plain message: with colon"
        );
    }
}
