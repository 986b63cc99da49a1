//! The simulated meta cluster: its nodes and network, and the handles clients take.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cairn_meta::read_batch::ReadBatcher;
use cairn_meta::store::MetaReader;
use cairn_meta::types::{NodeId, Raft};
use openraft::{BasicNode, ChangeMembers, ServerState, Vote};
use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::net::SimNet;
use super::node::SimNode;
use crate::{Error, Result};

/// How long one membership-change attempt may take.
const ATTEMPT: Duration = Duration::from_secs(3);

/// What a client needs of one running node.
#[derive(Clone)]
pub struct Handles {
    /// The node.
    pub id: NodeId,
    /// Its Raft handle (writes).
    pub raft: Raft,
    /// Its read batcher (linearizable reads).
    pub reads: ReadBatcher,
    /// Its applied state.
    pub reader: MetaReader,
}

/// The nodes and the network between them.
pub struct SimCluster {
    /// The network.
    pub net: SimNet,
    nodes: Mutex<Vec<SimNode>>,
}

impl SimCluster {
    /// A cluster of `nodes` (not started).
    pub fn new(net: SimNet, nodes: Vec<SimNode>) -> Self {
        Self {
            net,
            nodes: Mutex::new(nodes),
        }
    }

    /// Starts every node and makes the first one initialize the group of all.
    pub async fn bootstrap(&self) -> Result<()> {
        let mut nodes = self.nodes.lock().await;
        for node in nodes.iter_mut() {
            node.start(&self.net).await?;
        }
        let members: BTreeMap<NodeId, BasicNode> = nodes
            .iter()
            .map(|n| (n.id, BasicNode::new(format!("sim-{}", n.id))))
            .collect();
        let first = nodes
            .first()
            .and_then(|n| n.running.as_ref())
            .ok_or_else(|| Error::Sim("no node to initialize".into()))?;
        first
            .raft
            .initialize(members)
            .await
            .map_err(|e| Error::Sim(format!("initialize: {e}")))?;
        Ok(())
    }

    /// Every node id, in order.
    pub async fn ids(&self) -> Vec<NodeId> {
        self.nodes.lock().await.iter().map(|n| n.id).collect()
    }

    /// Ids of the running nodes.
    pub async fn running(&self) -> Vec<NodeId> {
        let nodes = self.nodes.lock().await;
        nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.id)
            .collect()
    }

    /// The handles of one running node.
    pub async fn handles(&self, id: NodeId) -> Option<Handles> {
        let nodes = self.nodes.lock().await;
        let node = nodes.iter().find(|n| n.id == id)?;
        let running = node.running.as_ref()?;
        Some(Handles {
            id,
            raft: running.raft.clone(),
            reads: running.reads.clone(),
            reader: running.reader.clone(),
        })
    }

    /// The running nodes that lead, as (term, id), highest term first: in the leader state
    /// with a committed vote (one a quorum granted) for themselves. The vote is what makes
    /// a leader; the state alone can lag a moment behind a vote just granted to another.
    pub async fn leaders(&self) -> Vec<(u64, NodeId)> {
        let nodes = self.nodes.lock().await;
        let mut leaders: Vec<(u64, NodeId)> = nodes
            .iter()
            .filter_map(|n| {
                let running = n.running.as_ref()?;
                let metrics = running.raft.metrics();
                let m = metrics.borrow();
                let leads = m.state == ServerState::Leader
                    && m.vote.is_committed()
                    && m.vote.leader_id().voted_for() == Some(n.id);
                leads.then_some((m.vote.leader_id().term, n.id))
            })
            .collect();
        leaders.sort_by(|a, b| b.cmp(a));
        leaders
    }

    /// The current vote of every running node.
    pub async fn votes(&self) -> Vec<(NodeId, Vote<NodeId>)> {
        let nodes = self.nodes.lock().await;
        nodes
            .iter()
            .filter_map(|n| {
                let running = n.running.as_ref()?;
                let vote = running.raft.metrics().borrow().vote;
                Some((n.id, vote))
            })
            .collect()
    }

    /// The handles of a node that believes it leads (chosen with `rng` when several do, as
    /// a client that heard of an old leader may still call it).
    pub async fn some_leader(&self, rng: &mut impl Rng) -> Option<Handles> {
        let leaders = self.leaders().await;
        if leaders.is_empty() {
            return None;
        }
        let (_, id) = leaders[rng.random_range(0..leaders.len())];
        self.handles(id).await
    }

    /// The voters of the group as the newest leader sees them (`None` without a leader).
    pub async fn voters(&self) -> Option<BTreeSet<NodeId>> {
        let (_, leader) = self.leaders().await.first().copied()?;
        let handles = self.handles(leader).await?;
        let metrics = handles.raft.metrics();
        let voters = metrics
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        Some(voters)
    }

    /// Applies a membership change through the newest leader, retrying (each attempt
    /// bounded) until `deadline`. With `add_learner`, that node is first added as a learner
    /// and caught up. Returns whether it was done.
    pub async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, BasicNode>,
        add_learner: Option<NodeId>,
        deadline: Instant,
    ) -> bool {
        while Instant::now() < deadline {
            if let Some(&(_, leader)) = self.leaders().await.first() {
                if let Some(h) = self.handles(leader).await {
                    let attempt = async {
                        if let Some(id) = add_learner {
                            let node = BasicNode::new(format!("sim-{id}"));
                            h.raft.add_learner(id, node, true).await.ok()?;
                        }
                        h.raft.change_membership(change.clone(), false).await.ok()
                    };
                    if let Ok(Some(_)) = tokio::time::timeout(ATTEMPT, attempt).await {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Crashes node `id` (see [`SimNode::crash`]).
    pub async fn crash(&self, id: NodeId, power_loss: bool) -> Result<()> {
        let mut nodes = self.nodes.lock().await;
        match nodes.iter_mut().find(|n| n.id == id) {
            Some(node) => node.crash(&self.net, power_loss).await,
            None => Ok(()),
        }
    }

    /// Starts every node that is down.
    pub async fn restart_all(&self) -> Result<()> {
        let mut nodes = self.nodes.lock().await;
        for node in nodes.iter_mut().filter(|n| !n.is_running()) {
            node.start(&self.net).await?;
        }
        Ok(())
    }

    /// Snapshots built and installed, summed over every node and all its starts.
    pub async fn snapshots(&self) -> (u64, u64) {
        let nodes = self.nodes.lock().await;
        nodes
            .iter()
            .map(|n| n.snapshots())
            .fold((0, 0), |(b, i), (nb, ni)| (b + nb, i + ni))
    }

    /// Stops every node (a clean shutdown, at the end of a run).
    pub async fn shutdown(&self) {
        let mut nodes = self.nodes.lock().await;
        for node in nodes.iter_mut() {
            let _ = node.crash(&self.net, false).await;
        }
    }
}
