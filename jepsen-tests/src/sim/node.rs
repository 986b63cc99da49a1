//! One simulated meta node: Cairn's real log store, state machine and read batcher under
//! openraft, on a RocksDB directory of its own, reachable through the [`SimNet`].
//!
//! Two kinds of crash: a *process crash* keeps everything the node wrote (the operating
//! system still has it), a *power loss* keeps only what was fsynced. The store is opened
//! with RocksDB's manual WAL flush, so its files hold exactly what the store synced; a
//! power loss copies them, as they are at that instant, to the directory the node restarts
//! from, and the old directory (with whatever the dying process flushes on its way out) is
//! abandoned.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_meta::read_batch::ReadBatcher;
use cairn_meta::store::{self, MetaReader, OpenOptions, SnapshotCounts};
use cairn_meta::types::{NodeId, Raft};

use super::net::SimNet;
use crate::{Error, Result};

/// Heartbeat interval of every simulated node, milliseconds.
pub const HEARTBEAT_MS: u64 = 50;

/// A node's parts while it runs.
pub struct Running {
    /// Its Raft handle.
    pub raft: Raft,
    /// Reads of its applied state.
    pub reader: MetaReader,
    /// Its linearizable-read batcher (the production read path on a leader).
    pub reads: ReadBatcher,
    /// Snapshots its state machine built and installed since this start.
    snapshots: Arc<SnapshotCounts>,
}

/// One meta node of the simulation.
pub struct SimNode {
    /// Raft id.
    pub id: NodeId,
    /// Fixed election timeout (see [`raft_config`]).
    pub election_timeout_ms: u64,
    /// Log entries between snapshots, and how many are kept behind each (see
    /// [`raft_config`]).
    pub snapshot_logs: (u64, u64),
    /// Snapshots built and installed by earlier starts.
    snapshots_before: (u64, u64),
    /// The directory it runs on (changes at each power loss).
    dir: PathBuf,
    /// Where power-loss copies go.
    base: PathBuf,
    /// Power losses so far (names the copies).
    losses: u32,
    /// Present while it runs.
    pub running: Option<Running>,
    /// A planted bug: the disk acknowledges fsyncs it has not done, so a power loss also
    /// takes the last [`LIED_BYTES`] of the write-ahead log.
    pub lying_disk: bool,
}

/// How much of the write-ahead log a lying disk loses at a power loss: a few of the last
/// acknowledged log appends and applies.
pub const LIED_BYTES: u64 = 4096;

/// The Raft configuration of one node: the production one (`cairn_meta::raft_config`,
/// compacting every `interval` entries), with faster timers and `keep` entries of log left
/// behind each snapshot (production keeps a whole interval; the simulation draws less too,
/// so that lagging nodes are often caught up by a snapshot). openraft draws each election
/// timeout at random from `election_timeout_min..election_timeout_max` with a generator the
/// seed does not reach, so the simulation gives each node a range of one value, itself drawn
/// from the seed: timeouts still differ between nodes (which is what breaks split votes),
/// and a seed fixes them.
pub fn raft_config(
    election_timeout_ms: u64,
    (interval, keep): (u64, u64),
) -> Result<Arc<openraft::Config>> {
    let production = cairn_meta::raft_config("sim", interval)
        .map_err(|e| Error::Sim(format!("raft config: {e}")))?;
    let config = openraft::Config {
        heartbeat_interval: HEARTBEAT_MS,
        election_timeout_min: election_timeout_ms,
        election_timeout_max: election_timeout_ms + 1,
        max_in_snapshot_log_to_keep: keep,
        ..(*production).clone()
    };
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| Error::Sim(format!("raft config: {e}")))?,
    ))
}

impl SimNode {
    /// A node that is not running yet, with its data under `base`.
    pub fn new(
        id: NodeId,
        election_timeout_ms: u64,
        snapshot_logs: (u64, u64),
        base: &Path,
    ) -> Self {
        Self {
            id,
            election_timeout_ms,
            snapshot_logs,
            snapshots_before: (0, 0),
            dir: base.join(format!("node-{id}")),
            base: base.to_path_buf(),
            losses: 0,
            running: None,
            lying_disk: false,
        }
    }

