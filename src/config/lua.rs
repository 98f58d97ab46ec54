//! The Lua config file: a Lua 5.4 chunk that returns a table of [`Settings`].
//!
//! The chunk runs once, in a fresh VM with Lua's safe standard libraries (so
//! it can read `os.getenv` and loop), and its result is deserialized through
//! serde with unknown keys refused. Errors name the file, the line where the
//! offending key appears (found in the source text) and the key's full path.

use std::path::Path;

use mlua::{Lua, Value};

use super::{ConfigError, Settings};

/// Read and evaluate `path`, returning the settings it describes.
pub fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    load_str(&source, &path.display().to_string())
}

/// Evaluate Lua `source` (named `name` in messages) into settings.
pub fn load_str(source: &str, name: &str) -> Result<Settings, ConfigError> {
    let lua = Lua::new();
    bound(&lua)?;
    load_in(&lua, source, name)
}

/// Most memory a config file's Lua may use.
const MEMORY_LIMIT: usize = 64 << 20;
/// Longest a config file may run: a loop that never ends is refused (at
/// start, by `--check`, and on SIGHUP, where it would otherwise hold the
/// signal task and make the process ignore SIGTERM).
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bound the VM's memory and running time.
fn bound(lua: &Lua) -> Result<(), ConfigError> {
    let lua_error = |e: mlua::Error| ConfigError::Lua(lua_message(&e));
    lua.set_memory_limit(MEMORY_LIMIT).map_err(lua_error)?;
    let deadline = std::time::Instant::now() + TIME_LIMIT;
    lua.set_global_hook(
        mlua::HookTriggers::new().every_nth_instruction(10_000),
        move |_, _| {
            if std::time::Instant::now() > deadline {
                Err(mlua::Error::runtime(format!(
                    "the config ran longer than {} s",
                    TIME_LIMIT.as_secs()
                )))
            } else {
                Ok(mlua::VmState::Continue)
            }
        },
    )
    .map_err(lua_error)
}

/// [`load_str`] in a VM the caller made: the fuzz target (`fuzz/`) bounds
/// its memory and instruction count, which a fresh `Lua::new()` does not.
pub fn load_in(lua: &Lua, source: &str, name: &str) -> Result<Settings, ConfigError> {
    let value: Value = lua
        .load(source)
        .set_name(format!("@{name}"))
        .eval()
        .map_err(|e| ConfigError::Lua(lua_message(&e)))?;
    if !value.is_table() {
        return Err(ConfigError::Lua(format!(
            "{name}: the config must return a table (like `return {{ listen = \"127.0.0.1:8080\" }}`), got {}",
            value.type_name()
        )));
    }
    let options = mlua::DeserializeOptions::new()
        .sort_keys(true)
        .detect_mixed_tables(true);
    let de = mlua::serde::Deserializer::new_with_options(value, options);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let message = err.inner().to_string();
        let leaf = unknown_field(&message).unwrap_or_else(|| last_segment(&key).to_owned());
        let location = match line_of_key(source, &leaf) {
            Some(line) => format!("{name}:{line}: "),
            None => format!("{name}: "),
        };
        ConfigError::Key {
            location,
            key,
            message,
        }
    })
}

/// The first line of a Lua error, which already carries `file:line:`.
fn lua_message(err: &mlua::Error) -> String {
    let text = match err {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_owned()
}

/// serde's "unknown field `x`, expected ..." names the offending key.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_owned())
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.')
        .next()
        .unwrap_or(path)
        .split('[')
        .next()
        .unwrap_or_default()
}

/// 1-based line of the first `key =` in the source, if any.
fn line_of_key(source: &str, key: &str) -> Option<usize> {
    if key.is_empty() || key == "?" {
        return None;
    }
    source
        .lines()
        .position(|line| {
            line.match_indices(key).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + key.len()..].trim_start();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && after.starts_with('=')
                    && !after.starts_with("==")
            })
        })
        .map(|i| i + 1)
}
