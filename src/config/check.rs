//! The whole validation of a configuration, with no side effect (no
//! database, no socket): what [`crate::App::build`] needs before it touches
//! anything, and what `--check` reports. [`Checked::effective`] prints the
//! settings in force as a Lua config, secrets redacted.

use std::fmt::Write;

use serde_json::Value;

use super::{ConfigError, DatabaseUrl, ProxySettings, Secret, Settings, TokenSource};
use crate::routing::Backend;

/// A configuration that passed every check.
#[derive(Debug)]
pub struct Checked {
    pub proxy: ProxySettings,
    /// The configured backends (they seed an empty store).
    pub backends: Vec<Backend>,
    pub database: DatabaseUrl,
    pub token: TokenSource,
    pub read_token: Option<Secret>,
    /// Normalized `admin.allowed_origins`.
    pub allowed_origins: Vec<String>,
    /// Normalized `admin.allowed_hosts`.
    pub allowed_hosts: Vec<String>,
    /// Proxy worker threads.
    pub workers: usize,
    /// Seals private keys at rest, if a storage key is configured.
    pub sealer: Option<crate::store::Sealer>,
    /// Automatic certificates, if `acme.directory` is set (restart-only).
    pub acme: Option<super::Acme>,
}

impl Settings {
    /// Validate everything (values, tokens, origins, host names, the database URL's
    /// kind) without opening or binding anything.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        let (proxy, backends) = self.validate()?;
        self.listeners_apart()?;
        let database = self.database();
        let url = database.expose();
        let known = ["sqlite://", "postgres://", "postgresql://"];
        if !known.iter().any(|scheme| url.starts_with(scheme)) {
            return Err(ConfigError::Invalid(format!(
                "database {database:?} is not supported: use sqlite://PATH or postgres://..."
            )));
        }
        let sealer = self
            .storage_key
            .as_ref()
            .map(crate::store::Sealer::from_hex)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("SWITCHYARD_STORAGE_KEY: {e}")))?;
        let acme = self.acme.checked()?;
        Ok(Checked {
            acme,
            sealer,
            proxy,
            backends,
            token: self.admin.token_source(url)?,
            read_token: self.admin.read_token()?,
            allowed_origins: self.admin.allowed_origins()?,
            allowed_hosts: self.admin.allowed_hosts()?,
            workers: self.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            }),
            database,
        })
    }
}

impl Settings {
    /// The proxy, admin and metrics listeners may not share an address (a
    /// port on `0.0.0.0` or `::` takes it on every address).
    fn listeners_apart(&self) -> Result<(), ConfigError> {
        let mut listeners = vec![("listen", self.listen), ("admin.listen", self.admin.listen)];
        listeners.extend(self.metrics_listen.map(|m| ("metrics_listen", m)));
        listeners.extend(self.tls.listen.addr().map(|t| ("tls.listen", t)));
        for (i, (a_name, a)) in listeners.iter().enumerate() {
            for (b_name, b) in &listeners[i + 1..] {
                let overlap =
                    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
                if a.port() != 0 && a.port() == b.port() && overlap {
                    return Err(ConfigError::Invalid(format!(
                        "{a_name} ({a}) and {b_name} ({b}) would share a port; give each its own"
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Checked {
    /// `settings` as a Lua config with the values in force (the database,
    /// the number of workers), secrets shown as `<redacted>`.
    pub fn effective(&self, settings: &Settings) -> String {
        let mut value = serde_json::to_value(settings).expect("settings serialize");
        if let Value::Object(map) = &mut value {
            map.insert("database".into(), self.database.to_string().into());
            map.insert("workers".into(), self.workers.into());
        }
        let mut out = String::from("return ");
        lua(&mut out, &value, 0);
        out.push('\n');
        out
    }
}

/// Write `value` as a Lua expression (tables indented by `depth`).
fn lua(out: &mut String, value: &Value, depth: usize) {
    let pad = "  ".repeat(depth + 1);
    match value {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => quote(out, s),
        Value::Array(items) if items.iter().all(|v| !v.is_object()) => {
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                lua(out, item, depth + 1);
            }
            out.push_str(if items.is_empty() { "}" } else { " }" });
        }
        Value::Array(items) => {
            out.push_str("{\n");
            for item in items {
                out.push_str(&pad);
                lua(out, item, depth + 1);
                out.push_str(",\n");
            }
            out.push_str(&"  ".repeat(depth));
            out.push('}');
        }
        Value::Object(map) => {
            out.push_str("{\n");
            // Unset options (nil) are left out, like in a hand-written file.
            for (key, item) in map.iter().filter(|(_, v)| !v.is_null()) {
                let _ = write!(out, "{pad}{key} = ");
                lua(out, item, depth + 1);
                out.push_str(",\n");
            }
            out.push_str(&"  ".repeat(depth));
            out.push('}');
        }
    }
}

fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lua;

    #[test]
    fn listeners_may_not_share_an_address() {
        let mut settings = Settings::default();
        settings.admin.listen = settings.listen;
        let err = settings.check().unwrap_err().to_string();
        assert!(
            err.contains("listen (127.0.0.1:8080) and admin.listen"),
            "{err}"
        );
        let mut settings = Settings {
            listen: "0.0.0.0:9000".parse().unwrap(),
            metrics_listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Settings::default()
        };
        assert!(
            settings.check().is_err(),
            "a wildcard takes the port everywhere"
        );
        settings.metrics_listen = Some("127.0.0.1:9001".parse().unwrap());
        assert!(settings.check().is_ok());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin.listen = "127.0.0.1:0".parse().unwrap();
        assert!(settings.check().is_ok(), "port 0 is a new port each time");
    }

    #[test]
    fn the_effective_settings_are_a_config_that_loads_back_to_the_same_settings() {
        let source = r#"return {
            listen = "127.0.0.1:9090",
            database = "postgres://sy:s3cret@db/sy",
            backends = { "10.0.0.1:80", { address = "10.0.0.2:80", weight = 3 } },
            admin = { token = "a-token-of-twenty-chars", allowed_origins = { "https://a.example" },
                      allowed_hosts = { "admin.example.com" } },
            trusted_proxies = { "10.0.0.0/8" },
            timeouts = { connect = 1.5 },
            health = { passive = { failure_statuses = { 502, 503 } } },
            reload = { control_hosts = { "Line\nBreak \"quoted\"" } },
        }"#;
        let settings = lua::load_str(source, "t.lua").unwrap();
        let mut for_check = settings.clone();
        for_check.reload.control_hosts.clear();
        let checked = for_check.check().unwrap();
        let printed = checked.effective(&settings);
        assert!(
            !printed.contains("s3cret") && !printed.contains("twenty"),
            "{printed}"
        );
        assert!(printed.contains("postgres://sy:***@db/sy"), "{printed}");
        assert!(printed.contains(r#"token = "<redacted>""#), "{printed}");
        assert!(
            printed.contains(r#"allowed_hosts = { "admin.example.com" }"#),
            "{printed}"
        );
        let reloaded = lua::load_str(&printed, "printed.lua").unwrap();
        let mut expected = settings.clone();
        expected.admin.token = Some(Secret::new(super::super::REDACTED));
        expected.database_url = Some(DatabaseUrl::new("postgres://sy:***@db/sy"));
        expected.workers = Some(checked.workers);
        assert_eq!(reloaded, expected);
    }
}
