//! Garbage collection racing overwrites and deletes: with a one-second grace and a walk every
//! second, GC asks about shard files while PUTs, overwrites and DELETEs of the same keys are
//! in flight. No acknowledged object may lose a shard.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::cluster_harness::Cluster;
use crate::harness::*;

const BUCKET: &str = "gc-race";
const WRITERS: u64 = 3;
const KEYS_PER_WRITER: u64 = 4;
const RUN_FOR: Duration = Duration::from_secs(15);

/// What a key must hold: the last acknowledged PUT's body or nothing after an acknowledged
/// DELETE. A key whose last call failed ambiguously is left out until its next success.
type Expected = HashMap<String, Option<Vec<u8>>>;

async fn check(s3: &aws_sdk_s3::Client, key: &str, expected: &Option<Vec<u8>>) {
    let got = s3.get_object().bucket(BUCKET).key(key).send().await;
    match (got, expected) {
        (Ok(out), Some(body)) => {
            let bytes = out.body.collect().await.expect("body").into_bytes();
            assert!(bytes.as_ref() == body.as_slice(), "{key}: wrong bytes");
        }
        (Err(e), None) => assert_eq!(code(&e), "NoSuchKey", "{key}"),
        (Ok(_), None) => panic!("{key}: deleted, but still readable"),
        (Err(e), Some(_)) => panic!("{key}: acknowledged object unreadable: {}", code(&e)),
    }
}

async fn writer(s3: aws_sdk_s3::Client, id: u64) -> Expected {
    let mut expected = Expected::new();
    let deadline = Instant::now() + RUN_FOR;
    let mut step = 0u64;
    while Instant::now() < deadline {
        step += 1;
        let key = format!("w{id}-k{}", step % KEYS_PER_WRITER);
        let seed = id * 1_000_000 + step;
        if step.is_multiple_of(5) {
            match s3.delete_object().bucket(BUCKET).key(&key).send().await {
                Ok(_) => expected.insert(key.clone(), None),
                Err(_) => expected.remove(&key),
            };
        } else {
            // Over the 16 KiB inline limit: every object has shard files for GC to judge.
            let body = data((20 << 10) + (seed as usize * 7919) % (600 << 10), seed);
            let sent = s3
                .put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match sent {
                Ok(_) => expected.insert(key.clone(), Some(body)),
                // A PUT whose shards were collected before its commit fails (503): nothing
                // was acknowledged; other failures leave the key unknown.
                Err(_) => expected.remove(&key),
            };
        }
        // Read back what was just acknowledged, while GC walks.
        if let Some(state) = expected.get(&key) {
            check(&s3, &key, state).await;
        }
    }
    expected
}

fn shard_file_count(disks: &[String]) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        usize::from(
                            p.parent()
                                .and_then(|d| d.parent())
                                .is_some_and(|d| d.ends_with("shards")),
                        )
                    }
                })
                .sum()
        })
    }
    disks
        .iter()
        .map(|d| walk(&Path::new(d).join("shards")))
        .sum()
}

#[tokio::test]
async fn gc_racing_puts_overwrites_and_deletes_never_removes_a_committed_shard() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    cluster.add_blob_with_env(
        "",
        4,
        &[("CAIRN_GC_GRACE", "1"), ("CAIRN_GC_INTERVAL", "1")],
    );
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create");

    let tasks: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(cluster.client(0), id)))
        .collect();
    let mut expected = Expected::new();
    for t in tasks {
        expected.extend(t.await.expect("writer"));
    }
    assert!(
        expected.values().filter(|v| v.is_some()).count() >= 3,
        "too few acknowledged objects to mean anything: {:?}",
        expected.keys().collect::<Vec<_>>()
    );

    // Let GC walk over everything (all older than the grace now), then every acknowledged
    // state must still hold, and the shard files must come down to exactly the live ones.
    let live_objects = expected.values().filter(|v| v.is_some()).count();
    let disks: Vec<String> = (0..4)
        .map(|d| cluster.path(&format!("blob0-d{d}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Objects of keys left unknown may exist too; they are at most one per such key.
        let unknown = (WRITERS * KEYS_PER_WRITER) as usize - expected.len();
        let files = shard_file_count(&disks);
        if files >= live_objects * 4 && files <= (live_objects + unknown) * 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{files} shard files for {live_objects} live objects (+{unknown} unknown keys)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (key, state) in &expected {
        check(&s3, key, state).await;
    }
}
