//! Cairn's S3 gateway: a stateless S3 front end (on `s3s`) that erasure-codes objects over
//! the blob servers and keeps their metadata in the meta service.
//!
//! A PUT asks meta for a placement, streams `k + m` shards to blob servers in parallel,
//! and commits the version in meta once a write quorum of shards is durable. A GET reads
//! the data shards of the stripes it needs and falls back to parity shards when one fails.
//! The gateway keeps no state of its own, so any number of them can serve one cluster.
//!
//! ```no_run
//! # async fn run() -> Result<(), cairn_gateway::GatewayError> {
//! let gw = cairn_gateway::start(cairn_gateway::GatewayConfig {
//!     listen: "127.0.0.1:9000".parse().unwrap(),
//!     meta_endpoints: vec!["http://127.0.0.1:7000".into()],
//!     access_key: "AKIDEXAMPLE".into(),
//!     secret_key: "secret".into(),
//!     region: "us-east-1".into(),
//!     body_idle_timeout: std::time::Duration::from_secs(60),
//!     shard_delete_grace: std::time::Duration::from_secs(30),
//!     shard_io: cairn_gateway::ShardIo::default(),
//!     healer: cairn_gateway::HealerConfig::default(),
//!     inline_max: cairn_gateway::DEFAULT_INLINE_MAX,
//!     put_buffer_bytes: cairn_gateway::DEFAULT_PUT_BUFFER_BYTES,
//!     local_blobs: Vec::new(),
//! })
//! .await?;
//! println!("S3 on http://{}", gw.local_addr());
//! gw.shutdown().await?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
// No unwrap()/expect() outside tests: what input, the network or a disk can reach must
// return an error, never panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod access;
mod attrs;
mod auth;
mod blob_pool;
mod body_digest;
mod bucket_policy;
mod bucket_tagging;
mod checksum;
mod conditions;
mod copy;
mod cors;
mod damage;
mod delete_many;
mod dto;
pub mod erasure;
mod error;
mod get;
mod heal;
mod iam;
mod inline;
mod lifecycle;
mod list;
mod meta_client;
mod multipart;
mod multipart_checksum;
mod names;
mod object_attributes;
mod object_lock;
pub mod policy;
mod presign;
mod put;
mod put_budget;
mod range;
mod request_id;
mod request_values;
mod s3;
mod server;
mod shard_feed;
mod shard_writers;
mod stripe_reader;
mod tagging;
mod versioning;

use std::net::SocketAddr;
use std::sync::Arc;

use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, info_span, Instrument};

pub use error::GatewayError;
pub use heal::HealerConfig;

/// How to run a gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address of the S3 HTTP listener, e.g. `127.0.0.1:9000`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// gRPC endpoints of the meta service (`http://127.0.0.1:7000`), tried in order; a call
    /// that finds no leader or no connection moves on to the next.
    pub meta_endpoints: Vec<String>,
    /// The root access key: requests signed with it may do everything (SigV4). Other
    /// users live in the meta service (`cairn admin user`).
    pub access_key: String,
    /// The secret key matching `access_key`.
    pub secret_key: String,
    /// The region this endpoint serves, e.g. `us-east-1`.
    pub region: String,
    /// How long a PUT body may deliver nothing before the request fails with
    /// `RequestTimeout` (a stalled client must not hold shard streams open forever).
    pub body_idle_timeout: std::time::Duration,
    /// How long the shards of an overwritten or deleted version are kept before they are
    /// deleted, so that GETs already streaming that version can finish.
    pub shard_delete_grace: std::time::Duration,
    /// The background healer of this gateway (see [`HealerConfig`]).
    pub healer: HealerConfig,
    /// How shard reads and writes treat slow or stuck blob servers.
    pub shard_io: ShardIo,
    /// Objects of at most this many bytes (with a declared length) are stored whole in their
    /// metadata record instead of as shards; 0 turns this off. At most [`INLINE_MAX_LIMIT`].
    pub inline_max: u64,
    /// Memory the sharded PUT and UploadPart bodies in progress may hold together (their
    /// stripes and shard queues); PUTs beyond it wait their turn before reading their body.
    pub put_buffer_bytes: u64,
    /// Blob servers running in this process (the embedded mode): shards for them are handed
    /// over in-process instead of through a loopback socket (`cairn_proto::local`).
    pub local_blobs: Vec<cairn_proto::local::LocalEndpoint>,
}

