//! Healing one segment (a single PUT's body, or one multipart part): find the damaged shards
//! and the healthy ones on draining nodes, rebuild or copy them onto new disks, verify,
//! record, and only then delete the old copies.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::blob::StatShardRequest;
use cairn_proto::meta::{
    ErasureScheme, ObjectVersion, PlanHealRequest, ReplaceShardsRequest, ShardPlacement,
    ShardReplacement,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info_span, Instrument};

use super::{HealError, Healed, Throttle};
use crate::blob_pool::{spawn_delete_shards, BlobPool};
use crate::erasure::{Codec, Scheme};
use crate::shard_feed::{FeedRange, ShardFeed};
use crate::Gateway;

/// How long one blob call (a stat, or the next message of a shard stream) may take before the
/// shard counts as unreadable.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Blocks queued towards one rebuilt shard's stream.
const WRITE_QUEUE: usize = 4;

/// One separately coded body of a version.
pub(crate) struct Segment<'a> {
    /// 0: the version's own body; else its multipart part number.
    pub part_number: u32,
    pub scheme: Option<ErasureScheme>,
    pub size: u64,
    pub shards: &'a [ShardPlacement],
}

/// Heals one segment. `deep` reads every shard through (the blob server verifies each chunk's
/// checksum as it sends it); otherwise a shard counts as good when its file exists with the
/// right length. Good shards on a node of `draining` are moved too.
pub(crate) async fn heal(
    gw: &Gateway,
    throttle: &Throttle,
    version: &ObjectVersion,
    seg: &Segment<'_>,
    deep: bool,
    draining: &HashSet<String>,
) -> Result<Healed, HealError> {
    let pb = seg
        .scheme
        .ok_or_else(|| HealError::Unrecoverable("segment without a scheme".into()))?;
    let scheme = Scheme::new(pb.data_shards, pb.parity_shards, pb.block_size)
        .map_err(|e| HealError::Unrecoverable(e.to_string()))?;
    let shard_len = scheme.shard_len(seg.size);
    if seg.size == 0 {
        return Ok(Healed::default());
    }

    let checks = seg.shards.iter().map(|s| async move {
        let good =
            s.written && shard_is_good(&gw.blobs, throttle, s, (scheme, seg.size), deep).await;
        (s.index, good)
    });
    let states = futures::future::join_all(checks).await;
    let damaged: Vec<u32> = states.iter().filter(|(_, g)| !g).map(|(i, _)| *i).collect();
    let good: Vec<u32> = states.iter().filter(|(_, g)| *g).map(|(i, _)| *i).collect();
    let on_draining = |index: &u32| {
        seg.shards
            .iter()
            .any(|s| s.index == *index && draining.contains(&s.node_id))
    };
    // Healthy shards on a draining node: still good sources, but they must move.
    let moving: Vec<u32> = good.iter().copied().filter(on_draining).collect();
    let bad: Vec<u32> = damaged.iter().chain(&moving).copied().collect();
    if bad.is_empty() {
        return Ok(Healed::default());
    }
    if good.len() < scheme.k {
        return Err(HealError::Unrecoverable(format!(
            "{} of {} shards readable, {} needed",
            good.len(),
            scheme.total_shards(),
            scheme.k
        )));
    }
    debug!(
        part = seg.part_number,
        ?damaged,
        ?moving,
        "rebuilding shards"
    );

    let targets = gw
        .meta
        .plan_heal(PlanHealRequest {
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            version_id: version.version_id.clone(),
            part_number: seg.part_number,
            indices: bad.clone(),
        })
        .await?;
    let written = if damaged.is_empty() {
        // Only moves: copy each shard from where it is, one read per shard.
        let sources: Vec<&ShardPlacement> = seg
            .shards
            .iter()
            .filter(|s| moving.contains(&s.index))
            .collect();
        copy(gw, throttle, scheme, seg.size, &sources, &targets).await
    } else {
        // Prefer sources that stay, so the draining node serves only what must come from it.
        let mut sources: Vec<&ShardPlacement> = seg
            .shards
            .iter()
            .filter(|s| good.contains(&s.index))
            .collect();
        sources.sort_by_key(|s| draining.contains(&s.node_id));
        sources.truncate(scheme.k);
        rebuild(gw, throttle, scheme, seg.size, &sources, &targets).await
    };
    let hashes = match written {
        Ok(h) => h,
        Err(e) => {
            discard(gw, &targets, version);
            return Err(e);
        }
    };
    // Read every rebuilt shard back: what is recorded must be what was meant to be written.
    for (target, expected) in targets.iter().zip(&hashes) {
        match read_hash(&gw.blobs, target, scheme, seg.size).await {
            Ok((hash, len)) if hash == *expected && len == shard_len => {}
            other => {
                discard(gw, &targets, version);
                return Err(HealError::Retry(format!(
                    "rebuilt shard {} did not read back as written: {other:?}",
                    target.shard_key
                )));
            }
        }
    }
    let replacements = targets
        .iter()
        .filter_map(|t| {
            let old = seg.shards.iter().find(|s| s.index == t.index)?;
            Some(ShardReplacement {
                old_shard_key: old.shard_key.clone(),
                shard: Some(ShardPlacement {
                    written: true,
                    ..t.clone()
                }),
            })
        })
        .collect();
    let applied = gw
        .meta
        .replace_shards(ReplaceShardsRequest {
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            version_id: version.version_id.clone(),
            part_number: seg.part_number,
            replacements,
        })
        .await?;
    if !applied {
        discard(gw, &targets, version);
        return Err(HealError::Retry(
            "the version changed while it was healed".into(),
        ));
    }
    // The old copies are unreferenced now; delete what can be reached (GC gets the rest).
    let old: Vec<ShardPlacement> = seg
        .shards
        .iter()
        .filter(|s| bad.contains(&s.index) && s.written)
        .cloned()
        .collect();
    spawn_delete_shards(
        Arc::clone(&gw.blobs),
        old,
        &[],
        std::time::Duration::ZERO,
        "healed",
        &version.bucket,
        &version.key,
    );
    Ok(Healed {
        shards: targets.len() as u32,
        bytes: shard_len * targets.len() as u64,
    })
}

