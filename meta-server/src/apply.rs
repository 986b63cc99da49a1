//! Deterministic application of one command to the metadata.
//!
//! Inputs are only the current state, the entry's log index and the entry itself (which
//! carries the leader's clock): no wall clock, no randomness, no I/O other than the database.
//! Ids come from the log: a bucket's id and an object version's number are the index of the
//! entry that created them, so they increase in commit order on every replica; a bucket id is
//! unique, a version number unique among the versions of its key (one `ApplyLifecycle` entry
//! may add delete markers to several keys under the same number).

pub(crate) mod blob_nodes;
mod bucket_config;
mod conditions;
pub(crate) mod gc;
pub(crate) mod heal;
pub(crate) mod iam;
pub(crate) mod lifecycle;
pub(crate) mod multipart;
pub(crate) mod object_lock;
pub(crate) mod tags;
pub(crate) mod versions;

use cairn_proto::meta::{
    BlobNode, Bucket, ErasureScheme, HealReason, MetaError, ObjectPart, ObjectVersion,
    VersioningStatus,
};
use prost::Message;
use rocksdb::{WriteBatch, DB};

use crate::keys;
use crate::records;
use crate::store::{StoreError, CF_BLOB_NODES, CF_BUCKETS, CF_CLUSTER, CF_OBJECTS, CF_UPLOADS};

/// Key of the cluster secret in the `cluster` column family.
pub(crate) const KEY_CLUSTER_SECRET: &[u8] = b"secret";
/// Key of the lifecycle day (milliseconds, decimal) in the `cluster` column family.
pub(crate) const KEY_LIFECYCLE_DAY: &[u8] = b"lifecycle_day_ms";
use crate::types::{Command, Request, Response};

/// The printable version id of the version committed at log index `index`.
pub fn version_id(index: u64) -> String {
    format!("{index:020}")
}

fn error(code: MetaError) -> Response {
    Response::Error { code: code as i32 }
}

