//! The list workload: clients PUT and DELETE keys of a small key space and LIST its prefix;
//! every LIST must reflect the mutations acknowledged before it (see
//! [`crate::checker::list`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::{delete, put, Ctx, Worker};
use crate::checker::list::LIST;
use crate::client::{classify, Failure, Kind};

/// Key prefix.
const PREFIX: &str = "l/";
/// Keys in the key space (one LIST page).
const KEYS: u64 = 20;
/// Process number of the final listing.
const FINAL_PROCESS: u64 = 3_000_000;

fn key(k: u64) -> String {
    format!("{PREFIX}{k:02}")
}

/// Runs the clients until the deadline.
pub async fn run(ctx: Arc<Ctx>) {
    let values = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for i in 0..ctx.workers {
        let (ctx, values) = (Arc::clone(&ctx), Arc::clone(&values));
        tasks.push(tokio::spawn(async move {
            let client = ctx.client(i);
            let mut rng = StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x51_7CC1));
            let mut w = Worker::new(i, ctx.workers);
            let (b, t) = (ctx.bucket.clone(), ctx.op_timeout);
            while Instant::now() < ctx.deadline {
                let k = key(rng.random_range(0..KEYS));
                let roll = rng.random_range(0..100);
                let _ = if roll < 40 {
                    let v = values.fetch_add(1, Ordering::Relaxed);
                    let put = put(&client, &b, &k, v);
                    w.perform(&ctx.recorder, t, "write", Some(&k), v.into(), put)
                        .await
                } else if roll < 60 {
                    let del = delete(&client, &b, &k);
                    w.perform(&ctx.recorder, t, "delete", Some(&k), Value::Null, del)
                        .await
                } else {
                    let list = list(&client, &b);
                    w.perform(&ctx.recorder, t, LIST, None, Value::Null, list)
                        .await
                };
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "list worker panicked");
        }
    }
}

/// One LIST of the prefix (the key space fits one page; a truncated answer is a failure).
async fn list(client: &Client, bucket: &str) -> Result<Value, Failure> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .send()
        .await
        .map_err(|e| classify(&e, Kind::Read))?;
    if out.is_truncated().unwrap_or(false) {
        return Err(Failure::Definite("listing truncated".into()));
    }
    Ok(Value::Array(
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(|k| Value::from(k.to_string())))
            .collect(),
    ))
}

/// After the heal: one successful LIST, retried until `deadline`.
pub async fn final_reads(ctx: Arc<Ctx>, deadline: Instant) {
    let client = ctx.client(0);
    let mut w = Worker::new(0, 1);
    w.process = FINAL_PROCESS;
    while Instant::now() < deadline {
        let got = w
            .perform(
                &ctx.recorder,
                ctx.op_timeout,
                LIST,
                None,
                Value::Null,
                list(&client, &ctx.bucket),
            )
            .await;
        if got.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
