//! Shard operations on one disk (blocking I/O): put, open for reading, delete.
//!
//! These combine the directory layout (`layout`), the file format (`shard_file`) and the
//! durability steps; the gRPC layer runs them on the blocking thread pool.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::BlobError;
use crate::fsutil::sync_dir;
use crate::layout::{is_tmp_name, is_valid_shard_key, shard_dir, tmp_name, SHARDS_DIR};
use crate::shard_file::{ShardReader, ShardWriter};

/// One item of a put stream, from the network side to the writer.
#[derive(Debug)]
pub(crate) enum PutItem {
    /// More shard data.
    Data(Bytes),
    /// The stream ended normally: commit the shard.
    End,
}

/// Deletes a temporary file when dropped, unless disarmed: a put that fails, is cut off or
/// panics leaves nothing behind.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary file");
            }
        }
    }
}

/// Writes shard `key` on the disk at `root` from the items received on `rx`, and commits
/// it only when [`PutItem::End`] arrives. If the channel closes before that, the temporary
/// file is removed and [`BlobError::PutAborted`] returned. Returns the shard's length.
pub(crate) fn put_shard(
    root: &Path,
    key: &str,
    mut rx: mpsc::Receiver<PutItem>,
) -> Result<u64, BlobError> {
    let dir = shard_dir(root, key);
    ensure_fanout_dir(root, &dir)?;
    let tmp = dir.join(tmp_name(key));
    let mut guard = TmpGuard(Some(tmp.clone()));
    let mut writer = ShardWriter::create(&tmp, key)?;
    loop {
        match rx.blocking_recv() {
            Some(PutItem::Data(data)) => writer.write(&data)?,
            Some(PutItem::End) => break,
            None => return Err(BlobError::PutAborted),
        }
    }
    // `finish` fsyncs the file: its content is durable before it gets its final name.
    let len = writer.finish()?;
    let path = dir.join(key);
    std::fs::rename(&tmp, &path)
        .map_err(|e| BlobError::io(format!("rename {} to {}", tmp.display(), path.display()), e))?;
    guard.0 = None;
    // Durability: persists the rename. Without it a crash could lose the new name (the
    // shard vanishes, or an overwritten shard comes back old) after the put was acknowledged.
    sync_dir(&dir)?;
    Ok(len)
}

/// Recreates a fan-out directory that has gone missing since the disk was opened.
fn ensure_fanout_dir(root: &Path, dir: &Path) -> Result<(), BlobError> {
    if dir.is_dir() {
        return Ok(());
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            // Durability: persists the new directory's entry in `shards/`, or the shard
            // inside it could be unreachable after a crash.
            sync_dir(&root.join(SHARDS_DIR))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(BlobError::io(format!("create {}", dir.display()), e)),
    }
}

/// Opens shard `key` on the disk at `root` for reading (header verified).
pub(crate) fn open_shard(root: &Path, key: &str) -> Result<ShardReader, BlobError> {
    ShardReader::open(&shard_dir(root, key).join(key), key)
}

/// Removes shard `key` from the disk at `root`; `false` if it did not exist.
pub(crate) fn delete_shard(root: &Path, key: &str) -> Result<bool, BlobError> {
    let dir = shard_dir(root, key);
    let path = dir.join(key);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(BlobError::io(format!("remove {}", path.display()), e)),
    }
    // Durability: persists the removal, so an acknowledged delete does not bring the shard
    // back after a crash.
    sync_dir(&dir)?;
    Ok(true)
}

/// One shard file found by [`list_fanout`].
#[derive(Debug, Clone)]
pub(crate) struct ShardEntry {
    /// The shard key (the file name).
    pub(crate) key: String,
    /// The file's size in bytes (header and checksums included).
    pub(crate) file_len: u64,
    /// The file's modification time: when its put wrote its last byte.
    pub(crate) modified: SystemTime,
}

/// The shard files of fan-out directory `fanout` (`00`..`ff`) on the disk at `root`
/// (blocking). Temporary files of puts in progress, and names that are not shard keys, are
/// left out: only committed shards are ever scrubbed or collected. A missing fan-out
/// directory is an error (the disk lost its layout: the caller probes it).
pub(crate) fn list_fanout(root: &Path, fanout: &str) -> Result<Vec<ShardEntry>, BlobError> {
    let dir = root.join(SHARDS_DIR).join(fanout);
    let context = || format!("list {}", dir.display());
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| BlobError::io(context(), e))? {
        let entry = entry.map_err(|e| BlobError::io(context(), e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if is_tmp_name(&name) || !is_valid_shard_key(&name) {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Deleted between the listing and the stat: not there any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BlobError::io(context(), e)),
        };
        if !meta.is_file() {
            continue;
        }
        out.push(ShardEntry {
            key: name,
            file_len: meta.len(),
            // No mtime (unsupported platform): counts as brand new, so it is never collected.
            modified: meta.modified().unwrap_or_else(|_| SystemTime::now()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::ControlFlow;

    fn fanout_entries(root: &Path, key: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(shard_dir(root, key))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn put_commits_only_on_end() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join(SHARDS_DIR)).unwrap();

        // Channel closed without End: aborted, nothing left behind.
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(PutItem::Data(Bytes::from_static(b"partial")))
            .unwrap();
        drop(tx);
        assert!(matches!(
            put_shard(root, "k", rx),
            Err(BlobError::PutAborted)
        ));
        assert!(fanout_entries(root, "k").is_empty());

        // Completed put, then an overwrite.
        for body in [&b"first version"[..], b"second"] {
            let (tx, rx) = mpsc::channel(4);
            tx.try_send(PutItem::Data(Bytes::copy_from_slice(body)))
                .unwrap();
            tx.try_send(PutItem::End).unwrap();
            assert_eq!(put_shard(root, "k", rx).unwrap(), body.len() as u64);
            assert_eq!(fanout_entries(root, "k"), vec!["k".to_owned()]);
            let mut r = open_shard(root, "k").unwrap();
            let mut got = Vec::new();
            r.read_range(0, r.len(), |p| {
                got.extend_from_slice(p);
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(got, body);
        }

        assert!(delete_shard(root, "k").unwrap());
        assert!(!delete_shard(root, "k").unwrap());
        assert!(matches!(
            open_shard(root, "k"),
            Err(BlobError::ShardNotFound(_))
        ));
    }
}
