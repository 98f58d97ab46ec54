//! `admin = { ... }`: where the admin API listens and where its token comes from.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// Shortest accepted admin token.
pub const MIN_TOKEN_LEN: usize = 16;

/// `admin = { listen = "127.0.0.1:8081", token = "...", token_file = "..." }`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Admin API and UI listen address.
    pub listen: SocketAddr,
    /// The bearer token (Lua may read it from the environment).
    pub token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace ignored).
    pub token_file: Option<PathBuf>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: None,
            token_file: None,
        }
    }
}

/// Where the admin token comes from, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// Given by the operator (flag, environment, `admin.token` or `admin.token_file`).
    Explicit(String),
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
            (Some(token), None) => Some(token.clone()),
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
            return Ok(TokenSource::Explicit(token));
        }
        if !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "the admin listener {} is not on loopback: set a token explicitly \
                 (--admin-token, SWITCHYARD_ADMIN_TOKEN or admin.token)",
                self.listen
            )));
        }
        Ok(TokenSource::Generated(token_path(database)))
    }
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
    fn a_public_admin_listener_needs_an_explicit_strong_token() {
        let mut admin = AdminSettings {
            listen: "0.0.0.0:8081".parse().unwrap(),
            ..AdminSettings::default()
        };
        let err = admin.token_source("sqlite://x.db").unwrap_err().to_string();
        assert!(err.contains("not on loopback"), "{err}");
        admin.token = Some("short".into());
        let err = admin.token_source("sqlite://x.db").unwrap_err().to_string();
        assert!(err.contains("at least 16"), "{err}");
        admin.token = Some("a-long-enough-token".into());
        assert_eq!(
            admin.token_source("sqlite://x.db").unwrap(),
            TokenSource::Explicit("a-long-enough-token".into())
        );
    }
}
