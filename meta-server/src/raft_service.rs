//! The receiving end of the gRPC Raft transport: hands messages to the local node they name.

use cairn_proto::meta::meta_raft_server::MetaRaft;
use cairn_proto::meta::RaftMessage;
use openraft::raft::InstallSnapshotRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::forward::ForwardReply;
use crate::group::{self, GroupError};
use crate::joined::JoinState;
use crate::network::LocalNodes;
use crate::types::{Raft, TypeConfig};

/// Serves `MetaRaft` for the nodes of this process.
pub struct RaftService {
    local: LocalNodes,
    joined: JoinState,
}

impl RaftService {
    /// A service that accepts only messages for the cluster this process has joined (none
    /// before it has joined one).
    pub fn new(local: LocalNodes, joined: JoinState) -> Self {
        Self { local, joined }
    }

    fn cluster_id(&self) -> Result<&str, Status> {
        self.joined
            .get()
            .map(|j| &*j.cluster_id)
            .ok_or_else(|| Status::failed_precondition("this meta node has not joined a cluster"))
    }

    /// Checks the envelope and finds the target node.
    fn open<T: DeserializeOwned>(&self, message: &RaftMessage) -> Result<(Raft, T), Status> {
        if message.cluster_id != self.cluster_id()? {
            tracing::warn!(
                from_cluster = %message.cluster_id,
                "refused a Raft message from another cluster"
            );
            return Err(Status::permission_denied("cluster id mismatch"));
        }
        let raft = self
            .local
            .get(message.target)
            .ok_or_else(|| Status::not_found(format!("no meta node {} here", message.target)))?;
        let request = serde_json::from_slice(&message.payload)
            .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))?;
        Ok((raft, request))
    }

    fn reply<T: Serialize>(&self, result: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = serde_json::to_vec(result).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(RaftMessage {
            cluster_id: self.cluster_id()?.to_string(),
            payload,
            target: 0,
            snapshot_chunk: Default::default(),
        }))
    }
}

#[tonic::async_trait]
impl MetaRaft for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc) = self.open(request.get_ref())?;
        let result = raft.append_entries(rpc).await;
        self.reply(&result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc) = self.open(request.get_ref())?;
        let result = raft.vote(rpc).await;
        self.reply(&result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc) = self.open(request.get_ref())?;
        let result = raft.install_snapshot(rpc).await;
        self.reply(&result)
    }

    async fn install_snapshot_chunk(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, mut rpc): (Raft, InstallSnapshotRequest<TypeConfig>) =
            self.open(request.get_ref())?;
        // The chunk's bytes come beside the JSON, whose own `data` must then be empty.
        if !rpc.data.is_empty() {
            return Err(Status::invalid_argument(
                "InstallSnapshotChunk with bytes in the JSON request too",
            ));
        }
        rpc.data = Vec::from(request.into_inner().snapshot_chunk);
        let result = raft.install_snapshot(rpc).await;
        self.reply(&result)
    }

    async fn client_write(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, command) = self.open(request.get_ref())?;
        // Proposed on this node only: never forwarded again, so requests cannot loop.
        let reply = forward_reply(group::propose(&raft, command).await);
        self.reply(&reply)
    }

    async fn read_index(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, ()) = self.open(request.get_ref())?;
        let reply = forward_reply(group::read_index(&raft).await);
        self.reply(&reply)
    }
}

/// A local result as the reply a forwarding follower expects.
fn forward_reply<T>(result: Result<T, GroupError>) -> ForwardReply<T> {
    match result {
        Ok(value) => ForwardReply::Ok(value),
        Err(GroupError::NotLeader(addr)) => ForwardReply::NotLeader(Some(addr)),
        Err(GroupError::NoLeader) => ForwardReply::NotLeader(None),
        Err(GroupError::Raft(msg) | GroupError::OutcomeUnknown(msg)) => ForwardReply::Failed(msg),
    }
}
