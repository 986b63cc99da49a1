//! The `Admin` gRPC service: cluster status and meta membership changes.
//!
//! Membership grows one node at a time, always through the leader:
//! 1. the leader reserves a new node id through the log ([`Command::AllocateNodeId`]: the id
//!    is the entry's index, so no id is ever handed out twice, even after a removal);
//! 2. it calls `Join` on the pristine node, which stores the cluster id and its node id
//!    (fsynced) and starts an empty Raft node that answers only this cluster;
//! 3. it adds the node as a learner and waits until it has caught up (by log or snapshot);
//! 4. it promotes the learner to voter (joint consensus inside openraft).
//!
//! A crash between steps leaves at worst a learner or a joined-but-unused node behind, both
//! visible in `Status` and removable with `RemoveMetaMember`; committed data is never at
//! risk, because a node only votes once it is a voter, and it becomes one only after it has
//! caught up.

mod blob_nodes;
mod iam;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::admin::admin_client::AdminClient;
use cairn_proto::admin::admin_server::Admin;
use cairn_proto::admin::*;
use cairn_proto::admin_auth::AdminCredentials;
use openraft::{BasicNode, ChangeMembers, ServerState};
use tonic::{Request, Response, Status};

use cairn_proto::meta::{Bucket, HealItem, HealReason, HealStats};
use prost::Message;

use crate::forward::Forwarder;
use crate::group::{now_ms, Group, GroupMap, LocalNode};
use crate::joined::{JoinState, Joined};
use crate::network::LocalNodes;
use crate::placement;
use crate::service::group_status;
use crate::store::{LogStore, StateMachine};
use crate::types::{Command, NodeId, Response as Applied};
use crate::{new_cluster_id, MetaError, NodeStarter};

/// How long a new member may take to catch up before AddMetaMember gives up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// The stores of a pristine node that waits for `Initialize` or `Join`.
#[derive(Clone, Default)]
pub struct WaitingNode {
    inner: Arc<Mutex<Option<(LogStore, StateMachine)>>>,
}

impl WaitingNode {
    /// Parks the stores of the pristine node.
    pub(crate) fn put(&self, log: LogStore, sm: StateMachine) -> Result<(), MetaError> {
        let mut slot = self
            .inner
            .lock()
            .map_err(|_| MetaError::Config("waiting-node lock poisoned".into()))?;
        *slot = Some((log, sm));
        Ok(())
    }

    /// Takes the stores out, once: the first Initialize or Join wins.
    /// (A poisoned lock is taken over here and in `put_back`: the slot is a plain `Option`,
    /// never half-written, and skipping it would lose the stores or read as "initialized".)
    fn take(&self) -> Option<(LogStore, StateMachine)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn put_back(&self, log: LogStore, sm: StateMachine) {
        *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((log, sm));
    }
}

/// What the admin service works with.
pub struct AdminContext {
    /// The cluster of this process, once it has one.
    pub joined: JoinState,
    /// Raft handles of this process's nodes (for the in-process transport).
    pub local: LocalNodes,
    /// The pristine node's stores, while it waits.
    pub waiting: WaitingNode,
    /// Address other members reach this process at.
    pub advertise: String,
    /// Required credentials; `None` refuses every call.
    pub credentials: Option<AdminCredentials>,
    /// After how long without a heartbeat a blob node counts as down.
    pub blob_down_after: Duration,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
}

/// Serves `Admin`.
pub struct AdminService {
    ctx: AdminContext,
    /// One membership change at a time from this node.
    changes: tokio::sync::Mutex<()>,
}

impl AdminService {
    /// A service over `ctx`.
    pub fn new(ctx: AdminContext) -> Self {
        Self {
            ctx,
            changes: tokio::sync::Mutex::new(()),
        }
    }

