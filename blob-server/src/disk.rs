//! The server's disks: opening data directories, their identity files, and free space.
//!
//! Each data directory holds `cairn-disk.json`:
//! `{ "format_version": 1, "disk_id": "<uuid v4>", "node_id": "<uuid v4>" }`, written
//! atomically the first time the directory is used. The disk id is the directory's stable
//! identity (a wiped directory gets a new one); the node id is shared by all disks of the
//! server.
//!
//! Opening never fails because of one bad directory: a directory that cannot be created,
//! written or read, whose identity file is unreadable, that duplicates another one, or that
//! belongs to a different node is logged and kept as FAULTY (id `faulty-<index>`), so it is
//! reported but never used. Only when no directory is usable does opening fail.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_proto::blob::{DiskInfo, DiskState};
use serde::{Deserialize, Serialize};

use crate::error::BlobError;
use crate::fsutil::{sync_dir, write_file_atomically};
use crate::layout::{all_fanout_names, is_tmp_name, SHARDS_DIR};

/// Name of the identity file in each data directory.
pub(crate) const IDENTITY_FILE: &str = "cairn-disk.json";
/// Version of the identity file format.
const IDENTITY_FORMAT_VERSION: u32 = 1;
/// File used to check that a directory is writable.
const PROBE_FILE: &str = "cairn-probe.tmp";

/// Contents of `cairn-disk.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct DiskIdentity {
    format_version: u32,
    disk_id: String,
    /// Empty when the file predates node ids; filled in on open.
    #[serde(default)]
    node_id: String,
}

/// One configured data directory.
#[derive(Debug, Clone)]
pub(crate) struct Disk {
    /// The directory as configured.
    pub(crate) path: PathBuf,
    /// The identity file's disk id, or `faulty-<index>`.
    pub(crate) disk_id: String,
    /// Why the disk is unusable; `None` for a healthy disk.
    pub(crate) fault: Option<String>,
}

impl Disk {
    fn faulty(index: usize, path: &Path, reason: String) -> Disk {
        tracing::error!(
            disk_index = index,
            path = %path.display(),
            error = %reason,
            "data directory is unusable; reporting it as FAULTY"
        );
        Disk {
            path: path.to_owned(),
            disk_id: format!("faulty-{index}"),
            fault: Some(reason),
        }
    }
}

/// All the data directories of one server, and the server's node id.
#[derive(Debug)]
pub(crate) struct DiskSet {
    node_id: String,
    disks: Vec<Disk>,
}

/// What opening a directory found, before the node id is settled.
struct Probed {
    canonical: PathBuf,
    identity: Option<DiskIdentity>,
}

