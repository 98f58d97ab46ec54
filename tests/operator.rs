//! What an operator sees at the console: `--check` validates and prints
//! the settings in force (a config that loads back), secrets never appear
//! in any output, and `--log-format json` makes even fatal errors JSON.

use std::io::Write;
use std::process::{Command, Output};

use switchyard::config::lua;

const PASSWORD: &str = "s3cr3t-pw-do-not-print";

fn switchyard(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .env_remove("SWITCHYARD_DATABASE")
        .env_remove("SWITCHYARD_READ_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn config(source: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    file.write_all(source.as_bytes()).unwrap();
    file
}

#[test]
fn check_prints_the_settings_in_force_with_secrets_redacted_and_exits_0() {
    let file = config(&format!(
        r#"return {{
  database = "postgres://sy:{PASSWORD}@db.internal/sy",
  admin = {{ token = "{PASSWORD}-admin", read_token = "{PASSWORD}-read",
             allowed_hosts = {{ "Admin.Example.com" }} }},
  backends = {{ "10.0.0.1:8000" }},
  timeouts = {{ connect = 1.5 }},
}}"#
    ));
    let out = switchyard(
        &[
            "--check",
            "--config",
            file.path().to_str().unwrap(),
            "--workers",
            "3",
        ],
        &[],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("the configuration is valid"), "{stdout}");
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains("postgres://sy:***@db.internal/sy"),
        "{stdout}"
    );
    let printed = lua::load_str(&stdout, "check-output.lua").expect("the output is a config");
    assert_eq!(printed.workers, Some(3), "flags are applied");
    assert_eq!(printed.timeouts.connect, 1.5);
    assert_eq!(printed.limits.max_header_bytes, 65536, "defaults are shown");
    assert_eq!(printed.admin.token.unwrap().expose(), "<redacted>");
    assert_eq!(printed.admin.allowed_hosts, ["Admin.Example.com"]);
}

#[test]
fn check_refuses_a_bad_config_with_exit_2_naming_the_key() {
    let file = config("return {\n  timeouts = { conect = 1 },\n}\n");
    let out = switchyard(&["--check", "--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(":2: key `timeouts.conect`"), "{stderr}");
    let out = switchyard(&["--check", "--admin-token", "short"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("at least 16"));
    let file = config("return { admin = { allowed_hosts = { \"https://admin.example.com\" } } }");
    let out = switchyard(&["--check", "--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("admin.allowed_hosts") && stderr.contains("admin.allowed_origins"),
        "{stderr}"
    );
}

#[test]
fn a_database_password_never_appears_in_a_fatal_error() {
    let url = format!("postgres://sy:{PASSWORD}@127.0.0.1:1/sy");
    let shown = "postgres://sy:***@127.0.0.1:1/sy";
    for (args, env) in [
        (vec!["--database", url.as_str()], vec![]),
        (vec![], vec![("SWITCHYARD_DATABASE", url.as_str())]),
        (
            vec!["--log-format", "json", "--database", url.as_str()],
            vec![],
        ),
    ] {
        let args = [
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ][..],
            &args,
        ]
        .concat();
        let out = switchyard(&args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains(PASSWORD), "{stderr}");
        assert!(stderr.contains(shown), "{stderr}");
    }
    let query = format!("postgres://sy@127.0.0.1:1/sy?password={PASSWORD}");
    let out = switchyard(
        &[
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "off",
            "--database",
            &query,
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains(PASSWORD) && stderr.contains("password=***"),
        "{stderr}"
    );
    let unsupported = format!("mysql://sy:{PASSWORD}@db/sy");
    let out = switchyard(&["--check", "--database", &unsupported], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !text(&out.stderr).contains(PASSWORD),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_json_logs_fatal_errors_are_json_too() {
    let cases: [(&[&str], i32); 3] = [
        (
            &["--log-format", "json", "--config", "/does/not/exist.lua"],
            2,
        ),
        (&["--log-format", "json", "--no-such-flag"], 2),
        (
            &["--log-format=json", "--check", "--admin-token", "short"],
            2,
        ),
    ];
    for (args, code) in cases {
        let out = switchyard(args, &[]);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let stderr = text(&out.stderr);
        let line = stderr.lines().last().unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{args:?}: {e}: {stderr}"));
        assert_eq!(json["level"], "ERROR");
        assert_eq!(json["fields"]["exit_code"], code);
        assert!(
            json["fields"]["message"].as_str().unwrap().len() > 10,
            "{json}"
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_taken = taken.local_addr().unwrap().to_string();
    let out = switchyard(
        &[
            "--log-format",
            "json",
            "--listen",
            &port_taken,
            "--admin-token",
            &"t".repeat(20),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot listen"),
        "{last}"
    );
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

#[test]
fn the_systemd_units_command_line_passes_check() {
    let unit = std::fs::read_to_string("deploy/switchyard.service").unwrap();
    let exec = unit
        .split("ExecStart=")
        .nth(1)
        .expect("an ExecStart line")
        .lines()
        .map(|l| l.trim().trim_end_matches('\\').trim())
        .take_while(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('='))
        .collect::<Vec<_>>()
        .join(" ");
    let mut args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert!(args.len() > 4, "{exec}");
    let config = args.iter().position(|a| *a == "--config").unwrap() + 1;
    let example = format!("{}/examples/switchyard.lua", env!("CARGO_MANIFEST_DIR"));
    args[config] = &example;
    args.extend(["--check", "--admin-token", "a-token-for-the-unit-check"]);
    let out = switchyard(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
