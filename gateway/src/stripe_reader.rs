//! Reads the stripes of one erasure-coded segment in order, from whichever `k` shards answer
//! first.
//!
//! The reader starts on the `k` data shards (they need no decoding). When a stripe is not
//! complete after the hedge delay (`--shard-hedge-ms`), one more shard (parity) is opened, and
//! again after each further delay while untried shards remain; the stripe is rebuilt from the
//! first `k` blocks that arrive. A shard that delivers nothing for the hard timeout
//! (`--shard-timeout`), or that fails (missing, unreachable, corrupt), is dropped for the rest
//! of the read, replaced by an untried shard, and reported to the meta service as damage.
//!
//! Why hedge instead of only timing out: a blob server that is paused, overloaded or behind a
//! half-dead connection does not fail, it is just slow, and a GET waiting for its hard timeout
//! on every read would stall for seconds. With hedging a GET with one stuck shard costs about
//! one hedge delay more than a healthy one, as long as `k` other shards are readable.
//!
//! A slow shard that was hedged around is kept open: its late blocks are discarded, and if it
//! catches up it is as good as any other. So a read may hold up to `k + m` streams, never more.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::meta::{HealReason, ShardPlacement};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::blob_pool::BlobPool;
use crate::damage::{DamageReports, VersionRef};
use crate::erasure::{Codec, Scheme, StripeSpan};
use crate::error::{ApiError, ApiResult};
use crate::shard_feed::{FeedItem, FeedRange, ShardError, ShardFeed};

/// How reads treat slow shards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTuning {
    /// A stripe still incomplete this long after it was asked for opens one more shard.
    pub hedge: Duration,
    /// A shard that delivers nothing for this long counts as failed.
    pub timeout: Duration,
}

/// Where a reader reads and whom it tells about damage.
pub(crate) struct ReadContext {
    pub pool: Arc<BlobPool>,
    pub tuning: ReadTuning,
    pub damage: Arc<DamageReports>,
}

/// One shard's state for this read.
enum Slot {
    /// Not written, or not in the plan: never read.
    Absent,
    /// Readable, not opened yet.
    Untried(ShardPlacement),
    /// Being read.
    Open(Open),
    /// Failed for the rest of this read.
    Failed,
}

struct Open {
    feed: ShardFeed,
    /// The blob server, for logs.
    node: String,
    /// When it last delivered anything (or was opened).
    last_progress: Instant,
    /// Since when it owes a block: the start of the oldest stripe it has not delivered yet
    /// (`None` while it is caught up). A shard that stays behind is blamed from there, not
    /// from each new stripe, so a stuck shard times out even while the others carry the read.
    owed_since: Option<Instant>,
}

impl Open {
    /// When this shard runs out of time if it delivers nothing more.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        self.owed_since
            .map(|owed| self.last_progress.max(owed) + timeout)
    }
}

/// What woke the reader up while it waited for a stripe.
enum Event {
    Item(usize, Option<FeedItem>),
    Hedge,
    Deadline,
}

/// Reads the stripes of a span in order.
pub(crate) struct StripeReader {
    ctx: Arc<ReadContext>,
    codec: Codec,
    size: u64,
    span: StripeSpan,
    slots: Vec<Slot>,
    next_stripe: u64,
    /// Object bytes still to emit (beyond those in `ready`).
    remaining: u64,
    /// Pieces of the current stripe not handed out yet.
    ready: std::collections::VecDeque<Bytes>,
    /// `bucket/key` (and the part), for errors and logs.
    label: String,
    version: VersionRef,
}

