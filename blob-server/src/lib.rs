//! Cairn's blob server: erasure-coded shards stored as checksummed files on one or more
//! disks, served over gRPC (`proto/blob.proto`).
//!
//! The shard files are the only state: there is no index. See `layout` for where shards
//! live in a data directory, `shard_file` for the byte format, and `disk` for disk
//! identities. [`start`] opens the disks, serves gRPC and registers with the meta service;
//! [`RunningBlobServer::shutdown`] stops it gracefully.
//!
//! Modules, one job each:
//! - `layout`: shard key rules and paths inside a data directory;
//! - `shard_file`: the shard file format (writer, reader, verification);
//! - `disk`: opening data directories, identity files, free space;
//! - `store`: blocking put / open / delete of one shard, with the fsyncs;
//! - `service`: the gRPC `Blob` service;
//! - `body_end`: tells PutShard whether its stream ended or was cut off;
//! - `register`: registration and heartbeats with the meta service;
//! - `scrub`: the background scrubber (re-reads and verifies every shard, reports damage);
//! - `gc`: the garbage-collection walker (deletes shards the meta service calls garbage);
//! - `meta_link`: the calls to the meta service those two make;
//! - `stats`: their counters, reported by `NodeInfo`;
//! - `fsutil`: directory fsync and atomic small-file writes;
//! - `error`: [`BlobError`].
//!
//! Background tasks, each in its own tracing span of that name: `blob-grpc` (the server),
//! `blob-register` (registration and heartbeats), `blob-disk-check` (probes every disk every
//! 10 s, see `disk`), `blob-scrub` and `blob-damage-report` (see `scrub`), `blob-gc` (see
//! `gc`). All stop when [`RunningBlobServer::shutdown`] is called.

#![deny(unsafe_code)]
#![warn(missing_docs)]
// No unwrap()/expect() outside tests: what input, the network or a disk can reach must
// return an error, never panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod body_end;
mod disk;
mod error;
mod fsutil;
mod gc;
mod layout;
mod meta_link;
mod scrub;
mod stats;

/// Where the shard `shard_key` lives under the data directory `disk_root` (for operators'
/// tools; the key must be a valid shard key).
pub fn shard_path(disk_root: &std::path::Path, shard_key: &str) -> std::path::PathBuf {
    layout::shard_dir(disk_root, shard_key).join(shard_key)
}

/// Verifies a whole shard file (header, size, every chunk's checksum; the shard key is the
/// file name) and returns its data length: the scrubber's check, for operators' tools and
/// tests (blocking I/O).
pub fn verify_shard_file(path: &std::path::Path) -> Result<u64, BlobError> {
    let key = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BlobError::InvalidShardKey(path.display().to_string()))?;
    layout::validate_shard_key(key)?;
    let mut reader = shard_file::ShardReader::open(path, key)?;
    let len = reader.len();
    reader.read_range(0, len, |_| std::ops::ControlFlow::Continue(()))?;
    Ok(len)
}
mod register;
mod service;
mod shard_file;
mod store;

/// What the criterion benchmarks (`benches/`) call: not an API.
#[doc(hidden)]
pub mod bench_support {
    use std::path::Path;

    use bytes::Bytes;

    use crate::error::BlobError;
    use crate::store::{self, PutItem};

    /// Makes `root` a data directory that shards can be written to (its `shards` folder).
    pub fn prepare_root(root: &Path) -> Result<(), BlobError> {
        let shards = root.join(crate::layout::SHARDS_DIR);
        std::fs::create_dir_all(&shards)
            .map_err(|e| BlobError::io(format!("create {}", shards.display()), e))
    }

    /// Stores shard `key` under the data directory `root` (see [`prepare_root`]) from
    /// `pieces`, exactly as a `PutShard` does (temporary file, BLAKE3 per chunk, fsync,
    /// rename, directory fsync). Call it outside an async runtime: it blocks. Returns the
    /// shard's length.
    pub fn write_shard(root: &Path, key: &str, pieces: &[Bytes]) -> Result<u64, BlobError> {
        let (tx, rx) = tokio::sync::mpsc::channel(pieces.len() + 1);
        for piece in pieces {
            // Cannot fail: the channel has room for every item and its receiver is alive.
            let _ = tx.try_send(PutItem::Data(piece.clone()));
        }
        let _ = tx.try_send(PutItem::End);
        store::put_shard(root, key, rx)
    }