/// Applies `request` (committed at `index`) by adding its writes to `batch`.
pub fn apply(
    db: &DB,
    batch: &mut WriteBatch,
    index: u64,
    request: &Request,
) -> Result<Response, StoreError> {
    let now = request.now_ms;
    match &request.command {
        Command::AllocateNodeId => Ok(Response::NodeId { id: index }),
        Command::SetClusterSecret { secret } => {
            let cluster = crate::store::cf(db, CF_CLUSTER)?;
            if let Some(stored) = db.get_cf(cluster, KEY_CLUSTER_SECRET)? {
                return Ok(Response::Secret {
                    secret: String::from_utf8_lossy(&stored).into_owned(),
                });
            }
            batch.put_cf(cluster, KEY_CLUSTER_SECRET, secret.as_bytes());
            Ok(Response::Secret {
                secret: secret.clone(),
            })
        }
        Command::SetBucketScheme { name, scheme } => {
            let Some(mut bucket) = read_bucket(db, name)? else {
                return Ok(error(MetaError::NoSuchBucket));
            };
            bucket.scheme = match scheme {
                Some(raw) => match ErasureScheme::decode(raw.as_slice()) {
                    Ok(s) => Some(s),
                    Err(_) => return Ok(error(MetaError::InvalidArgument)),
                },
                None => None,
            };
            batch.put_cf(
                crate::store::cf(db, CF_BUCKETS)?,
                name.as_bytes(),
                records::encode(&bucket),
            );
            Ok(Response::Bucket {
                bucket: bucket.encode_to_vec(),
            })
        }
        Command::SetBucketConfig {
            name,
            tags,
            cors,
            policy,
            object_lock,
            lifecycle,
        } => bucket_config::set(
            db,
            batch,
            name,
            bucket_config::Changes {
                tags: tags.as_deref(),
                cors: cors.as_deref(),
                policy: policy.as_deref(),
                object_lock: object_lock.as_ref(),
                lifecycle: lifecycle.as_deref(),
            },
        ),
        Command::CreateBucket { name, object_lock } => {
            if read_bucket(db, name)?.is_some() {
                return Ok(error(MetaError::BucketAlreadyExists));
            }
            let mut bucket = Bucket {
                name: name.clone(),
                id: index,
                created_ms: now,
                scheme: None,
                ..Default::default()
            };
            if *object_lock {
                bucket.object_lock_enabled = true;
                bucket.versioning = VersioningStatus::Enabled as i32;
            }
            batch.put_cf(
                crate::store::cf(db, CF_BUCKETS)?,
                name.as_bytes(),
                records::encode(&bucket),
            );
            Ok(Response::Bucket {
                bucket: bucket.encode_to_vec(),
            })
        }
        Command::DeleteBucket { name } => {
            let Some(bucket) = read_bucket(db, name)? else {
                return Ok(error(MetaError::NoSuchBucket));
            };
            let objects = crate::store::cf(db, CF_OBJECTS)?;
            let prefix = keys::bucket_objects_prefix(bucket.id);
            let mut iter = db.iterator_cf(
                objects,
                rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
            );
            if let Some(item) = iter.next() {
                let (key, _) = item?;
                if key.starts_with(&prefix) {
                    return Ok(error(MetaError::BucketNotEmpty));
                }
            }
            batch.delete_cf(crate::store::cf(db, CF_BUCKETS)?, name.as_bytes());
            // S3 deletes a bucket whose only content is uploads in progress; they go with it.
            let aborted = multipart::abort_bucket_uploads(db, batch, bucket.id)?;
            if aborted.is_empty() {
                Ok(Response::Done)
            } else {
                Ok(Response::Aborted {
                    parts: aborted.iter().map(Message::encode_to_vec).collect(),
                })
            }
        }
        Command::CommitObject { object, condition } => {
            let Ok(mut object) = ObjectVersion::decode(object.as_slice()) else {
                return Ok(error(MetaError::InvalidArgument));
            };
            if let Some(first) = committed_upload(db, &object.upload_id)? {
                // A retried commit whose first attempt already landed: answering with the
                // first result (and replacing nothing) keeps a retry from re-committing
                // shards that a later overwrite or delete may already have removed.
                let expiry = read_bucket(db, &first.bucket)?
                    .and_then(|b| lifecycle::expiry_of(&b, &first))
                    .map(|e| e.encode_to_vec());
                return Ok(Response::Committed {
                    object: first.encode_to_vec(),
                    replaced: None,
                    expiry,
                });
            }
            let Some(bucket) = read_bucket(db, &object.bucket)? else {
                return Ok(error(MetaError::NoSuchBucket));
            };
            if let Some(code) =
                conditions::violated(db, bucket.id, &object.key, condition.as_ref())?
            {
                return Ok(error(code));
            }
            if gc::any_tombstoned(db, object.shards.iter())? {
                return Ok(error(MetaError::ShardCollected));
            }
            object.last_modified_ms = now;
            object.delete_marker = false;
            object.lock = match object_lock::for_new_version(&bucket, object.lock, now) {
                Ok(lock) => lock,
                Err(code) => return Ok(error(code)),
            };
            // What the new version replaces depends on the bucket's versioning state.
            let replaced = versions::put_version(db, batch, &bucket, &mut object, index)?;
            record_upload(db, batch, &object)?;
            if heal::has_unwritten_shards(&object) {
                // Acknowledged with fewer than k + m shards: the healer restores the rest.
                let item = heal::item_for(&object, HealReason::DegradedWrite);
                heal::queue(db, batch, now, [item])?;
            }
            Ok(Response::Committed {
                expiry: lifecycle::expiry_of(&bucket, &object).map(|e| e.encode_to_vec()),
                object: object.encode_to_vec(),
                replaced: replaced.map(|r| r.encode_to_vec()),
            })
        }
        Command::DeleteObject {
            bucket,
            key,
            condition,
            version_id,
            bypass_governance,
        } => {
            let Some(found) = read_bucket(db, bucket)? else {
                return Ok(error(MetaError::NoSuchBucket));
            };
            if let Some(code) = conditions::violated(db, found.id, key, condition.as_ref())? {
                return Ok(error(code));
            }
            match version_id.as_deref() {
                None | Some("") => versions::delete_current(db, batch, (bucket, key), index, now),
                Some(version) => versions::delete_version(
                    db,
                    batch,
                    (bucket, key, version),
                    now,
                    *bypass_governance,
                ),
            }
        }
        Command::SetObjectLock {
            bucket,
            key,
            version_id,
            retention,
            legal_hold,
        } => object_lock::set(
            db,
            batch,
            now,
            (bucket, key, version_id),
            retention.as_ref(),
            *legal_hold,
        ),
        Command::ApplyLifecycle { actions } => lifecycle::apply(db, batch, (index, now), actions),
        Command::SetLifecycleDay { day_ms } => {
            let cluster = crate::store::cf(db, CF_CLUSTER)?;
            if let Some(stored) = lifecycle::read_day_ms(db)? {
                return Ok(Response::LifecycleDay { day_ms: stored });
            }
            let day_ms = (*day_ms).max(1);
            batch.put_cf(cluster, KEY_LIFECYCLE_DAY, day_ms.to_string().as_bytes());
            Ok(Response::LifecycleDay { day_ms })
        }
        Command::SetBucketVersioning { name, status } => {
            versions::set_status(db, batch, name, *status)
        }
        Command::SetObjectTags {
            bucket,
            key,
            version_id,
            tags,
        } => tags::set(db, batch, (bucket, key, version_id), tags),
        Command::CreateMultipartUpload { upload, nonce } => {
            multipart::create(db, batch, index, now, upload, *nonce)
        }
        Command::CommitPart {
            bucket,
            key,
            upload_id,
            part,
        } => multipart::commit_part(
            db,
            batch,
            now,
            (bucket.as_str(), key.as_str(), upload_id.as_str()),
            part,
        ),
        Command::CompleteMultipartUpload {
            bucket,
            key,
            upload_id,
            parts,
            condition,
            checksums,
        } => multipart::complete(
            db,
            batch,
            (index, now),
            (bucket.as_str(), key.as_str(), upload_id.as_str()),
            parts,
            (condition.as_ref(), checksums),
        ),
        Command::AbortMultipartUpload {
            bucket,
            key,
            upload_id,
        } => multipart::abort(
            db,
            batch,
            (bucket.as_str(), key.as_str(), upload_id.as_str()),
        ),
        Command::QueueHeal { items } => heal::apply_queue(db, batch, now, items),
        Command::ClaimHeal { max, lease_ms } => heal::claim(db, batch, now, *max, *lease_ms),
        Command::ReplaceShards {
            bucket,
            key,
            version_id,
            part_number,
            replacements,
        } => heal::replace_shards(
            db,
            batch,
            heal::Replacement {
                bucket,
                key,
                version_id,
                part_number: *part_number,
                replacements,
            },
        ),
        Command::FinishHeal {
            bucket,
            key,
            version_id,
            healed,
            bytes_rebuilt,
            shards_rebuilt,
            retry_in_ms,
        } => heal::finish(
            db,
            batch,
            now,
            heal::Finished {
                bucket,
                key,
                version_id,
                healed: *healed,
                bytes_rebuilt: *bytes_rebuilt,
                shards_rebuilt: *shards_rebuilt,
                retry_in_ms: *retry_in_ms,
            },
        ),
        Command::CollectGarbage {
            node_id,
            disk_id,
            shard_keys,
        } => gc::collect(db, batch, gc::ShardFile { node_id, disk_id }, shard_keys),
        Command::RegisterBlobNode { node } => blob_nodes::register(db, batch, now, node),
        Command::CreateUser { user } => iam::create_user(db, batch, now, user),
        Command::UpdateUser {
            access_key,
            enabled,
            attach,
            detach,
        } => iam::update_user(db, batch, access_key, *enabled, (attach, detach)),
        Command::DeleteUser { access_key } => iam::delete_user(db, batch, access_key),
        Command::PutPolicy { name, document } => iam::put_policy(db, batch, now, name, document),
        Command::DeletePolicy { name } => iam::delete_policy(db, batch, name),
        Command::SetBlobNodeDraining { node_id, draining } => {
            blob_nodes::set_draining(db, batch, node_id, *draining)
        }
        Command::RemoveBlobNode { node_id, force } => {
            blob_nodes::remove(db, batch, node_id, *force)
        }
    }
}

