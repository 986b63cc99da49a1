//! The healer: a background task in every gateway that takes object versions from the meta
//! service's heal queue and brings each back to full redundancy.
//!
//! Why in the gateway: healing is a read and a write of shards with the erasure codec, which
//! is exactly what a gateway does; the meta service only keeps the queue and the placement,
//! and blob servers only store. Many gateways heal in parallel without stepping on each other
//! because every item is leased to one healer at a time (a healer that dies lets its lease
//! run out and another takes the item over), and because the placement changes only through
//! `ReplaceShards`, which refuses a change based on a stale view.
//!
//! The order of one heal (see [`segment`]): find the damaged shards, rebuild them from k good
//! ones onto new disks, read every rebuilt shard back and compare it with what was written,
//! and only then record it; the old copies are deleted last. A crash at any point leaves
//! either the old placement (and garbage that GC removes) or the new one, never a placement
//! that points at an unverified shard.
//!
//! Draining: a shard on a blob node an operator is draining is moved even though it is
//! healthy, by the same steps (new disk, write, read back, `ReplaceShards`, delete the old
//! copy). A healthy shard is copied from the draining node itself, which reads one shard
//! instead of k; a segment that also has damaged shards is rebuilt from k good ones, which may
//! include the draining node's.

mod segment;
mod throttle;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::{FinishHealRequest, HealItem, HealReason, ObjectVersion};
use tokio::task::JoinHandle;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::ApiError;
use crate::Gateway;

pub(crate) use throttle::Throttle;

/// How a healer runs.
#[derive(Debug, Clone)]
pub struct HealerConfig {
    /// Shard bytes per second the healer may read (its share of the disks and the network;
    /// foreground traffic keeps the rest). 0 disables healing in this gateway.
    pub rate_bytes_per_sec: u64,
    /// Pause between polls of an empty queue.
    pub idle_poll: Duration,
}

impl Default for HealerConfig {
    fn default() -> Self {
        Self {
            rate_bytes_per_sec: 64 << 20,
            idle_poll: Duration::from_secs(2),
        }
    }
}

/// How long a claimed item is ours; long enough for a large object at the throttled rate.
/// A healer that dies holding it delays that item by this much.
const LEASE: Duration = Duration::from_secs(600);

/// Why a heal did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HealError {
    /// Fewer than k shards of a segment are readable: the data cannot be rebuilt.
    #[error("unrecoverable: {0}")]
    Unrecoverable(String),
    /// Worth retrying later (meta or a blob server unavailable, no disk for a new shard, the
    /// object changed under us).
    #[error("{0}")]
    Retry(String),
}

impl From<ApiError> for HealError {
    fn from(e: ApiError) -> Self {
        HealError::Retry(e.to_string())
    }
}

/// What healing one version did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Healed {
    pub shards: u32,
    pub bytes: u64,
}

/// Starts the healer of this gateway (named `healer` in traces).
pub(crate) fn spawn(gw: Arc<Gateway>, config: HealerConfig) -> Option<JoinHandle<()>> {
    if config.rate_bytes_per_sec == 0 {
        info!("healer disabled (rate 0)");
        return None;
    }
    let span = info_span!("healer", rate = config.rate_bytes_per_sec);
    Some(tokio::spawn(run(gw, config).instrument(span)))
}

async fn run(gw: Arc<Gateway>, config: HealerConfig) {
    let throttle = Throttle::new(config.rate_bytes_per_sec);
    loop {
        let items = match gw.meta.claim_heal(1, LEASE).await {
            Ok(items) => items,
            Err(e) => {
                debug!(error = %e, "cannot claim heal work");
                Vec::new()
            }
        };
        if items.is_empty() {
            tokio::time::sleep(config.idle_poll).await;
            continue;
        }
        for item in items {
            let span = info_span!("heal", bucket = %item.bucket, key = %item.key, version = %item.version_id);
            heal_item(&gw, &throttle, item).instrument(span).await;
        }
    }
}

