//! The replicated state machine: applies committed entries to the metadata column families.
//!
//! Durability argument:
//! - Each entry's changes and the new `last_applied` go into one `WriteBatch`, so after any
//!   crash the data and `last_applied` agree: an entry is either fully applied (and will not
//!   be applied again) or not at all (and will be re-applied from the log).
//! - After the last entry of a call the WAL is fsynced before `apply` returns; openraft
//!   answers the client only after `apply` returns, so an acknowledged write is on disk.
//! - Applying is deterministic (see [`crate::apply`]): the same entries on any replica give
//!   the same state.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncSeekExt;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{WriteBatch, DB};

use super::snapshot;
use super::snapshot_file::SnapshotFile;
use super::{cf, StoreError, CF_SM_STATE};
use crate::apply;
use crate::types::{NodeId, Response, TypeConfig};

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
/// The current snapshot: its meta and file ([`SnapshotRecord`]).
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// A snapshot install under way ([`SnapshotRecord`]); present only between the moment the
/// received file is durable and the moment the state is replaced.
const KEY_INSTALLING: &[u8] = b"snapshot_installing";
/// Format-1 keys (snapshot held inside RocksDB), removed at start-up.
const KEY_SNAPSHOT_META_V1: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA_V1: &[u8] = b"snapshot_data";

type StorageResult<T> = Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, openraft::BasicNode>;

fn sm_read_err(e: impl Into<StoreError>) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e.into()).into()
}

fn sm_write_err(e: impl Into<StoreError>) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e.into()).into()
}

/// The state machine of one meta node. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    /// Where snapshot files live (`<meta dir>/snapshots`).
    snapshot_dir: PathBuf,
    /// Serializes the storing of snapshots: openraft builds snapshots in a task of their own,
    /// concurrently with installs, and an older build must never replace a newer snapshot.
    snapshot_store: Arc<Mutex<()>>,
    /// Snapshot I/O on the calling task instead of tokio's blocking pool
    /// ([`super::OpenOptions::inline_io`]).
    inline_io: bool,
    counts: Arc<SnapshotCounts>,
}

/// How many snapshots a state machine has built and installed since it was opened.
#[derive(Debug, Default)]
pub struct SnapshotCounts {
    /// Snapshots built from the applied state (log compaction).
    pub built: AtomicU64,
    /// Snapshots received from a leader and installed as the state.
    pub installed: AtomicU64,
}

type SnapMeta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// A snapshot file and what it holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SnapshotRecord {
    meta: SnapMeta,
    /// File name inside the snapshot directory.
    file: String,
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Snapshot(e.to_string())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Runs `work` (blocking file and database I/O) on tokio's blocking pool, or right here when
/// `inline` is set (see [`super::OpenOptions::inline_io`]).
async fn run_blocking<T: Send + 'static>(
    inline: bool,
    what: &'static str,
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if inline {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Snapshot(format!("{what} task: {e}")))?
}