impl DiskSet {
    /// Opens every data directory (blocking I/O). `configured_node_id`, when given, is the
    /// node id; otherwise it is taken from the first disk that records one, or generated.
    pub(crate) fn open(
        dirs: &[PathBuf],
        configured_node_id: Option<&str>,
    ) -> Result<DiskSet, BlobError> {
        if dirs.is_empty() {
            return Err(BlobError::InvalidConfig("no data directories given".into()));
        }
        // Pass 1: create, probe and read identities.
        let mut probed: Vec<Result<Probed, String>> = Vec::with_capacity(dirs.len());
        let mut seen_paths: HashMap<PathBuf, usize> = HashMap::new();
        let mut seen_ids: HashMap<String, usize> = HashMap::new();
        for (index, dir) in dirs.iter().enumerate() {
            let result = probe_dir(dir).map_err(|e| e.to_string()).and_then(|p| {
                if let Some(&other) = seen_paths.get(&p.canonical) {
                    return Err(format!("same directory as data directory #{other}"));
                }
                seen_paths.insert(p.canonical.clone(), index);
                if let Some(id) = &p.identity {
                    if let Some(&other) = seen_ids.get(&id.disk_id) {
                        return Err(format!(
                            "disk id {} is also on data directory #{other} (copied directory?)",
                            id.disk_id
                        ));
                    }
                    seen_ids.insert(id.disk_id.clone(), index);
                }
                Ok(p)
            });
            probed.push(result);
        }

        let node_id = match configured_node_id {
            Some(id) => id.to_owned(),
            None => probed
                .iter()
                .filter_map(|p| p.as_ref().ok()?.identity.as_ref())
                .map(|id| id.node_id.clone())
                .find(|id| !id.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        };

        // Pass 2: settle identities, prepare the layout, clean leftovers.
        let mut disks = Vec::with_capacity(dirs.len());
        for (index, (dir, probe)) in dirs.iter().zip(probed).enumerate() {
            let disk = probe
                .and_then(|p| finish_open(dir, p.identity, &node_id).map_err(|e| e.to_string()))
                .map_or_else(
                    |reason| Disk::faulty(index, dir, reason),
                    |disk_id| {
                        tracing::info!(
                            disk_index = index,
                            path = %dir.display(),
                            %disk_id,
                            "data directory opened"
                        );
                        Disk {
                            path: dir.clone(),
                            disk_id,
                            fault: None,
                        }
                    },
                );
            disks.push(disk);
        }
        if disks.iter().all(|d| d.fault.is_some()) {
            return Err(BlobError::NoUsableDisk(disks.len()));
        }
        Ok(DiskSet { node_id, disks })
    }

    /// The server's node id.
    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The healthy disk with this id: [`BlobError::UnknownDisk`] if there is none,
    /// [`BlobError::FaultyDisk`] if it is faulty.
    pub(crate) fn usable(&self, disk_id: &str) -> Result<&Disk, BlobError> {
        match self.disks.iter().find(|d| d.disk_id == disk_id) {
            None => Err(BlobError::UnknownDisk(disk_id.to_owned())),
            Some(d) if d.fault.is_some() => Err(BlobError::FaultyDisk(disk_id.to_owned())),
            Some(d) => Ok(d),
        }
    }

    /// All disks with their current capacity and free space (blocking: one statvfs each).
    pub(crate) fn disk_infos(&self) -> Vec<DiskInfo> {
        self.disks
            .iter()
            .map(|d| {
                let (capacity_bytes, free_bytes, state) = if d.fault.is_some() {
                    (0, 0, DiskState::Faulty)
                } else {
                    let (capacity, free) = space(&d.path).unwrap_or_else(|e| {
                        tracing::warn!(path = %d.path.display(), error = %e, "statvfs failed");
                        (0, 0)
                    });
                    (capacity, free, DiskState::Ok)
                };
                DiskInfo {
                    disk_id: d.disk_id.clone(),
                    path: d.path.display().to_string(),
                    capacity_bytes,
                    free_bytes,
                    state: state as i32,
                }
            })
            .collect()
    }
}

/// Creates the directory if needed, checks it is writable and reads its identity, if any.
fn probe_dir(dir: &Path) -> Result<Probed, BlobError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| BlobError::io(format!("create {}", dir.display()), e))?;
    let canonical = std::fs::canonicalize(dir)
        .map_err(|e| BlobError::io(format!("resolve {}", dir.display()), e))?;
    let probe = dir.join(PROBE_FILE);
    File::create(&probe)
        .and_then(|mut f| {
            f.write_all(b"cairn write probe")?;
            // Not for durability: a disk that takes writes but cannot flush them (read-only
            // remount, dying device) must be caught here, not on the first put.
            f.sync_all()
        })
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| BlobError::io(format!("write probe file {}", probe.display()), e))?;
    let identity = read_identity(&dir.join(IDENTITY_FILE))?;
    Ok(Probed {
        canonical,
        identity,
    })
}

fn read_identity(path: &Path) -> Result<Option<DiskIdentity>, BlobError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BlobError::io(format!("read {}", path.display()), e)),
    };
    let invalid = |reason: String| BlobError::InvalidIdentity {
        path: path.to_owned(),
        reason,
    };
    let id: DiskIdentity = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if id.format_version != IDENTITY_FORMAT_VERSION {
        return Err(invalid(format!(
            "unsupported format_version {}",
            id.format_version
        )));
    }
    if id.disk_id.is_empty() {
        return Err(invalid("empty disk_id".into()));
    }
    Ok(Some(id))
}

/// Writes or completes the identity file, prepares the shard directories and removes
/// leftover temporary files. Returns the disk id.
fn finish_open(
    dir: &Path,
    identity: Option<DiskIdentity>,
    node_id: &str,
) -> Result<String, BlobError> {
    let identity_path = dir.join(IDENTITY_FILE);
    let identity = match identity {
        Some(id) if id.node_id == node_id => id,
        Some(id) if !id.node_id.is_empty() => {
            return Err(BlobError::InvalidIdentity {
                path: identity_path,
                reason: format!(
                    "disk belongs to node {}, but this server is node {node_id}",
                    id.node_id
                ),
            });
        }
        existing => {
            let id = DiskIdentity {
                format_version: IDENTITY_FORMAT_VERSION,
                disk_id: existing
                    .map(|e| e.disk_id)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                node_id: node_id.to_owned(),
            };
            let json = serde_json::to_vec_pretty(&id).map_err(|e| BlobError::InvalidIdentity {
                path: identity_path.clone(),
                reason: e.to_string(),
            })?;
            // Atomic (tmp + fsync + rename + dir fsync): a crash never leaves a disk with a
            // half-written identity, which would make it unusable.
            write_file_atomically(&identity_path, &json)?;
            id
        }
    };
    prepare_shard_dirs(dir)?;
    Ok(identity.disk_id)
}