/// Heals one queued version and ends its item; a retryable failure leaves the item to its
/// lease, so it comes back later.
async fn heal_item(gw: &Gateway, throttle: &Throttle, item: HealItem) {
    let finish = |healed: bool, done: Healed| FinishHealRequest {
        bucket: item.bucket.clone(),
        key: item.key.clone(),
        version_id: item.version_id.clone(),
        healed,
        bytes_rebuilt: done.bytes,
        shards_rebuilt: done.shards,
        retry_in_ms: 0,
    };
    let version = match gw
        .meta
        .get_object_version(&item.bucket, &item.key, &item.version_id)
        .await
    {
        Ok(v) => v,
        Err(ApiError::NoSuchKey | ApiError::NoSuchBucket) => {
            // Overwritten or deleted since it was queued: nothing left to heal.
            debug!("version gone; dropping the heal item");
            end(gw, finish(true, Healed::default())).await;
            return;
        }
        Err(e) => {
            warn!(error = %e, "cannot read the version to heal; will retry");
            return;
        }
    };
    // A read or scrub report (or an operator's pass) means a shard may be corrupt though
    // present: read everything.
    let deep = matches!(
        HealReason::try_from(item.reason),
        Ok(HealReason::Read | HealReason::Scrub | HealReason::Pass)
    );
    // Looked up per item, so a drain started after the item was queued is honoured too.
    let outcome = match gw.meta.draining_nodes().await {
        Ok(draining) => heal_version(gw, throttle, &version, deep, &draining).await,
        Err(e) => Err(HealError::Retry(format!("cannot list the blob nodes: {e}"))),
    };
    match outcome {
        Ok(done) => {
            if done.shards > 0 {
                info!(shards = done.shards, bytes = done.bytes, "healed");
            } else {
                debug!("nothing to heal");
            }
            end(gw, finish(true, done)).await;
        }
        Err(HealError::Unrecoverable(why)) => {
            tracing::error!(
                why,
                "object cannot be healed: fewer than k shards are readable"
            );
            end(gw, finish(false, Healed::default())).await;
        }
        Err(HealError::Retry(why)) => {
            let delay = retry_delay(item.attempts);
            warn!(why, retry_in = ?delay, "heal failed; will retry");
            end(
                gw,
                FinishHealRequest {
                    retry_in_ms: delay.as_millis() as u64,
                    ..finish(false, Healed::default())
                },
            )
            .await;
        }
    }
}

/// Back-off before a failed item is tried again: 2 s, doubling per attempt, at most 5 min.
fn retry_delay(attempts: u32) -> Duration {
    let secs = 2u64.saturating_mul(1 << attempts.saturating_sub(1).min(8));
    Duration::from_secs(secs.min(300))
}

async fn end(gw: &Gateway, req: FinishHealRequest) {
    if let Err(e) = gw.meta.finish_heal(req).await {
        warn!(error = %e, "cannot finish the heal item; it will be checked again");
    }
}

/// Heals every segment of a version (its body, or each part).
async fn heal_version(
    gw: &Gateway,
    throttle: &Throttle,
    version: &ObjectVersion,
    deep: bool,
    draining: &HashSet<String>,
) -> Result<Healed, HealError> {
    let mut total = Healed::default();
    if version.inline_data.is_some() {
        // Kept in the metadata, which Raft replicates: no shard to heal.
        return Ok(total);
    }
    let segments: Vec<segment::Segment<'_>> = if version.parts.is_empty() {
        vec![segment::Segment {
            part_number: 0,
            scheme: version.scheme,
            size: version.size,
            shards: &version.shards,
        }]
    } else {
        version
            .parts
            .iter()
            .map(|p| segment::Segment {
                part_number: p.part_number,
                scheme: p.scheme,
                size: p.size,
                shards: &p.shards,
            })
            .collect()
    };
    for seg in segments {
        let done = segment::heal(gw, throttle, version, &seg, deep, draining).await?;
        total.shards += done.shards;
        total.bytes += done.bytes;
    }
    Ok(total)
}
