//! One simulated run: build the cluster, run clients and faults, heal, read, judge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_meta::types::{Command, NodeId, Request, Response};
use cairn_proto::meta::Bucket;
use openraft::Vote;
use prost::Message;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::client::{self, ClientEnv, KeySpace, BUCKET};
use super::cluster::SimCluster;
use super::faults;
use super::invariants::{self, Facts, Replica, Violation};
use super::net::SimNet;
use super::node::SimNode;
use super::trace::{self, OpKind, Outcome, SimOp, Trace};
use crate::{Error, Result};

/// A bug planted on purpose, to show that the invariants catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// Clients read any node's applied state without a read index: stale reads.
    StaleReads,
    /// Disks acknowledge fsyncs they have not done: a power loss takes acknowledged writes.
    LyingDisk,
}

/// The shape of a simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Meta nodes.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Simulated time with faults.
    pub safety: Duration,
    /// Simulated time after the heal (which may end a little after `safety`: a fault under
    /// way is finished and undone first), clients still running.
    pub liveness: Duration,
    /// A planted bug, if any.
    pub plant: Option<Plant>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 5,
            clients: 4,
            safety: Duration::from_secs(10),
            liveness: Duration::from_secs(4),
            plant: None,
        }
    }
}

/// How a simulated run went.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The trace, line by line.
    pub trace: Vec<String>,
    /// Client operations by outcome: ok (answered, refusals included), fail, info.
    pub ok: usize,
    /// Operations that certainly had no effect.
    pub fail: usize,
    /// Operations of unknown outcome.
    pub info: usize,
    /// Faults injected.
    pub faults: u32,
    /// Snapshots built (log compactions), over all nodes.
    pub snapshots_built: u64,
    /// Snapshots installed from a leader, over all nodes.
    pub snapshots_installed: u64,
    /// What the invariants found.
    pub violations: Vec<Violation>,
}

impl SimReport {
    /// Whether every invariant held.
    pub fn valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// The fingerprint of the trace: equal for two runs of one seed.
    pub fn digest(&self) -> u64 {
        trace::digest(&self.trace)
    }

    /// `SIM seed=... ops=... ok=... fail=... info=... faults=... snapshots=built/installed
    /// digest=... valid=...`.
    pub fn summary(&self) -> String {
        format!(
            "SIM seed={} ops={} ok={} fail={} info={} faults={} snapshots={}/{} digest={:016x} valid={}",
            self.seed,
            self.ok + self.fail + self.info,
            self.ok,
            self.fail,
            self.info,
            self.faults,
            self.snapshots_built,
            self.snapshots_installed,
            self.digest(),
            self.valid()
        )
    }
}

/// Where the nodes' directories go: memory when the machine has a RAM disk (fsync is then
/// free, and only the simulation's own bookkeeping of what was synced matters).
fn scratch_dir() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("cairn-sim-");
        b
    };
    let made = if shm.is_dir() {
        builder().tempdir_in(shm).or_else(|_| builder().tempdir())
    } else {
        builder().tempdir()
    };
    made.map_err(|e| Error::io("create", std::env::temp_dir(), e))
}

/// Runs the simulation for `seed` on a runtime of its own (one thread, paused clock).
pub fn run_seed(seed: u64, config: &SimConfig) -> Result<SimReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| Error::Sim(format!("runtime: {e}")))?;
    let scratch = scratch_dir()?;
    let report = runtime.block_on(simulate(seed, config, scratch.path()));
    // Node tasks still parked in the runtime hold their stores until it is gone.
    drop(runtime);
    report
}

