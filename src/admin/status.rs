//! `cairn admin status`: the cluster as a table or as JSON.
//!
//! The leader's answer gives membership and the blob-node registry; every member is then asked
//! for its own Raft state, so a lagging or dead member shows as such.

use std::time::Duration;

use cairn_proto::admin::{StatusRequest, StatusResponse};
use cairn_proto::blob::DiskState;
use cairn_proto::meta::BlobNodeState;
use serde::Serialize;

use super::client::{endpoint_uri, Admin};

/// One meta member, as the leader and the member itself report it.
#[derive(Serialize)]
pub struct MemberView {
    pub id: u64,
    pub address: String,
    pub voter: bool,
    /// "leader", "follower", "learner", "candidate", "shutdown", or "unreachable".
    pub role: String,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Index of the member's current snapshot.
    pub snapshot_index: Option<u64>,
    /// Log entries up to here are compacted away on the member.
    pub purged_index: Option<u64>,
    /// Last index the leader knows this member holds.
    pub matched_index: Option<u64>,
}

/// One disk of a blob node.
#[derive(Serialize)]
pub struct DiskView {
    pub disk_id: String,
    pub path: String,
    pub state: String,
    pub free_bytes: u64,
    pub capacity_bytes: u64,
}

/// One blob node.
#[derive(Serialize)]
pub struct BlobView {
    pub node_id: String,
    pub address: String,
    /// "up" or "down" (no heartbeat within the down-timeout).
    pub state: String,
    /// The operator's decision: "active" or "draining".
    pub mode: String,
    pub last_heartbeat_ms_ago: i64,
    pub disks: Vec<DiskView>,
    /// Scrub and GC counters since the server started, as of its last heartbeat.
    pub maintenance: MaintenanceView,
}

/// A blob server's background maintenance, since it started.
#[derive(Serialize, Default)]
pub struct MaintenanceView {
    pub scrubbed_shards: u64,
    pub scrubbed_bytes: u64,
    /// Shard files found corrupt or unreadable (each reported for healing).
    pub corrupt_shards: u64,
    pub scrub_passes: u64,
    pub gc_deleted_shards: u64,
    pub gc_deleted_bytes: u64,
    pub gc_passes: u64,
}

/// What a draining blob node still holds (the leader counts it from the metadata).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DrainView {
    pub node_id: String,
    /// Shard placements that still name the node; 0 = drained, it may be removed.
    pub shards: u64,
    /// Their size, about.
    pub bytes: u64,
    /// Objects (and multipart uploads in progress) with such a shard.
    pub objects: u64,
    /// Heal items queued for drains (all draining nodes together).
    pub queued_items: u64,
}

/// The whole report.
#[derive(Serialize)]
pub struct ClusterView {
    pub cluster_id: String,
    pub leader_id: u64,
    pub leader_address: String,
    pub term: u64,
    pub commit_index: u64,
    pub members: Vec<MemberView>,
    pub blob_nodes: Vec<BlobView>,
    /// One entry per draining blob node.
    pub drains: Vec<DrainView>,
}

async fn member_status(admin: &Admin, address: &str) -> Option<StatusResponse> {
    let uri = endpoint_uri(address);
    let call = admin.call_at(&uri, "Status", StatusRequest {}, |mut c, r| async move {
        c.status(r).await
    });
    tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .ok()?
        .ok()
}

