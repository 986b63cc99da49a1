//! Cairn's metadata service: buckets, object versions with their shard placement, and the
//! blob-node registry, replicated by an `openraft` group whose log and state machine live in
//! RocksDB.
//!
//! Layering, bottom up (modelled on TiKV's raftstore over storage):
//! - [`keys`], [`records`]: byte layout of what is stored;
//! - [`store`]: the RocksDB log store, state machine and read queries;
//! - [`apply`]: the deterministic meaning of each [`types::Command`];
//! - [`network`], [`raft_service`]: how nodes reach each other;
//! - [`group`]: one Raft group seen from this process (leader, linearizable reads);
//! - [`service`]: the `Meta` gRPC API;
//! - [`placement`]: erasure scheme and disk choice for new objects.
// No unwrap()/expect() outside tests: what input, the network or a disk can reach must
// return an error, never panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod apply;
pub mod drain;
pub mod forward;
pub mod group;
pub mod heal_trigger;
pub mod joined;
pub mod keys;
pub mod lifecycle;
pub mod network;
pub mod placement;
pub mod raft_service;
pub mod read_batch;
pub mod records;
pub mod rejoin;
pub mod service;
pub mod store;
pub mod types;
pub mod wire_bytes;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::admin::admin_server::AdminServer;
pub use cairn_proto::admin_auth::AdminCredentials;
use cairn_proto::meta::meta_raft_server::MetaRaftServer;
use cairn_proto::meta::meta_server::MetaServer;
use openraft::BasicNode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::forward::Forwarder;
use crate::group::{Group, GroupMap, LocalNode};
use crate::joined::{JoinState, Joined};
use crate::network::{LocalNodes, Network};
use crate::read_batch::ReadBatcher;
use crate::rejoin::Rejoin;
use crate::store::{MetaReader, StoreError};
use crate::types::{NodeId, Raft};

/// Failure to start or run the meta service.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The store could not be opened or read.
    #[error("meta store: {0}")]
    Store(#[from] StoreError),
    /// Binding or serving the gRPC listener failed.
    #[error("meta listener: {0}")]
    Io(#[from] std::io::Error),
    /// Raft refused to start or initialize.
    #[error("raft: {0}")]
    Raft(String),
    /// The configuration is unusable.
    #[error("meta config: {0}")]
    Config(String),
    /// gRPC serving failed.
    #[error("meta grpc: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// One meta node to run in this process.
#[derive(Debug, Clone)]
pub struct MetaNodeConfig {
    /// Raft node id this directory takes when it creates a new cluster. A directory keeps the
    /// id stored with its data afterwards; a wiped one rejoins under a new id ([`rejoin`]).
    pub id: NodeId,
    /// Directory of this node's RocksDB (log + state).
    pub dir: PathBuf,
}

/// Configuration of the meta service in one process.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// gRPC listen address (`Meta` and `MetaRaft` share it); port 0 picks one.
    pub listen: SocketAddr,
    /// Address other processes use to reach this one; defaults to the bound address.
    pub advertise: Option<String>,
    /// The meta nodes this process runs: one normally, up to three in the embedded
    /// multi-disk mode (one per disk).
    pub nodes: Vec<MetaNodeConfig>,
    /// Initialize a new cluster made of `nodes` when none of them has any Raft state.
    /// Never runs where any state exists. Without it, a single pristine node waits for the
    /// admin API to initialize it or add it to a cluster.
    pub bootstrap: bool,
    /// A blob node that has not registered (heartbeat) for this long is down: no new shards
    /// are placed on it.
    pub blob_down_after: Duration,
    /// Credentials the admin API requires; `None` refuses every admin call.
    pub admin: Option<AdminCredentials>,
    /// Log entries between snapshots ([`DEFAULT_SNAPSHOT_LOGS`]). A snapshot compacts the log;
    /// members further behind than the kept log catch up by snapshot install.
    pub snapshot_logs: u64,
    /// A blob node silent for this long counts as lost: the versions with shards on it are
    /// queued for healing (rebuilt elsewhere). Longer than `blob_down_after`, so a restart
    /// or a short outage costs no healing.
    pub node_lost_after: Duration,
    /// How often the lifecycle rules are applied and how long their day is.
    pub lifecycle: lifecycle::LifecycleSettings,
}

/// A running meta service.
pub struct RunningMeta {
    local_addr: SocketAddr,
    heal_trigger: JoinHandle<()>,
    lifecycle: JoinHandle<()>,
    joined: JoinState,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Default for [`MetaConfig::node_lost_after`].
pub const DEFAULT_NODE_LOST_AFTER: Duration = Duration::from_secs(600);

/// How long one snapshot chunk may take to send and, for the last, to install.
pub const INSTALL_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default for [`MetaConfig::snapshot_logs`].
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 10_000;

/// The Raft configuration of every meta node of cluster `cluster_id`, compacting the log into
/// a snapshot every `snapshot_logs` entries. (The deterministic simulation starts from it too.)
pub fn raft_config(
    cluster_id: &str,
    snapshot_logs: u64,
) -> Result<Arc<openraft::Config>, MetaError> {
    let snapshot_logs = snapshot_logs.max(1);
    let config = openraft::Config {
        cluster_name: cluster_id.to_string(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_logs),
        // openraft bounds each snapshot chunk RPC, and the last one includes the receiver's
        // install (replacing every column family and fsyncing), by this; its default of
        // 200 ms is shorter than installing a snapshot of a few tens of thousands of
        // records takes, so the leader gave up and resent the snapshot from the start
        // forever and a member added after the first compaction never caught up (Jepsen
        // finding 8, seen in every 10-minute run with membership changes).
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT.as_millis() as u64,
        // Keep a whole snapshot interval of log behind each snapshot (it costs only disk).
        // A member that has just installed snapshot S then finds every entry after S in the
        // leader's log until the leader has moved two intervals on, not a tenth of one: with
        // a tenth, a member re-added under a heavy write load installed a snapshot, fell
        // behind the next compaction before it had caught up from the log, and needed
        // another snapshot, over and over (Jepsen finding 11). A slightly lagging follower
        // also catches up from the log rather than by a whole snapshot.
        max_in_snapshot_log_to_keep: snapshot_logs,
        ..Default::default()
    };
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| MetaError::Raft(e.to_string()))?,
    ))
}

