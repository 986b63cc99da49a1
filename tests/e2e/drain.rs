//! Draining and removing a blob node, end to end: real meta, blob and gateway processes, the
//! admin CLI as an operator would use it, and the drained blob server stopped for real before
//! every object is read back.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::Value;

use crate::cluster_harness::Cluster;
use crate::harness::*;

const BUCKET: &str = "drain";

/// Node id of blob server `i` (found by its listen address in `cairn admin status`).
fn node_id(cluster: &Cluster, i: usize) -> String {
    let listen = cluster.blobs[i].args[2].clone();
    let status = cluster.status();
    status["blob_nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["address"] == listen.as_str()))
        .and_then(|n| n["node_id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no blob node at {listen}: {status:#}"))
}

/// The `drains` entry of `node` in a status report.
fn drain_entry(status: &Value, node: &str) -> Option<Value> {
    status["drains"]
        .as_array()?
        .iter()
        .find(|d| d["node_id"] == node)
        .cloned()
}

/// `cairn admin locate BUCKET KEY --json`.
fn locate(cluster: &Cluster, key: &str) -> Value {
    let out = cluster.admin_ok(&["locate", BUCKET, key, "--json"]);
    serde_json::from_str(&out).expect("locate json")
}

/// Node ids of every shard of `key`.
fn shard_nodes(cluster: &Cluster, key: &str) -> Vec<String> {
    locate(cluster, key)["shards"]
        .as_array()
        .map(|shards| {
            shards
                .iter()
                .filter_map(|s| s["node_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A one-part multipart upload (a part may be any size when it is the last).
async fn put_multipart(s3: &aws_sdk_s3::Client, key: &str, body: Vec<u8>) {
    let up = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("create multipart upload");
    let id = up.upload_id().expect("upload id").to_string();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("upload part");
    let etag = part.e_tag().expect("part etag").to_string();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("complete multipart upload");
}

#[tokio::test]
async fn a_drained_node_holds_nothing_can_be_stopped_and_removed() {
    // Five single-disk blob servers: objects are 2+2, so with one node draining the other
    // four still take every shard of an object on distinct nodes.
    let mut cluster = Cluster::start(1, 5, 1, 1, &[]);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    let size = (1 << 20) + 333;
    let keys: Vec<String> = (0..8).map(|i| format!("obj-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        put(&s3, BUCKET, key, data(size, 700 + i as u64)).await;
    }
    put_multipart(&s3, "multipart", data(size, 799)).await;

    // The node to drain: the one holding the most shards (every node holds some, almost
    // surely; the test needs at least one).
    let ids: Vec<String> = (0..5).map(|i| node_id(&cluster, i)).collect();
    let held = |id: &str| {
        keys.iter()
            .map(|k| shard_nodes(&cluster, k).iter().filter(|n| *n == id).count())
            .sum::<usize>()
    };
    let (victim, victim_id) = ids
        .iter()
        .enumerate()
        .max_by_key(|(_, id)| held(id))
        .map(|(i, id)| (i, id.clone()))
        .expect("a blob node");
    assert!(held(&victim_id) > 0, "no shard on any node?");

    // Removing a node that is not draining is refused, and changes nothing.
    let (ok, _, stderr) = cluster.admin(&["blob", "remove", &victim_id]);
    assert!(!ok, "removing an active node must be refused");
    assert!(stderr.contains("not draining"), "{stderr}");
    let (ok, _, stderr) = cluster.admin(&["blob", "drain", "no-such-node"]);
    assert!(!ok && stderr.contains("NotFound"), "{stderr}");

    // With no healer running, the drain cannot progress: the node still holds its shards and
    // its removal is refused for that reason.
    cluster.gateways[0].kill();
    let out = cluster.admin_ok(&["blob", "drain", &victim_id, "--json"]);
    let reply: Value = serde_json::from_str(&out).expect("drain json");
    assert_eq!(reply["state"], "draining", "{reply:#}");
    // The four other single-disk servers can take its shards.
    assert_eq!(reply["usable_disks_left"], 4, "{reply:#}");
    let status = cluster.status();
    let node = status["blob_nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node_id"] == victim_id.as_str()))
        .cloned()
        .expect("draining node listed");
    assert_eq!(node["mode"], "draining", "{node:#}");
    let progress = drain_entry(&status, &victim_id).expect("drain progress");
    assert!(progress["shards"].as_u64() >= Some(1), "{progress:#}");
    assert!(progress["bytes"].as_u64() >= Some(1), "{progress:#}");
    // One object that must move also loses another shard: its heal rebuilds from k good
    // shards (the draining node's among the candidates) instead of copying.
    let (damaged_key, lost_path) = keys
        .iter()
        .find_map(|k| {
            let view = locate(&cluster, k);
            let shards = view["shards"].as_array()?.clone();
            if !shards.iter().any(|s| s["node_id"] == victim_id.as_str()) {
                return None;
            }
            let other = shards.iter().find(|s| s["node_id"] != victim_id.as_str())?;
            Some((k.clone(), other["path"].as_str()?.to_string()))
        })
        .expect("an object with a shard on the draining node");
    std::fs::remove_file(&lost_path).expect("remove a shard file");
    let (ok, _, stderr) = cluster.admin(&["blob", "remove", &victim_id]);
    assert!(
        !ok,
        "removing a node that still holds shards must be refused"
    );
    assert!(stderr.contains("still holds"), "{stderr}");
    let text = cluster.admin_ok(&["status"]);
    assert!(
        text.contains("DRAINING") && text.contains("draining"),
        "{text}"
    );

    // The healer comes back and moves everything; new objects avoid the draining node.
    cluster.restart_gateway(0);
    let s3 = cluster.client(0);
    let late: Vec<String> = (0..3).map(|i| format!("late-{i}")).collect();
    for (i, key) in late.iter().enumerate() {
        put(&s3, BUCKET, key, data(size, 900 + i as u64)).await;
        let nodes = shard_nodes(&cluster, key);
        assert_eq!(nodes.len(), 4, "{nodes:?}");
        assert!(
            !nodes.contains(&victim_id),
            "{key} placed on the draining node"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = cluster.status();
        let progress = drain_entry(&status, &victim_id).expect("drain progress");
        if progress["shards"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drain did not finish: {progress:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for key in &keys {
        assert!(!shard_nodes(&cluster, key).contains(&victim_id), "{key}");
    }
    let view = locate(&cluster, &damaged_key);
    let shards = view["shards"].as_array().cloned().unwrap_or_default();
    assert!(
        shards.len() == 4
            && shards
                .iter()
                .all(|s| s["state"] == "ok" && s["path"].as_str() != Some(lost_path.as_str())),
        "{view:#}"
    );
    let heal: Value =
        serde_json::from_str(&cluster.admin_ok(&["heal", "status", "--json"])).expect("heal");
    assert_eq!(heal["objects_failed"], 0, "{heal:#}");

    // Proof: with the drained server gone, every object reads back bit-exact.
    cluster.blobs[victim].kill();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            get(&s3, BUCKET, key).await,
            data(size, 700 + i as u64),
            "{key}"
        );
    }
    assert_eq!(get(&s3, BUCKET, "multipart").await, data(size, 799));
    for (i, key) in late.iter().enumerate() {
        assert_eq!(
            get(&s3, BUCKET, key).await,
            data(size, 900 + i as u64),
            "{key}"
        );
    }

    // Removed: no longer listed, and its heartbeat does not bring it back.
    let out = cluster.admin_ok(&["blob", "remove", &victim_id, "--json"]);
    let reply: Value = serde_json::from_str(&out).expect("remove json");
    assert_eq!(reply["remaining_shards"], 0, "{reply:#}");
    cluster.restart_blob(victim);
    let log = cluster.blobs[victim].log.clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("removed from the cluster")) {
        assert!(Instant::now() < deadline, "the removed node was not told");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = cluster.status();
    let listed = status["blob_nodes"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["node_id"] == victim_id.as_str()));
    assert!(!listed, "removed node still listed: {status:#}");
    assert!(drain_entry(&status, &victim_id).is_none(), "{status:#}");
    assert_eq!(get(&s3, BUCKET, "obj-0").await, data(size, 700));
}
