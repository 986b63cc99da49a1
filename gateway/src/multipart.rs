//! Multipart upload: CreateMultipartUpload, UploadPart (the PUT pipeline of [`crate::put`],
//! committed as a part instead of an object), CompleteMultipartUpload, AbortMultipartUpload,
//! ListParts and ListMultipartUploads.
//!
//! The meta service keeps the upload and its parts and validates a completion in one Raft
//! entry; the gateway streams part bodies like PUT bodies and deletes the shards that the
//! meta service hands back as garbage (replaced and unused parts, aborted uploads) after
//! `--shard-delete-grace`, as for overwritten objects.

use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::meta::{self as pb};
use futures::Stream;
use s3s::dto::{
    CommonPrefix, Initiator, ListMultipartUploadsInput, ListMultipartUploadsOutput, ListPartsInput,
    ListPartsOutput, MultipartUpload, Part, StorageClass,
};
use tracing::debug;

use crate::attrs::ObjectAttrs;
use crate::blob_pool::{object_shards, part_shards, spawn_delete_shards};
use crate::checksum::Algorithm;
use crate::error::{ApiError, ApiResult};
use crate::list::{is_url, max_keys, url_encode};
use crate::multipart_checksum::{self, UploadChecksum};
use crate::put::{store_body, BodyChecks, BodyTarget};
use crate::{dto, Gateway};

/// Part numbers run from 1 to this.
pub(crate) const MAX_PART_NUMBER: i32 = 10_000;

/// A part number from a request: 1..=10000, else `InvalidArgument` (as S3 answers).
pub(crate) fn part_number(n: i32) -> ApiResult<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n.unsigned_abs())
    } else {
        Err(ApiError::InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive".into(),
        ))
    }
}

/// The upload a request names.
pub(crate) struct UploadRef {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

/// A stored part, as UploadPart answers it.
pub(crate) struct StoredPart {
    /// Hex MD5 of the part, unquoted.
    pub etag: String,
    pub checksums: Vec<(Algorithm, String)>,
    /// When the part was committed (leader clock, ms since the Unix epoch).
    pub last_modified_ms: i64,
}

/// Starts an upload (with a checksum algorithm and type for its parts and object, if
/// `checksum`); returns its id.
pub(crate) async fn create(
    gw: &Gateway,
    (bucket, key): (&str, &str),
    attrs: ObjectAttrs,
    checksum: UploadChecksum,
) -> ApiResult<String> {
    let (checksum_algorithm, checksum_type) = checksum
        .map(|(a, t)| (a.name().to_string(), t.name().to_string()))
        .unwrap_or_default();
    let upload = gw
        .meta
        .create_multipart_upload(pb::CreateMultipartUploadRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            headers: attrs.stored_headers(),
            content_type: attrs.content_type,
            user_metadata: attrs.user_metadata,
            tags: attrs.tags,
            lock: attrs.lock,
            checksum_algorithm,
            checksum_type,
        })
        .await?;
    debug!(bucket, key, upload_id = %upload.upload_id, "multipart upload created");
    Ok(upload.upload_id)
}

/// Stores one part: written and checked exactly like a PUT body, then committed into the
/// upload. A part with the same number is replaced; its shards are deleted after the grace.
#[tracing::instrument(name = "upload_part", skip_all, fields(bucket = %upload.bucket, key = %upload.key, upload_id = %upload.upload_id, part = number))]
pub(crate) async fn upload_part<B, E>(
    gw: &Gateway,
    upload: &UploadRef,
    number: u32,
    checks: BodyChecks,
    body: B,
) -> ApiResult<StoredPart>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let target = BodyTarget {
        bucket: &upload.bucket,
        key: &upload.key,
        multipart_upload_id: Some(&upload.upload_id),
    };
    let stored = store_body(gw, &target, checks, body).await?;
    let part = pb::ObjectPart {
        part_number: number,
        size: stored.size,
        etag: stored.etag.clone(),
        last_modified_ms: 0,
        scheme: stored.scheme,
        shards: stored.shards.clone(),
        attempt_id: stored.attempt_id.clone(),
        checksums: crate::checksum::records(&stored.checksums),
    };
    let result = gw
        .meta
        .commit_part(&upload.bucket, &upload.key, &upload.upload_id, part)
        .await;
    let committed = stored.settle(gw, &target, result)?;
    if let Some(old) = committed.replaced {
        spawn_delete_shards(
            Arc::clone(&gw.blobs),
            old.shards,
            &stored.shards,
            gw.shard_delete_grace,
            "replaced part",
            &upload.bucket,
            &upload.key,
        );
    }
    debug!(size = stored.size, "part committed");
    Ok(StoredPart {
        etag: stored.etag,
        checksums: stored.checksums,
        last_modified_ms: committed.part.last_modified_ms,
    })
}

