//! One test run: start the cluster, run a workload with a nemesis for the time limit, heal,
//! wait for recovery, do the final reads, check the history and write the run directory.
//!
//! Run directory: `history.jsonl` (every event), `results.json` (verdict and evidence),
//! `summary.txt` (the summary line and notes), `latency.png` and `rate.png` (see
//! [`crate::plot`]), `nodes/<node>.log` (each node's log).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::checker::{self, CheckResult, Validity};
use crate::cluster::{Cluster, ClusterConfig};
use crate::error::{Error, Result};
use crate::history::{self, Counts, Recorder};
use crate::nemesis::{self, Fault, Schedule};
use crate::workload::{self, Ctx, Workload};

/// The bucket the workloads use.
const BUCKET: &str = "jepsen";
/// How long the cluster may take to recover after the final heal.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the final reads may take in all.
const FINAL_READS_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The workload.
    pub workload: Workload,
    /// The faults the nemesis picks from (empty: none).
    pub faults: Vec<Fault>,
    /// How the nemesis was asked for (for the summary).
    pub nemesis_label: String,
    /// How long the clients run.
    pub time_limit: Duration,
    /// Seed of the clients' and nemesis' random choices.
    pub seed: u64,
    /// Client workers in all, spread over the gateways.
    pub clients: usize,
    /// Bound on one operation.
    pub op_timeout: Duration,
    /// When faults happen.
    pub schedule: Schedule,
    /// The run directory.
    pub dir: PathBuf,
    /// The `cairn` binary.
    pub bin: PathBuf,
    /// Try network namespaces.
    pub namespaces: bool,
    /// Keep the nodes' data directories after the run.
    pub keep_data: bool,
    /// Meta nodes.
    pub metas: usize,
    /// Blob servers.
    pub blobs: usize,
    /// Disks per blob server.
    pub blob_disks: usize,
    /// Gateways.
    pub gateways: usize,
}

