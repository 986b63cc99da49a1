//! The bucket workload: clients create, delete and probe (HeadBucket) a few bucket names and
//! list the buckets, all concurrently; the buckets stay empty. Checked by
//! [`crate::checker::bucket`]: each name is a linearizable register of existence, each
//! ListBuckets reflects the creates and deletes acknowledged before it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::{Ctx, Worker};
use crate::checker::bucket::{CREATE_BUCKET, DELETE_BUCKET, HEAD_BUCKET, LIST_BUCKETS};
use crate::client::{classify, Failure, Kind};

/// Prefix of the workload's bucket names (the run's own bucket, `jepsen`, does not match).
pub const PREFIX: &str = "jepsen-b";
/// Bucket names in play.
const NAMES: u64 = 4;
/// Process numbers of the final reads start here.
const FINAL_PROCESS: u64 = 4_000_000;

fn name(i: u64) -> String {
    format!("{PREFIX}{i}")
}

/// Runs the clients until the deadline.
pub async fn run(ctx: Arc<Ctx>) {
    let mut tasks = Vec::new();
    for i in 0..ctx.workers {
        let ctx = Arc::clone(&ctx);
        tasks.push(tokio::spawn(async move {
            let client = ctx.client(i);
            let mut rng = StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x00B0_C4E7));
            let mut w = Worker::new(i, ctx.workers);
            let t = ctx.op_timeout;
            let rec = &ctx.recorder;
            while Instant::now() < ctx.deadline {
                let b = name(rng.random_range(0..NAMES));
                let roll = rng.random_range(0..100);
                let _ = if roll < 30 {
                    let op = create(&client, &b);
                    w.perform(rec, t, CREATE_BUCKET, Some(&b), Value::Null, op)
                        .await
                } else if roll < 60 {
                    let op = delete(&client, &b);
                    w.perform(rec, t, DELETE_BUCKET, Some(&b), Value::Null, op)
                        .await
                } else if roll < 85 {
                    let op = head(&client, &b);
                    w.perform(rec, t, HEAD_BUCKET, Some(&b), Value::Null, op)
                        .await
                } else {
                    let op = list(&client);
                    w.perform(rec, t, LIST_BUCKETS, None, Value::Null, op).await
                };
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "bucket worker panicked");
        }
    }
}

/// CreateBucket. 409 BucketAlreadyOwnedByYou is a definite failure the checker reads as
/// "it existed".
async fn create(client: &Client, bucket: &str) -> Result<Value, Failure> {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| Value::Null)
        .map_err(|e| classify(&e, Kind::Write))
}

/// DeleteBucket. 404 NoSuchBucket is a definite failure the checker reads as "it did not
/// exist".
async fn delete(client: &Client, bucket: &str) -> Result<Value, Failure> {
    client
        .delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map(|_| Value::Null)
        .map_err(|e| classify(&e, Kind::Write))
}

/// HeadBucket: `true` (200) or `false` (404).
async fn head(client: &Client, bucket: &str) -> Result<Value, Failure> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(Value::Bool(true)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(Value::Bool(false)),
        Err(e) => Err(classify(&e, Kind::Read)),
    }
}

/// ListBuckets: the names of the workload's prefix, sorted.
async fn list(client: &Client) -> Result<Value, Failure> {
    let out = client
        .list_buckets()
        .send()
        .await
        .map_err(|e| classify(&e, Kind::Read))?;
    if out.continuation_token().is_some_and(|t| !t.is_empty()) {
        return Err(Failure::Definite("bucket listing truncated".into()));
    }
    let mut names: Vec<String> = out
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(Value::from(names))
}

/// After the heal: one answered HeadBucket of every name and one ListBuckets, each retried
/// until `deadline`.
pub async fn final_reads(ctx: Arc<Ctx>, deadline: Instant) {
    let client = ctx.client(0);
    let mut w = Worker::new(0, 1);
    w.process = FINAL_PROCESS;
    let t = ctx.op_timeout;
    let mut targets: Vec<Option<String>> = (0..NAMES).map(|i| Some(name(i))).collect();
    targets.push(None);
    for target in targets {
        while Instant::now() < deadline {
            let got = match &target {
                Some(b) => {
                    w.perform(
                        &ctx.recorder,
                        t,
                        HEAD_BUCKET,
                        Some(b),
                        Value::Null,
                        head(&client, b),
                    )
                    .await
                }
                None => {
                    w.perform(
                        &ctx.recorder,
                        t,
                        LIST_BUCKETS,
                        None,
                        Value::Null,
                        list(&client),
                    )
                    .await
                }
            };
            if got.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
