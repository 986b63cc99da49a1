//! Cached gRPC channels to blob servers, one per address (or the in-process service of a blob
//! server sharing this process), and best-effort shard deletion.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_proto::blob::blob_client::BlobClient;
use cairn_proto::blob::{DeleteShardRequest, GetShardRequest, PutShardRequest, PutShardResponse};
use cairn_proto::cluster_token::ClusterToken;
use cairn_proto::local::{
    GetShardMessages, LocalEndpoint, LocalShardData, PutShardMessages, Transport,
};
use cairn_proto::meta::{ObjectPart, ObjectVersion, ShardPlacement};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;
use tracing::{debug, info_span, warn, Instrument};

use crate::error::{ApiError, ApiResult};

/// Largest gRPC message sent or accepted (shard data is sent in smaller pieces).
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// A blob server client whose calls carry the cluster token.
pub(crate) type BlobConn = BlobClient<InterceptedService<Transport, ClusterToken>>;

/// One lazily connected channel per blob server address, shared by every request.
pub(crate) struct BlobPool {
    channels: Mutex<HashMap<String, Channel>>,
    /// Blob servers in this process, by the address they registered: called directly.
    local: HashMap<String, LocalEndpoint>,
    /// Proves to blob servers that this gateway belongs to their cluster.
    token: ClusterToken,
}

impl BlobPool {
    /// A pool whose clients present `token`, calling the `local` blob servers in-process.
    pub fn new(token: ClusterToken, local: Vec<LocalEndpoint>) -> Self {
        Self {
            channels: Mutex::new(HashMap::new()),
            local: local.into_iter().map(|e| (e.address.clone(), e)).collect(),
            token,
        }
    }

