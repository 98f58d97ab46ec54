//! The admin UI in a real browser: `ui-tests/admin-ui.mjs` drives Debian's
//! chromium through playwright-core against a switchyard started here (temp
//! database, `--demo`), with certificates made here (rcgen) for its
//! Certificates view to upload. Screenshots land in `target/ui-screenshots/`.
//!
//! Needs `node`, `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci` having
//! installed `node_modules/`; `.ci/run` installs them and sets
//! `SWITCHYARD_UI_TESTS=required`. Elsewhere, without them, the test prints
//! why and skips.

mod common;

use std::path::Path;

use common::pebble::Pebble;
use common::pki::{time_now, TestCa};
use common::Process;

const TOKEN: &str = "ui-test-token-0123456789";
/// For the page's answer to a write refused with `read_only_token`.
const READ_TOKEN: &str = "ui-test-read-only-token-0123";

fn missing_prerequisite() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if !Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node_modules/playwright-core")
        .exists()
    {
        return Some("node_modules/playwright-core missing (npm ci)".into());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("node not found".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_works_in_a_real_browser() {
    if let Some(why) = missing_prerequisite() {
        // CI sets this so that a broken install fails instead of skipping.
        let required = std::env::var("SWITCHYARD_UI_TESTS").is_ok_and(|v| v == "required");
        assert!(!required, "the browser test cannot run: {why}");
        common::skipped("the_admin_ui_works_in_a_real_browser", &why);
        return;
    }
    let certs = certificates_for_the_page();
    // With Pebble (CI installs it), the managed-domains steps order real
    // certificates; without it they check the page's answer when ACME is off.
    let mut pebble =
        Pebble::prepare_or_skip("the_admin_ui_works_in_a_real_browser (ACME steps)", 3600);
    let config = certs.path().join("switchyard.lua");
    let acme = pebble.as_ref().map_or(String::new(), |p| {
        format!(
            "acme = {{ directory = {:?}, ca_file = {:?} }}",
            p.directory,
            p.ca_file.to_str().unwrap()
        )
    });
    std::fs::write(&config, format!("return {{ {acme} }}")).unwrap();
    let switchyard = Process::start(&[
        "--demo",
        "--config",
        config.to_str().unwrap(),
        "--admin-token",
        TOKEN,
        "--read-token",
        READ_TOKEN,
    ])
    .await;
    if let Some(pebble) = &mut pebble {
        pebble.start(switchyard.addr.port()).await;
        let root = pebble.root_pem().await.expect("Pebble's root");
        std::fs::write(certs.path().join("pebble-root.pem"), root).unwrap();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = tokio::process::Command::new("node")
        .arg(root.join("ui-tests/admin-ui.mjs"))
        .current_dir(root)
        .env("ADMIN_URL", format!("http://{}", switchyard.admin.addr))
        .env("ADMIN_TOKEN", TOKEN)
        .env("READ_TOKEN", READ_TOKEN)
        .env("PROXY_URL", format!("http://{}", switchyard.addr))
        .env(
            "HTTPS_URL",
            format!("https://{}", switchyard.tls.expect("an HTTPS listener")),
        )
        .env("CERT_DIR", certs.path())
        .env("ACME", if pebble.is_some() { "1" } else { "" })
        .env("SCREENSHOT_DIR", root.join("target/ui-screenshots"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser test finishes within 3 minutes")
        .expect("node runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the browser test failed (output above)"
    );
}

/// PEM files the page uploads: `shop` (`shop.example` and `*.shop.example`,
/// chain and key), `leaf` (`leaf.example` without its issuer: accepted with
/// a warning), `expired` (refused), and `root.pem` to verify what is served.
fn certificates_for_the_page() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("switchyard UI test root");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let shop = ca.site(&["shop.example", "*.shop.example"]);
    write("shop.pem", &shop.chain_pem);
    write("shop.key", &shop.key_pem);
    let leaf = ca.site(&["leaf.example"]);
    write("leaf.pem", &leaf.leaf_pem);
    write("leaf.key", &leaf.key_pem);
    let expired = ca.site_with(&["old.example"], |p| {
        p.not_before = time_now() - time::Duration::days(100);
        p.not_after = time_now() - time::Duration::days(1);
    });
    write("expired.pem", &expired.chain_pem);
    write("expired.key", &expired.key_pem);
    write("root.pem", &ca.root_pem);
    dir
}
