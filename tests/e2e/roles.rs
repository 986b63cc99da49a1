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
        ],
        &log("meta"),
        &[],
    );
    let meta_addr = meta.wait_line("META");
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
