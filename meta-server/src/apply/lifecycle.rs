//! Lifecycle actions in the state machine (`ApplyLifecycle`), and the expiry reported with
//! an object (`x-amz-expiration`).
//!
//! The leader's scanner ([`crate::lifecycle`]) proposes actions it found due, but between
//! its scan and this entry a client may have overwritten the key, changed its tags, or
//! changed the rules. So each action is judged again here, against the state as of this
//! entry and the entry's own clock, with the same rules ([`cairn_proto::lifecycle`]); an
//! action that is no longer due does nothing. Object Lock is honoured as for any DELETE:
//! lifecycle never bypasses a retention or a legal hold.
//!
//! Reads see the database as it was before this entry (the batch is not visible to them), so
//! every action of an entry is judged on the state before the entry, as S3 judges all the
//! rules of one pass on the same state. Actions on one key touch different records (a new
//! delete marker, older versions), and an action repeated in an entry is carried out once.
//!
//! The length of a lifecycle day is part of the replicated state (`SetLifecycleDay`, fixed
//! once per cluster, a real day unless a test cluster was created with a short one), so
//! no node's local setting can change when other nodes' data expires.

use std::collections::HashSet;

use cairn_proto::lifecycle::{self, Days, Subject};
use cairn_proto::meta::{Bucket, LifecycleConfiguration, LifecycleExpiry, ObjectVersion};
use rocksdb::{WriteBatch, DB};

use super::{multipart, read_bucket, versions};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_CLUSTER, CF_OBJECTS};
use crate::types::{LifecycleAction, Response};

/// When `object`, as the current version of its key in `bucket`, expires under the bucket's
/// rules (real days: this is what clients are told).
pub(crate) fn expiry_of(bucket: &Bucket, object: &ObjectVersion) -> Option<LifecycleExpiry> {
    if object.delete_marker {
        return None;
    }
    let config = bucket.lifecycle.as_ref()?;
    let subject = Subject {
        key: &object.key,
        tags: &object.tags,
        size: object.size,
    };
    lifecycle::current_expiry(config, &subject, object.last_modified_ms, Days::REAL).map(
        |(expiry_ms, rule_id)| LifecycleExpiry {
            expiry_ms,
            rule_id: rule_id.to_string(),
        },
    )
}

/// One version of a key as the checks below need it, newest first.
struct VersionInfo {
    version_id: String,
    object: ObjectVersion,
}

/// Every version of `key`, newest first.
fn versions_of(db: &DB, bucket_id: u64, key: &str) -> Result<Vec<VersionInfo>, StoreError> {
    let start = keys::object_versions_start(bucket_id, key);
    let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
    iter.seek(&start);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
        if !k.starts_with(&start) {
            break;
        }
        let object: ObjectVersion = records::decode(v)?;
        out.push(VersionInfo {
            version_id: object.version_id.clone(),
            object,
        });
        iter.next();
    }
    iter.status()?;
    Ok(out)
}

/// The cluster's lifecycle day, once fixed (`SetLifecycleDay`).
pub(crate) fn read_day_ms(db: &DB) -> Result<Option<i64>, StoreError> {
    let raw = db.get_cf(cf(db, CF_CLUSTER)?, super::KEY_LIFECYCLE_DAY)?;
    Ok(raw.and_then(|r| String::from_utf8_lossy(&r).parse().ok()))
}

/// `ApplyLifecycle`: carries out the actions still due at `now`.
pub(super) fn apply(
    db: &DB,
    batch: &mut WriteBatch,
    (index, now): (u64, i64),
    actions: &[LifecycleAction],
) -> Result<Response, StoreError> {
    let days = Days {
        day_ms: read_day_ms(db)?.unwrap_or(lifecycle::DAY_MS).max(1),
    };
    let mut seen: HashSet<&LifecycleAction> = HashSet::new();
    let mut applied = 0u32;
    for action in actions {
        if !seen.insert(action) {
            continue;
        }
        let (bucket, key) = target_of(action);
        let Some(record) = read_bucket(db, bucket)? else {
            continue;
        };
        let Some(config) = record.lifecycle.as_ref() else {
            continue;
        };
        let done = match action {
            LifecycleAction::AbortUpload { upload_id, .. } => {
                abort_upload(db, batch, (&record, key, upload_id), config, (now, days))?
            }
            LifecycleAction::ExpireCurrent { version_id, .. } => expire_current(
                db,
                batch,
                (&record, key, version_id),
                config,
                (index, now, days),
            )?,
            LifecycleAction::RemoveLoneMarker { version_id, .. } => {
                remove_lone_marker(db, batch, (&record, key, version_id), config, (now, days))?
            }
            LifecycleAction::ExpireNoncurrent { version_id, .. } => {
                expire_noncurrent(db, batch, (&record, key, version_id), config, (now, days))?
            }
        };
        applied += u32::from(done);
    }
    Ok(Response::LifecycleApplied { applied })
}

