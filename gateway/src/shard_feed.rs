//! One shard's part of a GET: a background task that opens a `GetShard` stream and hands its
//! blocks, one per stripe, to the stripe reader through a small bounded queue.
//!
//! Why a task per shard: the stripe reader must be able to give up on a shard at any moment
//! (its block is late, so a parity shard is read instead) without waiting for it, and a
//! connect or open that hangs must hang only that task. The task has no timeouts of its own:
//! the stripe reader watches its progress and drops the [`ShardFeed`], which aborts the task
//! and resets the stream.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_proto::blob::GetShardRequest;
use cairn_proto::local::GetShardMessages;
use cairn_proto::meta::ShardPlacement;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info_span, Instrument};

use crate::blob_pool::BlobPool;
use crate::erasure::Scheme;

/// Blocks a shard task reads ahead of the stripe being decoded.
const BLOCKS_AHEAD: usize = 2;

/// Failure of one shard stream.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ShardError {
    /// The blob server answered with an error (NOT_FOUND, DATA_LOSS, UNAVAILABLE, ...).
    #[error("{0:?}: {1}")]
    Status(tonic::Code, String),
    #[error("the shard ended early")]
    Short,
    /// No block for the hard per-read timeout.
    #[error("no data for {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Other(String),
}

impl ShardError {
    /// Whether this failure says something about the shard (missing, corrupt, unreachable,
    /// stalled) rather than about this gateway: a refused cluster token is not damage.
    pub fn is_damage(&self) -> bool {
        !matches!(
            self,
            ShardError::Status(
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated,
                _
            )
        )
    }
}

/// What a shard task delivers: the block of `stripe`, or why it stopped.
pub(crate) type FeedItem = (u64, Result<Bytes, ShardError>);

/// What a shard task reads: stripes `first..=last` of a segment of `size` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeedRange {
    pub scheme: Scheme,
    pub size: u64,
    pub first: u64,
    pub last: u64,
}

impl FeedRange {
    /// The shard byte range holding the blocks of stripes `first..=last`.
    fn shard_bytes(&self) -> (u64, u64) {
        let block = self.scheme.block_size as u64;
        let offset = self.first * block;
        let end = self.last * block + self.scheme.block_len(self.size, self.last) as u64;
        (offset, end.saturating_sub(offset))
    }
}

/// A running shard task; dropping it aborts the task (and so resets its stream).
pub(crate) struct ShardFeed {
    pub rx: mpsc::Receiver<FeedItem>,
    task: JoinHandle<()>,
}

impl ShardFeed {
    /// Starts reading shard `index` (`placement`) for `range`.
    pub fn start(
        pool: Arc<BlobPool>,
        index: usize,
        placement: ShardPlacement,
        range: FeedRange,
    ) -> Self {
        let (tx, rx) = mpsc::channel(BLOCKS_AHEAD);
        let span = info_span!(
            "get_shard",
            index,
            node = %placement.node_address,
            shard = %placement.shard_key,
            first_stripe = range.first,
        );
        let task = tokio::spawn(feed(pool, placement, range, tx).instrument(span));
        Self { rx, task }
    }
}

impl Drop for ShardFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of a shard task: open, then one block per stripe until the range is done, the
/// stream fails (reported as the last item) or the reader goes away.
async fn feed(
    pool: Arc<BlobPool>,
    placement: ShardPlacement,
    range: FeedRange,
    tx: mpsc::Sender<FeedItem>,
) {
    let (offset, length) = range.shard_bytes();
    let mut reader = match ShardReader::open(&pool, &placement, offset, length).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send((range.first, Err(e))).await;
            return;
        }
    };
    for stripe in range.first..=range.last {
        let block = reader
            .read_exact(range.scheme.block_len(range.size, stripe))
            .await;
        let failed = block.is_err();
        if tx.send((stripe, block)).await.is_err() {
            debug!("reader gone");
            return;
        }
        if failed {
            return;
        }
    }
}

/// One open GetShard stream, read block by block.
struct ShardReader {
    stream: GetShardMessages,
    pending: Bytes,
}

impl ShardReader {
    async fn open(
        pool: &BlobPool,
        shard: &ShardPlacement,
        offset: u64,
        length: u64,
    ) -> Result<Self, ShardError> {
        let blob = pool
            .shard_data(&shard.node_address)
            .map_err(|e| ShardError::Other(e.to_string()))?;
        let req = GetShardRequest {
            disk_id: shard.disk_id.clone(),
            shard_key: shard.shard_key.clone(),
            offset,
            length,
        };
        match blob.get_shard(req).await {
            Err(status) => Err(ShardError::Status(
                status.code(),
                status.message().to_string(),
            )),
            Ok(stream) => Ok(Self {
                stream,
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
            let msg = match self.stream.next().await {
                Some(Err(status)) => {
                    return Err(ShardError::Status(
                        status.code(),
                        status.message().to_string(),
                    ))
                }
                None => return Err(ShardError::Short),
                Some(Ok(msg)) => msg,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_range_covers_the_stripes() {
        let scheme = Scheme::new(2, 1, 10).unwrap(); // stripe = 20 bytes
        let range = |first, last| FeedRange {
            scheme,
            size: 65,
            first,
            last,
        };
        assert_eq!(range(0, 3).shard_bytes(), (0, 33));
        assert_eq!(range(1, 2).shard_bytes(), (10, 20));
        assert_eq!(range(3, 3).shard_bytes(), (30, 3));
    }

    #[test]
    fn only_shard_failures_count_as_damage() {
        assert!(ShardError::Status(tonic::Code::NotFound, String::new()).is_damage());
        assert!(ShardError::Status(tonic::Code::DataLoss, String::new()).is_damage());
        assert!(ShardError::Timeout(std::time::Duration::from_secs(1)).is_damage());
        assert!(ShardError::Short.is_damage());
        assert!(!ShardError::Status(tonic::Code::PermissionDenied, String::new()).is_damage());
    }
}
