//! A Raft group as this process sees it: its local nodes, how to write through the leader and
//! how to read linearizably.
//!
//! Today there is one group and every bucket maps to it ([`GroupMap`]); the map is consulted
//! on every request so that metadata can later be split over many groups without changing
//! the record formats or the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};

use crate::forward::Forwarder;
use crate::read_batch::ReadBatcher;
use crate::store::MetaReader;
use crate::types::{Command, NodeId, Raft, Request, Response};

/// How long a request waits for a leader before answering "unavailable". An election takes
/// about a second (timeouts 0.5-1 s); waiting longer only delays the client's move to another
/// endpoint, or its 503 when a majority is gone.
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// Why a group could not serve a request. All of these are retryable by the client.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// A write was handed to the leader in another process, and no answer came back: it may
    /// or may not have been applied, so it must not be sent again blindly.
    #[error("the write's outcome is unknown: {0}")]
    OutcomeUnknown(String),
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
    /// Its linearizable-read confirmations, shared between concurrent readers.
    pub reads: ReadBatcher,
}

/// A Raft group: the nodes of it that run in this process, and the way to the leader when it
/// runs elsewhere.
#[derive(Clone)]
pub struct Group {
    nodes: Vec<LocalNode>,
    forwarder: Forwarder,
}

/// Where a group's leader runs.
enum LeaderAt<'a> {
    /// In this process.
    Local(&'a LocalNode),
    /// In another process: its node id and address.
    Remote(NodeId, String),
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
    /// A group of the given local nodes (at least one); `forwarder` reaches a leader in
    /// another process.
    pub fn new(nodes: Vec<LocalNode>, forwarder: Forwarder) -> Self {
        Self { nodes, forwarder }
    }

    /// The local nodes of this group.
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// The local node that leads the group, waiting up to [`LEADER_WAIT`] for an election.
    /// A leader in another process is [`GroupError::NotLeader`] (for operations that only the
    /// leader's own process can run, such as membership changes).
    pub(crate) async fn leader(&self) -> Result<&LocalNode, GroupError> {
        match self.locate_leader().await? {
            LeaderAt::Local(node) => Ok(node),
            LeaderAt::Remote(_, addr) => Err(GroupError::NotLeader(addr)),
        }
    }

    /// Where the leader runs, waiting up to [`LEADER_WAIT`] for an election.
    async fn locate_leader(&self) -> Result<LeaderAt<'_>, GroupError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let mut remote_leader = None;
            for node in &self.nodes {
                // Borrowed, not cloned: this runs on every request, and the metrics hold
                // the membership and replication state.
                let watch = node.raft.metrics();
                let metrics = watch.borrow();
                if let Some(leader) = metrics.current_leader {
                    if let Some(local) = self.nodes.iter().find(|n| n.id == leader) {
                        let leads = local.id == node.id
                            || local.raft.metrics().borrow().current_leader == Some(local.id);
                        if leads {
                            return Ok(LeaderAt::Local(local));
                        }
                    } else {
                        remote_leader = metrics
                            .membership_config
                            .membership()
                            .get_node(&leader)
                            .map(|n| (leader, n.addr.clone()));
                    }
                }
            }
            if let Some((id, addr)) = remote_leader {
                return Ok(LeaderAt::Remote(id, addr));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GroupError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes `command` through the leader, stamped with the leader's clock, and returns the
    /// state machine's response once the entry is committed and applied. A leader in another
    /// process gets the command forwarded ([`Forwarder::write`]).
    pub async fn write(&self, command: Command) -> Result<Response, GroupError> {
        match self.locate_leader().await? {
            LeaderAt::Local(leader) => propose(&leader.raft, command).await,
            LeaderAt::Remote(id, addr) => self.forwarder.write(id, &addr, &command).await,
        }
    }

    /// A reader whose next reads are linearizable.
    ///
    /// On the leader: it confirms its leadership with a quorum and waits until everything
    /// committed before this call is applied locally. On a follower: the leader does the same
    /// and hands back its read index, and the local node waits until it has applied that far
    /// ([`crate::forward`] has the argument).
    pub async fn linearizable_reader(&self) -> Result<&MetaReader, GroupError> {
        match self.locate_leader().await? {
            LeaderAt::Local(leader) => {
                leader.reads.read_index().await?;
                Ok(&leader.reader)
            }
            LeaderAt::Remote(id, addr) => {
                let index = self.forwarder.read_index(id, &addr).await?;
                let local = self.nodes.first().ok_or(GroupError::NoLeader)?;
                local
                    .raft
                    .wait(Some(LEADER_WAIT))
                    .applied_index_at_least(index, "follower read index")
                    .await
                    .map_err(|_| GroupError::NotLeader(addr))?;
                Ok(&local.reader)
            }
        }
    }
}

/// Proposes `command` on `raft`, which should be the leader: stamped with this (the
/// proposer's) clock, answered once committed and applied.
pub(crate) async fn propose(raft: &Raft, command: Command) -> Result<Response, GroupError> {
    let request = Request {
        now_ms: now_ms(),
        command,
    };
    match raft.client_write(request).await {
        Ok(reply) => Ok(reply.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_node {
            Some(node) => Err(GroupError::NotLeader(node.addr)),
            None => Err(GroupError::NoLeader),
        },
        Err(e) => Err(GroupError::Raft(e.to_string())),
    }
}

/// Confirms that `raft` leads (with a quorum) and waits until it has applied everything
/// committed so far; returns that read index.
pub(crate) async fn read_index(raft: &Raft) -> Result<Option<u64>, GroupError> {
    match raft.ensure_linearizable().await {
        Ok(log_id) => Ok(log_id.map(|l| l.index)),
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
