//! Object Lock (S3's WORM) in the state machine: which versions a lock protects, how a
//! bucket's default retention reaches new versions, and which retention changes are allowed.
//!
//! Every decision here uses the entry's leader-stamped clock (`now`), so a retention that
//! runs out does so at the same log position on every replica.
//!
//! Durability argument: a protected version can leave the `objects` column family only
//! through [`super::versions::delete_version`] (a DELETE naming it, or a lifecycle action),
//! and that asks [`protects`] first. Every other path that removes versions
//! (`remove_all` / `remove_null` of an unversioned or suspended bucket's write or DELETE)
//! cannot meet a locked version: locks are only accepted in Object Lock buckets, whose
//! versioning is Enabled and cannot be suspended ([`super::versions::set_status`]).

use cairn_proto::meta::{Bucket, MetaError, ObjectLock, ObjectLockRule, RetentionMode};
use rocksdb::{WriteBatch, DB};

use super::{error, read_bucket};
use crate::records;
use crate::store::{cf, StoreError, CF_OBJECTS};
use crate::types::{Response, RetentionChange};

const DAY_MS: i64 = cairn_proto::lifecycle::DAY_MS;
/// A retention year is 365 days (as MinIO and Ceph count them).
const YEAR_MS: i64 = 365 * DAY_MS;

fn mode_of(lock: &ObjectLock) -> RetentionMode {
    RetentionMode::try_from(lock.mode).unwrap_or(RetentionMode::None)
}

/// Whether `lock` has a retention (a mode and a date), expired or not.
fn has_retention(lock: &ObjectLock) -> bool {
    mode_of(lock) != RetentionMode::None
}

/// Whether `lock` asks for anything (a retention or a legal hold).
pub(crate) fn is_set(lock: Option<&ObjectLock>) -> bool {
    lock.is_some_and(|l| has_retention(l) || l.legal_hold)
}

/// Whether `lock` forbids removing its version at `now`: a legal hold, or a retention whose
/// date has not come (a GOVERNANCE one not when the request bypasses it).
pub(crate) fn protects(lock: Option<&ObjectLock>, now: i64, bypass_governance: bool) -> bool {
    let Some(lock) = lock else {
        return false;
    };
    if lock.legal_hold {
        return true;
    }
    if lock.retain_until_ms <= now {
        return false;
    }
    match mode_of(lock) {
        RetentionMode::Compliance => true,
        RetentionMode::Governance => !bypass_governance,
        RetentionMode::None => false,
    }
}

/// The lock a new version of `bucket` gets, made at `now`: the one its write asked for
/// (refused with `NO_OBJECT_LOCK` outside an Object Lock bucket), with the bucket's default
/// retention when it asked for none.
pub(super) fn for_new_version(
    bucket: &Bucket,
    asked: Option<ObjectLock>,
    now: i64,
) -> Result<Option<ObjectLock>, MetaError> {
    if !bucket.object_lock_enabled {
        return if is_set(asked.as_ref()) {
            Err(MetaError::NoObjectLock)
        } else {
            Ok(None)
        };
    }
    let mut lock = asked.unwrap_or_default();
    if !has_retention(&lock) {
        if let Some(rule) = bucket.object_lock_default.as_ref() {
            lock.mode = rule.mode;
            lock.retain_until_ms = now.saturating_add(rule_length_ms(rule));
        }
    }
    Ok(is_set(Some(&lock)).then_some(lock))
}

/// How long a default retention lasts.
fn rule_length_ms(rule: &ObjectLockRule) -> i64 {
    if rule.years > 0 {
        i64::from(rule.years).saturating_mul(YEAR_MS)
    } else {
        i64::from(rule.days).saturating_mul(DAY_MS)
    }
}

