//! `jepsen-tests`: runs one consistency test against a real Cairn cluster, or re-checks a
//! recorded history. See docs/jepsen.md.
//!
//! ```text
//! cargo run -p jepsen-tests -- --workload register --nemesis all --time-limit 120
//! cargo run -p jepsen-tests -- --workload set --check target/jepsen/RUN/history.jsonl
//! cargo run -p jepsen-tests --release -- --sim 1000 --seed 1     # deterministic simulation
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use jepsen_tests::checker::Validity;
use jepsen_tests::nemesis::Schedule;
use jepsen_tests::workload::Workload;
use jepsen_tests::{history, nemesis, run, sim, RunConfig};

/// Black-box consistency test of a Cairn cluster under faults.
#[derive(Parser, Debug)]
#[command(name = "jepsen-tests", version, about)]
struct Args {
    /// register (linearizable PUT/GET/DELETE and conditional PUTs per key), set (no lost or
    /// phantom PUTs), list (every LIST reflects the PUTs and DELETEs acknowledged before it)
    /// bucket (linearizable CreateBucket/DeleteBucket/HeadBucket per name, ListBuckets) or
    /// multipart (racing Complete/AbortMultipartUpload: completed readable, aborted never).
    #[arg(long, default_value = "register")]
    workload: String,
    /// none, all, or a comma-separated list of kill, pause, partition, membership and single
    /// faults (kill-meta-leader, kill-meta, kill-blob, kill-gateway, pause-meta-leader,
    /// pause-meta, pause-blob, pause-gateway, partition-leader, partition-halves,
    /// partition-ring, partition-node, membership).
    #[arg(long, default_value = "all")]
    nemesis: String,
    /// Seconds the clients run (the heal and final reads come after).
    #[arg(long, default_value_t = 60)]
    time_limit: u64,
    /// Seed of the random choices (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Client workers in all, spread over the gateways.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Seconds one operation may take before it counts as indeterminate.
    #[arg(long, default_value_t = 10)]
    op_timeout: u64,
    /// Quiet seconds before each fault.
    #[arg(long, default_value_t = 5)]
    quiet: u64,
    /// Shortest fault, seconds.
    #[arg(long, default_value_t = 5)]
    fault_min: u64,
    /// Longest fault, seconds.
    #[arg(long, default_value_t = 10)]
    fault_max: u64,
    /// Run directory (default: target/jepsen/<time>-<workload>-<nemesis>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The cairn binary (default: CAIRN_BIN, else next to this executable).
    #[arg(long)]
    cairn_bin: Option<PathBuf>,
    /// Run every node on 127.0.0.1 even where namespaces work (no partitions).
    #[arg(long)]
    no_netns: bool,
    /// Keep the nodes' data directories.
    #[arg(long)]
    keep_data: bool,
    /// Meta nodes.
    #[arg(long, default_value_t = 5)]
    metas: usize,
    /// Blob servers.
    #[arg(long, default_value_t = 4)]
    blobs: usize,
    /// Data directories per blob server.
    #[arg(long, default_value_t = 1)]
    blob_disks: usize,
    /// Gateways.
    #[arg(long, default_value_t = 2)]
    gateways: usize,
    /// Only check this recorded history (with --workload's checker) and print the verdict.
    #[arg(long)]
    check: Option<PathBuf>,
    /// Instead of a cluster test, run this many seeds of the deterministic simulation of the
    /// meta cluster (from --seed, default 1, counting up); prints a SIM line per seed.
    #[arg(long)]
    sim: Option<u64>,
    /// Simulated seconds of faults per simulation run (clients run 4 s longer, healed).
    #[arg(long, default_value_t = 10)]
    sim_seconds: u64,
    /// Print each simulation run's whole trace (to compare two runs of one seed).
    #[arg(long)]
    sim_trace: bool,
    /// Simulation runs at once, one thread each (default: one per CPU). Output stays in seed
    /// order, and each run is as deterministic as alone.
    #[arg(long)]
    sim_jobs: Option<usize>,
    /// Plant a bug in the simulation to see the invariants catch it: stale-reads, lying-disk.
    #[arg(long)]
    plant: Option<String>,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(Validity::Valid) => ExitCode::SUCCESS,
        Ok(Validity::Invalid) => ExitCode::from(1),
        Ok(Validity::Unknown) => ExitCode::from(2),
        Err(e) => {
            eprintln!("jepsen-tests: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn real_main() -> anyhow::Result<Validity> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JEPSEN_LOG")
                // openraft warns of every message the simulation loses.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new(if args.sim.is_some() {
                        "off"
                    } else {
                        "warn"
                    })
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(count) = args.sim {
        return simulate(&args, count);
    }
    let workload = Workload::parse(&args.workload).with_context(|| {
        format!(
            "unknown workload {:?} (register, set, list, bucket or multipart)",
            args.workload
        )
    })?;
    if let Some(path) = &args.check {
        let events = history::read_jsonl(path)?;
        let result = run::check(workload, &events);
        println!("{}", serde_json::to_string_pretty(&result)?);
        println!("valid={}", result.valid.as_str());
        return Ok(result.valid);
    }
    let faults = nemesis::parse(&args.nemesis)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let out = match args.out {
        Some(o) => o,
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/jepsen")
                .join(format!(
                    "{stamp}-{}-{}",
                    workload.name(),
                    args.nemesis.replace(',', "+")
                ))
        }
    };
    let bin = args
        .cairn_bin
        .unwrap_or_else(jepsen_tests::default_cairn_bin);
    let mut cfg = RunConfig::new(workload, out, bin);
    cfg.faults = faults;
    cfg.nemesis_label = args.nemesis.clone();
    cfg.time_limit = Duration::from_secs(args.time_limit);
    cfg.seed = seed;
    cfg.clients = args.clients;
    cfg.op_timeout = Duration::from_secs(args.op_timeout);
    cfg.schedule = Schedule {
        quiet: Duration::from_secs(args.quiet),
        fault_min: Duration::from_secs(args.fault_min),
        fault_max: Duration::from_secs(args.fault_max.max(args.fault_min)),
    };
    cfg.namespaces = !args.no_netns;
    cfg.keep_data = args.keep_data;
    cfg.metas = args.metas;
    cfg.blobs = args.blobs;
    cfg.blob_disks = args.blob_disks;
    cfg.gateways = args.gateways;
    eprintln!(
        "jepsen-tests: workload={} nemesis={} time-limit={}s seed={seed} dir={}",
        workload.name(),
        args.nemesis,
        args.time_limit,
        cfg.dir.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jepsen")
        .build()?;
    let report = runtime.block_on(async move {
        jepsen_tests::cleanup::install_signal_handlers();
        run(cfg).await
    });
    jepsen_tests::cleanup::run_now();
    let report = report?;
    println!("{}", report.summary);
    eprintln!("run directory: {}", report.dir.display());
    Ok(report.valid)
}