/// Creates `shards/` and its 256 fan-out directories, and deletes leftover temporary files.
fn prepare_shard_dirs(dir: &Path) -> Result<(), BlobError> {
    let shards = dir.join(SHARDS_DIR);
    if create_dir_if_missing(&shards)? {
        // Durability: persists the new `shards` entry in the data directory.
        sync_dir(dir)?;
    }
    let mut created = false;
    for name in all_fanout_names() {
        created |= create_dir_if_missing(&shards.join(name))?;
    }
    if created {
        // Durability: persists the fan-out directory entries, so that a put only needs to
        // fsync its own fan-out directory for its shard to survive a crash.
        sync_dir(&shards)?;
    }
    // No fsync after removing leftovers: a removal lost in a crash is simply redone at the
    // next start.
    let mut removed = 0usize;
    for name in all_fanout_names() {
        let sub = shards.join(name);
        let entries = std::fs::read_dir(&sub)
            .map_err(|e| BlobError::io(format!("list {}", sub.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| BlobError::io(format!("list {}", sub.display()), e))?;
            if entry.file_name().to_str().is_some_and(is_tmp_name) {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|e| BlobError::io(format!("remove {}", path.display()), e))?;
                removed += 1;
            }
        }
    }
    let stale_identity = dir.join(format!("{IDENTITY_FILE}.tmp"));
    match std::fs::remove_file(&stale_identity) {
        Ok(()) => removed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(BlobError::io(
                format!("remove {}", stale_identity.display()),
                e,
            ))
        }
    }
    if removed > 0 {
        tracing::info!(path = %dir.display(), removed, "removed leftover temporary files");
    }
    Ok(())
}

/// Creates a directory; `true` if it was created, `false` if it already existed.
fn create_dir_if_missing(path: &Path) -> Result<bool, BlobError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(BlobError::io(format!("create {}", path.display()), e)),
    }
}

/// `(capacity, free)` in bytes of the file system holding `path`; free is what an
/// unprivileged writer can use.
#[cfg(unix)]
#[allow(unsafe_code, clippy::useless_conversion)] // statvfs field types differ by platform.
fn space(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to writable memory of
    // the right type; statvfs only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let st = unsafe { st.assume_init() };
    let frsize = u64::from(st.f_frsize);
    Ok((
        u64::from(st.f_blocks).saturating_mul(frsize),
        u64::from(st.f_bavail).saturating_mul(frsize),
    ))
}

