//! PUT: cut the body into stripes, erasure-code them, stream every shard to its blob server
//! in parallel, enforce the write quorum, then commit the version in the metadata service.
//! [`store_body`] is everything before the commit; UploadPart uses it too.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_proto::meta::{self as pb, ShardPlacement};
use futures::{Stream, StreamExt};
use md5_simd::Md5;
use tracing::{debug, warn};

use crate::attrs::ObjectAttrs;
use crate::blob_pool::{object_shards, spawn_delete_shards};
use crate::checksum::{Algorithm, BodyChecksums};
use crate::erasure::{Codec, Scheme};
use crate::error::{ApiError, ApiResult};
use crate::shard_writers::ShardWriters;
use crate::Gateway;

/// What the S3 layer hands to a PUT.
pub(crate) struct PutInput {
    pub bucket: String,
    pub key: String,
    /// Declared body length (after aws-chunked decoding), if any.
    pub content_length: Option<u64>,
    /// Decoded `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    /// Content-Type, user metadata, standard headers and tags of the new version.
    pub attrs: ObjectAttrs,
    pub checksums: BodyChecksums,
    /// `If-None-Match: *` / `If-Match`, checked by the meta service in the commit's entry.
    pub condition: Option<pb::WriteCondition>,
}

/// A committed PUT.
pub(crate) struct PutOutput {
    /// Hex MD5 of the body, unquoted.
    pub etag: String,
    /// `x-amz-version-id`: the new version's id, when it has one of its own.
    pub version_id: Option<String>,
    /// When the version was committed (leader clock, ms since the Unix epoch).
    pub last_modified_ms: i64,
    pub checksums: Vec<(Algorithm, String)>,
    /// When the version expires under the bucket's lifecycle rules.
    pub expiry: Option<pb::LifecycleExpiry>,
}

/// Stores one object. Nothing becomes visible unless every check passed, a write quorum of
/// shards is durable and the metadata commit succeeded.
#[tracing::instrument(name = "put_object", skip_all, fields(bucket = %input.bucket, key = %input.key))]
pub(crate) async fn put_object<B, E>(gw: &Gateway, input: PutInput, body: B) -> ApiResult<PutOutput>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let PutInput {
        bucket,
        key,
        content_length,
        content_md5,
        attrs,
        checksums,
        condition,
    } = input;
    let target = BodyTarget {
        bucket: &bucket,
        key: &key,
        multipart_upload_id: None,
    };
    let checks = BodyChecks {
        content_length,
        content_md5,
        checksums,
    };
    let stored = if content_length.is_some_and(|len| len <= gw.inline_max) {
        crate::inline::read_body(gw, checks, body).await?
    } else {
        store_body(gw, &target, checks, body).await?
    };
    let object = pb::ObjectVersion {
        bucket: bucket.clone(),
        key: key.clone(),
        version_id: String::new(),
        size: stored.size,
        etag: stored.etag.clone(),
        headers: attrs.stored_headers(),
        content_type: attrs.content_type,
        user_metadata: attrs.user_metadata,
        tags: attrs.tags,
        lock: attrs.lock,
        last_modified_ms: 0,
        scheme: stored.scheme,
        shards: stored.shards.clone(),
        upload_id: stored.attempt_id.clone(),
        parts: Vec::new(),
        checksums: crate::checksum::records(&stored.checksums),
        versioned: false,
        delete_marker: false,
        inline_data: stored.inline_data.clone(),
    };
    let committed = stored.settle(gw, &target, gw.meta.commit_object(object, condition).await)?;
    if let Some(old) = committed.replaced {
        // `keep`: if a retried commit landed twice, the "replaced" version is our own
        // first commit and shares our shard files; those must survive.
        spawn_delete_shards(
            Arc::clone(&gw.blobs),
            object_shards(old),
            &stored.shards,
            gw.shard_delete_grace,
            "replaced",
            &bucket,
            &key,
        );
    }
    // Shards not written need no report: the commit's Raft entry queued the version for
    // healing.
    let missing = stored.shards.iter().filter(|s| !s.written).count();
    debug!(size = stored.size, version = %committed.object.version_id, missing, "object committed");
    Ok(PutOutput {
        etag: stored.etag,
        // A write of a null version answers no version id (see `versioning::header_id`).
        version_id: crate::versioning::header_id(&committed.object),
        last_modified_ms: committed.object.last_modified_ms,
        checksums: stored.checksums,
        expiry: committed.expiry,
    })
}

