//! Followers serve clients too: a write that reaches a follower is handed to the leader, and a
//! read on a follower first asks the leader for a read index.
//!
//! Why: gateways, blob servers and the CLI take a list of meta addresses, and any of them may be
//! a follower. Redirecting (UNAVAILABLE with a `cairn-leader` hint) works for clients that
//! follow hints, but costs them a round trip and an error on every leader change; forwarding
//! makes every member accept every request, which is what the design promises.
//!
//! Safety of the two paths:
//! - **Writes.** The follower sends the [`Command`], not a stamped [`Request`]: the leader
//!   stamps its own clock, as for any write it proposes, so the log never carries a follower's
//!   time. The leader answers only once the entry is committed and applied, exactly as for a
//!   write it received directly. The receiving end never forwards again (it proposes on its
//!   local node or answers "not the leader"), so a request cannot loop between nodes.
//! - **Reads.** The leader confirms its leadership with a quorum (`ensure_linearizable`) and
//!   replies with the log index it has applied up to. Every write acknowledged before the read
//!   began is at or below that index, so once the follower's state machine has applied it the
//!   follower's local read sees them all: the read is linearizable (Raft's ReadIndex, thesis
//!   §6.4), never a stale local read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::meta::meta_raft_client::MetaRaftClient;
use cairn_proto::meta::RaftMessage;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::group::GroupError;
use crate::network::raft_client;
use crate::types::{Command, NodeId, Response};

/// How long a forwarded call may take before the follower gives up and the client retries.
/// A write waits for a commit; a commit that takes longer than this means the leader is
/// struggling, and the client is better served by a retry after the next election.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The leader's answer to a forwarded write or read-index request (the JSON payload of the
/// reply's `RaftMessage`).
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardReply<T> {
    /// Done: the applied response, or the read index.
    Ok(T),
    /// The receiver is not (or no longer) the leader; the leader's address if it knows one.
    NotLeader(Option<String>),
    /// Raft failed on the leader.
    Failed(String),
}

impl<T> ForwardReply<T> {
    fn into_result(self) -> Result<T, GroupError> {
        match self {
            ForwardReply::Ok(value) => Ok(value),
            ForwardReply::NotLeader(Some(addr)) => Err(GroupError::NotLeader(addr)),
            ForwardReply::NotLeader(None) => Err(GroupError::NoLeader),
            ForwardReply::Failed(msg) => Err(GroupError::Raft(msg)),
        }
    }
}

/// The follower's side: gRPC clients to the leader, one per address, reused across calls.
#[derive(Clone)]
pub struct Forwarder {
    cluster_id: Arc<str>,
    clients: Arc<Mutex<HashMap<String, MetaRaftClient<Channel>>>>,
}

impl Forwarder {
    /// A forwarder whose messages name `cluster_id` (the receiver refuses other clusters).
    pub fn new(cluster_id: &str) -> Self {
        Self {
            cluster_id: Arc::from(cluster_id),
            clients: Arc::default(),
        }
    }

    fn client(&self, addr: &str) -> Result<MetaRaftClient<Channel>, GroupError> {
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| GroupError::Raft("forwarder lock poisoned".into()))?;
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let client = raft_client(addr, Some(FORWARD_TIMEOUT))
            .map_err(|e| GroupError::Raft(format!("bad leader address {addr}: {e}")))?;
        clients.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    fn forget(&self, addr: &str) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(addr);
        }
    }

    fn message<T: Serialize>(
        &self,
        target: NodeId,
        payload: &T,
    ) -> Result<RaftMessage, GroupError> {
        Ok(RaftMessage {
            cluster_id: self.cluster_id.to_string(),
            payload: serde_json::to_vec(payload)
                .map_err(|e| GroupError::Raft(format!("encode forwarded request: {e}")))?,
            target,
            snapshot_chunk: Default::default(),
        })
    }

    /// Any failure to reach the leader is reported as "not the leader; leader is `addr`", so
    /// the client retries (here or at the hinted address) instead of seeing an error.
    fn unreachable(&self, addr: &str, status: &tonic::Status) -> GroupError {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                tracing::debug!(%addr, %status, "the meta leader did not answer a forwarded call")
            }
            _ => tracing::warn!(%addr, %status, "the meta leader refused a forwarded call"),
        }
        self.forget(addr);
        GroupError::NotLeader(addr.to_string())
    }

    fn decode<T: for<'de> Deserialize<'de>>(reply: RaftMessage) -> Result<T, GroupError> {
        let reply: ForwardReply<T> = serde_json::from_slice(&reply.payload)
            .map_err(|e| GroupError::Raft(format!("decode forwarded reply: {e}")))?;
        reply.into_result()
    }

    /// Has the leader (`target` at `addr`) propose `command`; returns its applied response.
    pub async fn write(
        &self,
        target: NodeId,
        addr: &str,
        command: &Command,
    ) -> Result<Response, GroupError> {
        let message = self.message(target, command)?;
        let reply = self
            .client(addr)?
            .client_write(message)
            .await
            .map_err(|status| {
                let unreachable = self.unreachable(addr, &status);
                if cairn_proto::call_outcome::failed_before_sending(&status) {
                    unreachable
                } else {
                    // The leader may have appended the command before the call failed; a
                    // retry could apply it a second time, after later writes.
                    GroupError::OutcomeUnknown(format!("forwarded to {addr}: {}", status.message()))
                }
            })?;
        Self::decode(reply.into_inner())
    }

    /// Asks the leader (`target` at `addr`) for a read index: the log index a follower must
    /// have applied before a local read is linearizable.
    pub async fn read_index(&self, target: NodeId, addr: &str) -> Result<Option<u64>, GroupError> {
        let message = self.message(target, &())?;
        let reply = self
            .client(addr)?
            .read_index(message)
            .await
            .map_err(|status| self.unreachable(addr, &status))?;
        Self::decode(reply.into_inner())
    }
}
