//! The healing and garbage-collection part of the `Meta` service. The decisions live in the
//! state machine (`crate::apply::heal`, `crate::apply::gc`); this module resolves what a
//! caller names (an object, or a shard file) and proposes the entries.

use cairn_proto::meta::*;
use prost::Message;
use tonic::Status;

use super::{decode, group_status, store_status, unexpected, MetaService};
use crate::apply::heal::item_for;
use crate::placement;
use crate::store::MetaReader;
use crate::types::{Command, Response as Applied};

/// Most heal items one claim hands out.
const MAX_CLAIM: u32 = 64;

impl MetaService {
    pub(super) async fn queue_damage(
        &self,
        request: ReportDamageRequest,
    ) -> Result<ReportDamageResponse, Status> {
        let reason = HealReason::try_from(request.reason).unwrap_or(HealReason::Read);
        let group = self.groups()?.system_group();
        let reader = group.linearizable_reader().await.map_err(group_status)?;
        let version = if request.shard_key.is_empty() {
            self.find_version(reader, &request.bucket, &request.key, &request.version_id)?
        } else {
            reader
                .shard_owner(&request.shard_key, &request.node_id, &request.disk_id)
                .map_err(store_status)?
        };
        let Some(version) = version else {
            return Ok(ReportDamageResponse { queued: false });
        };
        tracing::info!(
            bucket = %version.bucket, key = %version.key, version = %version.version_id,
            ?reason, shard = %request.shard_key, "damage reported; queued for healing"
        );
        let item = item_for(&version, reason);
        group
            .write(Command::QueueHeal {
                items: vec![item.encode_to_vec()],
            })
            .await
            .map_err(group_status)?;
        Ok(ReportDamageResponse { queued: true })
    }

