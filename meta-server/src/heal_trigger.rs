//! Queues for healing the object versions whose shards sit where data was lost: on a blob node
//! down for longer than the heal delay, on a disk reported faulty, or on a disk its node no
//! longer reports (a wiped or replaced disk comes back under a new disk id); and those with a
//! shard on a blob node an operator is draining, so that the healers move it away.
//!
//! Runs on every meta node and acts only where a local node leads the group. It rescans the
//! objects when the *shape* of the blob registry changes (a node crossing the delay, a disk
//! turning faulty, a disk id appearing or vanishing) and once whenever this node becomes the
//! leader, since a new leader cannot know what its predecessor already queued. Queuing is
//! idempotent (items are keyed by version), so a rescan costs reads, not duplicate work.
//!
//! While a node drains, the scan is also repeated every [`DRAIN_RESCAN`]: a PUT or a heal
//! planned just before the drain began may commit a shard on the node afterwards, and a
//! heal item can end (given up, or healed by a healer that did not know of the drain yet)
//! with a shard still there. The repeated scan queues those too, so a drain always finishes.

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_proto::blob::DiskState;
use cairn_proto::meta::{BlobNode, HealReason, ObjectVersion};
use prost::Message;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

use crate::apply::heal::{all_shards, item_for};
use crate::group::{now_ms, Group};
use crate::joined::JoinState;
use crate::store::MetaReader;
use crate::types::Command;

/// How often the registry is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Versions read (and queued) per step of a scan.
const SCAN_BATCH: usize = 1000;
/// How often the versions are scanned again while some node drains.
const DRAIN_RESCAN: Duration = Duration::from_secs(30);

/// Where shards are lost, as the registry shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Registry {
    /// Every (node, disk) a node reports healthy, of nodes not lost.
    healthy: BTreeSet<(String, String)>,
    /// Nodes silent for longer than the heal delay.
    lost_nodes: BTreeSet<String>,
    /// Nodes an operator is draining (not lost).
    draining: BTreeSet<String>,
}

impl Registry {
    fn read(nodes: &[BlobNode], now: i64, node_lost_after: Duration) -> Self {
        let lost_after = node_lost_after.as_millis() as i64;
        let mut out = Registry::default();
        for node in nodes {
            if now.saturating_sub(node.registered_ms) > lost_after {
                out.lost_nodes.insert(node.node_id.clone());
                continue;
            }
            if crate::placement::is_draining(node) {
                out.draining.insert(node.node_id.clone());
            }
            for disk in &node.disks {
                if disk.state == DiskState::Ok as i32 {
                    out.healthy
                        .insert((node.node_id.clone(), disk.disk_id.clone()));
                }
            }
        }
        out
    }

    /// Why a shard at (node, disk) needs healing, if it does. A node the registry does not
    /// know at all (never seen, or removed) counts as lost; a healthy shard on a draining
    /// node must move.
    fn loss(&self, node_id: &str, disk_id: &str) -> Option<HealReason> {
        if self.lost_nodes.contains(node_id) {
            return Some(HealReason::NodeDown);
        }
        if !self
            .healthy
            .contains(&(node_id.to_string(), disk_id.to_string()))
        {
            return Some(HealReason::DiskLost);
        }
        if self.draining.contains(node_id) {
            return Some(HealReason::Drain);
        }
        None
    }
}

/// Starts the trigger (named `heal_trigger` in traces).
pub fn spawn(joined: JoinState, node_lost_after: Duration) -> JoinHandle<()> {
    tokio::spawn(
        run(joined, node_lost_after)
            .instrument(tracing::info_span!("heal_trigger", ?node_lost_after)),
    )
}

async fn run(joined: JoinState, node_lost_after: Duration) {
    // What the last scan saw and when; `None` while this node does not lead.
    let mut scanned: Option<(Registry, tokio::time::Instant)> = None;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        let Some(j) = joined.get() else { continue };
        let group = j.groups.system_group();
        if !leads(group) {
            scanned = None;
            continue;
        }
        let reader = match group.linearizable_reader().await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "not a linearizable leader now");
                continue;
            }
        };
        let nodes = match reader.blob_nodes() {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot read the blob registry");
                continue;
            }
        };
        let registry = Registry::read(&nodes, now_ms(), node_lost_after);
        if let Some((seen, at)) = &scanned {
            let drain_due = !registry.draining.is_empty() && at.elapsed() >= DRAIN_RESCAN;
            if *seen == registry && !drain_due {
                continue;
            }
        }
        match scan(group, reader, &registry).await {
            Ok(queued) => {
                if queued > 0 {
                    info!(queued, lost_nodes = ?registry.lost_nodes, draining = ?registry.draining,
                        "queued versions with lost or draining shards for healing");
                }
                scanned = Some((registry, tokio::time::Instant::now()));
            }
            Err(e) => warn!(error = %e, "heal scan failed; retrying"),
        }
    }
}

