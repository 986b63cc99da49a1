//! `cairn admin locate BUCKET KEY`: where every shard of an object is, and whether it is
//! really there (each blob server is asked with `StatShard`).

use std::time::Duration;

use cairn_proto::admin::{LocateObjectRequest, LocateObjectResponse};
use cairn_proto::blob::blob_client::BlobClient;
use cairn_proto::blob::{DiskState, StatShardRequest};
use cairn_proto::cluster_token::ClusterToken;
use cairn_proto::meta::ShardPlacement;
use serde::Serialize;

use super::client::{endpoint_uri, Admin};

/// One shard of the object.
#[derive(Serialize)]
pub struct ShardView {
    /// Multipart part number; 0 for an object written by a single PUT.
    pub part: u32,
    pub index: u32,
    /// "data" or "parity".
    pub kind: &'static str,
    pub node_id: String,
    pub address: String,
    pub disk_id: String,
    /// Path of the shard file on its blob server, when the disk is known.
    pub path: Option<String>,
    /// "ok" (the file is there, with the expected length), "missing", "wrong-length",
    /// "not-written" (a degraded write left it out), "node-down", "disk-faulty",
    /// or "unreachable".
    pub state: String,
}

/// The report.
#[derive(Serialize)]
pub struct ObjectView {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub size: u64,
    pub scheme: String,
    pub shards: Vec<ShardView>,
    /// Shards in state "ok", out of k + m.
    pub healthy: usize,
}

async fn stat(
    token: &ClusterToken,
    address: &str,
    disk_id: &str,
    shard_key: &str,
) -> Result<(bool, u64), String> {
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint_uri(address))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut client = BlobClient::with_interceptor(channel, token.clone());
        let reply = client
            .stat_shard(StatShardRequest {
                disk_id: disk_id.to_string(),
                shard_key: shard_key.to_string(),
            })
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        Ok((reply.exists, reply.length))
    };
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// One shard's view: where it is and, asked of its blob server, whether it is there.
async fn shard_view(
    reply: &LocateObjectResponse,
    token: &ClusterToken,
    part: u32,
    k: u64,
    expected: u64,
    s: &ShardPlacement,
) -> ShardView {
    let node = reply.nodes.iter().find(|n| n.node_id == s.node_id);
    let disk = node.and_then(|n| n.disks.iter().find(|d| d.disk_id == s.disk_id));
    let path = disk.map(|d| {
        cairn_blob::shard_path(std::path::Path::new(&d.path), &s.shard_key)
            .display()
            .to_string()
    });
    let down = node.is_none_or(|n| reply.now_ms - n.registered_ms > reply.blob_down_after_ms);
    let state = if !s.written {
        "not-written".to_string()
    } else if down {
        "node-down".to_string()
    } else if disk.is_some_and(|d| d.state == DiskState::Faulty as i32) {
        "disk-faulty".to_string()
    } else {
        match stat(token, &s.node_address, &s.disk_id, &s.shard_key).await {
            Ok((true, len)) if len == expected => "ok".to_string(),
            Ok((true, _)) => "wrong-length".to_string(),
            Ok((false, _)) => "missing".to_string(),
            Err(e) => format!("unreachable: {e}"),
        }
    };
    ShardView {
        part,
        index: s.index,
        kind: if u64::from(s.index) < k {
            "data"
        } else {
            "parity"
        },
        node_id: s.node_id.clone(),
        address: s.node_address.clone(),
        disk_id: s.disk_id.clone(),
        path,
        state,
    }
}

/// Gathers the report.
pub async fn gather(admin: &Admin, bucket: &str, key: &str) -> anyhow::Result<ObjectView> {
    let request = LocateObjectRequest {
        bucket: bucket.to_string(),
        key: key.to_string(),
    };
    let reply: LocateObjectResponse = admin
        .on_leader("LocateObject", request, |mut c, r| async move {
            c.locate_object(r).await
        })
        .await?;
    let token = admin.cluster_token().await?;
    let object = reply
        .object
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the meta service returned no object"))?;
    // A multipart object is a sequence of parts, each coded on its own; a plain one is a
    // single piece (reported as part 0); an inline one has no shards at all.
    let pieces: Vec<(
        u32,
        u64,
        cairn_proto::meta::ErasureScheme,
        &[ShardPlacement],
    )> = if object.inline_data.is_some() {
        Vec::new()
    } else if object.parts.is_empty() {
        vec![(
            0,
            object.size,
            object.scheme.unwrap_or_default(),
            &object.shards,
        )]
    } else {
        object
            .parts
            .iter()
            .map(|p| {
                (
                    p.part_number,
                    p.size,
                    p.scheme.unwrap_or_default(),
                    &p.shards[..],
                )
            })
            .collect()
    };
    let scheme = pieces.first().map(|p| p.2).unwrap_or_default();
    let mut shards = Vec::new();
    for (part, size, piece_scheme, placements) in pieces {
        let k = u64::from(piece_scheme.data_shards);
        let expected = cairn_gateway::erasure::Scheme::new(
            piece_scheme.data_shards,
            piece_scheme.parity_shards,
            piece_scheme.block_size,
        )
        .map(|s| s.shard_len(size))
        .map_err(|e| anyhow::anyhow!("object has an unusable scheme: {e}"))?;
        for s in placements {
            shards.push(shard_view(&reply, &token, part, k, expected, s).await);
        }
    }
    let healthy = shards.iter().filter(|s| s.state == "ok").count();
    Ok(ObjectView {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        version_id: object.version_id.clone(),
        size: object.size,
        scheme: if object.inline_data.is_some() {
            "inline".to_string()
        } else {
            format!("{}+{}", scheme.data_shards, scheme.parity_shards)
        },
        shards,
        healthy,
    })
}

/// The human-readable report.
pub fn render(view: &ObjectView) -> String {
    let mut out = format!(
        "{}/{}  version {}  {} bytes  scheme {}  healthy shards {}/{}\n",
        view.bucket,
        view.key,
        view.version_id,
        view.size,
        view.scheme,
        view.healthy,
        view.shards.len()
    );
    let rows: Vec<Vec<String>> = view
        .shards
        .iter()
        .map(|s| {
            vec![
                s.part.to_string(),
                s.index.to_string(),
                s.kind.to_string(),
                s.node_id.clone(),
                s.address.clone(),
                s.disk_id.clone(),
                s.state.clone(),
                s.path.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&super::status::table(
        &[
            "PART", "SHARD", "KIND", "NODE", "ADDRESS", "DISK", "STATE", "PATH",
        ],
        &rows,
    ));
    out.push('\n');
    out
}