    /// A version by id (empty: the current one), if it exists and has data (a delete marker
    /// has nothing to heal).
    fn find_version(
        &self,
        reader: &MetaReader,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<ObjectVersion>, Status> {
        let Some(bucket) = reader.bucket(bucket).map_err(store_status)? else {
            return Ok(None);
        };
        let found = if version_id.is_empty() {
            reader.object(bucket.id, key).map_err(store_status)?
        } else {
            reader
                .object_version(bucket.id, key, version_id)
                .map_err(store_status)?
        };
        Ok(found.filter(|v| !v.delete_marker))
    }

    pub(super) async fn lease_heal_items(
        &self,
        request: ClaimHealRequest,
    ) -> Result<ClaimHealResponse, Status> {
        let group = self.groups()?.system_group();
        // Healers poll; an idle poll must not grow the Raft log, so look before writing.
        let reader = group.linearizable_reader().await.map_err(group_status)?;
        let now = crate::group::now_ms();
        if !reader.heal_item_free(now).map_err(store_status)? {
            return Ok(ClaimHealResponse { items: Vec::new() });
        }
        let applied = group
            .write(Command::ClaimHeal {
                max: request.max.clamp(1, MAX_CLAIM),
                lease_ms: request.lease_ms,
            })
            .await
            .map_err(group_status)?;
        match applied {
            Applied::HealItems { items } => Ok(ClaimHealResponse {
                items: items
                    .iter()
                    .map(|raw| decode(raw))
                    .collect::<Result<_, _>>()?,
            }),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn plan_rebuilt_shards(
        &self,
        request: PlanHealRequest,
    ) -> Result<PlanHealResponse, Status> {
        let refused = |error: MetaError| PlanHealResponse {
            error: error as i32,
            shards: Vec::new(),
        };
        let reader = self
            .groups()?
            .system_group()
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let Some(version) =
            self.find_version(reader, &request.bucket, &request.key, &request.version_id)?
        else {
            return Ok(refused(MetaError::NoSuchKey));
        };
        let (scheme, size, shards) = if request.part_number == 0 {
            (version.scheme, version.size, version.shards)
        } else {
            match version
                .parts
                .into_iter()
                .find(|p| p.part_number == request.part_number)
            {
                Some(part) => (part.scheme, part.size, part.shards),
                None => return Ok(refused(MetaError::NoSuchKey)),
            }
        };
        let Some(scheme) = scheme else {
            return Ok(refused(MetaError::InvalidArgument));
        };
        let keep: Vec<ShardPlacement> = shards
            .iter()
            .filter(|s| !request.indices.contains(&s.index))
            .cloned()
            .collect();
        let by_index = |index: u32| shards.iter().find(|s| s.index == index);
        if request.indices.iter().any(|&i| by_index(i).is_none()) {
            return Ok(refused(MetaError::InvalidArgument));
        }
        let nodes = placement::live_nodes(
            reader.blob_nodes().map_err(store_status)?,
            crate::group::now_ms(),
            self.blob_down_after.as_millis() as i64,
        );
        let k = u64::from(scheme.data_shards.max(1));
        let shard_size = size.div_ceil(k);
        let nonce = super::new_upload_id();
        // A rebuilt shard keeps its attempt id (the part before the first dot), so garbage
        // collection traces it to the same object; the nonce makes its name new.
        let name = |index: u32| {
            let old = by_index(index).map_or("", |s| s.shard_key.as_str());
            let attempt = old.split('.').next().unwrap_or_default();
            format!("{attempt}.{index}.{}", &nonce[..16])
        };
        match placement::place_replacements(&nodes, &keep, &request.indices, shard_size, name) {
            Ok(shards) => Ok(PlanHealResponse {
                error: MetaError::None as i32,
                shards,
            }),
            Err(e) => {
                tracing::warn!(error = %e, bucket = %request.bucket, key = %request.key,
                    "no disks for rebuilt shards");
                Ok(refused(MetaError::InsufficientCapacity))
            }
        }
    }

    pub(super) async fn record_rebuilt_shards(
        &self,
        request: ReplaceShardsRequest,
    ) -> Result<ReplaceShardsResponse, Status> {
        let mut replacements = Vec::with_capacity(request.replacements.len());
        for r in request.replacements {
            let shard = r
                .shard
                .ok_or_else(|| Status::invalid_argument("replacement without a shard"))?;
            replacements.push((r.old_shard_key, shard.encode_to_vec()));
        }
        let applied = self
            .groups()?
            .system_group()
            .write(Command::ReplaceShards {
                bucket: request.bucket,
                key: request.key,
                version_id: request.version_id,
                part_number: request.part_number,
                replacements,
            })
            .await
            .map_err(group_status)?;
        match applied {
            Applied::Replaced { applied } => Ok(ReplaceShardsResponse {
                error: MetaError::None as i32,
                applied,
            }),
            Applied::Error { code } => Ok(ReplaceShardsResponse {
                error: code,
                applied: false,
            }),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn end_heal_item(
        &self,
        request: FinishHealRequest,
    ) -> Result<FinishHealResponse, Status> {
        self.groups()?
            .system_group()
            .write(Command::FinishHeal {
                bucket: request.bucket,
                key: request.key,
                version_id: request.version_id,
                healed: request.healed,
                bytes_rebuilt: request.bytes_rebuilt,
                shards_rebuilt: request.shards_rebuilt,
                retry_in_ms: request.retry_in_ms,
            })
            .await
            .map_err(group_status)?;
        Ok(FinishHealResponse {})
    }

    pub(super) async fn find_garbage(
        &self,
        request: CollectGarbageRequest,
    ) -> Result<CollectGarbageResponse, Status> {
        let applied = self
            .groups()?
            .system_group()
            .write(Command::CollectGarbage {
                node_id: request.node_id,
                disk_id: request.disk_id,
                shard_keys: request.shard_keys,
            })
            .await
            .map_err(group_status)?;
        match applied {
            Applied::Garbage { shard_keys } => Ok(CollectGarbageResponse {
                garbage: shard_keys,
            }),
            other => Err(unexpected(&other)),
        }
    }
}
