use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};

use crate::harness::*;

/// Data per stripe with the default schemes (1+0 on one disk, 2+2 on four): 1 MiB.
const STRIPE: usize = 1 << 20;

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

async fn round_trip_sizes(disks: usize) {
    let server = Server::start(disks);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("sizes")
        .send()
        .await
        .expect("create");
    let sizes = [
        0,
        1,
        4095,
        STRIPE - 1,
        STRIPE,
        STRIPE + 1,
        3 * STRIPE + 5,
        100 << 20,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        let body = data(size, i as u64);
        let key = format!("obj-{size}");
        let out = s3
            .put_object()
            .bucket("sizes")
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {size}: {e:?}"));
        assert_eq!(
            out.e_tag(),
            Some(format!("\"{}\"", md5_hex(&body)).as_str()),
            "etag {size}"
        );
        let back = get(&s3, "sizes", &key).await;
        assert!(
            back == body,
            "object of {size} bytes came back different ({} bytes)",
            back.len()
        );
        let head = s3
            .head_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(size as i64));
    }
}

#[tokio::test]
async fn objects_of_every_edge_size_round_trip_on_one_disk() {
    round_trip_sizes(1).await;
}

#[tokio::test]
async fn objects_of_every_edge_size_round_trip_on_four_disks() {
    round_trip_sizes(4).await;
}

/// The same over the loopback socket: the embedded gateway reaches its blob server
/// in-process by default (checked in the log), and both transports must store alike.
#[tokio::test]
async fn objects_round_trip_over_both_blob_transports() {
    let in_process = Server::start(2);
    assert!(
        in_process.wait_for_log(
            "blob transport: in-process",
            std::time::Duration::from_secs(5)
        ),
        "the embedded gateway calls its blob server in-process"
    );
    drop(in_process);
    let socket = Server::start_with_env(2, &[("CAIRN_BLOB_IN_PROCESS", "0")]);
    assert!(socket.wait_for_log(
        "blob transport: loopback gRPC",
        std::time::Duration::from_secs(5)
    ));
    let s3 = socket.client();
    s3.create_bucket()
        .bucket("socket")
        .send()
        .await
        .expect("create");
    let body = data(3 << 20, 9);
    put(&s3, "socket", "big", body.clone()).await;
    assert!(get(&s3, "socket", "big").await == body);
}

#[tokio::test]
async fn metadata_content_type_and_md5_are_kept_and_checked() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("meta")
        .send()
        .await
        .expect("create");
    let body = data(1000, 7);
    s3.put_object()
        .bucket("meta")
        .key("doc.json")
        .content_type("application/json")
        .metadata("owner", "alice")
        .metadata("purpose", "test data")
        .content_md5(base64_md5(&body))
        .body(body.clone().into())
        .send()
        .await
        .expect("put");
    let head = s3
        .head_object()
        .bucket("meta")
        .key("doc.json")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("application/json"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("owner").map(String::as_str), Some("alice"));
    assert_eq!(meta.get("purpose").map(String::as_str), Some("test data"));
    assert!(head.last_modified().is_some());

    let wrong = s3
        .put_object()
        .bucket("meta")
        .key("bad-md5")
        .content_md5(base64_md5(b"something else"))
        .body(body.clone().into())
        .send()
        .await
        .expect_err("bad digest");
    assert_eq!(code(&wrong), "BadDigest");
    assert_eq!(status(&wrong), 400);
    let missing = s3
        .head_object()
        .bucket("meta")
        .key("bad-md5")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(status(&missing), 404);
}

fn base64_md5(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

#[tokio::test]
async fn keys_are_opaque_and_never_escape_the_data_directory() {
    let server = Server::start(2);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("keys")
        .send()
        .await
        .expect("create");
    let long = "k".repeat(1024);
    let keys = [
        "../escape",
        "../../etc/passwd",
        "a/b/../../c",
        "100% sure",
        "with space",
        "unicode-\u{1F600}-\u{00E9}\u{4E2D}",
        "trailing/",
        long.as_str(),
        "./dot",
        "q?x=1&y=2#frag",
    ];
    for (i, key) in keys.iter().enumerate() {
        put(&s3, "keys", key, data(100 + i, i as u64)).await;
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            get(&s3, "keys", key).await,
            data(100 + i, i as u64),
            "{key}"
        );
    }
    let listed: Vec<String> = s3
        .list_objects_v2()
        .bucket("keys")
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    // Nothing was written outside the data directories.
    let stray: Vec<_> = std::fs::read_dir(server.tmp.path())
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("disk") && n != "server.log")
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    let too_long = "k".repeat(1025);
    let err = s3
        .put_object()
        .bucket("keys")
        .key(&too_long)
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("too long");
    assert_eq!(code(&err), "KeyTooLongError");
    assert_eq!(status(&err), 400);
}

