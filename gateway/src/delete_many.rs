//! DeleteObjects: up to 1,000 keys in one request, each removed exactly like a DeleteObject
//! (one Raft entry per key, a few keys at a time), with a result for every key. A key that
//! does not exist counts as deleted, as in S3 (unless an ETag condition named it).

use std::sync::Arc;

use futures::StreamExt;
use s3s::dto::{Delete, DeleteObjectsOutput, DeletedObject, ObjectIdentifier};
use s3s::S3Error;

use crate::blob_pool::{object_shards, spawn_delete_shards};
use crate::error::{ApiError, ApiResult};
use crate::{conditions, names, versioning, Gateway};

/// Most keys one request may name (S3's limit).
pub(crate) const MAX_KEYS: usize = 1000;
/// Keys deleted at the same time.
const PARALLEL: usize = 16;

/// What the caller of a DeleteObjects may do, as the access check decided it.
pub(crate) struct Permissions<'a> {
    /// Keys the caller may not delete (see `crate::access`): answered `AccessDenied`.
    pub denied: Option<&'a std::collections::HashSet<String>>,
    /// x-amz-bypass-governance-retention, when the caller may use it: GOVERNANCE retentions
    /// do not protect the versions named.
    pub bypass_governance: bool,
}

/// Deletes the listed keys of `bucket`, except the denied ones. Fails as a whole only for a
/// malformed list or a missing bucket; anything else (a version Object Lock protects, say)
/// is reported per key, in quiet mode too.
pub(crate) async fn delete_objects(
    gw: &Gateway,
    bucket: &str,
    delete: Delete,
    permissions: Permissions<'_>,
) -> ApiResult<DeleteObjectsOutput> {
    let Permissions {
        denied,
        bypass_governance,
    } = permissions;
    if delete.objects.is_empty() || delete.objects.len() > MAX_KEYS {
        return Err(ApiError::MalformedXml(format!(
            "The XML you provided was not well-formed or did not validate against our published schema: a Delete lists 1 to {MAX_KEYS} objects, this one {}",
            delete.objects.len()
        )));
    }
    gw.meta.get_bucket(bucket).await?;
    let quiet = delete.quiet.unwrap_or(false);
    let results: Vec<(ObjectIdentifier, ApiResult<Outcome>)> =
        futures::stream::iter(delete.objects)
            .map(|obj| async move {
                let result = if denied.is_some_and(|d| d.contains(&obj.key)) {
                    Err(ApiError::AccessDenied("Access Denied".into()))
                } else {
                    delete_one(gw, bucket, &obj, bypass_governance).await
                };
                (obj, result)
            })
            .buffered(PARALLEL)
            .collect()
            .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (obj, result) in results {
        match result {
            Ok(_) if quiet => {}
            Ok(outcome) => deleted.push(DeletedObject {
                key: Some(obj.key),
                version_id: obj.version_id,
                delete_marker: outcome.delete_marker.then_some(true),
                delete_marker_version_id: outcome
                    .delete_marker
                    .then_some(outcome.version_id)
                    .flatten(),
            }),
            Err(e) => {
                let err = S3Error::from(e);
                errors.push(s3s::dto::Error {
                    code: Some(err.code().as_str().to_string()),
                    key: Some(obj.key),
                    message: err.message().map(str::to_string),
                    version_id: obj.version_id,
                });
            }
        }
    }
    Ok(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    })
}

/// What deleting one key did, in S3's terms.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// A delete marker was created, or the version removed was one.
    pub delete_marker: bool,
    /// The marker's version id, or the version id the request named.
    pub version_id: Option<String>,
}

/// One key of the list, as DeleteObject removes it.
async fn delete_one(
    gw: &Gateway,
    bucket: &str,
    obj: &ObjectIdentifier,
    bypass_governance: bool,
) -> ApiResult<Outcome> {
    names::validate_key(&obj.key)?;
    let version_id = versioning::check_id(obj.version_id.as_deref())?;
    if obj.last_modified_time.is_some() || obj.size.is_some() {
        return Err(ApiError::NotImplemented(
            "conditional deletes on size or modification time".into(),
        ));
    }
    // An ETag is an If-Match, checked in the delete's Raft entry.
    let if_match = obj
        .e_tag
        .as_ref()
        .map(|e| conditions::TagCondition::Tag(e.value().to_string()));
    let condition = conditions::write_condition(if_match, None)?;
    delete_key(
        gw,
        (bucket, &obj.key, version_id),
        condition,
        bypass_governance,
    )
    .await
}

/// Deletes `key` as DeleteObject does: without a version id, removes it (unversioned bucket)
/// or adds a delete marker; with one, removes that version for good. The shards of whatever
/// was removed are deleted after the grace. A key or version that does not exist counts as
/// deleted, as in S3, with or without a `condition` (If-Match). A version Object Lock
/// protects is refused (`AccessDenied`); `bypass_governance` lifts GOVERNANCE retentions.
pub(crate) async fn delete_key(
    gw: &Gateway,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    condition: Option<cairn_proto::meta::WriteCondition>,
    bypass_governance: bool,
) -> ApiResult<Outcome> {
    let done = match gw
        .meta
        .delete_object(bucket, key, version_id, condition, bypass_governance)
        .await
    {
        Ok(done) => done,
        // Nothing there: S3 answers success, with or without If-Match (no ETag can differ).
        Err(ApiError::NoSuchKey | ApiError::NoSuchVersion) => {
            return Ok(Outcome {
                delete_marker: false,
                version_id: version_id.map(str::to_string),
            })
        }
        Err(e) => return Err(e),
    };
    let removed_marker = done.removed.as_ref().is_some_and(|r| r.delete_marker);
    if let Some(gone) = done.removed {
        // Durability: the meta entry removed exactly this version's record (the one the
        // request named, or the one the bucket's versioning state replaces), so nothing
        // refers to these shards any more; versions kept by versioning are not in `gone`.
        spawn_delete_shards(
            Arc::clone(&gw.blobs),
            object_shards(gone),
            &[],
            gw.shard_delete_grace,
            "deleted",
            bucket,
            key,
        );
    }
    Ok(match (done.marker, version_id) {
        (Some(marker), _) => Outcome {
            delete_marker: true,
            version_id: Some(versioning::s3_id(&marker)),
        },
        (None, Some(v)) => Outcome {
            delete_marker: removed_marker,
            version_id: Some(v.to_string()),
        },
        (None, None) => Outcome::default(),
    })
}
