//! A cap on the memory that sharded PUT bodies hold at once.
//!
//! Each PUT streaming shards holds a bounded amount of memory (a stripe, its encoded blocks,
//! the per-shard queues here and in the blob servers, what HTTP/2 has in flight), but nothing
//! bounded the number of such PUTs: 64 concurrent 64 MiB PUTs took the embedded server to a
//! peak of 1 GiB (docs/performance.md). A PUT now reserves its estimated footprint from a
//! fixed budget before it reads its body; PUTs beyond the budget wait their turn (first come,
//! first served) without reading, so their clients are held back by TCP flow control. The
//! disks and cores are busy with the admitted ones anyway, so throughput does not drop.
//! Inline PUTs (small objects) hold at most `inline_max` bytes each and are not counted.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::erasure::Scheme;

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 1024 * 1024;

/// Blocks of each shard a PUT holds in memory at worst, in units of the block size: the
/// block being encoded, the shard queue here (`shard_writers::SHARD_QUEUE_BLOCKS`), HTTP/2's
/// window, and the blob server's receive queue. Measured as ~16 MiB for a 2+2 PUT with
/// 512 KiB blocks in the embedded server (both ends in one process), i.e. 8 blocks a shard.
const BLOCKS_PER_SHARD: u64 = 8;

/// The memory budget of the sharded PUTs (and UploadParts) of one gateway.
pub(crate) struct PutBudget {
    permits: Arc<Semaphore>,
    units: u64,
}

impl PutBudget {
    /// A budget of `bytes` (at least one unit).
    pub(crate) fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64);
        Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until a PUT coded with `scheme` fits in the budget and reserves its footprint
    /// until the permit is dropped. A PUT larger than the whole budget waits for all of it.
    pub(crate) async fn reserve(&self, scheme: &Scheme) -> Option<OwnedSemaphorePermit> {
        let cost = footprint_units(scheme).min(self.units);
        // `units` fits in u32: it is at most MAX_PERMITS (usize::MAX >> 3) and capped below.
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        // Only fails if the semaphore is closed, which this type never does.
        Arc::clone(&self.permits)
            .acquire_many_owned(cost)
            .await
            .ok()
    }
}

/// The estimated memory of one PUT with `scheme`, in budget units (at least one).
fn footprint_units(scheme: &Scheme) -> u64 {
    let bytes = scheme.block_size as u64 * scheme.total_shards() as u64 * BLOCKS_PER_SHARD;
    bytes.div_ceil(UNIT).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_2_2_put_with_512_kib_blocks_costs_16_mib() {
        let scheme = Scheme::new(2, 2, 512 * 1024).unwrap();
        assert_eq!(footprint_units(&scheme), 16);
        let tiny = Scheme::new(1, 0, 4096).unwrap();
        assert_eq!(footprint_units(&tiny), 1);
    }

    #[tokio::test]
    async fn puts_beyond_the_budget_wait_for_a_release() {
        let budget = PutBudget::new(32 * UNIT);
        let scheme = Scheme::new(2, 2, 512 * 1024).unwrap();
        let a = budget.reserve(&scheme).await;
        let b = budget.reserve(&scheme).await;
        assert!(a.is_some() && b.is_some());
        let third = budget.reserve(&scheme);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "a third 16 MiB PUT must wait in a 32 MiB budget"
        );
        drop(a);
        assert!(third.await.is_some());
    }

    #[tokio::test]
    async fn a_put_larger_than_the_budget_still_runs_alone() {
        let budget = PutBudget::new(4 * UNIT);
        let scheme = Scheme::new(2, 2, 512 * 1024).unwrap();
        assert!(budget.reserve(&scheme).await.is_some());
    }
}
