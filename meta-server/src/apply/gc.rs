//! Garbage collection in the state machine: deciding that a shard file is garbage, and making
//! that decision final.
//!
//! A blob server asks about shard files older than its grace. A shard is **live** when a
//! committed version of its object (or a part of a multipart upload in progress) places
//! exactly that shard key on exactly that node and disk; everything else is garbage: the
//! shards of cut-off or failed uploads, of overwritten and deleted versions, of aborted or
//! replaced parts, and old copies a healer replaced.
//!
//! The decision is a Raft entry that **tombstones** every shard it declares garbage, and every
//! commit refuses a shard that is tombstoned (`SHARD_COLLECTED`). That closes the one race
//! that could lose an acknowledged object: a PUT (or a heal) so slow that its shards pass the
//! grace before its commit. Whichever entry comes first in the log wins: the commit (the
//! shard is live, GC keeps it) or the tombstone (the commit fails, the client gets an error
//! and retries; nothing acknowledged is lost).
//!
//! How a shard file is traced back to its object: its key is `{attempt}.{index}` (or
//! `{attempt}.{index}.{nonce}` for a rebuilt copy), and the attempt id leads to the object
//! through the `uploads` column family (single PUTs) or `part_owners` (multipart parts).

use cairn_proto::meta::{MultipartUpload, ObjectVersion, ShardPlacement};
use rocksdb::{WriteBatch, DB};

use super::{committed_upload, read_bucket};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_OBJECTS, CF_PART_OWNERS, CF_TOMBSTONES};
use crate::types::Response;

/// Where one shard file is.
pub(crate) struct ShardFile<'a> {
    /// The blob node holding the file.
    pub node_id: &'a str,
    /// Its disk.
    pub disk_id: &'a str,
}

/// The tombstone key of one shard file: `node id | 0x00 | disk id | 0x00 | shard key`. By
/// location, not by name alone: the same name elsewhere may be live.
fn tombstone_key(node_id: &str, disk_id: &str, shard_key: &str) -> Vec<u8> {
    [node_id.as_bytes(), disk_id.as_bytes(), shard_key.as_bytes()].join(&0u8)
}

/// Whether garbage collection declared the shard file `placement` names garbage.
pub(crate) fn is_tombstoned(db: &DB, placement: &ShardPlacement) -> Result<bool, StoreError> {
    let key = tombstone_key(&placement.node_id, &placement.disk_id, &placement.shard_key);
    Ok(db.get_cf(cf(db, CF_TOMBSTONES)?, key)?.is_some())
}

/// Whether any written shard of `shards` was declared garbage (then the commit must fail).
pub(crate) fn any_tombstoned<'a>(
    db: &DB,
    mut shards: impl Iterator<Item = &'a ShardPlacement>,
) -> Result<bool, StoreError> {
    shards.try_fold(false, |found, s| {
        Ok(found || (s.written && is_tombstoned(db, s)?))
    })
}

/// Records that the shards of part attempt `attempt_id` belong to `upload`.
pub(crate) fn record_part_owner(
    db: &DB,
    batch: &mut WriteBatch,
    attempt_id: &str,
    upload: &MultipartUpload,
) -> Result<(), StoreError> {
    if attempt_id.is_empty() {
        return Ok(());
    }
    // Only what leads back to the parts: no metadata, no content type.
    let owner = MultipartUpload {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        upload_id: upload.upload_id.clone(),
        ..Default::default()
    };
    batch.put_cf(
        cf(db, CF_PART_OWNERS)?,
        attempt_id.as_bytes(),
        records::encode(&owner),
    );
    Ok(())
}

/// Applies `CollectGarbage`: answers the keys that are garbage and tombstones them.
pub(super) fn collect(
    db: &DB,
    batch: &mut WriteBatch,
    file: ShardFile<'_>,
    shard_keys: &[String],
) -> Result<Response, StoreError> {
    let tombstones = cf(db, CF_TOMBSTONES)?;
    let mut garbage = Vec::new();
    for shard_key in shard_keys {
        let tombstone = tombstone_key(file.node_id, file.disk_id, shard_key);
        if db.get_cf(tombstones, &tombstone)?.is_some() {
            garbage.push(shard_key.clone());
            continue;
        }
        if owner_of(db, shard_key, &file)?.is_some() {
            continue;
        }
        batch.put_cf(tombstones, tombstone, []);
        garbage.push(shard_key.clone());
    }
    Ok(Response::Garbage {
        shard_keys: garbage,
    })
}

/// What a live shard file belongs to.
pub(crate) enum Owner {
    /// A committed object version places it.
    Version(Box<ObjectVersion>),
    /// A part of a multipart upload in progress places it.
    UploadPart,
}

