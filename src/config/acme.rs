//! `acme = { ... }`: certificates obtained and renewed automatically for
//! managed domains (off unless `directory` is set).
//!
//! ```lua
//! acme = {
//!   directory = "https://acme-v02.api.letsencrypt.org/directory",
//!   email = "ops@example.com",            -- the account's contact (optional)
//!   ca_file = "/etc/ssl/pebble-root.pem", -- trust this CA for the directory (a test CA)
//!   ask = "http://127.0.0.1:9000/allowed", -- on-demand: may this name get a certificate?
//!   renew_before = 2592000,               -- seconds before expiry (default: a third of the lifetime)
//! }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The `acme` table.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeSettings {
    /// The ACME directory URL (`https://`); unset: ACME is off.
    pub directory: Option<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// A PEM file of the CA that signs the directory's HTTPS certificate
    /// (for a private or test CA; default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// On-demand certificates: `GET <ask>?domain=<name>` answering `200`
    /// allows a handshake for a name without a certificate to obtain one.
    pub ask: Option<String>,
    /// Renew this many seconds before expiry (default: a third of the
    /// certificate's lifetime).
    pub renew_before: Option<f64>,
}

/// `acme` after its checks.
#[derive(Clone, Debug, PartialEq)]
pub struct Acme {
    pub directory: String,
    /// `mailto:` contact.
    pub contact: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ask: Option<http::Uri>,
    pub renew_before: Option<Duration>,
}

impl AcmeSettings {
    /// `None` when ACME is off.
    pub fn checked(&self) -> Result<Option<Acme>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid(format!("acme.{message}"));
        let Some(directory) = &self.directory else {
            let set = [
                ("email", self.email.is_some()),
                ("ca_file", self.ca_file.is_some()),
                ("ask", self.ask.is_some()),
                ("renew_before", self.renew_before.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(invalid(format!(
                    "{key} is set but acme.directory is not: ACME is off without a directory"
                )));
            }
            return Ok(None);
        };
        let uri: http::Uri = directory
            .parse()
            .map_err(|_| invalid(format!("directory: {directory:?} is not a URL")))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(invalid(format!(
                "directory: {directory:?} must be an https:// URL (the CA's directory)"
            )));
        }
        let contact = match &self.email {
            None => None,
            Some(email) => {
                let plausible = email.split_once('@').is_some_and(|(user, domain)| {
                    !user.is_empty() && domain.contains('.') && !domain.ends_with('.')
                }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
                if !plausible {
                    return Err(invalid(format!("email: {email:?} is not an email address")));
                }
                Some(format!("mailto:{email}"))
            }
        };
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("ca_file: cannot read {}: {e}", path.display())))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(invalid(format!(
                    "ca_file: {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        let ask = match &self.ask {
            None => None,
            Some(text) => {
                let uri: http::Uri = text
                    .parse()
                    .map_err(|_| invalid(format!("ask: {text:?} is not a URL")))?;
                let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
                if uri.scheme_str() != Some("http") || uri.host().is_none() || userinfo {
                    return Err(invalid(format!(
                        "ask: {text:?} must be an http:// URL without credentials (a service next to switchyard)"
                    )));
                }
                Some(uri)
            }
        };
        let renew_before = match self.renew_before {
            None => None,
            Some(secs) if (1.0..=1e9).contains(&secs) => Some(Duration::from_secs_f64(secs)),
            Some(secs) => {
                return Err(invalid(format!(
                    "renew_before: {secs} must be a number of seconds from 1"
                )))
            }
        };
        Ok(Some(Acme {
            directory: directory.clone(),
            contact,
            ca_file: self.ca_file.clone(),
            ask,
            renew_before,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(directory: &str) -> AcmeSettings {
        AcmeSettings {
            directory: Some(directory.to_owned()),
            ..AcmeSettings::default()
        }
    }

    #[test]
    fn off_without_a_directory_and_refused_when_half_configured() {
        assert_eq!(AcmeSettings::default().checked().unwrap(), None);
        let half = AcmeSettings {
            email: Some("ops@example.com".into()),
            ..AcmeSettings::default()
        };
        let err = half.checked().unwrap_err().to_string();
        assert!(
            err.contains("acme.email is set but acme.directory is not"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            (with("http://ca.example/dir"), "acme.directory"),
            (with("not a url"), "acme.directory"),
            (
                AcmeSettings {
                    email: Some("nobody".into()),
                    ..with("https://ca.example/dir")
                },
                "acme.email",
            ),
            (
                AcmeSettings {
                    ask: Some("https://ask.example/".into()),
                    ..with("https://ca.example/dir")
                },
                "acme.ask",
            ),
            (
                AcmeSettings {
                    renew_before: Some(0.0),
                    ..with("https://ca.example/dir")
                },
                "acme.renew_before",
            ),
            (
                AcmeSettings {
                    ca_file: Some("/nonexistent/root.pem".into()),
                    ..with("https://ca.example/dir")
                },
                "acme.ca_file",
            ),
        ];
        for (settings, key) in cases {
            let err = settings.checked().unwrap_err().to_string();
            assert!(err.starts_with(key), "{key}: {err}");
        }
    }

    #[test]
    fn a_full_table_is_checked_into_its_runtime_form() {
        let acme = AcmeSettings {
            email: Some("ops@example.com".into()),
            ask: Some("http://127.0.0.1:9000/allowed".into()),
            renew_before: Some(3600.0),
            ..with("https://ca.example/dir")
        }
        .checked()
        .unwrap()
        .unwrap();
        assert_eq!(acme.contact.as_deref(), Some("mailto:ops@example.com"));
        assert_eq!(acme.renew_before, Some(Duration::from_secs(3600)));
        assert_eq!(acme.ask.unwrap().path(), "/allowed");
    }
}
