//! `admin = { ... }`: where the admin API listens, where its tokens come
//! from, which browser origins may use it and by which names it may be
//! reached.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// Shortest accepted admin token.
pub const MIN_TOKEN_LEN: usize = 16;

/// `admin = { listen = "127.0.0.1:8081", token = "...", token_file = "...",
/// read_token = "...", allowed_origins = { "https://admin.example.com" },
/// allowed_hosts = { "admin.example.com" } }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Admin API and UI listen address.
    pub listen: SocketAddr,
    /// The bearer token (Lua may read it from the environment).
    pub token: Option<Secret>,
    /// A file holding the bearer token (surrounding whitespace ignored).
    pub token_file: Option<PathBuf>,
    /// A read-only token: every `GET` and `/metrics`, no changes (`403`).
    pub read_token: Option<Secret>,
    /// Browser origins, besides the listener's own, whose pages may call
    /// the API (e.g. the UI behind an HTTPS reverse proxy).
    pub allowed_origins: Vec<String>,
    /// Names, besides IP addresses and `localhost`, that requests to the
    /// admin and metrics listeners may carry in `Host` (against DNS
    /// rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: None,
            token_file: None,
            read_token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Where the admin token comes from, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// Given by the operator (flag, environment, `admin.token` or `admin.token_file`).
    Explicit(Secret),
    /// Read from, or generated into, this file next to the database.
    Generated(PathBuf),
}

impl AdminSettings {
    /// The token source for a store at `database`; refuses a weak token and
    /// a non-loopback listener without an explicit token.
    pub fn token_source(&self, database: &str) -> Result<TokenSource, ConfigError> {
        let explicit = match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "admin.token and admin.token_file are both set; use one".into(),
                ))
            }
            (Some(token), None) => Some(token.expose().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError::Invalid(format!(
                            "admin.token_file {}: cannot read: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let Some(token) = explicit {
            check_token(&token)?;
            return Ok(TokenSource::Explicit(Secret::new(token)));
        }
        if !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "the admin listener {} is not on loopback: set a token explicitly \
                 (--admin-token, SWITCHYARD_ADMIN_TOKEN, admin.token or admin.token_file)",
                self.listen
            )));
        }
        Ok(TokenSource::Generated(token_path(database)))
    }

    /// The read-only token, checked like the admin token.
    pub fn read_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(token) = &self.read_token else {
            return Ok(None);
        };
        check_token(token.expose()).map_err(|_| {
            ConfigError::Invalid(format!(
                "admin.read_token must be at least {MIN_TOKEN_LEN} printable ASCII characters \
                 without spaces"
            ))
        })?;
        if self.token.as_ref() == Some(token) {
            return Err(ConfigError::Invalid(
                "admin.read_token is the same as the admin token; a read-only token must differ"
                    .into(),
            ));
        }
        Ok(Some(token.clone()))
    }

    /// `allowed_origins` as browsers send them (`scheme://host[:port]`,
    /// lowercase, no trailing `/`).
    pub fn allowed_origins(&self) -> Result<Vec<String>, ConfigError> {
        self.allowed_origins.iter().map(|o| origin(o)).collect()
    }

    /// `allowed_hosts` as the `Host` check compares them: lowercase, no
    /// trailing dot, no port, IDNA names in their `xn--` form.
    pub fn allowed_hosts(&self) -> Result<Vec<String>, ConfigError> {
        self.allowed_hosts.iter().map(|h| host_name(h)).collect()
    }
}

fn host_name(text: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!(
            "admin.allowed_hosts: {text:?} {why}; write a host name like \"admin.example.com\" \
             (IP addresses and localhost are always allowed)"
        ))
    };
    if text.contains("://") {
        return Err(bad(
            "is a URL, not a host name (origins go in admin.allowed_origins)",
        ));
    }
    if text.contains('*') {
        return Err(bad("is a wildcard; list each name"));
    }
    crate::routing::key::normalize_host(text.as_bytes())
        .map(|key| key.as_str().to_owned())
        .map_err(|_| bad("is not a valid host name"))
}

fn origin(text: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::Invalid(format!(
            "admin.allowed_origins: {text:?} {why}; write an origin like \"https://admin.example.com\""
        ))
    };
    let trimmed = text.strip_suffix('/').unwrap_or(text);
    let uri: http::Uri = trimmed.parse().map_err(|_| bad("is not an origin"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("needs http:// or https://")),
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("must be only scheme, host and port"));
    }
    // Browsers leave a scheme's default port out of `Origin`.
    let scheme = uri.scheme_str().unwrap_or_default();
    let default_port = if scheme == "https" { 443 } else { 80 };
    let host = authority.host().to_ascii_lowercase();
    Ok(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn check_token(token: &str) -> Result<(), ConfigError> {
    if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid(format!(
            "the admin token must be at least {MIN_TOKEN_LEN} printable ASCII characters \
             without spaces"
        )));
    }
    Ok(())
}