/// Whether a retention in force (`old`) may become `change` at `now`. A retention whose date
/// has passed no longer binds. COMPLIANCE may only be extended (in COMPLIANCE mode);
/// GOVERNANCE may be extended in GOVERNANCE mode, and changed in any other way (shortened,
/// removed, made COMPLIANCE) only with the bypass, as MinIO and S3 have it.
fn retention_change_allowed(old: &ObjectLock, change: &RetentionChange, now: i64) -> bool {
    if !has_retention(old) || old.retain_until_ms <= now {
        return true;
    }
    let new_mode = RetentionMode::try_from(change.mode).unwrap_or(RetentionMode::None);
    let extends = change.retain_until_ms >= old.retain_until_ms;
    match mode_of(old) {
        RetentionMode::Compliance => new_mode == RetentionMode::Compliance && extends,
        RetentionMode::Governance => {
            change.bypass_governance || (new_mode == RetentionMode::Governance && extends)
        }
        RetentionMode::None => true,
    }
}

/// `SetObjectLock`: replaces the retention and/or the legal hold of the current version of
/// `key` (or of the version named).
pub(super) fn set(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    (bucket, key, version_id): (&str, &str, &str),
    retention: Option<&RetentionChange>,
    legal_hold: Option<bool>,
) -> Result<Response, StoreError> {
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    if !bucket.object_lock_enabled {
        return Ok(error(MetaError::NoObjectLock));
    }
    let (raw_key, mut object) = match super::versions::find_target(db, bucket.id, key, version_id)?
    {
        Ok(found) => found,
        Err(code) => return Ok(error(code)),
    };
    let mut lock = object.lock.take().unwrap_or_default();
    if let Some(change) = retention {
        if !retention_change_allowed(&lock, change, now) {
            object.lock = Some(lock);
            return Ok(error(MetaError::ObjectLocked));
        }
        lock.mode = change.mode;
        lock.retain_until_ms = change.retain_until_ms;
    }
    if let Some(hold) = legal_hold {
        lock.legal_hold = hold;
    }
    object.lock = is_set(Some(&lock)).then_some(lock);
    batch.put_cf(cf(db, CF_OBJECTS)?, raw_key, records::encode(&object));
    Ok(Response::LockSet {
        version_id: object.version_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(mode: RetentionMode, until: i64, hold: bool) -> ObjectLock {
        ObjectLock {
            mode: mode as i32,
            retain_until_ms: until,
            legal_hold: hold,
        }
    }

    fn change(mode: RetentionMode, until: i64, bypass: bool) -> RetentionChange {
        RetentionChange {
            mode: mode as i32,
            retain_until_ms: until,
            bypass_governance: bypass,
        }
    }

    #[test]
    fn what_protects_a_version() {
        use RetentionMode as M;
        assert!(!protects(None, 10, false));
        assert!(
            protects(Some(&lock(M::None, 0, true)), 10, true),
            "legal hold"
        );
        assert!(protects(Some(&lock(M::Compliance, 11, false)), 10, true));
        assert!(
            !protects(Some(&lock(M::Compliance, 10, false)), 10, false),
            "expired"
        );
        assert!(protects(Some(&lock(M::Governance, 11, false)), 10, false));
        assert!(
            !protects(Some(&lock(M::Governance, 11, false)), 10, true),
            "bypassed"
        );
    }

    #[test]
    fn which_retention_changes_are_allowed() {
        use RetentionMode as M;
        let now = 100;
        let compliance = lock(M::Compliance, 200, false);
        assert!(retention_change_allowed(
            &compliance,
            &change(M::Compliance, 300, false),
            now
        ));
        assert!(!retention_change_allowed(
            &compliance,
            &change(M::Compliance, 150, true),
            now
        ));
        assert!(!retention_change_allowed(
            &compliance,
            &change(M::Governance, 300, true),
            now
        ));
        assert!(!retention_change_allowed(
            &compliance,
            &change(M::None, 0, true),
            now
        ));
        let governance = lock(M::Governance, 200, false);
        assert!(retention_change_allowed(
            &governance,
            &change(M::Governance, 200, false),
            now
        ));
        assert!(!retention_change_allowed(
            &governance,
            &change(M::Governance, 150, false),
            now
        ));
        assert!(retention_change_allowed(
            &governance,
            &change(M::Governance, 150, true),
            now
        ));
        assert!(!retention_change_allowed(
            &governance,
            &change(M::Compliance, 300, false),
            now
        ));
        assert!(retention_change_allowed(
            &governance,
            &change(M::Compliance, 300, true),
            now
        ));
        assert!(retention_change_allowed(
            &governance,
            &change(M::None, 0, true),
            now
        ));
        // Once the date has passed, anything goes.
        assert!(retention_change_allowed(
            &compliance,
            &change(M::None, 0, false),
            200
        ));
    }

    #[test]
    fn new_versions_get_the_default_unless_they_ask() {
        use RetentionMode as M;
        let mut bucket = Bucket::default();
        let asked = lock(M::Governance, 5000, false);
        assert_eq!(
            for_new_version(&bucket, Some(asked), 0),
            Err(MetaError::NoObjectLock)
        );
        assert_eq!(for_new_version(&bucket, None, 0), Ok(None));
        bucket.object_lock_enabled = true;
        assert_eq!(for_new_version(&bucket, None, 0), Ok(None));
        bucket.object_lock_default = Some(ObjectLockRule {
            mode: M::Compliance as i32,
            days: 2,
            years: 0,
        });
        assert_eq!(
            for_new_version(&bucket, None, 7),
            Ok(Some(lock(M::Compliance, 7 + 2 * DAY_MS, false)))
        );
        assert_eq!(for_new_version(&bucket, Some(asked), 7), Ok(Some(asked)));
        // A legal hold alone still gets the default retention.
        assert_eq!(
            for_new_version(&bucket, Some(lock(M::None, 0, true)), 7),
            Ok(Some(lock(M::Compliance, 7 + 2 * DAY_MS, true)))
        );
        bucket.object_lock_default = Some(ObjectLockRule {
            mode: M::Governance as i32,
            days: 0,
            years: 1,
        });
        assert_eq!(
            for_new_version(&bucket, None, 0),
            Ok(Some(lock(M::Governance, YEAR_MS, false)))
        );
    }
}

/// The rules above as the state machine applies them, command by command.
#[cfg(test)]
mod apply_tests {
    use cairn_proto::meta::{
        MetaError, ObjectLock, ObjectLockRule, ObjectVersion, RetentionMode, VersioningStatus,
    };
    use prost::Message;
    use rocksdb::{WriteBatch, DB};

    use crate::apply::{apply, read_bucket, version_id};
    use crate::types::{Command, ObjectLockConfig, Request, Response, RetentionChange};

    const DAY: i64 = super::DAY_MS;

    fn run(db: &DB, index: u64, now_ms: i64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let response = apply(db, &mut batch, index, &Request { now_ms, command }).expect("apply");
        db.write(batch).expect("write");
        response
    }

    fn error(code: MetaError) -> Response {
        Response::Error { code: code as i32 }
    }

    fn commit(key: &str, attempt: &str, lock: Option<ObjectLock>) -> Command {
        Command::CommitObject {
            object: ObjectVersion {
                bucket: "b".into(),
                key: key.into(),
                etag: attempt.into(),
                upload_id: attempt.into(),
                lock,
                ..Default::default()
            }
            .encode_to_vec(),
            condition: None,
        }
    }

    fn delete(version: u64, bypass: bool) -> Command {
        Command::DeleteObject {
            bucket: "b".into(),
            key: "k".into(),
            condition: None,
            version_id: Some(version_id(version)),
            bypass_governance: bypass,
        }
    }

    fn committed_lock(response: &Response) -> Option<ObjectLock> {
        match response {
            Response::Committed { object, .. } => {
                ObjectVersion::decode(object.as_slice())
                    .expect("decode")
                    .lock
            }
            other => panic!("not committed: {other:?}"),
        }
    }

    fn governance(until: i64) -> ObjectLock {
        ObjectLock {
            mode: RetentionMode::Governance as i32,
            retain_until_ms: until,
            legal_hold: false,
        }
    }

    #[test]
    fn locked_versions_stay_until_their_date_or_a_bypass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        // A plain bucket takes no locks and cannot be given Object Lock unversioned.
        run(
            &db,
            1,
            0,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        assert_eq!(
            run(&db, 2, 0, commit("k", "a", Some(governance(DAY)))),
            error(MetaError::NoObjectLock)
        );
        let enable = |rule: Option<ObjectLockRule>| Command::SetBucketConfig {
            name: "b".into(),
            tags: None,
            cors: None,
            policy: None,
            object_lock: Some(ObjectLockConfig {
                default_rule: rule.map(|r| r.encode_to_vec()),
            }),
            lifecycle: None,
        };
        assert_eq!(
            run(&db, 3, 0, enable(None)),
            error(MetaError::InvalidBucketState)
        );
        run(
            &db,
            4,
            0,
            Command::SetBucketVersioning {
                name: "b".into(),
                status: VersioningStatus::Enabled as i32,
            },
        );
        let rule = ObjectLockRule {
            mode: RetentionMode::Compliance as i32,
            days: 1,
            years: 0,
        };
        assert!(matches!(
            run(&db, 5, 0, enable(Some(rule))),
            Response::Bucket { .. }
        ));
        let bucket = read_bucket(&db, "b").expect("read").expect("bucket");
        assert!(bucket.object_lock_enabled);
        // Versioning can no longer be suspended.
        assert_eq!(
            run(
                &db,
                6,
                0,
                Command::SetBucketVersioning {
                    name: "b".into(),
                    status: VersioningStatus::Suspended as i32,
                },
            ),
            error(MetaError::InvalidBucketState)
        );

        // Version 7 asks for GOVERNANCE until day 2; version 8 gets the default (COMPLIANCE,
        // one day from its commit at 100).
        let asked = run(&db, 7, 100, commit("k", "a", Some(governance(2 * DAY))));
        assert_eq!(committed_lock(&asked), Some(governance(2 * DAY)));
        let defaulted = run(&db, 8, 100, commit("k", "b", None));
        assert_eq!(
            committed_lock(&defaulted).map(|l| (l.mode(), l.retain_until_ms)),
            Some((RetentionMode::Compliance, 100 + DAY))
        );

        // Before their dates neither goes; GOVERNANCE yields to a bypass, COMPLIANCE never.
        assert_eq!(
            run(&db, 9, 200, delete(7, false)),
            error(MetaError::ObjectLocked)
        );
        assert_eq!(
            run(&db, 10, 200, delete(8, true)),
            error(MetaError::ObjectLocked)
        );
        assert!(matches!(
            run(&db, 11, 200, delete(7, true)),
            Response::Deleted {
                deleted: Some(_),
                ..
            }
        ));
        // A delete without a version id only adds a marker: always allowed.
        let marker = run(
            &db,
            12,
            200,
            Command::DeleteObject {
                bucket: "b".into(),
                key: "k".into(),
                condition: None,
                version_id: None,
                bypass_governance: false,
            },
        );
        assert!(matches!(
            marker,
            Response::Deleted {
                marker: Some(_),
                ..
            }
        ));

        // COMPLIANCE may be extended, not shortened; a legal hold outlasts it.
        let set = |retention: Option<RetentionChange>, hold: Option<bool>| Command::SetObjectLock {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id(8),
            retention,
            legal_hold: hold,
        };
        let compliance = |until: i64, bypass: bool| RetentionChange {
            mode: RetentionMode::Compliance as i32,
            retain_until_ms: until,
            bypass_governance: bypass,
        };
        assert_eq!(
            run(&db, 13, 300, set(Some(compliance(50, true)), None)),
            error(MetaError::ObjectLocked)
        );
        assert_eq!(
            run(
                &db,
                14,
                300,
                set(Some(compliance(3 * DAY, false)), Some(true))
            ),
            Response::LockSet {
                version_id: version_id(8)
            }
        );
        // Past the retention, the hold still protects; released, the version can go.
        assert_eq!(
            run(&db, 15, 4 * DAY, delete(8, false)),
            error(MetaError::ObjectLocked)
        );
        run(&db, 16, 4 * DAY, set(None, Some(false)));
        assert!(matches!(
            run(&db, 17, 4 * DAY, delete(8, false)),
            Response::Deleted {
                deleted: Some(_),
                ..
            }
        ));
        // A delete marker has no lock to set.
        assert_eq!(
            run(
                &db,
                18,
                4 * DAY,
                Command::SetObjectLock {
                    bucket: "b".into(),
                    key: "k".into(),
                    version_id: version_id(12),
                    retention: None,
                    legal_hold: Some(true),
                },
            ),
            error(MetaError::MethodNotAllowed)
        );
    }
}
