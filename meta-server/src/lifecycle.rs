//! The lifecycle scanner: finds the object versions and multipart uploads that buckets'
//! lifecycle rules say are due, and proposes their expiration through Raft.
//!
//! Runs on every meta node and acts only where a local node leads the group, like the heal
//! trigger. Every [`LifecycleSettings::interval`] it walks each bucket that has rules: the
//! versions of each key (newest first, so it knows which is current and since when the others
//! are noncurrent) and the uploads in progress. What it finds due goes out in
//! `ApplyLifecycle` entries of at most [`ACTIONS_PER_ENTRY`] actions; the state machine judges
//! each again at its own log position ([`crate::apply::lifecycle`]), so a scan that raced a
//! client's write cannot expire what the write just made. Nothing here deletes shards: the
//! versions removed become garbage that the blob servers' collector reclaims.
//!
//! The length of a lifecycle day is cluster state, not this node's setting: the first leader
//! proposes its configured day (`SetLifecycleDay`, first proposal wins) within seconds of
//! leading, and every scan and every apply uses the stored one. A test setting left on one
//! node of an existing cluster therefore changes nothing.

use std::time::Duration;

use cairn_proto::lifecycle::{self, Days, Subject};
use cairn_proto::meta::{Bucket, LifecycleConfiguration, ObjectVersion};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::apply::object_lock;
use crate::apply::versions::s3_version_id;
use crate::group::{now_ms, Group, GroupMap};
use crate::joined::JoinState;
use crate::store::MetaReader;
use crate::types::{Command, LifecycleAction, Response};

/// Versions read per step of a bucket walk.
const SCAN_BATCH: usize = 1000;
/// Actions proposed in one Raft entry.
const ACTIONS_PER_ENTRY: usize = 100;
/// How often a node checks whether it leads (and so whether a scan is its job).
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// How often the rules are applied, and the lifecycle day a new cluster gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// Time between two scans (the first comes one interval after this node leads).
    pub interval: Duration,
    /// The length of a lifecycle day for a cluster created by this node: a real day, except
    /// in tests that want to watch expiration happen (then due dates are not rounded to
    /// midnight). An existing cluster keeps the day it was created with.
    pub day: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            day: Duration::from_millis(lifecycle::DAY_MS as u64),
        }
    }
}

/// Starts the scanner (named `lifecycle` in traces).
pub fn spawn(joined: JoinState, settings: LifecycleSettings) -> JoinHandle<()> {
    tokio::spawn(run(joined, settings).instrument(tracing::info_span!(
        "lifecycle",
        interval = ?settings.interval,
        day = ?settings.day
    )))
}

async fn run(joined: JoinState, settings: LifecycleSettings) {
    let wanted_day = i64::try_from(settings.day.as_millis())
        .unwrap_or(lifecycle::DAY_MS)
        .max(1);
    // When this node last scanned as leader; `None` while it does not lead.
    let mut last_scan: Option<tokio::time::Instant> = None;
    // The cluster's day, once read: it never changes after it is fixed.
    let mut settled: Option<i64> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY.min(settings.interval)).await;
        let Some(j) = joined.get() else { continue };
        let system = j.groups.system_group();
        if !crate::heal_trigger::leads(system) {
            last_scan = None;
            continue;
        }
        let started = *last_scan.get_or_insert_with(tokio::time::Instant::now);
        let day_ms = match settled {
            Some(day_ms) => day_ms,
            None => match cluster_day(system, wanted_day).await {
                Ok(day_ms) => *settled.insert(day_ms),
                Err(e) => {
                    debug!(error = %e, "cannot settle the lifecycle day yet");
                    continue;
                }
            },
        };
        if started.elapsed() < settings.interval {
            continue;
        }
        last_scan = Some(tokio::time::Instant::now());
        match scan(&j.groups, Days { day_ms }).await {
            Ok(0) => {}
            Ok(applied) => info!(applied, "lifecycle rules expired versions or uploads"),
            Err(e) => warn!(error = %e, "lifecycle scan failed; retrying at the next interval"),
        }
    }
}

/// The cluster's lifecycle day: the stored one, or (for a new cluster) `wanted`, proposed.
async fn cluster_day(group: &Group, wanted: i64) -> Result<i64, String> {
    let reader = group
        .linearizable_reader()
        .await
        .map_err(|e| e.to_string())?;
    let stored = reader.lifecycle_day_ms().map_err(|e| e.to_string())?;
    let day_ms = match stored {
        Some(day_ms) => day_ms,
        None => match group
            .write(Command::SetLifecycleDay { day_ms: wanted })
            .await
        {
            Ok(Response::LifecycleDay { day_ms }) => day_ms,
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(e) => return Err(e.to_string()),
        },
    };
    if day_ms != lifecycle::DAY_MS {
        warn!(
            day_ms,
            "this cluster's lifecycle day is shortened: objects expire in test time"
        );
    }
    if day_ms != wanted {
        warn!(
            day_ms,
            wanted,
            "ignoring the configured lifecycle day: the cluster keeps the one it was created with"
        );
    }
    Ok(day_ms)
}