/// `<database file>.token` for SQLite; `switchyard.token` in the working
/// directory for PostgreSQL.
fn token_path(database: &str) -> PathBuf {
    match database.strip_prefix("sqlite://") {
        Some(path) => {
            let path = path.split('?').next().unwrap_or(path);
            PathBuf::from(format!("{path}.token"))
        }
        None => PathBuf::from("switchyard.token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_token_lives_next_to_the_sqlite_file() {
        let admin = AdminSettings::default();
        assert_eq!(
            admin
                .token_source("sqlite:///var/lib/sy/state.db?mode=rwc")
                .unwrap(),
            TokenSource::Generated("/var/lib/sy/state.db.token".into())
        );
        assert_eq!(
            admin.token_source("postgres://db/sy").unwrap(),
            TokenSource::Generated("switchyard.token".into())
        );
    }

    #[test]
    fn allowed_origins_are_normalized_and_anything_else_is_refused() {
        let admin = AdminSettings {
            allowed_origins: vec![
                "https://Admin.Example.com".into(),
                "http://10.0.0.1:8443/".into(),
                "https://ui.example:443".into(),
                "http://ui.example:80".into(),
            ],
            ..AdminSettings::default()
        };
        assert_eq!(
            admin.allowed_origins().unwrap(),
            [
                "https://admin.example.com",
                "http://10.0.0.1:8443",
                "https://ui.example",
                "http://ui.example"
            ]
        );
        for bad in [
            "admin.example.com",
            "ftp://x",
            "https://x/ui",
            "https://u@x",
            "*",
        ] {
            let admin = AdminSettings {
                allowed_origins: vec![bad.into()],
                ..AdminSettings::default()
            };
            let err = admin.allowed_origins().unwrap_err().to_string();
            assert!(err.contains("admin.allowed_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn allowed_hosts_are_normalized_and_anything_else_is_refused() {
        let admin = AdminSettings {
            allowed_hosts: vec![
                "Admin.Example.COM".into(),
                "admin.example.net.".into(),
                "ui.example:8443".into(),
                "Bücher.example".into(),
            ],
            ..AdminSettings::default()
        };
        assert_eq!(
            admin.allowed_hosts().unwrap(),
            [
                "admin.example.com",
                "admin.example.net",
                "ui.example",
                "xn--bcher-kva.example"
            ]
        );
        for (bad, why) in [
            ("https://admin.example.com", "admin.allowed_origins"),
            ("*.example.com", "wildcard"),
            ("", "not a valid host name"),
            ("admin.example.com/ui", "not a valid host name"),
            ("a b.example", "not a valid host name"),
            ("u@admin.example.com", "not a valid host name"),
            ("admin..example.com", "not a valid host name"),
        ] {
            let admin = AdminSettings {
                allowed_hosts: vec![bad.into()],
                ..AdminSettings::default()
            };
            let err = admin.allowed_hosts().unwrap_err().to_string();
            assert!(
                err.contains("admin.allowed_hosts") && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_read_token_must_be_strong_and_differ_from_the_admin_token() {
        let mut admin = AdminSettings {
            token: Some(Secret::new("the-admin-token-1234")),
            read_token: Some(Secret::new("short")),
            ..AdminSettings::default()
        };
        assert!(admin
            .read_token()
            .unwrap_err()
            .to_string()
            .contains("at least 16"));
        admin.read_token = Some(Secret::new("the-admin-token-1234"));
        assert!(admin
            .read_token()
            .unwrap_err()
            .to_string()
            .contains("must differ"));
        admin.read_token = Some(Secret::new("the-reading-token-99"));
        assert!(admin.read_token().unwrap().is_some());
    }

    #[test]
    fn a_public_admin_listener_needs_an_explicit_strong_token() {
        let mut admin = AdminSettings {
            listen: "0.0.0.0:8081".parse().unwrap(),
            ..AdminSettings::default()
        };
        let err = admin.token_source("sqlite://x.db").unwrap_err().to_string();
        assert!(err.contains("not on loopback"), "{err}");
        admin.token = Some(Secret::new("short"));
        let err = admin.token_source("sqlite://x.db").unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
        admin.token = Some(Secret::new("a-long-enough-token"));
        assert_eq!(
            admin.token_source("sqlite://x.db").unwrap(),
            TokenSource::Explicit(Secret::new("a-long-enough-token"))
        );
    }
}
