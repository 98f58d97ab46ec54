//! Pebble (Let's Encrypt's test CA, Debian's `pebble` package) and its DNS
//! helper `pebble-challtestsrv`, started for one test on free loopback
//! ports. Every name resolves to 127.0.0.1 (IPv4 only) unless a test points
//! it elsewhere; Pebble validates HTTP-01 on the port the test gives it
//! (switchyard's plain listener).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::pki::TestCa;

pub struct Pebble {
    /// The ACME directory URL.
    pub directory: String,
    /// The root of Pebble's own HTTPS certificate (`acme.ca_file`).
    pub ca_file: PathBuf,
    management: SocketAddr,
    dns_management: SocketAddr,
    validity: u64,
    children: Vec<tokio::process::Child>,
    dir: tempfile::TempDir,
}

/// A free loopback port (TCP, or UDP and TCP for DNS).
fn free_port() -> u16 {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    // The DNS helper binds UDP on the same number.
    let _ = std::net::UdpSocket::bind(("127.0.0.1", port));
    port
}

impl Pebble {
    /// Prepare Pebble (its certificate and ports; [`Pebble::start`] runs
    /// it once switchyard's plain port is known), issuing certificates
    /// valid for `validity` seconds; `None` (after printing SKIPPED and
    /// why) when Pebble is not installed. `.ci/run` installs it and sets
    /// `SWITCHYARD_ACME_TESTS=required`, so there a missing Pebble fails.
    pub fn prepare_or_skip(test: &str, validity: u64) -> Option<Pebble> {
        for tool in ["pebble", "pebble-challtestsrv"] {
            let found = std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                let why = format!("{tool} not found (apt-get install pebble)");
                let required =
                    std::env::var("SWITCHYARD_ACME_TESTS").is_ok_and(|v| v == "required");
                assert!(!required, "{test} cannot run: {why}");
                super::skipped(test, &why);
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("Pebble HTTPS test root");
        let site = ca.site(&["localhost", "127.0.0.1"]);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        write("pebble.pem", &site.chain_pem);
        write("pebble.key", &site.key_pem);
        let ca_file = write("root.pem", &ca.root_pem);
        let acme = free_port();
        Some(Pebble {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            ca_file,
            management: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dns_management: SocketAddr::from(([127, 0, 0, 1], free_port())),
            validity,
            children: Vec::new(),
            dir,
        })
    }

    /// Run Pebble, validating HTTP-01 on `http_port` (switchyard's plain
    /// listener), and its DNS helper; wait until it answers.
    pub async fn start(&mut self, http_port: u16) {
        let path = |name: &str| self.dir.path().join(name);
        let acme = self
            .directory
            .trim_start_matches("https://")
            .trim_end_matches("/dir");
        let dns = free_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": acme,
            "managementListenAddress": self.management.to_string(),
            "certificate": path("pebble.pem"), "privateKey": path("pebble.key"),
            "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "certificateValidityPeriod": self.validity,
        }});
        std::fs::write(path("pebble.json"), config.to_string()).unwrap();
        let dns_helper = tokio::process::Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &self.dns_management.to_string()])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv starts");
        let pebble = tokio::process::Command::new("pebble")
            .args(["-config", path("pebble.json").to_str().unwrap()])
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random validation delay, no rejected nonces, a fresh
            // authorization for every order (renewals validate again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(std::fs::File::create(path("pebble.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble starts");
        self.children = vec![dns_helper, pebble];
        // 30 s: a loaded CI machine once needed more than 10.
        for _ in 0..300 {
            if self.root_pem().await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pebble did not start within 30 s:\n{}", self.log());
    }

    /// Pebble's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The root that signs the certificates Pebble issues (PEM).
    pub async fn root_pem(&self) -> Option<String> {
        let output = tokio::process::Command::new("curl")
            .args(["-sf", "--max-time", "2", "--cacert"])
            .arg(&self.ca_file)
            .arg(format!("https://{}/roots/0", self.management))
            .output()
            .await
            .ok()?;
        let pem = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && pem.contains("BEGIN CERTIFICATE")).then_some(pem)
    }

    /// Make `host` resolve to `ip` for Pebble (e.g. an address nothing
    /// listens on, so validation fails).
    pub async fn resolve(&self, host: &str, ip: &str) {
        let body = serde_json::json!({"host": host, "addresses": [ip]}).to_string();
        let status = tokio::process::Command::new("curl")
            .args(["-sf", "--max-time", "2", "-d", &body])
            .arg(format!("http://{}/add-a", self.dns_management))
            .status()
            .await
            .unwrap();
        assert!(status.success(), "challtestsrv add-a {host}");
    }
}
