//! Many nodes: separate meta, blob and gateway processes formed into one cluster with
//! `cairn admin`, surviving the loss of the meta leader and of a blob node, and changing meta
//! membership (grow to five, remove one, replace a wiped one) without losing data.

use std::collections::BTreeSet;

use crate::cluster_harness::*;
use crate::harness::*;

/// Writes `count` objects `prefix{n}` through `client` and returns their bodies.
async fn write_batch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    count: u64,
    seed: u64,
) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    for n in 0..count {
        let key = format!("{prefix}{n}");
        let body = data(100_000 + (n as usize * 7_919) % 300_000, seed + n);
        put(client, bucket, &key, body.clone()).await;
        written.push((key, body));
    }
    written
}

async fn check_all(client: &aws_sdk_s3::Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    for (key, body) in objects {
        assert!(
            get(client, bucket, key).await == *body,
            "{bucket}/{key} read back wrong"
        );
    }
}

fn voters(status: &serde_json::Value) -> BTreeSet<u64> {
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true)
        .map(|m| m["id"].as_u64().expect("id"))
        .collect()
}

/// 3 meta + 4 blob (2 disks each) + 2 gateways. S3 goes on through both gateways while the
/// meta leader is killed (after an election) and while a blob node is dead (degraded reads
/// and writes); both come back and rejoin.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_serves_through_meta_leader_and_blob_node_loss() {
    let mut cluster = Cluster::start(3, 4, 2, 2, &[("CAIRN_BLOB_DOWN_AFTER", "12")]);
    let status = cluster.status();
    assert_eq!(voters(&status).len(), 3, "three voters: {status:#}");
    let gw0 = cluster.client(0);
    let gw1 = cluster.client(1);
    gw0.create_bucket()
        .bucket("work")
        .send()
        .await
        .expect("create bucket");

    let mut objects = write_batch(&gw0, "work", "before/", 8, 1).await;
    // Both gateways see the same metadata at once: no gateway-local cache.
    check_all(&gw1, "work", &objects).await;

    // Kill the meta leader: after an election the workload goes on, through both gateways.
    let old_leader = cluster.leader();
    cluster.metas[old_leader].kill();
    objects.extend(write_batch(&gw1, "work", "after-leader-loss/", 8, 100).await);
    check_all(&gw0, "work", &objects).await;
    let status = cluster.status();
    assert_ne!(
        status["leader_address"].as_str(),
        Some(cluster.meta_addrs[old_leader].as_str()),
        "a new leader was elected"
    );

    // Kill a blob node: reads rebuild from parity, writes go on with the survivors.
    cluster.blobs[0].kill();
    check_all(&gw1, "work", &objects).await;
    objects.extend(write_batch(&gw0, "work", "after-blob-loss/", 6, 200).await);
    check_all(&gw1, "work", &objects).await;

    // Both come back: the old leader rejoins as a follower and catches up.
    cluster.restart_meta(old_leader);
    cluster.restart_blob(0);
    let status = cluster.wait_for("all meta members caught up and 4 blob nodes up", |s| {
        let applied: Vec<Option<u64>> = s["members"]
            .as_array()
            .map(|a| a.iter().map(|m| m["applied_index"].as_u64()).collect())
            .unwrap_or_default();
        let commit = s["commit_index"].as_u64();
        applied.len() == 3
            && applied
                .iter()
                .all(|a| a.is_some() && *a >= commit.map(|c| c.saturating_sub(5)))
            && s["blob_nodes"]
                .as_array()
                .map(|b| b.iter().filter(|n| n["state"] == "up").count() == 4)
                .unwrap_or(false)
    });
    assert_eq!(voters(&status).len(), 3);
    check_all(&gw0, "work", &objects).await;
    let listed = gw1
        .list_objects_v2()
        .bucket("work")
        .send()
        .await
        .expect("list")
        .key_count
        .unwrap_or(0);
    assert_eq!(listed as usize, objects.len());

    // The human-readable status names every member and blob node.
    let table = cluster.admin_ok(&["status"]);
    for addr in &cluster.meta_addrs {
        assert!(
            table.contains(addr.as_str()),
            "status table lists {addr}:\n{table}"
        );
    }
    assert!(table.contains("leader"), "{table}");
}

