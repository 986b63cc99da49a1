//! Conditional writes against the real binary: PutObject and CompleteMultipartUpload with
//! `If-None-Match: *` and `If-Match`, DeleteObject with `If-Match`, and the atomicity of the
//! check (it runs in the meta service's Raft entry of the write): of concurrent
//! `If-None-Match: *` PUTs of one key exactly one wins.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;

use crate::harness::*;

const BUCKET: &str = "conditional";

async fn setup(server: &Server) -> Client {
    let s3 = server.client();
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create");
    s3
}

/// Starts an upload of `key` with one (small, hence last) part; returns (upload id, parts).
async fn one_part_upload(
    s3: &Client,
    key: &str,
    body: &[u8],
) -> (String, CompletedMultipartUpload) {
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("create upload");
    let upload_id = created.upload_id().expect("upload id").to_string();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("upload part");
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().expect("part etag"))
                .build(),
        )
        .build();
    (upload_id, parts)
}

#[tokio::test]
async fn put_if_none_match_and_if_match() {
    let server = Server::start(4);
    let s3 = setup(&server).await;

    // If-None-Match: * creates a new key once.
    let first = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("create-only put of a new key");
    let first_etag = first.e_tag().expect("etag").to_string();
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect_err("the key exists");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    assert_eq!(get(&s3, BUCKET, "k").await, b"first");

    // If-Match: a stale ETag fails, the current one replaces.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(ByteStream::from_static(b"stale"))
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    let second = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&first_etag)
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .expect("put with the current etag");
    assert_eq!(get(&s3, BUCKET, "k").await, b"second");
    // The first ETag is stale now.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&first_etag)
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .expect_err("etag of a replaced version");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(get(&s3, BUCKET, "k").await, b"second");
    assert_ne!(second.e_tag(), first.e_tag());

    // If-Match on a key that does not exist is NoSuchKey.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("absent")
        .if_match(&first_etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);

    // If-None-Match with an ETag is not something S3 writes support.
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match(&first_etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("not implemented");
    assert_eq!(code(&err), "NotImplemented");
    assert_eq!(get(&s3, BUCKET, "k").await, b"second");

    // Refused PUTs left no objects behind.
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(1));
}