impl StripeReader {
    /// A reader of `range` of a segment of `size` bytes coded with `scheme` over `shards`
    /// (those not `written` are never read).
    pub fn new(
        ctx: Arc<ReadContext>,
        scheme: Scheme,
        shards: &[ShardPlacement],
        size: u64,
        range: std::ops::Range<u64>,
        label: String,
        version: VersionRef,
    ) -> Result<Self, crate::erasure::ErasureError> {
        let codec = Codec::new(scheme)?;
        let total = scheme.total_shards();
        let mut slots: Vec<Slot> = (0..total).map(|_| Slot::Absent).collect();
        for s in shards {
            let i = s.index as usize;
            if i < total && s.written {
                slots[i] = Slot::Untried(s.clone());
            }
        }
        let span = scheme.span(size, range);
        Ok(Self {
            ctx,
            codec,
            size,
            span,
            slots,
            next_stripe: span.first_stripe,
            remaining: span.len,
            ready: std::collections::VecDeque::new(),
            label,
            version,
        })
    }

    fn scheme(&self) -> Scheme {
        self.codec.scheme()
    }

    /// The next piece of object bytes inside the range (a view of one data block of a
    /// stripe; a stripe comes out as up to `k` pieces, never copied into one buffer), or
    /// `None` at the end.
    pub async fn next_chunk(&mut self) -> ApiResult<Option<Bytes>> {
        loop {
            if let Some(piece) = self.ready.pop_front() {
                return Ok(Some(piece));
            }
            if self.remaining == 0 || self.next_stripe > self.span.last_stripe {
                return Ok(None);
            }
            let stripe = self.next_stripe;
            let blocks = self.read_stripe(stripe).await?;
            let mut skip = if stripe == self.span.first_stripe {
                self.span.skip as usize
            } else {
                0
            };
            self.next_stripe += 1;
            for block in blocks {
                if skip >= block.len() {
                    skip -= block.len();
                    continue;
                }
                let piece = block.slice(skip..);
                skip = 0;
                let take = (piece.len() as u64).min(self.remaining) as usize;
                if take == 0 {
                    break;
                }
                self.remaining -= take as u64;
                self.ready.push_back(piece.slice(..take));
            }
        }
    }

    /// Starts reading shard `i` from `stripe` on, if it is untried.
    fn open(&mut self, i: usize, stripe: u64) {
        let Slot::Untried(placement) = std::mem::replace(&mut self.slots[i], Slot::Failed) else {
            return;
        };
        let range = FeedRange {
            scheme: self.scheme(),
            size: self.size,
            first: stripe,
            last: self.span.last_stripe,
        };
        let node = placement.node_address.clone();
        let feed = ShardFeed::start(Arc::clone(&self.ctx.pool), i, placement, range);
        let now = Instant::now();
        self.slots[i] = Slot::Open(Open {
            feed,
            node,
            last_progress: now,
            owed_since: Some(now),
        });
    }

