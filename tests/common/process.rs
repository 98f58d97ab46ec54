//! The switchyard binary as a child process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Admin;

/// The switchyard binary running as its own process (for RSS, signals and
/// restarts).
pub struct Process {
    pub child: tokio::process::Child,
    /// Holds the temporary SQLite database (and its token file).
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: Admin,
    /// The `--metrics-listen` address, when given.
    pub metrics: Option<SocketAddr>,
    /// The HTTPS listener (`None` with `--tls-listen off`).
    pub tls: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Poll `GET /api/v1/domains/{name}` until its status is `wanted` (at
    /// most `within`); the domain's JSON and how long it took.
    pub async fn until_domain_status(
        &self,
        name: &str,
        wanted: &str,
        within: Duration,
    ) -> (serde_json::Value, Duration) {
        let started = std::time::Instant::now();
        loop {
            let reply = self.admin.get(&format!("/api/v1/domains/{name}")).await;
            assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text);
            if reply.json["status"] == wanted {
                return (reply.json, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "{name} not {wanted} within {within:?}: {}\n{}",
                reply.text,
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Start `switchyard --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
    /// --database sqlite://<temp dir> <args>` and wait until it is ready.
    pub async fn start(args: &[&str]) -> Process {
        Process::start_in(tempfile::tempdir().unwrap(), args).await
    }

    /// Start on the database in `dir` (a restart when an earlier process used it).
    pub async fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Process {
        let database = format!("sqlite://{}", database_path(dir.path()).display());
        Process::start_with_database(dir, &database, args).await
    }

    /// Start on `database` (SQLite or PostgreSQL); `dir` is the working
    /// directory (where a PostgreSQL node keeps its token file).
    pub async fn start_with_database(
        dir: tempfile::TempDir,
        database: &str,
        args: &[&str],
    ) -> Process {
        Process::launch(dir, Some(database), args).await
    }

    /// Start with `--admin-token` in `args` and no `--database` (so the
    /// default database, relative to `dir`, is used).
    pub async fn start_without_database(dir: tempfile::TempDir, args: &[&str]) -> Process {
        assert!(explicit_token(args).is_some(), "give --admin-token");
        Process::launch(dir, None, args).await
    }

    async fn launch(dir: tempfile::TempDir, database: Option<&str>, args: &[&str]) -> Process {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(database.iter().flat_map(|d| ["--database", d]))
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "info")
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .env_remove("SWITCHYARD_DATABASE")
            .env_remove("SWITCHYARD_READ_TOKEN")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("switchyard binary starts");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (addr, admin_addr, metrics, tls) =
            tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(line) = lines.next_line().await.unwrap() {
                    log.lock().unwrap().push(line.clone());
                    if line.contains("switchyard ready") {
                        let metrics = args
                            .contains(&"--metrics-listen")
                            .then(|| field(&line, " metrics="));
                        let tls = !line.contains("tls_listen=-")
                            && !line.contains("\"tls_listen\":\"-\"");
                        let tls = tls.then(|| field(&line, " tls_listen="));
                        return (
                            field(&line, " listen="),
                            field(&line, " admin="),
                            metrics,
                            tls,
                        );
                    }
                }
                panic!(
                    "switchyard exited before it was ready: {:?}",
                    log.lock().unwrap()
                );
            })
            .await
            .expect("switchyard ready within 30 s");
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let token = explicit_token(args).unwrap_or_else(|| {
            let database = database.expect("a database, or --admin-token");
            let file = if database.starts_with("sqlite://") {
                format!("{}.token", database.trim_start_matches("sqlite://"))
            } else {
                dir.path().join("switchyard.token").display().to_string()
            };
            std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("token file {file}: {e}"))
                .trim()
                .to_owned()
        });
        Process {
            child,
            dir,
            addr,
            admin: Admin::new(admin_addr, &token),
            metrics,
            tls,
            log,
        }
    }

    /// Kill the process with SIGKILL and give back its directory.
    pub async fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().await.unwrap();
        self.dir
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("process is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// SIGTERM, then wait for a clean exit; gives back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.signal("TERM");
        let status = self.child.wait().await.unwrap();
        assert!(status.success(), "clean exit: {status}");
        self.dir
    }

    /// Whether a log line contains every one of `parts`.
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| parts.iter().all(|p| line.contains(p)))
    }

    /// Send a signal (e.g. "TERM") to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("process is running");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// Where [`Process::start_in`] keeps the SQLite database.
pub fn database_path(dir: &Path) -> std::path::PathBuf {
    dir.join("switchyard.db")
}

/// The address in field `name` (like `" listen="`) of a text or JSON log line.
fn field(line: &str, name: &str) -> SocketAddr {
    let value = if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = name.trim().trim_end_matches('=');
        json["fields"][key].as_str().map(str::to_owned)
    } else {
        line.split(name)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    value
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no{name} address in {line:?}"))
}

fn explicit_token(args: &[&str]) -> Option<String> {
    let at = args.iter().position(|a| *a == "--admin-token")?;
    args.get(at + 1).map(|t| (*t).to_owned())
}
