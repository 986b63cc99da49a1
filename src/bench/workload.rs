//! The load itself: `concurrency` worker tasks issuing one workload's operations until the
//! duration or the operation budget runs out, and the prefill that gives get, list, delete
//! and mixed something to work on.
//!
//! Keys live under the run's prefix: `RUN/pre/NNNNNNNN` (prefill), `RUN/put/WWWW/NNNNNNNN`
//! (written by the workload), `RUN/mp/WWWW/NNNNNNNN` (multipart).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::Instrument;

use super::args::{Mix, MixOp, SizeDist, SizeSpec, WorkloadKind};
use super::progress::Progress;
use super::s3_client::{OpError, S3Client};
use super::stats::{Live, OpKind, Recorder, Second, Timeline};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workload.
    pub kind: WorkloadKind,
    /// Object sizes.
    pub size: SizeSpec,
    /// How sizes of a range are drawn.
    pub dist: SizeDist,
    /// Worker tasks.
    pub concurrency: usize,
    /// Tasks of the prefill and the cleanup.
    pub prefill_concurrency: usize,
    /// Run time limit.
    pub duration: Option<Duration>,
    /// Operation limit.
    pub ops: Option<u64>,
    /// Objects to prefill.
    pub objects: u64,
    /// Mix of the mixed workload.
    pub mix: Mix,
    /// ListObjectsV2 page size.
    pub page_size: u32,
    /// Multipart part size.
    pub part_size: u64,
    /// Keep a per-second timeline (for the plot).
    pub timeline: bool,
    /// Print the live progress line.
    pub progress: bool,
    /// Prefix of the progress line's label (`self-test `).
    pub label: String,
}

impl Plan {
    /// Whether the workload needs objects before it starts.
    pub fn needs_prefill(&self) -> bool {
        match self.kind {
            WorkloadKind::Get | WorkloadKind::List | WorkloadKind::Delete => true,
            WorkloadKind::Mixed => self
                .mix
                .weights
                .iter()
                .any(|(op, _)| matches!(op, MixOp::Get | MixOp::Delete | MixOp::List)),
            WorkloadKind::Put | WorkloadKind::Multipart => false,
        }
    }
}

/// Where the load goes.
#[derive(Clone)]
pub struct Target {
    /// The S3 client.
    pub client: Arc<S3Client>,
    /// The bucket.
    pub bucket: String,
    /// The run's key prefix (`<run id>/`).
    pub prefix: String,
}

/// Operations and failures of a phase that is not measured (prefill, cleanup).
#[derive(Debug, Clone, Default)]
pub struct Phase {
    /// Successful requests.
    pub ops: u64,
    /// Failed requests by error code.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// How long the phase took.
    pub elapsed: Duration,
}

impl Phase {
    /// Counts a failure.
    pub fn fail(&mut self, e: &OpError) {
        *self.errors.entry(e.code.clone()).or_default() += 1;
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: Phase) {
        self.ops += other.ops;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Per-operation results of the measured phase.
    pub recorder: Recorder,
    /// Wall time of the measured phase (until the last worker finished).
    pub elapsed: Duration,
    /// Objects the workload wrote and the key prefix they are under.
    pub written: u64,
    /// Prefix of the objects the put workload wrote.
    pub put_prefix: String,
    /// Why the run stopped before its limit, if it did.
    pub note: Option<String>,
    /// Latency per second, when a timeline was asked for.
    pub timeline: Option<Vec<Second>>,
}

/// The object bodies: one random buffer, sliced at a random offset per object so that no
/// two objects are byte-identical without copying anything.
#[derive(Clone)]
pub struct Payload {
    buf: Bytes,
    slack: usize,
}

impl Payload {
    /// A payload for bodies of up to `max` bytes.
    pub fn new(max: u64) -> anyhow::Result<Self> {
        let max = usize::try_from(max)?;
        let slack = 64 * 1024;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
        let mut buf = Vec::with_capacity(max + slack + 8);
        while buf.len() < max + slack {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.extend_from_slice(&x.to_le_bytes());
        }
        buf.truncate(max + slack);
        Ok(Self {
            buf: Bytes::from(buf),
            slack,
        })
    }