/// Deletes rebuilt copies that will not be recorded.
fn discard(gw: &Gateway, targets: &[ShardPlacement], version: &ObjectVersion) {
    spawn_delete_shards(
        Arc::clone(&gw.blobs),
        targets.to_vec(),
        &[],
        std::time::Duration::ZERO,
        "heal abandoned",
        &version.bucket,
        &version.key,
    );
}

/// Whether a shard is there and sound: its length (stat), and when `deep` every byte read and
/// verified too.
async fn shard_is_good(
    pool: &Arc<BlobPool>,
    throttle: &Throttle,
    shard: &ShardPlacement,
    (scheme, size): (Scheme, u64),
    deep: bool,
) -> bool {
    let shard_len = scheme.shard_len(size);
    let Ok(mut client) = pool.client(&shard.node_address) else {
        return false;
    };
    let req = StatShardRequest {
        disk_id: shard.disk_id.clone(),
        shard_key: shard.shard_key.clone(),
    };
    let present = match tokio::time::timeout(CALL_TIMEOUT, client.stat_shard(req)).await {
        Ok(Ok(resp)) => {
            let stat = resp.into_inner();
            stat.exists && stat.length == shard_len
        }
        _ => false,
    };
    if !present || !deep {
        return present;
    }
    throttle.spend(shard_len).await;
    match read_hash(pool, shard, scheme, size).await {
        Ok((_, len)) => len == shard_len,
        Err(e) => {
            debug!(shard = %shard.shard_key, error = %e, "shard unreadable");
            false
        }
    }
}

