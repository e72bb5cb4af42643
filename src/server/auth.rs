//! The service's API key: when one is set, `/v1/*` (and `/metrics` when configured) answer only
//! requests with `Authorization: Bearer <key>`; the key is compared in constant time.

use std::fmt;
use std::path::Path;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// A secret API key. Its `Debug` does not print it.
#[derive(Clone)]
pub struct ApiKey(Vec<u8>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("ApiKey(<redacted>)")
    }
}

/// Why a key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// The key file cannot be read.
    #[error("cannot read the API key file `{}`: {cause}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The system's error.
        cause: std::io::Error,
    },
    /// The key is empty, or holds whitespace or control characters inside.
    #[error("the API key {0}")]
    Invalid(&'static str),
}

impl ApiKey {
    /// A key from its text; surrounding whitespace (a file's final newline) is dropped.
    pub fn new(text: &str) -> Result<Self, ApiKeyError> {
        let key = text.trim();
        if key.is_empty() {
            return Err(ApiKeyError::Invalid("is empty"));
        }
        if key
            .chars()
            .any(|character| character.is_whitespace() || character.is_control())
        {
            return Err(ApiKeyError::Invalid(
                "holds whitespace or control characters",
            ));
        }
        Ok(ApiKey(key.as_bytes().to_vec()))
    }

    /// The key in a file, e.g. a systemd credential (`LoadCredential=`, read from
    /// `$CREDENTIALS_DIRECTORY`).
    pub fn from_file(path: &Path) -> Result<Self, ApiKeyError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ApiKeyError::File {
            path: path.to_path_buf(),
            cause,
        })?;
        ApiKey::new(&text)
    }

    /// Checks a request's headers: `Ok` with `Authorization: Bearer <this key>`, else the
    /// reason for the 401 answer.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err("this server needs an API key: send `Authorization: Bearer <key>`");
        };
        let offered = value
            .as_bytes()
            .split_first_chunk::<7>()
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, token)| token.trim_ascii())
            .ok_or("the `Authorization` header must be `Bearer <key>`")?;
        if constant_time_equal(offered, &self.0) {
            Ok(())
        } else {
            Err("the API key is not valid")
        }
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths (the offered
/// length is not a secret worth hiding; the key's bytes are).
pub fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b));
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn only_the_bearer_key_passes() {
        let key = ApiKey::new("s3cret-key\n").expect("valid");
        assert_eq!(key.check(&headers("Bearer s3cret-key")), Ok(()));
        assert_eq!(key.check(&headers("bearer s3cret-key ")), Ok(()));
        assert_eq!(
            key.check(&headers("Bearer s3cret-kez")),
            Err("the API key is not valid")
        );
        assert_eq!(
            key.check(&headers("Bearer s3cret")),
            Err("the API key is not valid")
        );
        assert_eq!(
            key.check(&headers("Basic czNjcmV0")),
            Err("the `Authorization` header must be `Bearer <key>`")
        );
        assert!(key.check(&HeaderMap::new()).is_err());
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
    }

    #[test]
    fn keys_must_be_one_word() {
        assert!(ApiKey::new("  ").is_err());
        assert!(ApiKey::new("two words").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("api-key");
        std::fs::write(&file, "from-a-file\n").expect("write");
        // The file's key (its newline trimmed) is the one that passes.
        let key = ApiKey::from_file(&file).expect("read");
        assert!(key.check(&headers("Bearer from-a-file")).is_ok());
        assert!(key.check(&headers("Bearer from-a-fil")).is_err());
        let missing = ApiKey::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cannot read the API key file `")
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_equal(b"abc", b"abc"));
        assert!(!constant_time_equal(b"abc", b"abd"));
        assert!(!constant_time_equal(b"abc", b"abcd"));
        assert!(constant_time_equal(b"", b""));
    }
}
