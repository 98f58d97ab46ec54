//! Every committed fuzz input (fuzz/seeds/ and the crash inputs in
//! fuzz/regressions/), replayed through the fuzz targets' own checks, so a
//! regression fails `cargo test` without cargo-fuzz. The checks are the
//! files under fuzz/src/, included here as they are.

#[path = "../fuzz/src/admin_json.rs"]
mod admin_json;
#[path = "../fuzz/src/framing.rs"]
mod framing;
#[path = "../fuzz/src/lua_config.rs"]
mod lua_config;
#[path = "../fuzz/src/routing_key.rs"]
mod routing_key;

use std::path::{Path, PathBuf};

/// Every file under `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feed each seed and regression input of `target` to `check`; fail with
/// the names of the inputs that panic.
fn replay(target: &str, check: fn(&[u8])) {
    let files: Vec<PathBuf> = ["seeds", "regressions"]
        .iter()
        .flat_map(|kind| inputs(kind, target))
        .collect();
    assert!(!files.is_empty(), "no inputs for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("a readable input");
            std::panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: these inputs fail: {failed:#?}"
    );
}

#[test]
fn routing_key_inputs() {
    replay("routing_key", routing_key::check);
}

#[test]
fn lua_config_inputs() {
    replay("lua_config", lua_config::check);
}

#[test]
fn admin_json_inputs() {
    replay("admin_json", admin_json::check);
}

/// Includes the inputs of the framing holes fuzzing found before the
/// tracker (empty lines before the request line hid a CL+TE head;
/// Transfer-Encoding values went unchecked), see fuzz/README.md.
#[test]
fn framing_inputs() {
    replay("framing", framing::check);
}
