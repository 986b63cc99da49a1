//! Small objects kept inline in their metadata record (`--inline-max`, 16 KiB by default):
//! they leave no shard file, read back bit-exact whole and by range, list, copy and survive
//! `kill -9`; bad bodies are refused exactly as for sharded objects; the limit is a setting.

use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};

use crate::harness::*;

const LIMIT: usize = 16 * 1024;

fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

#[tokio::test]
async fn small_objects_live_in_the_metadata_and_read_back_like_any_other() {
    let mut server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket().bucket("small").send().await.expect("mb");

    let sizes = [0usize, 1, 4096, LIMIT];
    for (i, &len) in sizes.iter().enumerate() {
        put(&s3, "small", &format!("k{len}"), data(len, i as u64)).await;
    }
    assert!(
        server.shard_files().is_empty(),
        "objects of at most {LIMIT} bytes must leave no shard file: {:?}",
        server.shard_files()
    );
    // One byte over the limit: erasure-coded as usual (2+2 on four disks).
    put(&s3, "small", "big", data(LIMIT + 1, 99)).await;
    assert_eq!(server.shard_files().len(), 4);

    for (i, &len) in sizes.iter().enumerate() {
        let key = format!("k{len}");
        let want = data(len, i as u64);
        assert_eq!(get(&s3, "small", &key).await, want, "{key}");
        let head = s3
            .head_object()
            .bucket("small")
            .key(&key)
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(len as i64));
        assert_eq!(head.e_tag(), Some(etag_of(&want).as_str()));
    }
    assert_eq!(get(&s3, "small", "big").await, data(LIMIT + 1, 99));

    // Ranges of an inline body.
    let ranged = s3
        .get_object()
        .bucket("small")
        .key("k4096")
        .range("bytes=10-99")
        .send()
        .await
        .expect("range get");
    assert_eq!(ranged.content_range(), Some("bytes 10-99/4096"));
    let bytes = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(&bytes[..], &data(4096, 2)[10..100]);

    // Listed with their sizes and ETags.
    let listed = s3
        .list_objects_v2()
        .bucket("small")
        .send()
        .await
        .expect("list");
    let by_key: Vec<(String, i64, String)> = listed
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or_default().to_string(),
                o.size().unwrap_or(-1),
                o.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(by_key.contains(&("k4096".to_string(), 4096, etag_of(&data(4096, 2)))));
    assert_eq!(by_key.len(), 5);

    // A body that does not match its Content-MD5 is refused and leaves nothing.
    let wrong_md5 = base64_md5(b"something else");
    let err = s3
        .put_object()
        .bucket("small")
        .key("bad")
        .content_md5(wrong_md5)
        .body(ByteStream::from(b"the real body".to_vec()))
        .send()
        .await
        .expect_err("a wrong Content-MD5 must be refused");
    assert_eq!(code(&err), "BadDigest");
    assert_eq!(status(&err), 400);
    let missing = s3.head_object().bucket("small").key("bad").send().await;
    assert!(missing.is_err(), "a refused PUT must leave nothing");

    // Copies of an inline object, and overwrites between the two kinds.
    s3.copy_object()
        .copy_source("small/k4096")
        .bucket("small")
        .key("copy")
        .send()
        .await
        .expect("copy");
    assert_eq!(get(&s3, "small", "copy").await, data(4096, 2));
    put(&s3, "small", "big", data(100, 7)).await; // sharded -> inline
    put(&s3, "small", "k1", data(LIMIT * 2, 8)).await; // inline -> sharded
    assert_eq!(get(&s3, "small", "big").await, data(100, 7));
    assert_eq!(get(&s3, "small", "k1").await, data(LIMIT * 2, 8));

    // Acknowledged means durable: everything reads back after kill -9.
    server.kill9_and_restart();
    let s3 = server.client();
    assert_eq!(get(&s3, "small", "k0").await, Vec::<u8>::new());
    assert_eq!(get(&s3, "small", "k4096").await, data(4096, 2));
    assert_eq!(
        get(&s3, "small", &format!("k{LIMIT}")).await,
        data(LIMIT, 3)
    );
    assert_eq!(get(&s3, "small", "copy").await, data(4096, 2));
    assert_eq!(get(&s3, "small", "big").await, data(100, 7));
    assert_eq!(get(&s3, "small", "k1").await, data(LIMIT * 2, 8));

    // Deleted like any other object.
    s3.delete_object()
        .bucket("small")
        .key("k4096")
        .send()
        .await
        .expect("delete");
    let gone = s3.get_object().bucket("small").key("k4096").send().await;
    assert_eq!(code(&gone.expect_err("deleted")), "NoSuchKey");
}

#[tokio::test]
async fn an_inline_limit_of_zero_shards_every_object() {
    let server = Server::start_with_env(4, &[("CAIRN_INLINE_MAX", "0")]);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("sharded")
        .send()
        .await
        .expect("mb");
    put(&s3, "sharded", "one", data(1, 1)).await;
    assert_eq!(server.shard_files().len(), 4);
    assert_eq!(get(&s3, "sharded", "one").await, data(1, 1));
}

fn base64_md5(body: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}
