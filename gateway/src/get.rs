//! GET: read the stripes covering a byte range (from whichever `k` shards answer first, see
//! [`crate::stripe_reader`]) and stream the decoded bytes out a few stripes ahead at most.
//!
//! An object is one or more [`Segment`]s, each erasure-coded on its own: the whole body of a
//! single PUT, or the parts of a multipart object in order. A range is cut at the segment
//! boundaries and the segments are read one after the other, so a read holds one segment's
//! shard streams at a time whatever the number of parts.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use cairn_proto::meta::{ErasureScheme, ObjectVersion, ShardPlacement};
use futures::Stream;
use s3s::stream::{ByteStream, RemainingLength};
use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

use crate::damage::VersionRef;
use crate::erasure::Scheme;
use crate::error::{ApiError, ApiResult};
use crate::stripe_reader::{ReadContext, StripeReader};

/// Decoded stripes buffered between the shard readers and the client.
const STRIPES_AHEAD: usize = 2;

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

/// A reader of `range` of one segment.
fn segment_reader(
    ctx: &Arc<ReadContext>,
    segment: &Segment,
    range: Range<u64>,
    version: &VersionRef,
) -> ApiResult<StripeReader> {
    let bad = |why: String| {
        ApiError::Internal(format!("bad object metadata for {}: {why}", segment.label))
    };
    let pb = segment
        .scheme
        .as_ref()
        .ok_or_else(|| bad("no scheme".into()))?;
    let scheme = Scheme::new(pb.data_shards, pb.parity_shards, pb.block_size)
        .map_err(|e| bad(e.to_string()))?;
    StripeReader::new(
        Arc::clone(ctx),
        scheme,
        &segment.shards,
        segment.size,
        range,
        segment.label.clone(),
        version.clone(),
    )
    .map_err(|e| bad(e.to_string()))
}

/// Starts streaming `range` of `object`. The first stripe is read before returning, so an
/// object that cannot be read fails the request instead of truncating a 200 response.
pub(crate) async fn open_body(
    ctx: Arc<ReadContext>,
    object: &ObjectVersion,
    range: Range<u64>,
) -> ApiResult<ObjectBody> {
    let len = range.end.saturating_sub(range.start);
    let (tx, rx) = mpsc::channel(STRIPES_AHEAD);
    if len == 0 {
        return Ok(ObjectBody { rx, remaining: 0 });
    }
    if let Some(data) = &object.inline_data {
        // A small object kept in its metadata record: no shard to read.
        let label = format!("{}/{}", object.bucket, object.key);
        let bytes = crate::inline::slice(data, object.size, &range, &label)?;
        tx.try_send(Ok(bytes))
            .map_err(|_| ApiError::Internal("inline body channel full".into()))?;
        return Ok(ObjectBody { rx, remaining: len });
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
    let version = VersionRef {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        version_id: object.version_id.clone(),
    };
    let mut reader = segment_reader(&ctx, &segment, local, &version)?;
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
                let opened = segment_reader(&ctx, &segment, local, &version);
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