    fn authorize<T>(&self, request: &Request<T>, method: &str) -> Result<(), Status> {
        let Some(credentials) = &self.ctx.credentials else {
            return Err(Status::permission_denied(
                "the admin API is disabled: this node has no admin credentials",
            ));
        };
        credentials
            .verify(request.metadata(), method, now_ms())
            .map_err(|e| {
                let peer = request.remote_addr().map(|a| a.to_string());
                tracing::warn!(method, peer = peer.as_deref().unwrap_or("?"), error = %e, "refused an admin call");
                Status::unauthenticated(e.to_string())
            })
    }

    /// The cluster this node belongs to. A node that has not joined one answers
    /// `Unavailable`, as a follower without a leader does: an admin client with several
    /// endpoints then tries the next one. (It was `FailedPrecondition`, a final answer, and
    /// `cairn admin meta add X` given every endpoint failed whenever X, still pristine, was
    /// listed first.)
    fn joined(&self) -> Result<&Joined, Status> {
        self.ctx
            .joined
            .get()
            .ok_or_else(|| Status::unavailable("this meta node has not joined a cluster"))
    }

    fn group(&self) -> Result<&Group, Status> {
        self.joined().map(|j| j.groups.system_group())
    }

    /// Starts the waiting node as `id` of `cluster_id` and records the cluster.
    async fn start_waiting_node(&self, cluster_id: &str, id: NodeId) -> Result<LocalNode, Status> {
        let Some((log, sm)) = self.ctx.waiting.take() else {
            return Err(Status::failed_precondition(
                "this meta node already belongs to a cluster",
            ));
        };
        let fresh =
            log.is_pristine().map_err(internal)? && log.cluster_id().map_err(internal)?.is_none();
        if !fresh {
            self.ctx.waiting.put_back(log, sm);
            return Err(Status::failed_precondition(
                "this meta node has state: refusing to initialize or join",
            ));
        }
        log.set_cluster_id(cluster_id).map_err(internal)?;
        log.set_node_id(id).map_err(internal)?;
        let starter = NodeStarter::new(cluster_id, self.ctx.local.clone(), self.ctx.snapshot_logs)
            .map_err(internal)?;
        let node = starter.start(id, log, sm).await.map_err(internal)?;
        self.ctx.joined.set(Joined {
            cluster_id: Arc::from(cluster_id),
            groups: GroupMap::single(Group::new(vec![node.clone()], Forwarder::new(cluster_id))),
        });
        Ok(node)
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn raft_status(status: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {status}"))
}

/// The node whose view `Status` reports: a local leader if there is one.
fn reporting_node(group: &Group) -> Option<&LocalNode> {
    group
        .nodes()
        .iter()
        .find(|n| n.raft.metrics().borrow().state == ServerState::Leader)
        .or_else(|| group.nodes().first())
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Learner => "learner",
        ServerState::Candidate => "candidate",
        ServerState::Shutdown => "shutdown",
    }
}

/// Calls `Join` on the pristine node at `address`.
async fn call_join(
    address: &str,
    credentials: &AdminCredentials,
    cluster_id: &str,
    node_id: NodeId,
) -> Result<(), Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| Status::invalid_argument(format!("bad address {address:?}: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach {address}: {e}")))?;
    let mut request = Request::new(JoinRequest {
        cluster_id: cluster_id.to_string(),
        node_id,
    });
    credentials.sign(request.metadata_mut(), "Join", now_ms());
    AdminClient::new(channel).join(request).await?;
    Ok(())
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.authorize(&request, "Status")?;
        let mut reply = StatusResponse {
            now_ms: now_ms(),
            blob_down_after_ms: self.ctx.blob_down_after.as_millis() as i64,
            ..Default::default()
        };
        let Some(joined) = self.ctx.joined.get() else {
            return Ok(Response::new(reply));
        };
        reply.initialized = true;
        reply.cluster_id = joined.cluster_id.to_string();
        let Some(node) = reporting_node(joined.groups.system_group()) else {
            return Ok(Response::new(reply));
        };
        let metrics = node.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let leader_address = metrics
            .current_leader
            .and_then(|id| membership.get_node(&id))
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        reply.raft = Some(RaftStatus {
            node_id: node.id,
            role: role_name(metrics.state).to_string(),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |l| l.index),
            leader_id: metrics.current_leader.unwrap_or(0),
            leader_address,
            snapshot_index: metrics.snapshot.map_or(0, |l| l.index),
            purged_index: metrics.purged.map_or(0, |l| l.index),
        });
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        reply.members = membership
            .nodes()
            .map(|(id, n)| MetaMember {
                id: *id,
                address: n.addr.clone(),
                voter: voters.contains(id),
                matched_index: metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| l.map_or(0, |l| l.index)),
            })
            .collect();
        reply.blob_nodes = node.reader.blob_nodes().map_err(internal)?;
        // Counting what draining nodes hold reads every version: only the leader does it (the
        // CLI asks it for the registry; the other members are asked for their Raft state).
        if metrics.state == ServerState::Leader {
            reply.drains = blob_nodes::drain_progress(&node.reader, &reply.blob_nodes)?;
        }
        Ok(Response::new(reply))
    }

    async fn initialize(
        &self,
        request: Request<InitializeRequest>,
    ) -> Result<Response<InitializeResponse>, Status> {
        self.authorize(&request, "Initialize")?;
        let _one_at_a_time = self.changes.lock().await;
        let cluster_id = new_cluster_id();
        let node = self.start_waiting_node(&cluster_id, 1).await?;
        let members: std::collections::BTreeMap<NodeId, BasicNode> =
            [(node.id, BasicNode::new(self.ctx.advertise.clone()))].into();
        node.raft.initialize(members).await.map_err(raft_status)?;
        tracing::info!(%cluster_id, node_id = node.id, "initialized a new meta cluster");
        Ok(Response::new(InitializeResponse {
            cluster_id,
            node_id: node.id,
        }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        self.authorize(&request, "Join")?;
        let _one_at_a_time = self.changes.lock().await;
        let JoinRequest {
            cluster_id,
            node_id,
        } = request.into_inner();
        if cluster_id.is_empty() || node_id == 0 {
            return Err(Status::invalid_argument(
                "join needs a cluster id and a node id",
            ));
        }
        let node = self.start_waiting_node(&cluster_id, node_id).await?;
        tracing::info!(%cluster_id, node_id = node.id, "joined a meta cluster; waiting for the leader");
        Ok(Response::new(JoinResponse {}))
    }

    async fn add_meta_member(
        &self,
        request: Request<AddMetaMemberRequest>,
    ) -> Result<Response<AddMetaMemberResponse>, Status> {
        self.authorize(&request, "AddMetaMember")?;
        let AddMetaMemberRequest {
            address,
            learner_only,
        } = request.into_inner();
        let _one_at_a_time = self.changes.lock().await;
        let group = self.group()?;
        let leader = group.leader().await.map_err(group_status)?;
        let cluster_id = self
            .ctx
            .joined
            .get()
            .map(|j| j.cluster_id.to_string())
            .unwrap_or_default();
        let credentials = self
            .ctx
            .credentials
            .as_ref()
            .ok_or_else(|| Status::permission_denied("no admin credentials"))?;
        {
            let metrics = leader.raft.metrics().borrow().clone();
            let taken = metrics
                .membership_config
                .membership()
                .nodes()
                .any(|(_, n)| n.addr == address);
            if taken {
                return Err(Status::already_exists(format!(
                    "{address} is already a meta member"
                )));
            }
        }
        let node_id = match group.write(Command::AllocateNodeId).await {
            Ok(Applied::NodeId { id }) => id,
            Ok(other) => return Err(internal(format!("unexpected reply {other:?}"))),
            Err(e) => return Err(group_status(e)),
        };
        tracing::info!(node_id, %address, "adding a meta member: joining it");
        call_join(&address, credentials, &cluster_id, node_id).await?;
        tracing::info!(node_id, %address, "adding a meta member: catching up as a learner");
        let node = BasicNode::new(address.clone());
        match tokio::time::timeout(
            CATCH_UP_TIMEOUT,
            leader.raft.add_learner(node_id, node, true),
        )
        .await
        {
            Ok(result) => {
                result.map_err(raft_status)?;
            }
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "meta node {node_id} at {address} did not catch up in {CATCH_UP_TIMEOUT:?}; it stays a learner"
                )))
            }
        }
        // openraft counts a learner as caught up once it lags by less than its replication
        // threshold (thousands of entries); wait until it holds everything the leader had
        // when it was added, so a new voter never starts out far behind.
        let target = leader.raft.metrics().borrow().last_log_index.unwrap_or(0);
        leader
            .raft
            .wait(Some(CATCH_UP_TIMEOUT))
            .metrics(
                |m| {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&node_id))
                        .and_then(|matched| *matched)
                        .is_some_and(|matched| matched.index >= target)
                },
                "new member caught up",
            )
            .await
            .map_err(|e| {
                Status::deadline_exceeded(format!(
                    "meta node {node_id} at {address} did not catch up: {e}; it stays a learner"
                ))
            })?;
        if !learner_only {
            tracing::info!(node_id, %address, "adding a meta member: promoting it to voter");
            leader
                .raft
                .change_membership(ChangeMembers::AddVoterIds([node_id].into()), false)
                .await
                .map_err(raft_status)?;
        }
        tracing::info!(node_id, %address, learner_only, "meta member added");
        Ok(Response::new(AddMetaMemberResponse { node_id }))
    }

    async fn remove_meta_member(
        &self,
        request: Request<RemoveMetaMemberRequest>,
    ) -> Result<Response<RemoveMetaMemberResponse>, Status> {
        self.authorize(&request, "RemoveMetaMember")?;
        let node_id = request.into_inner().node_id;
        let _one_at_a_time = self.changes.lock().await;
        let group = self.group()?;
        let leader = group.leader().await.map_err(group_status)?;
        let metrics = leader.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if membership.get_node(&node_id).is_none() {
            return Err(Status::not_found(format!("no meta member {node_id}")));
        }
        let change = if voters.contains(&node_id) {
            if voters.len() == 1 {
                return Err(Status::failed_precondition(
                    "refusing to remove the last voter",
                ));
            }
            ChangeMembers::RemoveVoters([node_id].into())
        } else {
            ChangeMembers::RemoveNodes([node_id].into())
        };
        leader
            .raft
            .change_membership(change, false)
            .await
            .map_err(raft_status)?;
        tracing::info!(node_id, "meta member removed");
        Ok(Response::new(RemoveMetaMemberResponse {}))
    }

    async fn set_bucket_scheme(
        &self,
        request: Request<SetBucketSchemeRequest>,
    ) -> Result<Response<SetBucketSchemeResponse>, Status> {
        self.authorize(&request, "SetBucketScheme")?;
        let SetBucketSchemeRequest { bucket, scheme } = request.into_inner();
        let scheme = match scheme {
            Some(s) => Some(
                placement::validate_scheme(s.data_shards, s.parity_shards)
                    .map_err(Status::invalid_argument)?,
            ),
            None => None,
        };
        let group = self.joined()?.groups.for_bucket(&bucket);
        let applied = group
            .write(Command::SetBucketScheme {
                name: bucket.clone(),
                scheme: scheme.map(|s| s.encode_to_vec()),
            })
            .await
            .map_err(group_status)?;
        match applied {
            Applied::Bucket { bucket: raw } => {
                let record = Bucket::decode(raw.as_slice()).map_err(internal)?;
                tracing::info!(%bucket, scheme = ?record.scheme, "bucket erasure scheme set");
                Ok(Response::new(SetBucketSchemeResponse {
                    bucket: Some(record),
                }))
            }
            Applied::Error { .. } => Err(Status::not_found(format!("no bucket {bucket:?}"))),
            other => Err(internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn get_cluster_secret(
        &self,
        request: Request<GetClusterSecretRequest>,
    ) -> Result<Response<GetClusterSecretResponse>, Status> {
        self.authorize(&request, "GetClusterSecret")?;
        let group = self.group()?;
        let reader = group.linearizable_reader().await.map_err(group_status)?;
        if let Some(secret) = reader.cluster_secret().map_err(internal)? {
            return Ok(Response::new(GetClusterSecretResponse { secret }));
        }
        // The first caller creates it; concurrent creators all get the one committed first.
        let bytes: [u8; 32] = rand::random();
        let proposal: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match group
            .write(Command::SetClusterSecret { secret: proposal })
            .await
            .map_err(group_status)?
        {
            Applied::Secret { secret } => {
                tracing::info!("cluster secret created");
                Ok(Response::new(GetClusterSecretResponse { secret }))
            }
            other => Err(internal(format!("unexpected reply {other:?}"))),
        }
    }

    async fn locate_object(
        &self,
        request: Request<LocateObjectRequest>,
    ) -> Result<Response<LocateObjectResponse>, Status> {
        self.authorize(&request, "LocateObject")?;
        let LocateObjectRequest { bucket, key } = request.into_inner();
        let reader = self
            .joined()?
            .groups
            .for_bucket(&bucket)
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let record = reader
            .bucket(&bucket)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no bucket {bucket:?}")))?;
        let object = reader
            .object(record.id, &key)
            .map_err(internal)?
            // A key whose current version is a delete marker has nothing to locate.
            .filter(|o| !o.delete_marker)
            .ok_or_else(|| Status::not_found(format!("no object {bucket}/{key}")))?;
        let named: BTreeSet<&str> = object
            .shards
            .iter()
            .chain(object.parts.iter().flat_map(|p| p.shards.iter()))
            .map(|s| s.node_id.as_str())
            .collect();
        let nodes = reader
            .blob_nodes()
            .map_err(internal)?
            .into_iter()
            .filter(|n| named.contains(n.node_id.as_str()))
            .collect();
        Ok(Response::new(LocateObjectResponse {
            object: Some(object),
            nodes,
            now_ms: now_ms(),
            blob_down_after_ms: self.ctx.blob_down_after.as_millis() as i64,
        }))
    }

    async fn heal_status(
        &self,
        request: Request<HealStatusRequest>,
    ) -> Result<Response<HealStatusResponse>, Status> {
        self.authorize(&request, "HealStatus")?;
        let reader = self
            .group()?
            .linearizable_reader()
            .await
            .map_err(group_status)?;
        let items = reader.heal_items().map_err(internal)?;
        let totals = reader.heal_stats().map_err(internal)?;
        Ok(Response::new(heal_status(items, totals, now_ms())))
    }

    async fn start_heal(
        &self,
        request: Request<StartHealRequest>,
    ) -> Result<Response<StartHealResponse>, Status> {
        self.authorize(&request, "StartHeal")?;
        let StartHealRequest { bucket, prefix } = request.into_inner();
        let group = self.group()?;
        let reader = group.linearizable_reader().await.map_err(group_status)?;
        let record = reader
            .bucket(&bucket)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no bucket {bucket:?}")))?;
        let mut queued = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (versions, next) = reader
                .versions_page(record.id, &prefix, after.as_deref(), HEAL_PASS_BATCH)
                .map_err(internal)?;
            queued += versions.len() as u64;
            let items = versions
                .iter()
                .map(|v| crate::apply::heal::item_for(v, HealReason::Pass).encode_to_vec())
                .collect();
            group
                .write(Command::QueueHeal { items })
                .await
                .map_err(group_status)?;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        tracing::info!(%bucket, %prefix, queued, "heal pass queued");
        Ok(Response::new(StartHealResponse { queued }))
    }

    async fn drain_blob_node(
        &self,
        request: Request<DrainBlobNodeRequest>,
    ) -> Result<Response<DrainBlobNodeResponse>, Status> {
        self.authorize(&request, "DrainBlobNode")?;
        Ok(Response::new(self.drain(request.into_inner()).await?))
    }

    async fn undrain_blob_node(
        &self,
        request: Request<UndrainBlobNodeRequest>,
    ) -> Result<Response<UndrainBlobNodeResponse>, Status> {
        self.authorize(&request, "UndrainBlobNode")?;
        self.undrain(request.into_inner()).await?;
        Ok(Response::new(UndrainBlobNodeResponse {}))
    }

    async fn remove_blob_node(
        &self,
        request: Request<RemoveBlobNodeRequest>,
    ) -> Result<Response<RemoveBlobNodeResponse>, Status> {
        self.authorize(&request, "RemoveBlobNode")?;
        Ok(Response::new(self.remove(request.into_inner()).await?))
    }

    async fn add_user(
        &self,
        request: Request<AddUserRequest>,
    ) -> Result<Response<AddUserResponse>, Status> {
        self.authorize(&request, "AddUser")?;
        Ok(Response::new(
            self.iam_add_user(request.into_inner()).await?,
        ))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        self.authorize(&request, "ListUsers")?;
        Ok(Response::new(self.iam_list_users().await?))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        self.authorize(&request, "GetUser")?;
        Ok(Response::new(
            self.iam_get_user(request.into_inner()).await?,
        ))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        self.authorize(&request, "UpdateUser")?;
        Ok(Response::new(
            self.iam_update_user(request.into_inner()).await?,
        ))
    }

    async fn remove_user(
        &self,
        request: Request<RemoveUserRequest>,
    ) -> Result<Response<RemoveUserResponse>, Status> {
        self.authorize(&request, "RemoveUser")?;
        Ok(Response::new({
            self.iam_remove_user(request.into_inner()).await?;
            RemoveUserResponse {}
        }))
    }

    async fn put_policy(
        &self,
        request: Request<PutPolicyRequest>,
    ) -> Result<Response<PutPolicyResponse>, Status> {
        self.authorize(&request, "PutPolicy")?;
        Ok(Response::new({
            self.iam_put_policy(request.into_inner()).await?;
            PutPolicyResponse {}
        }))
    }

    async fn list_policies(
        &self,
        request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        self.authorize(&request, "ListPolicies")?;
        Ok(Response::new(self.iam_list_policies().await?))
    }

    async fn remove_policy(
        &self,
        request: Request<RemovePolicyRequest>,
    ) -> Result<Response<RemovePolicyResponse>, Status> {
        self.authorize(&request, "RemovePolicy")?;
        Ok(Response::new({
            self.iam_remove_policy(request.into_inner()).await?;
            RemovePolicyResponse {}
        }))
    }
}

/// Versions queued per Raft entry by `StartHeal`.
const HEAL_PASS_BATCH: usize = 1000;
/// Queued items `HealStatus` shows.
const HEAL_SAMPLE: usize = 20;

/// The heal progress figures from the queue and the totals, at `now`.
fn heal_status(items: Vec<HealItem>, totals: HealStats, now: i64) -> HealStatusResponse {
    let queued_bytes = items.iter().map(|i| i.size).sum();
    let active_objects = items.iter().filter(|i| i.lease_until_ms > now).count() as u64;
    let elapsed_ms = now.saturating_sub(totals.window_start_ms).max(1_000);
    let rate = if totals.window_bytes == 0 {
        0.0
    } else {
        totals.window_bytes as f64 * 1000.0 / elapsed_ms as f64
    };
    let eta_seconds = if items.is_empty() {
        0
    } else if rate > 0.0 {
        (queued_bytes as f64 / rate).ceil() as i64
    } else {
        -1
    };
    HealStatusResponse {
        queued_objects: items.len() as u64,
        queued_bytes,
        active_objects,
        totals: Some(totals),
        rate_bytes_per_sec: rate,
        eta_seconds,
        sample: items.into_iter().take(HEAL_SAMPLE).collect(),
    }
}