/// Rewrites each shard's `node_address` with the node's current registered address: a blob
/// server keeps its node id across restarts but may come back on another address, so the
/// node id is the durable part of a placement and the address is looked up when it is used.
pub fn refresh_addresses(object: &mut ObjectVersion, nodes: &[BlobNode]) {
    let parts = object.parts.iter_mut().flat_map(|p| p.shards.iter_mut());
    for shard in object.shards.iter_mut().chain(parts) {
        if let Some(node) = nodes.iter().find(|n| n.node_id == shard.node_id) {
            shard.node_address.clone_from(&node.address);
        }
    }
}

/// [`refresh_addresses`] for the shards of parts.
pub fn refresh_part_addresses(parts: &mut [ObjectPart], nodes: &[BlobNode]) {
    for shard in parts.iter_mut().flat_map(|p| p.shards.iter_mut()) {
        if let Some(node) = nodes.iter().find(|n| n.node_id == shard.node_id) {
            shard.node_address.clone_from(&node.address);
        }
    }
}

/// Records which version the commit of `object.upload_id` made, so that a retry of the same
/// commit changes nothing (see [`committed_upload`]).
fn record_upload(
    db: &DB,
    batch: &mut WriteBatch,
    object: &ObjectVersion,
) -> Result<(), StoreError> {
    if object.upload_id.is_empty() {
        return Ok(());
    }
    // The version's identity without its placement: enough to answer a retry.
    let summary = ObjectVersion {
        shards: Vec::new(),
        parts: Vec::new(),
        user_metadata: Default::default(),
        tags: Vec::new(),
        inline_data: None,
        ..object.clone()
    };
    batch.put_cf(
        crate::store::cf(db, CF_UPLOADS)?,
        object.upload_id.as_bytes(),
        records::encode(&summary),
    );
    Ok(())
}

