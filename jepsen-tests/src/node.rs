//! One `cairn` process (meta, blob or gateway): started (inside its network namespace if it
//! has one), killed with SIGKILL, paused with SIGSTOP / SIGCONT, restarted with the same
//! arguments and data.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::slot::Slot;

/// How long a node may take to print its start-up line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The role a node plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `cairn meta`.
    Meta,
    /// `cairn blob`.
    Blob,
    /// `cairn gateway`.
    Gateway,
}

impl Role {
    /// The stdout line prefix the process prints once it serves.
    fn marker(self) -> &'static str {
        match self {
            Role::Meta => "META ",
            Role::Blob => "BLOB ",
            Role::Gateway => "S3 ",
        }
    }

    /// `meta`, `blob` or `gateway`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Blob => "blob",
            Role::Gateway => "gateway",
        }
    }
}

/// How to start one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// `meta-1`, `blob-3`, `gateway-2`, ...
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Address it listens on.
    pub ip: IpAddr,
    /// Port it listens on.
    pub port: u16,
    /// Network namespace to run it in.
    pub netns: Option<String>,
    /// Arguments after the binary.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Its log (stderr, and stdout lines prefixed `stdout: `).
    pub log: PathBuf,
    /// A string in its command line that identifies it (its data directory), for the
    /// leftover cleanup of a crashed run.
    pub marker: String,
}

/// A node and, while it runs, its process.
pub struct Node {
    /// How it is started.
    pub spec: NodeSpec,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    /// A node that is not running yet.
    pub fn new(spec: NodeSpec) -> Node {
        Node {
            spec,
            child: None,
            paused: false,
        }
    }

    /// `ip:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.spec.ip, self.spec.port)
    }

    /// Whether its process is running (possibly paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is paused (SIGSTOP).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts the process and waits for its start-up line; returns the rest of that line.
    pub fn start(&mut self, bin: &Path, slot: &Slot) -> Result<String> {
        if self.child.is_some() {
            return Ok(String::new());
        }
        let spec = &self.spec;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| Error::io("open", &spec.log, e))?;
        let stdout_log = log
            .try_clone()
            .map_err(|e| Error::io("open", &spec.log, e))?;
        let mut cmd = match &spec.netns {
            Some(ns) => {
                // `ip netns exec` execs the binary after entering the namespace, so the child's
                // pid is cairn's own: signals reach it directly.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().map_err(|e| Error::NodeStart {
            node: spec.name.clone(),
            detail: format!("cannot run {}: {e}", bin.display()),
            log: spec.log.clone(),
        })?;
        let pid = child.id();
        crate::cleanup::add_pid(pid);
        slot.note_pid(pid, &spec.marker);
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let name = format!("{}-stdout", spec.name);
            let spawned = std::thread::Builder::new()
                .name(name)
                .spawn(move || copy_stdout(stdout, stdout_log, tx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the stdout reader");
            }
        }
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + START_TIMEOUT;
        let marker = spec.role.marker();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(marker) {
                        return Ok(rest.to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
                Err(_) => {
                    let status = self.reap();
                    return Err(Error::NodeStart {
                        node: self.spec.name.clone(),
                        detail: match status {
                            Some(s) => format!("exited with {s}"),
                            None => format!("no `{}` line in {START_TIMEOUT:?}", marker.trim()),
                        },
                        log: self.spec.log.clone(),
                    });
                }
            }
        }
    }

    /// Kills the process and collects its status (`None` if it was still running).
    fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let early = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        crate::cleanup::remove_pid(child.id());
        self.paused = false;
        early
    }

    /// `kill -9` (also ends a paused process). Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.reap();
    }

    /// SIGSTOP. Returns false if it is not running or cannot be paused.
    pub fn pause(&mut self) -> bool {
        match &self.child {
            Some(c) if !self.paused => {
                self.paused = crate::signal::stop(c.id());
                self.paused
            }
            _ => false,
        }
    }

    /// SIGCONT, if paused.
    pub fn resume(&mut self) {
        if let (Some(c), true) = (&self.child, self.paused) {
            crate::signal::resume(c.id());
            self.paused = false;
        }
    }

    /// Whether the process exited by itself (a crash); reaps it if so.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.reap();
        Some(status)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.reap();
    }
}

/// Copies the child's stdout into its log, handing each line to whoever waits for the
/// start-up line (until they stop listening).
fn copy_stdout(
    stdout: std::process::ChildStdout,
    mut log: std::fs::File,
    tx: mpsc::Sender<String>,
) {
    let mut listening = true;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "stdout: {line}");
        if listening && tx.send(line).is_err() {
            listening = false;
        }
    }
}

/// A free TCP port on 127.0.0.1 (the OS picks it).
pub fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("bind", "127.0.0.1:0", e))
}