/// Where a body goes: an object, or a part of the multipart upload `multipart_upload_id`.
pub(crate) struct BodyTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub multipart_upload_id: Option<&'a str>,
}

/// What the body must satisfy before anything is committed.
pub(crate) struct BodyChecks {
    /// Declared body length (after aws-chunked decoding), if any.
    pub content_length: Option<u64>,
    /// Decoded `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    pub checksums: BodyChecksums,
}

/// A body whose shards are durable on at least a write quorum of disks and that passed
/// every check, not committed yet: the caller commits it (as an object or a part) and hands
/// the outcome to [`StoredBody::settle`].
pub(crate) struct StoredBody {
    pub size: u64,
    /// Hex MD5 of the body, unquoted.
    pub etag: String,
    pub checksums: Vec<(Algorithm, String)>,
    /// The erasure scheme of the shards; `None` for an inline body.
    pub scheme: Option<pb::ErasureScheme>,
    /// Every placement of the plan, with `written` set for the shards that are durable
    /// (none for an inline body).
    pub shards: Vec<ShardPlacement>,
    /// The PlanPut attempt (the shards are `{attempt_id}.{index}`), or for an inline body an
    /// id of the gateway's own; the commit carries it so that a retried commit is recognised.
    pub attempt_id: String,
    /// The whole body when it is kept inline in the metadata instead of as shards.
    pub inline_data: Option<Bytes>,
    /// Shards whose files exist, to remove if the commit is refused.
    pub(crate) finalized: Vec<ShardPlacement>,
}

impl StoredBody {
    /// Passes a commit's result through, cleaning up after a refused one.
    pub(crate) fn settle<T>(
        &self,
        gw: &Gateway,
        target: &BodyTarget<'_>,
        result: ApiResult<T>,
    ) -> ApiResult<T> {
        match result {
            Ok(done) => Ok(done),
            // Why the shards stay: a commit that failed with UNAVAILABLE or an unexpected
            // status may still have been applied (the leader committed, the reply was lost).
            // Deleting the shards would then destroy visible data; if it really failed, they
            // are only orphans for the healer to collect.
            Err(e @ (ApiError::Unavailable(_) | ApiError::Internal(_))) => {
                warn!(error = %e, "commit outcome unknown; shards kept");
                Err(e)
            }
            Err(e) => {
                spawn_delete_shards(
                    Arc::clone(&gw.blobs),
                    self.finalized.clone(),
                    &[],
                    std::time::Duration::ZERO,
                    "commit rejected",
                    target.bucket,
                    target.key,
                );
                Err(e)
            }
        }
    }
}