/// The default [`GatewayConfig::put_buffer_bytes`]: 256 MiB, sixteen 2+2 PUTs at once.
pub const DEFAULT_PUT_BUFFER_BYTES: u64 = 256 * 1024 * 1024;

/// The default [`GatewayConfig::inline_max`]: 16 KiB (docs/durability.md has the trade-off).
pub const DEFAULT_INLINE_MAX: u64 = 16 * 1024;

/// The largest [`GatewayConfig::inline_max`] accepted: every inline body travels in one Raft
/// entry to every meta voter and lives in every voter's database and snapshots.
pub const INLINE_MAX_LIMIT: u64 = 1024 * 1024;

/// How the gateway treats a slow or stuck blob server, so that one cannot stall S3 requests.
#[derive(Debug, Clone, Copy)]
pub struct ShardIo {
    /// GET: a stripe still incomplete this long after it was asked for opens one more shard
    /// (parity) and is rebuilt from the first `k` blocks to arrive (`--shard-hedge-ms`).
    pub hedge: std::time::Duration,
    /// GET and PUT: a shard stream that makes no progress for this long counts as failed: a
    /// read moves to another shard, a write drops the shard (`--shard-timeout`).
    pub timeout: std::time::Duration,
    /// PUT: once a write quorum of shards is durable (and while the body streams, once a
    /// quorum has taken a stripe), how long the other shards may lag before the write goes
    /// on without them; they are recorded as not written (`--put-straggler-ms`).
    pub straggler: std::time::Duration,
}

impl Default for ShardIo {
    fn default() -> Self {
        Self {
            hedge: std::time::Duration::from_millis(300),
            timeout: std::time::Duration::from_secs(10),
            straggler: std::time::Duration::from_secs(2),
        }
    }
}

/// A gateway that is serving; stop it with [`RunningGateway::shutdown`]. Dropping it also
/// closes the listener (in-flight requests still finish, but nothing waits for them).
pub struct RunningGateway {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), std::convert::Infallible>>,
    fetch_token: JoinHandle<()>,
    healer: Option<JoinHandle<()>>,
}

impl RunningGateway {
    /// The address the S3 listener is bound to (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for in-flight requests to finish (up to a
    /// grace period).
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        self.fetch_token.abort();
        if let Some(healer) = &self.healer {
            healer.abort();
        }
        if let Some(stop) = self.stop.take() {
            // An error means the server task is already gone; joining it says why.
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(never)) => match never {},
            Err(e) => Err(GatewayError::Server(e.to_string())),
        }
    }
}

impl Drop for RunningGateway {
    /// The background tasks (token refresh, healer) end with the gateway.
    fn drop(&mut self) {
        self.fetch_token.abort();
        if let Some(healer) = &self.healer {
            healer.abort();
        }
    }
}

/// How long start-up waits for the cluster secret before serving anyway.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// State shared by every request.
pub(crate) struct Gateway {
    pub(crate) meta: Arc<meta_client::Meta>,
    pub(crate) blobs: Arc<blob_pool::BlobPool>,
    /// What GETs read shards with.
    pub(crate) reads: Arc<stripe_reader::ReadContext>,
    pub(crate) shard_io: ShardIo,
    pub(crate) region: String,
    pub(crate) body_idle_timeout: std::time::Duration,
    pub(crate) shard_delete_grace: std::time::Duration,
    /// Largest object stored inline in its metadata record (bytes; 0 = none).
    pub(crate) inline_max: u64,
    /// Memory that sharded PUT bodies may hold at once.
    pub(crate) put_budget: put_budget::PutBudget,
}

