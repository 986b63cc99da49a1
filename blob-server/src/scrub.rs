//! The scrubber: slowly re-reads every shard file of every disk and verifies its checksums.
//!
//! Why: a shard is verified whenever it is read, but cold data may not be read for years,
//! while bits rot and sectors die silently. Erasure coding only protects an object while
//! fewer than m+1 of its shards are bad, so damage must be found (and healed) long before a
//! reader needs it. The scrubber finds it; the meta service queues the object for healing.
//!
//! How (modelled on Garage's `block/repair.rs` scrub worker):
//! - One task (`blob-scrub`) per server walks each healthy disk's 256 fan-out directories in
//!   order and reads every committed shard file through the normal reader
//!   ([`ShardReader`]), which checks the header, the size and every chunk's BLAKE3. Reads run
//!   as short jobs (1 MiB) on the blocking pool, so a stop request or a shutdown is noticed
//!   between jobs and no thread is held for a whole pass.
//! - Reading is paced to at most `rate` bytes per second per server (`--scrub-rate`), so a
//!   pass never competes seriously with client I/O. A pass over a disk starts `interval`
//!   (`--scrub-interval`, 30 days by default) after the previous one started, or as soon as it
//!   ended if it took longer.
//! - Progress is kept per disk in `cairn-scrub.json` (the pass in progress, the next fan-out
//!   directory, when the last pass started and ended), written atomically at most every
//!   10 s and at the end of a pass, so a restart resumes a pass instead of starting it over
//!   and does not start a new one early.
//! - A shard file that is corrupt (bad header, wrong size, chunk checksum mismatch) or
//!   unreadable (an I/O error on a disk that still passes its probe) is counted, logged and
//!   reported to the meta service (`ReportDamage`, reason `HEAL_REASON_SCRUB`, by
//!   `blob-damage-report`), which queues its object for healing. An I/O error on a disk that
//!   fails its probe marks the disk FAULTY and ends that disk's pass instead.
//! - The scrubber never deletes or rewrites anything: a damaged shard stays until the healer
//!   has replaced it and garbage collection removes the old file.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::meta::{HealReason, ReportDamageRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::{spawn_blocking, JoinHandle};
use tracing::Instrument;

use crate::disk::DiskSet;
use crate::error::BlobError;
use crate::fsutil::write_file_atomically;
use crate::layout::shard_dir;
use crate::meta_link::MetaLink;
use crate::shard_file::{ShardReader, HEADER_SIZE};
use crate::stats::{now_ms, Stats};
use crate::store::list_fanout;

/// Per-disk progress file, in the data directory.
pub(crate) const STATE_FILE: &str = "cairn-scrub.json";
const STATE_FORMAT_VERSION: u32 = 1;
/// Bytes verified per blocking job.
const SLICE: u64 = 1 << 20;
/// How often the progress of a pass in progress is saved.
const SAVE_EVERY: Duration = Duration::from_secs(10);
/// Pause between two rounds over the disks, whatever the interval.
const MIN_PAUSE: Duration = Duration::from_secs(1);
/// Longest sleep before looking at the disks again (a disk may have come back).
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Damage reports waiting for the meta service; more are dropped (and found again by the
/// next pass).
const DAMAGE_QUEUE: usize = 1024;
/// Attempts to report one damaged shard before leaving it to the next pass.
const REPORT_ATTEMPTS: u32 = 6;

/// How the scrubber runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Most bytes per second the scrubber reads (all disks of the server together); 0 turns
    /// scrubbing off.
    pub rate_bytes_per_sec: u64,
    /// Time from the start of one pass over a disk to the start of the next (the next starts
    /// as soon as the previous ended if that took longer).
    pub interval: Duration,
}