/// A new random cluster id.
fn new_cluster_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts Raft nodes of this process with a shared configuration and network.
struct NodeStarter {
    config: Arc<openraft::Config>,
    network: Network,
    local: LocalNodes,
}

impl NodeStarter {
    /// A starter for nodes of cluster `cluster_id` that reach in-process peers via `local`
    /// and take a snapshot every `snapshot_logs` entries.
    fn new(cluster_id: &str, local: LocalNodes, snapshot_logs: u64) -> Result<Self, MetaError> {
        Ok(Self {
            config: raft_config(cluster_id, snapshot_logs)?,
            network: Network::new(local.clone(), cluster_id),
            local,
        })
    }

    async fn start(
        &self,
        id: NodeId,
        log: store::LogStore,
        sm: store::StateMachine,
    ) -> Result<LocalNode, MetaError> {
        let reader = MetaReader::new(sm.db());
        let raft = Raft::new(id, self.config.clone(), self.network.clone(), log, sm)
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?;
        self.local.insert(id, raft.clone());
        let reads = ReadBatcher::spawn(id, raft.clone());
        Ok(LocalNode {
            id,
            raft,
            reader,
            reads,
        })
    }
}

/// How the `wiped` pristine directories rejoin, from the membership the established nodes
/// hold (see [`rejoin`]).
async fn rejoin_plans(established: &[LocalNode], wiped: usize) -> Result<Vec<Rejoin>, MetaError> {
    let Some(first) = established.first() else {
        return Err(MetaError::Config(
            "no meta directory with state to rejoin".into(),
        ));
    };
    let metrics = first
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| {
                m.membership_config
                    .membership()
                    .voter_ids()
                    .next()
                    .is_some()
            },
            "membership loaded",
        )
        .await
        .map_err(|e| MetaError::Raft(e.to_string()))?;
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let established_ids: BTreeSet<NodeId> = established.iter().map(|n| n.id).collect();
    let known: BTreeSet<NodeId> = membership
        .nodes()
        .map(|(id, _)| *id)
        .chain(established_ids.iter().copied())
        .collect();
    let plans = rejoin::plan(&voters, &known, &established_ids, wiped);
    if plans.len() < wiped {
        return Err(MetaError::Config(format!(
            "{wiped} empty meta directories but only {} missing voters to replace",
            plans.len()
        )));
    }
    Ok(plans)
}

/// A directory opened at start-up: its configured id, its stores, and whether Raft has ever
/// written to it.
struct OpenedDir {
    configured_id: NodeId,
    log: store::LogStore,
    sm: store::StateMachine,
    pristine: bool,
}

