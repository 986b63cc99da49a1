//! GET: read the stripes covering a byte range from the data shards, switch to parity shards
//! when a data shard fails, and stream the decoded bytes out a few stripes ahead at most.
//!
//! An object is one or more [`Segment`]s, each erasure-coded on its own: the whole body of a
//! single PUT, or the parts of a multipart object in order. A range is cut at the segment
//! boundaries and the segments are read one after the other, so a read holds one segment's
//! shard streams at a time whatever the number of parts.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_proto::blob::{GetShardRequest, GetShardResponse};
use cairn_proto::meta::{ErasureScheme, ObjectVersion, ShardPlacement};
use futures::Stream;
use s3s::stream::{ByteStream, RemainingLength};
use tokio::sync::mpsc;
use tonic::Streaming;
use tracing::{debug, info_span, warn, Instrument};

use crate::blob_pool::BlobPool;
use crate::erasure::{Codec, Scheme, StripeSpan};
use crate::error::{ApiError, ApiResult};

/// Decoded stripes buffered between the shard readers and the client.
const STRIPES_AHEAD: usize = 2;
/// How long opening a shard stream or waiting for its next bytes may take before the shard
/// counts as unavailable.
const SHARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of a GET: decoded bytes from a background reader, with an exact length.
pub(crate) struct ObjectBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    remaining: u64,
}

