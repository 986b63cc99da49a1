//! Healing one segment (a single PUT's body, or one multipart part): find the damaged shards,
//! rebuild them onto new disks, verify, record, and only then delete the old copies.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use cairn_proto::blob::{GetShardRequest, StatShardRequest};
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
/// right length.
pub(crate) async fn heal(
    gw: &Gateway,
    throttle: &Throttle,
    version: &ObjectVersion,
    seg: &Segment<'_>,
    deep: bool,
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
        let good = s.written && shard_is_good(&gw.blobs, throttle, s, shard_len, deep).await;
        (s.index, good)
    });
    let states = futures::future::join_all(checks).await;
    let bad: Vec<u32> = states.iter().filter(|(_, g)| !g).map(|(i, _)| *i).collect();
    let good: Vec<u32> = states.iter().filter(|(_, g)| *g).map(|(i, _)| *i).collect();
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
    debug!(part = seg.part_number, ?bad, "rebuilding shards");

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
    let sources: Vec<&ShardPlacement> = seg
        .shards
        .iter()
        .filter(|s| good.contains(&s.index))
        .take(scheme.k)
        .collect();
    let hashes = match rebuild(gw, throttle, scheme, seg.size, &sources, &targets).await {
        Ok(h) => h,
        Err(e) => {
            discard(gw, &targets, version);
            return Err(e);
        }
    };
    // Read every rebuilt shard back: what is recorded must be what was meant to be written.
    for (target, expected) in targets.iter().zip(&hashes) {
        match read_hash(&gw.blobs, target).await {
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

/// Whether a shard is there and sound: its length (stat), or every byte read and verified.
async fn shard_is_good(
    pool: &BlobPool,
    throttle: &Throttle,
    shard: &ShardPlacement,
    shard_len: u64,
    deep: bool,
) -> bool {
    if deep {
        throttle.spend(shard_len).await;
        return match read_hash(pool, shard).await {
            Ok((_, len)) => len == shard_len,
            Err(e) => {
                debug!(shard = %shard.shard_key, error = %e, "shard unreadable");
                false
            }
        };
    }
    let Ok(mut client) = pool.client(&shard.node_address) else {
        return false;
    };
    let req = StatShardRequest {
        disk_id: shard.disk_id.clone(),
        shard_key: shard.shard_key.clone(),
    };
    match tokio::time::timeout(CALL_TIMEOUT, client.stat_shard(req)).await {
        Ok(Ok(resp)) => {
            let stat = resp.into_inner();
            stat.exists && stat.length == shard_len
        }
        _ => false,
    }
}

/// Reads a whole shard (the server verifies every chunk) and returns its BLAKE3 and length.
async fn read_hash(pool: &BlobPool, shard: &ShardPlacement) -> Result<(blake3::Hash, u64), String> {
    let mut reader = ShardStream::open(pool, shard, 0).await?;
    let mut hasher = blake3::Hasher::new();
    let mut len = 0u64;
    while let Some(data) = reader.next().await? {
        hasher.update(&data);
        len += data.len() as u64;
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
    let mut readers = Vec::with_capacity(sources.len());
    for s in sources {
        let r = ShardStream::open(&gw.blobs, s, 0)
            .await
            .map_err(HealError::Retry)?;
        readers.push((s.index as usize, r));
    }
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
                .read_exact(block_len)
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
        hashes.push(w.finish().await?);
    }
    Ok(hashes)
}

/// One rebuilt shard's PutShard stream, hashing what it sends.
struct Writer {
    index: usize,
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<Result<u64, String>>,
    hasher: blake3::Hasher,
}

impl Writer {
    fn start(pool: &Arc<BlobPool>, target: &ShardPlacement) -> Self {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let span = info_span!("heal_put_shard", index = target.index, shard = %target.shard_key);
        let task = tokio::spawn(
            crate::shard_writers::write_shard(Arc::clone(pool), target.clone(), rx)
                .instrument(span),
        );
        Self {
            index: target.index as usize,
            tx,
            task,
            hasher: blake3::Hasher::new(),
        }
    }

    async fn send(&mut self, block: Bytes) -> Result<(), HealError> {
        self.hasher.update(&block);
        tokio::time::timeout(CALL_TIMEOUT, self.tx.send(block))
            .await
            .map_err(|_| HealError::Retry("rebuilt shard's server stopped accepting".into()))?
            .map_err(|_| HealError::Retry("rebuilt shard's stream ended early".into()))
    }

    /// Closes the stream and waits for the server's durable acknowledgement.
    async fn finish(self) -> Result<blake3::Hash, HealError> {
        drop(self.tx);
        match tokio::time::timeout(CALL_TIMEOUT, self.task).await {
            Ok(Ok(Ok(_))) => Ok(self.hasher.finalize()),
            Ok(Ok(Err(e))) => Err(HealError::Retry(format!("rebuilt shard write: {e}"))),
            Ok(Err(e)) => Err(HealError::Retry(format!("rebuilt shard writer: {e}"))),
            Err(_) => Err(HealError::Retry("rebuilt shard not acknowledged".into())),
        }
    }
}

/// A GetShard stream read in exact-size pieces.
struct ShardStream {
    stream: tonic::Streaming<cairn_proto::blob::GetShardResponse>,
    pending: Bytes,
}

impl ShardStream {
    async fn open(pool: &BlobPool, shard: &ShardPlacement, offset: u64) -> Result<Self, String> {
        let mut client = pool
            .client(&shard.node_address)
            .map_err(|e| e.to_string())?;
        let req = GetShardRequest {
            disk_id: shard.disk_id.clone(),
            shard_key: shard.shard_key.clone(),
            offset,
            length: 0,
        };
        match tokio::time::timeout(CALL_TIMEOUT, client.get_shard(req)).await {
            Ok(Ok(resp)) => Ok(Self {
                stream: resp.into_inner(),
                pending: Bytes::new(),
            }),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err("timed out opening the shard".into()),
        }
    }

    /// The next message's bytes, or `None` at the end of the shard.
    async fn next(&mut self) -> Result<Option<Bytes>, String> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        match tokio::time::timeout(CALL_TIMEOUT, self.stream.message()).await {
            Ok(Ok(Some(msg))) => Ok(Some(msg.data)),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err("timed out reading the shard".into()),
        }
    }

    /// Exactly the next `n` bytes.
    async fn read_exact(&mut self, n: usize) -> Result<Bytes, String> {
        let mut out = BytesMut::with_capacity(n);
        while out.len() < n {
            let Some(mut data) = self.next().await? else {
                return Err("the shard is shorter than its object needs".into());
            };
            let want = n - out.len();
            if data.len() > want {
                self.pending = data.split_off(want);
            }
            out.extend_from_slice(&data);
        }
        Ok(out.freeze())
    }
}
