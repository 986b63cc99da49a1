//! `cairn admin blob drain|undrain|remove`: decommissioning blob nodes.
//!
//! Draining is followed with `cairn admin status` (the DRAINING table, `drains` in `--json`);
//! a node can be removed once it holds no shard any more.

use cairn_proto::admin::{
    DrainBlobNodeRequest, RemoveBlobNodeRequest, RemoveBlobNodeResponse, UndrainBlobNodeRequest,
};

use super::client::Admin;

/// Starts draining `node_id`; returns how many disks are left to take its shards.
pub async fn drain(admin: &Admin, node_id: &str) -> anyhow::Result<u32> {
    let request = DrainBlobNodeRequest {
        node_id: node_id.to_string(),
    };
    let reply = admin
        .on_leader("DrainBlobNode", request, |mut c, r| async move {
            c.drain_blob_node(r).await
        })
        .await?;
    Ok(reply.usable_disks_left)
}

/// Makes `node_id` active again.
pub async fn undrain(admin: &Admin, node_id: &str) -> anyhow::Result<()> {
    let request = UndrainBlobNodeRequest {
        node_id: node_id.to_string(),
    };
    admin
        .on_leader("UndrainBlobNode", request, |mut c, r| async move {
            c.undrain_blob_node(r).await
        })
        .await?;
    Ok(())
}

/// Removes `node_id` from the cluster (refused by the leader unless drained, or `force`).
pub async fn remove(
    admin: &Admin,
    node_id: &str,
    force: bool,
) -> anyhow::Result<RemoveBlobNodeResponse> {
    let request = RemoveBlobNodeRequest {
        node_id: node_id.to_string(),
        force,
    };
    admin
        .on_leader("RemoveBlobNode", request, |mut c, r| async move {
            c.remove_blob_node(r).await
        })
        .await
}
