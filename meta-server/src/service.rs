//! The `Meta` gRPC service: buckets, objects, placement and the blob-node registry.
//!
//! Writes go through Raft ([`Group::write`]); reads first make themselves linearizable
//! ([`Group::linearizable_reader`]). Domain errors are answered in-band (`MetaError`); gRPC
//! UNAVAILABLE means "no leader here, retry" and carries the leader's address in the
//! `cairn-leader` metadata when it is known.

mod heal;
mod multipart;

use cairn_proto::meta::meta_server::Meta;
use cairn_proto::meta::*;
use prost::Message;
use tonic::{Request, Response, Status};

use crate::apply::refresh_addresses;
use crate::group::{GroupError, GroupMap};
use crate::joined::JoinState;
use crate::placement;
use crate::store::{MetaReader, StoreError};
use crate::types::{
    Command, ObjectLockConfig, Response as Applied, RetentionChange, WriteCondition,
};

/// Serves `Meta` over the groups of this process.
pub struct MetaService {
    joined: JoinState,
    blob_down_after: std::time::Duration,
}

impl MetaService {
    /// A service over the groups of this process (once it has joined a cluster) that
    /// considers a blob node down once it has not registered for `blob_down_after`.
    pub fn new(joined: JoinState, blob_down_after: std::time::Duration) -> Self {
        Self {
            joined,
            blob_down_after,
        }
    }

    /// The groups of this process; UNAVAILABLE until it belongs to a cluster.
    fn groups(&self) -> Result<&GroupMap, Status> {
        self.joined
            .get()
            .map(|j| &j.groups)
            .ok_or_else(|| Status::unavailable("this meta node has not joined a cluster yet"))
    }

    /// A linearizable reader of the group that holds `bucket`, and the bucket's record
    /// (`None` when it does not exist).
    async fn bucket_view(&self, bucket: &str) -> Result<(&MetaReader, Option<Bucket>), Status> {
        let reader = self
            .groups()?
            .for_bucket(bucket)
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let record = reader.bucket(bucket).map_err(store_status)?;
        Ok((reader, record))
    }
}

pub(crate) fn group_status(e: GroupError) -> Status {
    match e {
        GroupError::NoLeader => Status::unavailable("no meta leader; retry"),
        GroupError::NotLeader(addr) => {
            let mut status = Status::unavailable(format!("not the meta leader; leader is {addr}"));
            if let Ok(value) = addr.parse() {
                status.metadata_mut().insert("cairn-leader", value);
            }
            status
        }
        GroupError::Raft(msg) => Status::unavailable(format!("meta raft: {msg}")),
        // ABORTED: the gateway neither retries it nor treats it as a refusal (503).
        GroupError::OutcomeUnknown(msg) => {
            Status::aborted(format!("meta write outcome unknown: {msg}"))
        }
    }
}

fn store_status(e: StoreError) -> Status {
    tracing::error!(error = %e, "meta store failure");
    Status::internal(format!("meta store: {e}"))
}

fn decode<M: Message + Default>(raw: &[u8]) -> Result<M, Status> {
    M::decode(raw).map_err(|e| Status::internal(format!("bad state machine reply: {e}")))
}

fn unexpected(applied: &Applied) -> Status {
    Status::internal(format!("unexpected state machine reply {applied:?}"))
}

fn meta_error(code: i32) -> MetaError {
    MetaError::try_from(code).unwrap_or(MetaError::InvalidArgument)
}