    /// Deletes shard `key` under `root`; whether it existed.
    pub fn delete_shard(root: &Path, key: &str) -> Result<bool, BlobError> {
        store::delete_shard(root, key)
    }
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::blob::blob_server::BlobServer;
use cairn_proto::cluster_token::{self, ClusterToken};
use cairn_proto::local::{LocalEndpoint, LocalShardData};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tracing::Instrument;

pub use error::BlobError;
pub use gc::GcConfig;
pub use scrub::ScrubConfig;

use disk::DiskSet;
use service::BlobService;

/// Largest gRPC message accepted or sent (a put may carry up to this much data per message).
const MAX_MESSAGE_SIZE: usize = 16 << 20;
/// How long [`RunningBlobServer::shutdown`] waits for in-flight requests before cutting
/// them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often every disk is probed (see `disk`): a disk that fails without any request
/// touching it (removed, remounted read-only) is marked FAULTY within this long.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// How to run a blob server.
#[derive(Debug, Clone)]
pub struct BlobServerConfig {
    /// Data directories, one per disk. Missing ones are created; unusable ones are reported
    /// as FAULTY, and starting fails only if none is usable.
    pub data_dirs: Vec<std::path::PathBuf>,
    /// Where to listen for gRPC, e.g. 127.0.0.1:0 for an ephemeral port.
    pub listen: std::net::SocketAddr,
    /// Address other components use to reach this server; defaults to the bound address.
    pub advertise: Option<String>,
    /// Meta service gRPC addresses ("http://127.0.0.1:7000"); empty = do not register.
    pub meta_endpoints: Vec<String>,
    /// Fixed node id; None = read from / write to the disks' identity files.
    pub node_id: Option<String>,
    /// Failure-domain label (rack, room) announced to the meta service; empty = none.
    pub zone: String,
    /// Who may call this server.
    pub auth: BlobAuth,
    /// The background scrubber.
    pub scrub: ScrubConfig,
    /// The garbage-collection walker (runs only with meta endpoints).
    pub gc: GcConfig,
}

/// Who may call a blob server.
#[derive(Debug, Clone)]
pub enum BlobAuth {
    /// Members of its cluster only: every call must carry the token derived from the cluster
    /// secret (`cairn_proto::cluster_token`), which the server fetches from `meta_endpoints`
    /// with these root credentials. Until it has, it refuses every call.
    Cluster(cairn_proto::admin_auth::AdminCredentials),
    /// Anyone: only for tests of the blob server on its own.
    Open,
}

/// A started blob server. Dropping it without [`RunningBlobServer::shutdown`] also stops
/// the server and its background tasks, but without waiting for them.
pub struct RunningBlobServer {
    local_addr: SocketAddr,
    advertise: String,
    node_id: String,
    /// This server for callers in this process (see [`Self::local_endpoint`]).
    local: LocalEndpoint,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    register: Option<JoinHandle<()>>,
    fetch_token: Option<JoinHandle<()>>,
    /// Disk check, scrubber, damage reports, GC walker.
    maintenance: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningBlobServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningBlobServer")
            .field("local_addr", &self.local_addr)
            .field("advertise", &self.advertise)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl RunningBlobServer {
    /// The address this server registered with the meta service: the one placements name.
    pub fn advertised_address(&self) -> &str {
        &self.advertise
    }

    /// This server for a caller in this process, under the address it registered: the gRPC
    /// service it serves, with the same checks (cluster token, stream-end tracking), and its
    /// shard data calls, which skip gRPC encoding and those checks. `cairn_proto::local`
    /// explains what each saves and what the second gives up.
    pub fn local_endpoint(&self) -> LocalEndpoint {
        self.local.clone()
    }

    /// The address the gRPC server is bound to (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// This server's node id, shared by all its disks.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Stops accepting, finishes in-flight requests, stops background tasks.
    ///
    /// Requests still running after 30 s are cut off.
    pub async fn shutdown(self) -> Result<(), BlobError> {
        // Ignored error: no receiver left means everything has stopped already.
        let _ = self.stop.send(true);
        if let Some(fetch) = &self.fetch_token {
            fetch.abort();
        }
        if let Some(register) = self.register {
            register.await?;
        }
        for task in self.maintenance {
            // Each task watches `stop` and ends at its next step; a blocking job in flight
            // (one slice read, one directory listing) finishes first.
            task.await?;
        }
        let mut server = self.server;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!(
                    grace_secs = SHUTDOWN_GRACE.as_secs(),
                    "in-flight requests did not finish in time; cutting them off"
                );
                server.abort();
            }
        }
        tracing::info!(node_id = %self.node_id, "blob server stopped");
        Ok(())
    }
}