async fn simulate(seed: u64, config: &SimConfig, dir: &Path) -> Result<SimReport> {
    let mut seeds = StdRng::seed_from_u64(seed);
    let trace = Trace::new();
    let net = SimNet::new(seeds.random());
    // Distinct election timeouts, 300-700 ms in steps of 25 (see node::raft_config).
    let mut timeouts: Vec<u64> = (0..16).map(|i| 300 + 25 * i).collect();
    timeouts.shuffle(&mut seeds);
    // Compact every 40-400 entries, keeping 0 to a whole interval of log behind each
    // snapshot (production keeps a whole one): a run commits a few thousand, so every run
    // builds snapshots and purges its logs, and a node that was down or cut off for a while
    // is often brought back by a snapshot rather than the log.
    let interval = seeds.random_range(40..=400);
    let keep = seeds.random_range(0..=interval);
    let snapshot_logs = (interval, keep);
    trace.note(format!("snapshot every {interval} entries, keep {keep}"));
    let nodes = (0..config.nodes)
        .map(|i| {
            let mut node = SimNode::new(
                i as NodeId + 1,
                timeouts[i % timeouts.len()],
                snapshot_logs,
                dir,
            );
            node.lying_disk = config.plant == Some(Plant::LyingDisk);
            node
        })
        .collect();
    let cluster = Arc::new(SimCluster::new(net, nodes));
    cluster.bootstrap().await?;
    trace.note("bootstrapped");
    let bucket_id = create_bucket(&cluster, &mut seeds).await?;
    trace.note(format!("bucket {bucket_id}"));

    let start = Instant::now();
    let faults_end = start + config.safety;
    // Set once everything is healed: the liveness phase starts there.
    let clients_end = Arc::new(AtomicU64::new(u64::MAX));
    let monitor_stop = Arc::new(AtomicU64::new(0));
    let watched = Arc::new(Mutex::new(Watched::default()));
    let monitor = tokio::spawn(watch(
        cluster.clone(),
        trace.clone(),
        watched.clone(),
        monitor_stop.clone(),
    ));
    let env = ClientEnv {
        cluster: cluster.clone(),
        trace: trace.clone(),
        bucket_id,
        keys: KeySpace::default(),
        values: Arc::new(AtomicU64::new(1)),
        stale_reads: config.plant == Some(Plant::StaleReads),
    };
    let mut clients = Vec::new();
    for i in 0..config.clients {
        let rng = StdRng::seed_from_u64(seeds.random());
        clients.push(tokio::spawn(client::run(
            env.clone(),
            i,
            config.clients,
            rng,
            clients_end.clone(),
        )));
    }
    let fault_rng = StdRng::seed_from_u64(seeds.random());
    let injected = faults::run(&cluster, &trace, fault_rng, faults_end).await?;
    let healed_at = trace.now_ns();
    let liveness_ns = u64::try_from(config.liveness.as_nanos()).unwrap_or(u64::MAX);
    clients_end.store(
        healed_at.saturating_add(liveness_ns),
        std::sync::atomic::Ordering::Relaxed,
    );
    for c in clients {
        let _ = c.await;
    }
    trace.note("clients done");

    let unread_keys = final_reads(&env, &mut seeds).await;
    let (replicas, replicas_not_level) = replica_states(&cluster, bucket_id, &env.keys).await;
    monitor_stop.store(1, std::sync::atomic::Ordering::Relaxed);
    let _ = monitor.await;
    cluster.shutdown().await;
    let (snapshots_built, snapshots_installed) = cluster.snapshots().await;
    trace.note(format!(
        "snapshots built {snapshots_built}, installed {snapshots_installed}"
    ));

    let ops = trace.ops();
    let vote_regressions = watched
        .lock()
        .map(|w| w.regressions.clone())
        .unwrap_or_default();
    let facts = Facts {
        vote_regressions,
        healed_at,
        unread_keys,
        replicas,
        replicas_not_level,
        ops: ops.clone(),
    };
    let violations = invariants::check_all(&facts);
    for v in &violations {
        trace.note(format!("violation {}: {}", v.invariant, v.detail));
    }
    let count = |f: fn(&SimOp) -> bool| ops.iter().filter(|o| f(o)).count();
    Ok(SimReport {
        seed,
        ok: count(|o| !matches!(o.outcome, Outcome::Fail | Outcome::Info)),
        fail: count(|o| o.outcome == Outcome::Fail),
        info: count(|o| o.outcome == Outcome::Info),
        faults: injected,
        snapshots_built,
        snapshots_installed,
        violations,
        trace: trace.lines(),
    })
}