/// Plans, erasure-codes and streams a body to its blob servers, and checks it (length,
/// digests, write quorum). Nothing is committed: see [`StoredBody`]. The PUT pipeline shared
/// by PutObject and UploadPart.
pub(crate) async fn store_body<B, E>(
    gw: &Gateway,
    target: &BodyTarget<'_>,
    checks: BodyChecks,
    mut body: B,
) -> ApiResult<StoredBody>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let content_length = checks.content_length;
    let mut check = BodyCheck::new(checks);
    let plan = gw
        .meta
        .plan_put(
            target.bucket,
            target.key,
            content_length.unwrap_or(0),
            target.multipart_upload_id.unwrap_or(""),
        )
        .await?;
    let attempt_id = plan.upload_id.clone();
    // A part of an upload with a checksum algorithm carries that checksum, sent or not.
    if let Some(algorithm) = Algorithm::from_name(&plan.checksum_algorithm) {
        check.also_compute(algorithm);
    }
    let (pb_scheme, scheme, placements) = check_plan(plan)?;
    let codec = Codec::new(scheme).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Held until the shard streams are finished (the end of this function).
    let _memory = gw.put_budget.reserve(&scheme).await;
    let quorum = scheme.write_quorum();
    let mut writers = ShardWriters::start(&gw.blobs, &placements, gw.shard_io, quorum);

    let stripe_size = scheme.stripe_size() as usize;
    let mut pending = BytesMut::with_capacity(stripe_size);
    // A client that stalls mid-body would otherwise hold k+m shard streams (and a blob-server
    // thread each) open forever.
    while let Some(mut chunk) = next_chunk(&mut body, gw.body_idle_timeout).await? {
        check.update(&chunk)?;
        while !chunk.is_empty() {
            if pending.is_empty() && chunk.len() >= stripe_size {
                let stripe = chunk.split_to(stripe_size);
                writers.send_stripe(encode(&codec, stripe)?).await;
            } else {
                let take = (stripe_size - pending.len()).min(chunk.len());
                pending.extend_from_slice(&chunk.split_to(take));
                if pending.len() == stripe_size {
                    let stripe = pending.split().freeze();
                    pending.reserve(stripe_size);
                    writers.send_stripe(encode(&codec, stripe)?).await;
                }
            }
        }
        if writers.alive() < quorum {
            return Err(ApiError::Unavailable(format!(
                "only {} of {} blob servers are accepting data; {quorum} needed",
                writers.alive(),
                scheme.total_shards()
            )));
        }
    }
    // Every check on the body happens before the shard streams are closed: until then no
    // blob server has finalized anything, and returning an error aborts the streams.
    let checked = check.finish()?;
    let received = checked.size;
    if !pending.is_empty() {
        writers.send_stripe(encode(&codec, pending.freeze())?).await;
    }

    let outcomes = writers.finish(scheme.shard_len(received)).await;
    let written = outcomes.iter().filter(|o| o.written).count();
    let finalized: Vec<ShardPlacement> = placements
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.finalized)
        .map(|(p, _)| p.clone())
        .collect();
    if written < quorum {
        spawn_delete_shards(
            Arc::clone(&gw.blobs),
            finalized,
            &[],
            std::time::Duration::ZERO,
            "put below write quorum",
            target.bucket,
            target.key,
        );
        return Err(ApiError::Unavailable(format!(
            "only {written} of {} shards were written; {quorum} needed",
            scheme.total_shards()
        )));
    }

    let shards: Vec<ShardPlacement> = placements
        .iter()
        .zip(&outcomes)
        .map(|(p, o)| ShardPlacement {
            written: o.written,
            ..p.clone()
        })
        .collect();
    Ok(StoredBody {
        size: received,
        etag: checked.etag,
        checksums: checked.checksums,
        scheme: Some(pb_scheme),
        shards,
        attempt_id,
        inline_data: None,
        finalized,
    })
}

/// The next chunk of a request body, or `None` at its end; a body that delivers nothing for
/// `idle` fails with `RequestTimeout`.
pub(crate) async fn next_chunk<B, E>(
    body: &mut B,
    idle: std::time::Duration,
) -> ApiResult<Option<Bytes>>
where
    B: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    match tokio::time::timeout(idle, body.next()).await {
        Err(_) => Err(ApiError::RequestTimeout(idle)),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => chunk.map(Some).map_err(|e| body_error(&e.to_string())),
    }
}

/// The length and digests of a PUT body as it streams by, checked against what the request
/// declared (Content-Length, Content-MD5, flexible checksums). Shared by the sharded and the
/// inline paths so that both accept and refuse exactly the same bodies.
pub(crate) struct BodyCheck {
    declared: BodyChecks,
    received: u64,
    md5: Md5,
}

/// A body that passed every [`BodyCheck`].
pub(crate) struct CheckedBody {
    pub size: u64,
    /// Hex MD5 of the body, unquoted.
    pub etag: String,
    pub checksums: Vec<(Algorithm, String)>,
}

impl BodyCheck {
    pub(crate) fn new(declared: BodyChecks) -> Self {
        Self {
            declared,
            received: 0,
            md5: Md5::new(),
        }
    }

    /// Computes `algorithm` of the body too (see [`BodyChecksums::also_compute`]).
    pub(crate) fn also_compute(&mut self, algorithm: Algorithm) {
        self.declared.checksums.also_compute(algorithm);
    }

