//! Counters of the background maintenance (scrubber, GC walker), shared by the tasks that
//! count and the `NodeInfo` call that reports them. Plain atomics: each counter is read and
//! written on its own; a report may mix values from either side of an update, which is fine
//! for figures an operator reads.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use cairn_proto::blob::MaintenanceStats;

/// Since the server started.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) scrub_shards: AtomicU64,
    pub(crate) scrub_bytes: AtomicU64,
    pub(crate) scrub_corrupt: AtomicU64,
    pub(crate) scrub_passes: AtomicU64,
    pub(crate) scrub_last_pass_end_ms: AtomicI64,
    pub(crate) gc_shards_deleted: AtomicU64,
    pub(crate) gc_bytes_deleted: AtomicU64,
    pub(crate) gc_passes: AtomicU64,
    pub(crate) gc_last_pass_end_ms: AtomicI64,
}

impl Stats {
    /// A snapshot for `NodeInfo`.
    pub(crate) fn snapshot(&self) -> MaintenanceStats {
        let u = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let i = |a: &AtomicI64| a.load(Ordering::Relaxed);
        MaintenanceStats {
            scrub_shards: u(&self.scrub_shards),
            scrub_bytes: u(&self.scrub_bytes),
            scrub_corrupt: u(&self.scrub_corrupt),
            scrub_passes: u(&self.scrub_passes),
            scrub_last_pass_end_ms: i(&self.scrub_last_pass_end_ms),
            gc_shards_deleted: u(&self.gc_shards_deleted),
            gc_bytes_deleted: u(&self.gc_bytes_deleted),
            gc_passes: u(&self.gc_passes),
            gc_last_pass_end_ms: i(&self.gc_last_pass_end_ms),
        }
    }
}

/// Wall clock, milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