/// One pass over every bucket with rules; returns how many actions were carried out.
async fn scan(groups: &GroupMap, days: Days) -> Result<u64, String> {
    let buckets = groups
        .system_group()
        .linearizable_reader()
        .await
        .map_err(|e| e.to_string())?
        .buckets()
        .map_err(|e| e.to_string())?;
    let mut applied = 0;
    for bucket in buckets {
        let Some(config) = bucket.lifecycle.as_ref() else {
            continue;
        };
        if !config.rules.iter().any(|r| r.enabled) {
            continue;
        }
        // A bucket's objects and uploads live in its own group.
        let group = groups.for_bucket(&bucket.name);
        let reader = group
            .linearizable_reader()
            .await
            .map_err(|e| e.to_string())?;
        let mut proposer = Proposer {
            group,
            pending: Vec::new(),
            applied: 0,
        };
        if has_version_actions(config) {
            scan_versions(reader, &bucket, config, days, &mut proposer).await?;
        }
        scan_uploads(reader, &bucket, config, days, &mut proposer).await?;
        proposer.flush().await?;
        applied += proposer.applied;
    }
    Ok(applied)
}

/// Whether some enabled rule acts on versions (rather than only on uploads).
fn has_version_actions(config: &LifecycleConfiguration) -> bool {
    config.rules.iter().any(|r| {
        r.enabled
            && (r.expiration_days.is_some()
                || r.expiration_date_ms.is_some()
                || r.expired_object_delete_marker
                || r.noncurrent_days.is_some())
    })
}

/// Gathers actions and proposes them [`ACTIONS_PER_ENTRY`] at a time.
struct Proposer<'g> {
    group: &'g Group,
    pending: Vec<LifecycleAction>,
    applied: u64,
}

impl Proposer<'_> {
    async fn push(&mut self, action: LifecycleAction) -> Result<(), String> {
        self.pending.push(action);
        if self.pending.len() >= ACTIONS_PER_ENTRY {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let actions = std::mem::take(&mut self.pending);
        let response = self
            .group
            .write(Command::ApplyLifecycle { actions })
            .await
            .map_err(|e| e.to_string())?;
        if let Response::LifecycleApplied { applied } = response {
            self.applied += u64::from(applied);
        }
        Ok(())
    }
}

