//! Choosing the erasure scheme and the disks of a new object.
//!
//! Placement is decided by the node that answers `PlanPut`, outside the state machine (it may
//! use randomness); the chosen placement is then committed with the object, so every replica
//! agrees on where the shards are.

use cairn_proto::blob::DiskState;
use cairn_proto::meta::{BlobNode, BlobNodeState, ErasureScheme, ShardPlacement};
use rand::seq::SliceRandom;
use rand::Rng;

/// Target bytes of object data per stripe; each of the k data blocks is 1/k of it.
const STRIPE_TARGET_BYTES: u32 = 1 << 20;

/// Disks are left out of placement when they have less than this much room beyond the
/// shard: a full disk must never be the reason a PUT fails.
const FREE_SPACE_RESERVE: u64 = 16 << 20;

/// The blob nodes that are alive at `now_ms`: those whose last registration (their heartbeat,
/// stamped by the leader's clock) is at most `down_after_ms` old. A silent node is down and
/// gets no new shards until it registers again.
pub fn live_nodes(nodes: Vec<BlobNode>, now_ms: i64, down_after_ms: i64) -> Vec<BlobNode> {
    nodes
        .into_iter()
        .filter(|n| now_ms.saturating_sub(n.registered_ms) <= down_after_ms)
        .collect()
}

/// Whether an operator is draining `node` (it gets no new shards).
pub fn is_draining(node: &BlobNode) -> bool {
    node.state == BlobNodeState::Draining as i32
}

/// How many disks of `nodes` could take a shard now (healthy, room left, node not draining).
pub fn usable_disk_count(nodes: &[BlobNode]) -> usize {
    usable_disks(nodes).len()
}

/// Why no placement could be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    /// Fewer usable disks than shards.
    #[error("need {needed} usable disks, have {available}")]
    NotEnoughDisks { needed: usize, available: usize },
}

/// The erasure scheme used when none is configured, from the number of usable disks:
/// 1 → 1+0, 2 → 1+1, 3 → 2+1, 4–5 → 2+2, 6 or more → 4+2.
pub fn default_scheme(usable_disks: usize) -> ErasureScheme {
    let (k, m) = match usable_disks {
        0 | 1 => (1, 0),
        2 => (1, 1),
        3 => (2, 1),
        4 | 5 => (2, 2),
        _ => (4, 2),
    };
    ErasureScheme {
        data_shards: k,
        parity_shards: m,
        block_size: block_size_for(k),
    }
}

/// Block size for k data shards: about 1 MiB of data per stripe, rounded up to 64 bytes
/// (a multiple that keeps the SIMD Reed-Solomon kernels on their fast path).
pub fn block_size_for(k: u32) -> u32 {
    let raw = STRIPE_TARGET_BYTES.div_ceil(k.max(1));
    raw.div_ceil(64) * 64
}

struct Candidate<'a> {
    node: &'a BlobNode,
    disk_id: &'a str,
    free: u64,
}

/// Weight of a disk in the random choice: its free space. A disk that reports none (its
/// platform cannot tell) weighs as much as a disk with 1 TiB free.
fn weight(c: &Candidate<'_>) -> u64 {
    if c.free == 0 {
        1 << 40
    } else {
        c.free
    }
}

