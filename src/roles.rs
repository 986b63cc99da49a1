//! Composition of the three roles into processes: the embedded server and the single roles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_proto::meta::meta_client::MetaClient;
use cairn_proto::meta::ListBlobNodesRequest;

/// Default S3 access key, used (with a warning) when none is configured.
pub const DEFAULT_ACCESS_KEY: &str = "cairnadmin";
/// Default S3 secret key, used (with a warning) when none is configured.
pub const DEFAULT_SECRET_KEY: &str = "cairnadmin";

/// How many meta voters the embedded mode runs: one per disk, at most three. Each keeps a
/// full copy of the metadata on its own disk, so wiping one disk loses no metadata.
const MAX_EMBEDDED_VOTERS: usize = 3;

/// A blob node silent for this long is down (it heartbeats every 10 s).
pub const DEFAULT_BLOB_DOWN_AFTER: Duration = Duration::from_secs(30);

/// How long start-up waits for the pieces to find each other.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How the S3 endpoint behaves, for every role that serves S3.
pub struct S3Options {
    pub address: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub body_idle_timeout: Duration,
    pub shard_delete_grace: Duration,
    /// Bytes per second the gateway's healer may read; 0 = no healer.
    pub heal_rate_bytes_per_sec: u64,
    pub shard_io: cairn_gateway::ShardIo,
    /// Largest object kept inline in the metadata (bytes; 0 = none).
    pub inline_max: u64,
    /// Memory budget of the sharded PUT bodies in progress (bytes).
    pub put_buffer_bytes: u64,
}

impl S3Options {
    /// The gateway configuration for these options over `meta_endpoints`.
    fn gateway_config(&self, meta_endpoints: Vec<String>) -> cairn_gateway::GatewayConfig {
        self.gateway_config_with(meta_endpoints, Vec::new())
    }

    /// [`Self::gateway_config`], with blob servers of this process called in-process.
    fn gateway_config_with(
        &self,
        meta_endpoints: Vec<String>,
        local_blobs: Vec<cairn_proto::local::LocalEndpoint>,
    ) -> cairn_gateway::GatewayConfig {
        cairn_gateway::GatewayConfig {
            listen: self.address,
            meta_endpoints,
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            region: self.region.clone(),
            body_idle_timeout: self.body_idle_timeout,
            shard_delete_grace: self.shard_delete_grace,
            healer: cairn_gateway::HealerConfig {
                rate_bytes_per_sec: self.heal_rate_bytes_per_sec,
                ..Default::default()
            },
            shard_io: self.shard_io,
            inline_max: self.inline_max,
            put_buffer_bytes: self.put_buffer_bytes,
            local_blobs,
        }
    }
}

fn warn_default_credentials(access_key: &str, secret_key: &str) {
    if access_key == DEFAULT_ACCESS_KEY || secret_key == DEFAULT_SECRET_KEY {
        tracing::warn!(
            "using the default credentials; set CAIRN_ACCESS_KEY and CAIRN_SECRET_KEY before exposing this server"
        );
    }
}

