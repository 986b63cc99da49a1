//! Workloads: concurrent clients that run operations through the gateways and record them.

pub mod bucket;
pub mod list;
pub mod multipart;
pub mod register;
pub mod set;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use futures::StreamExt;
use serde_json::Value;

use crate::client::{classify, Failure, Kind};
use crate::history::{EventBody, EventType, Process, Recorder};

/// Which workload to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Single-key PUT / GET / DELETE on a few keys, checked for linearizability.
    Register,
    /// Unique PUTs; every acknowledged one must be listed and readable at the end.
    Set,
    /// PUT / DELETE on a small key space and LIST; a LIST reflects what was acknowledged.
    List,
    /// CreateBucket / DeleteBucket / HeadBucket of a few names and ListBuckets; each name's
    /// existence is linearizable, each listing reflects what was acknowledged.
    Bucket,
    /// Multipart uploads whose Complete and Abort race; completed ones are readable,
    /// aborted ones never visible.
    Multipart,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Register,
        Workload::Set,
        Workload::List,
        Workload::Bucket,
        Workload::Multipart,
    ];

    /// Parses `register`, `set`, `list`, `bucket` or `multipart`.
    pub fn parse(s: &str) -> Option<Workload> {
        match s {
            "register" => Some(Workload::Register),
            "set" => Some(Workload::Set),
            "list" => Some(Workload::List),
            "bucket" => Some(Workload::Bucket),
            "multipart" => Some(Workload::Multipart),
            _ => None,
        }
    }

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::List => "list",
            Workload::Bucket => "bucket",
            Workload::Multipart => "multipart",
        }
    }
}

/// What the workers share.
pub struct Ctx {
    /// The history.
    pub recorder: Arc<Recorder>,
    /// The S3 endpoints of the gateways.
    pub endpoints: Vec<String>,
    /// Root access key.
    pub access_key: String,
    /// Root secret key.
    pub secret_key: String,
    /// The bucket every operation uses.
    pub bucket: String,
    /// Client workers.
    pub workers: usize,
    /// Bound on one operation (request and body); beyond it the outcome is `info`.
    pub op_timeout: Duration,
    /// When the workers stop invoking.
    pub deadline: Instant,
    /// Base seed.
    pub seed: u64,
}

impl Ctx {
    /// A new client of gateway `i % gateways`.
    pub fn client(&self, i: usize) -> Client {
        crate::client::s3_client(
            &self.endpoints[i % self.endpoints.len()],
            &self.access_key,
            &self.secret_key,
            self.op_timeout,
        )
    }
}

/// A client worker's identity in the history. After an indeterminate outcome it takes a
/// new process number (the old one may still have an operation in flight, as Jepsen does).
pub struct Worker {
    /// The current process number.
    pub process: u64,
    stride: u64,
}

impl Worker {
    /// Worker `index` of `count`.
    pub fn new(index: usize, count: usize) -> Worker {
        Worker {
            process: index as u64,
            stride: count.max(1) as u64,
        }
    }

    /// Records the invocation, runs `op` (bounded by `timeout`), records its completion and
    /// returns it. After a `fail` or `info` it pauses a little, so a dead gateway is not
    /// hammered.
    pub async fn perform<F>(
        &mut self,
        recorder: &Recorder,
        timeout: Duration,
        f: &str,
        key: Option<&str>,
        value: Value,
        op: F,
    ) -> Result<Value, Failure>
    where
        F: Future<Output = Result<Value, Failure>>,
    {
        recorder.record(EventBody {
            kind: EventType::Invoke,
            process: Process::Client(self.process),
            f,
            key,
            value: value.clone(),
            error: None,
        });
        let result = match tokio::time::timeout(timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Indeterminate("timeout".into())),
        };
        let (kind, out, error) = match &result {
            Ok(v) => (EventType::Ok, v.clone(), None),
            Err(Failure::Definite(m)) => (EventType::Fail, value, Some(m.clone())),
            Err(Failure::Indeterminate(m)) => (EventType::Info, value, Some(m.clone())),
        };
        recorder.record(EventBody {
            kind,
            process: Process::Client(self.process),
            f,
            key,
            value: out,
            error,
        });
        if kind == EventType::Info {
            self.process += self.stride;
        }
        if kind != EventType::Ok {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        result
    }
}

/// Deterministic bytes for value `v`: a first line naming it, then filler whose length
/// depends on `v` (0.1 to ~32 KiB), so reads can tell a right body from a wrong one. The
/// range spans the gateway's inline limit (16 KiB by default): about half the values are
/// kept in the metadata, the other half erasure-coded over the blob servers, so the blob
/// faults hit every workload.
pub fn payload(v: u64) -> Vec<u8> {
    let mut out = format!("{v}\n").into_bytes();
    let len = 100 + (v.wrapping_mul(7919) % 32_000) as usize;
    let mut x = v.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(b'a' + (x % 26) as u8);
    }
    out
}

