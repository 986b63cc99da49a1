//! Simulated clients: registers on a few keys, written and read through the meta service's
//! production paths (`client_write` of an object commit or delete on the leader, a read
//! index from the [`ReadBatcher`](cairn_meta::read_batch::ReadBatcher), then the applied
//! state).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_meta::types::{Command, Request, Response, WriteCondition};
use cairn_proto::meta::{MetaError, ObjectVersion};
use prost::Message;
use rand::rngs::StdRng;
use rand::Rng;

use super::cluster::{Handles, SimCluster};
use super::trace::{OpKind, Outcome, SimOp, Trace};

/// The bucket every simulated object lives in.
pub const BUCKET: &str = "sim";

/// An operation that takes longer than this is indeterminate.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// Keys in use at any time.
const ACTIVE_KEYS: usize = 3;

/// Operations after which a key is retired and a fresh one replaces it: it keeps each key's
/// history small enough for the linearizability search, where every indeterminate write
/// stays concurrent with everything after it.
const OPS_PER_KEY: u32 = 120;

/// The object key of key index `k`.
pub fn key_name(k: usize) -> String {
    format!("r/{k}")
}

/// The keys clients work on: a few active ones, each retired after [`OPS_PER_KEY`].
#[derive(Clone, Default)]
pub struct KeySpace {
    inner: Arc<Mutex<KeySpaceInner>>,
}

#[derive(Default)]
struct KeySpaceInner {
    active: Vec<usize>,
    used: BTreeMap<usize, u32>,
    next: usize,
}

impl KeySpace {
    /// Picks an active key for one more operation.
    fn pick(&self, rng: &mut StdRng) -> usize {
        let Ok(mut s) = self.inner.lock() else {
            return 0;
        };
        while s.active.len() < ACTIVE_KEYS {
            let k = s.next;
            s.next += 1;
            s.active.push(k);
        }
        let slot = rng.random_range(0..s.active.len());
        let k = s.active[slot];
        let used = s.used.entry(k).or_insert(0);
        *used += 1;
        if *used >= OPS_PER_KEY {
            s.active.remove(slot);
        }
        k
    }

    /// Every key ever handed out.
    pub fn all(&self) -> Vec<usize> {
        self.inner
            .lock()
            .map(|s| s.used.keys().copied().collect())
            .unwrap_or_default()
    }
}

/// Everything the clients share.
#[derive(Clone)]
pub struct ClientEnv {
    /// The cluster.
    pub cluster: Arc<SimCluster>,
    /// Where operations are recorded.
    pub trace: Trace,
    /// Id of [`BUCKET`].
    pub bucket_id: u64,
    /// The keys.
    pub keys: KeySpace,
    /// Source of unique values.
    pub values: Arc<AtomicU64>,
    /// Read any node's applied state without a read index (a planted bug, see
    /// [`super::Plant::StaleReads`]).
    pub stale_reads: bool,
}

/// Leader-stamped wall clock of simulated entries: a fixed epoch plus simulated time.
fn now_ms(trace: &Trace) -> i64 {
    1_800_000_000_000 + i64::try_from(trace.now_ns() / 1_000_000).unwrap_or(0)
}

/// Runs client `index` of `count` until the trace's clock passes `until_ns` (set once the
/// faults are healed: the liveness phase counts from the heal, however long it took).
pub async fn run(
    env: ClientEnv,
    index: usize,
    count: usize,
    mut rng: StdRng,
    until_ns: Arc<AtomicU64>,
) {
    let mut process = index;
    // What this client last saw of each key: Some(None) = absent.
    let mut known: BTreeMap<usize, Option<u64>> = BTreeMap::new();
    while env.trace.now_ns() < until_ns.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..30))).await;
        let key = env.keys.pick(&mut rng);
        let kind = choose(&env, &mut rng, known.get(&key).copied());
        let Some(node) = pick_node(&env, &mut rng, kind).await else {
            continue;
        };
        let call = env.trace.now_ns();
        let outcome = perform(&env, &node, key, kind).await;
        env.trace.op(SimOp {
            process,
            key,
            kind,
            call,
            ret: env.trace.now_ns(),
            outcome,
        });
        match (kind, outcome) {
            (_, Outcome::Info) => {
                known.remove(&key);
                process += count;
            }
            (OpKind::Read, Outcome::Ok(v)) => {
                known.insert(key, v);
            }
            (OpKind::Write(v) | OpKind::Cas { new: v, .. } | OpKind::Create(v), Outcome::Ok(_)) => {
                known.insert(key, Some(v));
            }
            (OpKind::Delete, Outcome::Ok(_)) | (_, Outcome::RefusedAbsent) => {
                known.insert(key, None);
            }
            _ => {
                known.remove(&key);
            }
        }
    }
}

