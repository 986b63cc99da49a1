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

pub mod apply;
pub mod group;
pub mod keys;
pub mod network;
pub mod placement;
pub mod raft_service;
pub mod records;
pub mod rejoin;
pub mod service;
pub mod store;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::meta_raft_server::MetaRaftServer;
use cairn_proto::meta::meta_server::MetaServer;
use openraft::BasicNode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::group::{Group, GroupMap, LocalNode};
use crate::network::{LocalNodes, Network};
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
    /// Never runs where any state exists.
    pub bootstrap: bool,
    /// A blob node that has not registered (heartbeat) for this long is down: no new shards
    /// are placed on it.
    pub blob_down_after: Duration,
}

/// A running meta service.
pub struct RunningMeta {
    local_addr: SocketAddr,
    cluster_id: String,
    groups: GroupMap,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

fn raft_config(cluster_id: &str) -> Result<Arc<openraft::Config>, MetaError> {
    let config = openraft::Config {
        cluster_name: cluster_id.to_string(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
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
        Ok(LocalNode { id, raft, reader })
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

/// Opens the stores, starts the Raft nodes and serves gRPC.
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
        opened.push((node.id, log, sm, pristine));
    }
    let all_pristine = opened.iter().all(|(_, _, _, pristine)| *pristine);
    let mut cluster_id = None;
    for (_, log, _, _) in &opened {
        if cluster_id.is_none() {
            cluster_id = log.cluster_id()?;
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
    for (_, log, _, _) in &opened {
        if log.cluster_id()?.as_deref() != Some(cluster_id.as_str()) {
            log.set_cluster_id(&cluster_id)?;
        }
    }

    let raft_config = raft_config(&cluster_id)?;
    let local = LocalNodes::default();
    let network = Network::new(local.clone(), &cluster_id);
    let starter = NodeStarter {
        config: raft_config,
        network,
        local: local.clone(),
    };
    let mut nodes = Vec::new();
    let mut replacements = Vec::new();
    if all_pristine && config.bootstrap {
        for (id, log, sm, _) in opened {
            log.set_node_id(id)?;
            nodes.push(starter.start(id, log, sm).await?);
        }
        let members: BTreeMap<NodeId, BasicNode> = nodes
            .iter()
            .map(|n| (n.id, BasicNode::new(advertise.clone())))
            .collect();
        tracing::info!(%cluster_id, voters = ?members.keys().collect::<Vec<_>>(), "initializing a new meta cluster");
        nodes[0]
            .raft
            .initialize(members)
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?;
    } else {
        // Directories that kept their data start first, under the id stored with it.
        let mut wiped = Vec::new();
        for (configured_id, log, sm, pristine) in opened {
            if pristine {
                wiped.push((log, sm));
                continue;
            }
            let id = match log.node_id()? {
                Some(id) => id,
                None => {
                    log.set_node_id(configured_id)?;
                    configured_id
                }
            };
            nodes.push(starter.start(id, log, sm).await?);
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
    }

    let group = Group::new(nodes);
    for (old, new) in replacements {
        rejoin::spawn_replacement(group.clone(), old, new, advertise.clone());
    }
    let groups = GroupMap::single(group);
    let meta_service = MetaServer::new(service::MetaService::new(
        groups.clone(),
        config.blob_down_after,
    ))
    .max_decoding_message_size(16 << 20)
    .max_encoding_message_size(16 << 20);
    let raft_service =
        MetaRaftServer::new(raft_service::RaftService::new(local, cluster_id.clone()))
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(meta_service)
            .add_service(raft_service)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            })
            .instrument(tracing::info_span!("meta-grpc", %local_addr)),
    );
    tracing::info!(%local_addr, %cluster_id, "meta service listening");
    Ok(RunningMeta {
        local_addr,
        cluster_id,
        groups,
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

    /// The cluster's id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Waits until the group has a leader (after start-up or an election).
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<(), MetaError> {
        for node in self.groups.system_group().nodes() {
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
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.server).await;
        for group in self.groups.groups() {
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