/// Resolves when the process is asked to stop (Ctrl-C, or SIGTERM on Unix).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Waits until the meta service lists blob node `node_id` at `address`, so that the first PUT
/// finds disks and the first GET finds shards.
///
/// Why the address matters: the embedded blob server listens on a fresh port at every start,
/// but keeps its node id, so after a restart the registry still lists the node, at the old
/// port, until the new registration commits. The meta service names shard locations by the
/// registered address, so a GET served in that window would dial a dead port and find none of
/// its shards (docs/jepsen.md, finding 12).
async fn wait_for_blob_registration(
    meta_endpoint: &str,
    node_id: &str,
    address: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(mut client) = MetaClient::connect(meta_endpoint.to_string()).await {
            if let Ok(reply) = client.list_blob_nodes(ListBlobNodesRequest {}).await {
                let listed = reply.get_ref().nodes.iter();
                if listed
                    .filter(|n| n.node_id == node_id)
                    .any(|n| n.address == address)
                {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "blob server {node_id} did not register its address {address} with the meta \
                 service in time"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How a blob server looks after its disks in the background.
pub struct Maintenance {
    pub scrub: cairn_blob::ScrubConfig,
    pub gc: cairn_blob::GcConfig,
}

/// `cairn server DIR...`: meta (one voter per disk, up to three) + blob server over every
/// disk + S3 gateway, in one process.
pub async fn run_embedded(
    dirs: Vec<PathBuf>,
    s3: S3Options,
    maintenance: Maintenance,
    lifecycle: cairn_meta::lifecycle::LifecycleSettings,
) -> anyhow::Result<()> {
    warn_default_credentials(&s3.access_key, &s3.secret_key);
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let meta_nodes = dirs
        .iter()
        .take(MAX_EMBEDDED_VOTERS)
        .enumerate()
        .map(|(i, dir)| cairn_meta::MetaNodeConfig {
            id: i as u64 + 1,
            dir: dir.join("meta"),
        })
        .collect();
    let meta = cairn_meta::start(cairn_meta::MetaConfig {
        listen: loopback,
        advertise: None,
        nodes: meta_nodes,
        bootstrap: true,
        blob_down_after: DEFAULT_BLOB_DOWN_AFTER,
        admin: Some(cairn_meta::AdminCredentials {
            access_key: s3.access_key.clone(),
            secret_key: s3.secret_key.clone(),
        }),
        snapshot_logs: cairn_meta::DEFAULT_SNAPSHOT_LOGS,
        node_lost_after: cairn_meta::DEFAULT_NODE_LOST_AFTER,
        lifecycle,
    })
    .await
    .context("starting the meta service")?;
    meta.wait_for_leader(STARTUP_TIMEOUT)
        .await
        .context("waiting for a meta leader")?;

    let blob = cairn_blob::start(cairn_blob::BlobServerConfig {
        data_dirs: dirs.iter().map(|d| d.join("blob")).collect(),
        listen: loopback,
        advertise: None,
        meta_endpoints: vec![meta.endpoint()],
        node_id: None,
        zone: String::new(),
        auth: cairn_blob::BlobAuth::Cluster(cairn_meta::AdminCredentials {
            access_key: s3.access_key.clone(),
            secret_key: s3.secret_key.clone(),
        }),
        scrub: maintenance.scrub,
        gc: maintenance.gc,
    })
    .await
    .context("starting the blob server")?;
    wait_for_blob_registration(&meta.endpoint(), blob.node_id(), blob.advertised_address()).await?;

    // The gateway hands shards to this process's blob server without a socket, unless
    // CAIRN_BLOB_IN_PROCESS is 0, false or off (a diagnostic switch: it measures what the
    // socket costs).
    let over_socket = std::env::var("CAIRN_BLOB_IN_PROCESS")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "off"));
    let local_blobs = if over_socket {
        tracing::info!(address = %blob.advertised_address(), "blob transport: loopback gRPC");
        Vec::new()
    } else {
        tracing::info!(address = %blob.advertised_address(), "blob transport: in-process");
        vec![blob.local_endpoint()]
    };
    let gateway = cairn_gateway::start(s3.gateway_config_with(vec![meta.endpoint()], local_blobs))
        .await
        .context("starting the S3 gateway")?;

    let endpoint = format!("http://{}", gateway.local_addr());
    println!("Cairn is running.");
    println!("  S3 endpoint: {endpoint}");
    println!("  Access key:  {}", s3.access_key);
    println!("  Secret key:  {}", s3.secret_key);
    println!("  Region:      {}", s3.region);
    println!("  Disks:       {}", dirs.len());
    println!(
        "  Admin:       cairn admin --meta {} status   (also: heal status, locate BUCKET KEY)",
        meta.endpoint()
    );
    println!("Try:");
    println!(
        "  AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} aws --endpoint-url {endpoint} s3 mb s3://my-bucket",
        s3.access_key, s3.secret_key
    );

    shutdown_signal().await;
    gateway.shutdown().await.context("stopping the gateway")?;
    blob.shutdown().await.context("stopping the blob server")?;
    meta.shutdown().await.context("stopping the meta service")?;
    Ok(())
}

/// How `cairn meta` runs.
pub struct MetaOptions {
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    pub dir: PathBuf,
    /// Create a one-node cluster at once when `dir` is pristine.
    pub init: bool,
    pub blob_down_after: Duration,
    /// A blob node silent this long is lost: its objects are healed elsewhere.
    pub node_lost_after: Duration,
    pub admin: cairn_meta::AdminCredentials,
    /// Log entries between snapshots.
    pub snapshot_logs: u64,
    /// The lifecycle scanner.
    pub lifecycle: cairn_meta::lifecycle::LifecycleSettings,
}

/// `cairn meta`: one meta node. On a pristine directory it creates a one-node cluster when
/// asked to (`--init`), and otherwise waits for `cairn admin init` or `cairn admin meta add`.
pub async fn run_meta(options: MetaOptions) -> anyhow::Result<()> {
    warn_default_credentials(&options.admin.access_key, &options.admin.secret_key);
    let meta = cairn_meta::start(cairn_meta::MetaConfig {
        listen: options.listen,
        advertise: options.advertise,
        nodes: vec![cairn_meta::MetaNodeConfig {
            id: 1,
            dir: options.dir,
        }],
        bootstrap: options.init,
        blob_down_after: options.blob_down_after,
        admin: Some(options.admin),
        snapshot_logs: options.snapshot_logs,
        node_lost_after: options.node_lost_after,
        lifecycle: options.lifecycle,
    })
    .await
    .context("starting the meta service")?;
    match meta.cluster_id() {
        Some(cluster) => println!("META {} cluster {cluster}", meta.local_addr()),
        None => println!(
            "META {} waiting to be initialized or added",
            meta.local_addr()
        ),
    }
    shutdown_signal().await;
    meta.shutdown().await.context("stopping the meta service")?;
    Ok(())
}

/// How `cairn blob` runs.
pub struct BlobOptions {
    pub dirs: Vec<PathBuf>,
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    pub meta: Vec<String>,
    pub zone: String,
    /// Root key pair, to fetch the cluster secret.
    pub admin: cairn_meta::AdminCredentials,
    pub maintenance: Maintenance,
}

/// `cairn blob DIR...`: one blob server.
pub async fn run_blob(options: BlobOptions) -> anyhow::Result<()> {
    let blob = cairn_blob::start(cairn_blob::BlobServerConfig {
        data_dirs: options.dirs,
        listen: options.listen,
        advertise: options.advertise,
        meta_endpoints: options.meta,
        node_id: None,
        zone: options.zone,
        auth: cairn_blob::BlobAuth::Cluster(options.admin),
        scrub: options.maintenance.scrub,
        gc: options.maintenance.gc,
    })
    .await
    .context("starting the blob server")?;
    println!("BLOB {} node {}", blob.local_addr(), blob.node_id());
    shutdown_signal().await;
    blob.shutdown().await.context("stopping the blob server")?;
    Ok(())
}

/// `cairn gateway`: one stateless S3 gateway.
pub async fn run_gateway(meta: Vec<String>, s3: S3Options) -> anyhow::Result<()> {
    warn_default_credentials(&s3.access_key, &s3.secret_key);
    let gateway = cairn_gateway::start(s3.gateway_config(meta))
        .await
        .context("starting the S3 gateway")?;
    println!("S3 http://{}", gateway.local_addr());
    shutdown_signal().await;
    gateway.shutdown().await.context("stopping the gateway")?;
    Ok(())
}
