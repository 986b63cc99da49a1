//! Config files: `--config FILE` (or `CAIRN_CONFIG`) names a TOML file whose settings become
//! defaults for the flags of the role being run.
//!
//! Keys are flag names (`listen`, `blob-down-after`, `access_key` — `_` and `-` are the
//! same); top-level keys apply to every role, a `[meta]`, `[blob]`, `[gateway]`, `[server]`
//! or `[admin]` table to that role only. A setting is handed to clap as the flag's environment
//! variable, so the precedence is: command-line flag, then environment, then config file,
//! then the built-in default. `cairn <role> --help` lists every flag with its variable.
//!
//! ```toml
//! access_key = "admin"
//! [meta]
//! listen = "10.0.0.1:7000"
//! dir = "/var/lib/cairn/meta"
//! [blob]
//! dirs = ["/mnt/disk1/cairn", "/mnt/disk2/cairn"]
//! meta = ["http://10.0.0.1:7000", "http://10.0.0.2:7000"]
//! ```

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use toml_edit::{DocumentMut, Item, Value};

/// The roles a config file may have a table for.
const ROLES: [&str; 5] = ["server", "meta", "blob", "gateway", "admin"];

/// Where the config file is: `--config FILE` / `--config=FILE` in `args`, else `CAIRN_CONFIG`.
pub fn config_path(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("CAIRN_CONFIG").map(PathBuf::from)
}

/// The subcommand named in `args` (the first argument that is a role name).
pub fn role(args: &[OsString]) -> Option<String> {
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .find(|a| ROLES.contains(&a.as_str()))
}

fn value_text(key: &str, value: &Value) -> anyhow::Result<String> {
    Ok(match value {
        Value::String(s) => s.value().clone(),
        Value::Integer(i) => i.value().to_string(),
        Value::Float(f) => f.value().to_string(),
        Value::Boolean(b) => b.value().to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| value_text(key, v))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        _ => bail!("setting {key:?}: unsupported value type"),
    })
}

/// The (environment variable, value) pairs that `text` sets for `role`, checked against the
/// role's flags in `command` (clap's description of the CLI).
pub fn settings(
    text: &str,
    role: &str,
    command: &clap::Command,
) -> anyhow::Result<Vec<(String, String)>> {
    let doc: DocumentMut = text.parse().context("config file is not valid TOML")?;
    let sub = command
        .find_subcommand(role)
        .ok_or_else(|| anyhow!("unknown role {role:?}"))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut set = |key: &str, value: &Value, strict: bool| -> anyhow::Result<()> {
        let wanted = key.replace('_', "-");
        let arg = sub.get_arguments().find(|a| {
            a.get_long() == Some(wanted.as_str()) || a.get_id().as_str().replace('_', "-") == wanted
        });
        let Some(arg) = arg else {
            if strict {
                bail!("unknown setting {key:?} for `cairn {role}`");
            }
            return Ok(());
        };
        let Some(env) = arg.get_env() else {
            bail!("setting {key:?} of `cairn {role}` cannot come from a config file");
        };
        pairs.retain(|(e, _)| e.as_str() != env.to_string_lossy());
        pairs.push((env.to_string_lossy().into_owned(), value_text(key, value)?));
        Ok(())
    };
    // Top-level keys are shared by every role: a key a role does not have is skipped.
    for (key, item) in doc.iter() {
        if let Item::Value(value) = item {
            set(key, value, false)?;
        }
    }
    if let Some(table) = doc.get(role).and_then(Item::as_table_like) {
        for (key, item) in table.iter() {
            let value = item
                .as_value()
                .ok_or_else(|| anyhow!("setting {key:?} in [{role}] must be a value"))?;
            set(key, value, true)?;
        }
    }
    for (key, item) in doc.iter() {
        if !matches!(item, Item::Value(_)) && !ROLES.contains(&key) {
            bail!("unknown table [{key}] (expected one of {ROLES:?})");
        }
    }
    Ok(pairs)
}

/// Reads the config file named in `args`, if any, and exports its settings for the role as
/// environment variables (unless already set), before clap parses the arguments.
pub fn load(args: &[OsString], command: &clap::Command) -> anyhow::Result<()> {
    let (Some(path), Some(role)) = (config_path(args), role(args)) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let pairs = settings(&text, &role, command)
        .with_context(|| format!("config file {}", path.display()))?;
    for (env, value) in pairs {
        if std::env::var_os(&env).is_none() {
            // Called before the runtime starts any thread.
            std::env::set_var(env, value);
        }
    }
    Ok(())
}