/// Random 128-bit upload id (hex): names the shards of one PUT attempt.
fn new_upload_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl Meta for MetaService {
    async fn create_bucket(
        &self,
        request: Request<CreateBucketRequest>,
    ) -> Result<Response<CreateBucketResponse>, Status> {
        let CreateBucketRequest { name, object_lock } = request.into_inner();
        let applied = self
            .groups()?
            .system_group()
            .write(Command::CreateBucket { name, object_lock })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::Bucket { bucket } => CreateBucketResponse {
                error: MetaError::None as i32,
                bucket: Some(decode(&bucket)?),
            },
            Applied::Error { code } => CreateBucketResponse {
                error: meta_error(code) as i32,
                bucket: None,
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn delete_bucket(
        &self,
        request: Request<DeleteBucketRequest>,
    ) -> Result<Response<DeleteBucketResponse>, Status> {
        let name = request.into_inner().name;
        let applied = self
            .groups()?
            .system_group()
            .write(Command::DeleteBucket { name })
            .await
            .map_err(group_status)?;
        let (error, aborted_parts) = match applied {
            Applied::Done => (MetaError::None, Vec::new()),
            Applied::Aborted { parts } => (MetaError::None, multipart::decode_parts(&parts)?),
            Applied::Error { code } => (meta_error(code), Vec::new()),
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(DeleteBucketResponse {
            error: error as i32,
            aborted_parts,
        }))
    }

    async fn get_bucket(
        &self,
        request: Request<GetBucketRequest>,
    ) -> Result<Response<GetBucketResponse>, Status> {
        let name = request.into_inner().name;
        let reader = self
            .groups()?
            .system_group()
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let bucket = reader.bucket(&name).map_err(store_status)?;
        let error = if bucket.is_some() {
            MetaError::None
        } else {
            MetaError::NoSuchBucket
        };
        Ok(Response::new(GetBucketResponse {
            error: error as i32,
            bucket,
        }))
    }

    async fn list_buckets(
        &self,
        _request: Request<ListBucketsRequest>,
    ) -> Result<Response<ListBucketsResponse>, Status> {
        let reader = self
            .groups()?
            .system_group()
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let buckets = reader.buckets().map_err(store_status)?;
        Ok(Response::new(ListBucketsResponse { buckets }))
    }

    async fn plan_put(
        &self,
        request: Request<PlanPutRequest>,
    ) -> Result<Response<PlanPutResponse>, Status> {
        let request = request.into_inner();
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(Response::new(PlanPutResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            }));
        };
        let mut checksum_algorithm = String::new();
        if !request.multipart_upload_id.is_empty() {
            let upload = reader
                .upload(bucket.id, &request.key, &request.multipart_upload_id)
                .map_err(store_status)?;
            let Some(upload) = upload else {
                return Ok(Response::new(PlanPutResponse {
                    error: MetaError::NoSuchUpload as i32,
                    ..Default::default()
                }));
            };
            checksum_algorithm = upload.checksum_algorithm;
        }
        let nodes = placement::live_nodes(
            reader.blob_nodes().map_err(store_status)?,
            crate::group::now_ms(),
            self.blob_down_after.as_millis() as i64,
        );
        let upload_id = new_upload_id();
        let reply = match placement::place(&nodes, bucket.scheme, request.size_hint, &upload_id) {
            Ok((scheme, shards)) => PlanPutResponse {
                error: MetaError::None as i32,
                scheme: Some(scheme),
                shards,
                upload_id,
                bucket_versioning: bucket.versioning,
                checksum_algorithm,
            },
            Err(e) => {
                tracing::warn!(error = %e, bucket = %request.bucket, "cannot place object");
                PlanPutResponse {
                    error: MetaError::InsufficientCapacity as i32,
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(reply))
    }

    async fn commit_object(
        &self,
        request: Request<CommitObjectRequest>,
    ) -> Result<Response<CommitObjectResponse>, Status> {
        let request = request.into_inner();
        let Some(object) = request.object else {
            return Err(Status::invalid_argument("object missing"));
        };
        let group = self.groups()?.for_bucket(&object.bucket);
        let applied = group
            .write(Command::CommitObject {
                object: object.encode_to_vec(),
                condition: WriteCondition::from_proto(request.condition),
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::Committed {
                object,
                replaced,
                expiry,
            } => CommitObjectResponse {
                error: MetaError::None as i32,
                object: Some(decode(&object)?),
                replaced: replaced.map(|r| decode(&r)).transpose()?,
                expiry: expiry.map(|e| decode(&e)).transpose()?,
            },
            Applied::Error { code } => CommitObjectResponse {
                error: meta_error(code) as i32,
                ..Default::default()
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> Result<Response<GetObjectResponse>, Status> {
        let request = request.into_inner();
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(Response::new(GetObjectResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            }));
        };
        let by_id = !request.version_id.is_empty();
        if by_id && !crate::apply::versions::is_version_id(&request.version_id) {
            return Ok(Response::new(GetObjectResponse {
                error: MetaError::InvalidArgument as i32,
                ..Default::default()
            }));
        }
        let mut object = if by_id {
            reader.s3_version(bucket.id, &request.key, &request.version_id)
        } else {
            reader.object(bucket.id, &request.key)
        }
        .map_err(store_status)?;
        if let Some(object) = object.as_mut() {
            refresh_addresses(object, &reader.blob_nodes().map_err(store_status)?);
        }
        let error = match (&object, by_id) {
            (Some(_), _) => MetaError::None,
            (None, false) => MetaError::NoSuchKey,
            (None, true) => MetaError::NoSuchVersion,
        };
        let expiry = object
            .as_ref()
            .filter(|_| !by_id)
            .and_then(|o| crate::apply::lifecycle::expiry_of(&bucket, o));
        Ok(Response::new(GetObjectResponse {
            error: error as i32,
            object,
            bucket_versioning: bucket.versioning,
            expiry,
            bucket_object_lock: bucket.object_lock_enabled,
        }))
    }

    async fn delete_object(
        &self,
        request: Request<DeleteObjectRequest>,
    ) -> Result<Response<DeleteObjectResponse>, Status> {
        let request = request.into_inner();
        let group = self.groups()?.for_bucket(&request.bucket);
        let applied = group
            .write(Command::DeleteObject {
                bucket: request.bucket,
                key: request.key,
                condition: WriteCondition::from_proto(request.condition),
                version_id: (!request.version_id.is_empty()).then_some(request.version_id),
                bypass_governance: request.bypass_governance,
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::Deleted { deleted, marker } => DeleteObjectResponse {
                error: MetaError::None as i32,
                deleted: deleted.map(|d| decode(&d)).transpose()?,
                delete_marker: marker.map(|m| decode(&m)).transpose()?,
            },
            Applied::Error { code } => DeleteObjectResponse {
                error: meta_error(code) as i32,
                ..Default::default()
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn set_object_tags(
        &self,
        request: Request<SetObjectTagsRequest>,
    ) -> Result<Response<SetObjectTagsResponse>, Status> {
        let request = request.into_inner();
        let group = self.groups()?.for_bucket(&request.bucket);
        let applied = group
            .write(Command::SetObjectTags {
                bucket: request.bucket,
                key: request.key,
                version_id: request.version_id,
                tags: request.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::TagsSet { version_id } => SetObjectTagsResponse {
                error: MetaError::None as i32,
                version_id,
            },
            Applied::Error { code } => SetObjectTagsResponse {
                error: meta_error(code) as i32,
                version_id: String::new(),
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn set_object_lock(
        &self,
        request: Request<SetObjectLockRequest>,
    ) -> Result<Response<SetObjectLockResponse>, Status> {
        let request = request.into_inner();
        let group = self.groups()?.for_bucket(&request.bucket);
        let retention = request.set_retention.then_some(RetentionChange {
            mode: request.mode,
            retain_until_ms: request.retain_until_ms,
            bypass_governance: request.bypass_governance,
        });
        let applied = group
            .write(Command::SetObjectLock {
                bucket: request.bucket,
                key: request.key,
                version_id: request.version_id,
                retention,
                legal_hold: request.set_legal_hold.then_some(request.legal_hold),
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::LockSet { version_id } => SetObjectLockResponse {
                error: MetaError::None as i32,
                version_id,
            },
            Applied::Error { code } => SetObjectLockResponse {
                error: meta_error(code) as i32,
                version_id: String::new(),
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn set_bucket_config(
        &self,
        request: Request<SetBucketConfigRequest>,
    ) -> Result<Response<SetBucketConfigResponse>, Status> {
        let request = request.into_inner();
        let tags = request.set_tags.then(|| {
            request
                .tags
                .into_iter()
                .map(|t| (t.key, t.value))
                .collect::<Vec<_>>()
        });
        let cors = request
            .set_cors
            .then(|| request.cors.unwrap_or_default().encode_to_vec());
        let applied = self
            .groups()?
            .for_bucket(&request.bucket)
            .write(Command::SetBucketConfig {
                name: request.bucket,
                tags,
                cors,
                policy: request.set_policy.then_some(request.policy),
                object_lock: request.set_object_lock.then(|| ObjectLockConfig {
                    default_rule: request.object_lock_default.map(|r| r.encode_to_vec()),
                }),
                lifecycle: request
                    .set_lifecycle
                    .then(|| request.lifecycle.unwrap_or_default().encode_to_vec()),
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::Bucket { bucket } => SetBucketConfigResponse {
                error: MetaError::None as i32,
                bucket: Some(decode(&bucket)?),
            },
            Applied::Error { code } => SetBucketConfigResponse {
                error: meta_error(code) as i32,
                bucket: None,
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsResponse>, Status> {
        let request = request.into_inner();
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(Response::new(ListObjectsResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            }));
        };
        let page = reader
            .list(
                bucket.id,
                &request.prefix,
                &request.delimiter,
                &request.start_after,
                request.max_keys as usize,
            )
            .map_err(store_status)?;
        Ok(Response::new(ListObjectsResponse {
            error: MetaError::None as i32,
            objects: page.objects,
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_start_after: page.next_start_after,
        }))
    }

    async fn list_object_versions(
        &self,
        request: Request<ListObjectVersionsRequest>,
    ) -> Result<Response<ListObjectVersionsResponse>, Status> {
        let request = request.into_inner();
        let (reader, bucket) = self.bucket_view(&request.bucket).await?;
        let Some(bucket) = bucket else {
            return Ok(Response::new(ListObjectVersionsResponse {
                error: MetaError::NoSuchBucket as i32,
                ..Default::default()
            }));
        };
        if !request.version_id_marker.is_empty()
            && !crate::apply::versions::is_version_id(&request.version_id_marker)
        {
            return Ok(Response::new(ListObjectVersionsResponse {
                error: MetaError::InvalidArgument as i32,
                ..Default::default()
            }));
        }
        let page = reader
            .list_versions(
                bucket.id,
                crate::store::VersionsQuery {
                    prefix: &request.prefix,
                    delimiter: &request.delimiter,
                    key_marker: &request.key_marker,
                    version_id_marker: &request.version_id_marker,
                    max_keys: request.max_keys as usize,
                },
            )
            .map_err(store_status)?;
        Ok(Response::new(ListObjectVersionsResponse {
            error: MetaError::None as i32,
            versions: page.versions,
            common_prefixes: page.common_prefixes,
            is_truncated: page.is_truncated,
            next_key_marker: page.next_key_marker,
            next_version_id_marker: page.next_version_id_marker,
        }))
    }

    async fn set_bucket_versioning(
        &self,
        request: Request<SetBucketVersioningRequest>,
    ) -> Result<Response<SetBucketVersioningResponse>, Status> {
        let request = request.into_inner();
        let applied = self
            .groups()?
            .system_group()
            .write(Command::SetBucketVersioning {
                name: request.name,
                status: request.status,
            })
            .await
            .map_err(group_status)?;
        let reply = match applied {
            Applied::Bucket { bucket } => SetBucketVersioningResponse {
                error: MetaError::None as i32,
                bucket: Some(decode(&bucket)?),
            },
            Applied::Error { code } => SetBucketVersioningResponse {
                error: meta_error(code) as i32,
                bucket: None,
            },
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(reply))
    }

    async fn register_blob_node(
        &self,
        request: Request<RegisterBlobNodeRequest>,
    ) -> Result<Response<RegisterBlobNodeResponse>, Status> {
        let request = request.into_inner();
        if request.node_id.is_empty() || request.address.is_empty() {
            return Err(Status::invalid_argument("node_id and address are required"));
        }
        let node = BlobNode {
            node_id: request.node_id,
            address: request.address,
            disks: request.disks,
            registered_ms: 0,
            zone: request.zone,
            maintenance: request.maintenance,
            // The state machine keeps the operator's state of a known node.
            state: 0,
        };
        let applied = self
            .groups()?
            .system_group()
            .write(Command::RegisterBlobNode {
                node: node.encode_to_vec(),
            })
            .await
            .map_err(group_status)?;
        match applied {
            Applied::Done => Ok(Response::new(RegisterBlobNodeResponse {})),
            Applied::Error { code } if code == MetaError::BlobNodeRemoved as i32 => {
                Err(Status::failed_precondition(
                    "this blob node was removed from the cluster (cairn admin blob remove); \
                     it gets no work",
                ))
            }
            Applied::Error { code } => Err(Status::invalid_argument(format!(
                "registration refused: {:?}",
                meta_error(code)
            ))),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_blob_nodes(
        &self,
        _request: Request<ListBlobNodesRequest>,
    ) -> Result<Response<ListBlobNodesResponse>, Status> {
        let reader = self
            .groups()?
            .system_group()
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let nodes = reader.blob_nodes().map_err(store_status)?;
        Ok(Response::new(ListBlobNodesResponse { nodes }))
    }

    async fn create_multipart_upload(
        &self,
        request: Request<CreateMultipartUploadRequest>,
    ) -> Result<Response<CreateMultipartUploadResponse>, Status> {
        self.create_upload(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn commit_part(
        &self,
        request: Request<CommitPartRequest>,
    ) -> Result<Response<CommitPartResponse>, Status> {
        self.commit_upload_part(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        request: Request<CompleteMultipartUploadRequest>,
    ) -> Result<Response<CompleteMultipartUploadResponse>, Status> {
        self.complete_upload(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        request: Request<AbortMultipartUploadRequest>,
    ) -> Result<Response<AbortMultipartUploadResponse>, Status> {
        self.abort_upload(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_parts(
        &self,
        request: Request<ListPartsRequest>,
    ) -> Result<Response<ListPartsResponse>, Status> {
        self.list_upload_parts(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        request: Request<ListMultipartUploadsRequest>,
    ) -> Result<Response<ListMultipartUploadsResponse>, Status> {
        self.list_uploads(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn report_damage(
        &self,
        request: Request<ReportDamageRequest>,
    ) -> Result<Response<ReportDamageResponse>, Status> {
        Ok(Response::new(
            self.queue_damage(request.into_inner()).await?,
        ))
    }

    async fn claim_heal(
        &self,
        request: Request<ClaimHealRequest>,
    ) -> Result<Response<ClaimHealResponse>, Status> {
        Ok(Response::new(
            self.lease_heal_items(request.into_inner()).await?,
        ))
    }

    async fn plan_heal(
        &self,
        request: Request<PlanHealRequest>,
    ) -> Result<Response<PlanHealResponse>, Status> {
        Ok(Response::new(
            self.plan_rebuilt_shards(request.into_inner()).await?,
        ))
    }

    async fn replace_shards(
        &self,
        request: Request<ReplaceShardsRequest>,
    ) -> Result<Response<ReplaceShardsResponse>, Status> {
        Ok(Response::new(
            self.record_rebuilt_shards(request.into_inner()).await?,
        ))
    }

    async fn finish_heal(
        &self,
        request: Request<FinishHealRequest>,
    ) -> Result<Response<FinishHealResponse>, Status> {
        Ok(Response::new(
            self.end_heal_item(request.into_inner()).await?,
        ))
    }

    async fn collect_garbage(
        &self,
        request: Request<CollectGarbageRequest>,
    ) -> Result<Response<CollectGarbageResponse>, Status> {
        Ok(Response::new(
            self.find_garbage(request.into_inner()).await?,
        ))
    }
}
