//! Multipart uploads in the state machine: create an upload, commit a part, complete, abort.
//!
//! Deterministic like the rest of [`crate::apply`]: an upload id is the entry's log index
//! (so ids sort in creation order) followed by a nonce the proposer drew; every time stamp is
//! the leader's, carried in the entry.
//!
//! Idempotence, the reason for most of the bookkeeping here:
//! - `CommitPart` records each PlanPut attempt it commits (`A` keys, see [`crate::keys`]). A
//!   retried commit of the same attempt (its reply was lost) answers the first result and
//!   changes nothing, so it can never put back a part that a later upload of the same number
//!   replaced (whose shards are being deleted). After the upload ends the attempt records go
//!   with it; a late retry then finds its attempt in the completed object's parts, or gets
//!   `NO_SUCH_UPLOAD` (its shards are garbage).
//! - `CompleteMultipartUpload` records the new version under the upload id in the `uploads`
//!   column family, exactly as `CommitObject` does: completing again with the same list
//!   answers the same object (S3 does the same), any other list gets `NO_SUCH_UPLOAD`.

use std::collections::BTreeMap;

use cairn_proto::meta::{MetaError, MultipartUpload, ObjectPart, ObjectVersion};
use md5::{Digest, Md5};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch, DB};

use super::{
    committed_upload, error, read_blob_nodes, read_bucket, record_upload, refresh_part_addresses,
    version_id,
};
use crate::keys;
use crate::records;
use crate::store::{cf, StoreError, CF_MULTIPART, CF_OBJECTS};
use crate::types::{Response, WriteCondition};

/// Smallest size of every part of a completed upload but the last (S3's rule).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Part numbers run from 1 to this.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// The bucket, key and upload id a command names.
pub(crate) type Target<'a> = (&'a str, &'a str, &'a str);

/// The upload `upload_id` of `key` in the bucket with id `bucket_id`, if it is in progress.
pub(crate) fn read_upload(
    db: &DB,
    bucket_id: u64,
    key: &str,
    upload_id: &str,
) -> Result<Option<MultipartUpload>, StoreError> {
    if !keys::is_upload_id(upload_id) {
        return Ok(None);
    }
    let raw = db.get_cf(
        cf(db, CF_MULTIPART)?,
        keys::upload_key(bucket_id, key, upload_id),
    )?;
    raw.map(|raw| records::decode(&raw).map_err(StoreError::from))
        .transpose()
}

/// The bucket id and record of the upload a command names, or the domain error to answer.
fn find_upload(
    db: &DB,
    (bucket, key, upload_id): Target<'_>,
) -> Result<Result<(u64, MultipartUpload), MetaError>, StoreError> {
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(Err(MetaError::NoSuchBucket));
    };
    Ok(match read_upload(db, bucket.id, key, upload_id)? {
        Some(upload) => Ok((bucket.id, upload)),
        None => Err(MetaError::NoSuchUpload),
    })
}

/// Every part of an upload, by number.
pub(crate) fn read_parts(
    db: &DB,
    upload_id: &str,
) -> Result<BTreeMap<u32, ObjectPart>, StoreError> {
    let handle = cf(db, CF_MULTIPART)?;
    let prefix = keys::parts_prefix(upload_id);
    let mut out = BTreeMap::new();
    for item in db.iterator_cf(
        handle,
        IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    ) {
        let (raw_key, raw_value) = item?;
        if !raw_key.starts_with(&prefix) {
            break;
        }
        let part: ObjectPart = records::decode(&raw_value)?;
        out.insert(part.part_number, part);
    }
    Ok(out)
}

/// The S3 ETag of a multipart object made of parts with these (hex MD5) ETags: the MD5 of
/// their binary MD5s concatenated, then `-` and the number of parts. `None` if an ETag is
/// not a hex MD5.
pub(crate) fn multipart_etag<'a>(etags: impl ExactSizeIterator<Item = &'a str>) -> Option<String> {
    let count = etags.len();
    let mut md5 = Md5::new();
    for etag in etags {
        let raw = hex::decode(etag.to_ascii_lowercase()).ok()?;
        if raw.len() != 16 {
            return None;
        }
        md5.update(&raw);
    }
    Some(format!("{}-{count}", hex::encode(md5.finalize())))
}