/// The node a client calls: a leader for writes and linearizable reads (any running node
/// for the planted stale reads).
async fn pick_node(env: &ClientEnv, rng: &mut StdRng, kind: OpKind) -> Option<Handles> {
    if env.stale_reads && kind == OpKind::Read {
        let running = env.cluster.running().await;
        if running.is_empty() {
            return None;
        }
        return env
            .cluster
            .handles(running[rng.random_range(0..running.len())])
            .await;
    }
    env.cluster.some_leader(rng).await
}

fn choose(env: &ClientEnv, rng: &mut StdRng, known: Option<Option<u64>>) -> OpKind {
    let value = || env.values.fetch_add(1, Ordering::Relaxed);
    match rng.random_range(0..100) {
        0..40 => OpKind::Read,
        40..65 => OpKind::Write(value()),
        65..75 => OpKind::Delete,
        _ => match known {
            Some(Some(expected)) => OpKind::Cas {
                expected,
                new: value(),
            },
            Some(None) => OpKind::Create(value()),
            None => OpKind::Read,
        },
    }
}

/// Performs one operation on `node`, bounded by [`OP_TIMEOUT`].
pub async fn perform(env: &ClientEnv, node: &Handles, key: usize, kind: OpKind) -> Outcome {
    let work = async {
        match kind {
            OpKind::Read => read(env, node, key).await,
            OpKind::Write(v) => commit(env, node, key, v, None).await,
            OpKind::Cas { expected, new } => {
                let condition = WriteCondition {
                    if_none_match_any: false,
                    if_match: Some(expected.to_string()),
                };
                commit(env, node, key, new, Some(condition)).await
            }
            OpKind::Create(v) => {
                let condition = WriteCondition {
                    if_none_match_any: true,
                    if_match: None,
                };
                commit(env, node, key, v, Some(condition)).await
            }
            OpKind::Delete => {
                let command = Command::DeleteObject {
                    bucket: BUCKET.into(),
                    key: key_name(key),
                    condition: None,
                    version_id: None,
                    bypass_governance: false,
                };
                write(env, node, command).await
            }
        }
    };
    match tokio::time::timeout(OP_TIMEOUT, work).await {
        Ok(outcome) => outcome,
        // A read that timed out had no effect; a write may still take effect.
        Err(_) if kind == OpKind::Read => Outcome::Fail,
        Err(_) => Outcome::Info,
    }
}

async fn read(env: &ClientEnv, node: &Handles, key: usize) -> Outcome {
    if !env.stale_reads && node.reads.read_index().await.is_err() {
        return Outcome::Fail;
    }
    match node.reader.object(env.bucket_id, &key_name(key)) {
        Ok(Some(object)) if !object.delete_marker => match object.etag.parse() {
            Ok(v) => Outcome::Ok(Some(v)),
            // No write wrote this: the checker finds no place for it.
            Err(_) => Outcome::Ok(Some(crate::checker::register::CORRUPT)),
        },
        Ok(_) => Outcome::Ok(None),
        Err(_) => Outcome::Fail,
    }
}

async fn commit(
    env: &ClientEnv,
    node: &Handles,
    key: usize,
    value: u64,
    condition: Option<WriteCondition>,
) -> Outcome {
    let object = ObjectVersion {
        bucket: BUCKET.into(),
        key: key_name(key),
        etag: value.to_string(),
        upload_id: format!("sim-{value}"),
        inline_data: Some(Default::default()),
        ..Default::default()
    };
    let command = Command::CommitObject {
        object: object.encode_to_vec(),
        condition,
    };
    write(env, node, command).await
}

/// Proposes `command` on `node`. Every error is indeterminate: the entry may have been
/// appended before the node lost its leadership, and a later leader may commit it.
async fn write(env: &ClientEnv, node: &Handles, command: Command) -> Outcome {
    let request = Request {
        now_ms: now_ms(&env.trace),
        command,
    };
    match node.raft.client_write(request).await {
        Ok(reply) => match reply.data {
            Response::Committed { .. } | Response::Deleted { .. } => Outcome::Ok(None),
            Response::Error { code } if code == MetaError::PreconditionFailed as i32 => {
                Outcome::Refused
            }
            Response::Error { code } if code == MetaError::NoSuchKey as i32 => {
                Outcome::RefusedAbsent
            }
            other => {
                env.trace.note(format!("unexpected response {other:?}"));
                Outcome::Info
            }
        },
        Err(_) => Outcome::Info,
    }
}