impl RunConfig {
    /// The defaults of the issue: 5 meta, 4 blob, 2 gateways, 10 clients, all faults.
    pub fn new(workload: Workload, dir: PathBuf, bin: PathBuf) -> RunConfig {
        RunConfig {
            workload,
            faults: Fault::ALL.to_vec(),
            nemesis_label: "all".into(),
            time_limit: Duration::from_secs(60),
            seed: 0,
            clients: 10,
            op_timeout: Duration::from_secs(10),
            schedule: Schedule::default(),
            dir,
            bin,
            namespaces: true,
            keep_data: false,
            metas: 5,
            blobs: 4,
            blob_disks: 1,
            gateways: 2,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The verdict.
    pub valid: Validity,
    /// Client operation counts.
    pub counts: Counts,
    /// Faults injected (nemesis `start` events).
    pub faults_injected: usize,
    /// Operations the checker constrained (register and bucket: ops checked; set: elements
    /// attempted; list: listings checked; multipart: uploads started).
    pub checked: u64,
    /// The summary line.
    pub summary: String,
    /// The run directory.
    pub dir: PathBuf,
    /// Faults asked for that this machine cannot inject.
    pub skipped: Vec<Fault>,
    /// The plots drawn into the run directory (`latency.png`, `rate.png`).
    pub plots: Vec<PathBuf>,
}

/// Runs one test.
pub async fn run(cfg: RunConfig) -> Result<Report> {
    std::fs::create_dir_all(&cfg.dir).map_err(|e| Error::io("create", &cfg.dir, e))?;
    let cluster_cfg = ClusterConfig {
        bin: cfg.bin.clone(),
        dir: cfg.dir.clone(),
        metas: cfg.metas,
        blobs: cfg.blobs,
        blob_disks: cfg.blob_disks,
        gateways: cfg.gateways,
        namespaces: cfg.namespaces,
        access_key: "jepsen-access".into(),
        secret_key: "jepsen-secret-key".into(),
    };
    let (access_key, secret_key) = (
        cluster_cfg.access_key.clone(),
        cluster_cfg.secret_key.clone(),
    );
    let cluster = blocking(move || Cluster::start(cluster_cfg)).await?;
    let isolation = cluster.isolation().clone();
    let (faults, skipped): (Vec<Fault>, Vec<Fault>) =
        cfg.faults.iter().partition(|f| match f.group() {
            "partition" => cluster.can_partition(),
            "pause" => crate::signal::can_pause(),
            _ => true,
        });
    let endpoints = cluster.gateway_endpoints();
    let cluster = Arc::new(Mutex::new(cluster));
    let recorder = Arc::new(Recorder::new());

    let setup_client =
        crate::client::s3_client(&endpoints[0], &access_key, &secret_key, cfg.op_timeout);
    create_bucket(&setup_client).await?;

    let ctx = Arc::new(Ctx {
        recorder: Arc::clone(&recorder),
        endpoints: endpoints.clone(),
        access_key,
        secret_key,
        bucket: BUCKET.into(),
        workers: cfg.clients.max(1),
        op_timeout: cfg.op_timeout,
        deadline: Instant::now() + cfg.time_limit,
        seed: cfg.seed,
    });

    let nemesis = NemesisThread::start(
        Arc::clone(&cluster),
        faults.clone(),
        cfg.schedule,
        Arc::clone(&recorder),
        cfg.seed,
    )?;
    let mut uploads = 0;
    let register_keys = match cfg.workload {
        Workload::Register => workload::register::run(Arc::clone(&ctx)).await,
        Workload::Set => {
            workload::set::run(Arc::clone(&ctx)).await;
            Vec::new()
        }
        Workload::List => {
            workload::list::run(Arc::clone(&ctx)).await;
            Vec::new()
        }
        Workload::Bucket => {
            workload::bucket::run(Arc::clone(&ctx)).await;
            Vec::new()
        }
        Workload::Multipart => {
            uploads = workload::multipart::run(Arc::clone(&ctx)).await;
            Vec::new()
        }
    };
    drop(nemesis);

    // Final heal: every fault removed, then wait for the cluster and the gateways.
    recorder.nemesis("heal", json!({"fault": "all"}));
    let heal = {
        let cluster = Arc::clone(&cluster);
        blocking(move || {
            let mut c = cluster.lock().unwrap_or_else(|p| p.into_inner());
            c.heal_all()?;
            c.wait_healthy(RECOVERY_TIMEOUT)
        })
        .await
    };
    let mut notes: Vec<String> = Vec::new();
    match &heal {
        Ok(()) => recorder.nemesis("healed", json!({})),
        Err(e) => {
            recorder.nemesis("heal-failed", json!({"error": e.to_string()}));
            notes.push(format!("the cluster did not recover: {e}"));
        }
    }
    for endpoint in &endpoints {
        let client =
            crate::client::s3_client(endpoint, &ctx.access_key, &ctx.secret_key, cfg.op_timeout);
        if let Err(e) = wait_for_gateway(&client).await {
            notes.push(format!(
                "gateway {endpoint} did not answer after the heal: {e}"
            ));
        }
    }
    let final_deadline = Instant::now() + FINAL_READS_TIMEOUT;
    match cfg.workload {
        Workload::Register => {
            workload::register::final_reads(Arc::clone(&ctx), register_keys, final_deadline).await
        }
        Workload::Set => workload::set::final_reads(Arc::clone(&ctx), final_deadline).await,
        Workload::List => workload::list::final_reads(Arc::clone(&ctx), final_deadline).await,
        Workload::Bucket => workload::bucket::final_reads(Arc::clone(&ctx), final_deadline).await,
        Workload::Multipart => {
            workload::multipart::final_reads(Arc::clone(&ctx), uploads, final_deadline).await
        }
    }

    // Stop the cluster before checking, so its CPU goes to the checker and the logs are
    // complete.
    let crashes = {
        let mut c = cluster.lock().unwrap_or_else(|p| p.into_inner());
        let crashes = c.crashes();
        c.stop();
        crashes
    };
    for crash in &crashes {
        notes.push(format!("a node exited by itself: {crash}"));
    }
    drop(cluster);

    let events = recorder.snapshot();
    history::write_jsonl(&cfg.dir.join("history.jsonl"), &events)?;
    let workload = cfg.workload;
    let plots = {
        let (dir, events) = (cfg.dir.clone(), events.clone());
        let title = format!(
            "{} / {} / seed {}",
            workload.name(),
            cfg.nemesis_label,
            cfg.seed
        );
        blocking(move || crate::plot::draw_all(&dir, &events, &title)).await
    };
    let plots: Vec<PathBuf> = match plots {
        Ok(files) => files,
        Err(e) => {
            notes.push(format!("plots not drawn: {e}"));
            Vec::new()
        }
    };
    let events_for_check = events.clone();
    let result = blocking(move || Ok(check(workload, &events_for_check))).await?;
    let counts = history::counts(&events);
    let faults_injected = events
        .iter()
        .filter(|e| e.f == "start" && e.process == history::Process::nemesis())
        .count();
    let checked = match workload {
        Workload::Register | Workload::Bucket => {
            result.details["checked_ops"].as_u64().unwrap_or(0)
        }
        Workload::Set => result.details["attempted"].as_u64().unwrap_or(0),
        Workload::List => result.details["lists"].as_u64().unwrap_or(0),
        Workload::Multipart => result.details["uploads"].as_u64().unwrap_or(0),
    };
    let mut summary = format!(
        "JEPSEN workload={} nemesis={} ops={} ok={} fail={} info={} valid={}",
        workload.name(),
        cfg.nemesis_label,
        counts.ops,
        counts.ok,
        counts.fail,
        counts.info,
        result.valid.as_str()
    );
    summary.push_str(&format!(" isolation={}", isolation.label()));
    if !crashes.is_empty() {
        summary.push_str(&format!(" crashed={}", crashes.len()));
    }
    if !skipped.is_empty() {
        summary.push_str(&format!(
            " skipped={}",
            skipped
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    match &isolation {
        crate::net::Isolation::Namespaces => {}
        crate::net::Isolation::NamespacesWithoutFirewall(why)
        | crate::net::Isolation::Loopback(why) => {
            notes.push(format!("no partitions: {why}"));
        }
    }
    let results = json!({
        "valid": result.valid,
        "workload": workload.name(),
        "nemesis": cfg.nemesis_label,
        "faults": faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "skipped_faults": skipped.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "faults_injected": faults_injected,
        "isolation": isolation.label(),
        "seed": cfg.seed,
        "time_limit_s": cfg.time_limit.as_secs(),
        "clients": cfg.clients,
        "counts": counts,
        "notes": notes,
        "crashes": crashes,
        "plots": plots
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect::<Vec<_>>(),
        "checker": result.details,
    });
    write(
        &cfg.dir.join("results.json"),
        &serde_json::to_string_pretty(&results).unwrap_or_default(),
    )?;
    let mut summary_text = format!("{summary}\n");
    for n in &notes {
        summary_text.push_str(&format!("note: {n}\n"));
    }
    write(&cfg.dir.join("summary.txt"), &summary_text)?;
    if !cfg.keep_data {
        remove_data(&cfg.dir.join("nodes"));
    }
    Ok(Report {
        valid: result.valid,
        counts,
        faults_injected,
        checked,
        summary,
        dir: cfg.dir.clone(),
        skipped,
        plots,
    })
}

/// The nemesis on its own thread. Dropping it (also when a run panics) stops the schedule
/// and waits for the thread, which leaves no fault in effect.
struct NemesisThread {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NemesisThread {
    fn start(
        cluster: Arc<Mutex<Cluster>>,
        faults: Vec<Fault>,
        schedule: Schedule,
        recorder: Arc<Recorder>,
        seed: u64,
    ) -> Result<NemesisThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("nemesis".into())
            .spawn(move || nemesis::run(cluster, faults, schedule, recorder, flag, seed))
            .map_err(|e| Error::io("spawn", "nemesis thread", e))?;
        Ok(NemesisThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for NemesisThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the nemesis thread panicked");
            }
        }
    }
}

/// Checks a history with the workload's checker.
pub fn check(workload: Workload, events: &[history::Event]) -> CheckResult {
    match workload {
        Workload::Register => checker::register::check(events, checker::register::SEARCH_BUDGET),
        Workload::Set => checker::set::check(events),
        Workload::List => checker::list::check(events),
        Workload::Bucket => checker::bucket::check(events, checker::bucket::SEARCH_BUDGET),
        Workload::Multipart => checker::multipart::check(events),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Config(format!("a blocking task failed: {e}")))?
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

/// Removes every node's data directory, keeping the logs.
fn remove_data(nodes: &Path) {
    if let Ok(entries) = std::fs::read_dir(nodes) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Creates the bucket (retrying while the cluster settles).
async fn create_bucket(client: &aws_sdk_s3::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let err = match client.create_bucket().bucket(BUCKET).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you())
                {
                    return Ok(());
                }
                crate::client::chain(&e)
            }
        };
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!(
                "creating the bucket (last error: {err})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until a gateway answers HeadBucket.
async fn wait_for_gateway(client: &aws_sdk_s3::Client) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let err = match client.head_bucket().bucket(BUCKET).send().await {
            Ok(_) => return Ok(()),
            Err(e) => crate::client::chain(&e),
        };
        if Instant::now() > deadline {
            return Err(Error::Timeout(format!("HeadBucket (last error: {err})")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
