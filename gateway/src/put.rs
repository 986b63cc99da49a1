//! PUT: cut the body into stripes, erasure-code them, stream every shard to its blob server
//! in parallel, enforce the write quorum, then commit the version in the metadata service.
//! [`store_body`] is everything before the commit; UploadPart uses it too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_proto::blob::{PutShardRequest, ShardHeader};
use cairn_proto::meta::{self as pb, ShardPlacement};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info_span, warn, Instrument};

use crate::blob_pool::{object_shards, spawn_delete_shards, BlobPool};
use crate::checksum::{Algorithm, BodyChecksums};
use crate::erasure::{Codec, Scheme};
use crate::error::{ApiError, ApiResult};
use crate::Gateway;

/// Blocks queued per shard stream: enough to keep a blob server busy, small enough that a
/// PUT of any size holds only a few stripes in memory.
const SHARD_QUEUE_BLOCKS: usize = 2;
/// A blob server that accepts nothing for this long is dropped from the write.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a blob server may take to fsync and acknowledge a complete shard.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);
/// Shard data is sent in gRPC messages of at most this size.
const PIECE: usize = 1024 * 1024;

/// What the S3 layer hands to a PUT.
pub(crate) struct PutInput {
    pub bucket: String,
    pub key: String,
    /// Declared body length (after aws-chunked decoding), if any.
    pub content_length: Option<u64>,
    /// Decoded `Content-MD5`.
    pub content_md5: Option<[u8; 16]>,
    pub content_type: String,
    pub user_metadata: HashMap<String, String>,
    pub checksums: BodyChecksums,
}

/// A committed PUT.
pub(crate) struct PutOutput {
    /// Hex MD5 of the body, unquoted.
    pub etag: String,
    pub version_id: String,
    pub checksums: Vec<(Algorithm, String)>,
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
        content_type,
        user_metadata,
        checksums,
    } = input;
    let target = BodyTarget {
        bucket: &bucket,
        key: &key,
        multipart_upload_id: None,
    };
    let stored = store_body(
        gw,
        &target,
        BodyChecks {
            content_length,
            content_md5,
            checksums,
        },
        body,
    )
    .await?;
    let object = pb::ObjectVersion {
        bucket: bucket.clone(),
        key: key.clone(),
        version_id: String::new(),
        size: stored.size,
        etag: stored.etag.clone(),
        content_type,
        user_metadata,
        last_modified_ms: 0,
        scheme: Some(stored.scheme),
        shards: stored.shards.clone(),
        upload_id: stored.attempt_id.clone(),
        parts: Vec::new(),
    };
    let committed = stored.settle(gw, &target, gw.meta.commit_object(object).await)?;
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
    debug!(size = stored.size, version = %committed.object.version_id, "object committed");
    Ok(PutOutput {
        etag: stored.etag,
        version_id: committed.object.version_id,
        checksums: stored.checksums,
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
    pub scheme: pb::ErasureScheme,
    /// Every placement of the plan, with `written` set for the shards that are durable.
    pub shards: Vec<ShardPlacement>,
    /// The PlanPut attempt (the shards are `{attempt_id}.{index}`); the commit carries it so
    /// that a retried commit is recognised.
    pub attempt_id: String,
    /// Shards whose files exist, to remove if the commit is refused.
    finalized: Vec<ShardPlacement>,
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
    let BodyChecks {
        content_length,
        content_md5,
        mut checksums,
    } = checks;
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
    let (pb_scheme, scheme, placements) = check_plan(plan)?;
    let codec = Codec::new(scheme).map_err(|e| ApiError::Internal(e.to_string()))?;
    let quorum = scheme.write_quorum();
    let mut writers = ShardWriters::start(&gw.blobs, &placements);

    let stripe_size = scheme.stripe_size() as usize;
    let mut pending = BytesMut::with_capacity(stripe_size);
    let mut received: u64 = 0;
    let mut md5 = Md5::new();
    // A client that stalls mid-body would otherwise hold k+m shard streams (and a blob-server
    // thread each) open forever.
    let idle = gw.body_idle_timeout;
    while let Some(chunk) = tokio::time::timeout(idle, body.next())
        .await
        .map_err(|_| ApiError::RequestTimeout(idle))?
    {
        let mut chunk = chunk.map_err(|e| body_error(&e.to_string()))?;
        received += chunk.len() as u64;
        if content_length.is_some_and(|len| received > len) {
            return Err(ApiError::IncompleteBody(
                "the body is longer than its declared length".into(),
            ));
        }
        md5.update(&chunk);
        checksums.update(&chunk);
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
    if let Some(len) = content_length {
        if received != len {
            return Err(ApiError::IncompleteBody(format!(
                "received {received} of the {len} bytes declared by Content-Length"
            )));
        }
    }

    // Every check on the body happens before the shard streams are closed: until then no
    // blob server has finalized anything, and returning an error aborts the streams.
    let etag = hex::encode(md5.finalize());
    if let Some(want) = content_md5 {
        if hex::encode(want) != etag {
            return Err(ApiError::BadDigest(
                "the Content-MD5 you specified did not match what was received".into(),
            ));
        }
    }
    let computed = checksums.finish()?;
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
        etag,
        checksums: computed,
        scheme: pb_scheme,
        shards,
        attempt_id,
        finalized,
    })
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

/// How one shard write ended.
struct ShardOutcome {
    /// Acknowledged as durable with the expected length.
    written: bool,
    /// The blob server finalized a file (possibly of a wrong length): it must be cleaned up
    /// if the object is not committed.
    finalized: bool,
}

struct ShardWriter {
    /// `None` once the shard is closed or given up.
    tx: Option<mpsc::Sender<Bytes>>,
    task: JoinHandle<Result<u64, String>>,
    index: usize,
    failed: Option<&'static str>,
}

/// One PutShard stream per shard, each fed through a small bounded queue.
struct ShardWriters {
    writers: Vec<ShardWriter>,
}

impl ShardWriters {
    fn start(pool: &Arc<BlobPool>, placements: &[ShardPlacement]) -> Self {
        let writers = placements
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let (tx, rx) = mpsc::channel(SHARD_QUEUE_BLOCKS);
                let span =
                    info_span!("put_shard", index, node = %p.node_address, shard = %p.shard_key);
                let task =
                    tokio::spawn(write_shard(Arc::clone(pool), p.clone(), rx).instrument(span));
                ShardWriter {
                    tx: Some(tx),
                    task,
                    index,
                    failed: None,
                }
            })
            .collect();
        Self { writers }
    }

    /// Shards still accepting data.
    fn alive(&self) -> usize {
        self.writers.iter().filter(|w| w.tx.is_some()).count()
    }

    /// Queues block `i` of a stripe on shard `i`. A shard whose server failed or stalls is
    /// given up; the write goes on degraded.
    async fn send_stripe(&mut self, blocks: Vec<Bytes>) {
        let sends = self
            .writers
            .iter_mut()
            .zip(blocks)
            .map(|(w, block)| async move {
                let Some(tx) = w.tx.as_ref() else { return };
                let sent = tokio::time::timeout(SEND_TIMEOUT, tx.send(block)).await;
                match sent {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        w.tx = None;
                        w.failed = Some("the shard stream ended early");
                    }
                    Err(_) => {
                        w.tx = None;
                        w.task.abort();
                        w.failed = Some("the blob server stopped accepting data");
                    }
                }
            });
        futures::future::join_all(sends).await;
    }

    /// Closes every stream (the servers finalize now) and waits for the acknowledgements.
    async fn finish(&mut self, expected_len: u64) -> Vec<ShardOutcome> {
        for w in &mut self.writers {
            w.tx = None;
        }
        let waits = self.writers.iter_mut().map(|w| async move {
            let result = tokio::time::timeout(FINISH_TIMEOUT, &mut w.task).await;
            let outcome = match result {
                Ok(Ok(Ok(len))) => {
                    let written = w.failed.is_none() && len == expected_len;
                    if !written {
                        warn!(index = w.index, len, expected_len, "shard acknowledged with a wrong length");
                    }
                    ShardOutcome { written, finalized: true }
                }
                Ok(Ok(Err(e))) => {
                    warn!(index = w.index, error = %e, "shard write failed");
                    ShardOutcome { written: false, finalized: false }
                }
                Ok(Err(join)) => {
                    warn!(index = w.index, reason = w.failed.unwrap_or("task ended"), error = %join, "shard writer stopped");
                    ShardOutcome { written: false, finalized: false }
                }
                Err(_) => {
                    w.task.abort();
                    warn!(index = w.index, "shard acknowledgement timed out");
                    ShardOutcome { written: false, finalized: false }
                }
            };
            outcome
        });
        futures::future::join_all(waits).await
    }
}

