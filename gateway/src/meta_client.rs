//! Client of the metadata service: the endpoint list, failover on UNAVAILABLE and
//! transport errors, and the mapping of in-band `MetaError`s to [`ApiError`]s.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_proto::call_outcome::failed_before_sending;
use cairn_proto::meta::meta_client::MetaClient as PbClient;
use cairn_proto::meta::{self as pb, MetaError};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tracing::{debug, warn};

use crate::error::{ApiError, ApiResult, GatewayError};

/// Largest gRPC message accepted or sent (a listing of 1000 long keys fits easily).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long one meta call may take before it counts as failed and the next endpoint is
/// tried. Longer than a meta node waits for a leader (3 s), so a follower's "no leader" answer
/// arrives first; short enough that a paused (SIGSTOPped) leader stalls S3 for seconds, not
/// tens of seconds. Retries are safe: commits are idempotent by upload id.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Passes over the whole endpoint list before giving up; a leader election takes a few
/// hundred milliseconds, so the pauses between passes grow to outlast one.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// The metadata service, reached through any of its endpoints.
pub(crate) struct Meta {
    endpoints: Vec<(String, PbClient<Channel>)>,
    /// The endpoint that answered last; calls start there.
    preferred: AtomicUsize,
}

/// What `CommitObject` made visible and what it replaced.
pub(crate) struct Committed {
    pub object: pb::ObjectVersion,
    pub replaced: Option<pb::ObjectVersion>,
    /// When the new version expires under the bucket's lifecycle rules.
    pub expiry: Option<pb::LifecycleExpiry>,
}