/// One part as CompleteMultipartUpload lists it.
pub(crate) struct ListedPart {
    pub number: u32,
    /// Unquoted.
    pub etag: String,
    /// Checksums the client gives for the part (each must match the stored one).
    pub checksums: Vec<(Algorithm, String)>,
}

/// A completed upload.
pub(crate) struct CompletedObject {
    /// The new version (without its parts).
    pub object: pb::ObjectVersion,
    /// When it expires under the bucket's lifecycle rules.
    pub expiry: Option<pb::LifecycleExpiry>,
}

/// Completes an upload from the listed parts, if `condition` holds (checked in the
/// completion's Raft entry). An upload created with a checksum algorithm gets its object's
/// checksum from the parts' (`whole`: a full-object checksum the client sent to compare).
pub(crate) async fn complete(
    gw: &Gateway,
    upload: &UploadRef,
    listed: Vec<ListedPart>,
    (condition, whole): (Option<pb::WriteCondition>, Vec<(Algorithm, String)>),
) -> ApiResult<CompletedObject> {
    if listed.is_empty() {
        return Err(ApiError::MalformedXml(
            "the XML you provided did not list any part".into(),
        ));
    }
    let checksums = object_checksums(gw, upload, &listed, &whole).await?;
    let parts: Vec<(u32, String)> = listed.into_iter().map(|p| (p.number, p.etag)).collect();
    let done = gw
        .meta
        .complete_multipart_upload(pb::CompleteMultipartUploadRequest {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
            parts: parts
                .into_iter()
                .map(|(part_number, etag)| pb::CompletedPart { part_number, etag })
                .collect(),
            condition,
            checksums,
        })
        .await?;
    spawn_delete_shards(
        Arc::clone(&gw.blobs),
        part_shards(done.unused_parts),
        &[],
        gw.shard_delete_grace,
        "unused part",
        &upload.bucket,
        &upload.key,
    );
    if let Some(old) = done.replaced {
        spawn_delete_shards(
            Arc::clone(&gw.blobs),
            object_shards(old),
            &[],
            gw.shard_delete_grace,
            "replaced",
            &upload.bucket,
            &upload.key,
        );
    }
    debug!(bucket = %upload.bucket, key = %upload.key, version = %done.object.version_id, "multipart upload completed");
    Ok(CompletedObject {
        object: done.object,
        expiry: done.expiry,
    })
}