    /// A body of `len` bytes (at most the payload's `max`).
    pub fn body(&self, len: u64, rng: &mut SmallRng) -> Bytes {
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(self.buf.len() - self.slack);
        let offset = rng.random_range(0..=self.slack);
        self.buf.slice(offset..offset + len)
    }
}

/// An object the workload may read or delete, with the readers it has right now.
struct Entry {
    key: Arc<str>,
    readers: Arc<AtomicU32>,
}

/// The objects that exist. A GET checks its key out (counted as a reader) and a DELETE only
/// takes a key nobody is reading, so a mixed run never reads an object it deleted itself.
#[derive(Default)]
pub struct KeyPool {
    entries: Mutex<Vec<Entry>>,
}

/// A key checked out for reading; dropping it ends the read.
struct ReadGuard {
    key: Arc<str>,
    readers: Arc<AtomicU32>,
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl KeyPool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an object that now exists.
    pub fn add(&self, key: Arc<str>) {
        self.lock().push(Entry {
            key,
            readers: Arc::new(AtomicU32::new(0)),
        });
    }

    /// Objects in the pool.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn checkout(&self, rng: &mut SmallRng) -> Option<ReadGuard> {
        let entries = self.lock();
        if entries.is_empty() {
            return None;
        }
        let e = &entries[rng.random_range(0..entries.len())];
        e.readers.fetch_add(1, Ordering::AcqRel);
        Some(ReadGuard {
            key: e.key.clone(),
            readers: e.readers.clone(),
        })
    }

    /// Removes a random key that nobody is reading.
    fn take(&self, rng: &mut SmallRng) -> Option<Arc<str>> {
        let mut entries = self.lock();
        if entries.is_empty() {
            return None;
        }
        let idle = |e: &Entry| e.readers.load(Ordering::Acquire) == 0;
        let n = entries.len();
        let index = (0..8)
            .map(|_| rng.random_range(0..n))
            .find(|&i| idle(&entries[i]))
            .or_else(|| entries.iter().position(idle))?;
        Some(entries.swap_remove(index).key)
    }
}

