//! CopyObject against the real binary: bit-exact bytes (small, multi-stripe, multipart
//! sources), a copy that outlives its source's shards, metadata and tagging directives,
//! copying onto itself, the copy-source conditions and the errors for missing sources.

use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, TaggingDirective,
};
use aws_sdk_s3::Client;
use md5::{Digest, Md5};

use crate::harness::*;

const MIB: usize = 1 << 20;

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// `x-amz-copy-source`: bucket/key with the key URL-encoded (its slashes kept).
fn source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts that an SDK call failed with this S3 error code and HTTP status.
fn fails<T: std::fmt::Debug, E>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
    code_wanted: &str,
    status_wanted: u16,
) where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    let err = result.expect_err(code_wanted);
    assert_eq!(code(&err), code_wanted, "{err:?}");
    assert_eq!(status(&err), status_wanted, "{err:?}");
}

/// Copies and returns the quoted ETag of the result (checking it carries LastModified).
async fn copy(s3: &Client, from: &str, bucket: &str, key: &str) -> String {
    let out = s3
        .copy_object()
        .copy_source(from)
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy {from} -> {bucket}/{key}: {e:?}"));
    let result = out.copy_object_result().expect("CopyObjectResult");
    assert!(result.last_modified().is_some(), "no LastModified");
    result.e_tag().expect("ETag").to_string()
}

