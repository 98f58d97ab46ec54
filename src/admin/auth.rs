//! Who may call the admin API: a bearer token (compared in constant time),
//! the admin token for everything, the read-only token for reads. What a
//! browser page may do (hosts, origins) is [`super::browser`]'s business.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::AdminState;
use crate::config::{TokenSource, MIN_TOKEN_LEN};

/// The admin bearer token.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

/// How the token was obtained (decides what the start-up message shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    Explicit,
    /// Read from the token file written by an earlier start.
    Reused,
    /// Generated now and written to the token file.
    Generated,
}

impl AdminToken {
    /// A token from `text` (for embedding and tests).
    pub fn new(text: &str) -> Self {
        AdminToken(Arc::from(text))
    }

    /// The token itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Resolve `source`: an explicit token, or the token file next to the
    /// database (created with mode 0600 on first start, reused afterwards).
    pub fn load(source: &TokenSource) -> std::io::Result<(AdminToken, TokenOrigin)> {
        let path = match source {
            TokenSource::Explicit(token) => {
                return Ok((AdminToken::new(token.expose()), TokenOrigin::Explicit))
            }
            TokenSource::Generated(path) => path,
        };
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= MIN_TOKEN_LEN => {
                warn_if_readable_by_others(path);
                Ok((AdminToken::new(text.trim()), TokenOrigin::Reused))
            }
            Ok(_) => Err(std::io::Error::other(format!(
                "token file {} is too short; delete it to generate a new token",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = generate()?;
                write_private(path, &token)?;
                Ok((AdminToken::new(&token), TokenOrigin::Generated))
            }
            Err(e) => Err(std::io::Error::new(
                e.kind(),
                format!("cannot read token file {}: {e}", path.display()),
            )),
        }
    }

    /// Whether `presented` equals the token; the time taken does not depend
    /// on where they differ (`subtle`).
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(presented).into()
    }
}

/// 32 random bytes from the kernel, hex encoded.
fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Write `token` to a new file at `path` (mode 0600), whole or not at all:
/// it is written to a temporary file first (a random name next to it) and
/// linked into place, which fails if `path` appeared meanwhile (another
/// process won the race). A crash midway leaves at most the temporary
/// file, never an empty token file that the next start would refuse. On a
/// filesystem without hard links the file is created in place instead.
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let context = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!("cannot create token file {}: {e}", path.display()),
        )
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{:016x}.tmp", u64::from_ne_bytes(suffix)));
    let temp = std::path::PathBuf::from(temp);
    create_with(&temp, token).map_err(context)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(context(e)),
        // No hard links here (vfat, some network and FUSE filesystems).
        Err(_) => create_with(path, token).map_err(context),
    }
}

/// Create `path` (it must not exist), mode 0600, holding `token`, synced.
fn create_with(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{token}")?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the admin token file is readable by other users; chmod 600 it");
        }
    }
}

/// Middleware: refuse missing or wrong tokens (`401`) and changes made
/// with the read-only token (`403`).
pub async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    match presented {
        Some(token) if state.token.matches(token) => Ok(next.run(request).await),
        Some(token) if state.read_token.as_ref().is_some_and(|r| r.matches(token)) => {
            let method = request.method();
            if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                Ok(next.run(request).await)
            } else {
                Err(ApiError::ReadOnlyToken)
            }
        }
        _ => Err(ApiError::Unauthorized),
    }
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is
/// case-insensitive (RFC 9110 §11.1), so `bearer` and `BEARER` count too.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, token) = value.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"Bearer")
        .then(|| token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_only_itself() {
        let token = AdminToken::new("0123456789abcdef");
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcdeF"));
        assert!(!token.matches(b"0123456789abcde"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn a_generated_token_is_written_once_with_mode_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db.token");
        let source = TokenSource::Generated(path.clone());
        let (first, how) = AdminToken::load(&source).unwrap();
        assert_eq!(how, TokenOrigin::Generated);
        assert_eq!(first.expose().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, how) = AdminToken::load(&source).unwrap();
        assert_eq!((again.expose(), how), (first.expose(), TokenOrigin::Reused));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_token_file_that_appeared_meanwhile_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.db.token");
        std::fs::write(&path, "another process's token\n").unwrap();
        let err = write_private(&path, "0123456789abcdef0123").unwrap_err();
        assert!(
            err.to_string().contains("cannot create token file"),
            "{err}"
        );
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kept, "another process's token\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for (value, token) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("bEaReR   abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("Bearer", None),
            ("xBearer abc", None),
        ] {
            let found = bearer_token(value.as_bytes());
            assert_eq!(found, token.map(str::as_bytes), "{value:?}");
        }
    }
}