impl Stream for ObjectBody {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) if self.remaining > 0 => {
                // The reader stopped without reporting why: never let a short body pass.
                let missing = std::mem::take(&mut self.remaining);
                Poll::Ready(Some(Err(Box::new(std::io::Error::other(format!(
                    "object body ended {missing} bytes early"
                ))))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ByteStream for ObjectBody {
    fn remaining_length(&self) -> RemainingLength {
        match usize::try_from(self.remaining) {
            Ok(n) => RemainingLength::new_exact(n),
            Err(_) => RemainingLength::unknown(),
        }
    }
}

/// One separately erasure-coded body inside an object.
#[derive(Debug, Clone)]
struct Segment {
    scheme: Option<ErasureScheme>,
    shards: Vec<ShardPlacement>,
    size: u64,
    /// `bucket/key` (and the part number), for errors and logs.
    label: String,
}

/// The segments of `object`, in order, each with the byte range of it that `range` covers
/// (segments the range does not touch are left out).
fn segments(object: &ObjectVersion, range: &Range<u64>) -> Vec<(Segment, Range<u64>)> {
    let name = format!("{}/{}", object.bucket, object.key);
    let all: Vec<Segment> = if object.parts.is_empty() {
        vec![Segment {
            scheme: object.scheme,
            shards: object.shards.clone(),
            size: object.size,
            label: name,
        }]
    } else {
        object
            .parts
            .iter()
            .map(|p| Segment {
                scheme: p.scheme,
                shards: p.shards.clone(),
                size: p.size,
                label: format!("{name} part {}", p.part_number),
            })
            .collect()
    };
    let mut out = Vec::new();
    let mut offset = 0u64;
    for segment in all {
        let (start, end) = (offset, offset + segment.size);
        offset = end;
        let local = range.start.max(start) - start..range.end.min(end).saturating_sub(start);
        if local.start < local.end {
            out.push((segment, local));
        }
    }
    out
}

/// Starts streaming `range` of `object`. The first stripe is read before returning, so an
/// object that cannot be read fails the request instead of truncating a 200 response.
pub(crate) async fn open_body(
    pool: Arc<BlobPool>,
    object: &ObjectVersion,
    range: Range<u64>,
) -> ApiResult<ObjectBody> {
    let len = range.end.saturating_sub(range.start);
    let (tx, rx) = mpsc::channel(STRIPES_AHEAD);
    if len == 0 {
        return Ok(ObjectBody { rx, remaining: 0 });
    }
    let pieces = segments(object, &range);
    let covered: u64 = pieces.iter().map(|(_, r)| r.end - r.start).sum();
    if covered != len {
        return Err(ApiError::Internal(format!(
            "{}/{}: its parts hold {covered} of the {len} bytes asked for",
            object.bucket, object.key
        )));
    }
    let mut pieces = pieces.into_iter();
    let Some((segment, local)) = pieces.next() else {
        return Err(ApiError::Internal("empty range".into()));
    };
    let mut reader = StripeReader::new(Arc::clone(&pool), &segment, local)?;
    let first = reader.next_chunk().await?;
    let span = info_span!("get_body", bucket = %object.bucket, key = %object.key, version = %object.version_id);
    tokio::spawn(
        async move {
            let mut next = first;
            loop {
                while let Some(bytes) = next {
                    if tx.send(Ok(bytes)).await.is_err() {
                        debug!("client went away");
                        return;
                    }
                    next = match reader.next_chunk().await {
                        Ok(n) => n,
                        Err(e) => {
                            warn!(error = %e, "object read failed mid-stream");
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    };
                }
                // This segment is done (its shard streams close as the reader is replaced).
                let Some((segment, local)) = pieces.next() else {
                    return;
                };
                let opened = StripeReader::new(Arc::clone(&pool), &segment, local);
                let first = match opened {
                    Ok(r) => {
                        reader = r;
                        reader.next_chunk().await
                    }
                    Err(e) => Err(e),
                };
                next = match first {
                    Ok(n) => n,
                    Err(e) => {
                        warn!(error = %e, "object read failed mid-stream");
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
            }
        }
        .instrument(span),
    );
    Ok(ObjectBody { rx, remaining: len })
}

/// Failure of one shard stream.
#[derive(Debug, thiserror::Error)]
enum ShardError {
    #[error("{0:?}: {1}")]
    Status(tonic::Code, String),
    #[error("the shard ended early")]
    Short,
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Other(String),
}

/// One open GetShard stream, read block by block.
struct ShardReader {
    stream: Streaming<GetShardResponse>,
    pending: Bytes,
}

impl ShardReader {
    async fn open(
        pool: &BlobPool,
        shard: &ShardPlacement,
        offset: u64,
        length: u64,
    ) -> Result<Self, ShardError> {
        let mut client = pool
            .client(&shard.node_address)
            .map_err(|e| ShardError::Other(e.to_string()))?;
        let req = GetShardRequest {
            disk_id: shard.disk_id.clone(),
            shard_key: shard.shard_key.clone(),
            offset,
            length,
        };
        match tokio::time::timeout(SHARD_TIMEOUT, client.get_shard(req)).await {
            Err(_) => Err(ShardError::Timeout),
            Ok(Err(status)) => Err(ShardError::Status(
                status.code(),
                status.message().to_string(),
            )),
            Ok(Ok(resp)) => Ok(Self {
                stream: resp.into_inner(),
                pending: Bytes::new(),
            }),
        }
    }

    /// Exactly the next `n` bytes of the shard.
    async fn read_exact(&mut self, n: usize) -> Result<Bytes, ShardError> {
        if self.pending.len() >= n {
            return Ok(self.pending.split_to(n));
        }
        let mut buf = BytesMut::new();
        while buf.len() + self.pending.len() < n {
            let msg = match tokio::time::timeout(SHARD_TIMEOUT, self.stream.message()).await {
                Err(_) => return Err(ShardError::Timeout),
                Ok(Err(status)) => {
                    return Err(ShardError::Status(
                        status.code(),
                        status.message().to_string(),
                    ))
                }
                Ok(Ok(None)) => return Err(ShardError::Short),
                Ok(Ok(Some(msg))) => msg,
            };
            if self.pending.is_empty() && buf.is_empty() {
                self.pending = msg.data;
            } else {
                if buf.is_empty() {
                    buf.reserve(n);
                }
                buf.extend_from_slice(&std::mem::take(&mut self.pending));
                self.pending = msg.data;
            }
        }
        if buf.is_empty() {
            return Ok(self.pending.split_to(n));
        }
        let want = n - buf.len();
        buf.extend_from_slice(&self.pending.split_to(want));
        Ok(buf.freeze())
    }
}

/// Reads the stripes of a span in order, keeping exactly `k` healthy shard streams open.
struct StripeReader {
    pool: Arc<BlobPool>,
    codec: Codec,
    size: u64,
    span: StripeSpan,
    /// By shard index; `None` when the shard was never written or is not in the plan.
    shards: Vec<Option<ShardPlacement>>,
    readers: Vec<Option<ShardReader>>,
    failed: Vec<bool>,
    next_stripe: u64,
    /// Object bytes still to emit.
    remaining: u64,
    bucket_key: String,
}

impl StripeReader {
    fn new(pool: Arc<BlobPool>, segment: &Segment, range: Range<u64>) -> ApiResult<Self> {
        let bad = |why: String| {
            ApiError::Internal(format!("bad object metadata for {}: {why}", segment.label))
        };
        let pb = segment
            .scheme
            .as_ref()
            .ok_or_else(|| bad("no scheme".into()))?;
        let scheme = Scheme::new(pb.data_shards, pb.parity_shards, pb.block_size)
            .map_err(|e| bad(e.to_string()))?;
        let codec = Codec::new(scheme).map_err(|e| bad(e.to_string()))?;
        let total = scheme.total_shards();
        let mut shards: Vec<Option<ShardPlacement>> = vec![None; total];
        for s in &segment.shards {
            let i = s.index as usize;
            if i < total && s.written {
                shards[i] = Some(s.clone());
            }
        }
        let span = scheme.span(segment.size, range);
        Ok(Self {
            pool,
            codec,
            size: segment.size,
            span,
            shards,
            readers: (0..total).map(|_| None).collect(),
            failed: vec![false; total],
            next_stripe: span.first_stripe,
            remaining: span.len,
            bucket_key: segment.label.clone(),
        })
    }

    fn scheme(&self) -> Scheme {
        self.codec.scheme()
    }

    /// The object bytes of the next stripe that fall inside the range, or `None` at the end.
    async fn next_chunk(&mut self) -> ApiResult<Option<Bytes>> {
        if self.remaining == 0 || self.next_stripe > self.span.last_stripe {
            return Ok(None);
        }
        let stripe = self.next_stripe;
        let data = self.read_stripe(stripe).await?;
        let skip = if stripe == self.span.first_stripe {
            self.span.skip as usize
        } else {
            0
        };
        let take = (data.len().saturating_sub(skip) as u64).min(self.remaining) as usize;
        self.next_stripe += 1;
        self.remaining -= take as u64;
        Ok(Some(data.slice(skip..skip + take)))
    }

    /// Reads and decodes one stripe, replacing failed shards with untried ones as needed.
    async fn read_stripe(&mut self, stripe: u64) -> ApiResult<Bytes> {
        let scheme = self.scheme();
        let (k, total) = (scheme.k, scheme.total_shards());
        let block_len = scheme.block_len(self.size, stripe);
        let offset = stripe * scheme.block_size as u64;
        let shard_end = self.span.shard_offset + self.span.shard_length;
        let mut blocks: Vec<Option<Bytes>> = vec![None; total];
        loop {
            let have = blocks.iter().filter(|b| b.is_some()).count();
            if have >= k {
                break;
            }
            // Open streams on untried shards (data shards first: they need no decoding) until
            // enough are reading this stripe.
            let reading = (0..total)
                .filter(|&i| self.readers[i].is_some() && blocks[i].is_none())
                .count();
            let candidates: Vec<usize> = (0..total)
                .filter(|&i| {
                    !self.failed[i]
                        && self.readers[i].is_none()
                        && blocks[i].is_none()
                        && self.shards[i].is_some()
                })
                .take((k - have).saturating_sub(reading))
                .collect();
            let opens = candidates.iter().map(|&i| {
                let pool = Arc::clone(&self.pool);
                let shard = self.shards[i].clone();
                async move {
                    let result = match shard {
                        Some(shard) => {
                            ShardReader::open(&pool, &shard, offset, shard_end - offset).await
                        }
                        None => Err(ShardError::Other("no placement".into())),
                    };
                    (i, result)
                }
            });
            for (i, result) in futures::future::join_all(opens).await {
                match result {
                    Ok(r) => self.readers[i] = Some(r),
                    Err(e) => self.fail(i, &e),
                }
            }
            let active: Vec<usize> = (0..total)
                .filter(|&i| self.readers[i].is_some() && blocks[i].is_none())
                .collect();
            if active.is_empty() && !candidates.is_empty() {
                // Every shard just opened failed: try the next untried ones.
                continue;
            }
            if active.is_empty() {
                return Err(ApiError::Unavailable(format!(
                    "{}: only {have} of the {k} shards needed for stripe {stripe} are readable",
                    self.bucket_key
                )));
            }
            let reads = self
                .readers
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| active.contains(i))
                .map(|(i, r)| async move {
                    match r {
                        Some(r) => (i, r.read_exact(block_len).await),
                        None => (i, Err(ShardError::Other("no reader".into()))),
                    }
                });
            for (i, result) in futures::future::join_all(reads).await {
                match result {
                    Ok(block) => blocks[i] = Some(block),
                    Err(e) => self.fail(i, &e),
                }
            }
        }
        let data_len = scheme.stripe_data_len(self.size, stripe);
        self.codec
            .decode(blocks, data_len)
            .map_err(|e| ApiError::Internal(format!("decode stripe {stripe}: {e}")))
    }

    /// Drops shard `i` for the rest of this read: not found, unreachable, corrupt (DATA_LOSS),
    /// short or stalled are all handled the same way.
    fn fail(&mut self, i: usize, e: &ShardError) {
        let node = self.shards[i]
            .as_ref()
            .map_or("", |s| s.node_address.as_str());
        warn!(object = %self.bucket_key, shard = i, node, error = %e, "shard unavailable; reading parity instead");
        self.failed[i] = true;
        self.readers[i] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::ObjectPart;

    fn multipart(sizes: &[u64]) -> ObjectVersion {
        ObjectVersion {
            size: sizes.iter().sum(),
            parts: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| ObjectPart {
                    part_number: i as u32 + 1,
                    size,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn cut(object: &ObjectVersion, range: Range<u64>) -> Vec<(u64, Range<u64>)> {
        segments(object, &range)
            .into_iter()
            .map(|(s, r)| (s.size, r))
            .collect()
    }

    #[test]
    fn a_range_is_cut_at_part_boundaries() {
        let obj = multipart(&[10, 10, 5]);
        assert_eq!(cut(&obj, 0..25), vec![(10, 0..10), (10, 0..10), (5, 0..5)]);
        assert_eq!(cut(&obj, 9..11), vec![(10, 9..10), (10, 0..1)]);
        assert_eq!(cut(&obj, 10..20), vec![(10, 0..10)]);
        assert_eq!(cut(&obj, 12..24), vec![(10, 2..10), (5, 0..4)]);
        assert_eq!(cut(&obj, 24..25), vec![(5, 4..5)]);
        // An empty last part is never read.
        let with_empty = multipart(&[10, 0]);
        assert_eq!(cut(&with_empty, 0..10), vec![(10, 0..10)]);
    }

    #[test]
    fn a_single_put_is_one_segment() {
        let obj = ObjectVersion {
            size: 7,
            ..Default::default()
        };
        assert_eq!(cut(&obj, 2..5), vec![(7, 2..5)]);
    }
}
