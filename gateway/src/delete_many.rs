//! DeleteObjects: up to 1,000 keys in one request, each removed exactly like a DeleteObject
//! (one Raft entry per key, a few keys at a time), with a result for every key. A key that
//! does not exist counts as deleted, as in S3 (unless an ETag condition named it).

use std::sync::Arc;

use futures::StreamExt;
use s3s::dto::{Delete, DeleteObjectsOutput, DeletedObject, ObjectIdentifier};
use s3s::S3Error;

use crate::blob_pool::{object_shards, spawn_delete_shards};
use crate::error::{ApiError, ApiResult};
use crate::{conditions, names, Gateway};

/// Most keys one request may name (S3's limit).
pub(crate) const MAX_KEYS: usize = 1000;
/// Keys deleted at the same time.
const PARALLEL: usize = 16;

/// Deletes the listed keys of `bucket`. Fails as a whole only for a malformed list or a
/// missing bucket; anything else is reported per key.
pub(crate) async fn delete_objects(
    gw: &Gateway,
    bucket: &str,
    delete: Delete,
) -> ApiResult<DeleteObjectsOutput> {
    if delete.objects.is_empty() || delete.objects.len() > MAX_KEYS {
        return Err(ApiError::MalformedXml(format!(
            "The XML you provided was not well-formed or did not validate against our published schema: a Delete lists 1 to {MAX_KEYS} objects, this one {}",
            delete.objects.len()
        )));
    }
    gw.meta.get_bucket(bucket).await?;
    let quiet = delete.quiet.unwrap_or(false);
    let results: Vec<(ObjectIdentifier, ApiResult<()>)> = futures::stream::iter(delete.objects)
        .map(|obj| async move {
            let result = delete_one(gw, bucket, &obj).await;
            (obj, result)
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (obj, result) in results {
        match result {
            Ok(()) if quiet => {}
            Ok(()) => deleted.push(DeletedObject {
                key: Some(obj.key),
                version_id: obj.version_id,
                ..Default::default()
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

/// One key of the list, as DeleteObject removes it.
async fn delete_one(gw: &Gateway, bucket: &str, obj: &ObjectIdentifier) -> ApiResult<()> {
    names::validate_key(&obj.key)?;
    if obj.version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(ApiError::NotImplemented(
            "deleting a specific version".into(),
        ));
    }
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
    let conditional = condition.is_some();
    match gw.meta.delete_object(bucket, &obj.key, condition).await {
        Ok(Some(gone)) => {
            spawn_delete_shards(
                Arc::clone(&gw.blobs),
                object_shards(gone),
                &[],
                gw.shard_delete_grace,
                "deleted",
                bucket,
                &obj.key,
            );
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(ApiError::NoSuchKey) if !conditional => Ok(()),
        Err(e) => Err(e),
    }
}