/// Runs `count` seeds of the deterministic simulation; invalid if any seed is.
fn simulate(args: &Args, count: u64) -> anyhow::Result<Validity> {
    let plant = match args.plant.as_deref() {
        None => None,
        Some("stale-reads") => Some(sim::Plant::StaleReads),
        Some("lying-disk") => Some(sim::Plant::LyingDisk),
        Some(other) => anyhow::bail!("unknown planted bug {other:?} (stale-reads, lying-disk)"),
    };
    let config = sim::SimConfig {
        safety: Duration::from_secs(args.sim_seconds),
        plant,
        ..Default::default()
    };
    let first = args.seed.unwrap_or(1);
    let jobs = args.sim_jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let mut invalid = Vec::new();
    sim::run_many(
        first..first.saturating_add(count),
        jobs,
        &config,
        |report| {
            let seed = report.seed;
            if args.sim_trace {
                for line in &report.trace {
                    println!("{line}");
                }
            }
            for v in &report.violations {
                println!("seed {seed}: {}: {}", v.invariant, v.detail);
            }
            println!("{}", report.summary());
            if !report.valid() {
                invalid.push(seed);
            }
        },
    )?;
    println!(
        "SIM seeds={count} first={first} invalid={} {invalid:?}",
        invalid.len()
    );
    Ok(if invalid.is_empty() {
        Validity::Valid
    } else {
        Validity::Invalid
    })
}
