//! The harness's error type.

use std::path::PathBuf;

/// Why the harness could not set up, drive or tear down a run. Consistency anomalies are not
/// errors: they are verdicts (see [`crate::checker`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the run could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (`ip`, `iptables`, `cairn admin`, ...) failed.
    #[error("command `{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and output, or why it could not run.
        detail: String,
    },
    /// A `cairn` process did not start (no marker line in time, or it exited).
    #[error("node {node} did not start: {detail} (log: {log})")]
    NodeStart {
        /// The node's name.
        node: String,
        /// What went wrong.
        detail: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The cluster did not reach the expected state in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A setting or argument cannot work.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The deterministic simulation could not set itself up (a store, the runtime).
    #[error("simulation: {0}")]
    Sim(String),
    /// A history file could not be parsed.
    #[error("bad history line {line}: {detail}")]
    History {
        /// 1-based line number.
        line: usize,
        /// The parse error.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for the harness's results.
pub type Result<T> = std::result::Result<T, Error>;

/// The stdout of a finished `command`, or an error naming it with its exit status and stderr.
pub fn command_output(
    command: String,
    output: std::io::Result<std::process::Output>,
) -> Result<String> {
    let out = output.map_err(|e| Error::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
