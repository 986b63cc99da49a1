//! The blob-node part of the `Admin` service: drain, undrain, remove, and the drain progress
//! that `Status` reports.
//!
//! A drain is only a state in the registry; the work is done by machinery that exists anyway:
//! placement stops choosing the node (`placement::is_draining`), the leader's heal trigger
//! queues every version with a shard there (`HEAL_REASON_DRAIN`), and the gateways' healers
//! move those shards, each move recorded with the same conditional `ReplaceShards` entry as a
//! repair. Removal is allowed once the metadata places nothing on the node any more
//! ([`crate::drain::holdings`]), so removing a drained node can lose no data.

use std::collections::BTreeSet;

use cairn_proto::admin::{
    DrainBlobNodeRequest, DrainBlobNodeResponse, DrainProgress, RemoveBlobNodeRequest,
    RemoveBlobNodeResponse, UndrainBlobNodeRequest,
};
use cairn_proto::meta::{BlobNode, HealReason, MetaError};
use tonic::Status;

use super::{internal, AdminService};
use crate::service::group_status;
use crate::store::MetaReader;
use crate::types::{Command, Response as Applied};

/// Maps the state machine's answer to a blob-node command.
fn outcome(applied: Applied, node_id: &str) -> Result<(), Status> {
    match applied {
        Applied::Done => Ok(()),
        Applied::Error { code } if code == MetaError::NoSuchBlobNode as i32 => {
            Err(Status::not_found(format!("no blob node {node_id:?}")))
        }
        Applied::Error { code } if code == MetaError::BlobNodeNotDraining as i32 => {
            Err(not_draining(node_id))
        }
        other => Err(internal(format!("unexpected reply {other:?}"))),
    }
}

fn not_draining(node_id: &str) -> Status {
    Status::failed_precondition(format!(
        "blob node {node_id} is not draining: drain it first (cairn admin blob drain {node_id}), or remove it with --force"
    ))
}

/// The drain progress of every draining node in `nodes`, as `reader` sees it.
pub(super) fn drain_progress(
    reader: &MetaReader,
    nodes: &[BlobNode],
) -> Result<Vec<DrainProgress>, Status> {
    let draining: BTreeSet<String> = nodes
        .iter()
        .filter(|n| crate::placement::is_draining(n))
        .map(|n| n.node_id.clone())
        .collect();
    if draining.is_empty() {
        return Ok(Vec::new());
    }
    let queued = reader
        .heal_items()
        .map_err(internal)?
        .iter()
        .filter(|i| i.reason == HealReason::Drain as i32)
        .count() as u64;
    let held = crate::drain::holdings(reader, &draining).map_err(internal)?;
    Ok(held
        .into_values()
        .map(|p| DrainProgress {
            queued_items: queued,
            ..p
        })
        .collect())
}

impl AdminService {
    /// `DrainBlobNode` / `UndrainBlobNode`.
    pub(super) async fn set_draining(&self, node_id: String, draining: bool) -> Result<(), Status> {
        if node_id.is_empty() {
            return Err(Status::invalid_argument("a blob node id is required"));
        }
        let applied = self
            .group()?
            .write(Command::SetBlobNodeDraining {
                node_id: node_id.clone(),
                draining,
            })
            .await
            .map_err(group_status)?;
        outcome(applied, &node_id)?;
        if draining {
            tracing::info!(%node_id, "blob node draining: no new shards; its shards will be moved");
        } else {
            tracing::info!(%node_id, "blob node active again");
        }
        Ok(())
    }

    /// `DrainBlobNode`; answers how many disks are left to take the node's shards.
    pub(super) async fn drain(
        &self,
        request: DrainBlobNodeRequest,
    ) -> Result<DrainBlobNodeResponse, Status> {
        let node_id = request.node_id;
        self.set_draining(node_id.clone(), true).await?;
        let reader = self
            .group()?
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let live = crate::placement::live_nodes(
            reader.blob_nodes().map_err(internal)?,
            super::now_ms(),
            self.ctx.blob_down_after.as_millis() as i64,
        );
        let left = crate::placement::usable_disk_count(&live);
        tracing::info!(%node_id, usable_disks_left = left, "disks left to take the drained shards");
        Ok(DrainBlobNodeResponse {
            usable_disks_left: u32::try_from(left).unwrap_or(u32::MAX),
        })
    }

    /// `UndrainBlobNode`.
    pub(super) async fn undrain(&self, request: UndrainBlobNodeRequest) -> Result<(), Status> {
        self.set_draining(request.node_id, false).await
    }

    /// `RemoveBlobNode`: refused while the node is not draining or the metadata still places a
    /// shard on it, unless forced.
    ///
    /// The holdings are counted on a linearizable read just before the removal is proposed. A
    /// shard could still be committed on the node in between only by a PUT or heal planned
    /// before the drain began (placement skips draining nodes); such a shard then names a
    /// node the registry no longer knows, which the heal trigger treats as lost and the
    /// healers rebuild from the object's other shards. The removal itself checks in the state
    /// machine that the node is still registered and draining.
    pub(super) async fn remove(
        &self,
        request: RemoveBlobNodeRequest,
    ) -> Result<RemoveBlobNodeResponse, Status> {
        let RemoveBlobNodeRequest { node_id, force } = request;
        let group = self.group()?;
        let reader = group.linearizable_reader().await.map_err(group_status)?;
        let nodes = reader.blob_nodes().map_err(internal)?;
        let Some(node) = nodes.iter().find(|n| n.node_id == node_id) else {
            return Err(Status::not_found(format!("no blob node {node_id:?}")));
        };
        if !force && !crate::placement::is_draining(node) {
            return Err(not_draining(&node_id));
        }
        let wanted: BTreeSet<String> = [node_id.clone()].into();
        let held = crate::drain::holdings(reader, &wanted)
            .map_err(internal)?
            .remove(&node_id)
            .unwrap_or_default();
        if held.shards > 0 && !force {
            return Err(Status::failed_precondition(format!(
                "blob node {node_id} still holds {} shards ({} bytes) of {} objects; wait for the drain to finish (cairn admin status) or remove it with --force",
                held.shards, held.bytes, held.objects
            )));
        }
        let applied = group
            .write(Command::RemoveBlobNode {
                node_id: node_id.clone(),
                force,
            })
            .await
            .map_err(group_status)?;
        outcome(applied, &node_id)?;
        if held.shards > 0 {
            tracing::warn!(%node_id, shards = held.shards, "blob node removed by force; its shards will be rebuilt from the others");
        } else {
            tracing::info!(%node_id, "blob node removed");
        }
        Ok(RemoveBlobNodeResponse {
            remaining_shards: held.shards,
        })
    }
}