/// The object checksum of an upload created with a checksum algorithm (none otherwise):
/// made from the stored parts the list names, after checking the checksums the client gave
/// for them (`InvalidPart`) and for the whole object (`BadDigest`). A listed part that is
/// missing or has another ETag is left for the meta service to refuse (`InvalidPart`): its
/// entry checks the ETags, so the checksum is always made of the parts that complete.
async fn object_checksums(
    gw: &Gateway,
    upload: &UploadRef,
    listed: &[ListedPart],
    whole: &[(Algorithm, String)],
) -> ApiResult<Vec<pb::ObjectChecksum>> {
    let (record, stored) = match all_parts(gw, upload).await {
        Ok(found) => found,
        // Completed already (a retry, or a client completing twice): the meta service
        // answers the first completion, with the checksum it made.
        Err(ApiError::NoSuchUpload) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let Some((algorithm, kind)) = multipart_checksum::of_upload(&record) else {
        return Ok(Vec::new());
    };
    let mut parts: Vec<(u64, &str)> = Vec::with_capacity(listed.len());
    for wanted in listed {
        let Some(part) = stored
            .iter()
            .find(|p| p.part_number == wanted.number && p.etag.eq_ignore_ascii_case(&wanted.etag))
        else {
            return Ok(Vec::new());
        };
        // A part stored before checksums were kept cannot contribute: no object checksum.
        let Some(value) = multipart_checksum::part_value(part, algorithm) else {
            return Ok(Vec::new());
        };
        for (given_algorithm, given) in &wanted.checksums {
            let stored_value = multipart_checksum::part_value(part, *given_algorithm);
            if stored_value.is_some_and(|v| v != given.trim()) || *given_algorithm != algorithm {
                return Err(ApiError::InvalidPart);
            }
        }
        parts.push((part.size, value));
    }
    let value = multipart_checksum::object_value((algorithm, kind), &parts)?;
    for (given_algorithm, given) in whole {
        if *given_algorithm != algorithm || given.trim() != value {
            return Err(ApiError::BadDigest(format!(
                "the {} you specified did not match the calculated checksum",
                given_algorithm.header()
            )));
        }
    }
    Ok(vec![pb::ObjectChecksum {
        algorithm: algorithm.name().to_string(),
        value,
        r#type: kind.name().to_string(),
    }])
}

/// An upload's record and every part stored so far (without placements), in number order.
async fn all_parts(
    gw: &Gateway,
    upload: &UploadRef,
) -> ApiResult<(pb::MultipartUpload, Vec<pb::ObjectPart>)> {
    let mut parts = Vec::new();
    let mut marker = 0;
    loop {
        let page = gw
            .meta
            .list_parts(pb::ListPartsRequest {
                bucket: upload.bucket.clone(),
                key: upload.key.clone(),
                upload_id: upload.upload_id.clone(),
                part_number_marker: marker,
                max_parts: 0,
            })
            .await?;
        let record = page.upload.unwrap_or_default();
        let last = page.parts.last().map(|p| p.part_number);
        parts.extend(page.parts);
        match last {
            Some(last) if page.is_truncated => marker = last,
            _ => return Ok((record, parts)),
        }
    }
}

/// Aborts an upload; its parts' shards are deleted after the grace (a part upload still
/// streaming finds the upload gone at its commit and deletes its own shards).
pub(crate) async fn abort(gw: &Gateway, upload: &UploadRef) -> ApiResult<()> {
    let parts = gw
        .meta
        .abort_multipart_upload(pb::AbortMultipartUploadRequest {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            upload_id: upload.upload_id.clone(),
        })
        .await?;
    spawn_delete_shards(
        Arc::clone(&gw.blobs),
        part_shards(parts),
        &[],
        gw.shard_delete_grace,
        "aborted upload",
        &upload.bucket,
        &upload.key,
    );
    Ok(())
}

fn storage_class() -> StorageClass {
    StorageClass::from_static(StorageClass::STANDARD)
}

fn initiator() -> Initiator {
    let owner = dto::owner();
    Initiator {
        display_name: owner.display_name,
        id: owner.id,
    }
}

fn i32_of(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// ListParts.
pub(crate) async fn list_parts(gw: &Gateway, input: ListPartsInput) -> ApiResult<ListPartsOutput> {
    let max = max_keys(input.max_parts)?;
    let marker = match input.part_number_marker {
        None => 0,
        Some(n) => u32::try_from(n).map_err(|_| {
            ApiError::InvalidArgument("part-number-marker must not be negative".into())
        })?,
    };
    let resp = gw
        .meta
        .list_parts(pb::ListPartsRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number_marker: marker,
            // Zero asks meta for its default page; an empty page is answered below.
            max_parts: max.max(1),
        })
        .await?;
    let (parts, truncated) = if max == 0 {
        (Vec::new(), !resp.parts.is_empty())
    } else {
        (resp.parts, resp.is_truncated)
    };
    let next = parts.last().map_or(marker, |p| p.part_number);
    let upload_checksum = resp.upload.as_ref().and_then(multipart_checksum::of_upload);
    let parts = parts
        .into_iter()
        .map(|p| {
            let [crc32, crc32c, crc64nvme, sha1, sha256] =
                crate::checksum::fields(crate::checksum::of_records(&p.checksums));
            Part {
                part_number: Some(i32_of(u64::from(p.part_number))),
                size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                e_tag: Some(dto::etag(&p.etag)),
                last_modified: Some(dto::timestamp(p.last_modified_ms)),
                checksum_crc32: crc32,
                checksum_crc32c: crc32c,
                checksum_crc64nvme: crc64nvme,
                checksum_sha1: sha1,
                checksum_sha256: sha256,
            }
        })
        .collect();
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        part_number_marker: Some(i32_of(u64::from(marker))),
        next_part_number_marker: Some(i32_of(u64::from(next))),
        max_parts: Some(i32_of(u64::from(max))),
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(initiator()),
        owner: Some(dto::owner()),
        storage_class: Some(storage_class()),
        checksum_algorithm: upload_checksum
            .map(|(a, _)| s3s::dto::ChecksumAlgorithm::from(a.name().to_string())),
        checksum_type: upload_checksum
            .map(|(_, t)| s3s::dto::ChecksumType::from(t.name().to_string())),
        ..Default::default()
    })
}

