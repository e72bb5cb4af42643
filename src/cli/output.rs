//! Where output goes: data to stdout, progress and logs to stderr; broken pipes are not errors.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether stderr may carry colour (a terminal, and `NO_COLOR` unset).
pub fn color_enabled() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Whether to draw progress bars: only on a terminal, never in pipes or with `NO_COLOR`.
pub fn progress_enabled() -> bool {
    color_enabled()
}

/// A progress bar on stderr with `template` (indicatif syntax), hidden when progress is
/// disabled.
fn bar(total: u64, template: &str, message: &str) -> ProgressBar {
    let bar = if progress_enabled() {
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A byte-count progress bar (downloads, hashing).
pub fn bytes_bar(total: u64, message: &str) -> ProgressBar {
    bar(
        total,
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        message,
    )
}

/// A counting progress bar (steps of a benchmark, layers trained).
pub fn steps_bar(total: u64, message: &str) -> ProgressBar {
    bar(total, "{msg} [{bar:30}] {pos}/{len} ({eta})", message)
}

/// A spinner with a message that the caller updates (work without a known total).
pub fn spinner(message: &str) -> ProgressBar {
    bar(0, "{spinner} {msg}", message)
}

/// A document-count progress bar with documents per second and the ETA.
pub fn documents_bar(total: u64, message: &str) -> ProgressBar {
    bar(
        total,
        "{msg} [{bar:30}] {pos}/{len} documents ({per_sec}, ETA {eta})",
        message,
    )
}

/// Writes `text` to stdout and flushes, so each result is out before the next is computed.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Whether an error comes from writing to a closed pipe (`exitwise … | head`), which ends the
/// program quietly with success, like other Unix tools.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `value` as pretty JSON (and a final newline) to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the JSON report to `{}`", path.display()))
}
