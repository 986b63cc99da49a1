//! Snapshot files: the replicated data column families streamed to a file and back.
//!
//! A snapshot is never held in memory whole. It is written from a RocksDB snapshot (a
//! consistent view) straight into a file, shipped by openraft in chunks read from that file,
//! received into a file, verified end to end, and restored into RocksDB in bounded batches.
//!
//! Layout (format 2): the header byte `2`, then records `cf index (u8) | key len (u32 LE) |
//! key | value len (u32 LE) | value` in column-family then key order, then the trailer
//! `0xFF | record count (u64 LE) | BLAKE3 of every byte before the trailer (32 bytes)`. A
//! truncated, corrupted or foreign file fails verification before anything is restored.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use rocksdb::{IteratorMode, ReadOptions, SnapshotWithThreadMode, WriteBatch, DB};

use super::{cf, StoreError, DATA_CFS};

const SNAPSHOT_FORMAT: u8 = 2;
const TRAILER_MARK: u8 = 0xFF;
/// Size of the write batches a restore is applied in.
const RESTORE_BATCH_BYTES: usize = 4 << 20;
const IO_BUFFER: usize = 1 << 20;

/// Why a snapshot file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Reading or writing the file failed.
    #[error("snapshot i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a snapshot of this format, or are damaged.
    #[error("snapshot file is malformed: {0}")]
    Malformed(&'static str),
}

impl From<SnapshotFileError> for StoreError {
    fn from(e: SnapshotFileError) -> Self {
        StoreError::Snapshot(e.to_string())
    }
}

/// Writes every data column family, as seen by `view`, to `out`. Returns the record count.
pub(super) fn write(
    db: &DB,
    view: &SnapshotWithThreadMode<'_, DB>,
    out: &File,
) -> Result<u64, StoreError> {
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(IO_BUFFER, out),
        hasher: blake3::Hasher::new(),
    };
    writer.put(&[SNAPSHOT_FORMAT])?;
    let mut count = 0u64;
    for (index, name) in DATA_CFS.iter().enumerate() {
        let handle = cf(db, name)?;
        let mut opts = ReadOptions::default();
        opts.set_snapshot(view);
        for item in db.iterator_cf_opt(handle, opts, IteratorMode::Start) {
            let (key, value) = item?;
            writer.put(&[index as u8])?;
            writer.put(&len_bytes(&key)?)?;
            writer.put(&key)?;
            writer.put(&len_bytes(&value)?)?;
            writer.put(&value)?;
            count += 1;
        }
    }
    let hash = writer.hasher.finalize();
    let mut inner = writer.inner;
    inner
        .write_all(&[TRAILER_MARK])
        .and_then(|_| inner.write_all(&count.to_le_bytes()))
        .and_then(|_| inner.write_all(hash.as_bytes()))
        .and_then(|_| inner.flush())
        .map_err(SnapshotFileError::from)?;
    Ok(count)
}

fn len_bytes(bytes: &[u8]) -> Result<[u8; 4], StoreError> {
    u32::try_from(bytes.len())
        .map(u32::to_le_bytes)
        .map_err(|_| SnapshotFileError::Malformed("record longer than 4 GiB").into())
}

/// Copies the snapshot in `src` to `dst` while checking it: format, record structure, count
/// and hash. Nothing in `dst` may be used unless this returns `Ok`.
pub(super) fn copy_verified(src: impl Read, dst: &File) -> Result<(), StoreError> {
    let mut tee = TeeReader {
        inner: BufReader::with_capacity(IO_BUFFER, src),
        copy: BufWriter::with_capacity(IO_BUFFER, dst),
    };
    for_each_record(&mut tee, |_, _, _| Ok(()))?;
    tee.copy.flush().map_err(SnapshotFileError::from)?;
    Ok(())
}

/// Replaces the data column families with the snapshot in `path` (already verified), in
/// batches of bounded size. Not atomic: the caller records that a restore is under way and
/// redoes it after a crash.
pub(super) fn restore(db: &DB, path: &Path) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    let flush = |batch: &mut WriteBatch, force: bool| -> Result<(), StoreError> {
        if force || batch.size_in_bytes() >= RESTORE_BATCH_BYTES {
            db.write(std::mem::take(batch))?;
        }
        Ok(())
    };
    for name in DATA_CFS {
        let handle = cf(db, name)?;
        for item in db.iterator_cf(handle, IteratorMode::Start) {
            let (key, _) = item?;
            batch.delete_cf(handle, key);
            flush(&mut batch, false)?;
        }
    }
    let file = File::open(path).map_err(SnapshotFileError::from)?;
    let mut reader = BufReader::with_capacity(IO_BUFFER, file);
    for_each_record(&mut reader, |index, key, value| {
        let name = DATA_CFS
            .get(index as usize)
            .ok_or(SnapshotFileError::Malformed("unknown column family"))?;
        batch.put_cf(cf(db, name)?, key, value);
        flush(&mut batch, false)
    })?;
    flush(&mut batch, true)
}

