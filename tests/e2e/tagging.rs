//! Object tagging against the real binary: x-amz-tagging on PutObject and
//! CreateMultipartUpload, Put/Get/DeleteObjectTagging, x-amz-tagging-count on GET and HEAD,
//! S3's limits, tags surviving a restart and going with an overwrite.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging};
use aws_sdk_s3::Client;

use crate::harness::*;

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag"))
                .collect(),
        ))
        .build()
        .expect("tagging")
}

/// The object's tags, sorted.
async fn tags_of(s3: &Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get tags of {key}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    out.sort();
    out
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

/// `x-amz-tagging-count` of GET and of HEAD (read from the raw HEAD response: the SDK's
/// HeadObjectOutput has no field for it).
async fn tag_counts(s3: &Client, bucket: &str, key: &str) -> (Option<i32>, Option<i32>) {
    use aws_sdk_s3::presigning::PresigningConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get");
    let cfg = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).expect("cfg");
    let url = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .presigned(cfg)
        .await
        .expect("presign head");
    let uri = url.uri().trim_start_matches("http://").to_string();
    let (host, path) = uri.split_at(uri.find('/').expect("path"));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head_count = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-tagging-count")
            .then(|| value.trim().parse().expect("count"))
    });
    (get.tag_count(), head_count)
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

#[tokio::test]
async fn tags_are_set_read_replaced_and_deleted_within_s3_limits() {
    let mut server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("tags")
        .send()
        .await
        .expect("create bucket");

    // x-amz-tagging on PutObject (URL-encoded; + and %20 are spaces).
    s3.put_object()
        .bucket("tags")
        .key("obj")
        .tagging("project=cairn&owner%20name=Zo%C3%A9+B&empty=")
        .body(data(100, 1).into())
        .send()
        .await
        .expect("put with tags");
    assert_eq!(
        tags_of(&s3, "tags", "obj").await,
        pairs(&[("project", "cairn"), ("owner name", "Zoé B"), ("empty", "")])
    );
    assert_eq!(tag_counts(&s3, "tags", "obj").await, (Some(3), Some(3)));

    // PutObjectTagging replaces the whole set; the data and metadata stay.
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&[("a", "1"), ("b", "2")]))
        .send()
        .await
        .expect("put tagging");
    assert_eq!(
        tags_of(&s3, "tags", "obj").await,
        pairs(&[("a", "1"), ("b", "2")])
    );
    assert!(get(&s3, "tags", "obj").await == data(100, 1));
    // versionId `null` names the object of an unversioned bucket.
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .version_id("null")
        .tagging(tagging(&[("c", "3")]))
        .send()
        .await
        .expect("put tagging with versionId=null");
    assert_eq!(tags_of(&s3, "tags", "obj").await, pairs(&[("c", "3")]));

    // Tags are Raft state: they survive a crash.
    server.kill9_and_restart();
    let s3 = server.client();
    assert_eq!(tags_of(&s3, "tags", "obj").await, pairs(&[("c", "3")]));

    // DeleteObjectTagging empties the set; GET and HEAD then send no count.
    s3.delete_object_tagging()
        .bucket("tags")
        .key("obj")
        .send()
        .await
        .expect("delete tagging");
    assert!(tags_of(&s3, "tags", "obj").await.is_empty());
    assert_eq!(tag_counts(&s3, "tags", "obj").await, (None, None));

    // An overwrite is a new version: without tags unless it brings its own.
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&[("old", "yes")]))
        .send()
        .await
        .expect("put tagging");
    put(&s3, "tags", "obj", data(50, 2)).await;
    assert!(tags_of(&s3, "tags", "obj").await.is_empty());

    // A multipart upload takes its tags at creation.
    let id = s3
        .create_multipart_upload()
        .bucket("tags")
        .key("mp")
        .tagging("kind=multipart")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("id")
        .to_string();
    let etag = s3
        .upload_part()
        .bucket("tags")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(data(1000, 3).into())
        .send()
        .await
        .expect("part")
        .e_tag()
        .expect("etag")
        .to_string();
    s3.complete_multipart_upload()
        .bucket("tags")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(
        tags_of(&s3, "tags", "mp").await,
        pairs(&[("kind", "multipart")])
    );

    // Limits: 10 tags, keys of 1-128 and values of up to 256 characters, unique keys.
    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
    let ten_refs: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s3.put_object_tagging()
        .bucket("tags")
        .key("obj")
        .tagging(tagging(&ten_refs))
        .send()
        .await
        .expect("ten tags");
    let key128 = "é".repeat(128);
    let value256 = "v".repeat(256);
    s3.put_object_tagging()
        .bucket("tags")
        .key("mp")
        .tagging(tagging(&[(&key128, &value256)]))
        .send()
        .await
        .expect("longest key and value");
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven_refs: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let key129 = "k".repeat(129);
    let value257 = "v".repeat(257);
    for bad in [
        eleven_refs.clone(),
        vec![(key129.as_str(), "v")],
        vec![("k", value257.as_str())],
        vec![("dup", "1"), ("dup", "2")],
        vec![("", "empty key")],
    ] {
        fails(
            s3.put_object_tagging()
                .bucket("tags")
                .key("obj")
                .tagging(tagging(&bad))
                .send()
                .await,
            "InvalidTag",
            400,
        );
    }
    // A refused set changed nothing.
    assert_eq!(tags_of(&s3, "tags", "obj").await.len(), 10);
    let eleven_header: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
    fails(
        s3.put_object()
            .bucket("tags")
            .key("too-many")
            .tagging(eleven_header.join("&"))
            .body(b"x".to_vec().into())
            .send()
            .await,
        "InvalidTag",
        400,
    );
    fails(
        s3.put_object()
            .bucket("tags")
            .key("too-many")
            .tagging("a=1&a=2")
            .body(b"x".to_vec().into())
            .send()
            .await,
        "InvalidTag",
        400,
    );
    let err = s3
        .head_object()
        .bucket("tags")
        .key("too-many")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(status(&err), 404, "a PUT with bad tags stored an object");

    // Missing objects and versions.
    fails(
        s3.get_object_tagging()
            .bucket("tags")
            .key("nope")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    fails(
        s3.put_object_tagging()
            .bucket("tags")
            .key("nope")
            .tagging(tagging(&[("a", "1")]))
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    fails(
        s3.delete_object_tagging()
            .bucket("tags")
            .key("nope")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    fails(
        s3.put_object_tagging()
            .bucket("tags")
            .key("obj")
            .version_id("00000000000000000001")
            .tagging(tagging(&[("a", "1")]))
            .send()
            .await,
        "NoSuchVersion",
        404,
    );
    fails(
        s3.get_object_tagging()
            .bucket("nobucket")
            .key("obj")
            .send()
            .await,
        "NoSuchBucket",
        404,
    );
}