/// Starts the Raft nodes of directories that already belong to a cluster (or creates a new
/// cluster of them when `bootstrap` and all are pristine). Returns the cluster id, the group,
/// and the (old, new) voter replacements to run for wiped directories.
async fn start_member_nodes(
    opened: Vec<OpenedDir>,
    config: &MetaConfig,
    advertise: &str,
    local: &LocalNodes,
) -> Result<(String, Group, Vec<(NodeId, NodeId)>), MetaError> {
    let all_pristine = opened.iter().all(|d| d.pristine);
    let mut cluster_id = None;
    for dir in &opened {
        if cluster_id.is_none() {
            cluster_id = dir.log.cluster_id()?;
        }
    }
    let cluster_id = match cluster_id {
        Some(id) => id,
        None if all_pristine && config.bootstrap => new_cluster_id(),
        None => {
            return Err(MetaError::Config(
                "no cluster id found and not bootstrapping a new cluster".into(),
            ))
        }
    };
    for dir in &opened {
        if dir.log.cluster_id()?.as_deref() != Some(cluster_id.as_str()) {
            dir.log.set_cluster_id(&cluster_id)?;
        }
    }

    let starter = NodeStarter::new(&cluster_id, local.clone(), config.snapshot_logs)?;
    let mut nodes = Vec::new();
    let mut replacements = Vec::new();
    if all_pristine && config.bootstrap {
        for dir in opened {
            dir.log.set_node_id(dir.configured_id)?;
            nodes.push(starter.start(dir.configured_id, dir.log, dir.sm).await?);
        }
        let members: BTreeMap<NodeId, BasicNode> = nodes
            .iter()
            .map(|n| (n.id, BasicNode::new(advertise.to_string())))
            .collect();
        tracing::info!(%cluster_id, voters = ?members.keys().collect::<Vec<_>>(), "initializing a new meta cluster");
        nodes[0]
            .raft
            .initialize(members)
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?;
        let group = Group::new(nodes, Forwarder::new(&cluster_id));
        return Ok((cluster_id, group, replacements));
    }
    // Directories that kept their data start first, under the id stored with it. A directory
    // with a stored id but no Raft state yet joined a cluster and waits for its leader.
    let mut wiped = Vec::new();
    for dir in opened {
        let stored_id = dir.log.node_id()?;
        if dir.pristine && stored_id.is_none() {
            wiped.push((dir.log, dir.sm));
            continue;
        }
        let id = match stored_id {
            Some(id) => id,
            None => {
                dir.log.set_node_id(dir.configured_id)?;
                dir.configured_id
            }
        };
        nodes.push(starter.start(id, dir.log, dir.sm).await?);
    }
    if !wiped.is_empty() {
        let plans = rejoin_plans(&nodes, wiped.len()).await?;
        for ((log, sm), plan) in wiped.into_iter().zip(plans) {
            let id = match plan {
                Rejoin::Replace { old, new } => {
                    tracing::warn!(old, new, "a meta directory was wiped; it rejoins as a new node that will replace the old voter");
                    replacements.push((old, new));
                    new
                }
                Rejoin::SameId { id } => {
                    tracing::warn!(id, "a meta directory was wiped and the survivors are no majority; it rejoins under its old id");
                    id
                }
            };
            log.set_node_id(id)?;
            nodes.push(starter.start(id, log, sm).await?);
        }
    }
    let group = Group::new(nodes, Forwarder::new(&cluster_id));
    Ok((cluster_id, group, replacements))
}

