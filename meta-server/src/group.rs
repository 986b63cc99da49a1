//! A Raft group as this process sees it: its local nodes, how to write through the leader and
//! how to read linearizably.
//!
//! Today there is one group and every bucket maps to it ([`GroupMap`]); the map is consulted
//! on every request so that metadata can later be split over many groups without changing
//! the record formats or the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};

use crate::store::MetaReader;
use crate::types::{Command, NodeId, Raft, Request, Response};

/// How long a request waits for a leader before answering "unavailable". An election takes
/// about a second (timeouts 0.5-1 s); waiting longer only delays the client's move to another
/// endpoint, or its 503 when a majority is gone.
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// Why a group could not serve a request. All of these are retryable by the client.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No leader (election under way, or no quorum).
    #[error("no meta leader available")]
    NoLeader,
    /// The leader is another process; the client should go there.
    #[error("not the leader; leader is {0}")]
    NotLeader(String),
    /// Raft or the store failed.
    #[error("raft: {0}")]
    Raft(String),
}

/// One meta node of this process.
#[derive(Clone)]
pub struct LocalNode {
    /// Its Raft id.
    pub id: NodeId,
    /// Its Raft handle.
    pub raft: Raft,
    /// Queries over its applied state.
    pub reader: MetaReader,
}

/// A Raft group: the nodes of it that run in this process.
#[derive(Clone)]
pub struct Group {
    nodes: Vec<LocalNode>,
}

/// Identifier of a Raft group.
pub type GroupId = u32;

/// Maps buckets to Raft groups. One group today.
#[derive(Clone)]
pub struct GroupMap {
    groups: Vec<Group>,
}

impl GroupMap {
    /// A map with a single group that holds every bucket.
    pub fn single(group: Group) -> Self {
        Self {
            groups: vec![group],
        }
    }

    /// The group holding `bucket`'s metadata.
    pub fn group_id_for_bucket(&self, _bucket: &str) -> GroupId {
        0
    }

    /// The group with cluster-wide records (bucket names, blob-node registry).
    pub fn system_group(&self) -> &Group {
        &self.groups[0]
    }

    /// The group holding `bucket`'s metadata.
    pub fn for_bucket(&self, bucket: &str) -> &Group {
        let id = self.group_id_for_bucket(bucket) as usize;
        self.groups.get(id).unwrap_or(&self.groups[0])
    }

    /// Every group.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }
}

/// The local wall clock in milliseconds since the Unix epoch (only ever read by a proposer).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Group {
    /// A group of the given local nodes (at least one).
    pub fn new(nodes: Vec<LocalNode>) -> Self {
        Self { nodes }
    }

    /// The local nodes of this group.
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// The local node that leads the group, waiting up to [`LEADER_WAIT`] for an election.
    pub(crate) async fn leader(&self) -> Result<&LocalNode, GroupError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let mut remote_leader = None;
            for node in &self.nodes {
                let metrics = node.raft.metrics().borrow().clone();
                if let Some(leader) = metrics.current_leader {
                    if let Some(local) = self.nodes.iter().find(|n| n.id == leader) {
                        if local.raft.metrics().borrow().current_leader == Some(local.id) {
                            return Ok(local);
                        }
                    } else {
                        remote_leader = metrics
                            .membership_config
                            .membership()
                            .get_node(&leader)
                            .map(|n| n.addr.clone());
                    }
                }
            }
            if let Some(addr) = remote_leader {
                return Err(GroupError::NotLeader(addr));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GroupError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes `command` through the leader, stamped with the leader's clock, and returns the
    /// state machine's response once the entry is committed and applied.
    pub async fn write(&self, command: Command) -> Result<Response, GroupError> {
        let leader = self.leader().await?;
        let request = Request {
            now_ms: now_ms(),
            command,
        };
        match leader.raft.client_write(request).await {
            Ok(reply) => Ok(reply.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_node {
                Some(node) => Err(GroupError::NotLeader(node.addr)),
                None => Err(GroupError::NoLeader),
            },
            Err(e) => Err(GroupError::Raft(e.to_string())),
        }
    }

    /// A reader whose next reads are linearizable: the leader confirms its leadership with a
    /// quorum and waits until everything committed before this call is applied locally.
    pub async fn linearizable_reader(&self) -> Result<&MetaReader, GroupError> {
        let leader = self.leader().await?;
        match leader.raft.ensure_linearizable().await {
            Ok(_) => Ok(&leader.reader),
            Err(e) => match e.forward_to_leader::<openraft::BasicNode>() {
                Some(f) => match &f.leader_node {
                    Some(node) => Err(GroupError::NotLeader(node.addr.clone())),
                    None => Err(GroupError::NoLeader),
                },
                None if matches!(e, RaftError::APIError(_)) => Err(GroupError::NoLeader),
                None => Err(GroupError::Raft(e.to_string())),
            },
        }
    }
}