    /// Takes in the next chunk; fails as soon as the body outgrows its declared length.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> ApiResult<()> {
        self.received += chunk.len() as u64;
        if self
            .declared
            .content_length
            .is_some_and(|len| self.received > len)
        {
            return Err(ApiError::IncompleteBody(
                "the body is longer than its declared length".into(),
            ));
        }
        self.md5.update(chunk);
        self.declared.checksums.update(chunk);
        Ok(())
    }

    /// At the end of the body: the length, Content-MD5 and checksums must all match.
    pub(crate) fn finish(self) -> ApiResult<CheckedBody> {
        let received = self.received;
        if let Some(len) = self.declared.content_length {
            if received != len {
                return Err(ApiError::IncompleteBody(format!(
                    "received {received} of the {len} bytes declared by Content-Length"
                )));
            }
        }
        let etag = hex::encode(self.md5.finalize());
        if let Some(want) = self.declared.content_md5 {
            if hex::encode(want) != etag {
                return Err(ApiError::BadDigest(
                    "the Content-MD5 you specified did not match what was received".into(),
                ));
            }
        }
        let checksums = self.declared.checksums.finish()?;
        Ok(CheckedBody {
            size: received,
            etag,
            checksums,
        })
    }
}

/// Validates a placement plan: a usable scheme and exactly `k + m` shards indexed `0..k+m`.
fn check_plan(
    plan: pb::PlanPutResponse,
) -> ApiResult<(pb::ErasureScheme, Scheme, Vec<ShardPlacement>)> {
    let bad = |why: String| ApiError::Internal(format!("bad placement plan: {why}"));
    let pb_scheme = plan.scheme.ok_or_else(|| bad("no scheme".into()))?;
    let scheme = Scheme::new(
        pb_scheme.data_shards,
        pb_scheme.parity_shards,
        pb_scheme.block_size,
    )
    .map_err(|e| bad(e.to_string()))?;
    let mut shards = plan.shards;
    shards.sort_by_key(|s| s.index);
    if shards.len() != scheme.total_shards()
        || shards
            .iter()
            .enumerate()
            .any(|(i, s)| s.index as usize != i)
    {
        return Err(bad(format!(
            "{} placements for a {}+{} scheme",
            shards.len(),
            scheme.k,
            scheme.m
        )));
    }
    Ok((pb_scheme, scheme, shards))
}

fn encode(codec: &Codec, stripe: Bytes) -> ApiResult<Vec<Bytes>> {
    codec
        .encode(stripe)
        .map_err(|e| ApiError::Internal(format!("erasure encode: {e}")))
}

/// Maps a failure of the request body stream. s3s's own stream errors are private types, so
/// they are recognized by their text.
fn body_error(msg: &str) -> ApiError {
    if msg.contains("Sha256Mismatch") {
        ApiError::ContentSha256Mismatch
    } else if msg.contains("SignatureMismatch") {
        ApiError::SignatureDoesNotMatch
    } else {
        ApiError::IncompleteBody(format!("the request body ended early: {msg}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_map() {
        assert!(matches!(
            body_error("UploadStreamError: Sha256Mismatch"),
            ApiError::ContentSha256Mismatch
        ));
        assert!(matches!(
            body_error("AwsChunkedStreamError: SignatureMismatch"),
            ApiError::SignatureDoesNotMatch
        ));
        assert!(matches!(
            body_error("connection reset"),
            ApiError::IncompleteBody(_)
        ));
    }

    #[test]
    fn plan_validation() {
        let placement = |index| ShardPlacement {
            index,
            ..Default::default()
        };
        let scheme = pb::ErasureScheme {
            data_shards: 2,
            parity_shards: 1,
            block_size: 1024,
        };
        let ok = pb::PlanPutResponse {
            error: 0,
            scheme: Some(scheme),
            shards: vec![placement(2), placement(0), placement(1)],
            upload_id: "u".into(),
            ..Default::default()
        };
        let (_, s, shards) = check_plan(ok).unwrap();
        assert_eq!((s.k, s.m), (2, 1));
        assert_eq!(
            shards.iter().map(|p| p.index).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let short = pb::PlanPutResponse {
            error: 0,
            scheme: Some(scheme),
            shards: vec![placement(0), placement(1)],
            upload_id: "u".into(),
            ..Default::default()
        };
        assert!(check_plan(short).is_err());
        let dup = pb::PlanPutResponse {
            error: 0,
            scheme: Some(scheme),
            shards: vec![placement(0), placement(0), placement(1)],
            upload_id: "u".into(),
            ..Default::default()
        };
        assert!(check_plan(dup).is_err());
    }
}
