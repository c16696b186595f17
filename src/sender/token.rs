//! The API token: readable only by the request builder, redacted everywhere else.

use std::fmt;
use std::path::Path;

/// A Wolkvox token. No `Display`; `Debug` is redacted; only `expose` reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Option<Token> {
        let secret = secret.into().trim().to_string();
        (!secret.is_empty()).then_some(Token(secret))
    }

    /// For the `Wolkvox-Token` header, and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, stable fingerprint for summaries: never the token itself.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        format!(
            "{:02x}{:02x}{:02x}{:02x}",
            digest[0], digest[1], digest[2], digest[3]
        )
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where the token comes from: `--token-file` wins over `WOLKVOX_TOKEN`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no token: set the WOLKVOX_TOKEN environment variable or pass --token-file FILE \
         (an internal token from CRM → Configuration → Wolkvox Integration → Tokens); \
         to try the tool without one, use --simulate"
    )]
    Missing,
    #[error("cannot read the token file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("the token file {path} holds no token")]
    EmptyFile { path: String },
    #[error("token {fingerprint} has spaces or characters an HTTP header cannot carry")]
    Malformed { fingerprint: String },
}

/// The tokens of a run: `--token-file` (one token per line, `#` comments; or a directory
/// with one token per file) wins over `WOLKVOX_TOKEN`.
pub fn load(
    token_file: Option<&Path>,
    env_value: Option<String>,
) -> Result<Vec<Token>, TokenError> {
    let Some(path) = token_file else {
        let token = env_value.and_then(Token::new).ok_or(TokenError::Missing)?;
        return checked(vec![token]);
    };
    let unreadable = |source| TokenError::Unreadable {
        path: path.display().to_string(),
        source,
    };
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(unreadable)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut tokens: Vec<Token> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| TokenError::Unreadable {
            path: file.display().to_string(),
            source,
        })?;
        warn_if_readable_by_others(&file);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(token) = Token::new(line)
                && !tokens.contains(&token)
            {
                tokens.push(token);
            }
        }
    }
    if tokens.is_empty() {
        return Err(TokenError::EmptyFile {
            path: path.display().to_string(),
        });
    }
    checked(tokens)
}

fn checked(tokens: Vec<Token>) -> Result<Vec<Token>, TokenError> {
    if let Some(bad) = tokens
        .iter()
        .find(|t| !t.0.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(TokenError::Malformed {
            fingerprint: bad.fingerprint(),
        });
    }
    Ok(tokens)
}

/// A token file every user may read, or others may change, is worth a warning. One its
/// group may read is not: that is how a Kubernetes Secret volume reaches a non-root pod
/// (mode 0440, the group the pod's fsGroup), and how a team shares a file on purpose.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if let Some(why) = exposure(mode) {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "The token file {why}: chmod 600 it (or 640 for a group that needs it); in a \
                 Kubernetes Secret volume set defaultMode: 0400, or 0440 with the pod's \
                 fsGroup."
            );
        }
    }
}

/// What is wrong with a token file's permission bits, if anything.
#[cfg(unix)]
fn exposure(mode: u32) -> Option<&'static str> {
    if mode & 0o022 != 0 {
        Some("can be changed by users other than its owner")
    } else if mode & 0o004 != 0 {
        Some("can be read by every user of this machine")
    } else {
        None
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::new("s3cr3t-value").unwrap();
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(!token.fingerprint().contains("s3cr3t"));
    }

    #[cfg(unix)]
    #[test]
    fn a_group_readable_secret_is_fine_a_world_readable_one_is_not() {
        assert_eq!(exposure(0o600), None);
        assert_eq!(exposure(0o440), None);
        assert_eq!(exposure(0o400), None);
        assert!(exposure(0o644).unwrap().contains("every user"));
        assert!(exposure(0o444).unwrap().contains("every user"));
        assert!(exposure(0o620).unwrap().contains("changed"));
    }

    #[test]
    fn blank_tokens_are_missing() {
        assert!(matches!(
            load(None, Some("  ".into())),
            Err(TokenError::Missing)
        ));
        assert!(matches!(load(None, None), Err(TokenError::Missing)));
    }
}
