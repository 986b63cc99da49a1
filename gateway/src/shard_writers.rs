//! The shard streams of one PUT: one `PutShard` stream per shard, each fed by its own task
//! through a small bounded queue, and the rules for giving up on a slow or stuck blob server.
//!
//! Why the write goes on without laggards: an acknowledged PUT needs only a write quorum of
//! durable shards (the rest are rebuilt by the healer), so waiting for every blob server would
//! let one paused or overloaded server stall every PUT that touches it. So:
//!
//! - while the body streams, a stripe is done once a write quorum of shards has queued its
//!   block; a shard whose queue stays full for the straggler time after that is dropped (its
//!   stream ends without the final `last` mark, or is reset, and the blob server discards its
//!   temporary file);
//! - at the end, once a write quorum is acknowledged durable, the others get the straggler
//!   time to answer, then are abandoned and recorded as not written;
//! - with fewer than a quorum progressing, a shard is given up only after the hard timeout
//!   (the PUT then fails with 503, nothing visible).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::blob::{PutShardRequest, ShardHeader};
use cairn_proto::local::PutShardMessages;
use cairn_proto::meta::ShardPlacement;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info_span, warn, Instrument};

use crate::blob_pool::BlobPool;
use crate::ShardIo;

/// Blocks queued per shard stream: enough to keep a blob server busy, small enough that a
/// PUT of any size holds only a few stripes in memory.
const SHARD_QUEUE_BLOCKS: usize = 2;
/// How long a blob server may take to fsync and acknowledge a complete shard while fewer than
/// a write quorum have (with a quorum, the straggler time applies instead). Long, because
/// the final fsync of a large shard on a busy disk can take a while.
const FINISH_TIMEOUT: Duration = Duration::from_secs(120);
/// Shard data is sent in gRPC messages of at most this size.
const PIECE: usize = 1024 * 1024;

/// How one shard write ended.
pub(crate) struct ShardOutcome {
    /// Acknowledged as durable with the expected length.
    pub written: bool,
    /// The blob server finalized a file (possibly of a wrong length): it must be cleaned up
    /// if the object is not committed.
    pub finalized: bool,
}

/// Set by a shard's producer once every block is queued, before it closes the queue. Only then
/// does the PutShard stream end with a message marked `last`; a queue closed without it (a
/// shard given up, a PUT or heal abandoned) ends the stream unmarked, and the blob server
/// discards the file however cleanly the stream itself ended.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamComplete(Arc<AtomicBool>);