/// ListMultipartUploads.
pub(crate) async fn list_uploads(
    gw: &Gateway,
    input: ListMultipartUploadsInput,
) -> ApiResult<ListMultipartUploadsOutput> {
    let url = is_url(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_uploads)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.clone().unwrap_or_default();
    // S3 ignores upload-id-marker without key-marker.
    let upload_id_marker = if key_marker.is_empty() {
        String::new()
    } else {
        input.upload_id_marker.clone().unwrap_or_default()
    };
    let resp = gw
        .meta
        .list_multipart_uploads(pb::ListMultipartUploadsRequest {
            bucket: input.bucket.clone(),
            prefix: prefix.clone(),
            delimiter: delimiter.clone().unwrap_or_default(),
            key_marker: key_marker.clone(),
            upload_id_marker: upload_id_marker.clone(),
            max_uploads: max.max(1),
        })
        .await?;
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let empty = max == 0;
    let truncated = if empty {
        !resp.uploads.is_empty() || !resp.common_prefixes.is_empty()
    } else {
        resp.is_truncated
    };
    let (uploads, prefixes) = if empty {
        (Vec::new(), Vec::new())
    } else {
        (resp.uploads, resp.common_prefixes)
    };
    let uploads: Vec<MultipartUpload> = uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(enc(u.key)),
            upload_id: Some(u.upload_id),
            initiated: Some(dto::timestamp(u.initiated_ms)),
            initiator: Some(initiator()),
            owner: Some(dto::owner()),
            storage_class: Some(storage_class()),
            ..Default::default()
        })
        .collect();
    let prefixes: Vec<CommonPrefix> = prefixes
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    let (next_key, next_id) = if empty {
        (String::new(), String::new())
    } else {
        (resp.next_key_marker, resp.next_upload_id_marker)
    };
    Ok(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(enc(prefix)),
        delimiter: delimiter.map(enc),
        key_marker: Some(enc(key_marker)),
        upload_id_marker: Some(upload_id_marker),
        next_key_marker: (!next_key.is_empty()).then(|| enc(next_key)),
        next_upload_id_marker: (!next_id.is_empty()).then_some(next_id),
        max_uploads: Some(i32_of(u64::from(max))),
        is_truncated: Some(truncated),
        encoding_type: input.encoding_type,
        uploads: Some(uploads),
        common_prefixes: Some(prefixes),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_are_1_to_10000() {
        assert_eq!(part_number(1).unwrap(), 1);
        assert_eq!(part_number(10_000).unwrap(), 10_000);
        for bad in [0, -1, 10_001, i32::MIN, i32::MAX] {
            assert!(
                matches!(part_number(bad), Err(ApiError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
