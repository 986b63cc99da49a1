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

use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{WriteBatch, DB};

use super::snapshot;
use super::{cf, StoreError, CF_SM_STATE};
use crate::apply;
use crate::types::{NodeId, Response, TypeConfig};

const KEY_LAST_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

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
    /// Serializes the storing of snapshots: openraft builds snapshots in a task of their own,
    /// concurrently with installs, and an older build must never replace a newer snapshot.
    snapshot_store: Arc<Mutex<()>>,
}

type SnapMeta = SnapshotMeta<NodeId, openraft::BasicNode>;

impl StateMachine {
    pub(crate) fn new(db: Arc<DB>) -> Result<Self, StoreError> {
        Ok(Self {
            db,
            snapshot_store: Arc::new(Mutex::new(())),
        })
    }

    /// Adds the snapshot to `batch` unless the stored one is at least as recent. Returns
    /// whether it was added. The caller holds `snapshot_store`.
    fn stage_snapshot(
        &self,
        batch: &mut WriteBatch,
        meta: &SnapMeta,
        data: &[u8],
    ) -> Result<bool, StoreError> {
        if let Some(stored) = self.get_json::<SnapMeta>(KEY_SNAPSHOT_META)? {
            if stored.last_log_id >= meta.last_log_id {
                return Ok(false);
            }
        }
        self.put_json_in(batch, KEY_SNAPSHOT_META, meta)?;
        batch.put_cf(cf(&self.db, CF_SM_STATE)?, KEY_SNAPSHOT_DATA, data);
        Ok(true)
    }

    /// The database this state machine writes; readers share it.
    pub(crate) fn db(&self) -> Arc<DB> {
        self.db.clone()
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
        // A RocksDB snapshot gives a consistent view of data + last_applied + membership even
        // if entries are applied while we read.
        let view = self.db.snapshot();
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(view.get_cf(cf(&self.db, CF_SM_STATE)?, key)?)
        };
        let last_applied: Option<LogId<NodeId>> =
            match read(KEY_LAST_APPLIED).map_err(sm_read_err)? {
                Some(raw) => serde_json::from_slice(&raw).map_err(sm_read_err)?,
                None => None,
            };
        let last_membership: Membership = match read(KEY_MEMBERSHIP).map_err(sm_read_err)? {
            Some(raw) => serde_json::from_slice(&raw).map_err(sm_read_err)?,
            None => Membership::default(),
        };
        let data = snapshot::serialize(&self.db, &view).map_err(sm_read_err)?;
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        drop(view);
        {
            let _guard = self
                .snapshot_store
                .lock()
                .map_err(|_| sm_write_err(StoreError::LockPoisoned("snapshot store")))?;
            let mut batch = WriteBatch::default();
            if self
                .stage_snapshot(&mut batch, &meta, &data)
                .map_err(sm_write_err)?
            {
                self.db.write(batch).map_err(sm_write_err)?;
                self.db.flush_wal(true).map_err(sm_write_err)?;
            }
        }
        Ok(Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(data)),
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

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<std::io::Cursor<Vec<u8>>>> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        // Replace the data, last_applied and membership in one batch: a crash leaves either
        // the old state or the snapshot's, never a mix.
        let mut batch = WriteBatch::default();
        snapshot::restore_into(&self.db, &mut batch, &data).map_err(sm_write_err)?;
        self.put_json_in(&mut batch, KEY_LAST_APPLIED, &meta.last_log_id)
            .map_err(sm_write_err)?;
        self.put_json_in(&mut batch, KEY_MEMBERSHIP, &meta.last_membership)
            .map_err(sm_write_err)?;
        let _guard = self
            .snapshot_store
            .lock()
            .map_err(|_| sm_write_err(StoreError::LockPoisoned("snapshot store")))?;
        self.stage_snapshot(&mut batch, meta, &data)
            .map_err(sm_write_err)?;
        self.db.write(batch).map_err(sm_write_err)?;
        self.db.flush_wal(true).map_err(sm_write_err)
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let Some(meta) = self
            .get_json::<SnapMeta>(KEY_SNAPSHOT_META)
            .map_err(sm_read_err)?
        else {
            return Ok(None);
        };
        let data = self
            .db
            .get_cf(
                cf(&self.db, CF_SM_STATE).map_err(sm_read_err)?,
                KEY_SNAPSHOT_DATA,
            )
            .map_err(sm_read_err)?
            .unwrap_or_default();
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(std::io::Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn meta_at(index: u64) -> SnapMeta {
        SnapMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            last_membership: Membership::default(),
            snapshot_id: format!("s-{index}"),
        }
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = super::super::open(dir.path())?;
        let mut batch = WriteBatch::default();
        assert!(sm.stage_snapshot(&mut batch, &meta_at(200), b"new")?);
        sm.db.write(batch)?;
        let mut batch = WriteBatch::default();
        assert!(!sm.stage_snapshot(&mut batch, &meta_at(100), b"old")?);
        assert!(batch.is_empty());
        let stored = sm.get_json::<SnapMeta>(KEY_SNAPSHOT_META)?;
        assert_eq!(
            stored.and_then(|m| m.last_log_id).map(|l| l.index),
            Some(200)
        );
        Ok(())
    }
}