/// Starts an upload.
pub(super) fn create(
    db: &DB,
    batch: &mut WriteBatch,
    index: u64,
    now: i64,
    upload: &[u8],
    nonce: u64,
) -> Result<Response, StoreError> {
    let Ok(mut upload) = MultipartUpload::decode(upload) else {
        return Ok(error(MetaError::InvalidArgument));
    };
    let Some(bucket) = read_bucket(db, &upload.bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    // The lock is settled at completion (the default retention counts from then); a lock
    // asked for outside an Object Lock bucket is refused now, as S3 does.
    if !bucket.object_lock_enabled && super::object_lock::is_set(upload.lock.as_ref()) {
        return Ok(error(MetaError::NoObjectLock));
    }
    upload.upload_id = format!("{index:016x}{nonce:016x}");
    upload.initiated_ms = now;
    batch.put_cf(
        cf(db, CF_MULTIPART)?,
        keys::upload_key(bucket.id, &upload.key, &upload.upload_id),
        records::encode(&upload),
    );
    Ok(Response::Upload {
        upload: upload.encode_to_vec(),
    })
}

/// Records a durable part; a part with the same number is replaced (and returned).
pub(super) fn commit_part(
    db: &DB,
    batch: &mut WriteBatch,
    now: i64,
    target: Target<'_>,
    part: &[u8],
) -> Result<Response, StoreError> {
    let Ok(mut part) = ObjectPart::decode(part) else {
        return Ok(error(MetaError::InvalidArgument));
    };
    if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
        return Ok(error(MetaError::InvalidArgument));
    }
    let (bucket, key, upload_id) = target;
    let upload = match find_upload(db, target)? {
        Ok((_, upload)) => upload,
        Err(MetaError::NoSuchUpload) => {
            // The upload ended. If this attempt is a part of the object it completed into,
            // this is a retry whose first commit landed: its shards are the object's, and the
            // caller must not delete them.
            if let Some(first) = completed_part(db, bucket, key, &part.attempt_id)? {
                return Ok(Response::PartCommitted {
                    part: first.encode_to_vec(),
                    replaced: None,
                });
            }
            return Ok(error(MetaError::NoSuchUpload));
        }
        Err(code) => return Ok(error(code)),
    };
    let handle = cf(db, CF_MULTIPART)?;
    if !part.attempt_id.is_empty() {
        if let Some(raw) = db.get_cf(handle, keys::attempt_key(upload_id, &part.attempt_id))? {
            let first: ObjectPart = records::decode(&raw)?;
            return Ok(Response::PartCommitted {
                part: first.encode_to_vec(),
                replaced: None,
            });
        }
    }
    if super::gc::any_tombstoned(db, part.shards.iter())? {
        return Ok(error(MetaError::ShardCollected));
    }
    part.last_modified_ms = now;
    let part_key = keys::part_key(upload_id, part.part_number);
    let mut replaced = match db.get_cf(handle, &part_key)? {
        Some(raw) => vec![records::decode::<ObjectPart>(&raw)?],
        None => Vec::new(),
    };
    batch.put_cf(handle, &part_key, records::encode(&part));
    super::gc::record_part_owner(db, batch, &part.attempt_id, &upload)?;
    if !part.attempt_id.is_empty() {
        let summary = ObjectPart {
            shards: Vec::new(),
            ..part.clone()
        };
        batch.put_cf(
            handle,
            keys::attempt_key(upload_id, &part.attempt_id),
            records::encode(&summary),
        );
    }
    refresh_part_addresses(&mut replaced, &read_blob_nodes(db)?);
    Ok(Response::PartCommitted {
        part: part.encode_to_vec(),
        replaced: replaced.pop().map(|r| r.encode_to_vec()),
    })
}

