//! Configuration: defaults, then the Lua file, then flags (parse → validate).
//!
//! [`Settings`] is plain serde data with a default for every key; the Lua file
//! ([`lua`]) and the flags ([`flags`]) only override. [`Settings::validate`]
//! turns it into runtime values; nothing here runs on the request path, and
//! nothing re-reads the file except an explicit reload.

mod acme;
mod admin;
mod check;
pub mod flags;
mod health;
mod limits;
pub mod lua;
mod net;
mod secret;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::routing::{Backend, BackendAddr, BackendState, ReloadScope};

pub use acme::{Acme, AcmeSettings};
pub use admin::{AdminSettings, TokenSource, MIN_TOKEN_LEN};
pub use check::Checked;
pub use flags::Flags;
pub use health::{ActiveCheck, HealthConfig, HealthSettings, PassiveCheck};
pub use limits::{AccessLogSettings, Failover, Limits, Timeouts};
pub use net::ProxyProtocolSettings;
pub use net::{any_contains, parse_net, IpNet};
pub use secret::{redact_url, DatabaseUrl, Secret, REDACTED};
pub use tls::{HstsSettings, TlsListen, TlsRuntime, TlsSettings};

/// The running proxy settings, replaced whole by a config reload.
pub type SharedSettings = std::sync::Arc<arc_swap::ArcSwap<ProxySettings>>;