fn target_of(action: &LifecycleAction) -> (&str, &str) {
    match action {
        LifecycleAction::ExpireCurrent { bucket, key, .. }
        | LifecycleAction::RemoveLoneMarker { bucket, key, .. }
        | LifecycleAction::ExpireNoncurrent { bucket, key, .. }
        | LifecycleAction::AbortUpload { bucket, key, .. } => (bucket, key),
    }
}

/// Whether a `delete_version` answer removed something.
fn removed(response: &Response) -> bool {
    matches!(
        response,
        Response::Deleted {
            deleted: Some(_),
            ..
        }
    )
}

fn abort_upload(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, upload_id): (&Bucket, &str, &str),
    config: &LifecycleConfiguration,
    (now, days): (i64, Days),
) -> Result<bool, StoreError> {
    let Some(upload) = multipart::read_upload(db, bucket.id, key, upload_id)? else {
        return Ok(false);
    };
    if !lifecycle::upload_due(config, key, upload.initiated_ms, now, days) {
        return Ok(false);
    }
    let response = multipart::abort(db, batch, (&bucket.name, key, upload_id))?;
    Ok(matches!(response, Response::Aborted { .. }))
}

fn expire_current(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, version_id): (&Bucket, &str, &str),
    config: &LifecycleConfiguration,
    (index, now, days): (u64, i64, Days),
) -> Result<bool, StoreError> {
    let all = versions_of(db, bucket.id, key)?;
    let Some(current) = all.first() else {
        return Ok(false);
    };
    if current.version_id != version_id || current.object.delete_marker {
        return Ok(false);
    }
    let subject = Subject {
        key,
        tags: &current.object.tags,
        size: current.object.size,
    };
    let due = lifecycle::current_expiry(config, &subject, current.object.last_modified_ms, days);
    if due.is_none_or(|(at, _)| at > now) {
        return Ok(false);
    }
    // As a DELETE without a version id: a delete marker in a versioned bucket (nothing is
    // lost), removal in an unversioned one (which holds no locked versions).
    let response = versions::delete_current(db, batch, (&bucket.name, key), index, now)?;
    Ok(matches!(response, Response::Deleted { .. }))
}

fn remove_lone_marker(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, version_id): (&Bucket, &str, &str),
    config: &LifecycleConfiguration,
    (now, days): (i64, Days),
) -> Result<bool, StoreError> {
    let all = versions_of(db, bucket.id, key)?;
    let [only] = all.as_slice() else {
        return Ok(false);
    };
    if only.version_id != version_id || !only.object.delete_marker {
        return Ok(false);
    }
    if !lifecycle::lone_marker_due(config, key, only.object.last_modified_ms, now, days) {
        return Ok(false);
    }
    let s3_id = versions::s3_version_id(&only.object).to_string();
    let response = versions::delete_version(db, batch, (&bucket.name, key, &s3_id), now, false)?;
    Ok(removed(&response))
}

fn expire_noncurrent(
    db: &DB,
    batch: &mut WriteBatch,
    (bucket, key, version_id): (&Bucket, &str, &str),
    config: &LifecycleConfiguration,
    (now, days): (i64, Days),
) -> Result<bool, StoreError> {
    let all = versions_of(db, bucket.id, key)?;
    // Position 0 is current; a noncurrent version has a successor (the one before it).
    let Some(position) = all
        .iter()
        .position(|v| v.version_id == version_id)
        .filter(|&p| p > 0)
    else {
        return Ok(false);
    };
    let target = &all[position].object;
    let noncurrent_since = all[position - 1].object.last_modified_ms;
    // Noncurrent versions newer than this one: those between it and the current version.
    let newer_noncurrent = u32::try_from(position - 1).unwrap_or(u32::MAX);
    let subject = Subject {
        key,
        tags: &target.tags,
        size: target.size,
    };
    if !lifecycle::noncurrent_due(
        config,
        &subject,
        noncurrent_since,
        newer_noncurrent,
        now,
        days,
    ) {
        return Ok(false);
    }
    let s3_id = versions::s3_version_id(target).to_string();
    let response = versions::delete_version(db, batch, (&bucket.name, key, &s3_id), now, false)?;
    Ok(removed(&response))
}

#[cfg(test)]
mod tests {
    use cairn_proto::meta::{
        LifecycleConfiguration, LifecycleRule, ObjectVersion, VersioningStatus,
    };
    use prost::Message;
    use rocksdb::{WriteBatch, DB};

    use crate::apply::{apply, version_id};
    use crate::store::MetaReader;
    use crate::types::{Command, LifecycleAction, Request, Response};

    /// A test day: 1 s.
    const DAY: i64 = 1000;

    fn run(db: &DB, index: u64, now_ms: i64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let response = apply(db, &mut batch, index, &Request { now_ms, command }).expect("apply");
        db.write(batch).expect("write");
        response
    }

    /// Bucket `b` (id 1) and a lifecycle day of [`DAY`] (entries 1 and 2).
    fn setup(db: &DB, object_lock: bool) {
        let bucket = Command::CreateBucket {
            name: "b".into(),
            object_lock,
        };
        run(db, 1, 0, bucket);
        assert_eq!(
            run(db, 2, 0, Command::SetLifecycleDay { day_ms: DAY }),
            Response::LifecycleDay { day_ms: DAY }
        );
    }