/// Whether a node of this process leads the group.
pub(crate) fn leads(group: &Group) -> bool {
    group
        .nodes()
        .iter()
        .any(|n| n.raft.metrics().borrow().current_leader == Some(n.id))
}

/// Queues every stored version with a shard on a lost or draining location; returns how
/// many.
async fn scan(group: &Group, reader: &MetaReader, registry: &Registry) -> Result<u64, String> {
    let mut after: Option<Vec<u8>> = None;
    let mut queued = 0u64;
    loop {
        let (versions, next) = reader
            .all_versions_page(after.as_deref(), SCAN_BATCH)
            .map_err(|e| e.to_string())?;
        let items: Vec<Vec<u8>> = versions
            .iter()
            .filter_map(|v| needs_heal(v, registry).map(|r| item_for(v, r).encode_to_vec()))
            .collect();
        if !items.is_empty() {
            queued += items.len() as u64;
            group
                .write(Command::QueueHeal { items })
                .await
                .map_err(|e| e.to_string())?;
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok(queued),
        }
    }
}

fn needs_heal(version: &ObjectVersion, registry: &Registry) -> Option<HealReason> {
    all_shards(version)
        .filter(|s| s.written)
        .find_map(|s| registry.loss(&s.node_id, &s.disk_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::blob::DiskInfo;

    fn node(id: &str, registered_ms: i64, disks: &[(&str, DiskState)]) -> BlobNode {
        BlobNode {
            node_id: id.into(),
            registered_ms,
            disks: disks
                .iter()
                .map(|(d, state)| DiskInfo {
                    disk_id: d.to_string(),
                    state: *state as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lost_nodes_faulty_and_vanished_disks_need_healing() {
        let nodes = [
            node(
                "a",
                100_000,
                &[("a1", DiskState::Ok), ("a2", DiskState::Faulty)],
            ),
            node("b", 10_000, &[("b1", DiskState::Ok)]),
        ];
        let r = Registry::read(&nodes, 100_000, Duration::from_secs(60));
        assert_eq!(r.loss("a", "a1"), None);
        assert_eq!(r.loss("a", "a2"), Some(HealReason::DiskLost));
        // a3 was replaced: a comes back without it.
        assert_eq!(r.loss("a", "a3"), Some(HealReason::DiskLost));
        assert_eq!(r.loss("b", "b1"), Some(HealReason::NodeDown));
        assert_eq!(r.loss("zz", "z1"), Some(HealReason::DiskLost));
        // b back within the delay: nothing to heal there.
        let r = Registry::read(&nodes, 30_000, Duration::from_secs(60));
        assert_eq!(r.loss("b", "b1"), None);
    }

    #[test]
    fn shards_on_a_draining_node_must_move_and_losses_come_first() {
        let mut draining = node(
            "d",
            100_000,
            &[("d1", DiskState::Ok), ("d2", DiskState::Faulty)],
        );
        draining.state = cairn_proto::meta::BlobNodeState::Draining as i32;
        let mut gone = node("g", 1_000, &[("g1", DiskState::Ok)]);
        gone.state = cairn_proto::meta::BlobNodeState::Draining as i32;
        let nodes = [draining, gone, node("a", 100_000, &[("a1", DiskState::Ok)])];
        let r = Registry::read(&nodes, 100_000, Duration::from_secs(60));
        assert_eq!(r.loss("d", "d1"), Some(HealReason::Drain));
        assert_eq!(r.loss("d", "d2"), Some(HealReason::DiskLost));
        // Draining and then lost: lost.
        assert_eq!(r.loss("g", "g1"), Some(HealReason::NodeDown));
        assert_eq!(r.loss("a", "a1"), None);
        let version = ObjectVersion {
            shards: vec![
                cairn_proto::meta::ShardPlacement {
                    node_id: "a".into(),
                    disk_id: "a1".into(),
                    written: true,
                    ..Default::default()
                },
                cairn_proto::meta::ShardPlacement {
                    node_id: "d".into(),
                    disk_id: "d1".into(),
                    written: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(needs_heal(&version, &r), Some(HealReason::Drain));
        // The drain ends: nothing to do for that version any more.
        let mut active = nodes.clone();
        active[0].state = cairn_proto::meta::BlobNodeState::Active as i32;
        let r = Registry::read(&active, 100_000, Duration::from_secs(60));
        assert_eq!(needs_heal(&version, &r), None);
    }
}
