//! Black-box consistency tests of a real Cairn cluster under faults, in the manner of
//! Jepsen: a cluster of `cairn` processes (each in its own network namespace when the
//! machine allows), concurrent S3 clients recording a history, a nemesis injecting kills,
//! pauses and partitions, and checkers (linearizability per key, lost / phantom set
//! elements). See docs/jepsen.md.

pub mod checker;
pub mod cleanup;
pub mod client;
pub mod cluster;
pub mod error;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod node;
pub mod plot;
pub mod run;
pub mod signal;
pub mod sim;
pub mod slot;
pub mod workload;

pub use error::{Error, Result};
pub use run::{run, Report, RunConfig};

/// The `cairn` binary to test: `CAIRN_BIN` if set, else `cairn` next to the running
/// executable (`target/<profile>/`), looking one directory up for test binaries
/// (`target/<profile>/deps/`).
pub fn default_cairn_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        return p.into();
    }
    let name = format!("cairn{}", std::env::consts::EXE_SUFFIX);
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(std::path::Path::to_path_buf);
    while let Some(d) = dir {
        let candidate = d.join(&name);
        if candidate.is_file() {
            return candidate;
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent().map(std::path::Path::to_path_buf);
    }
    exe.parent()
        .map(|d| d.join(&name))
        .unwrap_or_else(|| name.into())
}
