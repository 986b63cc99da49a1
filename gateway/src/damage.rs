//! Damage reports: a read (or a degraded write) that found a shard missing, unreachable,
//! timed out or corrupt tells the meta service, which queues the version for the healer.
//!
//! Why fire-and-forget: a report must never slow or fail the request that noticed the damage,
//! and it is only a hint (the healer re-checks every shard, and scrubbing finds what reports
//! miss). Why deduplicated: a hot broken object would otherwise send one RPC per GET; one
//! report per version per window is enough to queue it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::meta::HealReason;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::meta_client::Meta;

/// A version reported within this window is not reported again.
const DEDUP_WINDOW: Duration = Duration::from_secs(30);
/// Past this many remembered versions, expired entries are swept out (bounds memory under a
/// storm of distinct damaged objects).
const SWEEP_AT: usize = 4096;

/// Which object version is damaged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct VersionRef {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
}

/// Sends deduplicated damage reports in the background.
pub(crate) struct DamageReports {
    meta: Arc<Meta>,
    window: Duration,
    recent: Mutex<HashMap<VersionRef, Instant>>,
}

impl DamageReports {
    pub fn new(meta: Arc<Meta>) -> Self {
        Self {
            meta,
            window: DEDUP_WINDOW,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `version` should be reported now (not reported within the window); records
    /// the report if so.
    fn first_in_window(&self, version: &VersionRef, now: Instant) -> bool {
        let Ok(mut recent) = self.recent.lock() else {
            // A poisoned map only costs deduplication, never the report.
            return true;
        };
        if recent
            .get(version)
            .is_some_and(|at| now.duration_since(*at) < self.window)
        {
            return false;
        }
        if recent.len() >= SWEEP_AT {
            let window = self.window;
            recent.retain(|_, at| now.duration_since(*at) < window);
        }
        recent.insert(version.clone(), now);
        true
    }

    /// Reports `version` as damaged (`why` is for the log), unless it was reported within
    /// the window. Returns at once; the RPC runs in a `report_damage` task whose failure is
    /// logged and otherwise ignored.
    pub fn report(&self, version: &VersionRef, reason: HealReason, why: &str) {
        if !self.first_in_window(version, Instant::now()) {
            debug!(bucket = %version.bucket, key = %version.key, version = %version.version_id, why, "damage already reported");
            return;
        }
        let meta = Arc::clone(&self.meta);
        let version = version.clone();
        let span = info_span!(
            "report_damage",
            bucket = %version.bucket,
            key = %version.key,
            version = %version.version_id,
            reason = reason.as_str_name(),
        );
        let why = why.to_string();
        tokio::spawn(
            async move {
                match meta
                    .report_damage(&version.bucket, &version.key, &version.version_id, reason)
                    .await
                {
                    Ok(queued) => info!(queued, why, "damage reported"),
                    Err(e) => warn!(error = %e, why, "damage report failed; ignored"),
                }
            }
            .instrument(span),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(key: &str) -> VersionRef {
        VersionRef {
            bucket: "b".into(),
            key: key.into(),
            version_id: "1".into(),
        }
    }

    // A tokio runtime: lazy gRPC channels spawn their buffer task.
    #[tokio::test]
    async fn a_version_is_reported_once_per_window() {
        let meta = Arc::new(Meta::new(&["http://127.0.0.1:1".to_string()]).unwrap());
        let reports = DamageReports::new(meta);
        let t0 = Instant::now();
        assert!(reports.first_in_window(&version("a"), t0));
        assert!(!reports.first_in_window(&version("a"), t0 + Duration::from_secs(1)));
        assert!(reports.first_in_window(&version("b"), t0 + Duration::from_secs(1)));
        assert!(reports.first_in_window(&version("a"), t0 + DEDUP_WINDOW));
    }

    #[tokio::test]
    async fn expired_entries_are_swept() {
        let meta = Arc::new(Meta::new(&["http://127.0.0.1:1".to_string()]).unwrap());
        let reports = DamageReports::new(meta);
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            assert!(reports.first_in_window(&version(&i.to_string()), t0));
        }
        let later = t0 + DEDUP_WINDOW + Duration::from_secs(1);
        assert!(reports.first_in_window(&version("new"), later));
        assert_eq!(reports.recent.lock().unwrap().len(), 1);
    }
}