/// Picks one of `pool` with probability proportional to its weight.
fn pick_weighted(
    pool: &[usize],
    candidates: &[Candidate<'_>],
    rng: &mut impl Rng,
) -> Option<usize> {
    let total: u128 = pool
        .iter()
        .map(|&i| u128::from(weight(&candidates[i])))
        .sum();
    if total == 0 {
        return pool.first().copied();
    }
    let mut point = rng.random_range(0..total);
    for &i in pool {
        let w = u128::from(weight(&candidates[i]));
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    pool.last().copied()
}

/// Picks k+m distinct disks for an object of about `size_hint` bytes.
///
/// Each shard goes to the least-used zone (blob nodes' `zone` label), then to the least-used
/// node in it, so that losing a zone or a node costs as few shards as possible; among the
/// disks that tie, one is drawn with probability proportional to its free space, so disks
/// fill evenly without every PUT between two heartbeats landing on the same emptiest disk.
/// Faulty disks, disks of draining nodes and disks that would be left with less than a
/// reserve are never chosen. Shard keys are `{upload_id}.{index}`.
pub fn place(
    nodes: &[BlobNode],
    scheme: Option<ErasureScheme>,
    size_hint: u64,
    upload_id: &str,
) -> Result<(ErasureScheme, Vec<ShardPlacement>), PlacementError> {
    let mut rng = rand::rng();
    let mut candidates = usable_disks(nodes);
    let scheme = scheme.unwrap_or_else(|| default_scheme(candidates.len()));
    let k = u64::from(scheme.data_shards.max(1));
    let shard_estimate = size_hint.div_ceil(k) + FREE_SPACE_RESERVE;
    candidates.retain(|c| c.free == 0 || c.free >= shard_estimate);
    let needed = (scheme.data_shards + scheme.parity_shards) as usize;
    let mut chosen = choose(candidates, &[], needed, &mut rng)?;
    // Shard index says nothing about location: data and parity shards spread alike.
    chosen.shuffle(&mut rng);
    let shards = chosen
        .iter()
        .enumerate()
        .map(|(index, c)| c.placement(index as u32, format!("{upload_id}.{index}")))
        .collect();
    Ok((scheme, shards))
}

/// Disks for rebuilt shards: one for each of `indices`, never a disk that `keep` (the shards
/// of the segment that stay) uses, and spread away from their nodes and zones by the rules of
/// [`place`]. `shard_size` is the size of one shard; `name` gives each new shard its key.
pub fn place_replacements(
    nodes: &[BlobNode],
    keep: &[ShardPlacement],
    indices: &[u32],
    shard_size: u64,
    name: impl Fn(u32) -> String,
) -> Result<Vec<ShardPlacement>, PlacementError> {
    let mut rng = rand::rng();
    let mut candidates = usable_disks(nodes);
    candidates.retain(|c| {
        (c.free == 0 || c.free >= shard_size + FREE_SPACE_RESERVE)
            && !keep
                .iter()
                .any(|s| s.node_id == c.node.node_id && s.disk_id == c.disk_id)
    });
    // The kept shards count as already chosen, so the new ones avoid their nodes and zones.
    let taken: Vec<(&str, &str)> = keep
        .iter()
        .map(|s| {
            let zone = nodes
                .iter()
                .find(|n| n.node_id == s.node_id)
                .map_or("", |n| n.zone.as_str());
            (zone, s.node_id.as_str())
        })
        .collect();
    let chosen = choose(candidates, &taken, indices.len(), &mut rng)?;
    Ok(indices
        .iter()
        .zip(chosen)
        .map(|(&index, c)| c.placement(index, name(index)))
        .collect())
}

/// The disks that can take data: healthy, with more than the reserve free, and not on a
/// draining node (its shards are being moved away; a new one would only have to follow).
fn usable_disks(nodes: &[BlobNode]) -> Vec<Candidate<'_>> {
    let mut candidates = Vec::new();
    for node in nodes.iter().filter(|n| !is_draining(n)) {
        for disk in &node.disks {
            if disk.state != DiskState::Ok as i32 {
                continue;
            }
            candidates.push(Candidate {
                node,
                disk_id: &disk.disk_id,
                free: disk.free_bytes,
            });
        }
    }
    // A disk with less than the reserve left counts as full before the scheme is chosen, so
    // the default scheme reflects the disks that can really take data.
    candidates.retain(|c| c.free == 0 || c.free >= FREE_SPACE_RESERVE);
    candidates
}

/// Picks `needed` of `candidates`: each to the least-used zone, then the least-used node in
/// it (counting `taken`, the (zone, node) of shards placed before), then by free space.
fn choose<'a>(
    mut candidates: Vec<Candidate<'a>>,
    taken: &[(&str, &str)],
    needed: usize,
    rng: &mut impl Rng,
) -> Result<Vec<Candidate<'a>>, PlacementError> {
    if candidates.len() < needed {
        return Err(PlacementError::NotEnoughDisks {
            needed,
            available: candidates.len(),
        });
    }
    let mut chosen: Vec<Candidate<'a>> = Vec::with_capacity(needed);
    while chosen.len() < needed {
        let spread = |c: &Candidate<'_>| {
            let zone = chosen.iter().filter(|o| o.node.zone == c.node.zone).count()
                + taken.iter().filter(|(z, _)| *z == c.node.zone).count();
            let node = chosen
                .iter()
                .filter(|o| o.node.node_id == c.node.node_id)
                .count()
                + taken.iter().filter(|(_, n)| *n == c.node.node_id).count();
            (zone, node)
        };
        let Some(best) = candidates.iter().map(spread).min() else {
            break;
        };
        let pool: Vec<usize> = (0..candidates.len())
            .filter(|&i| spread(&candidates[i]) == best)
            .collect();
        let Some(i) = pick_weighted(&pool, &candidates, rng) else {
            break;
        };
        chosen.push(candidates.swap_remove(i));
    }
    Ok(chosen)
}