/// Meta membership changes are admin operations: grow 3 -> 5, remove a member, replace a
/// wiped one (it comes back under a new id); ids are never reused; no committed data lost.
#[tokio::test(flavor = "multi_thread")]
async fn meta_membership_grows_shrinks_and_replaces_without_losing_data() {
    let mut cluster = Cluster::start(3, 1, 2, 1, &[]);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("members")
        .send()
        .await
        .expect("create");
    let mut objects = write_batch(&s3, "members", "a/", 5, 1).await;

    // `init` again is refused: initialize happens exactly once.
    let (ok, _, stderr) = cluster.admin(&["init"]);
    assert!(!ok, "a second init must fail");
    assert!(
        stderr.contains("state") || stderr.contains("already"),
        "{stderr}"
    );

    // Grow to five voters.
    let mut seen_ids: BTreeSet<u64> = voters(&cluster.status());
    for _ in 0..2 {
        let i = cluster.add_meta_process(&[]);
        let addr = cluster.meta_addrs[i].clone();
        let out = cluster.admin_ok(&["meta", "add", &addr]);
        assert!(out.contains("added meta node"), "{out}");
    }
    let status = cluster.status();
    let five = voters(&status);
    assert_eq!(five.len(), 5, "{status:#}");
    assert!(five.is_superset(&seen_ids));
    seen_ids.extend(five.iter().copied());
    objects.extend(write_batch(&s3, "members", "b/", 5, 10).await);

    // Adding an existing member again is refused.
    let (ok, _, _) = cluster.admin(&["meta", "add", &cluster.meta_addrs[0].clone()]);
    assert!(!ok, "adding a member twice must fail");

    // Remove one voter (not the leader) and stop its process.
    let leader = cluster.leader();
    let victim = (0..cluster.metas.len())
        .find(|i| *i != leader)
        .expect("a follower");
    let victim_id = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["address"] == cluster.meta_addrs[victim].as_str())
        .and_then(|m| m["id"].as_u64())
        .expect("victim id");
    cluster.admin_ok(&["meta", "remove", &victim_id.to_string()]);
    cluster.metas[victim].kill();
    let status = cluster.status();
    assert_eq!(voters(&status).len(), 4, "{status:#}");
    assert!(!voters(&status).contains(&victim_id));
    objects.extend(write_batch(&s3, "members", "c/", 5, 20).await);

    // Replace a wiped member: kill it, wipe its directory, remove it, start it pristine at
    // the same address and add it again. It gets a new id.
    let leader = cluster.leader();
    let wiped = (0..cluster.metas.len())
        .find(|i| *i != leader && *i != victim)
        .expect("another follower");
    let wiped_id = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["address"] == cluster.meta_addrs[wiped].as_str())
        .and_then(|m| m["id"].as_u64())
        .expect("wiped id");
    cluster.metas[wiped].kill();
    std::fs::remove_dir_all(cluster.path(&format!("meta{wiped}"))).expect("wipe");
    cluster.admin_ok(&["meta", "remove", &wiped_id.to_string()]);
    cluster.restart_meta(wiped);
    let addr = cluster.meta_addrs[wiped].clone();
    // The pristine node is the first endpoint the admin client tries: it must move on to a
    // member (a node that has not joined answers Unavailable, not a final error).
    let endpoints = std::iter::once(format!("http://{addr}"))
        .chain(
            (0..cluster.metas.len())
                .filter(|&i| i != wiped)
                .map(|i| format!("http://{}", cluster.meta_addrs[i])),
        )
        .collect::<Vec<_>>()
        .join(",");
    let (ok, stdout, stderr) = cluster.admin_at(&endpoints, &["meta", "add", &addr]);
    assert!(
        ok,
        "meta add via the pristine node first failed:\n{stdout}\n{stderr}"
    );
    let status = cluster.status();
    let now = voters(&status);
    assert_eq!(now.len(), 4, "{status:#}");
    let new_ids: Vec<u64> = now.difference(&seen_ids).copied().collect();
    assert_eq!(
        new_ids.len(),
        1,
        "the replacement has a never-used id: {status:#}"
    );
    assert!(!now.contains(&wiped_id) && !now.contains(&victim_id));

    // Every committed object is still there, and writes go on.
    objects.extend(write_batch(&s3, "members", "d/", 5, 30).await);
    check_all(&s3, "members", &objects).await;
}