/// Why the configuration was refused. The binary exits with code 2 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Lua(String),
    #[error("{location}key `{key}`: {message}")]
    Key {
        location: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Every setting, with its default. Field names are the Lua keys.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Proxy listen address.
    pub listen: SocketAddr,
    /// Membership database: `sqlite://PATH` (created if missing) or
    /// `postgres://...`; unset: [`DEFAULT_DATABASE`] (with `--demo`,
    /// [`DEMO_DATABASE`]). See [`Settings::database`].
    #[serde(rename = "database")]
    pub database_url: Option<DatabaseUrl>,
    /// Admin API listener and token.
    pub admin: AdminSettings,
    /// Proxy worker threads (default: number of cores).
    pub workers: Option<usize>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Initial backends: `"host:port"` or `{ address = "host:port", weight = 2 }`.
    pub backends: Vec<BackendEntry>,
    /// Where the reload-URL rule applies.
    pub reload: ReloadSettings,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-*` headers are kept and appended to.
    pub trusted_proxies: Vec<String>,
    /// Forward request headers whose names contain `_` (off: they are dropped,
    /// since WSGI/CGI backends confuse `X_Forwarded_For` with `X-Forwarded-For`).
    pub forward_underscore_headers: bool,
    /// Protocols a client may `Upgrade` to through the proxy (one per
    /// request; `h2c` is never allowed).
    pub upgrade_protocols: Vec<String>,
    /// Timeouts in seconds.
    pub timeouts: Timeouts,
    /// Size and count limits.
    pub limits: Limits,
    /// Backend failover.
    pub failover: Failover,
    /// Active and passive health checks.
    pub health: HealthSettings,
    /// One line per request on the `switchyard::access` log target.
    pub access_log: AccessLogSettings,
    /// Also serve `/metrics`, without a token, on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// PROXY protocol on the proxy listener.
    pub proxy_protocol: ProxyProtocolSettings,
    /// The HTTPS listener, default certificate, redirects and HSTS.
    pub tls: TlsSettings,
    /// Automatic certificates (off unless `acme.directory` is set).
    pub acme: AcmeSettings,
    /// Start the demo backends (`--demo` only; not a Lua key).
    #[serde(skip)]
    pub demo: bool,
    /// Replace the stored pool with `backends` at start (`--replace-backends`
    /// only; not a Lua key).
    #[serde(skip)]
    pub replace_backends: bool,
    /// Seals certificates' private keys in the database
    /// (`SWITCHYARD_STORAGE_KEY` only; not a Lua key, never printed).
    #[serde(skip)]
    pub storage_key: Option<Secret>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            admin: AdminSettings::default(),
            workers: None,
            log_format: LogFormat::Text,
            backends: Vec::new(),
            reload: ReloadSettings::default(),
            trusted_proxies: Vec::new(),
            forward_underscore_headers: false,
            upgrade_protocols: vec!["websocket".to_owned()],
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            failover: Failover::default(),
            health: HealthSettings::default(),
            access_log: AccessLogSettings::default(),
            metrics_listen: None,
            proxy_protocol: ProxyProtocolSettings::default(),
            tls: TlsSettings::default(),
            acme: AcmeSettings::default(),
            demo: false,
            replace_backends: false,
            storage_key: None,
        }
    }
}

/// The membership database when none is given.
pub const DEFAULT_DATABASE: &str = "sqlite://switchyard.db";
/// The database of `--demo` when none is given: the demo backends never
/// end up in the store a later real run uses.
pub const DEMO_DATABASE: &str = "sqlite://switchyard-demo.db";

impl Settings {
    /// The membership database in force: the configured one, else the
    /// default (the demo's own file with `--demo`).
    pub fn database(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| {
            DatabaseUrl::new(if self.demo {
                DEMO_DATABASE
            } else {
                DEFAULT_DATABASE
            })
        })
    }
}

/// One entry of `backends`: `"host:port"` or `{ address = "host:port", weight = N }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BackendEntry {
    /// `"host:port"` with weight 1.
    Address(String),
    /// `{ address = "host:port", weight = N }`.
    Weighted { address: String, weight: u32 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedEntry {
    address: String,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

// By hand rather than `#[serde(untagged)]`: untagged enums ignore unknown
// fields and replace every message with "did not match any variant".
impl<'de> Deserialize<'de> for BackendEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BackendEntry;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"host:port\" or { address = \"host:port\", weight = N }")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BackendEntry, E> {
                Ok(BackendEntry::Address(v.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<BackendEntry, A::Error> {
                let entry =
                    WeightedEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(BackendEntry::Weighted {
                    address: entry.address,
                    weight: entry.weight,
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `reload = { control_hosts = { ... } }`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadSettings {
    /// If non-empty, the reload-URL rule applies only to requests for these hosts.
    pub control_hosts: Vec<String>,
}

/// Validated runtime values derived from [`Settings`].
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    pub backend_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub drain_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub tunnel_idle_timeout: Duration,
    pub send_idle_timeout: Duration,
    pub response_body_idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_body_bytes: Option<u64>,
    pub max_connections: usize,
    pub min_body_rate: u64,
    /// `SO_RCVBUF` of backend connections (`None`: the kernel's).
    pub backend_recv_buffer: Option<u32>,
    /// `SO_SNDBUF` of client connections (`None`: the kernel's).
    pub client_send_buffer: Option<u32>,
    /// `TCP_NOTSENT_LOWAT` of client connections (`None`: no limit).
    pub client_unsent_buffer: Option<u32>,
    pub h2_max_streams: u32,
    pub tries: usize,
    pub reload_scope: ReloadScope,
    pub trusted_proxies: Vec<IpNet>,
    /// The balancers that must send a PROXY protocol header; `None`: off.
    pub proxy_protocol: Option<Vec<IpNet>>,
    pub forward_underscore_headers: bool,
    /// Lowercase protocol names a request may upgrade to.
    pub upgrade_protocols: Vec<String>,
    pub health: HealthConfig,
    /// Access-log sample rate; `None` when the access log is off.
    pub access_log_sample: Option<f64>,
    /// The log format the process started with (restart-only; a reload
    /// keeps it).
    pub log_format: LogFormat,
    /// Default certificate, redirects to HTTPS, HSTS.
    pub tls: TlsRuntime,
}

/// `upgrade_protocols`: HTTP tokens, lowercased; `h2c` is refused.
fn upgrade_protocols(names: &[String]) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .map(|name| {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b));
            let lower = name.to_ascii_lowercase();
            if !token {
                return Err(ConfigError::Invalid(format!(
                    "upgrade_protocols: {name:?} is not a protocol name"
                )));
            }
            if lower == "h2c" || lower.starts_with("h2c/") {
                return Err(ConfigError::Invalid(
                    "upgrade_protocols: h2c cannot be allowed: a client could speak HTTP/2 to a backend past the proxy's checks".into(),
                ));
            }
            Ok(lower)
        })
        .collect()
}

/// A positive, finite number of seconds (below a million) as a `Duration`.
fn seconds(key: &str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value < 1e6 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::Invalid(format!(
            "{key} must be a positive number of seconds, got {value}"
        )))
    }
}

impl Settings {
    /// Check every value and derive the runtime settings and initial backends.
    pub fn validate(&self) -> Result<(ProxySettings, Vec<Backend>), ConfigError> {
        let t = &self.timeouts;
        let secs = |name: &str, v: f64| seconds(&format!("timeouts.{name}"), v);
        let l = &self.limits;
        if !(8 * 1024..=16 * 1024 * 1024).contains(&l.max_header_bytes) {
            return Err(ConfigError::Invalid(
                "limits.max_header_bytes must be from 8192 to 16777216".into(),
            ));
        }
        if l.max_connections == 0 || l.h2_max_streams == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections and limits.h2_max_streams must be at least 1".into(),
            ));
        }
        // tokio's semaphore holds at most this many permits.
        if l.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::Invalid(format!(
                "limits.max_connections must be at most {}",
                tokio::sync::Semaphore::MAX_PERMITS
            )));
        }
        // setsockopt takes an int.
        for (name, size) in [
            ("backend_recv_buffer", l.backend_recv_buffer),
            ("client_send_buffer", l.client_send_buffer),
            ("client_unsent_buffer", l.client_unsent_buffer),
        ] {
            if i32::try_from(size).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "limits.{name} must be at most 2147483647 (bytes; 0: the system's default)"
                )));
            }
        }
        if !(1..=16).contains(&self.failover.tries) {
            return Err(ConfigError::Invalid(
                "failover.tries must be from 1 to 16".into(),
            ));
        }
        if !(self.access_log.sample > 0.0 && self.access_log.sample <= 1.0) {
            return Err(ConfigError::Invalid(
                "access_log.sample must be more than 0 and at most 1".into(),
            ));
        }
        if self.workers == Some(0) {
            return Err(ConfigError::Invalid("workers must be at least 1".into()));
        }
        let control_hosts = self
            .reload
            .control_hosts
            .iter()
            .map(|h| {
                crate::routing::key::normalize_host(h.as_bytes()).map_err(|_| {
                    ConfigError::Invalid(format!("reload.control_hosts: {h:?} is not a valid host"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let nets = |key: &str, list: &[String]| {
            list.iter()
                .map(|p| parse_net(p).map_err(|e| ConfigError::Invalid(format!("{key}: {e}"))))
                .collect::<Result<Vec<_>, _>>()
        };
        let trusted_proxies = nets("trusted_proxies", &self.trusted_proxies)?;
        let pp = &self.proxy_protocol;
        let proxy_protocol = if pp.enabled {
            if pp.trusted.is_empty() {
                return Err(ConfigError::Invalid(
                    "proxy_protocol.trusted must list the balancers that send the header".into(),
                ));
            }
            Some(nets("proxy_protocol.trusted", &pp.trusted)?)
        } else {
            None
        };
        let proxy = ProxySettings {
            header_read_timeout: secs("header_read", t.header_read)?,
            idle_timeout: secs("idle", t.idle)?,
            connect_timeout: secs("connect", t.connect)?,
            response_header_timeout: secs("response_header", t.response_header)?,
            backend_idle_timeout: secs("backend_idle", t.backend_idle)?,
            shutdown_grace: secs("shutdown_grace", t.shutdown_grace)?,
            drain_timeout: secs("drain", t.drain)?,
            body_idle_timeout: secs("body_idle", t.body_idle)?,
            tunnel_idle_timeout: secs("tunnel_idle", t.tunnel_idle)?,
            send_idle_timeout: secs("send_idle", t.send_idle)?,
            response_body_idle_timeout: secs("response_body_idle", t.response_body_idle)?,
            max_header_bytes: l.max_header_bytes,
            max_body_bytes: l.max_body_bytes,
            max_connections: l.max_connections,
            min_body_rate: l.min_body_rate,
            backend_recv_buffer: (l.backend_recv_buffer > 0).then_some(l.backend_recv_buffer),
            client_send_buffer: (l.client_send_buffer > 0).then_some(l.client_send_buffer),
            client_unsent_buffer: (l.client_unsent_buffer > 0).then_some(l.client_unsent_buffer),
            h2_max_streams: l.h2_max_streams,
            tries: self.failover.tries,
            reload_scope: if control_hosts.is_empty() {
                ReloadScope::AnyHost
            } else {
                ReloadScope::ControlHosts(control_hosts)
            },
            trusted_proxies,
            proxy_protocol,
            forward_underscore_headers: self.forward_underscore_headers,
            upgrade_protocols: upgrade_protocols(&self.upgrade_protocols)?,
            health: self.health.validate()?,
            access_log_sample: self.access_log.enabled.then_some(self.access_log.sample),
            log_format: self.log_format,
            tls: self.tls.runtime()?,
        };
        Ok((proxy, self.initial_backends()?))
    }

    /// The `backends` list as pool members, deduplicated by canonical address.
    fn initial_backends(&self) -> Result<Vec<Backend>, ConfigError> {
        let mut out: Vec<Backend> = Vec::new();
        for entry in &self.backends {
            let (address, weight) = match entry {
                BackendEntry::Address(a) => (a, 1),
                BackendEntry::Weighted { address, weight } => (address, *weight),
            };
            let address: BackendAddr = address
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("backends: {e}")))?;
            if !(1..=crate::routing::pool::MAX_WEIGHT).contains(&weight) {
                return Err(ConfigError::Invalid(format!(
                    "backends: {address} has weight {weight}; weights must be 1 to {}",
                    crate::routing::pool::MAX_WEIGHT
                )));
            }
            if out.iter().any(|b| b.address == address) {
                continue;
            }
            out.push(Backend {
                id: format!("b{}", out.len() + 1),
                address,
                weight,
                state: BackendState::Active,
            });
        }
        Ok(out)
    }
}