async fn wait_for_shard_count(server: &Server, want: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = server.shard_files().len();
        if n == want || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stores `src/multi` as a two-part upload (5 MiB + 1 MiB + 7) and returns its bytes.
async fn put_multipart(s3: &Client) -> Vec<u8> {
    let p1 = data(5 * MIB, 3);
    let p2 = data(MIB + 7, 4);
    let id = s3
        .create_multipart_upload()
        .bucket("src")
        .key("multi")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string();
    let mut parts = Vec::new();
    for (n, body) in [(1, &p1), (2, &p2)] {
        let etag = s3
            .upload_part()
            .bucket("src")
            .key("multi")
            .upload_id(&id)
            .part_number(n)
            .body(body.clone().into())
            .send()
            .await
            .expect("upload part")
            .e_tag()
            .expect("part etag")
            .to_string();
        parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    s3.complete_multipart_upload()
        .bucket("src")
        .key("multi")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    [p1.as_slice(), p2.as_slice()].concat()
}

#[tokio::test]
async fn copies_are_bit_exact_and_independent_of_their_source() {
    let server = Server::start_with_env(4, &[("CAIRN_SHARD_DELETE_GRACE", "1")]);
    let s3 = server.client();
    for b in ["src", "dst"] {
        s3.create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create bucket");
    }

    // Small, empty and multi-stripe single-PUT sources; odd keys in both places.
    let small = data(1000, 1);
    let empty = Vec::new();
    let big = data(5 * MIB + 123, 2);
    put(&s3, "src", "small", small.clone()).await;
    put(&s3, "src", "empty", empty.clone()).await;
    put(&s3, "src", "dir/big file+ü?x=1", big.clone()).await;
    let multi = put_multipart(&s3).await;
    let source_shards = server.shard_files().len();
    for (key, body, to) in [
        ("small", &small, "copy/small"),
        ("empty", &empty, "copy/empty"),
        ("dir/big file+ü?x=1", &big, "copy of big ü"),
    ] {
        let etag = copy(&s3, &source("src", key), "dst", to).await;
        assert_eq!(etag, format!("\"{}\"", md5_hex(body)), "{key}");
        let back = get(&s3, "dst", to).await;
        assert!(
            &back == body,
            "{key}: the copy differs ({} bytes)",
            back.len()
        );
    }

    // A multipart source: the copy is one new object whose ETag is its MD5 (what S3's
    // CopyObject gives too), its bytes are the parts' in order.
    let whole = multi;
    let etag = copy(&s3, "src/multi", "dst", "multi-copy").await;
    assert_eq!(etag, format!("\"{}\"", md5_hex(&whole)));
    assert!(
        get(&s3, "dst", "multi-copy").await == whole,
        "multipart copy differs"
    );
    // A range of the copy crosses the old part boundary.
    let ranged = s3
        .get_object()
        .bucket("dst")
        .key("multi-copy")
        .range(format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9))
        .send()
        .await
        .expect("ranged get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(&ranged[..], &whole[5 * MIB - 10..5 * MIB + 10]);

    // versionId: `null` (and the current version) is the object; anything else is not.
    let etag = copy(&s3, "src/small?versionId=null", "dst", "by-version").await;
    assert_eq!(etag, format!("\"{}\"", md5_hex(&small)));
    fails(
        s3.copy_object()
            .copy_source("src/small?versionId=00000000000000000001")
            .bucket("dst")
            .key("x")
            .send()
            .await,
        "NoSuchVersion",
        404,
    );

    // The copy has shards of its own: removing every source leaves the copies whole. (The
    // copies of the big and the multipart source have four each; the small and empty ones
    // are kept inline in their metadata, as their sources are.)
    let all_shards = server.shard_files().len();
    assert!(
        all_shards >= source_shards + 8,
        "{all_shards} shards for copies of {source_shards}"
    );
    for key in ["small", "empty", "dir/big file+ü?x=1", "multi"] {
        s3.delete_object()
            .bucket("src")
            .key(key)
            .send()
            .await
            .expect("delete source");
    }
    let left = wait_for_shard_count(&server, all_shards - source_shards).await;
    assert_eq!(
        left,
        all_shards - source_shards,
        "the sources' shards were not all deleted"
    );
    assert!(get(&s3, "dst", "copy of big ü").await == big);
    assert!(get(&s3, "dst", "multi-copy").await == whole);
    assert!(get(&s3, "dst", "copy/small").await == small);

    // Missing source key or bucket, missing destination bucket.
    fails(
        s3.copy_object()
            .copy_source("src/small")
            .bucket("dst")
            .key("x")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    fails(
        s3.copy_object()
            .copy_source("nobucket/k")
            .bucket("dst")
            .key("x")
            .send()
            .await,
        "NoSuchBucket",
        404,
    );
    fails(
        s3.copy_object()
            .copy_source("dst/copy/small")
            .bucket("nobucket")
            .key("x")
            .send()
            .await,
        "NoSuchBucket",
        404,
    );
}

#[tokio::test]
async fn metadata_tagging_directives_self_copy_and_conditions() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("mdc")
        .send()
        .await
        .expect("create bucket");
    let body = data(3000, 9);
    let expires = DateTime::from_secs(2_000_000_000);
    s3.put_object()
        .bucket("mdc")
        .key("src")
        .content_type("text/plain")
        .metadata("owner", "alice")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"a.txt\"")
        .content_encoding("identity")
        .content_language("fr")
        .expires(expires)
        .tagging("team=storage&stage=test")
        .body(body.clone().into())
        .send()
        .await
        .expect("put source");
    let src_etag = format!("\"{}\"", md5_hex(&body));

    // COPY (the default) keeps everything, even when the request names other values.
    s3.copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("kept")
        .content_type("application/json")
        .metadata("owner", "bob")
        .send()
        .await
        .expect("copy");
    let head = s3
        .head_object()
        .bucket("mdc")
        .key("kept")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("owner"))
            .map(String::as_str),
        Some("alice")
    );
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"a.txt\"")
    );
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.content_language(), Some("fr"));
    // 2,000,000,000 s after the epoch.
    assert_eq!(head.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let tags = s3
        .get_object_tagging()
        .bucket("mdc")
        .key("kept")
        .send()
        .await
        .expect("tags");
    let mut pairs: Vec<(String, String)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("stage".into(), "test".into()),
            ("team".into(), "storage".into())
        ]
    );
    let got = s3
        .get_object()
        .bucket("mdc")
        .key("kept")
        .send()
        .await
        .expect("get");
    assert_eq!(got.tag_count(), Some(2));

    // REPLACE takes the request's metadata and drops what it does not name; the tags are
    // still copied (their directive is COPY).
    s3.copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("replaced")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("application/json")
        .metadata("reviewer", "carol")
        .send()
        .await
        .expect("copy replace");
    let head = s3
        .head_object()
        .bucket("mdc")
        .key("replaced")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("application/json"));
    let meta = head.metadata().cloned().unwrap_or_default();
    assert_eq!(meta.get("reviewer").map(String::as_str), Some("carol"));
    assert!(!meta.contains_key("owner"), "{meta:?}");
    assert_eq!(head.cache_control(), None);
    assert_eq!(head.content_language(), None);
    let tags = s3
        .get_object_tagging()
        .bucket("mdc")
        .key("replaced")
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_set().len(), 2);
    assert!(get(&s3, "mdc", "replaced").await == body);

    // The tagging directive REPLACE takes x-amz-tagging (none: no tags).
    s3.copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("retagged")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("colour=blue")
        .send()
        .await
        .expect("copy retag");
    let tags = s3
        .get_object_tagging()
        .bucket("mdc")
        .key("retagged")
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_set().len(), 1);
    assert_eq!(tags.tag_set()[0].key(), "colour");
    assert_eq!(tags.tag_set()[0].value(), "blue");
    s3.copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("untagged")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .expect("copy untag");
    let tags = s3
        .get_object_tagging()
        .bucket("mdc")
        .key("untagged")
        .send()
        .await
        .expect("tags");
    assert!(tags.tag_set().is_empty());
    fails(
        s3.copy_object()
            .copy_source("mdc/src")
            .bucket("mdc")
            .key("badtags")
            .tagging_directive(TaggingDirective::Replace)
            .tagging("a=1&a=2")
            .send()
            .await,
        "InvalidTag",
        400,
    );
    fails(
        s3.copy_object()
            .copy_source("mdc/src")
            .bucket("mdc")
            .key("x")
            .metadata_directive(MetadataDirective::from("MOVE"))
            .send()
            .await,
        "InvalidArgument",
        400,
    );

    // Onto itself: refused unless the metadata is replaced.
    let err = s3
        .copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("src")
        .send()
        .await
        .expect_err("self copy");
    assert_eq!(code(&err), "InvalidRequest");
    assert_eq!(status(&err), 400);
    let msg = err
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default();
    assert!(msg.contains("This copy request is illegal"), "{msg}");
    s3.copy_object()
        .copy_source("mdc/src")
        .bucket("mdc")
        .key("src")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/csv")
        .send()
        .await
        .expect("self copy with REPLACE");
    let head = s3
        .head_object()
        .bucket("mdc")
        .key("src")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("text/csv"));
    assert_eq!(head.e_tag(), Some(src_etag.as_str()));
    assert!(
        get(&s3, "mdc", "src").await == body,
        "self copy changed the bytes"
    );

    // Copy-source conditions: any that fails is 412, and nothing is written.
    let modified = head.last_modified().expect("last modified").secs();
    let past = DateTime::from_secs(modified - 3600);
    let future = DateTime::from_secs(modified + 3600);
    let base = || s3.copy_object().copy_source("mdc/src").bucket("mdc");
    base()
        .key("c1")
        .copy_source_if_match(&src_etag)
        .send()
        .await
        .expect("if-match");
    base()
        .key("c2")
        .copy_source_if_none_match("\"00\"")
        .send()
        .await
        .expect("if-none-match");
    base()
        .key("c3")
        .copy_source_if_modified_since(past)
        .send()
        .await
        .expect("modified");
    base()
        .key("c4")
        .copy_source_if_unmodified_since(future)
        .send()
        .await
        .expect("unmodified");
    fails(
        base().key("f1").copy_source_if_match("\"00\"").send().await,
        "PreconditionFailed",
        412,
    );
    fails(
        base()
            .key("f2")
            .copy_source_if_none_match(&src_etag)
            .send()
            .await,
        "PreconditionFailed",
        412,
    );
    fails(
        base()
            .key("f3")
            .copy_source_if_modified_since(future)
            .send()
            .await,
        "PreconditionFailed",
        412,
    );
    fails(
        base()
            .key("f4")
            .copy_source_if_unmodified_since(past)
            .send()
            .await,
        "PreconditionFailed",
        412,
    );
    for key in ["f1", "f2", "f3", "f4"] {
        let err = s3
            .head_object()
            .bucket("mdc")
            .key(key)
            .send()
            .await
            .expect_err(key);
        assert_eq!(status(&err), 404, "{key} was written");
    }
    for key in ["c1", "c2", "c3", "c4"] {
        assert!(get(&s3, "mdc", key).await == body, "{key}");
    }
}