/// Free space is not measured outside Unix; disks report 0.
#[cfg(not(unix))]
fn space(_path: &Path) -> std::io::Result<(u64, u64)> {
    Ok((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_count(set: &DiskSet) -> usize {
        set.disks.iter().filter(|d| d.fault.is_none()).count()
    }

    #[test]
    fn fresh_disks_get_identities_that_persist() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = vec![tmp.path().join("d0"), tmp.path().join("nested/d1")];
        let set = DiskSet::open(&dirs, None).unwrap();
        assert_eq!(ok_count(&set), 2);
        let node_id = set.node_id().to_owned();
        assert!(uuid::Uuid::parse_str(&node_id).is_ok());
        for d in &set.disks {
            let id = read_identity(&d.path.join(IDENTITY_FILE)).unwrap().unwrap();
            assert_eq!(id.node_id, node_id);
            assert_eq!(id.disk_id, d.disk_id);
            assert_eq!(id.format_version, 1);
            assert!(d.path.join("shards/00").is_dir() && d.path.join("shards/ff").is_dir());
        }
        assert_ne!(set.disks[0].disk_id, set.disks[1].disk_id);

        // Reopening keeps every id; a new, empty disk joins the existing node.
        let mut dirs2 = dirs.clone();
        dirs2.push(tmp.path().join("d2"));
        let again = DiskSet::open(&dirs2, None).unwrap();
        assert_eq!(again.node_id(), node_id);
        assert_eq!(again.disks[0].disk_id, set.disks[0].disk_id);
        assert_eq!(again.disks[1].disk_id, set.disks[1].disk_id);
        let id2 = read_identity(&dirs2[2].join(IDENTITY_FILE))
            .unwrap()
            .unwrap();
        assert_eq!(id2.node_id, node_id);
    }

    #[test]
    fn configured_node_id_wins_and_foreign_disks_are_faulty() {
        let tmp = tempfile::tempdir().unwrap();
        let d0 = tmp.path().join("d0");
        let d1 = tmp.path().join("d1");
        let set = DiskSet::open(std::slice::from_ref(&d0), Some("node-a")).unwrap();
        assert_eq!(set.node_id(), "node-a");
        // d0 belongs to node-a; opening it as node-b must not silently re-home it.
        let set = DiskSet::open(&[d0.clone(), d1.clone()], Some("node-b")).unwrap();
        assert_eq!(set.node_id(), "node-b");
        assert!(set.disks[0].fault.is_some());
        assert_eq!(set.disks[0].disk_id, "faulty-0");
        assert!(set.disks[1].fault.is_none());
        let id0 = read_identity(&d0.join(IDENTITY_FILE)).unwrap().unwrap();
        assert_eq!(
            id0.node_id, "node-a",
            "a foreign disk's identity is left alone"
        );
    }

    #[test]
    fn uncreatable_dir_is_faulty_and_others_still_open() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("regular-file");
        std::fs::write(&file, b"x").unwrap();
        let dirs = vec![file.join("disk"), tmp.path().join("good")];
        let set = DiskSet::open(&dirs, None).unwrap();
        assert_eq!(set.disks[0].disk_id, "faulty-0");
        assert!(set.disks[0].fault.is_some());
        assert!(matches!(
            set.usable("faulty-0"),
            Err(BlobError::FaultyDisk(_))
        ));
        assert!(set.usable(&set.disks[1].disk_id).is_ok());
        assert!(matches!(set.usable("nope"), Err(BlobError::UnknownDisk(_))));
        let infos = set.disk_infos();
        assert_eq!(infos[0].state, DiskState::Faulty as i32);
        assert_eq!(infos[1].state, DiskState::Ok as i32);
        #[cfg(unix)]
        assert!(infos[1].capacity_bytes > 0);

        assert!(matches!(
            DiskSet::open(&dirs[..1], None),
            Err(BlobError::NoUsableDisk(1))
        ));
        assert!(matches!(
            DiskSet::open(&[], None),
            Err(BlobError::InvalidConfig(_))
        ));
    }

    #[test]
    fn duplicate_and_unreadable_dirs_are_faulty() {
        let tmp = tempfile::tempdir().unwrap();
        let d0 = tmp.path().join("d0");
        let bad = tmp.path().join("bad");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join(IDENTITY_FILE), b"{not json").unwrap();
        let set = DiskSet::open(&[d0.clone(), d0.join("."), bad.clone()], None).unwrap();
        assert!(set.disks[0].fault.is_none());
        assert!(set.disks[1]
            .fault
            .as_deref()
            .unwrap_or("")
            .contains("same directory"));
        assert!(set.disks[2].fault.is_some());
        assert_eq!(
            std::fs::read(bad.join(IDENTITY_FILE)).unwrap(),
            b"{not json",
            "an unreadable identity is never overwritten"
        );

        // A copied directory (same disk id) is caught too.
        let copy = tmp.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(d0.join(IDENTITY_FILE), copy.join(IDENTITY_FILE)).unwrap();
        let set = DiskSet::open(&[d0, copy], None).unwrap();
        assert!(set.disks[1]
            .fault
            .as_deref()
            .unwrap_or("")
            .contains("disk id"));
    }

    #[test]
    fn leftover_tmp_files_are_removed_at_open() {
        let tmp = tempfile::tempdir().unwrap();
        let d0 = tmp.path().join("d0");
        DiskSet::open(std::slice::from_ref(&d0), None).unwrap();
        let sub = d0.join("shards/ab");
        let leftover = sub.join(crate::layout::tmp_name("shard-1"));
        std::fs::write(&leftover, b"partial").unwrap();
        let real = sub.join("real.tmp"); // a valid shard key that merely ends in .tmp
        std::fs::write(&real, b"shard").unwrap();
        let stale_identity = d0.join(format!("{IDENTITY_FILE}.tmp"));
        std::fs::write(&stale_identity, b"{").unwrap();

        DiskSet::open(std::slice::from_ref(&d0), None).unwrap();
        assert!(!leftover.exists());
        assert!(!stale_identity.exists());
        assert!(real.exists());
    }
}