#[tokio::test]
async fn concurrent_create_only_puts_have_exactly_one_winner() {
    let server = Server::start(4);
    let s3 = setup(&server).await;
    for round in 0..2 {
        let key = format!("race-{round}");
        let attempts = (0..8u8).map(|i| {
            let s3 = s3.clone();
            let key = key.clone();
            async move {
                let body = vec![i; 1000 + usize::from(i)];
                let result = s3
                    .put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .if_none_match("*")
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                (body, result)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let mut winners = Vec::new();
        for (body, result) in results {
            match result {
                Ok(_) => winners.push(body),
                Err(err) => {
                    let c = code(&err);
                    assert!(
                        c == "PreconditionFailed" || c == "ConditionalRequestConflict",
                        "unexpected error {c}: {err:?}"
                    );
                }
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one create-only PUT wins"
        );
        assert_eq!(get(&s3, BUCKET, &key).await, winners[0]);
    }
}

#[tokio::test]
async fn complete_multipart_upload_conditions() {
    let server = Server::start(4);
    let s3 = setup(&server).await;
    put(&s3, BUCKET, "mp", b"existing".to_vec()).await;
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .expect("head");
    let existing_etag = head.e_tag().expect("etag").to_string();

    let (upload_id, parts) = one_part_upload(&s3, "mp", b"from an upload").await;
    let err = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(parts.clone())
        .if_none_match("*")
        .send()
        .await
        .expect_err("the key exists");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    assert_eq!(get(&s3, BUCKET, "mp").await, b"existing");
    let err = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(parts.clone())
        .if_match("\"ffffffffffffffffffffffffffffffff\"")
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(code(&err), "PreconditionFailed");

    // The upload survived the refusals; the right ETag completes it.
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(&upload_id)
        .multipart_upload(parts)
        .if_match(&existing_etag)
        .send()
        .await
        .expect("complete with the current etag");
    assert_eq!(get(&s3, BUCKET, "mp").await, b"from an upload");

    // If-None-Match: * completes onto a new key; If-Match on a missing key is NoSuchKey.
    let (fresh_id, fresh_parts) = one_part_upload(&s3, "fresh", b"new").await;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("fresh")
        .upload_id(&fresh_id)
        .multipart_upload(fresh_parts)
        .if_none_match("*")
        .send()
        .await
        .expect("create-only completion");
    assert_eq!(get(&s3, BUCKET, "fresh").await, b"new");
    let (absent_id, absent_parts) = one_part_upload(&s3, "absent", b"x").await;
    let err = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("absent")
        .upload_id(&absent_id)
        .multipart_upload(absent_parts)
        .if_match(done.e_tag().expect("etag"))
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn delete_if_match() {
    let server = Server::start(4);
    let s3 = setup(&server).await;
    put(&s3, BUCKET, "d", b"keep me".to_vec()).await;
    let etag = s3
        .head_object()
        .bucket(BUCKET)
        .key("d")
        .send()
        .await
        .expect("head")
        .e_tag()
        .expect("etag")
        .to_string();

    let err = s3
        .delete_object()
        .bucket(BUCKET)
        .key("d")
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .expect_err("stale etag");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    assert_eq!(get(&s3, BUCKET, "d").await, b"keep me");

    s3.delete_object()
        .bucket(BUCKET)
        .key("d")
        .if_match(&etag)
        .send()
        .await
        .expect("delete with the current etag");
    let err = s3
        .head_object()
        .bucket(BUCKET)
        .key("d")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(status(&err), 404);

    // A delete of a missing key succeeds (204) with or without If-Match, as in S3: there is
    // nothing whose ETag could differ.
    for if_match in [Some(etag.as_str()), Some("\"badetag\""), None] {
        s3.delete_object()
            .bucket(BUCKET)
            .key("d")
            .set_if_match(if_match.map(str::to_string))
            .send()
            .await
            .expect("delete of a missing key");
    }

    // DeleteObjects: an entry's ETag is an If-Match for that key alone.
    put(&s3, BUCKET, "m1", b"one".to_vec()).await;
    put(&s3, BUCKET, "m2", b"two".to_vec()).await;
    let m2_etag = s3
        .head_object()
        .bucket(BUCKET)
        .key("m2")
        .send()
        .await
        .expect("head")
        .e_tag()
        .expect("etag")
        .to_string();
    let entry = |key: &str, etag: &str| {
        ObjectIdentifier::builder()
            .key(key)
            .e_tag(etag)
            .build()
            .expect("identifier")
    };
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .objects(entry("m1", "\"00000000000000000000000000000000\""))
                .objects(entry("m2", &m2_etag))
                .build()
                .expect("delete list"),
        )
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["m2"]);
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, [("m1", "PreconditionFailed")]);
    assert_eq!(get(&s3, BUCKET, "m1").await, b"one");
}

#[tokio::test]
async fn copy_object_destination_conditions() {
    let server = Server::start(4);
    let s3 = setup(&server).await;
    put(&s3, BUCKET, "src", b"source".to_vec()).await;
    put(&s3, BUCKET, "dst", b"destination".to_vec()).await;
    let source = format!("{BUCKET}/src");

    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(&source)
        .if_none_match("*")
        .send()
        .await
        .expect_err("destination exists");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    assert_eq!(get(&s3, BUCKET, "dst").await, b"destination");

    s3.copy_object()
        .bucket(BUCKET)
        .key("new")
        .copy_source(&source)
        .if_none_match("*")
        .send()
        .await
        .expect("copy to a new key");
    assert_eq!(get(&s3, BUCKET, "new").await, b"source");

    let err = s3
        .copy_object()
        .bucket(BUCKET)
        .key("dst")
        .copy_source(&source)
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await
        .expect_err("stale destination etag");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(get(&s3, BUCKET, "dst").await, b"destination");
}

/// In a versioned bucket a key whose newest version is a delete marker has no current
/// version: `If-None-Match: *` writes it, `If-Match` answers 404, and an `If-Match` DELETE of
/// the current ETag adds a delete marker.
#[tokio::test]
async fn conditions_in_a_versioned_bucket_see_delete_markers_as_absent() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let server = Server::start(1);
    let s3 = setup(&server).await;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    let first = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .expect("put");
    let marker = s3
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(first.e_tag().expect("etag"))
        .send()
        .await
        .expect("If-Match delete of the current version");
    assert_eq!(marker.delete_marker(), Some(true));

    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(first.e_tag().expect("etag"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("If-Match on a deleted key");
    assert_eq!(status(&err), 404);
    s3.put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .expect("If-None-Match: * over a delete marker");
    let err = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"three"))
        .send()
        .await
        .expect_err("the key exists again");
    assert_eq!(status(&err), 412);
    assert_eq!(get(&s3, BUCKET, "k").await, b"two");
}
