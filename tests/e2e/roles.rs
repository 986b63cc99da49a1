use crate::harness::*;

#[tokio::test]
async fn separate_meta_blob_and_gateway_processes_serve_s3() {
    let tmp = tempfile::tempdir().expect("tmp");
    let log = |name: &str| tmp.path().join(format!("{name}.log"));
    let mut meta = Proc::spawn(
        &[
            "meta".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--dir".into(),
            tmp.path().join("meta").display().to_string(),
            "--init".into(),
        ],
        &log("meta"),
        &[],
    );
    let meta_addr = first_word(&meta.wait_line("META"));
    let meta_endpoint = format!("http://{meta_addr}");
    let mut blob = Proc::spawn(
        &[
            "blob".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--meta".into(),
            meta_endpoint.clone(),
            tmp.path().join("d1").display().to_string(),
            tmp.path().join("d2").display().to_string(),
        ],
        &log("blob"),
        &[],
    );
    blob.wait_line("BLOB");
    let mut gateway = Proc::spawn(
        &[
            "gateway".into(),
            "--address".into(),
            "127.0.0.1:0".into(),
            "--meta".into(),
            meta_endpoint,
        ],
        &log("gateway"),
        &[],
    );
    let endpoint = gateway.wait_line("S3");
    let s3 = client_for(&endpoint, ACCESS_KEY, SECRET_KEY);
    s3.create_bucket()
        .bucket("roles")
        .send()
        .await
        .expect("create");
    // The blob server registers asynchronously; wait (bounded) until a PUT can be placed.
    let body = data(3 << 20, 42);
    let mut attempt = 0;
    loop {
        let out = s3
            .put_object()
            .bucket("roles")
            .key("k")
            .body(body.clone().into())
            .send()
            .await;
        match out {
            Ok(_) => break,
            Err(e) if attempt < 100 => {
                attempt += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("put never succeeded: {e:?}"),
        }
    }
    assert_eq!(get(&s3, "roles", "k").await, body);
    gateway.stop();
    blob.stop();
    meta.stop();
}

/// Two blob servers; one is killed. While the meta service still believes it alive, a PUT
/// that needs its disks fails (503, nothing visible); once it has missed its heartbeats it is
/// down, new objects go to the survivor, and old objects read back degraded.
#[tokio::test]
async fn a_dead_blob_server_is_marked_down_and_skipped_by_placement() {
    let tmp = tempfile::tempdir().expect("tmp");
    let log = |name: &str| tmp.path().join(format!("{name}.log"));
    let dir = |name: &str| tmp.path().join(name).display().to_string();
    let mut meta = Proc::spawn(
        &[
            "meta".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--dir".into(),
            dir("meta"),
            "--init".into(),
        ],
        &log("meta"),
        &[("CAIRN_BLOB_DOWN_AFTER", "12")],
    );
    let meta_endpoint = format!("http://{}", first_word(&meta.wait_line("META")));
    let blob_args = |a: &str, b: &str| -> Vec<String> {
        vec![
            "blob".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--meta".into(),
            meta_endpoint.clone(),
            dir(a),
            dir(b),
        ]
    };
    let mut blob_a = Proc::spawn(&blob_args("a1", "a2"), &log("blob-a"), &[]);
    blob_a.wait_line("BLOB");
    let mut blob_b = Proc::spawn(&blob_args("b1", "b2"), &log("blob-b"), &[]);
    blob_b.wait_line("BLOB");
    let mut gateway = Proc::spawn(
        &[
            "gateway".into(),
            "--address".into(),
            "127.0.0.1:0".into(),
            "--meta".into(),
            meta_endpoint.clone(),
        ],
        &log("gateway"),
        &[],
    );
    let s3 = client_for(&gateway.wait_line("S3"), ACCESS_KEY, SECRET_KEY);
    s3.create_bucket()
        .bucket("down")
        .send()
        .await
        .expect("create");

    // Wait (bounded) until both servers are registered: a PUT then spans all 4 disks (2+2).
    let before = data(2 << 20, 1);
    let mut attempts = 0;
    loop {
        put(&s3, "down", "before", before.clone()).await;
        let on_b = ["b1", "b2"]
            .iter()
            .any(|d| walk_count(&tmp.path().join(d).join("shards")) > 0);
        if on_b {
            break;
        }
        attempts += 1;
        assert!(attempts < 50, "server B never received shards");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    blob_b.kill9();
    let err = s3
        .put_object()
        .bucket("down")
        .key("too-early")
        .body(data(1 << 20, 2).into())
        .send()
        .await
        .expect_err("placement still uses the dead server: below write quorum");
    assert_eq!(status(&err), 503);
    let absent = s3
        .head_object()
        .bucket("down")
        .key("too-early")
        .send()
        .await;
    assert!(absent.is_err(), "a failed PUT left an object behind");

    // After 12 s without a heartbeat B is down; new objects go to A only.
    tokio::time::sleep(std::time::Duration::from_secs(13)).await;
    let after = data(3 << 20, 3);
    put(&s3, "down", "after", after.clone()).await;
    assert_eq!(get(&s3, "down", "after").await, after);
    // The old object lost two of its four shards with B and still reads back.
    assert_eq!(get(&s3, "down", "before").await, before);
    gateway.stop();
    blob_a.stop();
    meta.stop();
}

fn walk_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}