/// The part of the current object `bucket/key` written by PlanPut attempt `attempt_id`.
fn completed_part(
    db: &DB,
    bucket: &str,
    key: &str,
    attempt_id: &str,
) -> Result<Option<ObjectPart>, StoreError> {
    if attempt_id.is_empty() {
        return Ok(None);
    }
    let Some(bucket) = read_bucket(db, bucket)? else {
        return Ok(None);
    };
    let start = keys::object_versions_start(bucket.id, key);
    let mut iter = db.raw_iterator_cf_opt(cf(db, CF_OBJECTS)?, crate::store::within(&start));
    iter.seek(&start);
    let object: ObjectVersion = match (iter.key(), iter.value()) {
        (Some(k), Some(v)) if k.starts_with(&start) => records::decode(v)?,
        _ => {
            iter.status()?;
            return Ok(None);
        }
    };
    Ok(object
        .parts
        .into_iter()
        .find(|p| p.attempt_id == attempt_id)
        .map(|p| ObjectPart {
            shards: Vec::new(),
            ..p
        }))
}

/// Makes the listed parts one object version and ends the upload.
pub(super) fn complete(
    db: &DB,
    batch: &mut WriteBatch,
    (index, now): (u64, i64),
    target: Target<'_>,
    listed: &[(u32, String)],
    (condition, checksums): (Option<&WriteCondition>, &[Vec<u8>]),
) -> Result<Response, StoreError> {
    let (bucket, key, upload_id) = target;
    if let Some(first) = committed_upload(db, upload_id)? {
        // Completed already (a retry after a lost reply, or a client completing twice).
        let same = first.bucket == bucket
            && first.key == key
            && multipart_etag(listed.iter().map(|(_, e)| e.as_str())).as_deref()
                == Some(first.etag.as_str());
        if !same {
            return Ok(error(MetaError::NoSuchUpload));
        }
        return Ok(Response::MultipartCompleted {
            object: first.encode_to_vec(),
            replaced: None,
            unused_parts: Vec::new(),
            expiry: None,
        });
    }
    let (bucket_id, upload) = match find_upload(db, target)? {
        Ok(found) => found,
        Err(code) => return Ok(error(code)),
    };
    if listed.is_empty() {
        return Ok(error(MetaError::InvalidArgument));
    }
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Ok(error(MetaError::InvalidPartOrder));
    }
    let mut stored = read_parts(db, upload_id)?;
    let mut chosen = Vec::with_capacity(listed.len());
    for (number, etag) in listed {
        match stored.get(number) {
            Some(part) if part.etag.eq_ignore_ascii_case(etag) => {}
            _ => return Ok(error(MetaError::InvalidPart)),
        }
        if let Some(part) = stored.remove(number) {
            chosen.push(part);
        }
    }
    if let Some((_, but_last)) = chosen.split_last() {
        if but_last.iter().any(|p| p.size < MIN_PART_SIZE) {
            return Ok(error(MetaError::EntityTooSmall));
        }
    }
    let Some(etag) = multipart_etag(chosen.iter().map(|p| p.etag.as_str())) else {
        return Ok(error(MetaError::InvalidPart));
    };
    if let Some(code) = super::conditions::violated(db, bucket_id, key, condition)? {
        return Ok(error(code));
    }
    let object = ObjectVersion {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id(index),
        size: chosen.iter().map(|p| p.size).sum(),
        etag,
        content_type: upload.content_type,
        user_metadata: upload.user_metadata,
        last_modified_ms: now,
        scheme: None,
        shards: Vec::new(),
        inline_data: None,
        upload_id: upload_id.to_string(),
        parts: chosen,
        headers: upload.headers,
        tags: upload.tags,
        // Made by the gateway from the parts this entry just matched by ETag.
        checksums: match checksums
            .iter()
            .map(|raw| cairn_proto::meta::ObjectChecksum::decode(raw.as_slice()))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(checksums) => checksums,
            Err(_) => return Ok(error(MetaError::InvalidArgument)),
        },
        versioned: false,
        delete_marker: false,
        lock: None,
    };
    let Some(bucket_record) = super::read_bucket(db, bucket)? else {
        return Ok(error(MetaError::NoSuchBucket));
    };
    let mut object = object;
    object.lock = match super::object_lock::for_new_version(&bucket_record, upload.lock, now) {
        Ok(lock) => lock,
        Err(code) => return Ok(error(code)),
    };
    let replaced = super::versions::put_version(db, batch, &bucket_record, &mut object, index)?;
    record_upload(db, batch, &object)?;
    if super::heal::has_unwritten_shards(&object) {
        let item = super::heal::item_for(&object, cairn_proto::meta::HealReason::DegradedWrite);
        super::heal::queue(db, batch, now, [item])?;
    }
    // What is left in `stored` was uploaded but not listed.
    drop_upload(db, batch, bucket_id, key, upload_id)?;
    let mut unused: Vec<ObjectPart> = stored.into_values().collect();
    refresh_part_addresses(&mut unused, &read_blob_nodes(db)?);
    // The reply leaves the parts out: a 10,000-part placement list is megabytes, and the
    // caller needs only the version's identity.
    let summary = ObjectVersion {
        parts: Vec::new(),
        ..object
    };
    Ok(Response::MultipartCompleted {
        expiry: super::lifecycle::expiry_of(&bucket_record, &summary).map(|e| e.encode_to_vec()),
        object: summary.encode_to_vec(),
        replaced: replaced.map(|r| r.encode_to_vec()),
        unused_parts: unused.iter().map(Message::encode_to_vec).collect(),
    })
}

