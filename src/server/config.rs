//! `serve --config FILE`: TOML with the same keys as the command's flags. Flags win over the
//! file; unknown keys are an error naming them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::Budget;

/// The configuration file's keys (all optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// `HOST:PORT` or `unix:/path`.
    pub listen: Option<String>,
    /// GGUF file or catalog name.
    pub model: Option<PathBuf>,
    /// Adapter pack folder or name.
    pub adapters: Option<PathBuf>,
    /// Default policy's name.
    pub policy: Option<String>,
    /// Default accuracy budget in points.
    pub budget: Option<Budget>,
    /// llama.cpp threads (over all workers).
    pub threads: Option<usize>,
    /// Sessions classifying at once.
    pub workers: Option<usize>,
    /// Layers offloaded to the GPU.
    pub gpu_layers: Option<u32>,
    /// Requests that may wait for the model.
    pub queue: Option<usize>,
    /// Most texts in one request.
    pub max_texts: Option<usize>,
    /// Largest request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Longest time from request to answer, in seconds.
    pub request_timeout_s: Option<f64>,
    /// Longest time to receive a request's headers, in seconds.
    pub header_timeout_s: Option<f64>,
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// The API key `/v1/*` requests must bear (prefer `api_key_file`: a key in a
    /// world-readable configuration is no secret).
    pub api_key: Option<String>,
    /// A file holding the API key, e.g. a systemd credential.
    pub api_key_file: Option<PathBuf>,
    /// Whether `/metrics` needs the key too.
    pub metrics_need_key: Option<bool>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the configuration `{}`: {reason}", path.display())]
pub struct ConfigError {
    path: PathBuf,
    reason: String,
}

impl ServeConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|cause| error(cause.to_string()))?;
        toml::from_str(&text).map_err(|cause| error(cause.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_unknown_ones_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("serve.toml");
        std::fs::write(
            &path,
            "listen = \"unix:/run/x.sock\"\nbudget = 2\nqueue = 4\n",
        )
        .expect("write");
        let config = ServeConfig::read(&path).expect("valid");
        assert_eq!(config.listen.as_deref(), Some("unix:/run/x.sock"));
        assert_eq!(config.budget, Some(Budget::from_hundredths(200)));
        assert_eq!(config.queue, Some(4));
        std::fs::write(&path, "queue_size = 4\n").expect("write");
        let error = ServeConfig::read(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "cannot read the configuration `{}`",
                path.display()
            )),
            "{error}"
        );
        assert!(error.contains("unknown field `queue_size`"), "{error}");
    }
}
