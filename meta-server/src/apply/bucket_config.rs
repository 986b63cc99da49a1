//! Bucket configuration in the state machine: `SetBucketConfig` rewrites parts of a bucket
//! record (its tag set, CORS rules, policy, Object Lock default, lifecycle rules) in place.
//! The bucket's id, scheme and objects stay as they are.

use cairn_proto::meta::{
    Bucket, CorsConfiguration, LifecycleConfiguration, MetaError, ObjectLockRule, ObjectTag,
    VersioningStatus,
};
use prost::Message;
use rocksdb::{WriteBatch, DB};

use super::{error, read_bucket};
use crate::records;
use crate::store::{cf, StoreError, CF_BUCKETS};
use crate::types::{ObjectLockConfig, Response};

/// What a `SetBucketConfig` replaces; `None` leaves that part as it is.
pub(super) struct Changes<'a> {
    /// The tag set (empty: none).
    pub tags: Option<&'a [(String, String)]>,
    /// A prost-encoded `CorsConfiguration` (without rules: none).
    pub cors: Option<&'a [u8]>,
    /// The bucket policy JSON (empty: none).
    pub policy: Option<&'a str>,
    /// Enable Object Lock and set its default retention.
    pub object_lock: Option<&'a ObjectLockConfig>,
    /// A prost-encoded `LifecycleConfiguration` (without rules: none).
    pub lifecycle: Option<&'a [u8]>,
}

/// Replaces the parts of bucket `name`'s configuration that are `Some`.
pub(super) fn set(
    db: &DB,
    batch: &mut WriteBatch,
    name: &str,
    changes: Changes<'_>,
) -> Result<Response, StoreError> {
    let Changes {
        tags,
        cors,
        policy,
        object_lock,
        lifecycle,
    } = changes;
    let Some(mut bucket) = read_bucket(db, name)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    if let Some(lock) = object_lock {
        // Object Lock may be turned on later only where every version is kept already.
        let enabled = bucket.versioning == VersioningStatus::Enabled as i32;
        if !bucket.object_lock_enabled && !enabled {
            return Ok(error(MetaError::InvalidBucketState));
        }
        let rule = match lock.default_rule.as_deref().map(ObjectLockRule::decode) {
            None => None,
            Some(Ok(rule)) => Some(rule),
            Some(Err(_)) => return Ok(error(MetaError::InvalidArgument)),
        };
        bucket.object_lock_enabled = true;
        bucket.object_lock_default = rule;
    }
    if let Some(raw) = lifecycle {
        let Ok(config) = LifecycleConfiguration::decode(raw) else {
            return Ok(error(MetaError::InvalidArgument));
        };
        bucket.lifecycle = (!config.rules.is_empty()).then_some(config);
    }
    if let Some(policy) = policy {
        bucket.policy = policy.to_string();
    }
    if let Some(tags) = tags {
        bucket.tags = tags
            .iter()
            .map(|(key, value)| ObjectTag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
    }
    if let Some(raw) = cors {
        let Ok(config) = CorsConfiguration::decode(raw) else {
            return Ok(error(MetaError::InvalidArgument));
        };
        bucket.cors = (!config.rules.is_empty()).then_some(config);
    }
    batch.put_cf(
        cf(db, CF_BUCKETS)?,
        name.as_bytes(),
        records::encode(&bucket),
    );
    Ok(Response::Bucket {
        bucket: Bucket::encode_to_vec(&bucket),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::types::{Command, Request};
    use cairn_proto::meta::CorsRule;

    fn run(db: &DB, index: u64, command: Command) -> Result<Response, StoreError> {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000,
            command,
        };
        let response = apply(db, &mut batch, index, &request)?;
        db.write(batch)?;
        Ok(response)
    }

    fn config(name: &str, tags: Option<Vec<(String, String)>>, cors: Option<Vec<u8>>) -> Command {
        Command::SetBucketConfig {
            name: name.into(),
            tags,
            cors,
            policy: None,
            object_lock: None,
            lifecycle: None,
        }
    }

    #[test]
    fn tags_and_cors_are_set_and_removed_independently() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = crate::store::open(dir.path())?;
        let db = sm.db();
        assert_eq!(
            run(&db, 1, config("b", Some(vec![]), None))?,
            error(MetaError::NoSuchBucket)
        );
        run(
            &db,
            2,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        )?;
        let tags = vec![("a".to_string(), "1".to_string())];
        run(&db, 3, config("b", Some(tags), None))?;
        let cors = CorsConfiguration {
            rules: vec![CorsRule {
                allowed_origins: vec!["*".into()],
                allowed_methods: vec!["GET".into()],
                max_age_seconds: Some(10),
                ..Default::default()
            }],
        };
        run(&db, 4, config("b", None, Some(cors.encode_to_vec())))?;
        let bucket = read_bucket(&db, "b")?.ok_or(StoreError::LockPoisoned("bucket"))?;
        assert_eq!(bucket.id, 2);
        assert_eq!(bucket.tags.len(), 1);
        assert_eq!(bucket.cors.as_ref(), Some(&cors));

        // Removing the tags keeps the CORS rules, and the other way round.
        run(&db, 5, config("b", Some(vec![]), None))?;
        let bucket = read_bucket(&db, "b")?.ok_or(StoreError::LockPoisoned("bucket"))?;
        assert!(bucket.tags.is_empty());
        assert_eq!(bucket.cors.as_ref(), Some(&cors));
        run(
            &db,
            6,
            config(
                "b",
                None,
                Some(CorsConfiguration::default().encode_to_vec()),
            ),
        )?;
        let bucket = read_bucket(&db, "b")?.ok_or(StoreError::LockPoisoned("bucket"))?;
        assert_eq!(bucket.cors, None);
        assert_eq!(
            run(&db, 7, config("b", None, Some(vec![0xff, 0xff])))?,
            error(MetaError::InvalidArgument)
        );
        Ok(())
    }

    #[test]
    fn a_record_written_before_bucket_configuration_decodes() {
        // Format byte 1, then name = "b" (field 1) and id = 7 (field 2), as written before
        // bucket configuration existed.
        let raw = [1u8, 0x0a, 0x01, b'b', 0x10, 0x07];
        let decoded: Bucket = records::decode(&raw).expect("old record decodes");
        assert!(decoded.tags.is_empty());
        assert_eq!(decoded.cors, None);
        assert_eq!(decoded.id, 7);
    }
}