/// What committed metadata places `shard_key` on this node and disk, if anything.
pub(crate) fn owner_of(
    db: &DB,
    shard_key: &str,
    file: &ShardFile<'_>,
) -> Result<Option<Owner>, StoreError> {
    let attempt = shard_key.split('.').next().unwrap_or_default();
    if attempt.is_empty() {
        return Ok(None);
    }
    let (bucket, key, upload_id) = if let Some(object) = committed_upload(db, attempt)? {
        (object.bucket, object.key, String::new())
    } else if let Some(raw) = db.get_cf(cf(db, CF_PART_OWNERS)?, attempt.as_bytes())? {
        let owner: MultipartUpload = records::decode(&raw)?;
        (owner.bucket, owner.key, owner.upload_id)
    } else {
        // Never committed (a cut-off or failed upload): garbage.
        return Ok(None);
    };
    let Some(bucket) = read_bucket(db, &bucket)? else {
        return Ok(None);
    };
    let places = |s: &ShardPlacement| {
        s.shard_key == shard_key && s.node_id == file.node_id && s.disk_id == file.disk_id
    };
    // Every stored version of the key, current or not (versioning keeps older versions).
    let start = keys::object_versions_start(bucket.id, &key);
    let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
    iter.seek(&start);
    while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
        if !k.starts_with(&start) {
            break;
        }
        let version: ObjectVersion = records::decode(v)?;
        if super::heal::all_shards(&version).any(places) {
            return Ok(Some(Owner::Version(Box::new(version))));
        }
        iter.next();
    }
    iter.status()?;
    if !upload_id.is_empty() {
        let parts = super::multipart::read_parts(db, &upload_id)?;
        if parts.values().flat_map(|p| p.shards.iter()).any(places) {
            return Ok(Some(Owner::UploadPart));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Request};
    use prost::Message;

    fn run(db: &DB, index: u64, command: Command) -> Response {
        let mut batch = WriteBatch::default();
        let request = Request {
            now_ms: 1_000,
            command,
        };
        let response = super::super::apply(db, &mut batch, index, &request).expect("apply");
        db.write(batch).expect("write");
        response
    }

    fn shard(key: &str) -> ShardPlacement {
        ShardPlacement {
            index: 0,
            node_id: "n1".into(),
            disk_id: "d1".into(),
            shard_key: key.into(),
            written: true,
            ..Default::default()
        }
    }

    fn commit(key: &str, attempt: &str) -> Command {
        Command::CommitObject {
            object: ObjectVersion {
                bucket: "b".into(),
                key: key.into(),
                size: 1,
                etag: "e".into(),
                shards: vec![shard(&format!("{attempt}.0"))],
                upload_id: attempt.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            condition: None,
        }
    }

    fn collect_on(db: &DB, index: u64, disk: &str, keys: &[&str]) -> Vec<String> {
        match run(
            db,
            index,
            Command::CollectGarbage {
                node_id: "n1".into(),
                disk_id: disk.into(),
                shard_keys: keys.iter().map(|k| k.to_string()).collect(),
            },
        ) {
            Response::Garbage { shard_keys } => shard_keys,
            other => panic!("collect: {other:?}"),
        }
    }

    #[test]
    fn only_shards_nothing_refers_to_are_garbage_and_tombstones_refuse_late_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, sm) = crate::store::open(dir.path()).expect("open");
        let db = sm.db();
        run(
            &db,
            1,
            Command::CreateBucket {
                name: "b".into(),
                object_lock: false,
            },
        );
        run(&db, 2, commit("live", "aaaa"));
        run(&db, 3, commit("gone", "bbbb"));
        run(
            &db,
            4,
            Command::DeleteObject {
                bucket: "b".into(),
                key: "gone".into(),
                condition: None,
                version_id: None,
                bypass_governance: false,
            },
        );
        // live: kept; the same key on another disk: garbage; deleted object: garbage;
        // never committed: garbage.
        assert_eq!(
            collect_on(&db, 5, "d1", &["aaaa.0", "bbbb.0", "cccc.0"]),
            ["bbbb.0", "cccc.0"]
        );
        assert_eq!(collect_on(&db, 6, "d2", &["aaaa.0"]), ["aaaa.0"]);
        // ...which does not make the live one on d1 garbage.
        assert!(collect_on(&db, 9, "d1", &["aaaa.0"]).is_empty());
        // The slow upload "cccc" commits after its shard was collected: refused.
        let late = run(&db, 7, commit("late", "cccc"));
        assert_eq!(
            late,
            Response::Error {
                code: cairn_proto::meta::MetaError::ShardCollected as i32
            }
        );
        // A retried commit of a committed attempt still answers its first result.
        assert!(matches!(
            run(&db, 8, commit("live", "aaaa")),
            Response::Committed { .. }
        ));
    }
}