impl Meta {
    /// Prepares lazy channels to every endpoint; nothing is dialed until the first call.
    pub fn new(endpoints: &[String]) -> Result<Self, GatewayError> {
        if endpoints.is_empty() {
            return Err(GatewayError::Config("no meta endpoint".into()));
        }
        let mut out = Vec::with_capacity(endpoints.len());
        for raw in endpoints {
            let uri = cairn_proto::endpoint_uri(raw);
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|e| GatewayError::Config(format!("meta endpoint {raw:?}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT)
                .tcp_nodelay(true);
            let client = PbClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            out.push((uri, client));
        }
        Ok(Self {
            endpoints: out,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Runs one RPC, moving to the next endpoint whenever the current one is unreachable or
    /// has no leader. Any other gRPC status is final.
    async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> ApiResult<T>
    where
        F: Fn(PbClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_with(op, Resend::AfterAnyFailure, f).await
    }

    /// [`Meta::call`] for a write whose second application would be visible (a bucket
    /// created or deleted again, a delete applied after later writes): it is sent again only
    /// after failures that prove the first attempt changed nothing. After a timeout or a
    /// connection lost mid-call the outcome is unknown and the call fails with 503 instead
    /// (see [`surely_not_applied`]).
    async fn call_write<T, F, Fut>(&self, op: &'static str, f: F) -> ApiResult<T>
    where
        F: Fn(PbClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_with(op, Resend::OnlyIfNotApplied, f).await
    }

    async fn call_with<T, F, Fut>(&self, op: &'static str, resend: Resend, f: F) -> ApiResult<T>
    where
        F: Fn(PbClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.endpoints.len();
        let mut last: Option<Status> = None;
        for (round, pause) in BACKOFF.iter().enumerate() {
            let start = self.preferred.load(Ordering::Relaxed);
            for step in 0..n {
                let idx = (start + step) % n;
                let (uri, client) = &self.endpoints[idx];
                match f(client.clone()).await {
                    Ok(resp) => {
                        self.preferred.store(idx, Ordering::Relaxed);
                        return Ok(resp.into_inner());
                    }
                    Err(status)
                        if resend == Resend::OnlyIfNotApplied
                            && (status.code() == Code::Aborted
                                || (retryable(&status) && !surely_not_applied(&status))) =>
                    {
                        warn!(op, endpoint = %uri, code = ?status.code(), msg = status.message(), "meta write outcome unknown; not sent again");
                        return Err(ApiError::Unavailable(format!(
                            "meta {op}: the outcome is unknown ({}); check and retry",
                            status.message()
                        )));
                    }
                    Err(status) if status.code() == Code::Aborted => {
                        // The meta service could not tell whether a forwarded write applied.
                        warn!(op, endpoint = %uri, msg = status.message(), "meta call outcome unknown");
                        return Err(ApiError::Unavailable(format!(
                            "meta {op}: {}",
                            status.message()
                        )));
                    }
                    Err(status) if retryable(&status) => {
                        debug!(op, endpoint = %uri, round, code = ?status.code(), msg = status.message(), "meta endpoint failed; trying the next");
                        last = Some(status);
                    }
                    Err(status) => {
                        warn!(op, endpoint = %uri, code = ?status.code(), msg = status.message(), "meta call failed");
                        return Err(ApiError::Internal(format!(
                            "meta {op}: {}",
                            status.message()
                        )));
                    }
                }
            }
            if round + 1 < BACKOFF.len() {
                tokio::time::sleep(*pause).await;
            }
        }
        let why = last.map_or_else(|| "no endpoint".to_string(), |s| s.message().to_string());
        warn!(op, why, "metadata service unavailable on every endpoint");
        Err(ApiError::Unavailable(format!("metadata service: {why}")))
    }

    /// Creates a bucket, with Object Lock (and versioning) enabled when `object_lock`.
    pub async fn create_bucket(&self, name: &str, object_lock: bool) -> ApiResult<()> {
        let req = pb::CreateBucketRequest {
            name: name.to_string(),
            object_lock,
        };
        let resp = self.call_write("CreateBucket", |mut c| {
            let req = req.clone();
            async move { c.create_bucket(req).await }
        });
        in_band(resp.await?.error)
    }

    /// Deletes a bucket without objects; returns the parts of the multipart uploads it
    /// still had (they are aborted with it).
    pub async fn delete_bucket(&self, name: &str) -> ApiResult<Vec<pb::ObjectPart>> {
        let req = pb::DeleteBucketRequest {
            name: name.to_string(),
        };
        let resp = self
            .call_write("DeleteBucket", |mut c| {
                let req = req.clone();
                async move { c.delete_bucket(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.aborted_parts)
    }

    /// Looks a bucket up.
    pub async fn get_bucket(&self, name: &str) -> ApiResult<pb::Bucket> {
        let req = pb::GetBucketRequest {
            name: name.to_string(),
        };
        let resp = self
            .call("GetBucket", |mut c| {
                let req = req.clone();
                async move { c.get_bucket(req).await }
            })
            .await?;
        in_band(resp.error)?;
        resp.bucket.ok_or_else(|| missing("GetBucket", "bucket"))
    }

    /// Replaces a bucket's tag set (`Some`; empty removes it) and/or its CORS configuration
    /// (`Some`; one without rules removes it) in one Raft entry; returns the new record.
    pub async fn set_bucket_config(
        &self,
        name: &str,
        tags: Option<Vec<pb::ObjectTag>>,
        cors: Option<pb::CorsConfiguration>,
    ) -> ApiResult<pb::Bucket> {
        self.update_bucket(pb::SetBucketConfigRequest {
            bucket: name.to_string(),
            set_tags: tags.is_some(),
            tags: tags.unwrap_or_default(),
            set_cors: cors.is_some(),
            cors,
            ..Default::default()
        })
        .await
    }

    /// Replaces a bucket's policy (JSON; empty removes it) in one Raft entry.
    pub async fn set_bucket_policy(&self, name: &str, policy: &str) -> ApiResult<pb::Bucket> {
        self.update_bucket(pb::SetBucketConfigRequest {
            bucket: name.to_string(),
            set_policy: true,
            policy: policy.to_string(),
            ..Default::default()
        })
        .await
    }

    /// Replaces the parts of a bucket's configuration whose `set_*` flag `req` sets, in one
    /// Raft entry; returns the new record.
    pub async fn update_bucket(&self, req: pb::SetBucketConfigRequest) -> ApiResult<pb::Bucket> {
        let resp = self
            .call_write("SetBucketConfig", |mut c| {
                let req = req.clone();
                async move { c.set_bucket_config(req).await }
            })
            .await?;
        in_band(resp.error)?;
        resp.bucket
            .ok_or_else(|| missing("SetBucketConfig", "bucket"))
    }

    /// Every bucket.
    pub async fn list_buckets(&self) -> ApiResult<Vec<pb::Bucket>> {
        let resp = self
            .call("ListBuckets", |mut c| async move {
                c.list_buckets(pb::ListBucketsRequest {}).await
            })
            .await?;
        Ok(resp.buckets)
    }

    /// Chooses the scheme and disks for a new object, or for a part of the multipart upload
    /// `multipart_upload_id` (empty for an object).
    pub async fn plan_put(
        &self,
        bucket: &str,
        key: &str,
        size_hint: u64,
        multipart_upload_id: &str,
    ) -> ApiResult<pb::PlanPutResponse> {
        let req = pb::PlanPutRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size_hint,
            multipart_upload_id: multipart_upload_id.to_string(),
        };
        let resp = self
            .call("PlanPut", |mut c| {
                let req = req.clone();
                async move { c.plan_put(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp)
    }

    /// Makes an object version visible. `Unavailable`/`Internal` errors are ambiguous: the
    /// commit may have happened.
    /// With a `condition`, the meta service commits only if it holds for the key's current
    /// version (`PreconditionFailed` / `NoSuchKey` otherwise), in the same Raft entry.
    pub async fn commit_object(
        &self,
        object: pb::ObjectVersion,
        condition: Option<pb::WriteCondition>,
    ) -> ApiResult<Committed> {
        let req = pb::CommitObjectRequest {
            object: Some(object),
            condition,
        };
        let resp = self
            .call("CommitObject", |mut c| {
                let req = req.clone();
                async move { c.commit_object(req).await }
            })
            .await?;
        in_band(resp.error)?;
        let object = resp
            .object
            .ok_or_else(|| missing("CommitObject", "object"))?;
        Ok(Committed {
            object,
            replaced: resp.replaced,
            expiry: resp.expiry,
        })
    }

    /// One version of an object (`""`: the current one, `null`: the null version). It may be
    /// a delete marker.
    pub async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> ApiResult<pb::ObjectVersion> {
        Ok(self
            .get_object_and_state(bucket, key, version_id)
            .await?
            .object)
    }

    /// [`Self::get_object_version`], with what the bucket says about it.
    pub async fn get_object_and_state(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> ApiResult<ObjectRead> {
        let req = pb::GetObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.to_string(),
        };
        let resp = self
            .call("GetObject", |mut c| {
                let req = req.clone();
                async move { c.get_object(req).await }
            })
            .await?;
        in_band(resp.error)?;
        let versioning = resp.bucket_versioning();
        let object = resp.object.ok_or_else(|| missing("GetObject", "object"))?;
        Ok(ObjectRead {
            object,
            versioning,
            expiry: resp.expiry,
            bucket_object_lock: resp.bucket_object_lock,
        })
    }

    /// Deletes an object as S3 does for its bucket's versioning state (`version_id` none),
    /// or removes one version for good (`version_id` `null` or an id); with a `condition`,
    /// only if it holds, checked in the same Raft entry.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: Option<pb::WriteCondition>,
        bypass_governance: bool,
    ) -> ApiResult<Deleted> {
        let req = pb::DeleteObjectRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.unwrap_or_default().to_string(),
            condition,
            bypass_governance,
        };
        let resp = self
            .call_write("DeleteObject", |mut c| {
                let req = req.clone();
                async move { c.delete_object(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(Deleted {
            removed: resp.deleted,
            marker: resp.delete_marker,
        })
    }

    /// Sets a bucket's versioning state (Enabled or Suspended).
    pub async fn set_bucket_versioning(
        &self,
        name: &str,
        status: pb::VersioningStatus,
    ) -> ApiResult<pb::Bucket> {
        let req = pb::SetBucketVersioningRequest {
            name: name.to_string(),
            status: status as i32,
        };
        let resp = self
            .call_write("SetBucketVersioning", |mut c| {
                let req = req.clone();
                async move { c.set_bucket_versioning(req).await }
            })
            .await?;
        in_band(resp.error)?;
        resp.bucket
            .ok_or_else(|| missing("SetBucketVersioning", "bucket"))
    }

    /// One page of a bucket's versions and delete markers.
    pub async fn list_object_versions(
        &self,
        req: pb::ListObjectVersionsRequest,
    ) -> ApiResult<pb::ListObjectVersionsResponse> {
        let resp = self
            .call("ListObjectVersions", |mut c| {
                let req = req.clone();
                async move { c.list_object_versions(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp)
    }

    /// Replaces the tag set of the current version of an object (`version_id` empty, or the
    /// current version's id); returns the version id.
    pub async fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        tags: Vec<pb::ObjectTag>,
    ) -> ApiResult<String> {
        let req = pb::SetObjectTagsRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.to_string(),
            tags,
        };
        let resp = self
            .call_write("SetObjectTags", |mut c| {
                let req = req.clone();
                async move { c.set_object_tags(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.version_id)
    }

    /// Sets the Object Lock retention and/or legal hold of an object version (`version_id`
    /// empty: the current one); returns the version's id. Not resent blindly: by then the
    /// current version, or another client's hold, may have changed.
    pub async fn set_object_lock(&self, req: pb::SetObjectLockRequest) -> ApiResult<String> {
        let resp = self
            .call_write("SetObjectLock", |mut c| {
                let req = req.clone();
                async move { c.set_object_lock(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.version_id)
    }

    /// Asks meta to queue an object version for healing (`version_id` empty = the current
    /// version). Answers whether a committed version matched. Only a hint: the healer checks
    /// every shard itself, so a lost report costs only time until the next one or a scrub.
    pub async fn report_damage(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        reason: pb::HealReason,
    ) -> ApiResult<bool> {
        let req = pb::ReportDamageRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: version_id.to_string(),
            reason: reason as i32,
            ..Default::default()
        };
        let resp = self
            .call("ReportDamage", |mut c| {
                let req = req.clone();
                async move { c.report_damage(req).await }
            })
            .await?;
        Ok(resp.queued)
    }

    /// One page of a bucket listing.
    pub async fn list_objects(
        &self,
        req: pb::ListObjectsRequest,
    ) -> ApiResult<pb::ListObjectsResponse> {
        let resp = self
            .call("ListObjects", |mut c| {
                let req = req.clone();
                async move { c.list_objects(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp)
    }
}

/// One object version as `GetObject` read it, with what its bucket says about it.
pub(crate) struct ObjectRead {
    /// The version (possibly a delete marker).
    pub object: pb::ObjectVersion,
    /// The bucket's versioning state.
    pub versioning: pb::VersioningStatus,
    /// When the current version expires under the bucket's lifecycle rules (only for a read
    /// of the current version).
    pub expiry: Option<pb::LifecycleExpiry>,
    /// Whether the bucket has Object Lock enabled.
    pub bucket_object_lock: bool,
}

/// What `DeleteObject` did.
pub(crate) struct Deleted {
    /// The version removed for good, if any (its shards are garbage; it may be a marker).
    pub removed: Option<pb::ObjectVersion>,
    /// The delete marker created, if any.
    pub marker: Option<pb::ObjectVersion>,
}

/// What `CompleteMultipartUpload` made and what became garbage.
pub(crate) struct Completed {
    /// The new version (without its parts).
    pub object: pb::ObjectVersion,
    pub replaced: Option<pb::ObjectVersion>,
    pub unused_parts: Vec<pb::ObjectPart>,
    /// When the new object expires under the bucket's lifecycle rules.
    pub expiry: Option<pb::LifecycleExpiry>,
}

/// What `CommitPart` recorded and the part it replaced.
pub(crate) struct PartCommitted {
    pub part: pb::ObjectPart,
    pub replaced: Option<pb::ObjectPart>,
}

impl Meta {
    /// Starts a multipart upload.
    pub async fn create_multipart_upload(
        &self,
        req: pb::CreateMultipartUploadRequest,
    ) -> ApiResult<pb::MultipartUpload> {
        let resp = self
            .call_write("CreateMultipartUpload", |mut c| {
                let req = req.clone();
                async move { c.create_multipart_upload(req).await }
            })
            .await?;
        in_band(resp.error)?;
        resp.upload
            .ok_or_else(|| missing("CreateMultipartUpload", "upload"))
    }

    /// Records a durable part. `Unavailable`/`Internal` errors are ambiguous, as for
    /// [`Meta::commit_object`].
    pub async fn commit_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part: pb::ObjectPart,
    ) -> ApiResult<PartCommitted> {
        let req = pb::CommitPartRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            part: Some(part),
        };
        let resp = self
            .call("CommitPart", |mut c| {
                let req = req.clone();
                async move { c.commit_part(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(PartCommitted {
            part: resp.part.ok_or_else(|| missing("CommitPart", "part"))?,
            replaced: resp.replaced,
        })
    }

    /// Turns the listed parts into an object.
    pub async fn complete_multipart_upload(
        &self,
        req: pb::CompleteMultipartUploadRequest,
    ) -> ApiResult<Completed> {
        let resp = self
            .call("CompleteMultipartUpload", |mut c| {
                let req = req.clone();
                async move { c.complete_multipart_upload(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(Completed {
            object: resp
                .object
                .ok_or_else(|| missing("CompleteMultipartUpload", "object"))?,
            replaced: resp.replaced,
            unused_parts: resp.unused_parts,
            expiry: resp.expiry,
        })
    }

    /// Drops an upload; returns its parts.
    pub async fn abort_multipart_upload(
        &self,
        req: pb::AbortMultipartUploadRequest,
    ) -> ApiResult<Vec<pb::ObjectPart>> {
        let resp = self
            .call_write("AbortMultipartUpload", |mut c| {
                let req = req.clone();
                async move { c.abort_multipart_upload(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.parts)
    }

    /// One page of an upload's parts.
    pub async fn list_parts(&self, req: pb::ListPartsRequest) -> ApiResult<pb::ListPartsResponse> {
        let resp = self
            .call("ListParts", |mut c| {
                let req = req.clone();
                async move { c.list_parts(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp)
    }

    /// One page of a bucket's uploads in progress.
    pub async fn list_multipart_uploads(
        &self,
        req: pb::ListMultipartUploadsRequest,
    ) -> ApiResult<pb::ListMultipartUploadsResponse> {
        let resp = self
            .call("ListMultipartUploads", |mut c| {
                let req = req.clone();
                async move { c.list_multipart_uploads(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp)
    }
}

/// Whether another endpoint might succeed: no leader / no quorum, a dead or unreachable
/// node, or a call that timed out.
/// Whether a failed call may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Reads, and writes that the meta service recognises when they come twice (commits
    /// carry their upload or attempt id): after any retryable failure.
    AfterAnyFailure,
    /// Other writes: only after failures that prove nothing was applied.
    OnlyIfNotApplied,
}

/// Failures after which a write certainly did not happen: the meta node answered that it is
/// not (or knows no) leader, which it does before proposing anything (openraft also answers
/// "forward to leader" for an appended entry only once that entry is truncated), or the
/// connection could not be made, so nothing was sent.
fn surely_not_applied(status: &Status) -> bool {
    let msg = status.message();
    match status.code() {
        Code::Unavailable => {
            msg.starts_with("not the meta leader")
                || msg.starts_with("no meta leader")
                || failed_before_sending(status)
        }
        Code::Cancelled | Code::Unknown => failed_before_sending(status),
        _ => false,
    }
}

fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded => true,
        Code::Cancelled | Code::Unknown => {
            let msg = status.message().to_ascii_lowercase();
            [
                "transport",
                "not ready",
                "connect",
                "timeout",
                "timed out",
                "broken pipe",
                "reset",
            ]
            .iter()
            .any(|needle| msg.contains(needle))
        }
        _ => false,
    }
}

impl Meta {
    /// Ids of the blob nodes an operator is draining (their shards must move).
    pub async fn draining_nodes(&self) -> ApiResult<std::collections::HashSet<String>> {
        let resp = self
            .call("ListBlobNodes", |mut c| async move {
                c.list_blob_nodes(pb::ListBlobNodesRequest {}).await
            })
            .await?;
        Ok(resp
            .nodes
            .into_iter()
            .filter(|n| n.state == pb::BlobNodeState::Draining as i32)
            .map(|n| n.node_id)
            .collect())
    }

    /// Leases up to `max` heal items for `lease`.
    pub async fn claim_heal(&self, max: u32, lease: Duration) -> ApiResult<Vec<pb::HealItem>> {
        let req = pb::ClaimHealRequest {
            max,
            lease_ms: lease.as_millis() as u64,
        };
        let resp = self
            .call("ClaimHeal", |mut c| async move { c.claim_heal(req).await })
            .await?;
        Ok(resp.items)
    }

    /// New placements for the rebuilt shards `req.indices` of one segment.
    pub async fn plan_heal(&self, req: pb::PlanHealRequest) -> ApiResult<Vec<pb::ShardPlacement>> {
        let resp = self
            .call("PlanHeal", |mut c| {
                let req = req.clone();
                async move { c.plan_heal(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.shards)
    }

    /// Records rebuilt shards; `false` when the version or the old shards changed meanwhile.
    pub async fn replace_shards(&self, req: pb::ReplaceShardsRequest) -> ApiResult<bool> {
        let resp = self
            .call("ReplaceShards", |mut c| {
                let req = req.clone();
                async move { c.replace_shards(req).await }
            })
            .await?;
        in_band(resp.error)?;
        Ok(resp.applied)
    }

    /// Ends a heal item.
    pub async fn finish_heal(&self, req: pb::FinishHealRequest) -> ApiResult<()> {
        self.call("FinishHeal", |mut c| {
            let req = req.clone();
            async move { c.finish_heal(req).await }
        })
        .await?;
        Ok(())
    }
}

/// Maps the in-band `MetaError` of a reply.
fn in_band(code: i32) -> ApiResult<()> {
    match MetaError::try_from(code) {
        Ok(MetaError::None) => Ok(()),
        Ok(MetaError::NoSuchBucket) => Err(ApiError::NoSuchBucket),
        Ok(MetaError::NoSuchKey) => Err(ApiError::NoSuchKey),
        Ok(MetaError::NoSuchVersion) => Err(ApiError::NoSuchVersion),
        Ok(MetaError::MethodNotAllowed) => Err(ApiError::MethodNotAllowed),
        // Cairn has a single owner, so an existing bucket is always the caller's.
        Ok(MetaError::BucketAlreadyExists) => Err(ApiError::BucketAlreadyOwnedByYou),
        Ok(MetaError::BucketNotEmpty) => Err(ApiError::BucketNotEmpty),
        Ok(MetaError::InsufficientCapacity) => Err(ApiError::InsufficientCapacity),
        Ok(MetaError::InvalidArgument) => Err(ApiError::InvalidArgument(
            "rejected by the metadata service".into(),
        )),
        Ok(MetaError::NoSuchUpload) => Err(ApiError::NoSuchUpload),
        Ok(MetaError::PreconditionFailed) => Err(ApiError::PreconditionFailed),
        Ok(MetaError::NoObjectLock) => Err(ApiError::NoObjectLock),
        Ok(MetaError::ObjectLocked) => Err(ApiError::ObjectLocked),
        Ok(MetaError::InvalidBucketState) => Err(ApiError::InvalidBucketState(
            "The request is not valid for the current state of the bucket (Object Lock needs \
             versioning Enabled, and keeps it so)."
                .into(),
        )),
        Ok(MetaError::InvalidPart) => Err(ApiError::InvalidPart),
        Ok(MetaError::InvalidPartOrder) => Err(ApiError::InvalidPartOrder),
        Ok(MetaError::EntityTooSmall) => Err(ApiError::EntityTooSmall),
        // The write outlived the GC grace before its commit: nothing was committed, and the
        // client may retry the upload.
        Ok(MetaError::ShardCollected) => Err(ApiError::Unavailable(
            "the upload took too long; its shards were garbage-collected".into(),
        )),
        // Blob-registry and IAM errors answer admin and blob-server calls, never a gateway's.
        Ok(
            MetaError::BlobNodeRemoved
            | MetaError::NoSuchBlobNode
            | MetaError::BlobNodeNotDraining
            | MetaError::UserAlreadyExists
            | MetaError::NoSuchUser
            | MetaError::NoSuchPolicy
            | MetaError::PolicyInUse,
        ) => Err(ApiError::Internal(format!(
            "unexpected meta error code {code}"
        ))),
        Err(_) => Err(ApiError::Internal(format!(
            "unknown meta error code {code}"
        ))),
    }
}

fn missing(op: &str, field: &str) -> ApiError {
    ApiError::Internal(format!("meta {op} reply has no {field}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        assert!(retryable(&Status::unavailable("no leader")));
        assert!(retryable(&Status::deadline_exceeded("slow")));
        assert!(retryable(&Status::unknown(
            "Service was not ready: transport error"
        )));
        assert!(retryable(&Status::cancelled("Timeout expired")));
        assert!(!retryable(&Status::invalid_argument("bad")));
        assert!(!retryable(&Status::internal("boom")));
    }

    #[test]
    fn only_failures_before_the_proposal_let_a_write_be_sent_again() {
        // Said by the meta node before it proposed anything, or no connection at all.
        assert!(surely_not_applied(&Status::unavailable(
            "not the meta leader; leader is http://10.0.0.1:7000"
        )));
        assert!(surely_not_applied(&Status::unavailable(
            "no meta leader; retry"
        )));
        assert!(surely_not_applied(&Status::unavailable(
            "error trying to connect: tcp connect error: Connection refused (os error 111)"
        )));
        // Sent, and then nothing or a broken connection: the write may have applied.
        assert!(!surely_not_applied(&Status::deadline_exceeded("slow")));
        assert!(!surely_not_applied(&Status::cancelled("Timeout expired")));
        assert!(!surely_not_applied(&Status::unknown(
            "transport error: connection reset by peer"
        )));
        assert!(!surely_not_applied(&Status::unavailable(
            "meta raft: storage error"
        )));
        assert!(!surely_not_applied(&Status::aborted(
            "meta write outcome unknown"
        )));
    }

    #[test]
    fn in_band_mapping() {
        assert!(in_band(MetaError::None as i32).is_ok());
        assert!(matches!(
            in_band(MetaError::NoSuchBucket as i32),
            Err(ApiError::NoSuchBucket)
        ));
        assert!(matches!(
            in_band(MetaError::BucketAlreadyExists as i32),
            Err(ApiError::BucketAlreadyOwnedByYou)
        ));
        assert!(matches!(in_band(99), Err(ApiError::Internal(_))));
    }

    #[tokio::test]
    async fn unreachable_endpoints_give_unavailable() {
        // Port 1 on loopback refuses connections.
        let meta = Meta::new(&["http://127.0.0.1:1".to_string()]).unwrap();
        let err = meta.get_bucket("b").await.unwrap_err();
        assert!(matches!(err, ApiError::Unavailable(_)), "{err}");
    }
}