/// The value a body holds if it is exactly [`payload`] of some value; otherwise a string
/// describing what was read.
pub fn decode(body: &[u8]) -> Value {
    let first = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let parsed = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    match parsed {
        Some(v) if payload(v) == body => Value::from(v),
        _ => Value::String(format!(
            "corrupt: {} bytes starting {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(24)])
        )),
    }
}

/// PUT of the value `v` (its payload encoding) at `key`; the outcome as a history value.
pub(crate) async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    v: u64,
) -> Result<Value, Failure> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(payload(v).into())
        .send()
        .await
        .map(|_| Value::from(v))
        .map_err(|e| classify(&e, Kind::Write))
}

/// The ETag S3 gives a single-part PUT of value `v`: the hex MD5 of its body.
pub fn etag(v: u64) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(payload(v)))
}

/// The condition of a conditional PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `If-Match` with the ETag of this value: compare-and-set.
    IfMatch(u64),
    /// `If-None-Match: *`: create only if absent.
    IfAbsent,
}

/// Conditional PUT of the value `v` at `key`. A refused condition comes back as a definite
/// failure `412 PreconditionFailed` (or `404 NoSuchKey` for `If-Match` on a missing key),
/// which the register checker reads as an observation of the value.
pub(crate) async fn put_if(
    client: &Client,
    bucket: &str,
    key: &str,
    v: u64,
    condition: Condition,
) -> Result<(), Failure> {
    let request = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(payload(v).into());
    let request = match condition {
        Condition::IfMatch(expected) => request.if_match(format!("\"{}\"", etag(expected))),
        Condition::IfAbsent => request.if_none_match("*"),
    };
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(&e, Kind::Write))
}

/// DELETE of `key`; the outcome as a history value.
pub(crate) async fn delete(client: &Client, bucket: &str, key: &str) -> Result<Value, Failure> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|_| Value::Null)
        .map_err(|e| classify(&e, Kind::Write))
}

/// Final reads in flight at once ([`read_each`]).
const FINAL_READ_CONCURRENCY: usize = 8;
/// Final-read time budgeted per key ([`read_each`]).
const PER_KEY_READ: Duration = Duration::from_millis(20);

/// GETs every key until it answers (ok, or a definite "no such key"), `f` naming the
/// operation in the history, several keys at a time; key `i` is read by process
/// `first_process + i` (a new number after each unknown outcome, as for every worker).
/// Gives up on a key at `deadline`, or later when there are many keys:
/// a long run leaves tens of thousands of them, more than the common final-read budget
/// allows at the rate a debug build serves GETs, so each key gets its share of time (a
/// multipart run under kills once left 411 completions unread after 120 s of reading one
/// key at a time, and its verdict was "unknown").
pub async fn read_each(
    ctx: &Arc<Ctx>,
    keys: Vec<String>,
    f: &'static str,
    first_process: u64,
    deadline: Instant,
) {
    let total = keys.len();
    let deadline =
        deadline.max(Instant::now() + PER_KEY_READ * u32::try_from(total).unwrap_or(u32::MAX));
    futures::stream::iter(keys.into_iter().enumerate())
        .for_each_concurrent(FINAL_READ_CONCURRENCY, |(i, k)| {
            let ctx = Arc::clone(ctx);
            async move {
                let client = ctx.client(i);
                let mut w = Worker::new(i, total);
                w.process += first_process;
                while Instant::now() < deadline {
                    let got = w
                        .perform(
                            &ctx.recorder,
                            ctx.op_timeout,
                            f,
                            Some(&k),
                            Value::Null,
                            register::get(&client, &ctx.bucket, &k),
                        )
                        .await;
                    if got.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_the_md5_of_the_body() {
        // md5 of "1\n" + filler differs per value; the empty-body MD5 is a fixed point check
        // of the encoding (lower-case hex, 32 digits).
        let e = etag(1);
        assert_eq!(e.len(), 32);
        assert!(e
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(etag(1), etag(2));
        use md5::{Digest, Md5};
        assert_eq!(
            hex::encode(Md5::digest(b"")),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn payloads_decode_to_their_value_and_damage_is_noticed() {
        for v in [0u64, 1, 17, 123_456_789] {
            assert_eq!(decode(&payload(v)), Value::from(v));
        }
        let mut p = payload(42);
        let last = p.len() - 1;
        p[last] ^= 1;
        assert!(decode(&p).is_string());
        assert!(decode(&payload(42)[..50]).is_string());
        assert!(decode(b"").is_string());
    }
}