impl StreamComplete {
    /// Declares the shard complete: call before dropping the queue's sender.
    pub(crate) fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct ShardWriter {
    /// `None` once the shard is closed or given up.
    tx: Option<mpsc::Sender<Bytes>>,
    complete: StreamComplete,
    task: JoinHandle<Result<u64, String>>,
    index: usize,
    failed: Option<&'static str>,
}

impl ShardWriter {
    /// Gives up on this shard: its stream ends unmarked (or is reset), so its blob server
    /// keeps nothing.
    fn drop_stream(&mut self, why: &'static str) {
        self.tx = None;
        self.task.abort();
        self.failed = Some(why);
    }
}

/// One PutShard stream per shard, each fed through a small bounded queue.
pub(crate) struct ShardWriters {
    writers: Vec<ShardWriter>,
    io: ShardIo,
    /// Shards that must be durable for the write to count.
    quorum: usize,
}

impl ShardWriters {
    /// Opens a stream to every placement (shard `i` is `placements[i]`).
    pub fn start(
        pool: &Arc<BlobPool>,
        placements: &[ShardPlacement],
        io: ShardIo,
        quorum: usize,
    ) -> Self {
        let writers = placements
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let (tx, rx) = mpsc::channel(SHARD_QUEUE_BLOCKS);
                let span =
                    info_span!("put_shard", index, node = %p.node_address, shard = %p.shard_key);
                let complete = StreamComplete::default();
                let task = tokio::spawn(
                    write_shard(Arc::clone(pool), p.clone(), rx, complete.clone()).instrument(span),
                );
                ShardWriter {
                    tx: Some(tx),
                    complete,
                    task,
                    index,
                    failed: None,
                }
            })
            .collect();
        Self {
            writers,
            io,
            quorum,
        }
    }

    /// Shards still accepting data.
    pub fn alive(&self) -> usize {
        self.writers.iter().filter(|w| w.tx.is_some()).count()
    }

    /// Queues block `i` of a stripe on shard `i`. Returns once every live shard took its
    /// block, or a write quorum did and the others lagged for the straggler time, or the hard
    /// timeout passed; the shards that did not take their block are dropped.
    pub async fn send_stripe(&mut self, blocks: Vec<Bytes>) {
        let mut sends: FuturesUnordered<_> = self
            .writers
            .iter()
            .zip(blocks)
            .filter_map(|(w, block)| {
                let tx = w.tx.clone()?;
                let index = w.index;
                Some(async move { (index, tx.send(block).await.is_ok()) })
            })
            .collect();
        let mut taken = vec![false; self.writers.len()];
        let mut accepted = 0;
        let hard = tokio::time::sleep(self.io.timeout);
        tokio::pin!(hard);
        let mut straggle_until: Option<Instant> = None;
        loop {
            let straggle = straggle_deadline(straggle_until);
            tokio::select! {
                next = sends.next() => match next {
                    None => break,
                    Some((i, true)) => {
                        taken[i] = true;
                        accepted += 1;
                        if accepted >= self.quorum && straggle_until.is_none() {
                            straggle_until = Some(Instant::now() + self.io.straggler);
                        }
                    }
                    Some((i, false)) => {
                        // The writer task ended: it reports why at finish.
                        taken[i] = true;
                        if let Some(w) = self.writers.get_mut(i) {
                            w.tx = None;
                            w.failed = Some("the shard stream ended early");
                        }
                    }
                },
                () = straggle => break,
                () = &mut hard => break,
            }
        }
        drop(sends);
        for w in &mut self.writers {
            if w.tx.is_some() && !taken[w.index] {
                warn!(
                    index = w.index,
                    accepted,
                    quorum = self.quorum,
                    "blob server stopped accepting data; the write goes on without this shard"
                );
                w.drop_stream("the blob server stopped accepting data");
            }
        }
    }

    /// Closes every stream (the servers finalize now) and collects the acknowledgements:
    /// all of them, or once a write quorum is durable, those that come within the straggler
    /// time. Shards abandoned after that are reported not written.
    pub async fn finish(&mut self, expected_len: u64) -> Vec<ShardOutcome> {
        for w in &mut self.writers {
            // Mark, then close the queue: the writer task reads the mark only once it sees
            // the queue closed. (Given-up shards have no sender left and stay unmarked.)
            if let Some(tx) = w.tx.take() {
                w.complete.mark();
                drop(tx);
            }
        }
        let (io, quorum) = (self.io, self.quorum);
        let mut outcomes: Vec<Option<ShardOutcome>> =
            (0..self.writers.len()).map(|_| None).collect();
        {
            let mut waits: FuturesUnordered<_> = self
                .writers
                .iter_mut()
                .map(|w| async move {
                    let joined = (&mut w.task).await;
                    (w.index, outcome(w, joined, expected_len))
                })
                .collect();
            let hard = tokio::time::sleep(FINISH_TIMEOUT);
            tokio::pin!(hard);
            let mut written = 0;
            let mut straggle_until: Option<Instant> = None;
            loop {
                let straggle = straggle_deadline(straggle_until);
                tokio::select! {
                    next = waits.next() => match next {
                        None => break,
                        Some((i, o)) => {
                            written += usize::from(o.written);
                            if written >= quorum && straggle_until.is_none() {
                                straggle_until = Some(Instant::now() + io.straggler);
                            }
                            outcomes[i] = Some(o);
                        }
                    },
                    () = straggle => break,
                    () = &mut hard => break,
                }
            }
        }
        self.writers
            .iter_mut()
            .zip(outcomes)
            .map(|(w, o)| {
                o.unwrap_or_else(|| {
                    // Its file, if the server ever finishes it, is garbage for GC.
                    warn!(
                        index = w.index,
                        "shard not acknowledged in time; abandoned and recorded as not written"
                    );
                    w.task.abort();
                    ShardOutcome {
                        written: false,
                        finalized: false,
                    }
                })
            })
            .collect()
    }
}