/// Reads every block of a shard (the server verifies every chunk) and returns its BLAKE3 and
/// length.
async fn read_hash(
    pool: &Arc<BlobPool>,
    shard: &ShardPlacement,
    scheme: Scheme,
    size: u64,
) -> Result<(blake3::Hash, u64), String> {
    let mut blocks = Blocks::open(pool, shard, scheme, size);
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    for _ in 0..size.div_ceil(scheme.stripe_size()) {
        let block = blocks.next().await?;
        hasher.update(&block);
        len += block.len() as u64;
    }
    Ok((hasher.finalize(), len))
}

/// Streams the k source shards stripe by stripe, re-encodes each stripe and sends the blocks
/// of the damaged indices to their new placements. Returns each new shard's BLAKE3.
async fn rebuild(
    gw: &Gateway,
    throttle: &Throttle,
    scheme: Scheme,
    size: u64,
    sources: &[&ShardPlacement],
    targets: &[ShardPlacement],
) -> Result<Vec<blake3::Hash>, HealError> {
    let codec = Codec::new(scheme).map_err(|e| HealError::Unrecoverable(e.to_string()))?;
    let mut readers: Vec<(usize, Blocks)> = sources
        .iter()
        .map(|s| (s.index as usize, Blocks::open(&gw.blobs, s, scheme, size)))
        .collect();
    let mut writers: Vec<Writer> = targets
        .iter()
        .map(|t| Writer::start(&gw.blobs, t))
        .collect();
    let stripes = size.div_ceil(scheme.stripe_size());
    for stripe in 0..stripes {
        let block_len = scheme.block_len(size, stripe);
        let data_len = scheme.stripe_data_len(size, stripe);
        throttle.spend((block_len * readers.len()) as u64).await;
        let mut blocks: Vec<Option<Bytes>> = vec![None; scheme.total_shards()];
        for (index, reader) in readers.iter_mut() {
            let block = reader
                .next()
                .await
                .map_err(|e| HealError::Retry(format!("source shard {index}: {e}")))?;
            if let Some(slot) = blocks.get_mut(*index) {
                *slot = Some(block);
            }
        }
        let data = codec
            .decode(blocks, data_len)
            .map_err(|e| HealError::Retry(e.to_string()))?;
        let all = codec
            .encode(data)
            .map_err(|e| HealError::Retry(e.to_string()))?;
        for w in writers.iter_mut() {
            let block = all
                .get(w.index)
                .cloned()
                .ok_or_else(|| HealError::Unrecoverable("shard index out of range".into()))?;
            w.send(block).await?;
        }
    }
    let mut hashes = Vec::with_capacity(writers.len());
    for w in writers {
        hashes.push(w.finish(scheme.shard_len(size)).await?);
    }
    Ok(hashes)
}

/// Copies shards block by block from `sources` to the `targets` of the same index (no
/// decoding: a healthy shard moving off a draining node). Returns each new shard's BLAKE3.
async fn copy(
    gw: &Gateway,
    throttle: &Throttle,
    scheme: Scheme,
    size: u64,
    sources: &[&ShardPlacement],
    targets: &[ShardPlacement],
) -> Result<Vec<blake3::Hash>, HealError> {
    let mut hashes = Vec::with_capacity(targets.len());
    for target in targets {
        let source = sources
            .iter()
            .find(|s| s.index == target.index)
            .ok_or_else(|| HealError::Retry(format!("no source for shard {}", target.index)))?;
        let mut reader = Blocks::open(&gw.blobs, source, scheme, size);
        let mut writer = Writer::start(&gw.blobs, target);
        for stripe in 0..size.div_ceil(scheme.stripe_size()) {
            throttle.spend(scheme.block_len(size, stripe) as u64).await;
            let block = reader
                .next()
                .await
                .map_err(|e| HealError::Retry(format!("source shard {}: {e}", source.index)))?;
            writer.send(block).await?;
        }
        hashes.push(writer.finish(scheme.shard_len(size)).await?);
    }
    Ok(hashes)
}

