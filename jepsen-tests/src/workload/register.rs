//! The register workload: clients PUT (a new unique value each time), GET and DELETE a few
//! keys at a time, and write conditionally: compare-and-set (`If-Match` with the ETag of
//! the value the client last read of the key) and create (`If-None-Match: *`, when the
//! client last read the key as absent). Each key takes a bounded number of operations and is then retired for a
//! fresh one, which keeps every key's history small enough for the linearizability search
//! (indeterminate writes stay concurrent with everything after them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{decode, delete, put, put_if, Condition, Ctx, Worker};
use crate::checker::register::{CAS, CREATE};
use crate::client::{classify, Failure, Kind};

/// Keys in use at once.
const ACTIVE_KEYS: usize = 3;
/// Operations a key takes before it is retired.
const OPS_PER_KEY: usize = 200;
/// Process numbers of the final reads start here.
const FINAL_PROCESS: u64 = 1_000_000;

/// The object key of register `k`.
pub fn key(k: u64) -> String {
    format!("r/{k}")
}

/// Hands out keys: a few active ones, each retired after [`OPS_PER_KEY`] operations.
struct KeyPool {
    active: Vec<(u64, usize)>,
    next: u64,
}

impl KeyPool {
    fn new() -> KeyPool {
        KeyPool {
            active: (0..ACTIVE_KEYS as u64).map(|k| (k, 0)).collect(),
            next: ACTIVE_KEYS as u64,
        }
    }

    fn pick(&mut self, rng: &mut StdRng) -> u64 {
        let i = rng.random_range(0..self.active.len());
        let (k, used) = &mut self.active[i];
        let key = *k;
        *used += 1;
        if *used >= OPS_PER_KEY {
            self.active[i] = (self.next, 0);
            self.next += 1;
        }
        key
    }
}

/// Runs the clients until the deadline; returns every key used.
pub async fn run(ctx: Arc<Ctx>) -> Vec<String> {
    let pool = Arc::new(Mutex::new(KeyPool::new()));
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for i in 0..ctx.workers {
        let (ctx, pool, values) = (Arc::clone(&ctx), Arc::clone(&pool), Arc::clone(&values));
        tasks.push(tokio::spawn(async move {
            worker(ctx, i, pool, values).await;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "register worker panicked");
        }
    }
    let used = pool.lock().unwrap_or_else(|p| p.into_inner()).next;
    (0..used).map(key).collect()
}

async fn worker(ctx: Arc<Ctx>, i: usize, pool: Arc<Mutex<KeyPool>>, values: Arc<AtomicU64>) {
    let client = ctx.client(i);
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let mut w = Worker::new(i, ctx.workers);
    let rec = Arc::clone(&ctx.recorder);
    // Per key: what this client last read (`Some(None)`: absent), for its conditional PUTs.
    let mut last_read: HashMap<u64, Option<u64>> = HashMap::new();
    while Instant::now() < ctx.deadline {
        let k = pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pick(&mut rng);
        let key = key(k);
        let roll = rng.random_range(0..100);
        let (b, t) = (&ctx.bucket, ctx.op_timeout);
        // What this client last read of the key decides between a cas, a create and (never
        // read yet) a plain read.
        let known = last_read.get(&k).copied();
        if roll < 40 || ((65..90).contains(&roll) && known.is_none()) {
            let got = w
                .perform(
                    &rec,
                    t,
                    "read",
                    Some(&key),
                    Value::Null,
                    get(&client, b, &key),
                )
                .await;
            if let Ok(v) = got {
                if v.is_null() {
                    last_read.insert(k, None);
                } else if let Some(v) = v.as_u64() {
                    last_read.insert(k, Some(v));
                }
            }
        } else if roll < 65 {
            let v = values.fetch_add(1, Ordering::Relaxed);
            let outcome = w
                .perform(
                    &rec,
                    t,
                    "write",
                    Some(&key),
                    v.into(),
                    put(&client, b, &key, v),
                )
                .await;
            if outcome.is_ok() {
                last_read.insert(k, Some(v));
            }
        } else if roll < 90 {
            let v = values.fetch_add(1, Ordering::Relaxed);
            let (f, condition, value) = match known.flatten() {
                Some(expected) => (CAS, Condition::IfMatch(expected), json!([expected, v])),
                None => (CREATE, Condition::IfAbsent, json!(v)),
            };
            let outcome = w
                .perform(&rec, t, f, Some(&key), value.clone(), async {
                    put_if(&client, b, &key, v, condition)
                        .await
                        .map(|()| value.clone())
                })
                .await;
            // Only an acknowledged write says what the key held last (the client's own
            // writes count as what it last saw).
            match outcome {
                Ok(_) => last_read.insert(k, Some(v)),
                Err(_) => last_read.remove(&k),
            };
        } else {
            let outcome = w
                .perform(
                    &rec,
                    t,
                    "delete",
                    Some(&key),
                    Value::Null,
                    delete(&client, b, &key),
                )
                .await;
            if outcome.is_ok() {
                last_read.insert(k, None);
            }
        }
    }
}

/// GET: the value read (`null` for NoSuchKey).
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Value, Failure> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out
                .body
                .collect()
                .await
                .map_err(|e| Failure::Definite(format!("reading the body: {e}")))?;
            Ok(decode(&body.into_bytes()))
        }
        Err(e) => {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                Ok(Value::Null)
            } else {
                Err(classify(&e, Kind::Read))
            }
        }
    }
}

/// After the heal: one successful read of every key (retried until `deadline`), recorded
/// like any read, so the checker sees the final state of each register.
pub async fn final_reads(ctx: Arc<Ctx>, keys: Vec<String>, deadline: Instant) {
    let mut w = Worker::new(0, 1);
    w.process = FINAL_PROCESS;
    for (i, key) in keys.iter().enumerate() {
        let client = ctx.client(i);
        while Instant::now() < deadline {
            let got = w
                .perform(
                    &ctx.recorder,
                    ctx.op_timeout,
                    "read",
                    Some(key),
                    Value::Null,
                    get(&client, &ctx.bucket, key),
                )
                .await;
            if got.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
