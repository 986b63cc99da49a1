use crate::harness::*;

#[tokio::test]
async fn bucket_lifecycle_and_errors() {
    let server = Server::start(1);
    let s3 = server.client();

    s3.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create");
    s3.head_bucket().bucket("alpha").send().await.expect("head");

    let again = s3
        .create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect_err("duplicate");
    assert_eq!(code(&again), "BucketAlreadyOwnedByYou");
    assert_eq!(status(&again), 409);

    for bad in [
        "ab",
        "UPPER",
        "-dash",
        "a..b",
        "192.168.1.1",
        &"x".repeat(64),
    ] {
        let err = s3.create_bucket().bucket(bad).send().await.expect_err(bad);
        assert_eq!(code(&err), "InvalidBucketName", "{bad}");
        assert_eq!(status(&err), 400, "{bad}");
    }

    let missing = s3
        .head_bucket()
        .bucket("nope")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(status(&missing), 404);

    s3.create_bucket()
        .bucket("beta")
        .send()
        .await
        .expect("create beta");
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .expect("list")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, vec!["alpha", "beta"]);

    put(&s3, "alpha", "k", b"v".to_vec()).await;
    let not_empty = s3
        .delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect_err("not empty");
    assert_eq!(code(&not_empty), "BucketNotEmpty");
    assert_eq!(status(&not_empty), 409);

    s3.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .expect("delete object");
    s3.delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("delete bucket");
    let gone = s3
        .delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&gone), "NoSuchBucket");
    assert_eq!(status(&gone), 404);

    let put_missing = s3
        .put_object()
        .bucket("alpha")
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(code(&put_missing), "NoSuchBucket");
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let server = Server::start(1);
    let bad_key = client_for(&server.endpoint, "not-a-key", SECRET_KEY);
    let err = bad_key.list_buckets().send().await.expect_err("bad key");
    assert_eq!(code(&err), "InvalidAccessKeyId");
    assert_eq!(status(&err), 403);

    let bad_secret = client_for(&server.endpoint, ACCESS_KEY, "wrong-secret");
    let err = bad_secret
        .list_buckets()
        .send()
        .await
        .expect_err("bad secret");
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert_eq!(status(&err), 403);

    // No signature at all.
    let raw = reqwest_like_get(&format!("{}/", server.endpoint)).await;
    assert_eq!(raw.0, 403, "{}", raw.1);
    assert!(raw.1.contains("AccessDenied"), "{}", raw.1);
}

/// A bare, unsigned HTTP GET over a raw socket: (status, body).
pub async fn reqwest_like_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