/// Opens the stores, starts the Raft nodes and serves gRPC (`Meta`, `MetaRaft`, `Admin`).
///
/// A single pristine directory without `bootstrap` starts no Raft node: the process waits for
/// the admin API's `Initialize` or `Join` ([`joined`]).
pub async fn start(config: MetaConfig) -> Result<RunningMeta, MetaError> {
    if config.nodes.is_empty() {
        return Err(MetaError::Config("no meta node configured".into()));
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let local_addr = listener.local_addr()?;
    let advertise = config
        .advertise
        .clone()
        .unwrap_or_else(|| local_addr.to_string());

    let mut opened = Vec::new();
    for node in &config.nodes {
        std::fs::create_dir_all(&node.dir)?;
        let (log, sm) = store::open(&node.dir)?;
        let pristine = log.is_pristine()?;
        opened.push(OpenedDir {
            configured_id: node.id,
            log,
            sm,
            pristine,
        });
    }
    let mut unclaimed = true;
    for dir in &opened {
        if !dir.pristine || dir.log.cluster_id()?.is_some() {
            unclaimed = false;
        }
    }

    let local = LocalNodes::default();
    let joined = JoinState::default();
    let waiting = admin::WaitingNode::default();
    if unclaimed && !config.bootstrap {
        let mut opened = opened;
        let (Some(dir), true) = (opened.pop(), opened.is_empty()) else {
            return Err(MetaError::Config(
                "a meta process that waits to be initialized or added runs exactly one node".into(),
            ));
        };
        waiting.put(dir.log, dir.sm)?;
        tracing::info!(%advertise, "pristine meta node: waiting for `cairn admin init` or to be added to a cluster");
    } else {
        let (cluster_id, group, replacements) =
            start_member_nodes(opened, &config, &advertise, &local).await?;
        for (old, new) in replacements {
            rejoin::spawn_replacement(group.clone(), old, new, advertise.clone());
        }
        joined.set(Joined {
            cluster_id: Arc::from(cluster_id.as_str()),
            groups: GroupMap::single(group),
        });
    }

    let meta_service = MetaServer::new(service::MetaService::new(
        joined.clone(),
        config.blob_down_after,
    ))
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(16 << 20);
    let raft_service = MetaRaftServer::new(raft_service::RaftService::new(
        local.clone(),
        joined.clone(),
    ))
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(64 << 20);
    let admin_service = AdminServer::new(admin::AdminService::new(admin::AdminContext {
        joined: joined.clone(),
        local,
        waiting,
        advertise,
        credentials: config.admin.clone(),
        blob_down_after: config.blob_down_after,
        snapshot_logs: config.snapshot_logs,
    }));
    let heal_trigger = heal_trigger::spawn(joined.clone(), config.node_lost_after);
    let lifecycle = lifecycle::spawn(joined.clone(), config.lifecycle);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    // TCP_NODELAY: a reply larger than one segment (a 1000-key listing page, a Raft batch)
    // otherwise waits for the peer's delayed ACK, 40 ms a page on Linux.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(meta_service)
            .add_service(raft_service)
            .add_service(admin_service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            })
            .instrument(tracing::info_span!("meta-grpc", %local_addr)),
    );
    let cluster_id = joined.get().map(|j| j.cluster_id.to_string());
    tracing::info!(%local_addr, cluster_id = cluster_id.as_deref().unwrap_or("none yet"), "meta service listening");
    Ok(RunningMeta {
        local_addr,
        heal_trigger,
        lifecycle,
        joined,
        stop: Some(stop_tx),
        server,
    })
}

impl RunningMeta {
    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, the form clients take.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The cluster's id, once this process belongs to a cluster.
    pub fn cluster_id(&self) -> Option<&str> {
        self.joined.get().map(|j| &*j.cluster_id)
    }

    /// Waits until the group has a leader (after start-up or an election).
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), MetaError> {
        let Some(joined) = self.joined.get() else {
            return Err(MetaError::Config(
                "this meta node has not joined a cluster".into(),
            ));
        };
        for node in joined.groups.system_group().nodes() {
            node.raft
                .wait(Some(timeout))
                .metrics(|m| m.current_leader.is_some(), "leader elected")
                .await
                .map_err(|e| MetaError::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// Stops serving and shuts the Raft nodes down.
    pub async fn shutdown(mut self) -> Result<(), MetaError> {
        self.heal_trigger.abort();
        self.lifecycle.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.server).await;
        let groups = self.joined.get().map(|j| j.groups.groups()).unwrap_or(&[]);
        for group in groups {
            for node in group.nodes() {
                if let Err(e) = node.raft.shutdown().await {
                    tracing::warn!(node = node.id, error = %e, "raft shutdown failed");
                }
            }
        }
        match served {
            Ok(result) => result.map_err(MetaError::from),
            Err(e) => Err(MetaError::Raft(format!("server task: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jepsen finding 8: with openraft's 200 ms default, installing a snapshot of a busy
    /// cluster always outlasted the RPC and a new member never caught up.
    #[test]
    fn a_snapshot_chunk_may_take_as_long_as_a_large_install() {
        let config = raft_config("cluster", 100).expect("config");
        assert!(config.install_snapshot_timeout() >= Duration::from_secs(30));
    }

    /// Jepsen finding 11: a member that has just installed a snapshot must find the entries
    /// after it in the leader's log until the next compaction but one.
    #[test]
    fn a_whole_snapshot_interval_of_log_stays_behind_each_snapshot() {
        let config = raft_config("cluster", 10_000).expect("config");
        assert_eq!(config.max_in_snapshot_log_to_keep, 10_000);
        assert_eq!(
            config.snapshot_policy,
            openraft::SnapshotPolicy::LogsSinceLast(10_000)
        );
    }
}
