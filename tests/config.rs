//! The Lua config file and how flags merge over it.

use std::io::Write;

use clap::Parser;
use switchyard::config::{lua, BackendEntry, Flags, LogFormat, Settings};
use switchyard::routing::ReloadScope;

fn lua_file(source: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    file.write_all(source.as_bytes()).unwrap();
    file
}

fn error_of(source: &str) -> String {
    lua::load_str(source, "test.lua").unwrap_err().to_string()
}

#[test]
fn the_example_config_loads_and_validates() {
    let settings = lua::load_file("examples/switchyard.lua".as_ref()).unwrap();
    assert_eq!(settings.backends.len(), 4);
    assert_eq!(
        settings.backends[0],
        BackendEntry::Address("127.0.0.1:9001".into())
    );
    assert_eq!(
        settings.backends[3],
        BackendEntry::Weighted {
            address: "127.0.0.1:9010".into(),
            weight: 2
        }
    );
    assert_eq!(settings.admin.listen.port(), 8081);
    assert_eq!(
        settings
            .admin
            .token_source(settings.database().expose())
            .unwrap(),
        switchyard::config::TokenSource::Generated("switchyard.db.token".into()),
        "without SWITCHYARD_EXAMPLE_TOKEN the token is generated next to the database"
    );
    let (proxy, backends) = settings.validate().unwrap();
    assert_eq!(backends.len(), 4);
    assert_eq!(proxy.max_header_bytes, 65536);
    assert!(
        matches!(proxy.reload_scope, ReloadScope::ControlHosts(ref h) if h[0].as_str() == "www.pythonanywhere.com")
    );
}

#[test]
fn an_empty_table_gives_the_defaults() {
    assert_eq!(
        lua::load_str("return {}", "x.lua").unwrap(),
        Settings::default()
    );
}

#[test]
fn lua_can_compute_values() {
    let settings = lua::load_str(
        r#"local t = {}
           for i = 1, 5 do t[i] = "10.0.0." .. i .. ":80" end
           return { backends = t, timeouts = { connect = 0.5 * 3 }, log_format = string.lower("JSON") }"#,
        "x.lua",
    )
    .unwrap();
    assert_eq!(settings.backends.len(), 5);
    assert_eq!(settings.timeouts.connect, 1.5);
    assert_eq!(settings.log_format, LogFormat::Json);
}

#[test]
fn unknown_keys_are_errors_naming_file_line_and_key() {
    let err = error_of(
        "return {\n  listen = \"127.0.0.1:1\",\n  timeouts = {\n    conect = 3,\n  },\n}\n",
    );
    assert!(
        err.starts_with("test.lua:4: key `timeouts.conect`"),
        "{err}"
    );
    assert!(err.contains("unknown field `conect`"), "{err}");
    let err = error_of("return { listne = '127.0.0.1:1' }");
    assert!(err.starts_with("test.lua:1: key `listne`"), "{err}");
}

#[test]
fn wrong_types_and_bad_lua_are_errors() {
    let err = error_of("return { limits = { max_connections = 'many' } }");
    assert!(err.contains("limits.max_connections"), "{err}");
    let err =
        error_of("return { backends = { { address = '10.0.0.1:80', weight = 2, extra = 1 } } }");
    assert!(
        err.contains("backends[0]") && err.contains("unknown field `extra`"),
        "{err}"
    );
    assert!(
        error_of("return {").starts_with("test.lua:1:"),
        "syntax error carries the line"
    );
    assert!(error_of("return 42").contains("must return a table"));
    assert!(error_of("error('boom')").contains("boom"));
    // A config that never ends or eats memory is refused, not obeyed.
    let endless = error_of("while true do end return {}");
    assert!(endless.contains("ran longer than 5 s"), "{endless}");
    let greedy = error_of("local t = {} for i = 1, 1e9 do t[i] = i end return {}");
    assert!(greedy.to_lowercase().contains("memory"), "{greedy}");
}

#[test]
fn validation_refuses_bad_values_with_the_key_name() {
    let check = |source: &str, needle: &str| {
        let err = lua::load_str(source, "x.lua")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{source}: {err}");
    };
    check("return { timeouts = { idle = -1 } }", "timeouts.idle");
    check("return { timeouts = { connect = 0 } }", "timeouts.connect");
    check(
        "return { limits = { max_header_bytes = 10 } }",
        "limits.max_header_bytes",
    );
    check("return { failover = { tries = 0 } }", "failover.tries");
    check(
        "return { limits = { client_send_buffer = 4294967295 } }",
        "limits.client_send_buffer must be at most 2147483647",
    );
    check(
        "return { limits = { backend_recv_buffer = 2147483648 } }",
        "limits.backend_recv_buffer",
    );
    check(
        "return { limits = { client_unsent_buffer = 2147483648 } }",
        "limits.client_unsent_buffer must be at most 2147483647",
    );
    check(
        "return { limits = { max_connections = 9223372036854775807 } }",
        "limits.max_connections must be at most",
    );
    check(
        "return { backends = { 'nope' } }",
        "invalid backend address",
    );
    check(
        "return { backends = { { address = '10.0.0.1:80', weight = 0 } } }",
        "weight",
    );
    check(
        "return { reload = { control_hosts = { 'a..b' } } }",
        "reload.control_hosts",
    );
    check(
        "return { trusted_proxies = { '10.0.0.0/99' } }",
        "trusted_proxies",
    );
    check(
        "return { upgrade_protocols = { 'H2C' } }",
        "h2c cannot be allowed",
    );
    check(
        "return { upgrade_protocols = { 'web socket' } }",
        "upgrade_protocols",
    );
    // Even while their check is off (found by fuzz/: `--check` printed
    // the config without them, so it read back as the defaults).
    check(
        "return { health = { active = { enabled = false, interval = 0/0 } } }",
        "health.active.interval",
    );
    check(
        "return { health = { passive = { enabled = false, cooldown = 1/0 } } }",
        "health.passive.cooldown",
    );
}

#[test]
fn flags_beat_the_file_and_backends_add_up() {
    let file =
        lua_file("return { listen = '127.0.0.1:7000', workers = 4, backends = { '10.0.0.1:80' } }");
    let path = file.path().to_str().unwrap();
    let flags = Flags::try_parse_from([
        "switchyard",
        "--config",
        path,
        "--listen",
        "127.0.0.1:7001",
        "--backend",
        "10.0.0.2:80",
    ])
    .unwrap();
    let settings = flags.settings().unwrap();
    assert_eq!(settings.listen.to_string(), "127.0.0.1:7001");
    assert_eq!(
        settings.workers,
        Some(4),
        "file value kept where no flag is given"
    );
    let (_, backends) = settings.validate().unwrap();
    let addresses: Vec<String> = backends.iter().map(|b| b.address.to_string()).collect();
    assert_eq!(addresses, ["10.0.0.1:80", "10.0.0.2:80"]);
}
