//! Registration with the metadata service, repeated as a heartbeat.
//!
//! A background task announces this server (node id, address, disks with free space) to the
//! meta service. It tries each endpoint in turn until one accepts, retries with exponential
//! backoff (200 ms doubling to 5 s) while none does, and once registered re-registers every
//! 10 s so the meta service sees fresh free space and knows the node is alive; a disk that
//! changes state (faulty, healthy again) or runs out of space triggers a registration at
//! once. Failures are logged and retried, never fatal.
//!
//! A node an operator removed from the cluster (`cairn admin blob remove`) is refused with
//! FAILED_PRECONDITION: it says so once at error level and then only asks again every
//! [`REMOVED_RETRY`], quietly; the meta service gives it no work either way.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::meta_client::MetaClient;
use cairn_proto::meta::RegisterBlobNodeRequest;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use crate::disk::DiskSet;

/// First retry delay after a failed registration round.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Delay between heartbeats once registered.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Connection timeout for one meta endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one registration call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Delay between registration attempts of a node the cluster removed.
const REMOVED_RETRY: Duration = Duration::from_secs(60);

/// What a blob server announces about itself besides its disks.
pub(crate) struct Announce {
    pub node_id: String,
    /// host:port gateways reach it at.
    pub address: String,
    /// Failure-domain label; empty = none.
    pub zone: String,
    /// Maintenance counters, sent with every heartbeat.
    pub stats: Arc<crate::stats::Stats>,
}

/// Spawns the registration task. It stops when `stop` becomes `true` or its sender is dropped.
pub(crate) fn spawn(
    endpoints: Vec<String>,
    announce: Announce,
    disks: Arc<DiskSet>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let span = tracing::info_span!("blob-register", node_id = %announce.node_id, address = %announce.address);
    tokio::spawn(run(endpoints, announce, disks, stop).instrument(span))
}

async fn run(
    endpoints: Vec<String>,
    announce: Announce,
    disks: Arc<DiskSet>,
    mut stop: watch::Receiver<bool>,
) {
    // Lazy channels: nothing connects until the first call, and each channel reconnects
    // by itself after a failure.
    let mut clients: Vec<(String, MetaClient<Channel>)> = Vec::new();
    for ep in endpoints {
        match Endpoint::from_shared(ep.clone()) {
            Ok(e) => {
                let channel = e
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT)
                    .connect_lazy();
                clients.push((ep, MetaClient::new(channel)));
            }
            Err(e) => tracing::warn!(endpoint = %ep, error = %e, "invalid meta endpoint, ignored"),
        }
    }
    if clients.is_empty() {
        tracing::warn!("no valid meta endpoint; this blob server will not register");
        return;
    }

    let mut preferred = 0usize;
    let mut backoff = BACKOFF_START;
    let mut registered = false;
    let mut removed = false;
    loop {
        let round = register_once(&mut clients, preferred, &announce, &disks);
        let outcome = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            outcome = round => outcome,
        };
        let delay = match outcome {
            Ok(index) => {
                if registered {
                    tracing::debug!(endpoint = %clients[index].0, "heartbeat sent");
                } else {
                    tracing::info!(endpoint = %clients[index].0, "registered with the meta service");
                }
                registered = true;
                removed = false;
                preferred = index;
                backoff = BACKOFF_START;
                HEARTBEAT_INTERVAL
            }
            Err(Failure { removed: true, .. }) => {
                if !removed {
                    tracing::error!(
                        "this blob node was removed from the cluster; it gets no work (stop it, or wipe its disks to join as a new node)"
                    );
                }
                removed = true;
                registered = false;
                REMOVED_RETRY
            }
            Err(Failure { errors, .. }) => {
                tracing::warn!(
                    errors = %errors.join("; "),
                    retry_in_ms = backoff.as_millis() as u64,
                    "registration with the meta service failed"
                );
                registered = false;
                let delay = backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                delay
            }
        };
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            // A disk turned faulty (or healthy again) or filled up: announce it now, so
            // placement stops choosing it within a round trip rather than a heartbeat.
            () = disks.changed() => tracing::info!("disk state changed; registering now"),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Why a registration round failed.
struct Failure {
    /// One error per endpoint tried.
    errors: Vec<String>,
    /// The meta service refused this node for good: it was removed from the cluster.
    removed: bool,
}

/// One round: tries every endpoint, starting with `preferred` (the last one that worked).
/// Returns the index of the endpoint that accepted, or why none did.
async fn register_once(
    clients: &mut [(String, MetaClient<Channel>)],
    preferred: usize,
    announce: &Announce,
    disks: &Arc<DiskSet>,
) -> Result<usize, Failure> {
    let disk_set = Arc::clone(disks);
    // Fresh free space on every heartbeat; statvfs is a syscall, so off the runtime.
    let disk_infos = tokio::task::spawn_blocking(move || disk_set.disk_infos())
        .await
        .map_err(|e| Failure {
            errors: vec![format!("collecting disk info: {e}")],
            removed: false,
        })?;
    let request = RegisterBlobNodeRequest {
        node_id: announce.node_id.clone(),
        address: announce.address.clone(),
        disks: disk_infos,
        zone: announce.zone.clone(),
        maintenance: Some(announce.stats.snapshot()),
    };
    let n = clients.len();
    let mut errors = Vec::new();
    for index in (0..n).map(|i| (preferred + i) % n) {
        let (endpoint, client) = &mut clients[index];
        match client.register_blob_node(request.clone()).await {
            Ok(_) => return Ok(index),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return Err(Failure {
                    errors: vec![format!("{endpoint}: {status}")],
                    removed: true,
                })
            }
            Err(status) => errors.push(format!("{endpoint}: {status}")),
        }
    }
    Err(Failure {
        errors,
        removed: false,
    })
}