    /// Opens the node's store and starts its Raft. A store still held by the previous
    /// incarnation's last tasks (they end within a few scheduler turns) is retried.
    pub async fn start(&mut self, net: &SimNet) -> Result<()> {
        let mut attempts = 0;
        let (log, sm) = loop {
            let options = OpenOptions {
                manual_wal_flush: true,
                inline_io: true,
                no_fallocate: true,
            };
            match store::open_with(&self.dir, options) {
                Ok(opened) => break opened,
                Err(e) if attempts < 100 => {
                    attempts += 1;
                    tracing::debug!(node = self.id, error = %e, "store still held; retrying");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => return Err(Error::Sim(format!("node {}: open store: {e}", self.id))),
            }
        };
        let reader = sm.reader();
        let snapshots = sm.snapshot_counts();
        let config = raft_config(self.election_timeout_ms, self.snapshot_logs)?;
        let raft = Raft::new(self.id, config, net.factory(self.id), log, sm)
            .await
            .map_err(|e| Error::Sim(format!("node {}: raft: {e}", self.id)))?;
        let reads = ReadBatcher::spawn(self.id, raft.clone());
        net.attach(self.id, raft.clone());
        self.running = Some(Running {
            raft,
            reader,
            reads,
            snapshots,
        });
        Ok(())
    }

    /// Stops the node at once. With `power_loss`, what the store had not fsynced is lost.
    pub async fn crash(&mut self, net: &SimNet, power_loss: bool) -> Result<()> {
        net.detach(self.id);
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        if power_loss {
            self.losses += 1;
            let copy = self
                .base
                .join(format!("node-{}-loss-{}", self.id, self.losses));
            copy_stable(&self.dir, &copy)?;
            if self.lying_disk {
                cut_wal_tail(&copy, LIED_BYTES)?;
            }
            self.dir = copy;
        }
        let _ = running.raft.shutdown().await;
        self.snapshots_before = counted(self.snapshots_before, &running.snapshots);
        drop(running);
        Ok(())
    }

    /// Snapshots this node has built and installed, over all its starts.
    pub fn snapshots(&self) -> (u64, u64) {
        match &self.running {
            Some(r) => counted(self.snapshots_before, &r.snapshots),
            None => self.snapshots_before,
        }
    }

    /// Whether the node runs.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

/// `(built, installed)` earlier plus what `counts` has counted since.
fn counted((built, installed): (u64, u64), counts: &SnapshotCounts) -> (u64, u64) {
    (
        built + counts.built.load(Ordering::Relaxed),
        installed + counts.installed.load(Ordering::Relaxed),
    )
}

/// Copies the node's directory `from` to `to` as one consistent picture, retrying until one
/// is taken.
///
/// Why retry: RocksDB's own background threads (memtable flushes, removal of obsolete files)
/// run beside the simulation, so a file listed may be gone when it is read, or a new table
/// file and the MANIFEST edit naming it may appear during the copy. A copy is kept only when
/// every listed file was read and a second listing afterwards finds the same files; those
/// threads change nothing a node sees (flushes move data between files, never its content),
/// so the retries cost time, never determinism.
fn copy_stable(from: &Path, to: &Path) -> Result<()> {
    let mut last = String::new();
    for _ in 0..100 {
        let _ = std::fs::remove_dir_all(to);
        match copy_dir(from, to) {
            Ok(listed) if listed == list_tree(from).unwrap_or_default() => return Ok(()),
            Ok(_) => last = "the files changed during the copy".into(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Sim(format!(
        "power-loss copy of {}: no stable copy after 100 attempts: {last}",
        from.display()
    )))
}

/// Copies the files of `from`, and of its subdirectories (snapshot files), to `to`; returns
/// the relative paths copied, sorted. A snapshot file is copied as it is, synced or not; the
/// store syncs each one before it names it, and a snapshot being received is an anonymous
/// file, so no unsynced file is ever used.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<Vec<PathBuf>> {
    let files = list_tree(from)?;
    std::fs::create_dir_all(to)?;
    for file in &files {
        let target = to.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from.join(file), target)?;
    }
    Ok(files)
}

/// The relative paths of the files under `dir`, sorted.
fn list_tree(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for name in list_dir(dir)? {
        let path = dir.join(&name);
        if path.is_dir() {
            files.extend(list_tree(&path)?.into_iter().map(|p| name.join(p)));
        } else {
            files.push(name);
        }
    }
    files.sort();
    Ok(files)
}

/// The names in `dir`, sorted.
fn list_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| PathBuf::from(e.file_name())))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Shortens the newest write-ahead log file in `dir` by `bytes` (the planted lying disk).
fn cut_wal_tail(dir: &Path, bytes: u64) -> Result<()> {
    let io = |e: std::io::Error| Error::io("cut the WAL in", dir, e);
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    if let Some(newest) = logs.last() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(newest)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        file.set_len(len.saturating_sub(bytes)).map_err(io)?;
    }
    Ok(())
}