/// Creates [`BUCKET`] through whichever node leads, waiting for an election.
async fn create_bucket(cluster: &SimCluster, rng: &mut StdRng) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(leader) = cluster.some_leader(rng).await {
            let request = Request {
                now_ms: 1_800_000_000_000,
                command: Command::CreateBucket {
                    name: BUCKET.into(),
                    object_lock: false,
                },
            };
            if let Ok(reply) = leader.raft.client_write(request).await {
                if let Response::Bucket { bucket } = reply.data {
                    let bucket = Bucket::decode(bucket.as_slice())
                        .map_err(|e| Error::Sim(format!("bucket record: {e}")))?;
                    return Ok(bucket.id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Sim("no leader created the bucket in 30 s".into()))
}

/// What the monitor saw: leaders by term (noted in the trace when first seen), and votes
/// that went back.
#[derive(Default)]
struct Watched {
    leaders: BTreeMap<u64, BTreeSet<NodeId>>,
    votes: BTreeMap<NodeId, Vote<NodeId>>,
    regressions: Vec<String>,
}

/// Records, every few milliseconds until told to stop, which node leads in which term and
/// whether any node's vote went back.
async fn watch(
    cluster: Arc<SimCluster>,
    trace: Trace,
    seen: Arc<Mutex<Watched>>,
    stop: Arc<AtomicU64>,
) {
    while stop.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        let leaders = cluster.leaders().await;
        let votes = cluster.votes().await;
        if let Ok(mut seen) = seen.lock() {
            for (term, id) in leaders {
                if seen.leaders.entry(term).or_default().insert(id) {
                    trace.note(format!("leader term {term} node {id}"));
                }
            }
            for (id, vote) in votes {
                // A node that has just started reports the empty vote until its core has
                // loaded the stored one; a vote really lost shows when the node next votes.
                if vote == Vote::default() {
                    continue;
                }
                if let Some(before) = seen.votes.get(&id) {
                    if vote.partial_cmp(before) == Some(std::cmp::Ordering::Less) {
                        let what = format!("node {id}: vote {before} then {vote}");
                        trace.note(format!("vote regression {what}"));
                        seen.regressions.push(what);
                    }
                }
                seen.votes.insert(id, vote);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads every key once more, retrying for up to 10 s each; returns the keys never read.
async fn final_reads(env: &ClientEnv, rng: &mut StdRng) -> Vec<usize> {
    let mut unread = Vec::new();
    let process = 1_000_000;
    for key in env.keys.all() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut done = false;
        while !done && Instant::now() < deadline {
            if let Some(node) = env.cluster.some_leader(rng).await {
                let call = env.trace.now_ns();
                let outcome = client::perform(env, &node, key, OpKind::Read).await;
                env.trace.op(SimOp {
                    process,
                    key,
                    kind: OpKind::Read,
                    call,
                    ret: env.trace.now_ns(),
                    outcome,
                });
                done = matches!(outcome, Outcome::Ok(_));
            }
            if !done {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if !done {
            unread.push(key);
        }
    }
    unread
}

/// Waits (up to 10 s) until every node has applied the same index, then reads each key's
/// value on every node.
async fn replica_states(
    cluster: &SimCluster,
    bucket_id: u64,
    keys: &KeySpace,
) -> (Vec<Replica>, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut applied = BTreeMap::new();
    loop {
        applied.clear();
        for id in cluster.ids().await {
            let index = match cluster.handles(id).await {
                Some(h) => h.raft.metrics().borrow().last_applied.map(|l| l.index),
                None => None,
            };
            applied.insert(id, index);
        }
        let distinct: BTreeSet<_> = applied.values().collect();
        if distinct.len() == 1 {
            break;
        }
        if Instant::now() >= deadline {
            return (
                Vec::new(),
                Some(format!(
                    "replicas not level 10 s after the clients stopped: {applied:?}"
                )),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut replicas = Vec::new();
    for (id, last_applied) in applied {
        let Some(handles) = cluster.handles(id).await else {
            continue;
        };
        let mut values = BTreeMap::new();
        for key in keys.all() {
            let value = match handles.reader.object(bucket_id, &client::key_name(key)) {
                Ok(Some(o)) if !o.delete_marker => o.etag.parse().ok(),
                _ => None,
            };
            values.insert(key, value);
        }
        replicas.push(Replica {
            id,
            last_applied,
            values,
        });
    }
    (replicas, None)
}

/// Runs every seed of `seeds` on `jobs` threads (each seed on a runtime of its own, so the
/// runs are as independent, and as deterministic, as one at a time), handing each report to
/// `each` in seed order as soon as it and the ones before it are done. Stops handing out
/// seeds after the first error, which it returns.
pub fn run_many(
    seeds: std::ops::Range<u64>,
    jobs: usize,
    config: &SimConfig,
    mut each: impl FnMut(SimReport),
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let next = AtomicU64::new(seeds.start);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(u64, Result<SimReport>)>();
    std::thread::scope(|scope| {
        for job in 0..jobs.max(1) {
            let done_tx = done_tx.clone();
            let (next, failed, end) = (&next, &failed, seeds.end);
            let spawned = std::thread::Builder::new()
                .name(format!("sim-job-{job}"))
                .spawn_scoped(scope, move || loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = run_seed(seed, config);
                    if outcome.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if done_tx.send((seed, outcome)).is_err() {
                        break;
                    }
                });
            if let Err(e) = spawned {
                failed.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "could not start a simulation thread");
            }
        }
        drop(done_tx);
        // Reports arrive in completion order; hand them on in seed order.
        let mut waiting = BTreeMap::new();
        let mut due = seeds.start;
        let mut first_error = None;
        for (seed, outcome) in done_rx {
            waiting.insert(seed, outcome);
            while let Some(outcome) = waiting.remove(&due) {
                due += 1;
                match outcome {
                    Ok(report) => each(report),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if failed.load(Ordering::Relaxed) && due < seeds.end => {
                Err(Error::Sim(format!("simulation stopped before seed {due}")))
            }
            None => Ok(()),
        }
    })
}
