//! The set workload: every client PUTs new, unique keys; after the heal the harness lists
//! the bucket and reads every listed or acknowledged key (see [`crate::checker::set`]).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use serde_json::Value;

use super::{payload, Ctx, Worker};
use crate::checker::set::{FINAL_LIST, FINAL_READ};
use crate::client::{classify, Failure, Kind};
use crate::history::{operations, EventType};

/// Key prefix of the elements.
const PREFIX: &str = "s/";
/// Process numbers of the final listing and reads start here.
const FINAL_PROCESS: u64 = 2_000_000;

/// The object key of element `n`.
pub fn key(n: u64) -> String {
    format!("{PREFIX}{n:08}")
}

/// Runs the clients until the deadline.
pub async fn run(ctx: Arc<Ctx>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..ctx.workers {
        let (ctx, next) = (Arc::clone(&ctx), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let client = ctx.client(i);
            let mut w = Worker::new(i, ctx.workers);
            while Instant::now() < ctx.deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let k = key(n);
                let _ = w
                    .perform(
                        &ctx.recorder,
                        ctx.op_timeout,
                        "add",
                        Some(&k),
                        n.into(),
                        put(&client, &ctx.bucket, &k, n),
                    )
                    .await;
            }
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "set worker panicked");
        }
    }
}

async fn put(client: &Client, bucket: &str, key: &str, n: u64) -> Result<Value, Failure> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(payload(n).into())
        .send()
        .await
        .map(|_| Value::from(n))
        .map_err(|e| classify(&e, Kind::Write))
}

/// Every key under the prefix, page by page.
async fn list_all(client: &Client, bucket: &str) -> Result<Value, Failure> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(PREFIX)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&e, Kind::Read))?;
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(|k| Value::from(k.to_string()))),
        );
        match out.next_continuation_token() {
            Some(t) if out.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
            _ => return Ok(Value::Array(keys)),
        }
    }
}

/// After the heal: a complete listing, then a read of every listed or acknowledged key,
/// each retried until it succeeds or `deadline` passes.
pub async fn final_reads(ctx: Arc<Ctx>, deadline: Instant) {
    let client = ctx.client(0);
    let mut w = Worker::new(0, 1);
    w.process = FINAL_PROCESS;
    let mut listed: BTreeSet<String> = BTreeSet::new();
    while Instant::now() < deadline {
        let got = w
            .perform(
                &ctx.recorder,
                ctx.op_timeout * 4,
                FINAL_LIST,
                None,
                Value::Null,
                list_all(&client, &ctx.bucket),
            )
            .await;
        if let Ok(Value::Array(keys)) = got {
            listed = keys
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let events = ctx.recorder.snapshot();
    let mut to_read = listed;
    to_read.extend(
        operations(&events)
            .into_iter()
            .filter(|o| o.invoke.f == "add" && o.outcome() == EventType::Ok)
            .filter_map(|o| o.invoke.key),
    );
    // The listing above takes a new process number after each unknown outcome (up to a few
    // hundred before the deadline): the readers' numbers start well clear of them.
    super::read_each(
        &ctx,
        to_read.into_iter().collect(),
        FINAL_READ,
        FINAL_PROCESS + 100_000,
        deadline,
    )
    .await;
}
