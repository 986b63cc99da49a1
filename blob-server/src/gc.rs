//! The garbage-collection walker: deletes shard files that no committed metadata refers to.
//!
//! Why: shards become orphans when an upload is cut off or fails its quorum and the gateway's
//! best-effort delete is lost (the gateway crashed, the blob server was unreachable), or when
//! the gateway dies within the grace before deleting a replaced version's shards. Nothing else
//! would ever remove them, and they would fill the disks.
//!
//! How: the blob server knows only files, the meta service only references, so they decide
//! together. A task (`blob-gc`) walks each healthy disk every `interval` (`--gc-interval`),
//! lists the committed shard files (temporary files of puts in progress are never listed)
//! whose modification time is older than `grace` (`--gc-grace`, 1 h by default), and sends
//! their keys in batches of 500 to the meta service (`CollectGarbage`). The meta service
//! answers the keys that nothing refers to and, in the same Raft entry, tombstones them: no
//! later commit can make them live (such a commit fails with `SHARD_COLLECTED` and the client
//! retries). So deleting exactly the keys it answered is safe; a key it did not answer is kept.
//!
//! The grace keeps the walker away from shards whose upload is still running: a shard is
//! renamed into place when its own stream ends, but its object is committed only when the
//! write quorum is durable, and a multipart part may wait for its `CommitPart`. An upload
//! slower than the grace loses its shards and is retried by its client; it never commits an
//! object with missing shards.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cairn_proto::meta::CollectGarbageRequest;
use tokio::sync::watch;
use tokio::task::{spawn_blocking, JoinHandle};
use tracing::Instrument;

use crate::disk::DiskSet;
use crate::error::BlobError;
use crate::layout::all_fanout_names;
use crate::meta_link::MetaLink;
use crate::stats::{now_ms, Stats};
use crate::store::{delete_shard, list_fanout, ShardEntry};

/// Shard keys per `CollectGarbage` request.
const BATCH: usize = 500;
/// The first pass comes after the interval, but never later than this after start-up, so a
/// server restarted more often than the interval still collects.
const FIRST_PASS_MAX_DELAY: Duration = Duration::from_secs(600);

/// How the GC walker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// Shard files younger than this (by modification time) are never asked about.
    pub grace: Duration,
    /// Time between two walks over the disks; zero turns garbage collection off.
    pub interval: Duration,
}

impl Default for GcConfig {
    /// A grace of 1 h, a walk every 6 h.
    fn default() -> Self {
        GcConfig {
            grace: Duration::from_secs(3600),
            interval: Duration::from_secs(6 * 3600),
        }
    }
}

/// Why a walk ended early.
#[derive(Debug)]
enum WalkEnd {
    Stopped,
    /// The meta service could not answer; the next walk tries again.
    Meta(tonic::Status),
}

/// What one walk over a disk deleted.
#[derive(Debug, Default, Clone, Copy)]
struct Collected {
    asked: u64,
    shards: u64,
    bytes: u64,
}

/// Spawns `blob-gc` (nothing when the interval is zero).
pub(crate) fn spawn(
    disks: Arc<DiskSet>,
    stats: Arc<Stats>,
    config: GcConfig,
    meta: Arc<MetaLink>,
    stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if config.interval.is_zero() {
        tracing::info!("garbage collection is off (gc interval 0)");
        return None;
    }
    let node_id = disks.node_id().to_owned();
    Some(tokio::spawn(
        run(disks, stats, config, meta, stop).instrument(tracing::info_span!("blob-gc", %node_id)),
    ))
}

async fn run(
    disks: Arc<DiskSet>,
    stats: Arc<Stats>,
    config: GcConfig,
    meta: Arc<MetaLink>,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(
        grace_secs = config.grace.as_secs(),
        interval_secs = config.interval.as_secs(),
        "garbage collection walker started"
    );
    let mut delay = config.interval.min(FIRST_PASS_MAX_DELAY);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = config.interval;
        let targets: Vec<(String, PathBuf)> = disks
            .healthy()
            .map(|d| (d.disk_id.clone(), d.path.clone()))
            .collect();
        let mut complete = true;
        for (disk_id, root) in targets {
            let started = Instant::now();
            let mut walk = Walk {
                disks: &disks,
                meta: &meta,
                stats: &stats,
                stop: &mut stop,
                disk_id: &disk_id,
                root: &root,
                grace: config.grace,
                total: Collected::default(),
            };
            match walk.disk().await {
                Ok(()) => {
                    let c = walk.total;
                    tracing::info!(
                        disk_id,
                        asked = c.asked,
                        deleted = c.shards,
                        bytes = c.bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "gc walk finished"
                    );
                }
                Err(WalkEnd::Stopped) => return,
                Err(WalkEnd::Meta(status)) if status.code() == tonic::Code::Unimplemented => {
                    tracing::info!("the meta service does not collect garbage yet (UNIMPLEMENTED); walk skipped");
                    complete = false;
                    break;
                }
                Err(WalkEnd::Meta(status)) => {
                    tracing::warn!(disk_id, error = %status, "gc walk abandoned: the meta service did not answer; retried at the next walk");
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            stats.gc_passes.fetch_add(1, Ordering::Relaxed);
            stats.gc_last_pass_end_ms.store(now_ms(), Ordering::Relaxed);
        }
    }
}

/// Whether a listed shard file is old enough to be asked about.
pub(crate) fn is_candidate(entry: &ShardEntry, now: SystemTime, grace: Duration) -> bool {
    // A file from the future (clock stepped back) is young.
    now.duration_since(entry.modified)
        .is_ok_and(|age| age >= grace)
}

/// One walk over one disk.
struct Walk<'a> {
    disks: &'a Arc<DiskSet>,
    meta: &'a MetaLink,
    stats: &'a Stats,
    stop: &'a mut watch::Receiver<bool>,
    disk_id: &'a str,
    root: &'a Path,
    grace: Duration,
    total: Collected,
}