impl StateMachine {
    pub(crate) fn new(
        db: Arc<DB>,
        snapshot_dir: PathBuf,
        inline_io: bool,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&snapshot_dir).map_err(io_err)?;
        let sm = Self {
            db,
            snapshot_dir,
            snapshot_store: Arc::new(Mutex::new(())),
            inline_io,
            counts: Arc::default(),
        };
        sm.recover()?;
        Ok(sm)
    }

    /// Adds `record` as the current snapshot to `batch` unless the stored one is at least as
    /// recent. Returns whether it was added. The caller holds `snapshot_store`.
    fn stage_snapshot(
        &self,
        batch: &mut WriteBatch,
        record: &SnapshotRecord,
    ) -> Result<bool, StoreError> {
        if let Some(stored) = self.get_json::<SnapshotRecord>(KEY_SNAPSHOT)? {
            if stored.meta.last_log_id >= record.meta.last_log_id {
                return Ok(false);
            }
        }
        self.put_json_in(batch, KEY_SNAPSHOT, record)?;
        Ok(true)
    }

    /// Writes a snapshot of the applied state to a new file (fsynced, renamed into place) and
    /// records it as current unless a newer one already is.
    fn build_blocking(&self) -> Result<(SnapMeta, PathBuf), StoreError> {
        // A RocksDB snapshot gives a consistent view of data + last_applied + membership even
        // if entries are applied while we read.
        let view = self.db.snapshot();
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(view.get_cf(cf(&self.db, CF_SM_STATE)?, key)?)
        };
        let last_applied: Option<LogId<NodeId>> = match read(KEY_LAST_APPLIED)? {
            Some(raw) => serde_json::from_slice(&raw)?,
            None => None,
        };
        let last_membership: Membership = match read(KEY_MEMBERSHIP)? {
            Some(raw) => serde_json::from_slice(&raw)?,
            None => Membership::default(),
        };
        let index = last_applied.map_or(0, |l| l.index);
        let started = std::time::Instant::now();
        let nonce: u64 = rand::random();
        let tmp = self.snapshot_dir.join(format!("building-{nonce:016x}.tmp"));
        let file = std::fs::File::create(&tmp).map_err(io_err)?;
        let records = snapshot::write(&self.db, &view, &file)?;
        drop(view);
        file.sync_all().map_err(io_err)?;
        let name = format!("snapshot-{index:020}-{nonce:016x}.snap");
        let path = self.snapshot_dir.join(&name);
        std::fs::rename(&tmp, &path).map_err(io_err)?;
        sync_dir(&self.snapshot_dir)?;
        let record = SnapshotRecord {
            meta: SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
                snapshot_id: format!("{index}-{nonce:016x}"),
            },
            file: name,
        };
        {
            let _guard = self
                .snapshot_store
                .lock()
                .map_err(|_| StoreError::LockPoisoned("snapshot store"))?;
            let mut batch = WriteBatch::default();
            if self.stage_snapshot(&mut batch, &record)? {
                self.db.write(batch)?;
                self.db.flush_wal(true)?;
                self.remove_stale_files(false)?;
            }
        }
        self.counts.built.fetch_add(1, Ordering::Relaxed);
        let bytes = file.metadata().map_or(0, |m| m.len());
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            index,
            records,
            bytes,
            elapsed_ms,
            file = %record.file,
            "built a meta snapshot"
        );
        Ok((record.meta, path))
    }

    /// Verifies and stores a received snapshot, then makes it the state: the install is
    /// first recorded (fsynced) and then carried out, so a crash in between is finished at
    /// the next start ([`StateMachine::recover`]).
    fn install_blocking(&self, meta: SnapMeta, received: std::fs::File) -> Result<(), StoreError> {
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let started = std::time::Instant::now();
        let nonce: u64 = rand::random();
        let tmp = self
            .snapshot_dir
            .join(format!("installing-{nonce:016x}.tmp"));
        let copy = std::fs::File::create(&tmp).map_err(io_err)?;
        if let Err(e) = snapshot::copy_verified(received, &copy) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        copy.sync_all().map_err(io_err)?;
        let verified_ms = started.elapsed().as_millis() as u64;
        let name = format!("snapshot-{index:020}-{nonce:016x}.snap");
        std::fs::rename(&tmp, self.snapshot_dir.join(&name)).map_err(io_err)?;
        sync_dir(&self.snapshot_dir)?;
        let record = SnapshotRecord { meta, file: name };
        let _guard = self
            .snapshot_store
            .lock()
            .map_err(|_| StoreError::LockPoisoned("snapshot store"))?;
        let mut batch = WriteBatch::default();
        self.put_json_in(&mut batch, KEY_INSTALLING, &record)?;
        self.db.write(batch)?;
        self.db.flush_wal(true)?;
        self.finish_install(&record)?;
        self.remove_stale_files(false)?;
        self.counts.installed.fetch_add(1, Ordering::Relaxed);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            index,
            verified_ms,
            elapsed_ms,
            file = %record.file,
            "installed a meta snapshot"
        );
        Ok(())
    }

    /// Restores the recorded snapshot and, in one synced batch, sets `last_applied`,
    /// membership and the current snapshot and clears the install record.
    fn finish_install(&self, record: &SnapshotRecord) -> Result<(), StoreError> {
        snapshot::restore(&self.db, &self.snapshot_dir.join(&record.file))?;
        let mut batch = WriteBatch::default();
        self.put_json_in(&mut batch, KEY_LAST_APPLIED, &record.meta.last_log_id)?;
        self.put_json_in(&mut batch, KEY_MEMBERSHIP, &record.meta.last_membership)?;
        self.put_json_in(&mut batch, KEY_SNAPSHOT, record)?;
        batch.delete_cf(cf(&self.db, CF_SM_STATE)?, KEY_INSTALLING);
        self.db.write(batch)?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// Start-up: finishes an install a crash interrupted and removes files no record names.
    fn recover(&self) -> Result<(), StoreError> {
        if let Some(pending) = self.get_json::<SnapshotRecord>(KEY_INSTALLING)? {
            tracing::warn!(file = %pending.file, "finishing a snapshot install interrupted by a crash");
            self.finish_install(&pending)?;
        }
        // Format-1 snapshots lived inside RocksDB; they are superseded by files.
        let state = cf(&self.db, CF_SM_STATE)?;
        self.db.delete_cf(state, KEY_SNAPSHOT_META_V1)?;
        self.db.delete_cf(state, KEY_SNAPSHOT_DATA_V1)?;
        self.remove_stale_files(true)
    }

    /// Deletes snapshot files that are not the current one (and, at start-up, temporaries of
    /// builds and installs that never finished). A file still open for sending stays readable
    /// until closed on Unix; elsewhere a failed delete is retried next time.
    fn remove_stale_files(&self, startup: bool) -> Result<(), StoreError> {
        let current = self
            .get_json::<SnapshotRecord>(KEY_SNAPSHOT)?
            .map(|r| r.file);
        let entries = std::fs::read_dir(&self.snapshot_dir).map_err(io_err)?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = (name.ends_with(".snap") && current.as_deref() != Some(name.as_str()))
                || (startup && name.ends_with(".tmp"));
            if stale {
                if let Err(e) = std::fs::remove_file(entry.path()) {
                    tracing::debug!(file = %name, error = %e, "could not remove an old snapshot file yet");
                }
            }
        }
        Ok(())
    }

    /// The snapshot counters of this state machine (shared: they keep counting once the
    /// state machine is handed to Raft).
    pub fn snapshot_counts(&self) -> Arc<SnapshotCounts> {
        self.counts.clone()
    }

    /// Opens a snapshot file for openraft to stream.
    fn open_snapshot(&self, path: &Path) -> Result<SnapshotFile, StoreError> {
        let file = std::fs::File::open(path).map_err(io_err)?;
        Ok(SnapshotFile::new(file, self.inline_io))
    }

    /// The database this state machine writes; readers share it.
    pub(crate) fn db(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// A reader of the state this state machine has applied (not linearizable by itself:
    /// see [`crate::group::Group::linearizable_reader`]).
    pub fn reader(&self) -> super::MetaReader {
        super::MetaReader::new(self.db.clone())
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let cf = cf(&self.db, CF_SM_STATE)?;
        match self.db.get_cf(cf, key)? {
            Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
            None => Ok(None),
        }
    }

    fn put_json_in<T: serde::Serialize>(
        &self,
        batch: &mut WriteBatch,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let cf = cf(&self.db, CF_SM_STATE)?;
        batch.put_cf(cf, key, serde_json::to_vec(value)?);
        Ok(())
    }

    fn apply_one(&self, entry: Entry<TypeConfig>) -> Result<Response, StoreError> {
        let mut batch = WriteBatch::default();
        let response = match entry.payload {
            EntryPayload::Blank => Response::Empty,
            EntryPayload::Normal(request) => {
                apply::apply(&self.db, &mut batch, entry.log_id.index, &request)?
            }
            EntryPayload::Membership(membership) => {
                let stored = Membership::new(Some(entry.log_id), membership);
                self.put_json_in(&mut batch, KEY_MEMBERSHIP, &stored)?;
                Response::Empty
            }
        };
        // Same batch as the data: `last_applied` can never run ahead of or behind the state.
        self.put_json_in(&mut batch, KEY_LAST_APPLIED, &Some(entry.log_id))?;
        self.db.write(batch)?;
        Ok(response)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let this = self.clone();
        let (meta, path) = run_blocking(self.inline_io, "build", move || this.build_blocking())
            .await
            .map_err(sm_read_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(self.open_snapshot(&path).map_err(sm_read_err)?),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, Membership)> {
        let last_applied = self
            .get_json::<Option<LogId<NodeId>>>(KEY_LAST_APPLIED)
            .map_err(sm_read_err)?
            .flatten();
        let membership = self
            .get_json::<Membership>(KEY_MEMBERSHIP)
            .map_err(sm_read_err)?
            .unwrap_or_default();
        Ok((last_applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let response = self
                .apply_one(entry)
                .map_err(|e| StorageError::from(StorageIOError::apply(log_id, &e)))?;
            responses.push(response);
        }
        // One fsync for the whole call: every batch above is in the WAL in order, so the
        // sync makes all of them durable before any client hears of them.
        self.db.flush_wal(true).map_err(sm_write_err)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<SnapshotFile>> {
        // An anonymous file: chunks land on disk, not in memory, and a crash leaves nothing.
        let file = tempfile::tempfile_in(&self.snapshot_dir)
            .map_err(|e| sm_write_err(StoreError::Snapshot(format!("receive file: {e}"))))?;
        // With "installed a meta snapshot", this dates the transfer (Jepsen finding 11).
        tracing::info!("receiving a meta snapshot");
        Ok(Box::new(SnapshotFile::new(file, self.inline_io)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<SnapshotFile>,
    ) -> StorageResult<()> {
        let mut received = *snapshot;
        received
            .seek(std::io::SeekFrom::Start(0))
            .await
            .map_err(|e| sm_write_err(StoreError::Snapshot(e.to_string())))?;
        let received = received.into_std().await;
        let this = self.clone();
        let meta = meta.clone();
        run_blocking(self.inline_io, "install", move || {
            this.install_blocking(meta, received)
        })
        .await
        .map_err(sm_write_err)
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let Some(current) = self
            .get_json::<SnapshotRecord>(KEY_SNAPSHOT)
            .map_err(sm_read_err)?
        else {
            return Ok(None);
        };
        let path = self.snapshot_dir.join(&current.file);
        match self.open_snapshot(&path) {
            Ok(file) => Ok(Some(Snapshot {
                meta: current.meta,
                snapshot: Box::new(file),
            })),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the current snapshot file cannot be opened");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn record_at(index: u64) -> SnapshotRecord {
        SnapshotRecord {
            meta: SnapMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
                last_membership: Membership::default(),
                snapshot_id: format!("s-{index}"),
            },
            file: format!("s-{index}.snap"),
        }
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = super::super::open(dir.path())?;
        let mut batch = WriteBatch::default();
        assert!(sm.stage_snapshot(&mut batch, &record_at(200))?);
        sm.db.write(batch)?;
        let mut batch = WriteBatch::default();
        assert!(!sm.stage_snapshot(&mut batch, &record_at(100))?);
        assert!(batch.is_empty());
        let stored = sm.get_json::<SnapshotRecord>(KEY_SNAPSHOT)?;
        assert_eq!(
            stored.and_then(|r| r.meta.last_log_id).map(|l| l.index),
            Some(200)
        );
        Ok(())
    }

    #[test]
    fn an_install_interrupted_by_a_crash_is_finished_at_start_up() -> Result<(), StoreError> {
        let tmp = tempfile::tempdir().map_err(io_err)?;
        let (_, source) = super::super::open(&tmp.path().join("a"))?;
        let buckets = cf(&source.db, crate::store::CF_BUCKETS)?;
        source.db.put_cf(buckets, b"bucket", b"record")?;
        let applied = Some(LogId::new(CommittedLeaderId::new(3, 1), 42));
        let mut batch = WriteBatch::default();
        source.put_json_in(&mut batch, KEY_LAST_APPLIED, &applied)?;
        source.db.write(batch)?;
        let (meta, path) = source.build_blocking()?;

        // The crash came after the received file was durable and the install recorded, before
        // the state was replaced.
        let target_dir = tmp.path().join("b");
        {
            let (_, target) = super::super::open(&target_dir)?;
            let name = "snapshot-received.snap".to_string();
            std::fs::copy(&path, target.snapshot_dir.join(&name)).map_err(io_err)?;
            let mut batch = WriteBatch::default();
            target.put_json_in(
                &mut batch,
                KEY_INSTALLING,
                &SnapshotRecord { meta, file: name },
            )?;
            target.db.write(batch)?;
        }
        let (_, target) = super::super::open(&target_dir)?;
        let buckets = cf(&target.db, crate::store::CF_BUCKETS)?;
        assert_eq!(
            target.db.get_cf(buckets, b"bucket")?.as_deref(),
            Some(&b"record"[..])
        );
        assert!(target.get_json::<SnapshotRecord>(KEY_INSTALLING)?.is_none());
        assert_eq!(
            target
                .get_json::<Option<LogId<NodeId>>>(KEY_LAST_APPLIED)?
                .flatten(),
            applied
        );
        Ok(())
    }
}
