//! The fuzz checks: each `check(data)` feeds one input to a switchyard
//! parser and panics when an invariant fails. The `fuzz_targets/` binaries
//! call them under libFuzzer; the main crate's `tests/fuzz_regressions.rs`
//! includes these same files (`#[path]`) and replays every committed seed
//! and crash input through them, so CI catches regressions without
//! cargo-fuzz.

pub mod admin_json;
pub mod framing;
pub mod lua_config;
pub mod routing_key;
