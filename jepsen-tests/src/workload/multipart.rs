//! The multipart workload: clients start multipart uploads (one key and one value per
//! upload, one part holding the value's bytes), and race CompleteMultipartUpload and
//! AbortMultipartUpload of the same upload ids against each other, with GETs of the keys in
//! between. Checked by [`crate::checker::multipart`]: a completed upload is readable with
//! exactly its part's bytes, an aborted one never becomes visible, and no upload is both
//! completed and aborted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::register::get;
use super::{payload, Ctx, Worker};
use crate::checker::multipart::{ABORT, COMPLETE, START};
use crate::client::{classify, Failure, Kind};

/// Uploads open for racing at once; the oldest is retired when a new one comes.
const OPEN_UPLOADS: usize = 4;
/// Process numbers of the final reads start here.
const FINAL_PROCESS: u64 = 5_000_000;

/// The object key of upload `n`.
pub fn key(n: u64) -> String {
    format!("m/{n}")
}

/// An upload whose part is in place: ready to complete or abort.
#[derive(Debug, Clone)]
struct Upload {
    n: u64,
    id: String,
    part_etag: String,
}

/// Runs the clients until the deadline; returns the number of uploads started.
pub async fn run(ctx: Arc<Ctx>) -> u64 {
    let open: Arc<Mutex<Vec<Upload>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for i in 0..ctx.workers {
        let (ctx, open, next) = (Arc::clone(&ctx), Arc::clone(&open), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            worker(ctx, i, open, next).await;
        }));
    }
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "multipart worker panicked");
        }
    }
    next.load(Ordering::Relaxed)
}

async fn worker(ctx: Arc<Ctx>, i: usize, open: Arc<Mutex<Vec<Upload>>>, next: Arc<AtomicU64>) {
    let client = ctx.client(i);
    let mut rng = StdRng::seed_from_u64(ctx.seed ^ (i as u64).wrapping_mul(0x003D_F00D));
    let mut w = Worker::new(i, ctx.workers);
    let (b, t) = (ctx.bucket.clone(), ctx.op_timeout);
    let rec = &ctx.recorder;
    while Instant::now() < ctx.deadline {
        let picked = {
            let open = open.lock().unwrap_or_else(|p| p.into_inner());
            (!open.is_empty()).then(|| open[rng.random_range(0..open.len())].clone())
        };
        let roll = rng.random_range(0..100);
        match picked {
            Some(u) if roll < 40 => {
                let value = json!({"upload": u.id, "value": u.n});
                let op = complete(&client, &b, &u);
                let _ = w
                    .perform(rec, t, COMPLETE, Some(&key(u.n)), value, op)
                    .await;
            }
            Some(u) if roll < 70 => {
                let value = json!({"upload": u.id, "value": u.n});
                let op = abort(&client, &b, &u);
                let _ = w.perform(rec, t, ABORT, Some(&key(u.n)), value, op).await;
            }
            Some(u) if roll < 80 => {
                let k = key(u.n);
                let _ = w
                    .perform(rec, t, "read", Some(&k), Value::Null, get(&client, &b, &k))
                    .await;
            }
            _ => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let op = start(&client, &b, n);
                let started = w.perform(rec, t, START, Some(&key(n)), json!(n), op).await;
                if let Ok(v) = started {
                    let (Some(id), Some(etag)) = (v["upload"].as_str(), v["part_etag"].as_str())
                    else {
                        continue;
                    };
                    let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
                    open.push(Upload {
                        n,
                        id: id.to_string(),
                        part_etag: etag.to_string(),
                    });
                    if open.len() > OPEN_UPLOADS {
                        open.remove(0);
                    }
                }
            }
        }
    }
}

/// CreateMultipartUpload and UploadPart 1 with the value's bytes, as one history
/// operation (nothing is visible until a completion, so how far it got matters only to the
/// worker): ok with `{"upload": id, "part_etag": etag}`.
async fn start(client: &Client, bucket: &str, n: u64) -> Result<Value, Failure> {
    let k = key(n);
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(&k)
        .send()
        .await
        .map_err(|e| classify(&e, Kind::Write))?;
    let id = created
        .upload_id()
        .ok_or_else(|| Failure::Definite("no upload id".into()))?
        .to_string();
    let part = client
        .upload_part()
        .bucket(bucket)
        .key(&k)
        .upload_id(&id)
        .part_number(1)
        .body(payload(n).into())
        .send()
        .await
        .map_err(|e| classify(&e, Kind::Write))?;
    let etag = part
        .e_tag()
        .ok_or_else(|| Failure::Definite("no part ETag".into()))?;
    Ok(json!({"upload": id, "part_etag": etag}))
}

async fn complete(client: &Client, bucket: &str, u: &Upload) -> Result<Value, Failure> {
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(&u.part_etag)
                .build(),
        )
        .build();
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key(u.n))
        .upload_id(&u.id)
        .multipart_upload(parts)
        .send()
        .await
        .map(|_| json!({"upload": u.id, "value": u.n}))
        .map_err(|e| classify(&e, Kind::Write))
}

async fn abort(client: &Client, bucket: &str, u: &Upload) -> Result<Value, Failure> {
    client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key(u.n))
        .upload_id(&u.id)
        .send()
        .await
        .map(|_| json!({"upload": u.id, "value": u.n}))
        .map_err(|e| classify(&e, Kind::Write))
}

/// After the heal: one answered GET of every upload's key (several at a time; see
/// [`super::read_each`] for the time each may take).
pub async fn final_reads(ctx: Arc<Ctx>, uploads: u64, deadline: Instant) {
    let keys = (1..uploads).map(key).collect();
    super::read_each(&ctx, keys, "read", FINAL_PROCESS, deadline).await;
}