/// What a finished writer task means for its shard.
fn outcome(
    w: &ShardWriter,
    joined: Result<Result<u64, String>, tokio::task::JoinError>,
    expected_len: u64,
) -> ShardOutcome {
    match joined {
        Ok(Ok(len)) => {
            let written = w.failed.is_none() && len == expected_len;
            if !written {
                warn!(
                    index = w.index,
                    len, expected_len, "shard acknowledged with a wrong length"
                );
            }
            ShardOutcome {
                written,
                finalized: true,
            }
        }
        Ok(Err(e)) => {
            warn!(index = w.index, error = %e, "shard write failed");
            ShardOutcome {
                written: false,
                finalized: false,
            }
        }
        Err(join) => {
            warn!(index = w.index, reason = w.failed.unwrap_or("task ended"), error = %join, "shard writer stopped");
            ShardOutcome {
                written: false,
                finalized: false,
            }
        }
    }
}

impl Drop for ShardWriters {
    /// A PUT that ends early (error, client gone) aborts its unfinished shard streams: they
    /// never send the `last` mark (and a network stream is reset), so the blob servers keep
    /// nothing.
    fn drop(&mut self) {
        for w in &self.writers {
            w.task.abort();
        }
    }
}

/// Streams one shard: a header message, then the blocks cut into pieces of at most `PIECE`,
/// then (if `complete` was marked when the queue closed) the `last` message. Also used by the
/// healer for rebuilt shards.
pub(crate) async fn write_shard(
    pool: Arc<BlobPool>,
    placement: ShardPlacement,
    rx: mpsc::Receiver<Bytes>,
    complete: StreamComplete,
) -> Result<u64, String> {
    let blob = pool
        .shard_data(&placement.node_address)
        .map_err(|e| e.to_string())?;
    let messages = shard_messages(&placement, rx, complete);
    match blob.put_shard(messages).await {
        Ok(resp) => {
            let length = resp.length;
            debug!(length, "shard durable");
            Ok(length)
        }
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}

/// The messages of one shard's `PutShard`: the header, the blocks from `rx` in pieces of at
/// most `PIECE`, and the `last` message if `complete` was marked by the time `rx` closed.
/// Built outside the `async fn` that sends them: boxed there, the combinators' closures make
/// the compiler unable to prove the future `Send`.
fn shard_messages(
    placement: &ShardPlacement,
    rx: mpsc::Receiver<Bytes>,
    complete: StreamComplete,
) -> PutShardMessages {
    let header = PutShardRequest {
        header: Some(ShardHeader {
            disk_id: placement.disk_id.clone(),
            shard_key: placement.shard_key.clone(),
            explicit_end: true,
        }),
        data: Bytes::new(),
        last: false,
    };
    let data = ReceiverStream::new(rx)
        .flat_map(|block| futures::stream::iter(pieces(block)))
        .map(|data| PutShardRequest {
            header: None,
            data,
            last: false,
        });
    // Runs once the queue has closed: the mark, if any, was set before that.
    let end = futures::stream::once(async move { complete.is_marked() }).filter_map(|done| {
        futures::future::ready(done.then(|| PutShardRequest {
            header: None,
            data: Bytes::new(),
            last: true,
        }))
    });
    Box::pin(
        futures::stream::once(futures::future::ready(header))
            .chain(data)
            .chain(end),
    )
}

/// Cuts a block into views of at most `PIECE` bytes.
fn pieces(block: Bytes) -> Vec<Bytes> {
    (0..block.len())
        .step_by(PIECE)
        .map(|start| block.slice(start..(start + PIECE).min(block.len())))
        .collect()
}

/// Sleeps until `at`, or forever while no straggler deadline is set.
async fn straggle_deadline(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
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
}
