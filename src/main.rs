//! `cairn`: one binary, one subcommand per role.
//!
//! `cairn server DIR...` runs all three roles in one process (the embedded default);
//! `cairn meta`, `cairn blob` and `cairn gateway` run one role each; `cairn bench` is the S3
//! load tool. This file only parses flags and composes the three server libraries; everything
//! else lives in them, in `roles` and in `bench`.
// No unwrap()/expect() outside tests: what input, the network or a disk can reach must
// return an error, never panic. Tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod bench;
mod config;
mod roles;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

/// Cairn: an S3-compatible, distributed, erasure-coded object store.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// TOML file with defaults for the role's flags (see docs/configuration.md). Command-line
    /// flags and environment variables take precedence over it.
    #[arg(long, global = true, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
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
    /// Measure committed Raft writes/s of a fresh in-process meta service alone (no S3).
    BenchMeta(bench::meta::MetaBenchArgs),
    /// Administer a cluster: status, meta membership, healing, blob-node drain and removal.
    Admin(admin::AdminArgs),
}

/// The root key pair: S3 requests and the admin API are signed with it.
#[derive(Args, Debug, Clone)]
struct Keys {
    /// Root access key (S3 and admin API).
    #[arg(long, env = "CAIRN_ACCESS_KEY", default_value = roles::DEFAULT_ACCESS_KEY)]
    access_key: String,
    /// Root secret key (S3 and admin API).
    #[arg(long, env = "CAIRN_SECRET_KEY", default_value = roles::DEFAULT_SECRET_KEY, hide_default_value = true)]
    secret_key: String,
}

impl Keys {
    fn admin(self) -> cairn_meta::AdminCredentials {
        cairn_meta::AdminCredentials {
            access_key: self.access_key,
            secret_key: self.secret_key,
        }
    }
}

/// S3 endpoint settings, shared by every role that serves S3.
#[derive(Args, Debug, Clone)]
struct Credentials {
    #[command(flatten)]
    keys: Keys,
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
    /// MiB per second of shard data this gateway's healer may read to rebuild damaged
    /// objects (0 turns its healer off).
    #[arg(long, env = "CAIRN_HEAL_RATE", default_value_t = 64)]
    heal_rate: u64,
    /// Milliseconds a GET waits for a stripe before it also reads a parity shard and rebuilds
    /// the stripe from the first k blocks to arrive (a slow blob server costs about this).
    #[arg(long, env = "CAIRN_SHARD_HEDGE_MS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    shard_hedge_ms: u64,
    /// Seconds a shard stream may make no progress before it counts as failed: a GET reads
    /// another shard (and reports the damage), a PUT drops the shard.
    #[arg(long, env = "CAIRN_SHARD_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    shard_timeout: u64,
    /// Milliseconds a PUT waits for the other shards once a write quorum is durable (or has
    /// taken a stripe); shards later than that are recorded as not written, left to healing.
    #[arg(long, env = "CAIRN_PUT_STRAGGLER_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    put_straggler_ms: u64,
    /// Objects of at most this many bytes are kept whole in the metadata (replicated by the
    /// meta service's Raft log) instead of as erasure-coded shards: one durable write per PUT
    /// instead of k+m shard files. 0 stores every object as shards. See docs/durability.md.
    #[arg(long, env = "CAIRN_INLINE_MAX", default_value_t = cairn_gateway::DEFAULT_INLINE_MAX, value_parser = clap::value_parser!(u64).range(0..=cairn_gateway::INLINE_MAX_LIMIT))]
    inline_max: u64,
    /// MiB of memory the sharded PUT bodies in progress may hold together; further PUTs wait
    /// their turn before reading their body (about 16 MiB per 2+2 PUT).
    #[arg(long, env = "CAIRN_PUT_BUFFER_MIB", default_value_t = cairn_gateway::DEFAULT_PUT_BUFFER_BYTES >> 20, value_parser = clap::value_parser!(u64).range(1..))]
    put_buffer_mib: u64,
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
            access_key: self.keys.access_key,
            secret_key: self.keys.secret_key,
            region: self.region,
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout),
            shard_delete_grace: std::time::Duration::from_secs(self.shard_delete_grace),
            heal_rate_bytes_per_sec: self.heal_rate.saturating_mul(1 << 20),
            shard_io: cairn_gateway::ShardIo {
                hedge: std::time::Duration::from_millis(self.shard_hedge_ms),
                timeout: std::time::Duration::from_secs(self.shard_timeout),
                straggler: std::time::Duration::from_millis(self.put_straggler_ms),
            },
            inline_max: self.inline_max,
            put_buffer_bytes: self.put_buffer_mib.saturating_mul(1 << 20),
        }
    }
}