    /// The first untried shard (data shards come first: they need no decoding).
    fn untried(&self) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Untried(_)))
    }

    /// Reads and decodes one stripe from the first `k` of its blocks to arrive.
    async fn read_stripe(&mut self, stripe: u64) -> ApiResult<Vec<Bytes>> {
        let scheme = self.scheme();
        let (k, total) = (scheme.k, scheme.total_shards());
        let tuning = self.ctx.tuning;
        let started = Instant::now();
        let mut hedges: u32 = 0;
        let mut blocks: Vec<Option<Bytes>> = vec![None; total];
        // Every open shard owes this stripe's block now; one that has owed blocks for too
        // long is dropped before it is waited for again.
        for slot in &mut self.slots {
            if let Slot::Open(o) = slot {
                o.owed_since.get_or_insert(started);
            }
        }
        self.fail_late(&blocks);
        loop {
            let have = blocks.iter().filter(|b| b.is_some()).count();
            if have >= k {
                break;
            }
            // Enough shards must be reading this stripe to complete it; replace failed ones.
            let pending = |slots: &[Slot], blocks: &[Option<Bytes>]| -> Vec<usize> {
                (0..total)
                    .filter(|&i| matches!(slots[i], Slot::Open(_)) && blocks[i].is_none())
                    .collect()
            };
            let mut waiting = pending(&self.slots, &blocks);
            while waiting.len() < k - have {
                let Some(i) = self.untried() else { break };
                self.open(i, stripe);
                waiting.push(i);
            }
            if waiting.is_empty() {
                return Err(ApiError::Unavailable(format!(
                    "{}: only {have} of the {k} shards needed for stripe {stripe} are readable",
                    self.label
                )));
            }
            let hedge_at =
                (self.untried().is_some()).then(|| started + tuning.hedge * (hedges + 1));
            // The earliest moment a waited-for shard runs out of time.
            let deadline = waiting
                .iter()
                .filter_map(|&i| match &self.slots[i] {
                    Slot::Open(o) => o.deadline(tuning.timeout),
                    _ => None,
                })
                .min()
                .unwrap_or(started + tuning.timeout);

            let event = {
                let slots = &mut self.slots;
                let next = futures::future::poll_fn(|cx| {
                    for &i in &waiting {
                        if let Slot::Open(o) = &mut slots[i] {
                            if let Poll::Ready(item) = o.feed.rx.poll_recv(cx) {
                                return Poll::Ready((i, item));
                            }
                        }
                    }
                    Poll::Pending
                });
                let hedge = async {
                    match hedge_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    (i, item) = next => Event::Item(i, item),
                    () = hedge => Event::Hedge,
                    () = tokio::time::sleep_until(deadline) => Event::Deadline,
                }
            };
            match event {
                Event::Item(i, item) => {
                    if let Slot::Open(o) = &mut self.slots[i] {
                        o.last_progress = Instant::now();
                        if matches!(item, Some((s, Ok(_))) if s == stripe) {
                            o.owed_since = None;
                        }
                    }
                    match item {
                        Some((s, Ok(block))) if s == stripe => blocks[i] = Some(block),
                        // A block of a stripe already rebuilt without it: the shard is late.
                        Some((s, Ok(_))) if s < stripe => {}
                        Some((s, Ok(_))) => self.fail(
                            i,
                            &ShardError::Other(format!(
                                "block of stripe {s} while reading {stripe}"
                            )),
                        ),
                        Some((_, Err(e))) => self.fail(i, &e),
                        None => self.fail(i, &ShardError::Other("the shard task ended".into())),
                    }
                }
                Event::Hedge => {
                    hedges += 1;
                    if let Some(i) = self.untried() {
                        debug!(object = %self.label, stripe, shard = i, waited_ms = started.elapsed().as_millis() as u64, "stripe late; hedging with another shard");
                        self.open(i, stripe);
                    }
                }
                Event::Deadline => self.fail_late(&blocks),
            }
        }
        let data_len = scheme.stripe_data_len(self.size, stripe);
        self.codec
            .decode_blocks(blocks, data_len)
            .map_err(|e| ApiError::Internal(format!("decode stripe {stripe}: {e}")))
    }

    /// Fails every open shard that still owes a block of this stripe and has delivered
    /// nothing for the hard timeout.
    fn fail_late(&mut self, blocks: &[Option<Bytes>]) {
        let timeout = self.ctx.tuning.timeout;
        let now = Instant::now();
        let late: Vec<usize> = (0..self.slots.len())
            .filter(|&i| blocks[i].is_none())
            .filter(|&i| match &self.slots[i] {
                Slot::Open(o) => o.deadline(timeout).is_some_and(|d| d <= now),
                _ => false,
            })
            .collect();
        for i in late {
            self.fail(i, &ShardError::Timeout(timeout));
        }
    }

    /// Drops shard `i` for the rest of this read and reports the damage: not found,
    /// unreachable, corrupt (DATA_LOSS), short or stalled are all handled the same way.
    fn fail(&mut self, i: usize, e: &ShardError) {
        let node = match &self.slots[i] {
            Slot::Open(o) => o.node.clone(),
            _ => String::new(),
        };
        warn!(object = %self.label, shard = i, node, error = %e, "shard unavailable; reading another");
        self.slots[i] = Slot::Failed;
        if e.is_damage() {
            self.ctx
                .damage
                .report(&self.version, HealReason::Read, &format!("shard {i}: {e}"));
        }
    }
}
