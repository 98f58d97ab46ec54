//! `SIGHUP`: re-read the config and apply what can change while serving
//! (timeouts, limits, failover, reload rule, forwarding rules, health
//! checks, access log, PROXY protocol) without dropping a connection. An
//! invalid file changes nothing. Listeners, database, workers, log format
//! the admin tokens, origins and host names, the storage key and the `acme`
//! table need a restart; a changed value there
//! is logged, not applied.

use std::sync::{Arc, Mutex};

use crate::config::{ConfigError, Settings};
use crate::proxy::Proxy;

/// Applies reloaded settings to a running switchyard.
#[derive(Clone)]
pub struct Reloader {
    proxy: Arc<Proxy>,
    /// The settings the process runs with (for the restart-only fields).
    running: Arc<Mutex<Settings>>,
}

impl Reloader {
    pub(crate) fn new(proxy: Arc<Proxy>, settings: Settings) -> Self {
        Reloader {
            proxy,
            running: Arc::new(Mutex::new(settings)),
        }
    }

    /// Check freshly read `settings` (as wholly as a start would) and
    /// apply them; if reading or checking failed, nothing changes. Either
    /// way it is counted.
    pub fn apply(&self, settings: Result<Settings, ConfigError>) -> Result<(), ConfigError> {
        let checked = settings.and_then(|s| s.check().map(|c| (s, c)));
        self.proxy.telemetry.reloaded(checked.is_ok());
        let (settings, checked) = checked?;
        let mut next = checked.proxy;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (name, changed) in [
            ("listen", running.listen != settings.listen),
            (
                "admin.listen",
                running.admin.listen != settings.admin.listen,
            ),
            ("admin.token", running.admin.token != settings.admin.token),
            (
                "admin.token_file",
                running.admin.token_file != settings.admin.token_file,
            ),
            // Configured backends only seed the store at start; the admin
            // API changes the pool while running.
            ("backends", running.backends != settings.backends),
            (
                "admin.read_token",
                running.admin.read_token != settings.admin.read_token,
            ),
            (
                "admin.allowed_origins",
                running.admin.allowed_origins != settings.admin.allowed_origins,
            ),
            (
                "admin.allowed_hosts",
                running.admin.allowed_hosts != settings.admin.allowed_hosts,
            ),
            (
                "metrics_listen",
                running.metrics_listen != settings.metrics_listen,
            ),
            ("database", running.database() != settings.database()),
            ("workers", running.workers != settings.workers),
            ("log_format", running.log_format != settings.log_format),
            ("tls.listen", running.tls.listen != settings.tls.listen),
            ("storage key", running.storage_key != settings.storage_key),
            ("acme", running.acme != settings.acme),
        ] {
            if changed {
                tracing::warn!(
                    setting = name,
                    "changed in the config; takes effect after a restart"
                );
            }
        }
        let previous = self.proxy.settings.load_full();
        // The logger was set up at start; its format cannot change now.
        next.log_format = previous.log_format;
        let grow = next
            .max_connections
            .saturating_sub(previous.max_connections);
        let shrink = previous
            .max_connections
            .saturating_sub(next.max_connections);
        if grow > 0 {
            self.proxy.connections.add_permits(grow);
        }
        if shrink > 0 {
            // Slots in use are given up as their connections close.
            let forgotten = self.proxy.connections.forget_permits(shrink);
            if forgotten < shrink {
                tracing::warn!(
                    effective = previous.max_connections - forgotten,
                    "max_connections is lower than the connections open now; the limit stays at `effective` until a restart"
                );
            }
        }
        self.proxy.health.set_config(next.health.clone());
        self.proxy
            .certificates
            .set_default(next.tls.default_certificate.clone());
        self.proxy.settings.store(Arc::new(next));
        *running = settings;
        Ok(())
    }
}