/// Walks the versions of `bucket`, key by key.
async fn scan_versions(
    reader: &MetaReader,
    bucket: &Bucket,
    config: &LifecycleConfiguration,
    days: Days,
    proposer: &mut Proposer<'_>,
) -> Result<(), String> {
    let mut after: Option<Vec<u8>> = None;
    // The versions of the key being gathered (a key's versions may span two pages).
    let mut key_versions: Vec<ObjectVersion> = Vec::new();
    loop {
        let (page, next) = reader
            .versions_page(bucket.id, "", after.as_deref(), SCAN_BATCH)
            .map_err(|e| e.to_string())?;
        for version in page {
            if key_versions.first().is_some_and(|v| v.key != version.key) {
                for action in due_for_key(bucket, config, &key_versions, now_ms(), days) {
                    proposer.push(action).await?;
                }
                key_versions.clear();
            }
            key_versions.push(version);
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    for action in due_for_key(bucket, config, &key_versions, now_ms(), days) {
        proposer.push(action).await?;
    }
    Ok(())
}

/// What the rules say about one key, given its versions newest first.
fn due_for_key(
    bucket: &Bucket,
    config: &LifecycleConfiguration,
    versions: &[ObjectVersion],
    now: i64,
    days: Days,
) -> Vec<LifecycleAction> {
    let mut out = Vec::new();
    let Some(current) = versions.first() else {
        return out;
    };
    let action_for = |v: &ObjectVersion| (bucket.name.clone(), v.key.clone(), v.version_id.clone());
    if current.delete_marker {
        if versions.len() == 1
            && lifecycle::lone_marker_due(config, &current.key, current.last_modified_ms, now, days)
        {
            let (bucket, key, version_id) = action_for(current);
            out.push(LifecycleAction::RemoveLoneMarker {
                bucket,
                key,
                version_id,
            });
        }
    } else {
        let subject = Subject {
            key: &current.key,
            tags: &current.tags,
            size: current.size,
        };
        let due = lifecycle::current_expiry(config, &subject, current.last_modified_ms, days);
        if due.is_some_and(|(at, _)| at <= now) {
            let (bucket, key, version_id) = action_for(current);
            out.push(LifecycleAction::ExpireCurrent {
                bucket,
                key,
                version_id,
            });
        }
    }
    for (position, version) in versions.iter().enumerate().skip(1) {
        if object_lock::protects(version.lock.as_ref(), now, false) {
            continue;
        }
        let subject = Subject {
            key: &version.key,
            tags: &version.tags,
            size: version.size,
        };
        let since = versions[position - 1].last_modified_ms;
        let newer = u32::try_from(position - 1).unwrap_or(u32::MAX);
        if lifecycle::noncurrent_due(config, &subject, since, newer, now, days) {
            debug!(key = %version.key, version = s3_version_id(version), "noncurrent version due");
            let (bucket, key, version_id) = action_for(version);
            out.push(LifecycleAction::ExpireNoncurrent {
                bucket,
                key,
                version_id,
            });
        }
    }
    out
}

/// Walks the multipart uploads in progress in `bucket`.
async fn scan_uploads(
    reader: &MetaReader,
    bucket: &Bucket,
    config: &LifecycleConfiguration,
    days: Days,
    proposer: &mut Proposer<'_>,
) -> Result<(), String> {
    if !config
        .rules
        .iter()
        .any(|r| r.abort_incomplete_days.is_some())
    {
        return Ok(());
    }
    let (mut key_marker, mut id_marker) = (String::new(), String::new());
    loop {
        let page = reader
            .uploads(bucket.id, "", "", &key_marker, &id_marker, SCAN_BATCH)
            .map_err(|e| e.to_string())?;
        let now = now_ms();
        for upload in &page.uploads {
            if lifecycle::upload_due(config, &upload.key, upload.initiated_ms, now, days) {
                proposer
                    .push(LifecycleAction::AbortUpload {
                        bucket: bucket.name.clone(),
                        key: upload.key.clone(),
                        upload_id: upload.upload_id.clone(),
                    })
                    .await?;
            }
        }
        match page.uploads.last() {
            Some(last) if page.is_truncated => {
                key_marker.clone_from(&last.key);
                id_marker.clone_from(&last.upload_id);
            }
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::{LifecycleRule, ObjectLock, RetentionMode};

    fn version(id: u64, mtime: i64, marker: bool) -> ObjectVersion {
        ObjectVersion {
            bucket: "b".into(),
            key: "k".into(),
            version_id: crate::apply::version_id(id),
            last_modified_ms: mtime,
            delete_marker: marker,
            versioned: true,
            ..Default::default()
        }
    }

    fn bucket(rule: LifecycleRule) -> (Bucket, LifecycleConfiguration) {
        let config = LifecycleConfiguration { rules: vec![rule] };
        let bucket = Bucket {
            name: "b".into(),
            lifecycle: Some(config.clone()),
            ..Default::default()
        };
        (bucket, config)
    }

    #[test]
    fn current_noncurrent_and_lone_markers() {
        let (b, config) = bucket(LifecycleRule {
            id: "r".into(),
            enabled: true,
            expiration_days: Some(1),
            noncurrent_days: Some(1),
            ..Default::default()
        });
        let day = Days { day_ms: 1000 };
        // Newest first: current at 5000, then versions made noncurrent at 5000 and 1000.
        let versions = [
            version(3, 5000, false),
            version(2, 1000, false),
            version(1, 0, false),
        ];
        let due = due_for_key(&b, &config, &versions, 5500, day);
        assert_eq!(
            due,
            vec![LifecycleAction::ExpireNoncurrent {
                bucket: "b".into(),
                key: "k".into(),
                version_id: crate::apply::version_id(1),
            }]
        );
        let due = due_for_key(&b, &config, &versions, 6000, day);
        assert_eq!(due.len(), 3, "{due:?}");
        // A lone delete marker goes once it is a day old; one with versions under it stays.
        let marker = [version(4, 0, true)];
        assert_eq!(due_for_key(&b, &config, &marker, 999, day), vec![]);
        assert!(matches!(
            due_for_key(&b, &config, &marker, 1000, day).as_slice(),
            [LifecycleAction::RemoveLoneMarker { .. }]
        ));
        let covered = [version(4, 0, true), version(1, 0, false)];
        assert!(matches!(
            due_for_key(&b, &config, &covered, 10_000, day).as_slice(),
            [LifecycleAction::ExpireNoncurrent { .. }]
        ));
    }

    #[test]
    fn locked_noncurrent_versions_are_left_alone() {
        let (b, config) = bucket(LifecycleRule {
            id: "r".into(),
            enabled: true,
            noncurrent_days: Some(1),
            ..Default::default()
        });
        let mut locked = version(1, 0, false);
        locked.lock = Some(ObjectLock {
            mode: RetentionMode::Compliance as i32,
            retain_until_ms: 1_000_000,
            legal_hold: false,
        });
        let versions = [version(2, 0, false), locked];
        assert_eq!(
            due_for_key(&b, &config, &versions, 10_000, Days { day_ms: 1000 }),
            vec![]
        );
    }
}