/// A 160 MiB copy: bit-exact by MD5, and the server's peak memory grows by far less than
/// the object while it copies (the source streams through a few stripes at a time).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_copy_streams_with_bounded_server_memory() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("large")
        .send()
        .await
        .expect("create bucket");
    let body = data(160 * MIB, 77);
    let want = md5_hex(&body);
    put(&s3, "large", "src", body).await;
    let before = peak_rss_kib(server.pid());
    let etag = copy(&s3, "large/src", "large", "dst").await;
    let after = peak_rss_kib(server.pid());
    eprintln!("server peak RSS: {before} KiB before, {after} KiB after a 160 MiB copy");
    assert_eq!(etag, format!("\"{want}\""));
    assert!(
        after < before + 64 * 1024,
        "server peak RSS grew from {before} KiB to {after} KiB for a 160 MiB copy"
    );
    let mut reply = s3
        .get_object()
        .bucket("large")
        .key("dst")
        .send()
        .await
        .expect("get");
    let mut got = Md5::new();
    let mut len = 0;
    while let Some(chunk) = reply.body.try_next().await.expect("body chunk") {
        len += chunk.len();
        got.update(&chunk);
    }
    assert_eq!(len, 160 * MIB);
    assert_eq!(
        hex::encode(got.finalize()),
        want,
        "the copy read back differs"
    );
}
