//! `cairn`: one binary, one subcommand per role.
//!
//! `cairn server DIR...` runs all three roles in one process (the embedded default);
//! `cairn meta`, `cairn blob` and `cairn gateway` run one role each; `cairn bench` is the S3
//! load tool. This file only parses flags and composes the three server libraries; everything
//! else lives in them, in `roles` and in `bench`.

mod bench;
mod roles;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Cairn: an S3-compatible, distributed, erasure-coded object store.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run meta + blob + gateway in one process over the given data directories (one per disk).
    Server(ServerArgs),
    /// Run a metadata-service node.
    Meta(MetaArgs),
    /// Run a blob server over the given data directories.
    Blob(BlobArgs),
    /// Run a stateless S3 gateway.
    Gateway(GatewayArgs),
    /// Load-test any S3 endpoint (put, get, mixed, list, delete, multipart), optionally
    /// beside this machine's limits (--baseline) or against a trivial in-process server
    /// (--self-test).
    Bench(Box<bench::BenchArgs>),
}

/// S3 endpoint settings, shared by every role that serves S3.
#[derive(Args, Debug, Clone)]
struct Credentials {
    /// S3 access key.
    #[arg(long, env = "CAIRN_ACCESS_KEY", default_value = roles::DEFAULT_ACCESS_KEY)]
    access_key: String,
    /// S3 secret key.
    #[arg(long, env = "CAIRN_SECRET_KEY", default_value = roles::DEFAULT_SECRET_KEY, hide_default_value = true)]
    secret_key: String,
    /// Region name reported to clients.
    #[arg(long, env = "CAIRN_REGION", default_value = "us-east-1")]
    region: String,
    /// Seconds a PUT body may deliver nothing before the request fails (RequestTimeout).
    #[arg(long, env = "CAIRN_BODY_IDLE_TIMEOUT", default_value_t = 60)]
    body_idle_timeout: u64,
    /// Seconds the shards of an overwritten or deleted version are kept, so that GETs
    /// already streaming it can finish.
    #[arg(long, env = "CAIRN_SHARD_DELETE_GRACE", default_value_t = 30)]
    shard_delete_grace: u64,
}

/// Where the meta service is, for the roles that use it.
#[derive(Args, Debug, Clone)]
struct MetaEndpoints {
    /// Meta service endpoints (http://HOST:PORT), comma-separated.
    #[arg(
        long = "meta",
        env = "CAIRN_META",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7000"
    )]
    endpoints: Vec<String>,
}

impl Credentials {
    fn options(self, address: SocketAddr) -> roles::S3Options {
        roles::S3Options {
            address,
            access_key: self.access_key,
            secret_key: self.secret_key,
            region: self.region,
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout),
            shard_delete_grace: std::time::Duration::from_secs(self.shard_delete_grace),
        }
    }
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Data directories, one per disk. Several give a single-node, multi-disk store.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// S3 listen address.
    #[arg(long, env = "CAIRN_ADDRESS", default_value = "127.0.0.1:9000")]
    address: SocketAddr,
    #[command(flatten)]
    credentials: Credentials,
}

#[derive(Args, Debug)]
struct MetaArgs {
    /// gRPC listen address.
    #[arg(long, env = "CAIRN_META_LISTEN", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Address other processes reach this node at (default: the listen address).
    #[arg(long, env = "CAIRN_META_ADVERTISE")]
    advertise: Option<String>,
    /// Directory of this node's RocksDB.
    #[arg(long, env = "CAIRN_META_DIR")]
    dir: PathBuf,
    /// Raft node id for a new cluster (a directory keeps the id it was created with).
    #[arg(long, env = "CAIRN_META_ID", default_value_t = 1)]
    id: u64,
    /// Seconds without a heartbeat after which a blob node is down (gets no new shards).
    #[arg(long, env = "CAIRN_BLOB_DOWN_AFTER", default_value_t = 30)]
    blob_down_after: u64,
}

#[derive(Args, Debug)]
struct BlobArgs {
    /// Data directories, one per disk.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "CAIRN_BLOB_LISTEN", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    /// Address gateways reach this server at (default: the listen address).
    #[arg(long, env = "CAIRN_BLOB_ADVERTISE")]
    advertise: Option<String>,
    #[command(flatten)]
    meta: MetaEndpoints,
}

#[derive(Args, Debug)]
struct GatewayArgs {
    /// S3 listen address.
    #[arg(long, env = "CAIRN_ADDRESS", default_value = "127.0.0.1:9000")]
    address: SocketAddr,
    #[command(flatten)]
    meta: MetaEndpoints,
    #[command(flatten)]
    credentials: Credentials,
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn")
        .build()?;
    runtime.block_on(async move {
        let done = match cli.command {
            Command::Server(a) => {
                roles::run_embedded(a.dirs, a.credentials.options(a.address)).await
            }
            Command::Meta(a) => {
                let down_after = std::time::Duration::from_secs(a.blob_down_after);
                roles::run_meta(a.listen, a.advertise, a.dir, a.id, down_after).await
            }
            Command::Blob(a) => {
                roles::run_blob(a.dirs, a.listen, a.advertise, a.meta.endpoints).await
            }
            Command::Gateway(a) => {
                roles::run_gateway(a.meta.endpoints, a.credentials.options(a.address)).await
            }
            Command::Bench(a) => return bench::run(*a).await,
        };
        done.map(|()| std::process::ExitCode::SUCCESS)
    })
}