/// Ends an upload without an object.
pub(super) fn abort(
    db: &DB,
    batch: &mut WriteBatch,
    target: Target<'_>,
) -> Result<Response, StoreError> {
    let (_, key, upload_id) = target;
    let bucket_id = match find_upload(db, target)? {
        Ok((bucket_id, _)) => bucket_id,
        Err(code) => return Ok(error(code)),
    };
    let mut parts = drop_upload(db, batch, bucket_id, key, upload_id)?;
    refresh_part_addresses(&mut parts, &read_blob_nodes(db)?);
    Ok(Response::Aborted {
        parts: parts.iter().map(Message::encode_to_vec).collect(),
    })
}

/// Ends every upload in a bucket (the bucket is being deleted) and returns their parts.
pub(super) fn abort_bucket_uploads(
    db: &DB,
    batch: &mut WriteBatch,
    bucket_id: u64,
) -> Result<Vec<ObjectPart>, StoreError> {
    let handle = cf(db, CF_MULTIPART)?;
    let prefix = keys::upload_prefix(bucket_id, "");
    let mut uploads = Vec::new();
    for item in db.iterator_cf(
        handle,
        IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    ) {
        let (raw_key, _) = item?;
        if !raw_key.starts_with(&prefix) {
            break;
        }
        if let Some((_, key, upload_id)) = keys::decode_upload_key(&raw_key) {
            uploads.push((key, upload_id));
        }
    }
    let mut parts = Vec::new();
    for (key, upload_id) in uploads {
        parts.extend(drop_upload(db, batch, bucket_id, &key, &upload_id)?);
    }
    refresh_part_addresses(&mut parts, &read_blob_nodes(db)?);
    Ok(parts)
}

