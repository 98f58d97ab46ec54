//! Who may call the admin API: a bearer token (compared in constant time)
//! and, when the browser says where a request comes from, only this
//! listener's own origin.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
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

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create token file {}: {e}", path.display()),
            )
        })?;
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

/// The browser origins allowed to call the API: this listener's own, and
/// `admin.allowed_origins` (e.g. an HTTPS reverse proxy in front of it).
#[derive(Clone, Debug)]
pub struct Origins {
    allowed: Vec<String>,
    /// Bound to every address: accept the origin that matches the `Host`
    /// the request was sent to.
    any_host: bool,
}

impl Origins {
    /// The origins of a listener bound to `addr`.
    pub fn of(addr: SocketAddr) -> Self {
        let mut allowed = vec![format!("http://{addr}")];
        if addr.ip().is_loopback() {
            allowed.push(format!("http://localhost:{}", addr.port()));
        }
        Origins {
            allowed,
            any_host: addr.ip().is_unspecified(),
        }
    }

    /// These origins and `more` (already normalized, see
    /// [`crate::config::AdminSettings::allowed_origins`]).
    pub fn with(mut self, more: Vec<String>) -> Self {
        self.allowed.extend(more);
        self
    }

    fn permits(&self, origin: &str, headers: &HeaderMap) -> bool {
        if self.allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        self.any_host && host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")))
    }
}

/// Middleware: refuse foreign origins (`403`), missing or wrong tokens
/// (`401`), and changes made with the read-only token (`403`).
pub async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    // Every `Origin` line must be allowed (browsers send one).
    for origin in headers.get_all(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !state.origins.permits(&origin, headers) {
            return Err(ApiError::ForbiddenOrigin(origin.into_owned()));
        }
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii);
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
    }

    #[test]
    fn only_the_listeners_own_origin_is_permitted() {
        let loopback = Origins::of("127.0.0.1:8081".parse().unwrap());
        let none = HeaderMap::new();
        assert!(loopback.permits("http://127.0.0.1:8081", &none));
        assert!(loopback.permits("http://localhost:8081", &none));
        assert!(!loopback.permits("http://localhost:9999", &none));
        assert!(!loopback.permits("https://evil.example", &none));
        let everywhere = Origins::of("0.0.0.0:8081".parse().unwrap());
        let mut host = HeaderMap::new();
        host.insert(header::HOST, "10.1.2.3:8081".parse().unwrap());
        assert!(everywhere.permits("http://10.1.2.3:8081", &host));
        assert!(!everywhere.permits("http://evil.example", &host));
    }
}
