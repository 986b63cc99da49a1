//! The meta node's RocksDB: one database, one column family per concern.
//!
//! | column family | holds | written by |
//! |---|---|---|
//! | `raft_log`   | log entries, key = index (u64 BE)          | [`LogStore`] |
//! | `raft_state` | vote, last purged log id, committed id     | [`LogStore`] |
//! | `sm_state`   | last applied log id, membership, current snapshot file | [`StateMachine`] |
//! | `buckets`, `objects`, `blob_nodes` | the metadata itself | [`StateMachine`] |
//! | `uploads`    | upload id -> the version its commit made (retries are no-ops) | [`StateMachine`] |
//! | `multipart`  | multipart uploads in progress, their parts and committed part attempts | [`StateMachine`] |
//! | `cluster`    | cluster-wide settings: the cluster secret | [`StateMachine`] |
//! | `iam`        | S3 users (`u/<access key>`) and custom policies (`p/<name>`) | [`StateMachine`] |
//!
//! The log and the state machine share the database (and so its write-ahead log) but never a
//! column family: purging or truncating the log cannot touch applied state.

mod log_store;
mod reads;
mod snapshot;
mod snapshot_file;
mod state_machine;

use std::path::Path;
use std::sync::Arc;

pub use log_store::LogStore;
pub use reads::{ListPage, MetaReader, UploadsPage, VersionsPage, VersionsQuery};
pub use snapshot_file::SnapshotFile;
pub use state_machine::{SnapshotCounts, StateMachine};

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

pub(crate) const CF_RAFT_LOG: &str = "raft_log";
pub(crate) const CF_RAFT_STATE: &str = "raft_state";
pub(crate) const CF_SM_STATE: &str = "sm_state";
pub(crate) const CF_BUCKETS: &str = "buckets";
pub(crate) const CF_OBJECTS: &str = "objects";
pub(crate) const CF_BLOB_NODES: &str = "blob_nodes";
pub(crate) const CF_UPLOADS: &str = "uploads";
pub(crate) const CF_MULTIPART: &str = "multipart";
pub(crate) const CF_CLUSTER: &str = "cluster";
/// Heal queue and heal statistics (see `apply::heal`).
pub(crate) const CF_HEAL: &str = "heal";
/// PlanPut attempt id of a committed multipart part -> its upload (bucket, key, upload id):
/// lets garbage collection find what a part's shard file belongs to.
pub(crate) const CF_PART_OWNERS: &str = "part_owners";
/// Shard keys that garbage collection declared garbage: never committed afterwards.
pub(crate) const CF_TOMBSTONES: &str = "gc_tombstones";
/// S3 users and custom policies (see `apply::iam`). Secrets are stored in the clear.
pub(crate) const CF_IAM: &str = "iam";

/// Directory (inside the meta directory) of snapshot files.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// The column families that make up the replicated state (what a snapshot carries). A
/// snapshot names each by its index here, so new ones are only ever appended.
pub(crate) const DATA_CFS: [&str; 10] = [
    CF_BUCKETS,
    CF_OBJECTS,
    CF_BLOB_NODES,
    CF_UPLOADS,
    CF_MULTIPART,
    CF_CLUSTER,
    CF_HEAL,
    CF_PART_OWNERS,
    CF_TOMBSTONES,
    CF_IAM,
];

/// Failure to open or use the meta store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A column family is missing from an opened database.
    #[error("column family {0} missing")]
    MissingColumnFamily(&'static str),
    /// A stored record did not decode.
    #[error("bad record: {0}")]
    Record(#[from] crate::records::RecordError),
    /// A lock was poisoned by a panic in another thread.
    #[error("lock poisoned: {0}")]
    LockPoisoned(&'static str),
    /// Serialized Raft state did not decode.
    #[error("bad raft state: {0}")]
    Json(#[from] serde_json::Error),
    /// A snapshot file could not be written, read or verified.
    #[error("snapshot: {0}")]
    Snapshot(String),
}

/// How [`open_with`] opens the meta database.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Keep every write-ahead-log record in RocksDB's own buffer until the store calls
    /// `flush_wal(true)` (RocksDB's `manual_wal_flush`). The store syncs the WAL before every
    /// acknowledgement anyway, so this changes no guarantee; what it changes is that the
    /// database's files then hold exactly what was synced. The deterministic simulation
    /// (`jepsen-tests/src/sim`) copies them at a simulated power loss: what was written but
    /// not synced is lost, as on a real machine.
    pub manual_wal_flush: bool,
    /// Do snapshot I/O (building, receiving, installing, streaming) on the task that asks for
    /// it instead of tokio's blocking pool, whose real threads would make a simulated run's
    /// interleaving depend on the machine (see `snapshot_file`). It blocks the runtime thread
    /// for the duration: for the simulation only, never a server.
    pub inline_io: bool,
    /// Never `fallocate` files ahead of their writes (RocksDB's `allow_fallocate = false`).
    /// RocksDB reserves tens of MiB ahead of each write-ahead log and trims it when the log is
    /// closed; on a disk that saves metadata updates at each sync, but on the simulation's RAM
    /// disk every reservation allocates and frees real pages, which was most of a simulated
    /// run's system time (`perf`: `fallocate` and `ftruncate` under `shmem_*`).
    pub no_fallocate: bool,
}

/// Opens (creating if needed) the meta database in `dir` and returns the log store and the
/// state machine over it.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachine), StoreError> {
    open_with(dir, OpenOptions::default())
}

/// [`open`] with options.
pub fn open_with(dir: &Path, options: OpenOptions) -> Result<(LogStore, StateMachine), StoreError> {
    let mut opts = if options.no_fallocate {
        Options::default().get_options_from_string("allow_fallocate=false")?
    } else {
        Options::default()
    };
    opts.set_manual_wal_flush(options.manual_wal_flush);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_RAFT_LOG, CF_RAFT_STATE, CF_SM_STATE]
        .into_iter()
        .chain(DATA_CFS)
        .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
    let db = Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?);
    Ok((
        LogStore::new(db.clone()),
        StateMachine::new(db, dir.join(SNAPSHOT_DIR), options.inline_io)?,
    ))
}

/// Looks up a column family handle that [`open`] guarantees exists.
/// Read options that confine an iterator to keys starting with `prefix`.
///
/// Why: RocksDB keeps a deleted key as a tombstone until compaction, and a seek or `next`
/// without an upper bound steps over every tombstone until it finds a live key, wherever
/// that is. Per-key scans (the versions of one object) then cost as much as the deleted
/// keys that follow it: deleting 100,000 objects in random order took minutes of CPU. With
/// the bound, the iterator stops at the end of the prefix.
pub(crate) fn within(prefix: &[u8]) -> rocksdb::ReadOptions {
    let mut opts = rocksdb::ReadOptions::default();
    if let Some(end) = crate::keys::prefix_successor(prefix) {
        opts.set_iterate_upper_bound(end);
    }
    opts
}

pub(crate) fn cf<'a>(
    db: &'a DB,
    name: &'static str,
) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or(StoreError::MissingColumnFamily(name))
}
