//! Serialization of the replicated data column families into a snapshot and back.
//!
//! Layout (format 1): a header byte `1`, then records `cf index (u8) | key len (u32 LE) | key |
//! value len (u32 LE) | value` in column-family then key order. The whole snapshot is held in
//! memory today; shipping RocksDB checkpoints in chunks is the cluster issue's work.

use rocksdb::{IteratorMode, ReadOptions, SnapshotWithThreadMode, WriteBatch, DB};

use super::{cf, StoreError, DATA_CFS};

const SNAPSHOT_FORMAT_V1: u8 = 1;

/// Reads every data column family as seen by `view`.
pub(super) fn serialize(
    db: &DB,
    view: &SnapshotWithThreadMode<'_, DB>,
) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![SNAPSHOT_FORMAT_V1];
    for (index, name) in DATA_CFS.iter().enumerate() {
        let handle = cf(db, name)?;
        let mut opts = ReadOptions::default();
        opts.set_snapshot(view);
        for item in db.iterator_cf_opt(handle, opts, IteratorMode::Start) {
            let (key, value) = item?;
            out.push(index as u8);
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(&key);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(&value);
        }
    }
    Ok(out)
}

/// Adds to `batch` the deletion of all current data and the insertion of the snapshot's.
pub(super) fn restore_into(db: &DB, batch: &mut WriteBatch, data: &[u8]) -> Result<(), StoreError> {
    for name in DATA_CFS {
        let handle = cf(db, name)?;
        for item in db.iterator_cf(handle, IteratorMode::Start) {
            let (key, _) = item?;
            batch.delete_cf(handle, key);
        }
    }
    let bad = || StoreError::Record(crate::records::RecordError::UnknownVersion(0xFF));
    let body = match data.split_first() {
        None => return Ok(()),
        Some((&SNAPSHOT_FORMAT_V1, body)) => body,
        Some(_) => return Err(bad()),
    };
    let mut cursor = Cursor { rest: body };
    while !cursor.rest.is_empty() {
        let index = cursor.take(1)?[0];
        let name = DATA_CFS.get(index as usize).ok_or_else(bad)?;
        let klen = cursor.take_len()?;
        let key = cursor.take(klen)?.to_vec();
        let vlen = cursor.take_len()?;
        let value = cursor.take(vlen)?;
        batch.put_cf(cf(db, name)?, key, value);
    }
    Ok(())
}

/// Reads a snapshot body front to back; running out of bytes mid-record is an error.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.rest.len() < n {
            return Err(StoreError::Record(
                crate::records::RecordError::UnknownVersion(0xFF),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn take_len(&mut self) -> Result<usize, StoreError> {
        let raw = self.take(4)?;
        let mut le = [0u8; 4];
        le.copy_from_slice(raw);
        Ok(u32::from_le_bytes(le) as usize)
    }
}
