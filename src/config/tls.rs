//! `tls = { ... }`: the HTTPS listener and what plain HTTP does about it.
//!
//! ```lua
//! tls = {
//!   listen = "0.0.0.0:443",            -- default 127.0.0.1:8443; false: no HTTPS listener
//!   default_certificate = "example.com", -- for clients without SNI or with an unknown name
//!   redirect_http = true,              -- plain requests for a host with a certificate: 308 to https
//!   redirect_port = 443,               -- the port in those redirects (default: the listener's)
//!   hsts = { max_age = 31536000, include_subdomains = false },
//! }
//! ```

use std::net::SocketAddr;

use http::HeaderValue;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::routing::{normalize_host, RoutingKey};

/// The `tls` table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The HTTPS listener, or off.
    pub listen: TlsListen,
    /// The domain whose certificate clients without SNI (or with a name no
    /// certificate covers) get; unset: those handshakes fail with
    /// `unrecognized_name`.
    pub default_certificate: Option<String>,
    /// Answer plain-HTTP requests for hosts that have a certificate with
    /// `308` to `https://` (ACME challenges excepted).
    pub redirect_http: bool,
    /// The port written in those redirects (default: the HTTPS listener's).
    pub redirect_port: Option<u16>,
    /// `Strict-Transport-Security` on HTTPS responses (off unless `max_age` is set).
    pub hsts: HstsSettings,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            listen: TlsListen::On(SocketAddr::from(([127, 0, 0, 1], 8443))),
            default_certificate: None,
            redirect_http: false,
            redirect_port: None,
            hsts: HstsSettings::default(),
        }
    }
}

/// `hsts = { max_age = 31536000, include_subdomains = false, preload = false }`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HstsSettings {
    /// Seconds; unset or 0: no header.
    pub max_age: Option<u64>,
    pub include_subdomains: bool,
    pub preload: bool,
}

/// `listen = "ADDR"` or `listen = false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsListen {
    On(SocketAddr),
    Off,
}

impl TlsListen {
    /// The address, unless the listener is off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            TlsListen::On(addr) => Some(addr),
            TlsListen::Off => None,
        }
    }

    /// `--tls-listen ADDR|off`.
    pub fn parse_flag(text: &str) -> Result<TlsListen, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(TlsListen::Off);
        }
        text.parse()
            .map(TlsListen::On)
            .map_err(|_| format!("{text:?} is not an address (host:port) or `off`"))
    }
}

impl Serialize for TlsListen {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TlsListen::On(addr) => serializer.collect_str(addr),
            TlsListen::Off => serializer.serialize_bool(false),
        }
    }
}

impl<'de> Deserialize<'de> for TlsListen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TlsListen;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address \"host:port\", or false for no HTTPS listener")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsListen, E> {
                v.parse()
                    .map(TlsListen::On)
                    .map_err(|_| E::custom(format!("{v:?} is not an address (host:port)")))
            }

            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<TlsListen, E> {
                if v {
                    return Err(E::custom(
                        "true is not an address; give \"host:port\" (or false for none)",
                    ));
                }
                Ok(TlsListen::Off)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The runtime form of the reloadable part of [`TlsSettings`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsRuntime {
    pub default_certificate: Option<RoutingKey>,
    pub redirect_http: bool,
    pub redirect_port: Option<u16>,
    /// The whole `Strict-Transport-Security` value, if any.
    pub hsts: Option<HeaderValue>,
}

impl TlsSettings {
    /// Check and convert the reloadable settings.
    pub fn runtime(&self) -> Result<TlsRuntime, ConfigError> {
        let default_certificate = match &self.default_certificate {
            None => None,
            Some(name) => Some(normalize_host(name.as_bytes()).map_err(|e| {
                ConfigError::Invalid(format!(
                    "tls.default_certificate {name:?} is not a domain: {e}"
                ))
            })?),
        };
        if self.redirect_port == Some(0) {
            return Err(ConfigError::Invalid(
                "tls.redirect_port must be a port number (1-65535)".into(),
            ));
        }
        let hsts = match self.hsts.max_age {
            None | Some(0) if self.hsts.include_subdomains || self.hsts.preload => {
                return Err(ConfigError::Invalid(
                    "tls.hsts: include_subdomains and preload need max_age".into(),
                ))
            }
            None | Some(0) => None,
            Some(age) => {
                let mut value = format!("max-age={age}");
                if self.hsts.include_subdomains {
                    value.push_str("; includeSubDomains");
                }
                if self.hsts.preload {
                    value.push_str("; preload");
                }
                Some(HeaderValue::from_str(&value).expect("digits and ASCII"))
            }
        };
        Ok(TlsRuntime {
            default_certificate,
            redirect_http: self.redirect_http,
            redirect_port: self.redirect_port,
            hsts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_and_default_certificate_are_checked_and_built() {
        let mut tls = TlsSettings::default();
        assert_eq!(tls.runtime().unwrap(), TlsRuntime::default());
        tls.default_certificate = Some("WWW.Example.COM.".into());
        tls.hsts = HstsSettings {
            max_age: Some(600),
            include_subdomains: true,
            preload: false,
        };
        let runtime = tls.runtime().unwrap();
        assert_eq!(
            runtime.default_certificate.unwrap().as_str(),
            "www.example.com"
        );
        assert_eq!(runtime.hsts.unwrap(), "max-age=600; includeSubDomains");
        tls.hsts.max_age = None;
        assert!(tls.runtime().is_err());
        tls.hsts.include_subdomains = false;
        tls.default_certificate = Some("bad name/".into());
        assert!(tls.runtime().is_err());
    }

    #[test]
    fn the_listener_is_an_address_or_off() {
        assert_eq!(TlsListen::parse_flag("off").unwrap(), TlsListen::Off);
        assert_eq!(
            TlsListen::parse_flag("127.0.0.1:0").unwrap().addr(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert!(TlsListen::parse_flag("nope").is_err());
    }
}
