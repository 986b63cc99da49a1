//! The simulated network between meta nodes: openraft's messages are handed straight to the
//! target's Raft handle after a seeded delay, unless the link is cut or the message is lost.
//!
//! A lost message or a cut link is reported to the sender as a `NetworkError` after a
//! while (as a timeout would be), never as `Unreachable`: openraft answers `Unreachable`
//! with a back-off whose timer races its event channel in an unbiased `select!`, the one
//! place where the interleaving would depend on more than the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_meta::types::{NodeId, Raft, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long a sender waits before it hears that a message was lost.
const LOSS_TIMEOUT: Duration = Duration::from_millis(100);

/// The state of the network: which nodes run, which links are cut, how lossy and slow.
struct NetState {
    rng: StdRng,
    /// The running nodes' Raft handles; a crashed node has none.
    nodes: BTreeMap<NodeId, Raft>,
    /// Cut links, both directions listed.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Probability that a message (request or response) is lost.
    loss: f64,
    /// One-way delay range, milliseconds.
    delay_ms: (u64, u64),
}

/// The default one-way delay range, milliseconds.
pub const NORMAL_DELAY_MS: (u64, u64) = (1, 5);

/// The simulated network. Cheap to clone.
#[derive(Clone)]
pub struct SimNet {
    state: Arc<Mutex<NetState>>,
}

/// What happens to one message.
enum Route {
    Deliver(Duration),
    Lost,
}

impl SimNet {
    /// A healthy network whose choices come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(NetState {
                rng: StdRng::seed_from_u64(seed),
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                loss: 0.0,
                delay_ms: NORMAL_DELAY_MS,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut NetState) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Node `id` is up and receives messages through `raft`.
    pub fn attach(&self, id: NodeId, raft: Raft) {
        self.with(|s| s.nodes.insert(id, raft));
    }

    /// Node `id` is down: messages to it are lost.
    pub fn detach(&self, id: NodeId) {
        self.with(|s| s.nodes.remove(&id));
    }

    /// Cuts every link between `a` and `b` (both directions).
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        self.with(|s| {
            for &x in a {
                for &y in b {
                    s.cut.insert((x, y));
                    s.cut.insert((y, x));
                }
            }
        });
    }

    /// Sets the loss probability and the one-way delay range.
    pub fn set_quality(&self, loss: f64, delay_ms: (u64, u64)) {
        self.with(|s| {
            s.loss = loss;
            s.delay_ms = delay_ms;
        });
    }

    /// Removes every cut and restores a loss-free, fast network.
    pub fn heal(&self) {
        self.with(|s| {
            s.cut.clear();
            s.loss = 0.0;
            s.delay_ms = NORMAL_DELAY_MS;
        });
    }

    /// The factory node `from` gives openraft.
    pub fn factory(&self, from: NodeId) -> SimNetworkFactory {
        SimNetworkFactory {
            from,
            net: self.clone(),
        }
    }

    fn route(&self, from: NodeId, to: NodeId) -> Route {
        self.with(|s| {
            let up = s.nodes.contains_key(&from) && s.nodes.contains_key(&to);
            if !up || s.cut.contains(&(from, to)) || s.rng.random_bool(s.loss) {
                return Route::Lost;
            }
            let (lo, hi) = s.delay_ms;
            Route::Deliver(Duration::from_millis(s.rng.random_range(lo..=hi.max(lo))))
        })
        .unwrap_or(Route::Lost)
    }

    fn target(&self, to: NodeId) -> Option<Raft> {
        self.with(|s| s.nodes.get(&to).cloned()).flatten()
    }

    /// Carries one request from `from` to `to` and its response back, each leg delayed or
    /// lost as the network decides when it starts.
    async fn carry<T, E, F, Fut>(&self, from: NodeId, to: NodeId, call: F) -> RpcResult<T, E>
    where
        F: FnOnce(Raft) -> Fut,
        Fut: std::future::Future<Output = Result<T, RaftError<NodeId, E>>>,
        E: std::error::Error,
    {
        let lost = || RPCError::Network(NetworkError::new(&std::io::Error::other("lost")));
        match self.route(from, to) {
            Route::Lost => {
                tokio::time::sleep(LOSS_TIMEOUT).await;
                return Err(lost());
            }
            Route::Deliver(delay) => tokio::time::sleep(delay).await,
        }
        let Some(raft) = self.target(to) else {
            tokio::time::sleep(LOSS_TIMEOUT).await;
            return Err(lost());
        };
        let result = call(raft).await;
        match self.route(to, from) {
            Route::Lost => {
                tokio::time::sleep(LOSS_TIMEOUT).await;
                Err(lost())
            }
            Route::Deliver(delay) => {
                tokio::time::sleep(delay).await;
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(to, e)))
            }
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// openraft's network factory for one node.
pub struct SimNetworkFactory {
    from: NodeId,
    net: SimNet,
}

impl RaftNetworkFactory<TypeConfig> for SimNetworkFactory {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> SimPeer {
        SimPeer {
            from: self.from,
            target,
            net: self.net.clone(),
        }
    }
}

/// The link from one node to one target.
pub struct SimPeer {
    from: NodeId,
    target: NodeId,
    net: SimNet,
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.net
            .carry(self.from, self.target, |raft| async move {
                raft.append_entries(rpc).await
            })
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.net
            .carry(self.from, self.target, |raft| async move {
                raft.install_snapshot(rpc).await
            })
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.net
            .carry(self.from, self.target, |raft| async move {
                raft.vote(rpc).await
            })
            .await
    }
}