/// Background maintenance of a blob server's disks: scrubbing and garbage collection
/// (docs/durability.md).
#[derive(Args, Debug, Clone)]
struct Maintenance {
    /// MiB per second the scrubber may read to re-verify shard files (all disks of the server
    /// together); 0 turns scrubbing off.
    #[arg(long, env = "CAIRN_SCRUB_RATE", default_value_t = 8)]
    scrub_rate: u64,
    /// Seconds from the start of one scrub pass over a disk to the start of the next (the
    /// next starts at once if a pass takes longer). Default: 30 days.
    #[arg(long, env = "CAIRN_SCRUB_INTERVAL", default_value_t = 30 * 24 * 3600)]
    scrub_interval: u64,
    /// Seconds a shard file must have existed before garbage collection asks the meta service
    /// about it; longer than any upload takes.
    #[arg(long, env = "CAIRN_GC_GRACE", default_value_t = 3600)]
    gc_grace: u64,
    /// Seconds between two garbage-collection walks over the disks; 0 turns it off.
    #[arg(long, env = "CAIRN_GC_INTERVAL", default_value_t = 6 * 3600)]
    gc_interval: u64,
}

impl Maintenance {
    fn scrub(&self) -> cairn_blob::ScrubConfig {
        cairn_blob::ScrubConfig {
            rate_bytes_per_sec: self.scrub_rate.saturating_mul(1 << 20),
            interval: std::time::Duration::from_secs(self.scrub_interval),
        }
    }

    fn gc(&self) -> cairn_blob::GcConfig {
        cairn_blob::GcConfig {
            grace: std::time::Duration::from_secs(self.gc_grace),
            interval: std::time::Duration::from_secs(self.gc_interval),
        }
    }
}

/// When the meta service applies buckets' lifecycle rules (docs/configuration.md).
#[derive(Args, Debug, Clone)]
struct Lifecycle {
    /// Seconds between two passes of the lifecycle rules over the buckets that have them.
    #[arg(long, env = "CAIRN_LIFECYCLE_INTERVAL", default_value_t = 3600)]
    lifecycle_interval: u64,
    /// For tests only: the length of a lifecycle "day" in seconds (due dates are then not
    /// rounded to midnight). The `x-amz-expiration` header keeps real days.
    #[arg(
        long,
        env = "CAIRN_LIFECYCLE_DAY_SECS",
        default_value_t = 86_400,
        hide = true
    )]
    lifecycle_day_secs: u64,
}

impl Lifecycle {
    fn settings(&self) -> cairn_meta::lifecycle::LifecycleSettings {
        cairn_meta::lifecycle::LifecycleSettings {
            interval: std::time::Duration::from_secs(self.lifecycle_interval.max(1)),
            day: std::time::Duration::from_secs(self.lifecycle_day_secs.max(1)),
        }
    }
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Data directories, one per disk. Several give a single-node, multi-disk store.
    #[arg(required = true, env = "CAIRN_DATA_DIRS", value_delimiter = ',')]
    dirs: Vec<PathBuf>,
    /// S3 listen address.
    #[arg(long, env = "CAIRN_ADDRESS", default_value = "127.0.0.1:9000")]
    address: SocketAddr,
    #[command(flatten)]
    credentials: Credentials,
    #[command(flatten)]
    maintenance: Maintenance,
    #[command(flatten)]
    lifecycle: Lifecycle,
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
    /// On a pristine directory, create a new one-node cluster at once. Without it a pristine
    /// node waits for `cairn admin init` or to be added with `cairn admin meta add`.
    #[arg(long, env = "CAIRN_META_INIT")]
    init: bool,
    /// Seconds without a heartbeat after which a blob node is down (gets no new shards).
    #[arg(long, env = "CAIRN_BLOB_DOWN_AFTER", default_value_t = 30)]
    blob_down_after: u64,
    /// Seconds without a heartbeat after which a blob node is lost: its objects are healed
    /// (their shards rebuilt on other nodes).
    #[arg(long, env = "CAIRN_NODE_LOST_AFTER", default_value_t = cairn_meta::DEFAULT_NODE_LOST_AFTER.as_secs())]
    node_lost_after: u64,
    /// Raft log entries between snapshots; members further behind catch up by snapshot.
    #[arg(long, env = "CAIRN_META_SNAPSHOT_LOGS", default_value_t = cairn_meta::DEFAULT_SNAPSHOT_LOGS)]
    snapshot_logs: u64,
    #[command(flatten)]
    lifecycle: Lifecycle,
    #[command(flatten)]
    keys: Keys,
}

