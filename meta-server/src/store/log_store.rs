//! The Raft log and vote, in RocksDB.
//!
//! Durability argument, step by step (openraft's storage contract):
//! - `save_vote` returns only after the vote is in the WAL and the WAL is fsynced
//!   (`flush_wal(true)`): a node that forgets its vote after a crash could vote twice in a term.
//! - `append` writes the entries in one batch, fsyncs the WAL, and only then calls
//!   `log_io_completed`: openraft counts an entry towards the commit quorum only after that
//!   callback, so an acknowledged entry is on disk on a majority.
//! - `truncate` and `purge` are synced too: a truncated suffix that came back after a crash
//!   could conflict with the leader's log; `purge` records `last_purged` before deleting so a
//!   crash in between leaves a log whose start is known.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::{cf, StoreError, CF_RAFT_LOG, CF_RAFT_STATE};
use crate::types::{NodeId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_LAST_PURGED: &[u8] = b"last_purged";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_CLUSTER_ID: &[u8] = b"cluster_id";
const KEY_NODE_ID: &[u8] = b"node_id";

/// The log store of one meta node. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl Into<StoreError>) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e.into()).into()
}

fn write_err(e: impl Into<StoreError>) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e.into()).into()
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let cf = cf(&self.db, CF_RAFT_STATE)?;
        match self.db.get_cf(cf, key)? {
            Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
            None => Ok(None),
        }
    }

    /// Writes one raft-state value and fsyncs the WAL before returning.
    fn put_state_synced<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let cf = cf(&self.db, CF_RAFT_STATE)?;
        self.db.put_cf(cf, key, serde_json::to_vec(value)?)?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    /// True when this node has never voted nor logged anything: the only state in which
    /// `initialize` may run.
    pub fn is_pristine(&self) -> Result<bool, StoreError> {
        let vote: Option<Vote<NodeId>> = self.get_state(KEY_VOTE)?;
        let cf = cf(&self.db, CF_RAFT_LOG)?;
        let has_log = self
            .db
            .iterator_cf(cf, IteratorMode::Start)
            .next()
            .is_some();
        let purged: Option<LogId<NodeId>> = self.get_state(KEY_LAST_PURGED)?;
        Ok(vote.is_none() && !has_log && purged.is_none())
    }

    /// The id of the cluster this node belongs to, once it has one.
    pub fn cluster_id(&self) -> Result<Option<String>, StoreError> {
        self.get_state(KEY_CLUSTER_ID)
    }

    /// Records the cluster id (fsynced): set once, when the node first joins a cluster.
    pub fn set_cluster_id(&self, id: &str) -> Result<(), StoreError> {
        self.put_state_synced(KEY_CLUSTER_ID, &id)
    }

    /// The Raft id of the node this directory belongs to, once it has one. Stored with the
    /// data so that a directory keeps its identity whatever order directories are given in.
    pub fn node_id(&self) -> Result<Option<NodeId>, StoreError> {
        self.get_state(KEY_NODE_ID)
    }

    /// Records this directory's node id (fsynced).
    pub fn set_node_id(&self, id: NodeId) -> Result<(), StoreError> {
        self.put_state_synced(KEY_NODE_ID, &id)
    }

    fn last_log_id(&self) -> Result<Option<LogId<NodeId>>, StoreError> {
        let cf = cf(&self.db, CF_RAFT_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, raw) = item?;
                let entry: Entry<TypeConfig> = serde_json::from_slice(&raw)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let cf = cf(&self.db, CF_RAFT_LOG).map_err(read_err)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (key, raw) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| read_err(StoreError::MissingColumnFamily("raft_log key")))?,
            );
            if !range.contains(&index) {
                break;
            }
            out.push(serde_json::from_slice(&raw).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            self.get_state(KEY_LAST_PURGED).map_err(read_err)?;
        let last_log_id = self.last_log_id().map_err(read_err)?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        self.put_state_synced(KEY_VOTE, vote)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.get_state(KEY_VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        self.put_state_synced(KEY_COMMITTED, &committed)
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self
            .get_state::<Option<LogId<NodeId>>>(KEY_COMMITTED)
            .map_err(read_err)?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = cf(&self.db, CF_RAFT_LOG).map_err(write_err)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let raw = serde_json::to_vec(&entry).map_err(write_err)?;
            batch.put_cf(cf, index_key(entry.log_id.index), raw);
        }
        self.db.write(batch).map_err(write_err)?;
        // The entries count towards the commit quorum only once the WAL holding them is
        // fsynced; report completion only after that.
        let flushed = self.db.flush_wal(true);
        let result = flushed
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(result);
        flushed.map_err(write_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let cf = cf(&self.db, CF_RAFT_LOG).map_err(write_err)?;
        self.db
            .delete_range_cf(cf, index_key(log_id.index), index_key(u64::MAX))
            .map_err(write_err)?;
        // delete_range's end is exclusive: remove a possible entry at u64::MAX explicitly.
        self.db
            .delete_cf(cf, index_key(u64::MAX))
            .map_err(write_err)?;
        self.db.flush_wal(true).map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        // Record the new log start first: a crash between the two steps leaves entries that
        // are merely unreachable, never a log whose first entry is unknown.
        self.put_state_synced(KEY_LAST_PURGED, &log_id)
            .map_err(write_err)?;
        let cf = cf(&self.db, CF_RAFT_LOG).map_err(write_err)?;
        self.db
            .delete_range_cf(cf, index_key(0), index_key(log_id.index.saturating_add(1)))
            .map_err(write_err)?;
        self.db.flush_wal(true).map_err(write_err)
    }
}