#[tokio::test]
async fn range_reads_at_stripe_edges() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("ranges")
        .send()
        .await
        .expect("create");
    let body = data(3 * STRIPE + 100, 3);
    put(&s3, "ranges", "r", body.clone()).await;
    let n = body.len();
    let cases: Vec<(String, usize, usize)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-9".into(), 0, 9),
        (
            format!("bytes={}-{}", STRIPE - 1, STRIPE),
            STRIPE - 1,
            STRIPE,
        ),
        (
            format!("bytes={}-{}", STRIPE, 2 * STRIPE - 1),
            STRIPE,
            2 * STRIPE - 1,
        ),
        (
            format!("bytes={}-{}", STRIPE / 2 - 3, STRIPE / 2 + 3),
            STRIPE / 2 - 3,
            STRIPE / 2 + 3,
        ),
        (format!("bytes={}-", 3 * STRIPE - 1), 3 * STRIPE - 1, n - 1),
        ("bytes=-5".into(), n - 5, n - 1),
        (format!("bytes=10-{}", n + 1000), 10, n - 1),
    ];
    for (range, first, last) in cases {
        let out = s3
            .get_object()
            .bucket("ranges")
            .key("r")
            .range(&range)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{range}: {e:?}"));
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {first}-{last}/{n}").as_str()),
            "{range}"
        );
        let got = out.body.collect().await.expect("body").into_bytes();
        assert!(got.as_ref() == &body[first..=last], "{range}: wrong bytes");
    }
    let err = s3
        .get_object()
        .bucket("ranges")
        .key("r")
        .range(format!("bytes={n}-"))
        .send()
        .await
        .expect_err("unsatisfiable");
    assert_eq!(code(&err), "InvalidRange");
    assert_eq!(status(&err), 416);
}

#[tokio::test]
async fn conditional_gets_follow_s3_rules() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("cond")
        .send()
        .await
        .expect("create");
    let body = data(2000, 11);
    put(&s3, "cond", "c", body.clone()).await;
    let etag = format!("\"{}\"", md5_hex(&body));
    let head = s3
        .head_object()
        .bucket("cond")
        .key("c")
        .send()
        .await
        .expect("head");
    let modified = head.last_modified().cloned().expect("last modified");

    let ok = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_match(&etag)
        .send()
        .await;
    assert!(ok.is_ok(), "If-Match with the right ETag");
    let err = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_match("\"0000\"")
        .send()
        .await
        .expect_err("If-Match mismatch");
    assert_eq!(status(&err), 412);
    let err = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("If-None-Match match");
    assert_eq!(status(&err), 304);
    let err = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_modified_since(modified)
        .send()
        .await
        .expect_err("not modified since");
    assert_eq!(status(&err), 304);
    let past = aws_sdk_s3::primitives::DateTime::from_secs(modified.secs() - 3600);
    let err = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("modified since the past");
    assert_eq!(status(&err), 412);
    let ok = s3
        .get_object()
        .bucket("cond")
        .key("c")
        .if_modified_since(past)
        .send()
        .await;
    assert!(ok.is_ok(), "modified since an hour before");
}

#[tokio::test]
async fn missing_keys_overwrites_and_deletes() {
    let server = Server::start_with_env(4, &[("CAIRN_SHARD_DELETE_GRACE", "3")]);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("overwrite")
        .send()
        .await
        .expect("create");
    let err = s3
        .get_object()
        .bucket("overwrite")
        .key("none")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
    // DELETE of a missing key succeeds, as in S3.
    s3.delete_object()
        .bucket("overwrite")
        .key("none")
        .send()
        .await
        .expect("delete missing");

    // Large enough to be erasure-coded, not kept inline in the metadata.
    put(&s3, "overwrite", "k", data(50_000, 1)).await;
    let shards_one = server.shard_files().len();
    put(&s3, "overwrite", "k", data(70_000, 2)).await;
    assert_eq!(get(&s3, "overwrite", "k").await, data(70_000, 2));
    s3.delete_object()
        .bucket("overwrite")
        .key("k")
        .send()
        .await
        .expect("delete");
    let err = s3
        .get_object()
        .bucket("overwrite")
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&err), "NoSuchKey");
    // Within the grace both versions' shards are still there, for GETs that were already
    // streaming them...
    assert_eq!(
        server.shard_files().len(),
        8,
        "shards deleted before the grace ended"
    );
    // ...and afterwards they are removed (in the background).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.shard_files().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shards_one, 4);
    assert!(
        server.shard_files().is_empty(),
        "{:?}",
        server.shard_files()
    );
}