/// Gathers the report.
pub async fn gather(admin: &Admin) -> anyhow::Result<ClusterView> {
    let leader: StatusResponse = admin
        .on_leader("Status", StatusRequest {}, |mut c, r| async move {
            let reply = c.status(r).await?;
            // A follower's view is not authoritative: send the caller to the leader.
            let status = reply.get_ref();
            // During an election nobody is: the caller retries.
            match &status.raft {
                Some(raft) if raft.role != "leader" => {
                    let mut redirect = tonic::Status::unavailable("not the leader");
                    if let Ok(v) = raft.leader_address.parse() {
                        redirect.metadata_mut().insert("cairn-leader", v);
                    }
                    Err(redirect)
                }
                _ => Ok(reply),
            }
        })
        .await?;
    if !leader.initialized {
        anyhow::bail!("this meta node has not joined a cluster yet: run `cairn admin init`");
    }
    let raft = leader.raft.clone().unwrap_or_default();
    let mut members = Vec::new();
    for m in &leader.members {
        let own = if m.id == raft.node_id {
            Some(leader.clone())
        } else {
            member_status(admin, &m.address).await
        };
        let own_raft = own.and_then(|s| s.raft);
        members.push(MemberView {
            id: m.id,
            address: m.address.clone(),
            voter: m.voter,
            role: own_raft
                .as_ref()
                .map_or_else(|| "unreachable".to_string(), |r| r.role.clone()),
            term: own_raft.as_ref().map(|r| r.term),
            last_log_index: own_raft.as_ref().map(|r| r.last_log_index),
            applied_index: own_raft.as_ref().map(|r| r.applied_index),
            snapshot_index: own_raft.as_ref().map(|r| r.snapshot_index),
            purged_index: own_raft.as_ref().map(|r| r.purged_index),
            matched_index: m.matched_index,
        });
    }
    let blob_nodes = leader
        .blob_nodes
        .iter()
        .map(|n| {
            let ago = leader.now_ms - n.registered_ms;
            BlobView {
                node_id: n.node_id.clone(),
                address: n.address.clone(),
                state: if ago > leader.blob_down_after_ms {
                    "down"
                } else {
                    "up"
                }
                .to_string(),
                mode: match BlobNodeState::try_from(n.state) {
                    Ok(BlobNodeState::Draining) => "draining",
                    _ => "active",
                }
                .to_string(),
                last_heartbeat_ms_ago: ago,
                disks: n
                    .disks
                    .iter()
                    .map(|d| DiskView {
                        disk_id: d.disk_id.clone(),
                        path: d.path.clone(),
                        state: match DiskState::try_from(d.state) {
                            Ok(DiskState::Ok) => "ok",
                            Ok(DiskState::Faulty) => "faulty",
                            _ => "unknown",
                        }
                        .to_string(),
                        free_bytes: d.free_bytes,
                        capacity_bytes: d.capacity_bytes,
                    })
                    .collect(),
                maintenance: n
                    .maintenance
                    .as_ref()
                    .map(|m| MaintenanceView {
                        scrubbed_shards: m.scrub_shards,
                        scrubbed_bytes: m.scrub_bytes,
                        corrupt_shards: m.scrub_corrupt,
                        scrub_passes: m.scrub_passes,
                        gc_deleted_shards: m.gc_shards_deleted,
                        gc_deleted_bytes: m.gc_bytes_deleted,
                        gc_passes: m.gc_passes,
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(ClusterView {
        cluster_id: leader.cluster_id.clone(),
        leader_id: raft.node_id,
        leader_address: raft.leader_address.clone(),
        term: raft.term,
        commit_index: raft.applied_index,
        members,
        blob_nodes,
        drains: leader
            .drains
            .iter()
            .map(|d| DrainView {
                node_id: d.node_id.clone(),
                shards: d.shards,
                bytes: d.bytes,
                objects: d.objects,
                queued_items: d.queued_items,
            })
            .collect(),
    })
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Renders rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(cell.len()),
                None => widths.push(cell.len()),
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The human-readable report.
pub fn render(view: &ClusterView) -> String {
    let mut out = format!(
        "cluster {}  leader {} ({})  term {}  commit {}\n\nMETA MEMBERS\n",
        view.cluster_id, view.leader_id, view.leader_address, view.term, view.commit_index
    );
    let rows: Vec<Vec<String>> = view
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.address.clone(),
                m.role.clone(),
                if m.voter { "voter" } else { "learner" }.to_string(),
                opt(m.term),
                opt(m.last_log_index),
                opt(m.applied_index),
                opt(m.matched_index),
                opt(m.snapshot_index),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ID", "ADDRESS", "ROLE", "KIND", "TERM", "LAST LOG", "APPLIED", "MATCHED", "SNAPSHOT",
        ],
        &rows,
    ));
    out.push_str("\n\nBLOB NODES\n");
    let rows: Vec<Vec<String>> = view
        .blob_nodes
        .iter()
        .flat_map(|n| {
            n.disks.iter().map(move |d| {
                vec![
                    n.node_id.clone(),
                    n.address.clone(),
                    n.state.clone(),
                    n.mode.clone(),
                    format!("{:.1}s ago", n.last_heartbeat_ms_ago as f64 / 1000.0),
                    d.disk_id.clone(),
                    d.state.clone(),
                    bytes(d.free_bytes),
                    bytes(d.capacity_bytes),
                    d.path.clone(),
                ]
            })
        })
        .collect();
    out.push_str(&table(
        &[
            "NODE",
            "ADDRESS",
            "STATE",
            "MODE",
            "HEARTBEAT",
            "DISK",
            "DISK STATE",
            "FREE",
            "CAPACITY",
            "PATH",
        ],
        &rows,
    ));
    if !view.drains.is_empty() {
        out.push_str(
            "\n\nDRAINING (what each node still holds; 0 shards = drained, may be removed)\n",
        );
        out.push_str(&drain_table(&view.drains));
    }
    out.push_str("\n\nMAINTENANCE (since each blob server started)\n");
    let rows: Vec<Vec<String>> = view
        .blob_nodes
        .iter()
        .map(|n| {
            let m = &n.maintenance;
            vec![
                n.node_id.clone(),
                format!("{} / {}", m.scrubbed_shards, bytes(m.scrubbed_bytes)),
                m.corrupt_shards.to_string(),
                m.scrub_passes.to_string(),
                format!("{} / {}", m.gc_deleted_shards, bytes(m.gc_deleted_bytes)),
                m.gc_passes.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NODE",
            "SCRUBBED",
            "CORRUPT",
            "SCRUB PASSES",
            "GC DELETED",
            "GC WALKS",
        ],
        &rows,
    ));
    out.push('\n');
    out
}

/// The DRAINING table.
fn drain_table(drains: &[DrainView]) -> String {
    let rows: Vec<Vec<String>> = drains
        .iter()
        .map(|d| {
            vec![
                d.node_id.clone(),
                d.shards.to_string(),
                bytes(d.bytes),
                d.objects.to_string(),
                d.queued_items.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "SHARDS LEFT",
            "BYTES LEFT",
            "OBJECTS",
            "HEAL QUEUED",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_humanized() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn drains_render_as_a_table() {
        let t = drain_table(&[DrainView {
            node_id: "n1".into(),
            shards: 12,
            bytes: 3 << 20,
            objects: 4,
            queued_items: 2,
        }]);
        assert_eq!(
            t,
            "NODE  SHARDS LEFT  BYTES LEFT  OBJECTS  HEAL QUEUED\nn1    12           3.0 MiB     4        2"
        );
    }

    #[test]
    fn table_columns_align() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1");
        // A row wider than the header still renders.
        let t = table(&["A"], &[vec!["x".into(), "y".into()]]);
        assert_eq!(t, "A\nx  y");
    }
}