/// Writes `plan.objects` objects under `PREFIX/pre/` with `plan.prefill_concurrency` tasks and
/// returns them as a pool. Stops early when nothing succeeds (after 10 failures).
pub async fn prefill(
    target: &Target,
    plan: &Plan,
    payload: &Payload,
    seed: u64,
) -> (Arc<KeyPool>, Phase) {
    let pool = Arc::new(KeyPool::default());
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let progress = plan.progress.then(|| {
        Progress::start(
            &format!("{}prefill", plan.label),
            live.clone(),
            Some(plan.objects),
        )
    });
    let mut tasks = Vec::new();
    for worker in 0..plan.prefill_concurrency.max(1) {
        let (target, plan, payload) = (target.clone(), plan.clone(), payload.clone());
        let (pool, next, stop, live) = (pool.clone(), next.clone(), stop.clone(), live.clone());
        let span = tracing::info_span!("bench-prefill", worker);
        tasks.push(tokio::spawn(
            async move {
                let mut rng = SmallRng::seed_from_u64(seed ^ ((worker as u64) << 32));
                let mut phase = Phase::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plan.objects || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key: Arc<str> = format!("{}pre/{i:08}", target.prefix).into();
                    let size = plan.size.pick(plan.dist, rng.random());
                    let body = payload.body(size, &mut rng);
                    match target.client.put_object(&target.bucket, &key, body).await {
                        Ok(_) => {
                            phase.ops += 1;
                            live.success(size);
                            pool.add(key);
                        }
                        Err(e) => {
                            phase.fail(&e);
                            live.failure();
                            let (ok, failed) = (live.snapshot().0, live.snapshot().2);
                            if ok == 0 && failed >= 10 {
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
                phase
            }
            .instrument(span),
        ));
    }
    let mut phase = Phase::default();
    for task in tasks {
        match task.await {
            Ok(p) => phase.merge(p),
            Err(e) => *phase.errors.entry(format!("TaskFailed: {e}")).or_default() += 1,
        }
    }
    if let Some(p) = progress {
        p.finish().await;
    }
    phase.elapsed = start.elapsed();
    (pool, phase)
}

/// Shared state of the measured phase.
struct Ctx {
    target: Target,
    plan: Plan,
    payload: Payload,
    pool: Arc<KeyPool>,
    live: Arc<Live>,
    timeline: Option<Timeline>,
    start: Instant,
    deadline: Option<Instant>,
    started: AtomicU64,
    stop: AtomicBool,
    written: AtomicU64,
    note: Mutex<Option<String>>,
}

impl Ctx {
    fn stop_with(&self, note: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let mut slot = self
            .note
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(format!(
                "{note} after {:.1} s",
                self.start.elapsed().as_secs_f64()
            ));
        }
    }

    /// Takes the next operation ticket, or `false` when the run is over.
    fn next_ticket(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match self.plan.ops {
            Some(limit) => self.started.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }
}

/// One operation's result for the recorder.
struct Done {
    kind: OpKind,
    bytes: u64,
    latency: Duration,
    ttfb: Option<Duration>,
}

/// A worker's position in a listing walk.
#[derive(Default)]
struct Walk {
    token: Option<String>,
    started: Option<Instant>,
}

/// Runs the measured phase of `plan` against `target` (with the prefilled `pool`).
pub async fn run(
    target: &Target,
    plan: &Plan,
    payload: Payload,
    pool: Arc<KeyPool>,
    seed: u64,
) -> Outcome {
    let start = Instant::now();
    let live = Arc::new(Live::default());
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        plan: plan.clone(),
        payload,
        pool,
        live: live.clone(),
        timeline: plan.timeline.then(Timeline::default),
        start,
        deadline: plan.duration.map(|d| start + d),
        started: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        written: AtomicU64::new(0),
        note: Mutex::new(None),
    });
    let progress = plan
        .progress
        .then(|| Progress::start(&format!("{}{}", plan.label, plan.kind.name()), live, None));
    let mut tasks = Vec::new();
    for worker in 0..plan.concurrency.max(1) {
        let ctx = ctx.clone();
        let span = tracing::info_span!("bench-worker", worker);
        tasks.push(tokio::spawn(
            worker_loop(ctx, worker, seed ^ ((worker as u64) << 32)).instrument(span),
        ));
    }
    let mut recorder = Recorder::default();
    for task in tasks {
        match task.await {
            Ok(r) => recorder.merge(&r),
            Err(e) => recorder.failure(OpKind::Put, &format!("TaskFailed: {e}")),
        }
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.finish().await;
    }
    let note = ctx
        .note
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Outcome {
        recorder,
        elapsed,
        written: ctx.written.load(Ordering::Relaxed),
        put_prefix: format!("{}put/", target.prefix),
        note,
        timeline: ctx.timeline.as_ref().map(Timeline::seconds),
    }
}

async fn worker_loop(ctx: Arc<Ctx>, worker: usize, seed: u64) -> Recorder {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut rec = Recorder::default();
    let mut seq = 0u64;
    let mut walk = Walk::default();
    let mix_total = ctx.plan.mix.total();
    while ctx.next_ticket() {
        let op = match ctx.plan.kind {
            WorkloadKind::Put => MixOp::Put,
            WorkloadKind::Get => MixOp::Get,
            WorkloadKind::Delete => MixOp::Delete,
            WorkloadKind::List => MixOp::List,
            WorkloadKind::Mixed => ctx.plan.mix.pick(rng.random_range(0..mix_total)),
            WorkloadKind::Multipart => {
                seq += 1;
                let result = multipart(&ctx, worker, seq, &mut rng, &mut rec).await;
                finish(&ctx, &mut rec, result);
                continue;
            }
        };
        let result = match op {
            MixOp::Put => put(&ctx, worker, &mut seq, &mut rng).await,
            MixOp::Get => match ctx.pool.checkout(&mut rng) {
                Some(guard) => get(&ctx, &guard.key).await,
                None if ctx.plan.kind == WorkloadKind::Mixed => {
                    put(&ctx, worker, &mut seq, &mut rng).await
                }
                None => {
                    ctx.stop_with("no objects to read");
                    break;
                }
            },
            MixOp::Delete => match ctx.pool.take(&mut rng) {
                Some(key) => delete(&ctx, key).await,
                None if ctx.plan.kind == WorkloadKind::Mixed => {
                    put(&ctx, worker, &mut seq, &mut rng).await
                }
                None => {
                    ctx.stop_with("no objects left to delete");
                    break;
                }
            },
            MixOp::List => list(&ctx, &mut walk, &mut rec).await,
        };
        finish(&ctx, &mut rec, result);
    }
    rec
}

/// Records one operation in the worker's recorder, the live counters and the timeline.
fn finish(ctx: &Ctx, rec: &mut Recorder, result: Result<Done, (OpKind, OpError)>) {
    let at = ctx.start.elapsed();
    match result {
        Ok(done) => {
            rec.success(done.kind, done.bytes, done.latency);
            if let Some(t) = done.ttfb {
                rec.ttfb(done.kind, t);
            }
            ctx.live.success(done.bytes);
            if let Some(t) = &ctx.timeline {
                t.record(at, Some(done.latency));
            }
        }
        Err((kind, e)) => {
            rec.failure(kind, &e.code);
            ctx.live.failure();
            if let Some(t) = &ctx.timeline {
                t.record(at, None);
            }
        }
    }
}

async fn put(
    ctx: &Ctx,
    worker: usize,
    seq: &mut u64,
    rng: &mut SmallRng,
) -> Result<Done, (OpKind, OpError)> {
    *seq += 1;
    let key: Arc<str> = format!("{}put/{worker:04}/{:08}", ctx.target.prefix, *seq).into();
    let size = ctx.plan.size.pick(ctx.plan.dist, rng.random());
    let body = ctx.payload.body(size, rng);
    let reply = ctx
        .target
        .client
        .put_object(&ctx.target.bucket, &key, body)
        .await
        .map_err(|e| (OpKind::Put, e))?;
    ctx.written.fetch_add(1, Ordering::Relaxed);
    if ctx.plan.kind == WorkloadKind::Mixed {
        ctx.pool.add(key);
    }
    Ok(Done {
        kind: OpKind::Put,
        bytes: size,
        latency: reply.latency,
        ttfb: None,
    })
}

async fn get(ctx: &Ctx, key: &str) -> Result<Done, (OpKind, OpError)> {
    let reply = ctx
        .target
        .client
        .get_object(&ctx.target.bucket, key)
        .await
        .map_err(|e| (OpKind::Get, e))?;
    Ok(Done {
        kind: OpKind::Get,
        bytes: reply.body_len,
        latency: reply.latency,
        ttfb: Some(reply.ttfb),
    })
}

async fn delete(ctx: &Ctx, key: Arc<str>) -> Result<Done, (OpKind, OpError)> {
    let reply = ctx
        .target
        .client
        .delete_object(&ctx.target.bucket, &key)
        .await
        .map_err(|e| (OpKind::Delete, e))?;
    Ok(Done {
        kind: OpKind::Delete,
        bytes: 0,
        latency: reply.latency,
        ttfb: None,
    })
}

/// One page of the walk through the listing: the prefilled objects for the list workload,
/// everything of the run for mixed. A finished walk records its total time.
async fn list(ctx: &Ctx, walk: &mut Walk, rec: &mut Recorder) -> Result<Done, (OpKind, OpError)> {
    let prefix = match ctx.plan.kind {
        WorkloadKind::List => format!("{}pre/", ctx.target.prefix),
        _ => ctx.target.prefix.clone(),
    };
    if walk.started.is_none() {
        walk.started = Some(Instant::now());
    }
    let (page, reply) = ctx
        .target
        .client
        .list_page(
            &ctx.target.bucket,
            &prefix,
            walk.token.as_deref(),
            ctx.plan.page_size,
        )
        .await
        .map_err(|e| {
            // A failed page restarts the walk, so a walk's time never hides a failure.
            *walk = Walk::default();
            (OpKind::List, e)
        })?;
    rec.items(OpKind::List, page.keys.len() as u64);
    walk.token = page.next_token;
    if walk.token.is_none() {
        if let Some(started) = walk.started.take() {
            rec.walk(OpKind::List, started.elapsed());
        }
    }
    Ok(Done {
        kind: OpKind::List,
        bytes: 0,
        latency: reply.latency,
        ttfb: None,
    })
}

/// One multipart upload: create, the parts one after another, complete. A failure aborts
/// the upload; a failed abort is counted too (as `abort: CODE`).
async fn multipart(
    ctx: &Ctx,
    worker: usize,
    seq: u64,
    rng: &mut SmallRng,
    rec: &mut Recorder,
) -> Result<Done, (OpKind, OpError)> {
    let client = &ctx.target.client;
    let bucket = &ctx.target.bucket;
    let key = format!("{}mp/{worker:04}/{seq:08}", ctx.target.prefix);
    let size = ctx.plan.size.pick(ctx.plan.dist, rng.random());
    let part_size = ctx.plan.part_size.max(1);
    let start = Instant::now();
    let fail = |e| (OpKind::Multipart, e);
    let upload_id = client.create_multipart(bucket, &key).await.map_err(fail)?;
    let mut etags = Vec::new();
    let mut offset = 0u64;
    let mut result = Ok(());
    // A zero-byte object is still one (empty) part.
    while offset < size || etags.is_empty() {
        let len = part_size.min(size - offset);
        let body = ctx.payload.body(len, rng);
        let number = u32::try_from(etags.len() + 1).unwrap_or(u32::MAX);
        match client
            .upload_part(bucket, &key, &upload_id, number, body)
            .await
        {
            Ok(etag) => etags.push(etag),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        offset += len;
    }
    if result.is_ok() {
        result = client
            .complete_multipart(bucket, &key, &upload_id, &etags)
            .await
            .map(|_| ());
    }
    if let Err(e) = result {
        if let Err(abort) = client.abort_multipart(bucket, &key, &upload_id).await {
            rec.failure(OpKind::Multipart, &format!("abort: {}", abort.code));
        }
        return Err(fail(e));
    }
    ctx.written.fetch_add(1, Ordering::Relaxed);
    Ok(Done {
        kind: OpKind::Multipart,
        bytes: size,
        latency: start.elapsed(),
        ttfb: None,
    })
}