#[tokio::test]
async fn presigned_urls_and_cut_off_uploads() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("pre")
        .send()
        .await
        .expect("create");
    let cfg = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).expect("cfg");

    // A presigned PUT whose body stops halfway: no object may appear.
    let mut stream = partial_presigned_put(&s3, "pre", "cut", 100_000, &data(50_000, 5)).await;
    stream.shutdown().await.expect("shutdown");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut sink),
    )
    .await;
    let reply = String::from_utf8_lossy(&sink);
    assert!(
        reply.starts_with("HTTP/1.1 400") && reply.contains("IncompleteBody"),
        "a body shorter than its Content-Length must get 400 IncompleteBody, got: {reply}"
    );
    let err = s3
        .head_object()
        .bucket("pre")
        .key("cut")
        .send()
        .await
        .expect_err("no object");
    assert_eq!(status(&err), 404);

    // A presigned GET works with no other credentials.
    put(&s3, "pre", "shared", b"hello presigned".to_vec()).await;
    let url = s3
        .get_object()
        .bucket("pre")
        .key("shared")
        .presigned(cfg)
        .await
        .expect("presign get");
    let (status_code, text) = crate::buckets::reqwest_like_get(url.uri()).await;
    assert_eq!(status_code, 200, "{text}");
    assert!(text.ends_with("hello presigned"), "{text}");
}

#[tokio::test]
async fn streaming_upload_of_unknown_length_body() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("stream")
        .send()
        .await
        .expect("create");
    let body = data(5 * STRIPE + 17, 21);
    let path = server.tmp.path().join("upload.bin");
    std::fs::write(&path, &body).expect("write file");
    let stream = ByteStream::from_path(&path).await.expect("bytestream");
    s3.put_object()
        .bucket("stream")
        .key("file")
        .body(stream)
        .send()
        .await
        .expect("put from file");
    assert_eq!(get(&s3, "stream", "file").await, body);
}

/// A 1 GiB object streams through the server in both directions without the server's peak
/// memory growing anywhere near the object's size (bounded by a few stripes per request).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_object_streams_with_bounded_server_memory() {
    use md5::Digest;
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("large")
        .send()
        .await
        .expect("create");
    let size: usize = 1 << 30;
    let path = server.tmp.path().join("large.bin");
    {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create file"));
        let chunk = data(1 << 20, 77);
        for _ in 0..(size >> 20) {
            file.write_all(&chunk).expect("write");
        }
        file.flush().expect("flush");
    }
    let before = peak_rss_kib(server.pid());
    let body = ByteStream::from_path(&path).await.expect("bytestream");
    let put = s3
        .put_object()
        .bucket("large")
        .key("big")
        .body(body)
        .send()
        .await
        .expect("put 1 GiB");
    let mut reply = s3
        .get_object()
        .bucket("large")
        .key("big")
        .send()
        .await
        .expect("get");
    let mut md5 = Md5::new();
    let mut got = 0usize;
    while let Some(chunk) = reply.body.try_next().await.expect("body chunk") {
        got += chunk.len();
        md5.update(&chunk);
    }
    assert_eq!(got, size);
    let etag = format!("\"{}\"", hex::encode(md5.finalize()));
    assert_eq!(put.e_tag(), Some(etag.as_str()));
    let after = peak_rss_kib(server.pid());
    eprintln!("server peak RSS: {before} KiB before, {after} KiB after a 1 GiB PUT + GET");
    // 256 MiB is a quarter of the object; the data path itself needs a few MiB per request.
    assert!(
        after < before + 256 * 1024,
        "server peak RSS grew from {before} KiB to {after} KiB for a 1 GiB object"
    );
}

#[tokio::test]
async fn operations_not_built_yet_answer_not_implemented() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("later")
        .send()
        .await
        .expect("create");
    let err = s3
        .get_bucket_logging()
        .bucket("later")
        .send()
        .await
        .expect_err("bucket logging is not built yet");
    assert_eq!(code(&err), "NotImplemented");
    assert_eq!(status(&err), 501);
    let err = s3
        .get_bucket_logging()
        .bucket("later")
        .send()
        .await
        .expect_err("bucket logging is not built yet");
    assert_eq!(code(&err), "NotImplemented");
    // Nothing was created by the refused calls.
    let listed = s3
        .list_objects_v2()
        .bucket("later")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn a_stalled_upload_times_out_and_leaves_nothing() {
    use tokio::io::AsyncReadExt;
    let server = Server::start_with_env(4, &[("CAIRN_BODY_IDLE_TIMEOUT", "2")]);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("stall")
        .send()
        .await
        .expect("create");
    let mut stream =
        partial_presigned_put(&s3, "stall", "slow", 3_000_000, &data(1_500_000, 8)).await;
    // Now send nothing more and keep the connection open: the server must give up by itself.
    let mut reply = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut reply))
        .await
        .expect("the server answered a stalled upload within 20 s")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(
        reply.starts_with("HTTP/1.1 400") && reply.contains("RequestTimeout"),
        "{reply}"
    );
    let err = s3
        .head_object()
        .bucket("stall")
        .key("slow")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(status(&err), 404);
}