/// Deletes an upload's record, its parts and its attempt records; returns the parts.
fn drop_upload(
    db: &DB,
    batch: &mut WriteBatch,
    bucket_id: u64,
    key: &str,
    upload_id: &str,
) -> Result<Vec<ObjectPart>, StoreError> {
    let handle = cf(db, CF_MULTIPART)?;
    batch.delete_cf(handle, keys::upload_key(bucket_id, key, upload_id));
    let parts = read_parts(db, upload_id)?;
    for number in parts.keys() {
        batch.delete_cf(handle, keys::part_key(upload_id, *number));
    }
    let attempts = keys::attempts_prefix(upload_id);
    for item in db.iterator_cf(
        handle,
        IteratorMode::From(&attempts, rocksdb::Direction::Forward),
    ) {
        let (raw_key, _) = item?;
        if !raw_key.starts_with(&attempts) {
            break;
        }
        batch.delete_cf(handle, raw_key);
    }
    Ok(parts.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MetaReader;
    use crate::types::{Command, Request};
    use cairn_proto::meta::ShardPlacement;

    const B: &str = "b";

    struct Db {
        _dir: tempfile::TempDir,
        db: std::sync::Arc<DB>,
        next: u64,
    }

    impl Db {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("tempdir");
            let (_, sm) = crate::store::open(dir.path()).expect("open");
            let mut db = Db {
                _dir: dir,
                db: sm.db(),
                next: 1,
            };
            db.run(Command::CreateBucket {
                name: B.into(),
                object_lock: false,
            });
            db
        }

        /// Applies `command` at the next log index and writes its batch, as the state
        /// machine does.
        fn run(&mut self, command: Command) -> Response {
            let index = self.next;
            self.next += 1;
            let mut batch = WriteBatch::default();
            let request = Request {
                now_ms: 1_000 + index as i64,
                command,
            };
            let response =
                super::super::apply(&self.db, &mut batch, index, &request).expect("apply");
            self.db.write(batch).expect("write");
            response
        }

        fn reader(&self) -> MetaReader {
            MetaReader::new(self.db.clone())
        }

        fn create(&mut self, key: &str) -> String {
            let upload = MultipartUpload {
                bucket: B.into(),
                key: key.into(),
                content_type: "text/plain".into(),
                ..Default::default()
            };
            match self.run(Command::CreateMultipartUpload {
                upload: upload.encode_to_vec(),
                nonce: 0xabcdef,
            }) {
                Response::Upload { upload } => {
                    MultipartUpload::decode(upload.as_slice())
                        .expect("upload")
                        .upload_id
                }
                other => panic!("create: {other:?}"),
            }
        }

        fn commit(
            &mut self,
            key: &str,
            upload_id: &str,
            number: u32,
            size: u64,
            attempt: &str,
        ) -> Response {
            self.run(Command::CommitPart {
                bucket: B.into(),
                key: key.into(),
                upload_id: upload_id.into(),
                part: part(number, size, attempt).encode_to_vec(),
            })
        }

        fn complete(&mut self, key: &str, upload_id: &str, parts: &[(u32, &str)]) -> Response {
            self.run(Command::CompleteMultipartUpload {
                bucket: B.into(),
                key: key.into(),
                upload_id: upload_id.into(),
                parts: parts.iter().map(|(n, e)| (*n, e.to_string())).collect(),
                condition: None,
                checksums: Vec::new(),
            })
        }
    }

    /// A distinct hex MD5 per attempt name.
    fn etag_of(attempt: &str) -> String {
        hex::encode(Md5::digest(attempt.as_bytes()))
    }

    fn part(number: u32, size: u64, attempt: &str) -> ObjectPart {
        ObjectPart {
            part_number: number,
            size,
            etag: etag_of(attempt),
            attempt_id: attempt.into(),
            shards: vec![ShardPlacement {
                shard_key: format!("{attempt}.0"),
                written: true,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn code(r: &Response) -> Option<MetaError> {
        match r {
            Response::Error { code } => MetaError::try_from(*code).ok(),
            _ => None,
        }
    }

    fn decoded_parts(raw: &[Vec<u8>]) -> Vec<ObjectPart> {
        raw.iter()
            .map(|p| ObjectPart::decode(p.as_slice()).expect("part"))
            .collect()
    }

    const MIB5: u64 = MIN_PART_SIZE;

    #[test]
    fn complete_concatenates_the_listed_parts_and_is_idempotent() {
        let mut db = Db::new();
        let id = db.create("k");
        assert!(keys::is_upload_id(&id), "{id}");
        for (n, size, a) in [
            (1, MIB5, "a1"),
            (2, MIB5 + 7, "a2"),
            (3, 10, "a3"),
            (4, 3, "a4"),
        ] {
            assert!(matches!(
                db.commit("k", &id, n, size, a),
                Response::PartCommitted { replaced: None, .. }
            ));
        }
        let (listed, _) = db.reader().parts(&id, 0, 1000).expect("parts");
        assert_eq!(
            listed.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert!(
            listed.iter().all(|p| p.shards.is_empty()),
            "listings carry no placements"
        );

        // Part 3 is left out: it is returned as garbage.
        let list = [(1, etag_of("a1")), (2, etag_of("a2")), (4, etag_of("a4"))];
        let list: Vec<(u32, &str)> = list.iter().map(|(n, e)| (*n, e.as_str())).collect();
        let Response::MultipartCompleted {
            object,
            replaced: None,
            unused_parts,
            ..
        } = db.complete("k", &id, &list)
        else {
            panic!("complete failed");
        };
        let object = ObjectVersion::decode(object.as_slice()).expect("object");
        let mut md5 = Md5::new();
        for a in ["a1", "a2", "a4"] {
            md5.update(Md5::digest(a.as_bytes()));
        }
        assert_eq!(object.etag, format!("{}-3", hex::encode(md5.finalize())));
        assert_eq!(object.size, 2 * MIB5 + 7 + 3);
        let unused = decoded_parts(&unused_parts);
        assert_eq!(unused.len(), 1);
        assert_eq!(unused[0].shards[0].shard_key, "a3.0");

        // The stored object holds the chosen parts in order, with their placements.
        let stored = db.reader().object(1, "k").expect("read").expect("object");
        assert_eq!(
            stored
                .parts
                .iter()
                .map(|p| p.part_number)
                .collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        assert_eq!(stored.parts[2].shards[0].shard_key, "a4.0");
        assert_eq!(stored.content_type, "text/plain");
        // The upload is gone, with its parts.
        assert_eq!(db.reader().upload(1, "k", &id).expect("read"), None);
        assert_eq!(db.reader().parts(&id, 0, 1000).expect("parts").0, vec![]);

        // Completing again with the same list answers the same version and frees nothing.
        let Response::MultipartCompleted {
            object: again,
            replaced: None,
            unused_parts,
            ..
        } = db.complete("k", &id, &list)
        else {
            panic!("second complete");
        };
        assert!(unused_parts.is_empty());
        let again = ObjectVersion::decode(again.as_slice()).expect("object");
        assert_eq!(again.version_id, object.version_id);
        // Any other list, or a part uploaded after completion, finds no upload.
        assert_eq!(
            code(&db.complete("k", &id, &list[..2])),
            Some(MetaError::NoSuchUpload)
        );
        assert_eq!(
            code(&db.commit("k", &id, 5, 1, "late")),
            Some(MetaError::NoSuchUpload)
        );
    }

    #[test]
    fn a_replaced_part_is_returned_and_a_retried_commit_does_not_bring_it_back() {
        let mut db = Db::new();
        let id = db.create("k");
        db.commit("k", &id, 1, MIB5, "first");
        let Response::PartCommitted {
            replaced: Some(old),
            ..
        } = db.commit("k", &id, 1, MIB5, "second")
        else {
            panic!("replacement");
        };
        let old = ObjectPart::decode(old.as_slice()).expect("part");
        assert_eq!(old.shards[0].shard_key, "first.0");

        // The first attempt's commit is retried (its reply was lost): nothing changes.
        let retry = db.commit("k", &id, 1, MIB5, "first");
        assert!(
            matches!(retry, Response::PartCommitted { replaced: None, .. }),
            "{retry:?}"
        );
        let (parts, _) = db.reader().parts(&id, 0, 10).expect("parts");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].etag, etag_of("second"));
        // Completing with the replaced part's ETag is refused.
        assert_eq!(
            code(&db.complete("k", &id, &[(1, &etag_of("first"))])),
            Some(MetaError::InvalidPart)
        );
        assert!(matches!(
            db.complete("k", &id, &[(1, &etag_of("second"))]),
            Response::MultipartCompleted { .. }
        ));
        // A retry of the winning attempt after completion: its shards are the object's.
        let late = db.commit("k", &id, 1, MIB5, "second");
        assert!(
            matches!(late, Response::PartCommitted { replaced: None, .. }),
            "{late:?}"
        );
    }

    #[test]
    fn completion_checks_order_parts_etags_and_sizes() {
        let mut db = Db::new();
        let id = db.create("k");
        db.commit("k", &id, 1, MIB5 - 1, "s1");
        db.commit("k", &id, 2, MIB5, "s2");
        db.commit("k", &id, 3, 1, "s3");
        let (e1, e2, e3) = (etag_of("s1"), etag_of("s2"), etag_of("s3"));
        assert_eq!(
            code(&db.complete("k", &id, &[(2, &e2), (1, &e1)])),
            Some(MetaError::InvalidPartOrder)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[(2, &e2), (2, &e2)])),
            Some(MetaError::InvalidPartOrder)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[(2, &e2), (4, &e3)])),
            Some(MetaError::InvalidPart)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[(2, &e3)])),
            Some(MetaError::InvalidPart)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[(1, &e1), (2, &e2)])),
            Some(MetaError::EntityTooSmall)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[])),
            Some(MetaError::InvalidArgument)
        );
        assert_eq!(
            code(&db.complete("other", &id, &[(2, &e2)])),
            Some(MetaError::NoSuchUpload)
        );
        assert_eq!(
            code(&db.complete("k", "not-an-id", &[(2, &e2)])),
            Some(MetaError::NoSuchUpload)
        );
        assert_eq!(
            code(&db.commit("k", &id, 0, 1, "zero")),
            Some(MetaError::InvalidArgument)
        );
        assert_eq!(
            code(&db.commit("k", &id, 10_001, 1, "big")),
            Some(MetaError::InvalidArgument)
        );
        // A refused completion changes nothing: the upload can still complete.
        assert!(db.reader().upload(1, "k", &id).expect("read").is_some());
        // ETags compare case-insensitively; the last part may be small.
        let upper = e3.to_ascii_uppercase();
        assert!(matches!(
            db.complete("k", &id, &[(2, &e2), (3, &upper)]),
            Response::MultipartCompleted { .. }
        ));
    }

    #[test]
    fn abort_returns_every_part_and_ends_the_upload() {
        let mut db = Db::new();
        let id = db.create("k");
        db.commit("k", &id, 1, MIB5, "p1");
        db.commit("k", &id, 2, 1, "p2");
        let abort = Command::AbortMultipartUpload {
            bucket: B.into(),
            key: "k".into(),
            upload_id: id.clone(),
        };
        let Response::Aborted { parts } = db.run(abort.clone()) else {
            panic!("abort")
        };
        assert_eq!(decoded_parts(&parts).len(), 2);
        assert_eq!(code(&db.run(abort)), Some(MetaError::NoSuchUpload));
        assert_eq!(
            code(&db.commit("k", &id, 3, 1, "p3")),
            Some(MetaError::NoSuchUpload)
        );
        assert_eq!(
            code(&db.complete("k", &id, &[(1, &etag_of("p1"))])),
            Some(MetaError::NoSuchUpload)
        );
        assert_eq!(db.reader().parts(&id, 0, 10).expect("parts").0, vec![]);
    }

    #[test]
    fn deleting_a_bucket_aborts_its_uploads() {
        let mut db = Db::new();
        let id = db.create("k");
        db.commit("k", &id, 1, 5, "p1");
        db.create("other");
        let Response::Aborted { parts } = db.run(Command::DeleteBucket { name: B.into() }) else {
            panic!("delete bucket");
        };
        assert_eq!(decoded_parts(&parts)[0].shards[0].shard_key, "p1.0");
        // A new bucket of the same name starts with no uploads.
        db.run(Command::CreateBucket {
            name: B.into(),
            object_lock: false,
        });
        let bucket = db.reader().bucket(B).expect("read").expect("bucket");
        assert_eq!(
            db.reader()
                .uploads(bucket.id, "", "", "", "", 10)
                .expect("list")
                .uploads,
            vec![]
        );
        assert_eq!(db.reader().upload(1, "k", &id).expect("read"), None);
    }

    #[test]
    fn uploads_list_by_key_then_creation_with_prefixes_and_markers() {
        let mut db = Db::new();
        let a1 = db.create("a");
        let c = db.create("dir/c");
        let a2 = db.create("a");
        let d = db.create("dir/d");
        let z = db.create("z");
        let r = db.reader();
        let all = r.uploads(1, "", "", "", "", 100).expect("list");
        let got: Vec<(&str, &str)> = all
            .uploads
            .iter()
            .map(|u| (u.key.as_str(), u.upload_id.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", a1.as_str()),
                ("a", a2.as_str()),
                ("dir/c", c.as_str()),
                ("dir/d", d.as_str()),
                ("z", z.as_str())
            ]
        );
        assert!(!all.is_truncated);

        let rolled = r.uploads(1, "", "/", "", "", 100).expect("list");
        assert_eq!(rolled.common_prefixes, vec!["dir/".to_string()]);
        assert_eq!(rolled.uploads.len(), 3);

        // Paging by two: a/a1 a/a2 | dir/ z.
        let p1 = r.uploads(1, "", "/", "", "", 2).expect("list");
        assert!(p1.is_truncated);
        assert_eq!(
            (
                p1.next_key_marker.as_str(),
                p1.next_upload_id_marker.as_str()
            ),
            ("a", a2.as_str())
        );
        let p2 = r
            .uploads(
                1,
                "",
                "/",
                &p1.next_key_marker,
                &p1.next_upload_id_marker,
                2,
            )
            .expect("list");
        assert_eq!(p2.common_prefixes, vec!["dir/".to_string()]);
        assert_eq!(
            p2.uploads
                .iter()
                .map(|u| u.key.as_str())
                .collect::<Vec<_>>(),
            vec!["z"]
        );
        assert!(!p2.is_truncated);
        // key-marker and upload-id-marker: the uploads of "a" after a1, then later keys.
        let after_a1 = r.uploads(1, "", "", "a", &a1, 100).expect("list");
        assert_eq!(after_a1.uploads[0].upload_id, a2);
        assert_eq!(after_a1.uploads.len(), 4);
        // key-marker alone skips every upload of that key.
        let after_a = r.uploads(1, "", "", "a", "", 100).expect("list");
        assert_eq!(after_a.uploads[0].key, "dir/c");
        // A prefix, and a common prefix already returned is skipped.
        let dir = r.uploads(1, "dir/", "", "", "", 100).expect("list");
        assert_eq!(dir.uploads.len(), 2);
        let past = r.uploads(1, "", "/", "dir/", "", 100).expect("list");
        assert_eq!(
            past.uploads
                .iter()
                .map(|u| u.key.as_str())
                .collect::<Vec<_>>(),
            vec!["z"]
        );
        assert!(past.common_prefixes.is_empty());
    }

    #[test]
    fn parts_page_after_a_marker() {
        let mut db = Db::new();
        let id = db.create("k");
        for n in [1, 2, 5, 9] {
            db.commit("k", &id, n, 1, &format!("p{n}"));
        }
        let r = db.reader();
        let (page, more) = r.parts(&id, 0, 2).expect("parts");
        assert_eq!(
            page.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(more);
        let (page, more) = r.parts(&id, 2, 2).expect("parts");
        assert_eq!(
            page.iter().map(|p| p.part_number).collect::<Vec<_>>(),
            vec![5, 9]
        );
        assert!(!more);
        let (page, more) = r.parts(&id, 9, 2).expect("parts");
        assert!(page.is_empty() && !more);
    }
}