/// Parses a snapshot from `input`, calling `record(cf index, key, value)` for each record,
/// and checks the trailer (count and hash) and that nothing follows it.
fn for_each_record(
    input: &mut impl Read,
    mut record: impl FnMut(u8, &[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut hasher = blake3::Hasher::new();
    let mut byte = [0u8; 1];
    read_exact(input, &mut byte, "empty snapshot")?;
    if byte[0] != SNAPSHOT_FORMAT {
        return Err(SnapshotFileError::Malformed("unknown snapshot format").into());
    }
    hasher.update(&byte);
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut count = 0u64;
    loop {
        read_exact(input, &mut byte, "missing trailer")?;
        if byte[0] == TRAILER_MARK {
            break;
        }
        hasher.update(&byte);
        read_field(input, &mut hasher, &mut key)?;
        read_field(input, &mut hasher, &mut value)?;
        record(byte[0], &key, &value)?;
        count += 1;
    }
    let mut trailer = [0u8; 40];
    read_exact(input, &mut trailer, "short trailer")?;
    let mut stored_count = [0u8; 8];
    stored_count.copy_from_slice(&trailer[..8]);
    if u64::from_le_bytes(stored_count) != count {
        return Err(SnapshotFileError::Malformed("record count mismatch").into());
    }
    if hasher.finalize().as_bytes() != &trailer[8..] {
        return Err(SnapshotFileError::Malformed("checksum mismatch").into());
    }
    if input.read(&mut byte).map_err(SnapshotFileError::from)? != 0 {
        return Err(SnapshotFileError::Malformed("bytes after the trailer").into());
    }
    Ok(())
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), StoreError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => SnapshotFileError::Malformed(what).into(),
        _ => StoreError::from(SnapshotFileError::Io(e)),
    })
}

/// Reads one `len (u32 LE) | bytes` field into `out`.
fn read_field(
    input: &mut impl Read,
    hasher: &mut blake3::Hasher,
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let mut len = [0u8; 4];
    read_exact(input, &mut len, "truncated record")?;
    hasher.update(&len);
    out.clear();
    out.resize(u32::from_le_bytes(len) as usize, 0);
    read_exact(input, out, "truncated record")?;
    hasher.update(out);
    Ok(())
}

/// A buffered writer that hashes what goes through it.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.hasher.update(bytes);
        self.inner
            .write_all(bytes)
            .map_err(|e| SnapshotFileError::Io(e).into())
    }
}

/// A reader that copies everything it reads to `copy`.
struct TeeReader<R: Read, W: Write> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CF_BUCKETS, CF_OBJECTS};

    fn db_with(dir: &Path, rows: &[(&'static str, &[u8], &[u8])]) -> std::sync::Arc<DB> {
        let (_, sm) = crate::store::open(dir).expect("open");
        let db = sm.db();
        for (name, k, v) in rows {
            db.put_cf(cf(&db, name).expect("cf"), k, v).expect("put");
        }
        db
    }

    fn all(db: &DB) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for name in DATA_CFS {
            for item in db.iterator_cf(cf(db, name).expect("cf"), IteratorMode::Start) {
                let (k, v) = item.expect("item");
                out.push((name.to_string(), k.to_vec(), v.to_vec()));
            }
        }
        out
    }

    #[test]
    fn write_verify_restore_round_trip_replaces_the_target_data() {
        let tmp = tempfile::tempdir().expect("tmp");
        let source = db_with(
            &tmp.path().join("a"),
            &[
                (CF_BUCKETS, b"b1", b"one"),
                (CF_OBJECTS, b"k\x00\xff", &[7u8; 100_000]),
            ],
        );
        let target = db_with(&tmp.path().join("b"), &[(CF_BUCKETS, b"stale", b"gone")]);
        let written = tmp.path().join("snap");
        let file = File::create(&written).expect("create");
        let view = source.snapshot();
        assert_eq!(write(&source, &view, &file).expect("write"), 2);
        let copy = tmp.path().join("copy");
        copy_verified(
            File::open(&written).expect("open"),
            &File::create(&copy).expect("c"),
        )
        .expect("verify");
        restore(&target, &copy).expect("restore");
        assert_eq!(all(&target), all(&source));
    }

    #[test]
    fn damaged_snapshots_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let source = db_with(&tmp.path().join("a"), &[(CF_BUCKETS, b"b1", b"one")]);
        let path = tmp.path().join("snap");
        let view = source.snapshot();
        write(&source, &view, &File::create(&path).expect("create")).expect("write");
        let good = std::fs::read(&path).expect("read");
        let sink = || File::create(tmp.path().join("sink")).expect("sink");
        let mut flipped = good.clone();
        flipped[6] ^= 1;
        let mut extra = good.clone();
        extra.push(0);
        for (what, bytes) in [
            ("truncated", good[..good.len() - 1].to_vec()),
            ("flipped", flipped),
            ("trailing", extra),
            ("empty", Vec::new()),
            ("foreign", b"\x01whatever".to_vec()),
        ] {
            assert!(
                copy_verified(bytes.as_slice(), &sink()).is_err(),
                "{what} snapshot accepted"
            );
        }
        assert!(copy_verified(good.as_slice(), &sink()).is_ok());
    }
}
