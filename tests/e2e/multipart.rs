//! Multipart upload against the real binary: bodies, ETags, ranges across parts, part
//! replacement, abort, listings, every error S3 defines for it, and the shards of parts that
//! end up unused.

use std::time::Duration;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use md5::{Digest, Md5};

use crate::harness::*;

const MIB: usize = 1 << 20;
/// S3's smallest part (every part but the last).
const MIN_PART: usize = 5 * MIB;

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-N`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    for p in parts {
        md5.update(Md5::digest(p));
    }
    format!("\"{}-{}\"", hex::encode(md5.finalize()), parts.len())
}

async fn create(s3: &Client, bucket: &str, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create upload {bucket}/{key}: {e:?}"))
        .upload_id()
        .expect("upload id")
        .to_string()
}

async fn upload_part(
    s3: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    n: i32,
    body: &[u8],
) -> String {
    s3.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n} of {key}: {e:?}"))
        .e_tag()
        .expect("part etag")
        .to_string()
}

fn part_list<S: AsRef<str>>(parts: &[(i32, S)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, etag)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(etag.as_ref())
                        .build()
                })
                .collect(),
        ))
        .build()
}

async fn complete<S: AsRef<str>>(
    s3: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: &[(i32, S)],
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
        aws_smithy_runtime_api::http::Response,
    >,
> {
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(part_list(parts))
        .send()
        .await
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
    assert_eq!(code(&err), code_wanted);
    assert_eq!(status(&err), status_wanted);
}

async fn get_range(s3: &Client, bucket: &str, key: &str, range: &str) -> (Option<String>, Vec<u8>) {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {range}: {e:?}"));
    let content_range = out.content_range().map(str::to_string);
    let body = out
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec();
    (content_range, body)
}

#[tokio::test]
async fn a_multipart_object_reads_back_whole_by_range_and_by_part() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("mpobj")
        .send()
        .await
        .expect("create bucket");
    let id = s3
        .create_multipart_upload()
        .bucket("mpobj")
        .key("big/object.bin")
        .content_type("application/x-test")
        .metadata("origin", "e2e")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string();
    let parts: Vec<Vec<u8>> = vec![
        data(MIN_PART, 1),
        data(MIN_PART, 2),
        data(MIN_PART, 3),
        data(1234, 4),
    ];
    let mut etags = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let etag = upload_part(&s3, "mpobj", "big/object.bin", &id, i as i32 + 1, body).await;
        assert_eq!(etag, format!("\"{}\"", md5_hex(body)), "part {}", i + 1);
        etags.push(etag);
    }
    // Not visible before completion.
    let err = s3
        .head_object()
        .bucket("mpobj")
        .key("big/object.bin")
        .send()
        .await
        .expect_err("not yet");
    assert_eq!(status(&err), 404);
    let list: Vec<(i32, &str)> = etags
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i32 + 1, e.as_str()))
        .collect();
    let done = complete(&s3, "mpobj", "big/object.bin", &id, &list)
        .await
        .expect("complete");
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let etag = multipart_etag(&slices);
    assert_eq!(done.e_tag(), Some(etag.as_str()));

    let whole: Vec<u8> = parts.concat();
    let n = whole.len();
    assert!(
        get(&s3, "mpobj", "big/object.bin").await == whole,
        "whole object differs"
    );
    let head = s3
        .head_object()
        .bucket("mpobj")
        .key("big/object.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(n as i64));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("e2e")
    );
    let listed = s3
        .list_objects_v2()
        .bucket("mpobj")
        .send()
        .await
        .expect("list");
    let object = &listed.contents()[0];
    assert_eq!(object.size(), Some(n as i64));
    assert_eq!(object.e_tag(), Some(etag.as_str()));

    // Ranges inside one part, across one boundary, across several, and at the ends.
    let b = MIN_PART;
    for (first, last) in [
        (0, 9),
        (b - 10, b + 9),
        (b - 1, b),
        (b, 2 * b - 1),
        (b / 2, 3 * b + 100),
        (3 * b - 1, n - 1),
        (n - 1, n - 1),
    ] {
        let (range, body) = get_range(
            &s3,
            "mpobj",
            "big/object.bin",
            &format!("bytes={first}-{last}"),
        )
        .await;
        assert_eq!(range, Some(format!("bytes {first}-{last}/{n}")));
        assert!(body == whole[first..=last], "bytes {first}-{last} differ");
    }
    let (range, body) = get_range(&s3, "mpobj", "big/object.bin", "bytes=-1300").await;
    assert_eq!(range, Some(format!("bytes {}-{}/{n}", n - 1300, n - 1)));
    assert!(body == whole[n - 1300..]);

    // partNumber=N reads part N alone and says how many parts there are.
    let part2 = s3
        .get_object()
        .bucket("mpobj")
        .key("big/object.bin")
        .part_number(2)
        .send()
        .await
        .expect("get part 2");
    assert_eq!(part2.parts_count(), Some(4));
    assert_eq!(
        part2.content_range(),
        Some(format!("bytes {b}-{}/{n}", 2 * b - 1).as_str())
    );
    let body = part2.body.collect().await.expect("body").into_bytes();
    assert!(body.as_ref() == parts[1].as_slice());
    let err = s3
        .get_object()
        .bucket("mpobj")
        .key("big/object.bin")
        .part_number(5)
        .send()
        .await
        .expect_err("no part 5");
    assert_eq!(code(&err), "InvalidPartNumber");
    assert_eq!(status(&err), 416);
}

#[tokio::test]
async fn parts_are_replaced_and_completion_follows_s3_rules() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("rules")
        .send()
        .await
        .expect("create bucket");
    let id = create(&s3, "rules", "k").await;

    // Part numbers outside 1..=10000.
    for bad in [0, 10_001] {
        let err = s3
            .upload_part()
            .bucket("rules")
            .key("k")
            .upload_id(&id)
            .part_number(bad)
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("bad part number");
        assert_eq!(code(&err), "InvalidArgument", "part {bad}");
        assert_eq!(status(&err), 400);
    }

    // Re-uploading a part number replaces the part.
    let first = upload_part(&s3, "rules", "k", &id, 1, &data(MIN_PART, 10)).await;
    let p1 = data(MIN_PART, 11);
    let e1 = upload_part(&s3, "rules", "k", &id, 1, &p1).await;
    assert_ne!(first, e1);
    let small = b"small part".to_vec();
    let e2 = upload_part(&s3, "rules", "k", &id, 2, &small).await;
    let p3 = b"last".to_vec();
    let e3 = upload_part(&s3, "rules", "k", &id, 3, &p3).await;
    let listed = s3
        .list_parts()
        .bucket("rules")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let got: Vec<(i32, i64, String)> = listed
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number().unwrap_or(0),
                p.size().unwrap_or(0),
                p.e_tag().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, MIN_PART as i64, e1.clone()),
            (2, small.len() as i64, e2.clone()),
            (3, 4, e3.clone())
        ]
    );

    // The replaced part's ETag, an unknown part, a wrong order, a duplicate, a small part
    // that is not the last.
    fails(
        complete(&s3, "rules", "k", &id, &[(1, &first)]).await,
        "InvalidPart",
        400,
    );
    fails(
        complete(&s3, "rules", "k", &id, &[(1, &e1), (4, &e3)]).await,
        "InvalidPart",
        400,
    );
    fails(
        complete(&s3, "rules", "k", &id, &[(3, &e3), (1, &e1)]).await,
        "InvalidPartOrder",
        400,
    );
    fails(
        complete(&s3, "rules", "k", &id, &[(1, &e1), (1, &e1)]).await,
        "InvalidPartOrder",
        400,
    );
    fails(
        complete(&s3, "rules", "k", &id, &[(1, &e1), (2, &e2), (3, &e3)]).await,
        "EntityTooSmall",
        400,
    );
    fails(
        complete(&s3, "rules", "k", &id, &[] as &[(i32, &str)]).await,
        "MalformedXML",
        400,
    );
    fails(
        complete(&s3, "rules", "other-key", &id, &[(1, &e1)]).await,
        "NoSuchUpload",
        404,
    );
    fails(
        complete(&s3, "rules", "k", "no-such-upload", &[(1, &e1)]).await,
        "NoSuchUpload",
        404,
    );

    // A refused completion leaves the upload as it was: a valid subset completes.
    let done = complete(&s3, "rules", "k", &id, &[(1, &e1), (3, &e3)])
        .await
        .expect("complete");
    let etag = multipart_etag(&[&p1, &p3]);
    assert_eq!(done.e_tag(), Some(etag.as_str()));
    assert!(get(&s3, "rules", "k").await == [p1.as_slice(), p3.as_slice()].concat());
    // Completing again with the same list answers the same (as S3 does); another list finds
    // no upload, and so does everything else.
    let again = complete(&s3, "rules", "k", &id, &[(1, &e1), (3, &e3)])
        .await
        .expect("complete again");
    assert_eq!(again.e_tag(), Some(etag.as_str()));
    fails(
        complete(&s3, "rules", "k", &id, &[(1, &e1)]).await,
        "NoSuchUpload",
        404,
    );
    let err = s3
        .list_parts()
        .bucket("rules")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&err), "NoSuchUpload");

    // Abort: the upload is gone for UploadPart, Complete, ListParts and Abort.
    let id = create(&s3, "rules", "aborted").await;
    let ea = upload_part(&s3, "rules", "aborted", &id, 1, b"abc").await;
    s3.abort_multipart_upload()
        .bucket("rules")
        .key("aborted")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    let err = s3
        .upload_part()
        .bucket("rules")
        .key("aborted")
        .upload_id(&id)
        .part_number(2)
        .body(b"late".to_vec().into())
        .send()
        .await
        .expect_err("upload after abort");
    assert_eq!(code(&err), "NoSuchUpload");
    assert_eq!(status(&err), 404);
    fails(
        complete(&s3, "rules", "aborted", &id, &[(1, &ea)]).await,
        "NoSuchUpload",
        404,
    );
    let err = s3
        .abort_multipart_upload()
        .bucket("rules")
        .key("aborted")
        .upload_id(&id)
        .send()
        .await
        .expect_err("abort twice");
    assert_eq!(code(&err), "NoSuchUpload");
    let err = s3
        .head_object()
        .bucket("rules")
        .key("aborted")
        .send()
        .await
        .expect_err("no object");
    assert_eq!(status(&err), 404);
    // An upload in a bucket that does not exist.
    let err = s3
        .create_multipart_upload()
        .bucket("nope")
        .key("k")
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(code(&err), "NoSuchBucket");
}

#[tokio::test]
async fn list_parts_and_uploads_page_with_markers_prefixes_and_delimiters() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("lists")
        .send()
        .await
        .expect("create bucket");

    let id = create(&s3, "lists", "parts").await;
    for n in [1, 2, 3, 5, 8] {
        upload_part(
            &s3,
            "lists",
            "parts",
            &id,
            n,
            &data(10 + n as usize, n as u64),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3
            .list_parts()
            .bucket("lists")
            .key("parts")
            .upload_id(&id)
            .max_parts(2)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .expect("list parts");
        assert!(page.parts().len() <= 2);
        for p in page.parts() {
            let n = p.part_number().unwrap_or(0);
            assert_eq!(p.size(), Some(10 + i64::from(n)));
            assert_eq!(
                p.e_tag(),
                Some(format!("\"{}\"", md5_hex(&data(10 + n as usize, n as u64))).as_str())
            );
            seen.push(n);
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_string);
    }
    assert_eq!(seen, vec![1, 2, 3, 5, 8]);

    // Uploads: two of "a" (in creation order), two under "dir/", one of "z".
    let a1 = create(&s3, "lists", "a").await;
    let c = create(&s3, "lists", "dir/c").await;
    let a2 = create(&s3, "lists", "a").await;
    let d = create(&s3, "lists", "dir/d").await;
    let z = create(&s3, "lists", "z").await;
    let all = s3
        .list_multipart_uploads()
        .bucket("lists")
        .send()
        .await
        .expect("list uploads");
    let got: Vec<(String, String)> = all
        .uploads()
        .iter()
        .map(|u| {
            (
                u.key().unwrap_or("").to_string(),
                u.upload_id().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("a", &a1),
        ("a", &a2),
        ("dir/c", &c),
        ("dir/d", &d),
        ("parts", &id),
        ("z", &z),
    ]
    .into_iter()
    .map(|(k, i)| (k.to_string(), i.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(all.uploads().iter().all(|u| u.initiated().is_some()));

    let dir = s3
        .list_multipart_uploads()
        .bucket("lists")
        .prefix("dir/")
        .send()
        .await
        .expect("prefix");
    assert_eq!(
        dir.uploads()
            .iter()
            .filter_map(|u| u.key())
            .collect::<Vec<_>>(),
        vec!["dir/c", "dir/d"]
    );
    let rolled = s3
        .list_multipart_uploads()
        .bucket("lists")
        .delimiter("/")
        .send()
        .await
        .expect("delimiter");
    assert_eq!(
        rolled
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect::<Vec<_>>(),
        vec!["dir/"]
    );
    assert_eq!(rolled.uploads().len(), 4);

    // Pages of two with the key and upload-id markers.
    let mut pages = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_multipart_uploads()
            .bucket("lists")
            .delimiter("/")
            .max_uploads(2)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .expect("page");
        let mut names: Vec<String> = page
            .uploads()
            .iter()
            .filter_map(|u| u.key())
            .map(str::to_string)
            .collect();
        names.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix())
                .map(str::to_string),
        );
        pages.push(names);
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(
        pages,
        vec![vec!["a", "a"], vec!["parts", "dir/"], vec!["z"]]
    );
    let after_a1 = s3
        .list_multipart_uploads()
        .bucket("lists")
        .key_marker("a")
        .upload_id_marker(&a1)
        .send()
        .await
        .expect("after a1");
    assert_eq!(
        after_a1.uploads().first().and_then(|u| u.upload_id()),
        Some(a2.as_str())
    );

    // Ended uploads leave the listing.
    s3.abort_multipart_upload()
        .bucket("lists")
        .key("z")
        .upload_id(&z)
        .send()
        .await
        .expect("abort");
    let left = s3
        .list_multipart_uploads()
        .bucket("lists")
        .prefix("z")
        .send()
        .await
        .expect("list");
    assert!(left.uploads().is_empty());

    // A bucket whose only content is uploads in progress can be deleted (as in S3); the
    // uploads go with it.
    s3.delete_bucket()
        .bucket("lists")
        .send()
        .await
        .expect("delete bucket with uploads");
    s3.create_bucket()
        .bucket("lists")
        .send()
        .await
        .expect("create again");
    let fresh = s3
        .list_multipart_uploads()
        .bucket("lists")
        .send()
        .await
        .expect("list");
    assert!(fresh.uploads().is_empty());
    let err = s3
        .list_parts()
        .bucket("lists")
        .key("parts")
        .upload_id(&id)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(code(&err), "NoSuchUpload");
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

#[tokio::test]
async fn unused_replaced_and_aborted_parts_lose_their_shards_after_the_grace() {
    // One disk: one shard file per part.
    let server = Server::start_with_env(1, &[("CAIRN_SHARD_DELETE_GRACE", "2")]);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("gcparts")
        .send()
        .await
        .expect("create bucket");
    let id = create(&s3, "gcparts", "k").await;
    let p1 = data(MIN_PART, 1);
    let e1 = upload_part(&s3, "gcparts", "k", &id, 1, &p1).await;
    upload_part(&s3, "gcparts", "k", &id, 2, &data(100, 2)).await;
    upload_part(&s3, "gcparts", "k", &id, 2, &data(100, 3)).await; // replaces the first part 2
    let p3 = data(100, 4);
    let e3 = upload_part(&s3, "gcparts", "k", &id, 3, &p3).await;
    upload_part(&s3, "gcparts", "k", &id, 4, &data(100, 5)).await;
    // Parts 2 and 4 are left out.
    complete(&s3, "gcparts", "k", &id, &[(1, &e1), (3, &e3)])
        .await
        .expect("complete");
    // Only the object's two parts keep their shards.
    assert_eq!(
        wait_for_shard_count(&server, 2).await,
        2,
        "{:?}",
        server.shard_files()
    );
    assert!(get(&s3, "gcparts", "k").await == [p1.as_slice(), p3.as_slice()].concat());

    // An aborted upload's parts go too.
    let id = create(&s3, "gcparts", "aborted").await;
    upload_part(&s3, "gcparts", "aborted", &id, 1, &data(100, 6)).await;
    upload_part(&s3, "gcparts", "aborted", &id, 2, &data(100, 7)).await;
    assert_eq!(server.shard_files().len(), 4);
    s3.abort_multipart_upload()
        .bucket("gcparts")
        .key("aborted")
        .upload_id(&id)
        .send()
        .await
        .expect("abort");
    assert_eq!(wait_for_shard_count(&server, 2).await, 2);

    // Overwriting a multipart object frees all of its parts' shards, and so does a DELETE.
    // (The new body is larger than the inline limit, so it has a shard of its own.)
    put(&s3, "gcparts", "k", data(20_000, 8)).await;
    assert_eq!(wait_for_shard_count(&server, 1).await, 1);
    s3.delete_object()
        .bucket("gcparts")
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(wait_for_shard_count(&server, 0).await, 0);
}

/// 200 MiB in ten 20 MiB parts: bit-exact by MD5, and the server's peak memory grows by far
/// less than the object.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_multipart_upload_streams_with_bounded_server_memory() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("large")
        .send()
        .await
        .expect("create bucket");
    let before = peak_rss_kib(server.pid());
    let id = create(&s3, "large", "big").await;
    let part_size = 20 * MIB;
    let mut whole = Md5::new();
    let mut part_md5s = Vec::new();
    let mut list = Vec::new();
    for n in 1..=10 {
        let body = data(part_size, 100 + n as u64);
        whole.update(&body);
        part_md5s.push(Md5::digest(&body));
        let etag = upload_part(&s3, "large", "big", &id, n, &body).await;
        list.push((n, etag));
    }
    let list_refs: Vec<(i32, &str)> = list.iter().map(|(n, e)| (*n, e.as_str())).collect();
    let done = complete(&s3, "large", "big", &id, &list_refs)
        .await
        .expect("complete");
    let mut etag = Md5::new();
    for m in &part_md5s {
        etag.update(m);
    }
    assert_eq!(
        done.e_tag(),
        Some(format!("\"{}-10\"", hex::encode(etag.finalize())).as_str())
    );

    let mut reply = s3
        .get_object()
        .bucket("large")
        .key("big")
        .send()
        .await
        .expect("get");
    let mut got = Md5::new();
    let mut len = 0usize;
    while let Some(chunk) = reply.body.try_next().await.expect("body chunk") {
        len += chunk.len();
        got.update(&chunk);
    }
    assert_eq!(len, 10 * part_size);
    assert_eq!(
        got.finalize(),
        whole.finalize(),
        "the object read back differs"
    );
    let after = peak_rss_kib(server.pid());
    eprintln!(
        "server peak RSS: {before} KiB before, {after} KiB after a 200 MiB multipart upload + GET"
    );
    assert!(
        after < before + 100 * 1024,
        "server peak RSS grew from {before} KiB to {after} KiB for a 200 MiB object"
    );
}

#[tokio::test]
async fn upload_part_copy_takes_whole_objects_and_ranges() {
    let server = Server::start(4);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("copies")
        .send()
        .await
        .expect("create bucket");
    let source = data(MIN_PART + 3 * MIB + 5, 42);
    put(&s3, "copies", "src", source.clone()).await;
    let small = data(2 * MIB + 1, 43);
    put(&s3, "copies", "small/src", small.clone()).await;
    let id = create(&s3, "copies", "dst").await;

    let copy = |n: i32, from: &'static str, range: Option<String>| {
        s3.upload_part_copy()
            .bucket("copies")
            .key("dst")
            .upload_id(&id)
            .part_number(n)
            .copy_source(from)
            .set_copy_source_range(range)
            .send()
    };
    let first = copy(1, "copies/src", Some(format!("bytes=0-{}", MIN_PART - 1)))
        .await
        .expect("copy a range");
    let e1 = first
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    assert_eq!(e1, format!("\"{}\"", md5_hex(&source[..MIN_PART])));
    let second = copy(2, "copies/src", None)
        .await
        .expect("copy a whole object");
    let e2 = second
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    assert_eq!(e2, format!("\"{}\"", md5_hex(&source)));
    // A key that needs escaping in x-amz-copy-source, and a plain part after the copies.
    let third = copy(3, "copies/small%2Fsrc", Some("bytes=1-1000".into()))
        .await
        .expect("copy");
    let e3 = third
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    assert_eq!(e3, format!("\"{}\"", md5_hex(&small[1..=1000])));
    complete(&s3, "copies", "dst", &id, &[(1, &e1), (2, &e2), (3, &e3)])
        .await
        .expect("complete");
    let want = [&source[..MIN_PART], &source[..], &small[1..=1000]].concat();
    assert!(
        get(&s3, "copies", "dst").await == want,
        "copied object differs"
    );

    // Errors: a range outside the source, a missing source, a failed copy condition.
    let id = create(&s3, "copies", "dst2").await;
    let err = s3
        .upload_part_copy()
        .bucket("copies")
        .key("dst2")
        .upload_id(&id)
        .part_number(1)
        .copy_source("copies/src")
        .copy_source_range(format!("bytes=0-{}", source.len()))
        .send()
        .await
        .expect_err("range past the end");
    assert_eq!(code(&err), "InvalidArgument");
    let err = s3
        .upload_part_copy()
        .bucket("copies")
        .key("dst2")
        .upload_id(&id)
        .part_number(1)
        .copy_source("copies/missing")
        .send()
        .await
        .expect_err("no source");
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
    let err = s3
        .upload_part_copy()
        .bucket("copies")
        .key("dst2")
        .upload_id(&id)
        .part_number(1)
        .copy_source("copies/src")
        .copy_source_if_match("\"0123\"")
        .send()
        .await
        .expect_err("if-match fails");
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    let listed = s3
        .list_parts()
        .bucket("copies")
        .key("dst2")
        .upload_id(&id)
        .send()
        .await
        .expect("parts");
    assert!(listed.parts().is_empty(), "a refused copy stored a part");
}