impl Walk<'_> {
    async fn disk(&mut self) -> Result<(), WalkEnd> {
        let mut batch: Vec<ShardEntry> = Vec::new();
        for fanout in all_fanout_names() {
            if *self.stop.borrow() {
                return Err(WalkEnd::Stopped);
            }
            let root = self.root.to_owned();
            let listed = spawn_blocking(move || list_fanout(&root, &fanout))
                .await
                .map_err(BlobError::from)
                .and_then(|r| r);
            let entries = match listed {
                Ok(entries) => entries,
                Err(e) => {
                    let (disks, id) = (Arc::clone(self.disks), self.disk_id.to_owned());
                    if !spawn_blocking(move || disks.check(&id))
                        .await
                        .unwrap_or(false)
                    {
                        tracing::warn!(disk_id = self.disk_id, error = %e, "gc walk abandoned: the disk is faulty");
                        return Ok(());
                    }
                    tracing::warn!(disk_id = self.disk_id, error = %e, "cannot list a shard directory; skipped");
                    continue;
                }
            };
            let now = SystemTime::now();
            batch.extend(
                entries
                    .into_iter()
                    .filter(|e| is_candidate(e, now, self.grace)),
            );
            while batch.len() >= BATCH {
                let rest = batch.split_off(BATCH);
                self.collect(std::mem::replace(&mut batch, rest)).await?;
            }
        }
        if !batch.is_empty() {
            self.collect(batch).await?;
        }
        Ok(())
    }

    /// Asks the meta service about one batch and deletes exactly the keys it answers.
    async fn collect(&mut self, batch: Vec<ShardEntry>) -> Result<(), WalkEnd> {
        let request = CollectGarbageRequest {
            node_id: self.disks.node_id().to_owned(),
            disk_id: self.disk_id.to_owned(),
            shard_keys: batch.iter().map(|e| e.key.clone()).collect(),
        };
        let call = self.meta.call("CollectGarbage", |mut c| {
            let request = request.clone();
            async move { c.collect_garbage(request).await }
        });
        let reply = tokio::select! {
            biased;
            _ = self.stop.wait_for(|s| *s) => return Err(WalkEnd::Stopped),
            reply = call => reply.map_err(WalkEnd::Meta)?,
        };
        self.total.asked += batch.len() as u64;
        let asked: HashMap<String, u64> = batch.into_iter().map(|e| (e.key, e.file_len)).collect();
        let mut doomed = Vec::with_capacity(reply.garbage.len());
        for key in reply.garbage {
            match asked.get(&key) {
                Some(&len) => doomed.push((key, len)),
                // Never delete what was not asked about, whatever the answer says.
                None => {
                    tracing::warn!(disk_id = self.disk_id, shard_key = %key, "the meta service named a shard that was not asked about; ignored")
                }
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let root = self.root.to_owned();
        let disk_id = self.disk_id.to_owned();
        let deleted = spawn_blocking(move || {
            let mut done = Collected::default();
            for (key, len) in doomed {
                match delete_shard(&root, &key) {
                    Ok(true) => {
                        tracing::debug!(%disk_id, shard_key = %key, "garbage shard deleted");
                        done.shards += 1;
                        done.bytes += len;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%disk_id, shard_key = %key, error = %e, "cannot delete a garbage shard; the next walk retries");
                    }
                }
            }
            done
        })
        .await
        .unwrap_or_default();
        self.total.shards += deleted.shards;
        self.total.bytes += deleted.bytes;
        self.stats
            .gc_shards_deleted
            .fetch_add(deleted.shards, Ordering::Relaxed);
        self.stats
            .gc_bytes_deleted
            .fetch_add(deleted.bytes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{shard_dir, tmp_name};

    fn file(root: &Path, name: &str, key_for_dir: &str, age: Duration) -> PathBuf {
        let path = shard_dir(root, key_for_dir).join(name);
        std::fs::write(&path, b"x").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn only_committed_shards_older_than_the_grace_are_candidates() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("d0");
        DiskSet::open(std::slice::from_ref(&root), None).unwrap();
        let hour = Duration::from_secs(3600);
        file(&root, "old.0", "old.0", 2 * hour);
        file(&root, "young.0", "young.0", Duration::from_secs(60));
        // A put in progress (or left over): never listed, however old.
        file(&root, &tmp_name("old-tmp.0"), "old-tmp.0", 5 * hour);
        // Not a shard key: never listed.
        file(&root, "x+y", "x+y", 5 * hour);

        let now = SystemTime::now();
        let mut candidates = Vec::new();
        let mut listed = 0;
        for fanout in all_fanout_names() {
            for e in list_fanout(&root, &fanout).unwrap() {
                listed += 1;
                if is_candidate(&e, now, hour) {
                    candidates.push(e.key);
                }
            }
        }
        assert_eq!(listed, 2, "only the two shard files are listed");
        assert_eq!(candidates, vec!["old.0".to_owned()]);

        // A file dated in the future is young.
        let future = ShardEntry {
            key: "f".into(),
            file_len: 1,
            modified: now + hour,
        };
        assert!(!is_candidate(&future, now, Duration::ZERO));
    }
}
