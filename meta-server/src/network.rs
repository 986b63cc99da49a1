//! How meta nodes reach one another: directly when the target runs in this process, over
//! gRPC (`MetaRaft`) otherwise.
//!
//! The embedded mode runs several voters in one process (one per disk, so that losing a disk
//! loses no metadata); they talk through [`LocalNodes`] with no serialization. Nodes in other
//! processes are reached at the address in their membership entry. Both paths carry the same
//! openraft messages, so the protocol is the same in every deployment mode.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use cairn_proto::meta::meta_raft_client::MetaRaftClient;
use cairn_proto::meta::RaftMessage;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::types::{NodeId, Raft, TypeConfig};

/// The Raft handles of the meta nodes that live in this process.
#[derive(Clone, Default)]
pub struct LocalNodes {
    nodes: Arc<RwLock<HashMap<NodeId, Raft>>>,
}

impl LocalNodes {
    /// Makes `raft` reachable in-process as node `id`.
    ///
    /// A poisoned lock is taken over: a panic elsewhere cannot leave a half-made map entry,
    /// and ignoring the node instead would make it silently unreachable.
    pub fn insert(&self, id: NodeId, raft: Raft) {
        let mut nodes = self.nodes.write().unwrap_or_else(PoisonError::into_inner);
        nodes.insert(id, raft);
    }

    /// The in-process node `id`, if there is one.
    pub fn get(&self, id: NodeId) -> Option<Raft> {
        let nodes = self.nodes.read().unwrap_or_else(PoisonError::into_inner);
        nodes.get(&id).cloned()
    }
}