/// A pristine meta node serves no metadata until it is initialized or added, and the admin
/// API refuses calls without the admin credentials.
#[tokio::test(flavor = "multi_thread")]
async fn pristine_meta_waits_and_admin_api_needs_credentials() {
    let tmp = tempfile::tempdir().expect("tmp");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut meta = Proc::spawn(
        &[
            "meta".into(),
            "--listen".into(),
            addr.clone(),
            "--dir".into(),
            tmp.path().join("m").display().to_string(),
        ],
        &tmp.path().join("meta.log"),
        &[],
    );
    let line = meta.wait_line("META");
    assert!(line.contains("waiting"), "{line}");
    let admin = |key: &str, args: &[&str]| {
        std::process::Command::new(cairn_bin())
            .args(["admin", "--meta", &addr])
            .args(args)
            .env("CAIRN_ACCESS_KEY", ACCESS_KEY)
            .env("CAIRN_SECRET_KEY", key)
            .output()
            .expect("admin")
    };
    let out = admin("wrong-secret", &["init"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin(SECRET_KEY, &["status"]);
    assert!(
        !out.status.success(),
        "status of an uninitialized node fails"
    );
    let out = admin(SECRET_KEY, &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin(SECRET_KEY, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status["members"][0]["id"], 1);
    assert_eq!(status["members"][0]["role"], "leader");
}

/// With a short snapshot interval the log is compacted; a wiped member that is added back
/// must then catch up by a snapshot install (shipped from a file in chunks), after which it
/// holds every committed object: the cluster still serves them when the leader is killed.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_added_after_compaction_catches_up_by_snapshot() {
    let env = [("CAIRN_META_SNAPSHOT_LOGS", "20")];
    let mut cluster = Cluster::start(3, 1, 2, 1, &env);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("snap")
        .send()
        .await
        .expect("create");
    let mut objects = Vec::new();
    for n in 0..60u64 {
        let key = format!("k{n}");
        let body = data(1_000 + n as usize, n);
        put(&s3, "snap", &key, body.clone()).await;
        objects.push((key, body));
    }

    let leader = cluster.leader();
    let member = (0..3).find(|i| *i != leader).expect("a follower");
    let status = cluster.status();
    let member_id = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["address"] == cluster.meta_addrs[member].as_str())
        .and_then(|m| m["id"].as_u64())
        .expect("member id");
    cluster.metas[member].kill();
    std::fs::remove_dir_all(cluster.path(&format!("meta{member}"))).expect("wipe");
    cluster.admin_ok(&["meta", "remove", &member_id.to_string()]);
    // Keep writing until the leader has compacted its log past its first entries, so that a
    // member starting from nothing cannot catch up from the log alone.
    let mut n = 0;
    loop {
        let status = cluster.status();
        let purged = status["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["role"] == "leader")
            .and_then(|m| m["purged_index"].as_u64())
            .unwrap_or(0);
        if purged >= 40 {
            break;
        }
        assert!(n < 500, "the leader never compacted its log: {status:#}");
        let key = format!("more{n}");
        put(&s3, "snap", &key, b"m".to_vec()).await;
        objects.push((key, b"m".to_vec()));
        n += 1;
    }
    cluster.restart_meta(member);
    let addr = cluster.meta_addrs[member].clone();
    cluster.admin_ok(&["meta", "add", &addr]);
    let log = std::fs::read_to_string(&cluster.metas[member].log).expect("log");
    assert!(
        log.contains("installed a meta snapshot"),
        "the re-added member caught up without a snapshot:\n{log}"
    );

    // The old leader goes away; the two left (one of them rebuilt from the snapshot) elect a
    // leader and serve every object.
    cluster.metas[leader].kill();
    check_all(&s3, "snap", &objects).await;
    put(&s3, "snap", "after", b"x".to_vec()).await;
}

fn locate(cluster: &Cluster, bucket: &str, key: &str) -> serde_json::Value {
    serde_json::from_str(&cluster.admin_ok(&["locate", bucket, key, "--json"])).expect("json")
}

/// A bucket's erasure scheme is an admin setting; placement spreads shards over zones, then
/// nodes; `cairn admin locate` shows every shard's node, disk, path and real state.
#[tokio::test(flavor = "multi_thread")]
async fn bucket_schemes_zones_and_locate() {
    let cluster = Cluster::start_zoned(1, &["a", "a", "b", "c"], 2, 1, &[]);
    let s3 = cluster.client(0);
    for b in ["wide", "narrow"] {
        s3.create_bucket().bucket(b).send().await.expect("create");
    }
    let out = cluster.admin_ok(&["bucket", "scheme", "narrow", "2+1"]);
    assert!(out.contains("2+1"), "{out}");
    let body = data(3_000_000, 5);
    put(&s3, "wide", "obj", body.clone()).await;
    put(&s3, "narrow", "obj", body.clone()).await;

    // Eight disks: the default is 4+2, spread over all four nodes.
    let wide = locate(&cluster, "wide", "obj");
    assert_eq!(wide["scheme"], "4+2", "{wide:#}");
    assert_eq!(wide["healthy"], 6, "{wide:#}");
    let nodes: BTreeSet<&str> = wide["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["node_id"].as_str().expect("node"))
        .collect();
    assert_eq!(nodes.len(), 4, "{wide:#}");

    // 2+1 over zones a, b, c: one shard per zone.
    let narrow = locate(&cluster, "narrow", "obj");
    assert_eq!(narrow["scheme"], "2+1", "{narrow:#}");
    let status = cluster.status();
    let zone_of = |node: &str| -> String {
        let i = status["blob_nodes"]
            .as_array()
            .expect("blob nodes")
            .iter()
            .position(|n| n["node_id"] == node)
            .expect("known node");
        // Blob servers were started in zone order a, a, b, c; match by address.
        let address = status["blob_nodes"][i]["address"]
            .as_str()
            .expect("address");
        let index = cluster
            .blobs
            .iter()
            .position(|b| b.args.iter().any(|a| a == address))
            .expect("blob process");
        ["a", "a", "b", "c"][index].to_string()
    };
    let zones: BTreeSet<String> = narrow["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| zone_of(s["node_id"].as_str().expect("node")))
        .collect();
    assert_eq!(zones.len(), 3, "one shard per zone: {narrow:#}");

    // Delete one shard file where locate says it is: locate reports it missing, GET still
    // rebuilds the object.
    let path = narrow["shards"][0]["path"]
        .as_str()
        .expect("path")
        .to_string();
    std::fs::remove_file(&path).expect("remove shard file");
    let narrow = locate(&cluster, "narrow", "obj");
    assert_eq!(narrow["shards"][0]["state"], "missing", "{narrow:#}");
    assert_eq!(narrow["healthy"], 2);
    assert!(get(&s3, "narrow", "obj").await == body);

    // Bad settings are refused; `default` goes back to the disk-count rule.
    assert!(!cluster.admin(&["bucket", "scheme", "nosuch", "2+1"]).0);
    assert!(!cluster.admin(&["bucket", "scheme", "narrow", "0+1"]).0);
    assert!(!cluster.admin(&["locate", "narrow", "nosuch"]).0);
    cluster.admin_ok(&["bucket", "scheme", "narrow", "default"]);
    put(&s3, "narrow", "later", body.clone()).await;
    assert_eq!(locate(&cluster, "narrow", "later")["scheme"], "4+2");

    // A multipart object: every part's shards are listed, each healthy.
    let upload = s3
        .create_multipart_upload()
        .bucket("wide")
        .key("parts")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let mut completed = Vec::new();
    for (number, len) in [(1, 5 << 20), (2, 1000)] {
        let part = s3
            .upload_part()
            .bucket("wide")
            .key("parts")
            .upload_id(upload_id)
            .part_number(number)
            .body(data(len, number as u64).into())
            .send()
            .await
            .expect("upload part");
        completed.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("wide")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let parts = locate(&cluster, "wide", "parts");
    let numbers: BTreeSet<u64> = parts["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["part"].as_u64().expect("part"))
        .collect();
    assert_eq!(numbers, [1, 2].into_iter().collect(), "{parts:#}");
    assert_eq!(parts["healthy"], 12, "{parts:#}");
}

/// A blob server serves only members of its cluster: calls without the cluster token, or with
/// one derived from another secret, are refused (and logged), while S3 through a gateway of
/// the cluster works.
#[tokio::test(flavor = "multi_thread")]
async fn blob_servers_refuse_callers_outside_the_cluster() {
    use cairn_proto::blob::blob_client::BlobClient;
    use cairn_proto::blob::{DeleteShardRequest, StatShardRequest};
    use tonic::service::Interceptor;

    let cluster = Cluster::start(1, 1, 2, 1, &[]);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("guarded")
        .send()
        .await
        .expect("create");
    put(&s3, "guarded", "k", b"inside".to_vec()).await;
    assert_eq!(get(&s3, "guarded", "k").await, b"inside");

    let address = cluster.blobs[0].args[2].clone();
    let stat = StatShardRequest {
        disk_id: "any".into(),
        shard_key: "any".into(),
    };
    let mut anonymous = BlobClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    let refused = anonymous
        .stat_shard(stat.clone())
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let refused = anonymous
        .delete_shard(DeleteShardRequest {
            disk_id: "any".into(),
            shard_key: "any".into(),
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // A token from another cluster's secret is no better.
    let mut foreign = cairn_proto::cluster_token::ClusterToken::default();
    foreign.set_secret("not-this-cluster");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut forged = BlobClient::with_interceptor(channel, move |r| foreign.call(r));
    let refused = forged.stat_shard(stat).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    let log = std::fs::read_to_string(&cluster.blobs[0].log).expect("log");
    assert!(
        log.contains("refused a call from outside the cluster"),
        "{log}"
    );
}

/// A blob server added to a running cluster needs no change or restart anywhere else: it
/// registers, and the very next writes place shards on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_blob_server_takes_new_writes_at_once() {
    let mut cluster = Cluster::start(1, 4, 2, 1, &[]);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("grow")
        .send()
        .await
        .expect("create");
    // Large enough to be erasure-coded, not kept inline in the metadata.
    put(&s3, "grow", "before", data(100_000, 1)).await;
    let newcomer = cluster.add_blob("", 2);
    cluster.wait_for_blob_nodes(5);
    let address = cluster.blobs[newcomer].args[2].clone();
    // 4+2 over five nodes puts at least one shard on every node.
    put(&s3, "grow", "after", data(100_000, 2)).await;
    let view = locate(&cluster, "grow", "after");
    let on_newcomer = view["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|s| s["address"] == address.as_str())
        .count();
    assert!(
        on_newcomer >= 1,
        "no shard on the new blob server: {view:#}"
    );
    assert_eq!(view["healthy"], 6, "{view:#}");
}

/// Losing a majority of the meta voters makes S3 requests fail with a retryable 503, never a
/// wrong answer; once a majority is back, everything committed before is served again.
#[tokio::test(flavor = "multi_thread")]
async fn losing_a_meta_majority_gives_503_and_recovers() {
    let mut cluster = Cluster::start(3, 1, 2, 1, &[]);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("quorum")
        .send()
        .await
        .expect("create");
    put(&s3, "quorum", "before", b"committed".to_vec()).await;

    let leader = cluster.leader();
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    cluster.metas[leader].kill();
    cluster.metas[follower].kill();
    // No SDK retries: the point is what one request gets back.
    let once = aws_sdk_s3::Client::from_conf(
        s3.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = once
        .put_object()
        .bucket("quorum")
        .key("during")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("no majority: the write must fail");
    assert_eq!(status(&err), 503, "{err:?}");
    let err = once
        .get_object()
        .bucket("quorum")
        .key("before")
        .send()
        .await
        .expect_err("no majority: no linearizable read");
    assert_eq!(status(&err), 503, "{err:?}");

    cluster.restart_meta(follower);
    assert_eq!(get(&s3, "quorum", "before").await, b"committed");
    put(&s3, "quorum", "after", b"y".to_vec()).await;
    let listed = s3
        .list_objects_v2()
        .bucket("quorum")
        .send()
        .await
        .expect("list")
        .key_count
        .unwrap_or(0);
    assert_eq!(listed, 2, "the failed write left nothing behind");
}