impl Candidate<'_> {
    fn placement(&self, index: u32, shard_key: String) -> ShardPlacement {
        ShardPlacement {
            index,
            node_id: self.node.node_id.clone(),
            node_address: self.node.address.clone(),
            disk_id: self.disk_id.to_string(),
            shard_key,
            written: false,
        }
    }
}

/// Checks an erasure scheme given by an operator: 1 to 16 data shards, 0 to 16 parity shards,
/// at most 32 in all (the Reed-Solomon field allows more; placement rarely can).
pub fn validate_scheme(k: u32, m: u32) -> Result<ErasureScheme, String> {
    if !(1..=16).contains(&k) || m > 16 || k + m > 32 {
        return Err(format!(
            "unsupported scheme {k}+{m}: 1-16 data shards, 0-16 parity shards"
        ));
    }
    Ok(ErasureScheme {
        data_shards: k,
        parity_shards: m,
        block_size: block_size_for(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::blob::DiskInfo;
    use std::collections::HashSet;

    fn node(id: &str, disks: usize) -> BlobNode {
        BlobNode {
            node_id: id.into(),
            address: format!("{id}:1"),
            disks: (0..disks)
                .map(|d| DiskInfo {
                    disk_id: format!("{id}-d{d}"),
                    path: String::new(),
                    capacity_bytes: 1 << 40,
                    free_bytes: 1 << 39,
                    state: DiskState::Ok as i32,
                })
                .collect(),
            registered_ms: 0,
            zone: String::new(),
            maintenance: None,
            state: BlobNodeState::Active as i32,
        }
    }

    fn fixed(k: u32, m: u32) -> Option<ErasureScheme> {
        validate_scheme(k, m).ok()
    }

    #[test]
    fn emptier_disks_are_chosen_more_often() {
        let mut roomy = node("roomy", 1);
        roomy.disks[0].free_bytes = 9 << 40;
        let mut tight = node("tight", 1);
        tight.disks[0].free_bytes = 1 << 40;
        let nodes = [roomy, tight];
        let roomy_picks = (0..2000)
            .filter(|_| {
                let (_, shards) = place(&nodes, fixed(1, 0), 0, "u").expect("placement");
                shards[0].node_id == "roomy"
            })
            .count();
        // Expected 90%; the bounds are more than seven standard deviations away.
        assert!((1600..=1940).contains(&roomy_picks), "{roomy_picks}");
    }

    #[test]
    fn shards_spread_over_zones_before_nodes() {
        let mut nodes = Vec::new();
        for (i, zone) in ["z1", "z1", "z1", "z1", "z2", "z3"].iter().enumerate() {
            let mut n = node(&format!("n{i}"), 2);
            n.zone = zone.to_string();
            nodes.push(n);
        }
        for _ in 0..100 {
            let (_, shards) = place(&nodes, fixed(2, 1), 0, "u").expect("placement");
            let zones: HashSet<&str> = shards
                .iter()
                .map(|s| {
                    let n = nodes.iter().find(|n| n.node_id == s.node_id).expect("node");
                    n.zone.as_str()
                })
                .collect();
            assert_eq!(zones.len(), 3, "one shard per zone: {shards:?}");
        }
    }

    #[test]
    fn operator_schemes_are_bounded() {
        assert!(validate_scheme(4, 2).is_ok());
        assert!(validate_scheme(1, 0).is_ok());
        assert!(validate_scheme(0, 2).is_err());
        assert!(validate_scheme(17, 1).is_err());
        assert!(validate_scheme(16, 17).is_err());
    }

    #[test]
    fn default_schemes_follow_the_disk_count() {
        let pairs: Vec<_> = [1, 2, 3, 4, 5, 6, 12]
            .iter()
            .map(|&n| {
                let s = default_scheme(n);
                (s.data_shards, s.parity_shards)
            })
            .collect();
        assert_eq!(
            pairs,
            vec![(1, 0), (1, 1), (2, 1), (2, 2), (2, 2), (4, 2), (4, 2)]
        );
        assert_eq!(block_size_for(4) * 4, 1 << 20);
        assert_eq!(block_size_for(3) % 64, 0);
    }

    #[test]
    fn shards_go_to_distinct_disks_and_distinct_nodes_when_possible() {
        let nodes = vec![node("a", 2), node("b", 2), node("c", 2), node("d", 2)];
        for _ in 0..50 {
            let (scheme, shards) = place(&nodes, None, 1 << 20, "u").expect("placement");
            assert_eq!((scheme.data_shards, scheme.parity_shards), (4, 2));
            let disks: HashSet<_> = shards.iter().map(|s| &s.disk_id).collect();
            assert_eq!(disks.len(), 6);
            // 6 shards on 4 nodes: no node holds more than 2.
            for n in ["a", "b", "c", "d"] {
                assert!(shards.iter().filter(|s| s.node_id == n).count() <= 2);
            }
            let indexes: Vec<_> = shards.iter().map(|s| s.index).collect();
            assert_eq!(indexes, (0..6).collect::<Vec<_>>());
        }
    }

    #[test]
    fn faulty_and_full_disks_are_never_chosen() {
        let mut n = node("a", 4);
        n.disks[0].state = DiskState::Faulty as i32;
        n.disks[1].free_bytes = 1 << 20;
        let (scheme, shards) = place(&[n], None, 1 << 30, "u").expect("placement");
        // Two usable disks: 1+1.
        assert_eq!((scheme.data_shards, scheme.parity_shards), (1, 1));
        assert!(shards
            .iter()
            .all(|s| s.disk_id == "a-d2" || s.disk_id == "a-d3"));
    }

    #[test]
    fn draining_nodes_get_neither_new_objects_nor_rebuilt_shards() {
        let mut nodes = vec![node("a", 2), node("b", 2), node("c", 2), node("d", 2)];
        nodes[1].state = BlobNodeState::Draining as i32;
        for _ in 0..50 {
            let (scheme, shards) = place(&nodes, None, 1 << 20, "u").expect("placement");
            // Six usable disks left: the default scheme counts only those.
            assert_eq!((scheme.data_shards, scheme.parity_shards), (4, 2));
            assert!(shards.iter().all(|s| s.node_id != "b"), "{shards:?}");
        }
        // A segment whose shard 0 sits on the draining node: its replacement goes elsewhere,
        // away from the disks of the shards that stay.
        let keep: Vec<ShardPlacement> = ["a-d0", "c-d0", "d-d0"]
            .iter()
            .enumerate()
            .map(|(i, d)| ShardPlacement {
                index: i as u32 + 1,
                node_id: d[..1].to_string(),
                disk_id: d.to_string(),
                ..Default::default()
            })
            .collect();
        for _ in 0..50 {
            let new = place_replacements(&nodes, &keep, &[0], 1 << 20, |i| format!("x.{i}"))
                .expect("replacement");
            assert_eq!(new.len(), 1);
            assert_ne!(new[0].node_id, "b");
            assert!(keep.iter().all(|k| k.disk_id != new[0].disk_id));
        }
        // Disks of "b" do not count.
        assert_eq!(usable_disk_count(&nodes), 6);
        // With every node draining there is nowhere to put anything.
        for n in &mut nodes {
            n.state = BlobNodeState::Draining as i32;
        }
        assert!(place(&nodes, fixed(1, 0), 0, "u").is_err());
        assert_eq!(usable_disk_count(&nodes), 0);
    }

    #[test]
    fn silent_nodes_are_down() {
        let mut fresh = node("fresh", 1);
        fresh.registered_ms = 100_000;
        let mut silent = node("silent", 1);
        silent.registered_ms = 60_000;
        let live = live_nodes(vec![fresh, silent], 100_500, 30_000);
        let ids: Vec<_> = live.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, vec!["fresh"]);
    }

    #[test]
    fn too_few_disks_for_a_fixed_scheme_is_an_error() {
        let scheme = ErasureScheme {
            data_shards: 4,
            parity_shards: 2,
            block_size: block_size_for(4),
        };
        assert_eq!(
            place(&[node("a", 3)], Some(scheme), 0, "u").err(),
            Some(PlacementError::NotEnoughDisks {
                needed: 6,
                available: 3
            })
        );
    }
}
