//! Command-line flags (clap derive). Flags beat the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use super::{lua, BackendEntry, ConfigError, DatabaseUrl, LogFormat, Secret, Settings};

/// switchyard: consistent-hash HTTP routing for multi-tenant web app platforms.
#[derive(Clone, Debug, Default, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Flags {
    /// Lua config file (returns a table of settings).
    #[arg(long, value_name = "FILE.lua")]
    pub config: Option<PathBuf>,
    /// Proxy listen address [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// HTTPS listen address, or `off` [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR|off", value_parser = super::TlsListen::parse_flag)]
    pub tls_listen: Option<super::TlsListen>,
    /// Membership database: sqlite://PATH or postgres://... [default: sqlite://switchyard.db;
    /// with --demo, sqlite://switchyard-demo.db]. From the environment, it keeps a
    /// PostgreSQL password out of the process list.
    #[arg(
        long,
        env = "SWITCHYARD_DATABASE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Admin API and UI listen address [default: 127.0.0.1:8081].
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Admin API bearer token [default: generated, saved next to the database].
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Read-only admin token: every GET and /metrics, no changes.
    #[arg(
        long,
        env = "SWITCHYARD_READ_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub read_token: Option<String>,
    /// Storage key (64 hex digits, e.g. from `openssl rand -hex 32`): certificates'
    /// private keys are sealed with it in the database. Environment only.
    #[arg(
        long,
        env = "SWITCHYARD_STORAGE_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub storage_key: Option<String>,
    /// Also serve /metrics, without a token, on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Add a backend `host:port` (repeatable), on top of the config's `backends`.
    #[arg(long = "backend", value_name = "ADDR")]
    pub backends: Vec<String>,
    /// Replace the stored pool with the configured backends at start
    /// (otherwise they only seed an empty store).
    #[arg(long)]
    pub replace_backends: bool,
    /// Start three demo backends on loopback and use them if the pool is
    /// empty; keeps its own database (switchyard-demo.db) unless --database is given.
    #[arg(long)]
    pub demo: bool,
    /// Load and validate the config and flags, print the effective
    /// settings (secrets redacted) and exit: 0 if valid, 2 if not.
    #[arg(long)]
    pub check: bool,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Proxy worker threads [default: number of cores].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

impl Flags {
    /// Defaults, then the config file (if any), then these flags.
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut settings = match &self.config {
            Some(path) => lua::load_file(path)?,
            None => Settings::default(),
        };
        if let Some(listen) = self.listen {
            settings.listen = listen;
        }
        if let Some(listen) = self.tls_listen {
            settings.tls.listen = listen;
        }
        if let Some(database) = &self.database {
            settings.database_url = Some(DatabaseUrl::new(database));
        }
        settings.demo = self.demo;
        settings.replace_backends = self.replace_backends;
        if let Some(listen) = self.admin_listen {
            settings.admin.listen = listen;
        }
        if let Some(token) = &self.admin_token {
            settings.admin.token = Some(Secret::new(token));
            settings.admin.token_file = None;
        }
        if let Some(token) = &self.read_token {
            settings.admin.read_token = Some(Secret::new(token));
        }
        if let Some(key) = &self.storage_key {
            settings.storage_key = Some(Secret::new(key));
        }
        if let Some(listen) = self.metrics_listen {
            settings.metrics_listen = Some(listen);
        }
        if let Some(format) = self.log_format {
            settings.log_format = format;
        }
        if let Some(workers) = self.workers {
            settings.workers = Some(workers);
        }
        settings
            .backends
            .extend(self.backends.iter().cloned().map(BackendEntry::Address));
        Ok(settings)
    }
}