    fn commit(key: &str, attempt: &str) -> Command {
        Command::CommitObject {
            object: ObjectVersion {
                bucket: "b".into(),
                key: key.into(),
                etag: attempt.into(),
                upload_id: attempt.into(),
                size: 10,
                ..Default::default()
            }
            .encode_to_vec(),
            condition: None,
        }
    }

    fn rules(rule: LifecycleRule) -> Command {
        Command::SetBucketConfig {
            name: "b".into(),
            tags: None,
            cors: None,
            policy: None,
            object_lock: None,
            lifecycle: Some(LifecycleConfiguration { rules: vec![rule] }.encode_to_vec()),
        }
    }

    fn lifecycle(actions: Vec<LifecycleAction>) -> Command {
        Command::ApplyLifecycle { actions }
    }

    fn applied(response: Response) -> u32 {
        match response {
            Response::LifecycleApplied { applied } => applied,
            other => panic!("not a lifecycle answer: {other:?}"),
        }
    }

    fn current(reader: &MetaReader, key: &str) -> Option<ObjectVersion> {
        reader.object(1, key).expect("read")
    }

    fn expire(key: &str, version: u64) -> LifecycleAction {
        LifecycleAction::ExpireCurrent {
            bucket: "b".into(),
            key: key.into(),
            version_id: version_id(version),
        }
    }

    fn noncurrent(version: u64) -> LifecycleAction {
        LifecycleAction::ExpireNoncurrent {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id(version),
        }
    }

    fn hold(version: u64, on: bool) -> Command {
        Command::SetObjectLock {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id(version),
            retention: None,
            legal_hold: Some(on),
        }
    }

    #[test]
    fn a_current_version_expires_only_when_due_and_still_current() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        setup(&db, false);
        run(
            &db,
            3,
            0,
            rules(LifecycleRule {
                id: "r".into(),
                enabled: true,
                expiration_days: Some(2),
                ..Default::default()
            }),
        );
        run(&db, 4, 0, commit("k", "a"));
        // Not yet due: nothing happens.
        assert_eq!(
            applied(run(&db, 5, DAY, lifecycle(vec![expire("k", 4)]))),
            0
        );
        assert!(current(&reader, "k").is_some());
        // Overwritten since the scan: the stale action does nothing to the new version.
        run(&db, 6, DAY, commit("k", "b"));
        assert_eq!(
            applied(run(&db, 7, 3 * DAY, lifecycle(vec![expire("k", 4)]))),
            0
        );
        assert_eq!(current(&reader, "k").expect("kept").etag, "b");
        // Due and current: gone (an unversioned bucket removes it).
        assert_eq!(
            applied(run(&db, 8, 3 * DAY, lifecycle(vec![expire("k", 6)]))),
            1
        );
        assert_eq!(current(&reader, "k"), None);
        // The day was fixed when the cluster began: a later proposal changes nothing.
        assert_eq!(
            run(&db, 9, 0, Command::SetLifecycleDay { day_ms: 5 }),
            Response::LifecycleDay { day_ms: DAY }
        );
    }

    #[test]
    fn versioned_buckets_get_markers_and_lose_old_versions_unless_locked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        let reader = MetaReader::new(db.clone());
        setup(&db, true);
        run(
            &db,
            3,
            0,
            rules(LifecycleRule {
                id: "r".into(),
                enabled: true,
                expiration_days: Some(1),
                noncurrent_days: Some(1),
                ..Default::default()
            }),
        );
        run(&db, 4, 0, commit("k", "a"));
        run(&db, 5, 0, commit("k", "b"));
        run(&db, 6, 0, commit("k", "c"));
        // Version 4 is under a legal hold: noncurrent, due, and kept.
        run(&db, 7, 0, hold(4, true));
        assert_eq!(
            applied(run(&db, 8, 5 * DAY, lifecycle(vec![noncurrent(4)]))),
            0
        );
        // In one entry: the current version expires into a delete marker (nothing is
        // lost), and noncurrent version 5 goes; a repeated action counts once.
        let both = vec![expire("k", 6), noncurrent(5), noncurrent(5)];
        assert_eq!(applied(run(&db, 9, 5 * DAY, lifecycle(both))), 2);
        let marker = current(&reader, "k").expect("a marker");
        assert!(marker.delete_marker);
        assert_eq!(
            crate::apply::read_bucket(&db, "b")
                .expect("read")
                .expect("bucket")
                .versioning,
            VersioningStatus::Enabled as i32
        );
        // Released, version 4 goes; version 6 (noncurrent since the marker) too.
        run(&db, 10, 5 * DAY, hold(4, false));
        let older = vec![noncurrent(4), noncurrent(6)];
        assert_eq!(applied(run(&db, 11, 7 * DAY, lifecycle(older))), 2);
        // Only the marker is left: the lone marker goes once a rule says so.
        let lone = LifecycleAction::RemoveLoneMarker {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id(9),
        };
        assert_eq!(applied(run(&db, 12, 7 * DAY, lifecycle(vec![lone]))), 1);
        assert_eq!(current(&reader, "k"), None);
    }
}