/// A lazily connected `MetaRaft` client for the meta node at `addr` (`host:port`), with the
/// message limits every Raft channel uses; `timeout` bounds each call when given.
pub(crate) fn raft_client(
    addr: &str,
    timeout: Option<std::time::Duration>,
) -> Result<MetaRaftClient<Channel>, tonic::transport::Error> {
    let mut endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(std::time::Duration::from_secs(2));
    if let Some(timeout) = timeout {
        endpoint = endpoint.timeout(timeout);
    }
    Ok(MetaRaftClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// Creates a [`Peer`] per target node (openraft's network factory).
#[derive(Clone)]
pub struct Network {
    local: LocalNodes,
    cluster_id: Arc<str>,
}

impl Network {
    /// A network whose gRPC messages carry `cluster_id`.
    pub fn new(local: LocalNodes, cluster_id: &str) -> Self {
        Self {
            local,
            cluster_id: Arc::from(cluster_id),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            local: self.local.clone(),
            cluster_id: self.cluster_id.clone(),
            client: None,
            json_snapshot_chunks: false,
        }
    }
}

/// The connection from one node to one target.
pub struct Peer {
    target: NodeId,
    addr: String,
    local: LocalNodes,
    cluster_id: Arc<str>,
    client: Option<MetaRaftClient<Channel>>,
    /// The target answered UNIMPLEMENTED to InstallSnapshotChunk: send it InstallSnapshot.
    json_snapshot_chunks: bool,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Which `MetaRaft` method a message goes to.
enum Method {
    AppendEntries,
    Vote,
    /// The chunk's bytes in the JSON request (for peers without `InstallSnapshotChunk`).
    InstallSnapshot,
    /// The chunk's bytes in `RaftMessage.snapshot_chunk`, beside the JSON.
    InstallSnapshotChunk,
}

/// Why a message got no reply payload.
enum SendError {
    Encode(serde_json::Error),
    Unreachable(Unreachable),
    Status(tonic::Status),
}

impl Peer {
    fn client(&mut self) -> Result<MetaRaftClient<Channel>, Unreachable> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = raft_client(&self.addr, None).map_err(|e| Unreachable::new(&e))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// Sends one message over gRPC and returns the reply. `snapshot_chunk` travels beside
    /// the JSON of `req` (InstallSnapshotChunk's bytes; empty otherwise).
    async fn send<Req: Serialize>(
        &mut self,
        method: Method,
        req: &Req,
        snapshot_chunk: Bytes,
    ) -> Result<RaftMessage, SendError> {
        let payload = serde_json::to_vec(req).map_err(SendError::Encode)?;
        let message = RaftMessage {
            cluster_id: self.cluster_id.to_string(),
            payload,
            target: self.target,
            snapshot_chunk,
        };
        let mut client = self.client().map_err(SendError::Unreachable)?;
        let reply = match method {
            Method::AppendEntries => client.append_entries(message).await,
            Method::Vote => client.vote(message).await,
            Method::InstallSnapshot => client.install_snapshot(message).await,
            Method::InstallSnapshotChunk => client.install_snapshot_chunk(message).await,
        };
        match reply {
            Ok(r) => Ok(r.into_inner()),
            Err(status) => {
                if status.code() == tonic::Code::Unavailable {
                    self.client = None;
                }
                Err(SendError::Status(status))
            }
        }
    }

    /// The remote `Result` in a reply's JSON payload, or why there is none.
    #[allow(clippy::result_large_err)] // openraft's error type, which `RaftNetwork` returns
    fn read_reply<Resp, E>(&self, sent: Result<RaftMessage, SendError>) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply = match sent {
            Ok(reply) => reply,
            Err(SendError::Encode(e)) => return Err(RPCError::Network(NetworkError::new(&e))),
            Err(SendError::Unreachable(e)) => return Err(RPCError::Unreachable(e)),
            Err(SendError::Status(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)))
            }
            Err(SendError::Status(status)) => {
                return Err(RPCError::Network(NetworkError::new(&status)))
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Sends one message over gRPC; the reply payload is the remote `Result` in JSON.
    async fn call<Req, Resp, E>(&mut self, method: Method, req: &Req) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let sent = self.send(method, req, Bytes::new()).await;
        self.read_reply(sent)
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        if let Some(raft) = self.local.get(self.target) {
            return raft
                .append_entries(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)));
        }
        self.call(Method::AppendEntries, &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        if let Some(raft) = self.local.get(self.target) {
            return raft
                .install_snapshot(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)));
        }
        // The chunk goes as protobuf bytes: as JSON it was 3.6 times its size and cost about
        // 0.9 s of CPU per 3 MiB chunk to write and read in a debug build (Jepsen finding 11).
        // A peer running a version without InstallSnapshotChunk answers UNIMPLEMENTED (a
        // rolling upgrade): it then gets the JSON form, as before, from here on.
        let chunk = Bytes::from(std::mem::take(&mut rpc.data));
        if !self.json_snapshot_chunks {
            let sent = self
                .send(Method::InstallSnapshotChunk, &rpc, chunk.clone())
                .await;
            match sent {
                Err(SendError::Status(s)) if s.code() == tonic::Code::Unimplemented => {
                    tracing::info!(
                        target_node = self.target,
                        "peer has no InstallSnapshotChunk (an older version): sending \
                         snapshot chunks as JSON"
                    );
                    self.json_snapshot_chunks = true;
                }
                sent => return self.read_reply(sent),
            }
        }
        rpc.data = Vec::from(chunk);
        self.call(Method::InstallSnapshot, &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        if let Some(raft) = self.local.get(self.target) {
            return raft
                .vote(rpc)
                .await
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)));
        }
        self.call(Method::Vote, &rpc).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use cairn_proto::meta::meta_raft_server::{MetaRaft, MetaRaftServer};

    use super::*;

    /// A meta node of a version without InstallSnapshotChunk: it serves InstallSnapshot
    /// only, with the chunk's bytes in the JSON, and keeps the chunks it got.
    #[derive(Default, Clone)]
    struct OlderPeer {
        chunks: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    #[tonic::async_trait]
    impl MetaRaft for OlderPeer {
        async fn install_snapshot(
            &self,
            request: tonic::Request<RaftMessage>,
        ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
            let rpc: InstallSnapshotRequest<TypeConfig> =
                serde_json::from_slice(&request.get_ref().payload)
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
            self.chunks.lock().unwrap().push(rpc.data);
            let reply: Result<_, RaftError<NodeId, InstallSnapshotError>> =
                Ok(InstallSnapshotResponse::<NodeId> { vote: rpc.vote });
            Ok(tonic::Response::new(RaftMessage {
                payload: serde_json::to_vec(&reply).unwrap(),
                ..Default::default()
            }))
        }
    }

    #[tokio::test]
    async fn an_older_peer_gets_snapshot_chunks_as_json() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let older = OlderPeer::default();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(MetaRaftServer::new(older.clone()))
                .serve_with_incoming(incoming),
        );
        let mut peer = Network::new(LocalNodes::default(), "cluster")
            .new_client(7, &BasicNode::new(addr.to_string()))
            .await;
        let sent = [b"first chunk".to_vec(), b"second chunk".to_vec()];
        for (i, data) in sent.iter().enumerate() {
            let rpc = InstallSnapshotRequest::<TypeConfig> {
                vote: Default::default(),
                meta: Default::default(),
                offset: i as u64,
                data: data.clone(),
                done: false,
            };
            peer.install_snapshot(rpc, RPCOption::new(Duration::from_secs(5)))
                .await
                .unwrap();
        }
        assert_eq!(*older.chunks.lock().unwrap(), sent.to_vec());
        assert!(peer.json_snapshot_chunks, "the fallback is remembered");
    }
}