    /// A client for the blob server at `address` (`host:port` as it registered).
    pub fn client(&self, address: &str) -> ApiResult<BlobConn> {
        let transport = self.transport(address)?;
        Ok(BlobClient::with_interceptor(transport, self.token.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// The shard data calls of the blob server at `address`: made directly, without gRPC
    /// encoding, when it runs in this process.
    pub fn shard_data(&self, address: &str) -> ApiResult<ShardData> {
        match self.local.get(address) {
            Some(local) => Ok(ShardData::Local(Arc::clone(&local.shard_data))),
            None => self.client(address).map(ShardData::Remote),
        }
    }

    /// The in-process service when the server runs here, else the (cached) channel.
    fn transport(&self, address: &str) -> ApiResult<Transport> {
        if let Some(local) = self.local.get(address) {
            return Ok(Transport::Local(local.service.clone()));
        }
        let channel = {
            let mut map = self
                .channels
                .lock()
                .map_err(|_| ApiError::Internal("blob channel cache poisoned".into()))?;
            match map.get(address) {
                Some(ch) => ch.clone(),
                None => {
                    let ch = lazy_channel(address)?;
                    map.insert(address.to_string(), ch.clone());
                    ch
                }
            }
        };
        Ok(Transport::Remote(channel))
    }
}

/// One blob server's `PutShard` and `GetShard`, whichever way it is reached: its gRPC client,
/// or its shard data calls in this process (`cairn_proto::local` says what that saves). Both
/// answer with the same messages and statuses.
pub(crate) enum ShardData {
    Remote(BlobConn),
    Local(Arc<dyn LocalShardData>),
}

impl ShardData {
    /// `GetShard`: the range's messages, or the status the call failed with.
    pub async fn get_shard(self, request: GetShardRequest) -> Result<GetShardMessages, Status> {
        match self {
            ShardData::Remote(mut client) => {
                let stream = client.get_shard(request).await?.into_inner();
                Ok(Box::pin(stream))
            }
            ShardData::Local(blob) => blob.get_shard(request).await,
        }
    }

    /// `PutShard`: the reply once the shard is durable, or the status the call failed with.
    pub async fn put_shard(self, messages: PutShardMessages) -> Result<PutShardResponse, Status> {
        match self {
            ShardData::Remote(mut client) => {
                let request = PutMessageStream(messages);
                Ok(client.put_shard(request).await?.into_inner())
            }
            ShardData::Local(blob) => blob.put_shard(messages).await,
        }
    }
}

/// [`PutShardMessages`] behind a named type. Handed to tonic's generated client as a trait
/// object, the call's future cannot be proven `Send` ("higher-ranked lifetime error", rustc
/// 1.95); a named stream type can.
struct PutMessageStream(PutShardMessages);

impl futures::Stream for PutMessageStream {
    type Item = PutShardRequest;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PutShardRequest>> {
        self.get_mut().0.as_mut().poll_next(cx)
    }
}

fn lazy_channel(address: &str) -> ApiResult<Channel> {
    let uri = cairn_proto::endpoint_uri(address);
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| ApiError::Internal(format!("bad blob server address {address:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        // Larger windows keep a shard stream flowing at disk speed; memory stays bounded
        // because every stream is read at most a few blocks ahead.
        .initial_stream_window_size(Some(2 * 1024 * 1024))
        .initial_connection_window_size(Some(16 * 1024 * 1024));
    Ok(endpoint.connect_lazy())
}

/// The identity of a stored shard file: its disk and name. Not the node address, which
/// can change when a blob server restarts.
fn shard_id(s: &ShardPlacement) -> (&str, &str) {
    (s.disk_id.as_str(), s.shard_key.as_str())
}

/// Every shard of a version: its own for a single PUT, its parts' for a multipart object.
pub(crate) fn object_shards(object: ObjectVersion) -> Vec<ShardPlacement> {
    let mut shards = object.shards;
    shards.extend(part_shards(object.parts));
    shards
}

/// Every shard of some parts.
pub(crate) fn part_shards(parts: Vec<ObjectPart>) -> Vec<ShardPlacement> {
    parts.into_iter().flat_map(|p| p.shards).collect()
}

/// Deletes `shards` in a background task after `grace`, best effort: a failure (or a gateway
/// stopped before the grace ends) only leaves garbage for garbage collection. Shards that also
/// appear in `keep` are never touched (see the PUT commit).
///
/// The grace is for versions that were visible: a GET that started before the overwrite or
/// DELETE keeps streaming the old version's shards and must be able to finish, as in S3.
pub(crate) fn spawn_delete_shards(
    pool: Arc<BlobPool>,
    shards: Vec<ShardPlacement>,
    keep: &[ShardPlacement],
    grace: std::time::Duration,
    reason: &'static str,
    bucket: &str,
    key: &str,
) {
    let keep: HashSet<(&str, &str)> = keep.iter().map(shard_id).collect();
    let shards: Vec<ShardPlacement> = shards
        .into_iter()
        .filter(|s| !keep.contains(&shard_id(s)))
        .collect();
    if shards.is_empty() {
        return;
    }
    let span = info_span!("delete_shards", reason, bucket, key, count = shards.len());
    tokio::spawn(
        async move {
            tokio::time::sleep(grace).await;
            let deletes = shards.into_iter().map(|s| {
                let pool = Arc::clone(&pool);
                async move { delete_one(&pool, s).await }
            });
            futures::future::join_all(deletes).await;
        }
        .instrument(span),
    );
}

async fn delete_one(pool: &BlobPool, s: ShardPlacement) {
    let mut client = match pool.client(&s.node_address) {
        Ok(c) => c,
        Err(e) => {
            warn!(node = %s.node_address, error = %e, "cannot delete shard");
            return;
        }
    };
    let req = DeleteShardRequest {
        disk_id: s.disk_id.clone(),
        shard_key: s.shard_key.clone(),
    };
    match tokio::time::timeout(DELETE_TIMEOUT, client.delete_shard(req)).await {
        Ok(Ok(_)) => debug!(node = %s.node_address, shard = %s.shard_key, "shard deleted"),
        Ok(Err(status)) => {
            warn!(node = %s.node_address, shard = %s.shard_key, code = ?status.code(), msg = status.message(), "shard delete failed")
        }
        Err(_) => warn!(node = %s.node_address, shard = %s.shard_key, "shard delete timed out"),
    }
}