impl Drop for ShardWriters {
    /// A PUT that ends early (error, client gone) aborts its unfinished shard streams, so
    /// the blob servers see a reset stream instead of a clean end and keep nothing.
    fn drop(&mut self) {
        for w in &self.writers {
            w.task.abort();
        }
    }
}

/// Streams one shard: a header message, then the blocks cut into pieces of at most `PIECE`.
pub(crate) async fn write_shard(
    pool: Arc<BlobPool>,
    placement: ShardPlacement,
    rx: mpsc::Receiver<Bytes>,
) -> Result<u64, String> {
    let mut client = pool
        .client(&placement.node_address)
        .map_err(|e| e.to_string())?;
    let header = PutShardRequest {
        header: Some(ShardHeader {
            disk_id: placement.disk_id.clone(),
            shard_key: placement.shard_key.clone(),
        }),
        data: Bytes::new(),
    };
    let data = ReceiverStream::new(rx)
        .flat_map(|block| futures::stream::iter(pieces(block)))
        .map(|data| PutShardRequest { header: None, data });
    let request = futures::stream::once(futures::future::ready(header)).chain(data);
    match client.put_shard(request).await {
        Ok(resp) => Ok(resp.into_inner().length),
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// Cuts a block into views of at most `PIECE` bytes.
fn pieces(block: Bytes) -> Vec<Bytes> {
    (0..block.len())
        .step_by(PIECE)
        .map(|start| block.slice(start..(start + PIECE).min(block.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_block() {
        let block = Bytes::from(vec![7u8; 2 * PIECE + 3]);
        let p = pieces(block);
        assert_eq!(
            p.iter().map(Bytes::len).collect::<Vec<_>>(),
            vec![PIECE, PIECE, 3]
        );
        assert!(pieces(Bytes::new()).is_empty());
    }

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
        };
        assert!(check_plan(short).is_err());
        let dup = pb::PlanPutResponse {
            error: 0,
            scheme: Some(scheme),
            shards: vec![placement(0), placement(0), placement(1)],
            upload_id: "u".into(),
        };
        assert!(check_plan(dup).is_err());
    }
}