/// One rebuilt shard's PutShard stream, hashing what it sends. Dropped without
/// [`Writer::finish`] (the heal failed), or not acknowledged in time, its task is aborted: the
/// stream never carries the `last` mark, so the blob server keeps nothing.
struct Writer {
    index: usize,
    /// `None` once finished.
    tx: Option<mpsc::Sender<Bytes>>,
    complete: crate::shard_writers::StreamComplete,
    task: JoinHandle<Result<u64, String>>,
    hasher: blake3::Hasher,
}

impl Writer {
    fn start(pool: &Arc<BlobPool>, target: &ShardPlacement) -> Self {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let span = info_span!("heal_put_shard", index = target.index, shard = %target.shard_key);
        let complete = crate::shard_writers::StreamComplete::default();
        let task = tokio::spawn(
            crate::shard_writers::write_shard(
                Arc::clone(pool),
                target.clone(),
                rx,
                complete.clone(),
            )
            .instrument(span),
        );
        Self {
            index: target.index as usize,
            tx: Some(tx),
            complete,
            task,
            hasher: blake3::Hasher::new(),
        }
    }

    async fn send(&mut self, block: Bytes) -> Result<(), HealError> {
        self.hasher.update(&block);
        let Some(tx) = self.tx.as_ref() else {
            return Err(HealError::Retry("rebuilt shard's stream is closed".into()));
        };
        tokio::time::timeout(CALL_TIMEOUT, tx.send(block))
            .await
            .map_err(|_| HealError::Retry("rebuilt shard's server stopped accepting".into()))?
            .map_err(|_| HealError::Retry("rebuilt shard's stream ended early".into()))
    }

    /// Closes the stream and waits for the server's durable acknowledgement of
    /// `expected_len` bytes.
    async fn finish(mut self, expected_len: u64) -> Result<blake3::Hash, HealError> {
        // Mark, then close the queue (the writer reads the mark once it sees it closed).
        self.complete.mark();
        self.tx = None;
        match tokio::time::timeout(CALL_TIMEOUT, &mut self.task).await {
            Ok(Ok(Ok(len))) if len == expected_len => Ok(self.hasher.finalize()),
            Ok(Ok(Ok(len))) => Err(HealError::Retry(format!(
                "rebuilt shard acknowledged with {len} bytes, {expected_len} expected"
            ))),
            Ok(Ok(Err(e))) => Err(HealError::Retry(format!("rebuilt shard write: {e}"))),
            Ok(Err(e)) => Err(HealError::Retry(format!("rebuilt shard writer: {e}"))),
            Err(_) => Err(HealError::Retry("rebuilt shard not acknowledged".into())),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One source or rebuilt shard read block by block through the GET path's [`ShardFeed`]
/// (which verifies nothing itself: the blob server checks every chunk it sends), with a
/// bound on each block's wait.
struct Blocks {
    feed: ShardFeed,
}

impl Blocks {
    /// Every stripe of a segment of `size` bytes, from shard `shard`.
    fn open(pool: &Arc<BlobPool>, shard: &ShardPlacement, scheme: Scheme, size: u64) -> Self {
        let range = FeedRange {
            scheme,
            size,
            first: 0,
            last: size.div_ceil(scheme.stripe_size()).saturating_sub(1),
        };
        Self {
            feed: ShardFeed::start(Arc::clone(pool), shard.index as usize, shard.clone(), range),
        }
    }

    /// The next stripe's block.
    async fn next(&mut self) -> Result<Bytes, String> {
        match tokio::time::timeout(CALL_TIMEOUT, self.feed.rx.recv()).await {
            Ok(Some((_, Ok(block)))) => Ok(block),
            Ok(Some((_, Err(e)))) => Err(e.to_string()),
            Ok(None) => Err("the shard stream ended early".into()),
            Err(_) => Err("timed out reading the shard".into()),
        }
    }
}
