//! `health = { active = {...}, passive = {...} }`: how switchyard decides a
//! backend is down, and the validated runtime form.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `health = { ... }`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    pub active: ActiveSettings,
    pub passive: PassiveSettings,
}

/// `health.active`: periodic `GET path` to every backend.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ActiveSettings {
    /// Off by default: a backend's `/` may legitimately answer 404.
    pub enabled: bool,
    /// Path requested.
    pub path: String,
    /// `Host` sent (default: the backend's address).
    pub host: Option<String>,
    /// Seconds between checks of one backend.
    pub interval: f64,
    /// Seconds a check may take (connect + response head).
    pub timeout: f64,
    /// Consecutive passes that bring a backend that checks took down back
    /// (default 1: one passed check decides).
    pub healthy_threshold: u32,
    /// Consecutive failures that take a backend down.
    pub unhealthy_threshold: u32,
    /// Inclusive range of statuses that pass.
    pub expect_status: [u16; 2],
}

impl Default for ActiveSettings {
    fn default() -> Self {
        ActiveSettings {
            enabled: false,
            path: "/".into(),
            host: None,
            interval: 5.0,
            timeout: 2.0,
            healthy_threshold: 1,
            unhealthy_threshold: 3,
            expect_status: [200, 399],
        }
    }
}

/// `health.passive`: real traffic's failures take a backend out for a while.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PassiveSettings {
    pub enabled: bool,
    /// Consecutive failures of the backend itself (refused or timed-out
    /// connections, connections closed before a response, invalid
    /// responses, no response head in time, `failure_statuses`) that take
    /// it out; one answered request resets the count.
    pub failures: u32,
    /// Seconds between trial requests to a backend that is out: it comes
    /// back when one is answered (or an active check passes).
    pub cooldown: f64,
    /// Backend statuses that count as failures. None by default: on a
    /// backend that hosts many users' apps, a 502 or 503 comes from one
    /// app (and a client can provoke it), not from the backend; list them
    /// only where the backend answers them for itself.
    pub failure_statuses: Vec<u16>,
}

impl Default for PassiveSettings {
    fn default() -> Self {
        PassiveSettings {
            enabled: true,
            failures: 5,
            cooldown: 10.0,
            failure_statuses: Vec::new(),
        }
    }
}

/// Validated health settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    pub active: Option<ActiveCheck>,
    pub passive: Option<PassiveCheck>,
}

/// Validated `health.active`.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveCheck {
    pub path: String,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expect_status: std::ops::RangeInclusive<u16>,
}

/// Validated `health.passive`.
#[derive(Clone, Debug, PartialEq)]
pub struct PassiveCheck {
    pub failures: u32,
    pub cooldown: Duration,
    pub failure_statuses: Vec<u16>,
}

impl HealthSettings {
    /// Check the values; disabled parts become `None`.
    pub fn validate(&self) -> Result<HealthConfig, ConfigError> {
        let seconds = |name: &str, v: f64| super::seconds(&format!("health.{name}"), v);
        let (a, p) = (&self.active, &self.passive);
        // Checked even while their part is off, like `access_log.sample`:
        // `--check` prints the settings back as Lua, where a NaN or an
        // infinity would vanish and read back as the default.
        let interval = seconds("active.interval", a.interval)?;
        let timeout = seconds("active.timeout", a.timeout)?;
        let cooldown = seconds("passive.cooldown", p.cooldown)?;
        let active = if a.enabled {
            if !a.path.starts_with('/') || a.path.parse::<http::uri::PathAndQuery>().is_err() {
                return Err(ConfigError::Invalid(
                    "health.active.path must be a path starting with /".into(),
                ));
            }
            if let Some(host) = &a.host {
                if http::HeaderValue::from_str(host).is_err() || host.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "health.active.host {host:?} is not a valid Host header"
                    )));
                }
            }
            if a.healthy_threshold == 0 || a.unhealthy_threshold == 0 {
                return Err(ConfigError::Invalid(
                    "health.active thresholds must be at least 1".into(),
                ));
            }
            let [low, high] = a.expect_status;
            if !(100..=599).contains(&low) || !(low..=599).contains(&high) {
                return Err(ConfigError::Invalid(
                    "health.active.expect_status must be { low, high } within 100-599".into(),
                ));
            }
            Some(ActiveCheck {
                path: a.path.clone(),
                host: a.host.clone(),
                interval,
                timeout,
                healthy_threshold: a.healthy_threshold,
                unhealthy_threshold: a.unhealthy_threshold,
                expect_status: low..=high,
            })
        } else {
            None
        };
        let passive = if p.enabled {
            if p.failures == 0 {
                return Err(ConfigError::Invalid(
                    "health.passive.failures must be at least 1".into(),
                ));
            }
            if let Some(s) = p
                .failure_statuses
                .iter()
                .find(|s| !(100..=599).contains(*s))
            {
                return Err(ConfigError::Invalid(format!(
                    "health.passive.failure_statuses: {s} is not an HTTP status"
                )));
            }
            Some(PassiveCheck {
                failures: p.failures,
                cooldown,
                failure_statuses: p.failure_statuses.clone(),
            })
        } else {
            None
        };
        Ok(HealthConfig { active, passive })
    }
}
