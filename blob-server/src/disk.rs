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
//!
//! A disk can also fail while the server runs: it is remounted read-only, its device dies, or
//! its directory is removed (an operator pulls the disk). [`DiskSet::check`] probes a disk
//! (the identity file still names this disk, a small file can be written and fsynced) and marks
//! it FAULTY when it fails: it keeps its disk id, so the meta service knows *which* disk is
//! gone, and every call for it fails fast with UNAVAILABLE, so gateways write elsewhere. A probe
//! runs after every I/O error of a shard operation and periodically for every disk (the
//! `blob-disk-check` task), and each change of state wakes the registration task, which
//! announces it at once instead of at the next heartbeat. A disk that passes the probe again
//! with the same identity (a read-only remount undone) is healthy again; a disk replaced by an
//! empty one (no identity file) stays FAULTY until the server restarts and gives it a new id.
//! A full disk is not faulty: running out of space fails the one put that hit it, and the
//! free-space figure in the next registration keeps placement away from it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

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
#[derive(Debug)]
pub(crate) struct Disk {
    /// The directory as configured.
    pub(crate) path: PathBuf,
    /// The identity file's disk id, or `faulty-<index>`.
    pub(crate) disk_id: String,
    /// Whether the disk was opened (has an identity); a disk unusable from the start never
    /// becomes usable without a restart.
    opened: bool,
    /// Why the disk is unusable; `None` for a healthy disk. Set at open or by a failed probe.
    fault: RwLock<Option<String>>,
    /// Serialises probes of this disk (they share one probe file).
    probe_lock: Mutex<()>,
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
            opened: false,
            fault: RwLock::new(Some(reason)),
            probe_lock: Mutex::new(()),
        }
    }

    fn healthy(path: &Path, disk_id: String) -> Disk {
        Disk {
            path: path.to_owned(),
            disk_id,
            opened: true,
            fault: RwLock::new(None),
            probe_lock: Mutex::new(()),
        }
    }

    /// Why the disk is unusable now; `None` while it is healthy.
    #[cfg(test)]
    pub(crate) fn fault(&self) -> Option<String> {
        // A poisoned lock only means a panic elsewhere while holding it; the value is intact.
        self.fault.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_faulty(&self) -> bool {
        self.fault
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Records the probe's verdict; `true` if the state changed.
    fn set_fault(&self, fault: Option<String>) -> bool {
        let mut current = self.fault.write().unwrap_or_else(|e| e.into_inner());
        let changed = current.is_some() != fault.is_some();
        *current = fault;
        changed
    }
}

/// All the data directories of one server, and the server's node id.
#[derive(Debug)]
pub(crate) struct DiskSet {
    node_id: String,
    disks: Vec<Disk>,
    /// Woken when a disk changes state, so the registration task announces it at once.
    changed: tokio::sync::Notify,
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
                        Disk::healthy(dir, disk_id)
                    },
                );
            disks.push(disk);
        }
        if disks.iter().all(Disk::is_faulty) {
            return Err(BlobError::NoUsableDisk(disks.len()));
        }
        Ok(DiskSet {
            node_id,
            disks,
            changed: tokio::sync::Notify::new(),
        })
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
            Some(d) if d.is_faulty() => Err(BlobError::FaultyDisk(disk_id.to_owned())),
            Some(d) => Ok(d),
        }
    }

    /// Every configured disk, healthy or not.
    #[cfg(test)]
    pub(crate) fn all(&self) -> &[Disk] {
        &self.disks
    }

    /// The healthy disks now.
    pub(crate) fn healthy(&self) -> impl Iterator<Item = &Disk> {
        self.disks.iter().filter(|d| !d.is_faulty())
    }

    /// Resolves when a disk changed state since the last call (one waiter: the registration
    /// task).
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Asks the registration task to announce the disks now (fresh free space after a put
    /// ran out of it).
    pub(crate) fn announce_soon(&self) {
        self.changed.notify_one();
    }

    /// Probes the disk with this id (blocking I/O: a small write and an fsync) and updates
    /// its state: FAULTY when its directory is gone, unwritable or no longer holds its
    /// identity; healthy again when a runtime fault has cleared. Returns whether it is healthy.
    /// Disks that were never opened and unknown ids are left alone (`false`).
    pub(crate) fn check(&self, disk_id: &str) -> bool {
        let Some(disk) = self.disks.iter().find(|d| d.disk_id == disk_id) else {
            return false;
        };
        if !disk.opened {
            return false;
        }
        let _probing = disk.probe_lock.lock().unwrap_or_else(|e| e.into_inner());
        let verdict = probe_opened(&disk.path, &disk.disk_id, &self.node_id);
        let healthy = verdict.is_ok();
        let fault = verdict.err().map(|e| e.to_string());
        if disk.set_fault(fault.clone()) {
            match fault {
                Some(reason) => tracing::error!(
                    disk_id = %disk.disk_id,
                    path = %disk.path.display(),
                    error = %reason,
                    "disk failed its probe; marking it FAULTY (no new shards, calls fail fast)"
                ),
                None => tracing::warn!(
                    disk_id = %disk.disk_id,
                    path = %disk.path.display(),
                    "disk passes its probe again with the same identity; marking it OK"
                ),
            }
            self.changed.notify_one();
        }
        healthy
    }

    /// Probes every opened disk (see [`DiskSet::check`]).
    pub(crate) fn check_all(&self) {
        for disk in &self.disks {
            self.check(&disk.disk_id);
        }
    }

    /// All disks with their current capacity and free space (blocking: one statvfs each).
    pub(crate) fn disk_infos(&self) -> Vec<DiskInfo> {
        self.disks
            .iter()
            .map(|d| {
                let (capacity_bytes, free_bytes, state) = if d.is_faulty() {
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
    write_probe(dir)?;
    let identity = read_identity(&dir.join(IDENTITY_FILE))?;
    Ok(Probed {
        canonical,
        identity,
    })
}

/// Writes, fsyncs and removes a small file in `dir`.
fn write_probe(dir: &Path) -> Result<(), BlobError> {
    let probe = dir.join(PROBE_FILE);
    File::create(&probe)
        .and_then(|mut f| {
            f.write_all(b"cairn write probe")?;
            // Not for durability: a disk that takes writes but cannot flush them (read-only
            // remount, dying device) must be caught here, not on the first put.
            f.sync_all()
        })
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            // Best effort: a probe that failed half-way (a full disk) leaves no file behind.
            let _ = std::fs::remove_file(&probe);
            BlobError::io(format!("write probe file {}", probe.display()), e)
        })
}

/// The run-time probe of an opened disk: its identity file still names it, its shard
/// directory is there, and it takes a small write. Out of space is not a fault (the disk
/// works; placement avoids it by its free space), so a full disk passes.
fn probe_opened(dir: &Path, disk_id: &str, node_id: &str) -> Result<(), BlobError> {
    let identity_path = dir.join(IDENTITY_FILE);
    match read_identity(&identity_path)? {
        Some(id) if id.disk_id == disk_id && id.node_id == node_id => {}
        Some(id) => {
            return Err(BlobError::InvalidIdentity {
                path: identity_path,
                reason: format!(
                    "now names disk {} of node {}; this server opened it as disk {disk_id}",
                    id.disk_id, id.node_id
                ),
            })
        }
        None => {
            return Err(BlobError::InvalidIdentity {
                path: identity_path,
                reason: "missing: the directory was removed or replaced".into(),
            })
        }
    }
    let shards = dir.join(SHARDS_DIR);
    if !shards.is_dir() {
        return Err(BlobError::io(
            format!("check {}", shards.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    match write_probe(dir) {
        Err(BlobError::Io { source, .. }) if source.kind() == std::io::ErrorKind::StorageFull => {
            Ok(())
        }
        other => other,
    }
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
    for small_file in [IDENTITY_FILE, crate::scrub::STATE_FILE] {
        let stale = dir.join(format!("{small_file}.tmp"));
        match std::fs::remove_file(&stale) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BlobError::io(format!("remove {}", stale.display()), e)),
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
        set.disks.iter().filter(|d| d.fault().is_none()).count()
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
        assert!(set.disks[0].fault().is_some());
        assert_eq!(set.disks[0].disk_id, "faulty-0");
        assert!(set.disks[1].fault().is_none());
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
        assert!(set.disks[0].fault().is_some());
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
        assert!(set.disks[0].fault().is_none());
        assert!(set.disks[1]
            .fault()
            .unwrap_or_default()
            .contains("same directory"));
        assert!(set.disks[2].fault().is_some());
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
        assert!(set.disks[1].fault().unwrap_or_default().contains("disk id"));
    }

    #[test]
    fn a_replaced_empty_disk_gets_a_new_id_at_the_same_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = vec![tmp.path().join("d0"), tmp.path().join("d1")];
        let first = DiskSet::open(&dirs, None).unwrap();
        let old_id = first.disks[1].disk_id.clone();
        drop(first);
        // The disk is swapped for an empty one mounted at the same path.
        std::fs::remove_dir_all(&dirs[1]).unwrap();
        std::fs::create_dir_all(&dirs[1]).unwrap();
        let again = DiskSet::open(&dirs, None).unwrap();
        assert_eq!(ok_count(&again), 2);
        assert_ne!(
            again.disks[1].disk_id, old_id,
            "an empty disk must not claim the shards of the one it replaced"
        );
        let id = read_identity(&dirs[1].join(IDENTITY_FILE))
            .unwrap()
            .unwrap();
        assert_eq!(id.node_id, again.node_id(), "it joins the same node");
    }

    #[test]
    fn a_vanished_disk_turns_faulty_and_a_replaced_one_stays_faulty() {
        let tmp = tempfile::tempdir().unwrap();
        let d0 = tmp.path().join("d0");
        let d1 = tmp.path().join("d1");
        let set = DiskSet::open(&[d0.clone(), d1.clone()], None).unwrap();
        let id1 = set.disks[1].disk_id.clone();
        assert!(set.check(&id1));

        // Moved away (as good as removed): faulty, keeps its id, refuses calls.
        let aside = tmp.path().join("aside");
        std::fs::rename(&d1, &aside).unwrap();
        assert!(!set.check(&id1));
        assert!(matches!(set.usable(&id1), Err(BlobError::FaultyDisk(_))));
        let infos = set.disk_infos();
        assert_eq!(infos[1].disk_id, id1);
        assert_eq!(infos[1].state, DiskState::Faulty as i32);
        assert_eq!(set.healthy().count(), 1);

        // An empty directory in its place is another disk: still faulty.
        std::fs::create_dir_all(d1.join(SHARDS_DIR)).unwrap();
        assert!(!set.check(&id1));
        std::fs::remove_dir_all(&d1).unwrap();

        // The same disk back (same identity): healthy again.
        std::fs::rename(&aside, &d1).unwrap();
        assert!(set.check(&id1));
        assert!(set.usable(&id1).is_ok());
        // A disk faulty from the start is never probed back to health.
        assert!(!set.check("faulty-9"));
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