/// Opens the disks, binds the listener, starts serving gRPC and (if meta endpoints are
/// given) the registration task.
pub async fn start(config: BlobServerConfig) -> Result<RunningBlobServer, BlobError> {
    if config.node_id.as_deref() == Some("") {
        return Err(BlobError::InvalidConfig("node_id must not be empty".into()));
    }
    let dirs = config.data_dirs.clone();
    let configured_node_id = config.node_id.clone();
    let disks =
        tokio::task::spawn_blocking(move || DiskSet::open(&dirs, configured_node_id.as_deref()))
            .await??;
    let disks = Arc::new(disks);
    let node_id = disks.node_id().to_owned();
    let stats = Arc::new(stats::Stats::default());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| BlobError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| BlobError::io("read the listener's address", e))?;
    let advertise = match config.advertise {
        Some(a) => a,
        None => {
            if local_addr.ip().is_unspecified() {
                tracing::warn!(
                    %local_addr,
                    "listening on an unspecified address without `advertise`: other \
                     components will be told an address they cannot reach"
                );
            }
            local_addr.to_string()
        }
    };

    let (stop, stop_rx) = watch::channel(false);
    let blob_service = Arc::new(BlobService::new(Arc::clone(&disks), Arc::clone(&stats)));
    let shard_data: Arc<dyn LocalShardData> = blob_service.clone();
    let service = BlobServer::from_arc(blob_service)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    // TCP_NODELAY: small gRPC frames (replies, stream ends) must not wait for Nagle.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut server_stop = stop_rx.clone();
    let signal = async move {
        // Err means the handle was dropped: stop as well.
        let _ = server_stop.wait_for(|s| *s).await;
    };
    let token = ClusterToken::default();
    let fetch_token = match &config.auth {
        BlobAuth::Cluster(credentials) => Some(cluster_token::fetch::spawn(
            config.meta_endpoints.clone(),
            credentials.clone(),
            token.clone(),
        )),
        BlobAuth::Open => None,
    };
    let open = matches!(config.auth, BlobAuth::Open);
    if !open && !token.wait_ready(Duration::from_secs(10)).await {
        tracing::warn!(
            "no cluster secret yet; every call is refused until the meta service hands it out"
        );
    }
    let service = InterceptedService::new(service, move |request: tonic::Request<()>| {
        if open {
            return Ok(request);
        }
        token.check(request.metadata()).inspect_err(|status| {
            if status.code() == tonic::Code::PermissionDenied {
                let peer = request.remote_addr().map(|a| a.to_string());
                tracing::warn!(
                    peer = peer.as_deref().unwrap_or("?"),
                    "refused a call from outside the cluster"
                );
            }
        })?;
        Ok(request)
    });
    let service = body_end::TrackBodyEnd(service);
    let local = LocalEndpoint {
        address: advertise.clone(),
        service: cairn_proto::local::local_service(service.clone()),
        shard_data,
    };
    let server = tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, signal)
            .instrument(tracing::info_span!("blob-grpc", %local_addr)),
    );

    let meta = meta_link::MetaLink::new(&config.meta_endpoints).map(Arc::new);
    let mut maintenance = vec![spawn_disk_check(Arc::clone(&disks), stop_rx.clone())];
    maintenance.extend(scrub::spawn(
        Arc::clone(&disks),
        Arc::clone(&stats),
        config.scrub.clone(),
        meta.clone(),
        stop_rx.clone(),
    ));
    if let Some(meta) = &meta {
        maintenance.extend(gc::spawn(
            Arc::clone(&disks),
            Arc::clone(&stats),
            config.gc.clone(),
            Arc::clone(meta),
            stop_rx.clone(),
        ));
    }

    let register = (!config.meta_endpoints.is_empty()).then(|| {
        register::spawn(
            config.meta_endpoints.clone(),
            register::Announce {
                node_id: node_id.clone(),
                address: advertise.clone(),
                zone: config.zone.clone(),
                stats: Arc::clone(&stats),
            },
            Arc::clone(&disks),
            stop_rx,
        )
    });
    tracing::info!(%local_addr, %advertise, %node_id, "blob server started");
    Ok(RunningBlobServer {
        local_addr,
        advertise,
        node_id,
        local,
        stop,
        server,
        register,
        fetch_token,
        maintenance,
    })
}

/// Spawns `blob-disk-check`: probes every disk every [`DISK_CHECK_INTERVAL`], so a disk that
/// fails while idle is marked FAULTY (and announced) without waiting for a request to hit it.
fn spawn_disk_check(disks: Arc<DiskSet>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let node_id = disks.node_id().to_owned();
    let task = async move {
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(DISK_CHECK_INTERVAL) => {}
            }
            let set = Arc::clone(&disks);
            if let Err(e) = tokio::task::spawn_blocking(move || set.check_all()).await {
                tracing::error!(error = %e, "disk probe failed to run");
            }
        }
    };
    tokio::spawn(task.instrument(tracing::info_span!("blob-disk-check", %node_id)))
}

#[cfg(test)]
mod tests;
