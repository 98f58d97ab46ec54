//! `lua_config`: the bytes as a Lua config file (`src/config/lua.rs`).
//!
//! The production loader (`lua::load_str`) runs the chunk in a plain
//! `Lua::new()`: no memory limit and no instruction budget, so
//! `while true do end` never returns and `s = s .. s` twenty times takes a
//! gigabyte (reported in fuzz/README.md). The check therefore calls
//! `lua::load_in`, the same loader in a VM made here, which:
//! - caps the VM's memory ([`MEMORY`]) and instructions ([`INSTRUCTIONS`],
//!   counted one by one, so `pcall` cannot swallow the budget's error);
//! - removes what would touch the machine (`io`, `os` but its clocks and
//!   `getenv`, `require`, `dofile`, `loadfile`, `print`) and the library
//!   loops no hook interrupts (`string.rep`, pattern matching,
//!   `table.move`, `table.insert`/`table.remove` past a length, and
//!   binary chunks through `load` or `string.dump`).
//!
//! Invariants: nothing panics; a config that loads and passes
//! `Settings::check` prints (`--check`) as a config that loads back to the
//! same settings, secrets redacted.

use std::cell::Cell;

use mlua::{HookTriggers, Lua, VmState};
use switchyard::config::{lua, DatabaseUrl, Secret, REDACTED};

/// Bytes the VM may hold.
pub const MEMORY: usize = 32 << 20;
/// VM instructions per input.
pub const INSTRUCTIONS: u32 = 50_000;

/// What the fuzzed chunk finds instead of the full standard library.
const PRELUDE: &str = r#"
local os_keep = { getenv = os.getenv, time = os.time, clock = os.clock,
                  date = os.date, difftime = os.difftime }
os = os_keep
io, package, require, dofile, loadfile, print = nil, nil, nil, nil, nil, nil
string.rep, string.find, string.match, string.gmatch, string.gsub = nil, nil, nil, nil, nil
string.dump, table.move = nil, nil
local plain_load = load
load = function(chunk, name, _mode, env)
  return plain_load(chunk, name, "t", env)
end
local function bounded(f)
  return function(t, ...)
    if type(t) == "table" and #t > 100000 then error("length past the fuzz bound") end
    return f(t, ...)
  end
end
table.insert, table.remove = bounded(table.insert), bounded(table.remove)
"#;

/// A VM like the loader's own, with the bounds above.
pub fn bounded_lua() -> Lua {
    let vm = Lua::new();
    vm.load(PRELUDE)
        .exec()
        .expect("the prelude runs in a fresh VM");
    vm.set_memory_limit(MEMORY).expect("a memory limit");
    let left = Cell::new(INSTRUCTIONS);
    vm.set_global_hook(
        HookTriggers::new().every_nth_instruction(1),
        move |_, _| match left.get() {
            0 => Err(mlua::Error::runtime("instruction budget spent")),
            n => {
                left.set(n - 1);
                Ok(VmState::Continue)
            }
        },
    )
    .expect("a hook");
    vm
}

pub fn check(data: &[u8]) {
    // `load_file` reads the file with `read_to_string`: only UTF-8 gets in.
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = lua::load_in(&bounded_lua(), source, "fuzz.lua") else {
        return;
    };
    // `check` reads `admin.token_file`; a fuzzed path must not be opened.
    if settings.admin.token_file.is_some() {
        return;
    }
    let Ok(checked) = settings.check() else {
        return;
    };
    let printed = checked.effective(&settings);
    let reloaded = lua::load_in(&bounded_lua(), &printed, "printed.lua")
        .unwrap_or_else(|e| panic!("--check output does not load: {e}\n{printed}"));
    let mut expected = settings.clone();
    let redact = |secret: &mut Option<Secret>| {
        if secret.is_some() {
            *secret = Some(Secret::new(REDACTED));
        }
    };
    redact(&mut expected.admin.token);
    redact(&mut expected.admin.read_token);
    expected.database_url = Some(DatabaseUrl::new(checked.database.to_string()));
    expected.workers = Some(checked.workers);
    assert_eq!(
        reloaded, expected,
        "--check output loads to other settings\n{printed}"
    );
}
