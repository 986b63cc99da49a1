//! Small durability helpers shared by the disk and shard code.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::BlobError;

/// Fsyncs a directory, making the creations, renames and removals of its entries durable.
///
/// A file's own fsync does not persist its directory entry: after a crash a renamed or new
/// file can be missing (or still have its old name) unless the directory is synced too.
/// Directories cannot be opened for sync outside Unix; there this is a no-op.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BlobError::io(format!("fsync directory {}", dir.display()), e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically: a reader (or a crash) sees the old content or the
/// new one, never a mix or an empty file.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut f =
        File::create(tmp).map_err(|e| BlobError::io(format!("create {}", tmp.display()), e))?;
    f.write_all(bytes)
        .map_err(|e| BlobError::io(format!("write {}", tmp.display()), e))?;
    // Durability: the content must be on disk before the rename can expose it, or a crash
    // could leave the final name pointing at an empty or partial file.
    f.sync_all()
        .map_err(|e| BlobError::io(format!("fsync {}", tmp.display()), e))?;
    drop(f);
    std::fs::rename(tmp, path)
        .map_err(|e| BlobError::io(format!("rename {} to {}", tmp.display(), path.display()), e))?;
    // Durability: persists the rename itself (the new directory entry).
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}