#[derive(Args, Debug)]
struct BlobArgs {
    /// Data directories, one per disk.
    #[arg(required = true, env = "CAIRN_BLOB_DIRS", value_delimiter = ',')]
    dirs: Vec<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "CAIRN_BLOB_LISTEN", default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    /// Address gateways reach this server at (default: the listen address).
    #[arg(long, env = "CAIRN_BLOB_ADVERTISE")]
    advertise: Option<String>,
    /// Failure-domain label (rack, room, availability zone). Placement spreads an object's
    /// shards over zones first, then over nodes. Empty: no zone.
    #[arg(long, env = "CAIRN_BLOB_ZONE", default_value = "")]
    zone: String,
    #[command(flatten)]
    meta: MetaEndpoints,
    /// The root key pair: the blob server uses it to fetch its cluster's secret, and then
    /// serves only callers that prove membership.
    #[command(flatten)]
    keys: Keys,
    #[command(flatten)]
    maintenance: Maintenance,
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
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    config::load(&args, &Cli::command())?;
    let cli = Cli::parse_from(args);
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
                roles::run_embedded(
                    a.dirs,
                    a.credentials.options(a.address),
                    roles::Maintenance {
                        scrub: a.maintenance.scrub(),
                        gc: a.maintenance.gc(),
                    },
                    a.lifecycle.settings(),
                )
                .await
            }
            Command::Meta(a) => {
                roles::run_meta(roles::MetaOptions {
                    listen: a.listen,
                    advertise: a.advertise,
                    dir: a.dir,
                    init: a.init,
                    blob_down_after: std::time::Duration::from_secs(a.blob_down_after),
                    node_lost_after: std::time::Duration::from_secs(a.node_lost_after),
                    admin: a.keys.admin(),
                    snapshot_logs: a.snapshot_logs,
                    lifecycle: a.lifecycle.settings(),
                })
                .await
            }
            Command::Blob(a) => {
                roles::run_blob(roles::BlobOptions {
                    dirs: a.dirs,
                    listen: a.listen,
                    advertise: a.advertise,
                    meta: a.meta.endpoints,
                    zone: a.zone,
                    admin: a.keys.admin(),
                    maintenance: roles::Maintenance {
                        scrub: a.maintenance.scrub(),
                        gc: a.maintenance.gc(),
                    },
                })
                .await
            }
            Command::Gateway(a) => {
                roles::run_gateway(a.meta.endpoints, a.credentials.options(a.address)).await
            }
            Command::Admin(a) => admin::run(a).await,
            Command::Bench(a) => return bench::run(*a).await,
            Command::BenchMeta(a) => bench::meta::run(a).await,
        };
        done.map(|()| std::process::ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_file_settings_map_to_the_flags_environment_variables() {
        let text = r#"
access_key = "root"
[meta]
listen = "10.0.0.1:7000"
dir = "/var/lib/cairn/meta"
blob_down_after = 45
init = true
[blob]
dirs = ["/d1", "/d2"]
meta = ["http://a:7000", "http://b:7000"]
scrub_rate = 16
gc-grace = 7200
[server]
scrub_interval = 86400
gc_interval = 0
"#;
        let command = Cli::command();
        let meta = config::settings(text, "meta", &command).expect("meta settings");
        let get = |pairs: &[(String, String)], env: &str| {
            pairs.iter().find(|(e, _)| e == env).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&meta, "CAIRN_META_LISTEN").as_deref(),
            Some("10.0.0.1:7000")
        );
        assert_eq!(
            get(&meta, "CAIRN_META_DIR").as_deref(),
            Some("/var/lib/cairn/meta")
        );
        assert_eq!(get(&meta, "CAIRN_BLOB_DOWN_AFTER").as_deref(), Some("45"));
        assert_eq!(get(&meta, "CAIRN_META_INIT").as_deref(), Some("true"));
        assert_eq!(get(&meta, "CAIRN_ACCESS_KEY").as_deref(), Some("root"));
        let blob = config::settings(text, "blob", &command).expect("blob settings");
        assert_eq!(get(&blob, "CAIRN_BLOB_DIRS").as_deref(), Some("/d1,/d2"));
        assert_eq!(
            get(&blob, "CAIRN_META").as_deref(),
            Some("http://a:7000,http://b:7000")
        );
        assert_eq!(get(&blob, "CAIRN_SCRUB_RATE").as_deref(), Some("16"));
        assert_eq!(get(&blob, "CAIRN_GC_GRACE").as_deref(), Some("7200"));
        let server = config::settings(text, "server", &command).expect("server settings");
        assert_eq!(
            get(&server, "CAIRN_SCRUB_INTERVAL").as_deref(),
            Some("86400")
        );
        assert_eq!(get(&server, "CAIRN_GC_INTERVAL").as_deref(), Some("0"));
    }

    #[test]
    fn maintenance_flags_default_to_a_slow_scrub_and_an_hour_of_gc_grace() {
        let cli = Cli::parse_from(["cairn", "blob", "/d1"]);
        let Command::Blob(a) = cli.command else {
            panic!("not a blob command");
        };
        assert_eq!(a.maintenance.scrub(), cairn_blob::ScrubConfig::default());
        assert_eq!(a.maintenance.gc(), cairn_blob::GcConfig::default());
        let cli = Cli::parse_from([
            "cairn",
            "server",
            "/d1",
            "--scrub-rate",
            "100",
            "--scrub-interval",
            "2",
            "--gc-grace",
            "3",
            "--gc-interval",
            "1",
        ]);
        let Command::Server(a) = cli.command else {
            panic!("not a server command");
        };
        assert_eq!(a.maintenance.scrub().rate_bytes_per_sec, 100 << 20);
        assert_eq!(a.maintenance.scrub().interval.as_secs(), 2);
        assert_eq!(a.maintenance.gc().grace.as_secs(), 3);
        assert_eq!(a.maintenance.gc().interval.as_secs(), 1);
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        let command = Cli::command();
        for (role, text) in [
            ("meta", include_str!("../deploy/config/meta.toml")),
            ("blob", include_str!("../deploy/config/blob.toml")),
            ("gateway", include_str!("../deploy/config/gateway.toml")),
        ] {
            let pairs = config::settings(text, role, &command)
                .unwrap_or_else(|e| panic!("deploy/config/{role}.toml: {e:#}"));
            assert!(pairs.len() >= 2, "{role}: {pairs:?}");
        }
    }

    #[test]
    fn config_file_errors_name_the_bad_setting() {
        let command = Cli::command();
        let err = config::settings("[meta]\nlisten_port = 1\n", "meta", &command)
            .expect_err("unknown key");
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = config::settings("[metta]\n", "meta", &command).expect_err("unknown table");
        assert!(err.to_string().contains("metta"), "{err}");
        assert!(config::settings("not toml [", "meta", &command).is_err());
    }

    #[test]
    fn config_path_and_role_come_from_the_arguments() {
        let args: Vec<std::ffi::OsString> = ["cairn", "--config", "/etc/c.toml", "meta", "--init"]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(
            config::config_path(&args),
            Some(PathBuf::from("/etc/c.toml"))
        );
        assert_eq!(config::role(&args).as_deref(), Some("meta"));
    }
}