/// Every registered blob node.
pub fn read_blob_nodes(db: &DB) -> Result<Vec<BlobNode>, StoreError> {
    let handle = crate::store::cf(db, CF_BLOB_NODES)?;
    let mut out = Vec::new();
    for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
        let (_, raw) = item?;
        out.push(records::decode(&raw)?);
    }
    Ok(out)
}

/// The version a commit with `upload_id` made, if one was committed.
fn committed_upload(db: &DB, upload_id: &str) -> Result<Option<ObjectVersion>, StoreError> {
    if upload_id.is_empty() {
        return Ok(None);
    }
    match db.get_cf(crate::store::cf(db, CF_UPLOADS)?, upload_id.as_bytes())? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

/// Reads a bucket record by name.
pub fn read_bucket(db: &DB, name: &str) -> Result<Option<Bucket>, StoreError> {
    match db.get_cf(crate::store::cf(db, CF_BUCKETS)?, name.as_bytes())? {
        Some(raw) => Ok(Some(records::decode(&raw)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::ShardPlacement;

    /// Applies `command` at `index` and writes its batch, as the state machine does.
    fn run(db: &DB, index: u64, command: Command) -> Result<Response, StoreError> {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000 + index as i64,
            command,
        };
        let response = apply(db, &mut batch, index, &request)?;
        db.write(batch)?;
        Ok(response)
    }

    fn commit(bucket: &str, key: &str, upload_id: &str) -> Command {
        let object = ObjectVersion {
            bucket: bucket.into(),
            key: key.into(),
            size: 3,
            etag: "e".into(),
            shards: vec![ShardPlacement {
                shard_key: format!("{upload_id}.0"),
                written: true,
                ..Default::default()
            }],
            upload_id: upload_id.into(),
            ..Default::default()
        };
        Command::CommitObject {
            object: object.encode_to_vec(),
            condition: None,
        }
    }

    #[test]
    fn a_retried_commit_after_a_delete_does_not_resurrect_the_object() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|_| StoreError::LockPoisoned("tempdir"))?;
        let (_, sm) = crate::store::open(dir.path())?;
        let db = sm.db();
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        )?;
        let first = run(&db, 2, commit("b", "k", "u1"))?;
        let Response::Committed {
            object,
            replaced: None,
            ..
        } = first
        else {
            panic!("first commit: {first:?}");
        };
        let first_version =
            ObjectVersion::decode(object.as_slice()).map_err(crate::records::RecordError::from)?;
        assert_eq!(first_version.version_id, version_id(2));
        run(
            &db,
            3,
            Command::DeleteObject {
                bucket: "b".into(),
                key: "k".into(),
                condition: None,
                version_id: None,
                bypass_governance: false,
            },
        )?;

        // The retry of upload u1 (its first reply was lost) changes nothing.
        let retry = run(&db, 4, commit("b", "k", "u1"))?;
        let Response::Committed {
            object,
            replaced: None,
            ..
        } = retry
        else {
            panic!("retry: {retry:?}");
        };
        let retried =
            ObjectVersion::decode(object.as_slice()).map_err(crate::records::RecordError::from)?;
        assert_eq!(retried.version_id, version_id(2));
        let reader = crate::store::MetaReader::new(db.clone());
        // Bucket "b" has id 1: the index of the entry that created it.
        assert_eq!(reader.object(1, "k")?, None);

        // A new upload of the same key commits normally.
        let next = run(&db, 5, commit("b", "k", "u2"))?;
        assert!(matches!(next, Response::Committed { replaced: None, .. }));
        assert!(reader.object(1, "k")?.is_some());
        Ok(())
    }
}