impl Default for ScrubConfig {
    /// 8 MiB/s (a 10 TB disk in about 14 days), a pass every 30 days.
    fn default() -> Self {
        ScrubConfig {
            rate_bytes_per_sec: 8 << 20,
            interval: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Contents of `cairn-scrub.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ScrubState {
    format_version: u32,
    /// Start of the pass in progress (ms since the Unix epoch); 0 = none in progress.
    pass_start_ms: i64,
    /// The next fan-out directory (0..=255) of the pass in progress.
    next_fanout: u32,
    last_pass_start_ms: i64,
    last_pass_end_ms: i64,
}

/// A shard file found corrupt or unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Damage {
    pub(crate) disk_id: String,
    pub(crate) shard_key: String,
    pub(crate) reason: String,
}

/// What scrubbing one shard file found.
#[derive(Debug)]
enum Verdict {
    /// Verified; its data length.
    Sound(u64),
    /// Deleted since the directory was listed.
    Gone,
    /// Corrupt; why.
    Damaged(String),
    /// An I/O error: the file or the whole disk is failing.
    IoError(BlobError),
    /// Asked to stop.
    Stopped,
}

/// How a pass over a disk ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PassEnd {
    Done,
    /// The disk failed its probe during the pass.
    DiskFailed,
    Stopped,
}

/// The scrubber's side of a server: disks, counters, where damage goes, and the stop signal.
pub(crate) struct Scrubber {
    pub(crate) disks: Arc<DiskSet>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) config: ScrubConfig,
    pub(crate) damage: mpsc::Sender<Damage>,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Spawns `blob-scrub` and, when `meta` is given, `blob-damage-report`. Returns the handles
/// (both stop when `stop` turns true). Nothing is spawned when the rate is 0.
pub(crate) fn spawn(
    disks: Arc<DiskSet>,
    stats: Arc<Stats>,
    config: ScrubConfig,
    meta: Option<Arc<MetaLink>>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    if config.rate_bytes_per_sec == 0 {
        tracing::info!("scrubbing is off (scrub rate 0)");
        return Vec::new();
    }
    let node_id = disks.node_id().to_owned();
    let (tx, rx) = mpsc::channel(DAMAGE_QUEUE);
    let report = tokio::spawn(
        report_damage(rx, meta, node_id.clone(), stop.clone())
            .instrument(tracing::info_span!("blob-damage-report", %node_id)),
    );
    let scrubber = Scrubber {
        disks,
        stats,
        config,
        damage: tx,
        stop,
    };
    let scrub = tokio::spawn(
        scrubber
            .run()
            .instrument(tracing::info_span!("blob-scrub", %node_id)),
    );
    vec![scrub, report]
}

impl Scrubber {
    /// Rounds over the disks until stopped: each disk whose pass is due (or in progress) is
    /// scrubbed, then the task sleeps until the next one is due.
    async fn run(mut self) {
        tracing::info!(
            rate_bytes_per_sec = self.config.rate_bytes_per_sec,
            interval_secs = self.config.interval.as_secs(),
            "scrubber started"
        );
        let interval_ms = i64::try_from(self.config.interval.as_millis()).unwrap_or(i64::MAX);
        loop {
            let targets: Vec<(String, PathBuf)> = self
                .disks
                .healthy()
                .map(|d| (d.disk_id.clone(), d.path.clone()))
                .collect();
            let mut next_due: Option<i64> = None;
            for (disk_id, root) in targets {
                let state = load_state(&root).await;
                let due = if state.pass_start_ms != 0 {
                    0 // a pass in progress resumes at once
                } else {
                    state
                        .last_pass_start_ms
                        .saturating_add(interval_ms)
                        .max(state.last_pass_end_ms)
                };
                if due > now_ms() {
                    next_due = Some(next_due.map_or(due, |d| d.min(due)));
                    continue;
                }
                if self.scrub_disk(&disk_id, &root, state).await == PassEnd::Stopped {
                    return;
                }
                // Its next pass is due an interval after this one started (or now, if this
                // one took longer); after a failed disk, look again in a while.
                let due = now_ms().saturating_add(interval_ms.min(MAX_PAUSE.as_millis() as i64));
                next_due = Some(next_due.map_or(due, |d| d.min(due)));
            }
            let wait = next_due.map_or(MAX_PAUSE, |due| {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0))
            });
            let wait = wait.clamp(MIN_PAUSE, MAX_PAUSE);
            tokio::select! {
                biased;
                _ = self.stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass (or the rest of one) over the disk at `root`.
    pub(crate) async fn scrub_disk(
        &mut self,
        disk_id: &str,
        root: &Path,
        mut state: ScrubState,
    ) -> PassEnd {
        let started = Instant::now();
        if state.pass_start_ms == 0 {
            state.pass_start_ms = now_ms();
            state.next_fanout = 0;
            save_state(root, &state).await;
        }
        tracing::info!(disk_id, from_dir = state.next_fanout, "scrub pass started");
        let mut pacer = Pacer::new(self.config.rate_bytes_per_sec);
        let (mut shards, mut bytes, mut damaged) = (0u64, 0u64, 0u64);
        let mut saved = Instant::now();
        for fanout in state.next_fanout..256 {
            let name = format!("{fanout:02x}");
            let listed = {
                let root = root.to_owned();
                spawn_blocking(move || list_fanout(&root, &name))
                    .await
                    .map_err(BlobError::from)
                    .and_then(|r| r)
            };
            let entries = match listed {
                Ok(entries) => entries,
                Err(e) => {
                    if !self.disk_still_healthy(disk_id).await {
                        tracing::warn!(disk_id, error = %e, "scrub pass abandoned: the disk is faulty");
                        return PassEnd::DiskFailed;
                    }
                    tracing::warn!(disk_id, error = %e, "cannot list a shard directory; skipped");
                    continue;
                }
            };
            for entry in entries {
                let verdict = scrub_shard(root, &entry.key, &mut pacer, &mut self.stop).await;
                let reason = match verdict {
                    Verdict::Sound(len) => {
                        shards += 1;
                        bytes += len;
                        self.stats.scrub_shards.fetch_add(1, Ordering::Relaxed);
                        self.stats.scrub_bytes.fetch_add(len, Ordering::Relaxed);
                        continue;
                    }
                    Verdict::Gone => continue,
                    Verdict::Stopped => return PassEnd::Stopped,
                    Verdict::Damaged(reason) => reason,
                    Verdict::IoError(e) => {
                        if !self.disk_still_healthy(disk_id).await {
                            tracing::warn!(disk_id, error = %e, "scrub pass abandoned: the disk is faulty");
                            return PassEnd::DiskFailed;
                        }
                        format!("unreadable: {e}")
                    }
                };
                damaged += 1;
                self.stats.scrub_corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    disk_id,
                    shard_key = %entry.key,
                    reason = %reason,
                    "scrub found a damaged shard file; reporting it for healing"
                );
                let damage = Damage {
                    disk_id: disk_id.to_owned(),
                    shard_key: entry.key,
                    reason,
                };
                if self.damage.try_send(damage).is_err() {
                    tracing::warn!(
                        disk_id,
                        "damage report queue full; the next pass reports it"
                    );
                }
            }
            state.next_fanout = fanout + 1;
            if saved.elapsed() >= SAVE_EVERY {
                save_state(root, &state).await;
                saved = Instant::now();
            }
        }
        let end = now_ms();
        state.last_pass_start_ms = state.pass_start_ms;
        state.last_pass_end_ms = end;
        state.pass_start_ms = 0;
        state.next_fanout = 0;
        save_state(root, &state).await;
        self.stats.scrub_passes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .scrub_last_pass_end_ms
            .store(end, Ordering::Relaxed);
        tracing::info!(
            disk_id,
            shards,
            bytes,
            damaged,
            secs = started.elapsed().as_secs(),
            "scrub pass finished"
        );
        PassEnd::Done
    }

    /// Probes the disk after an I/O error (see `DiskSet::check`).
    async fn disk_still_healthy(&self, disk_id: &str) -> bool {
        let (disks, id) = (Arc::clone(&self.disks), disk_id.to_owned());
        spawn_blocking(move || disks.check(&id))
            .await
            .unwrap_or(false)
    }
}

/// Reads and verifies one shard file in slices, paced.
async fn scrub_shard(
    root: &Path,
    key: &str,
    pacer: &mut Pacer,
    stop: &mut watch::Receiver<bool>,
) -> Verdict {
    let path = shard_dir(root, key).join(key);
    let key_owned = key.to_owned();
    let opened = spawn_blocking(move || ShardReader::open(&path, &key_owned)).await;
    let mut reader = match opened {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => return classify(e),
        Err(e) => return Verdict::IoError(BlobError::from(e)),
    };
    if !pacer.pace(HEADER_SIZE as u64, stop).await {
        return Verdict::Stopped;
    }
    let len = reader.len();
    let mut pos = 0;
    while pos < len {
        let n = SLICE.min(len - pos);
        let job = spawn_blocking(move || {
            let read = reader.read_range(pos, n, |_| std::ops::ControlFlow::Continue(()));
            (reader, read)
        })
        .await;
        let (back, read) = match job {
            Ok(done) => done,
            Err(e) => return Verdict::IoError(BlobError::from(e)),
        };
        reader = back;
        if let Err(e) = read {
            return classify(e);
        }
        pos += n;
        if !pacer.pace(n, stop).await {
            return Verdict::Stopped;
        }
    }
    Verdict::Sound(len)
}

fn classify(e: BlobError) -> Verdict {
    match e {
        BlobError::ShardNotFound(_) => Verdict::Gone,
        BlobError::Io { .. } | BlobError::Task(_) => Verdict::IoError(e),
        other => Verdict::Damaged(other.to_string()),
    }
}

/// Keeps a reader at or below `rate` bytes per second on average. After a stretch slower
/// than the rate (a busy disk) it does not let the reader burst to catch up by more than a
/// second's worth.
struct Pacer {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    fn new(rate: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Accounts for `n` bytes just read and sleeps if ahead of the rate; `false` when asked to
    /// stop.
    async fn pace(&mut self, n: u64, stop: &mut watch::Receiver<bool>) -> bool {
        self.bytes = self.bytes.saturating_add(n);
        let due = self.start + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let now = Instant::now();
        if due > now {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return false,
                () = tokio::time::sleep_until(due.into()) => {}
            }
        } else if now - due > Duration::from_secs(1) {
            self.start = now;
            self.bytes = 0;
        }
        !*stop.borrow()
    }
}

/// Reads a disk's scrub state; a missing or unreadable file is a fresh state (logged).
async fn load_state(root: &Path) -> ScrubState {
    let path = root.join(STATE_FILE);
    let read = spawn_blocking(move || std::fs::read(&path)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return ScrubState::default(),
        Ok(Err(e)) => {
            tracing::warn!(path = %root.join(STATE_FILE).display(), error = %e, "cannot read the scrub state; starting afresh");
            return ScrubState::default();
        }
        Err(_) => return ScrubState::default(),
    };
    match serde_json::from_slice::<ScrubState>(&bytes) {
        Ok(state) if state.format_version == STATE_FORMAT_VERSION && state.next_fanout <= 256 => {
            state
        }
        Ok(_) | Err(_) => {
            tracing::warn!(path = %root.join(STATE_FILE).display(), "unusable scrub state; starting afresh");
            ScrubState::default()
        }
    }
}

/// Writes a disk's scrub state atomically; a failure is logged (the pass goes on, and at
/// worst a restart redoes part of it).
async fn save_state(root: &Path, state: &ScrubState) {
    let mut state = state.clone();
    state.format_version = STATE_FORMAT_VERSION;
    let path = root.join(STATE_FILE);
    let saved = spawn_blocking(move || {
        let json = serde_json::to_vec_pretty(&state).map_err(|e| BlobError::InvalidIdentity {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_file_atomically(&path, &json)
    })
    .await
    .map_err(BlobError::from)
    .and_then(|r| r);
    if let Err(e) = saved {
        tracing::warn!(path = %root.join(STATE_FILE).display(), error = %e, "cannot save the scrub state");
    }
}

/// `blob-damage-report`: hands each damaged shard to the meta service (`ReportDamage`),
/// retrying for a while when it is unreachable. A report that still fails is dropped: the
/// next pass finds the shard again.
async fn report_damage(
    mut rx: mpsc::Receiver<Damage>,
    meta: Option<Arc<MetaLink>>,
    node_id: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut warned_unimplemented = false;
    loop {
        let damage = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            next = rx.recv() => match next {
                Some(d) => d,
                None => return,
            },
        };
        let Some(meta) = &meta else {
            tracing::warn!(shard_key = %damage.shard_key, "no meta service configured; damaged shard not reported");
            continue;
        };
        let request = ReportDamageRequest {
            shard_key: damage.shard_key.clone(),
            node_id: node_id.clone(),
            disk_id: damage.disk_id.clone(),
            reason: HealReason::Scrub as i32,
            ..Default::default()
        };
        let mut delay = Duration::from_secs(1);
        for attempt in 1..=REPORT_ATTEMPTS {
            let call = meta.call("ReportDamage", |mut c| {
                let request = request.clone();
                async move { c.report_damage(request).await }
            });
            let outcome = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                outcome = call => outcome,
            };
            match outcome {
                Ok(reply) => {
                    tracing::info!(
                        disk_id = %damage.disk_id,
                        shard_key = %damage.shard_key,
                        queued = reply.queued,
                        "damaged shard reported to the meta service"
                    );
                    break;
                }
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    if !warned_unimplemented {
                        tracing::warn!("the meta service does not take damage reports yet (UNIMPLEMENTED); damaged shards are only logged");
                        warned_unimplemented = true;
                    }
                    break;
                }
                Err(status) => {
                    tracing::warn!(
                        shard_key = %damage.shard_key,
                        attempt,
                        error = %status,
                        "cannot report a damaged shard"
                    );
                    if attempt == REPORT_ATTEMPTS {
                        break;
                    }
                    tokio::select! {
                        biased;
                        _ = stop.wait_for(|s| *s) => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::SHARDS_DIR;
    use crate::shard_file::{ShardWriter, CHUNK_SIZE, HASH_LEN};

    fn write_shard(root: &Path, key: &str, data: &[u8]) -> PathBuf {
        let dir = shard_dir(root, key);
        let path = dir.join(key);
        let mut w = ShardWriter::create(&path, key).unwrap();
        w.write(data).unwrap();
        w.finish().unwrap();
        path
    }

    #[tokio::test]
    async fn a_flipped_byte_is_found_and_reported_and_nothing_is_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("d0");
        let disks = Arc::new(DiskSet::open(std::slice::from_ref(&root), None).unwrap());
        let disk_id = disks.all()[0].disk_id.clone();
        let data: Vec<u8> = (0..3 * CHUNK_SIZE + 17).map(|i| (i % 251) as u8).collect();
        let good = write_shard(&root, "good.0", &data);
        let bad = write_shard(&root, "bad.1", &data);
        let header_bad = write_shard(&root, "header.2", b"small");
        let mut bytes = std::fs::read(&bad).unwrap();
        bytes[HEADER_SIZE + (CHUNK_SIZE + HASH_LEN) + 5] ^= 0x01; // chunk 1
        std::fs::write(&bad, bytes).unwrap();
        let mut bytes = std::fs::read(&header_bad).unwrap();
        bytes[20] ^= 0x80; // the data length in the header
        std::fs::write(&header_bad, bytes).unwrap();
        // A put in progress is not scrubbed.
        let tmp_file = shard_dir(&root, "inflight.3").join(crate::layout::tmp_name("inflight.3"));
        std::fs::write(&tmp_file, b"half").unwrap();

        let (tx, mut rx) = mpsc::channel(16);
        let (_stop_tx, stop) = watch::channel(false);
        let stats = Arc::new(Stats::default());
        let mut scrubber = Scrubber {
            disks: Arc::clone(&disks),
            stats: Arc::clone(&stats),
            config: ScrubConfig {
                rate_bytes_per_sec: 1 << 30,
                interval: Duration::from_secs(1),
            },
            damage: tx,
            stop,
        };
        let end = scrubber
            .scrub_disk(&disk_id, &root, ScrubState::default())
            .await;
        assert_eq!(end, PassEnd::Done);
        let mut found = Vec::new();
        while let Ok(d) = rx.try_recv() {
            found.push(d);
        }
        found.sort_by(|a, b| a.shard_key.cmp(&b.shard_key));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].shard_key, "bad.1");
        assert!(found[0].reason.contains("checksum"), "{}", found[0].reason);
        assert_eq!(found[1].shard_key, "header.2");
        assert!(found.iter().all(|d| d.disk_id == disk_id));
        let snap = stats.snapshot();
        assert_eq!(snap.scrub_shards, 1);
        assert_eq!(snap.scrub_bytes, data.len() as u64);
        assert_eq!(snap.scrub_corrupt, 2);
        assert_eq!(snap.scrub_passes, 1);
        assert!(snap.scrub_last_pass_end_ms > 0);
        for path in [&good, &bad, &header_bad, &tmp_file] {
            assert!(path.exists(), "the scrubber deleted {}", path.display());
        }
        // The pass is recorded: the next one is not due before the interval.
        let state = load_state(&root).await;
        assert_eq!(state.pass_start_ms, 0);
        assert!(state.last_pass_end_ms >= state.last_pass_start_ms);
        assert!(state.last_pass_start_ms > 0);
        assert!(root.join(SHARDS_DIR).is_dir());
    }

    #[tokio::test]
    async fn the_pacer_holds_the_rate() {
        let (_tx, mut stop) = watch::channel(false);
        let mut pacer = Pacer::new(4 << 20);
        let t = Instant::now();
        for _ in 0..4 {
            assert!(pacer.pace(1 << 20, &mut stop).await);
        }
        let secs = t.elapsed().as_secs_f64();
        assert!((0.9..3.0).contains(&secs), "4 MiB at 4 MiB/s took {secs} s");
    }
}