/// Binds the listener and starts serving S3 (path-style requests, SigV4 with the root key
/// or a stored user's, each request authorized by [`policy`]) and `GET /health`. The meta service need not be up yet: it is dialed per request.
pub async fn start(config: GatewayConfig) -> Result<RunningGateway, GatewayError> {
    if config.access_key.is_empty() || config.secret_key.is_empty() {
        return Err(GatewayError::Config(
            "access key and secret key must not be empty".into(),
        ));
    }
    if config.inline_max > INLINE_MAX_LIMIT {
        return Err(GatewayError::Config(format!(
            "the inline object limit may be at most {INLINE_MAX_LIMIT} bytes"
        )));
    }
    if config.region.is_empty() {
        return Err(GatewayError::Config("region must not be empty".into()));
    }
    if config.shard_io.hedge.is_zero()
        || config.shard_io.timeout.is_zero()
        || config.shard_io.straggler.is_zero()
    {
        return Err(GatewayError::Config(
            "the shard hedge delay, shard timeout and straggler time must be positive".into(),
        ));
    }
    // Blob servers serve only members of their cluster: fetch the cluster secret (with the
    // root key pair) in the background; blob calls made before it arrives are refused.
    let token = cairn_proto::cluster_token::ClusterToken::default();
    let fetch_token = cairn_proto::cluster_token::fetch::spawn(
        config.meta_endpoints.clone(),
        cairn_proto::admin_auth::AdminCredentials {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
        },
        token.clone(),
    );
    if !token.wait_ready(TOKEN_WAIT).await {
        tracing::warn!(
            "no cluster secret yet; writes and reads fail until the meta service hands it out"
        );
    }
    let meta = Arc::new(meta_client::Meta::new(&config.meta_endpoints)?);
    let blobs = Arc::new(blob_pool::BlobPool::new(token, config.local_blobs.clone()));
    let damage = Arc::new(damage::DamageReports::new(Arc::clone(&meta)));
    let reads = Arc::new(stripe_reader::ReadContext {
        pool: Arc::clone(&blobs),
        tuning: stripe_reader::ReadTuning {
            hedge: config.shard_io.hedge,
            timeout: config.shard_io.timeout,
        },
        damage,
    });
    let gateway = Arc::new(Gateway {
        meta,
        blobs,
        reads,
        shard_io: config.shard_io,
        region: config.region.clone(),
        body_idle_timeout: config.body_idle_timeout,
        shard_delete_grace: config.shard_delete_grace,
        inline_max: config.inline_max,
        put_budget: put_budget::PutBudget::new(config.put_buffer_bytes),
    });

    let healer = heal::spawn(Arc::clone(&gateway), config.healer.clone());
    let cors_gateway = Arc::clone(&gateway);
    let users = Arc::new(iam::Users::new(
        cairn_proto::admin_auth::AdminCredentials {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
        },
        &config.meta_endpoints,
    )?);
    let access = access::Access::new(Arc::clone(&users), Arc::clone(&gateway));
    let mut builder = S3ServiceBuilder::new(s3::CairnS3::new(gateway));
    builder.set_auth(auth::CairnAuth::new(users));
    builder.set_access(access);
    builder.set_route(server::HealthRoute);
    let service = builder.build();

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = server::bound_addr(&listener, config.listen);
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(
        server::serve(listener, service, cors_gateway, stop_rx)
            .instrument(info_span!("s3_server", addr = %local_addr)),
    );
    info!(addr = %local_addr, region = %config.region, "S3 gateway listening");
    Ok(RunningGateway {
        local_addr,
        fetch_token,
        healer,
        stop: Some(stop_tx),
        task,
    })
}
