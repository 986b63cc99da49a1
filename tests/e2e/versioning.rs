//! S3 bucket versioning end to end: version ids, reads by id, delete markers (404 / 405 with
//! `x-amz-delete-marker`), suspended `null` semantics, ListObjectVersions paging,
//! DeleteObjects by version, bucket deletion, and versions surviving overwrites, shard
//! deletion, garbage collection and a restart. One server for the whole file.

use std::time::{Duration, Instant};

use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;

use crate::harness::*;

/// A PUT that returns the new version's id (`None` when the response has none).
async fn put_v(s3: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"))
        .version_id()
        .map(str::to_string)
}

async fn get_v(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}?versionId={version}: {e:?}"));
    assert_eq!(out.version_id(), Some(version), "x-amz-version-id");
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Sets the versioning state of `bucket` (also used by other test files).
pub(crate) async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put bucket versioning");
}

/// One listed version: (key, version id, is latest, is a delete marker).
type Listed = (String, String, bool, bool);

/// Every version of a bucket, `page` at a time, in the listing's order.
async fn all_versions(s3: &Client, bucket: &str, prefix: &str, page: i32) -> Vec<Listed> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    for _ in 0..1000 {
        let resp = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list versions");
        let n = resp.versions().len() + resp.delete_markers().len();
        assert!(n <= page as usize, "{n} entries in a page of {page}");
        let mut entries: Vec<Listed> = Vec::new();
        for v in resp.versions() {
            let listed = (
                v.key().unwrap_or_default().to_string(),
                v.version_id().unwrap_or_default().to_string(),
                v.is_latest() == Some(true),
                false,
            );
            entries.push(listed);
        }
        for m in resp.delete_markers() {
            let listed = (
                m.key().unwrap_or_default().to_string(),
                m.version_id().unwrap_or_default().to_string(),
                m.is_latest() == Some(true),
                true,
            );
            entries.push(listed);
        }
        // The SDK keeps versions and markers apart; put them back in listing order: by key,
        // the latest first, then newest (largest id) first.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(order(&b.1, &a.1)));
        out.extend(entries);
        if resp.is_truncated() != Some(true) {
            return out;
        }
        key_marker = resp.next_key_marker().map(str::to_string);
        version_marker = resp.next_version_id_marker().map(str::to_string);
        assert!(
            key_marker.is_some(),
            "a truncated page names where to resume"
        );
    }
    panic!("the listing never ended");
}

/// Orders version ids by age within a page; a `null` version that is not the latest is older
/// than every id in these tests.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a == "null", b == "null") {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

fn header<'a, E>(
    err: &'a aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
    name: &str,
) -> Option<&'a str> {
    err.raw_response().and_then(|r| r.headers().get(name))
}

async fn keys_of(s3: &Client, bucket: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn versioned_buckets_keep_every_version_with_s3_semantics() {
    let mut server = Server::start_with_env(
        4,
        &[
            ("CAIRN_SHARD_DELETE_GRACE", "1"),
            ("CAIRN_GC_GRACE", "1"),
            ("CAIRN_GC_INTERVAL", "1"),
        ],
    );
    let s3 = server.client();
    let b = "ver";
    s3.create_bucket().bucket(b).send().await.expect("create");

    // Never versioned: no status, the object is the `null` version.
    let st = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get versioning");
    assert_eq!(st.status(), None);
    let v0 = data(70_000, 100);
    assert_eq!(put_v(&s3, b, "k", &v0).await, None);

    // MFA delete is not supported; a bad status is malformed.
    let err = s3
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .mfa_delete(aws_sdk_s3::types::MfaDelete::Enabled)
                .build(),
        )
        .send()
        .await
        .expect_err("MFA delete");
    assert_eq!(code(&err), "NotImplemented");

    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let st = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(st.status(), Some(&BucketVersioningStatus::Enabled));

    // Three overwrites: three distinct ids, each readable bit-exact, and the null version too.
    let bodies: Vec<Vec<u8>> = (1..=3)
        .map(|i| data(300_000 + i * 1000, i as u64))
        .collect();
    let mut ids = Vec::new();
    for body in &bodies {
        let id = put_v(&s3, b, "k", body).await.expect("a version id");
        assert_ne!(id, "null");
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
        ids.push(id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, ids,
        "distinct ids, later ones sort after earlier ones"
    );
    for (id, body) in ids.iter().zip(&bodies) {
        assert!(get_v(&s3, b, "k", id).await == *body, "version {id}");
    }
    assert!(get_v(&s3, b, "k", "null").await == v0);
    assert!(get(&s3, b, "k").await == bodies[2]);

    // Bad and unknown ids.
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("not-an-id")
        .send()
        .await
        .expect_err("malformed id");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (400, "InvalidArgument")
    );
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("00000000000000999999")
        .send()
        .await
        .expect_err("unknown id");
    assert_eq!((status(&err), code(&err).as_str()), (404, "NoSuchVersion"));

    // Overwrites in a versioned bucket delete no shards: wait past the shard-delete and GC
    // graces (GC walks every second) and every version still reads back.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (id, body) in ids.iter().zip(&bodies) {
        assert!(
            get_v(&s3, b, "k", id).await == *body,
            "version {id} after GC"
        );
    }
    assert!(get_v(&s3, b, "k", "null").await == v0);

    // Tags and copies address versions.
    s3.put_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&ids[0])
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("old").value("1").build().expect("tag"))
                .build()
                .expect("tagging"),
        )
        .send()
        .await
        .expect("tag an old version");
    let tags = s3
        .get_object_tagging()
        .bucket(b)
        .key("k")
        .version_id(&ids[0])
        .send()
        .await
        .expect("tags of an old version");
    assert_eq!(tags.tag_set().len(), 1);
    let current = s3
        .get_object_tagging()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("tags");
    assert!(current.tag_set().is_empty());
    let copied = s3
        .copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/k?versionId={}", ids[0]))
        .send()
        .await
        .expect("copy an old version");
    assert_eq!(copied.copy_source_version_id(), Some(ids[0].as_str()));
    assert!(copied.version_id().is_some());
    assert!(get(&s3, b, "copy").await == bodies[0]);

    // DELETE adds a delete marker: GET / HEAD answer 404 with the marker header, the marker's
    // id answers 405, listings hide the key, every version is still there.
    let del = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().expect("marker id").to_string();
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!((status(&err), code(&err).as_str()), (404, "NoSuchKey"));
    assert_eq!(header(&err, "x-amz-delete-marker"), Some("true"));
    let err = s3
        .head_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(status(&err), 404);
    assert_eq!(header(&err, "x-amz-delete-marker"), Some("true"));
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect_err("a marker has no data");
    assert_eq!(status(&err), 405);
    assert_eq!(code(&err), "MethodNotAllowed");
    assert_eq!(header(&err, "x-amz-delete-marker"), Some("true"));
    let err = s3
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect_err("a marker has no data");
    assert_eq!(status(&err), 405);
    assert_eq!(keys_of(&s3, b).await, vec!["copy"]);
    let listed = all_versions(&s3, b, "k", 1000).await;
    let mut expected: Vec<Listed> = vec![("k".into(), marker.clone(), true, true)];
    for id in ids.iter().rev() {
        expected.push(("k".into(), id.clone(), false, false));
    }
    expected.push(("k".into(), "null".into(), false, false));
    assert_eq!(listed, expected);

    // Removing the marker makes the newest version current again.
    let del = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect("delete the marker");
    assert_eq!(del.delete_marker(), Some(true));
    assert!(get(&s3, b, "k").await == bodies[2]);
    assert_eq!(keys_of(&s3, b).await, vec!["copy", "k"]);

    // Removing a version for good: gone, the others stay; its shards are deleted.
    let files_before = server.shard_files().len();
    s3.delete_object()
        .bucket(b)
        .key("k")
        .version_id(&ids[1])
        .send()
        .await
        .expect("delete a version");
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&ids[1])
        .send()
        .await
        .expect_err("deleted version");
    assert_eq!(code(&err), "NoSuchVersion");
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.shard_files().len() != files_before - 4 {
        assert!(
            Instant::now() < deadline,
            "{} shard files, expected {}",
            server.shard_files().len(),
            files_before - 4
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(get_v(&s3, b, "k", &ids[0]).await == bodies[0]);
    assert!(get(&s3, b, "k").await == bodies[2]);

    // Suspended: writes are the `null` version and replace only it.
    set_versioning(&s3, b, BucketVersioningStatus::Suspended).await;
    let st = s3
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(st.status(), Some(&BucketVersioningStatus::Suspended));
    let s1 = data(5_000, 201);
    // A write of a null version answers no version id (as s3-tests and MinIO expect).
    assert_eq!(put_v(&s3, b, "k", &s1).await.as_deref(), None);
    assert!(get(&s3, b, "k").await == s1);
    assert!(get_v(&s3, b, "k", "null").await == s1);
    let listed = all_versions(&s3, b, "k", 1000).await;
    let ids_listed: Vec<&str> = listed.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(ids_listed.iter().filter(|i| **i == "null").count(), 1);
    assert_eq!(listed.len(), 3, "null, ids[2], ids[0]: {listed:?}");
    assert!(get_v(&s3, b, "k", &ids[2]).await == bodies[2]);
    // A suspended DELETE: a `null` delete marker replacing the null version.
    let del = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("suspended delete");
    assert_eq!(del.delete_marker(), Some(true));
    assert_eq!(del.version_id(), Some("null"));
    let err = s3
        .get_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&err), "NoSuchKey");
    let listed = all_versions(&s3, b, "k", 1000).await;
    let nulls: Vec<&Listed> = listed.iter().filter(|l| l.1 == "null").collect();
    assert_eq!(nulls.len(), 1, "{listed:?}");
    assert!(
        nulls[0].3 && nulls[0].2,
        "the null version is the latest, a marker"
    );
    assert_eq!(listed.len(), 3);

    // A bucket with versions or markers left cannot be deleted.
    let err = s3
        .delete_bucket()
        .bucket(b)
        .send()
        .await
        .expect_err("versions left");
    assert_eq!((status(&err), code(&err).as_str()), (409, "BucketNotEmpty"));

    // Versions survive a restart.
    server.restart();
    let s3 = server.client();
    assert!(get_v(&s3, b, "k", &ids[0]).await == bodies[0]);
    assert!(get_v(&s3, b, "k", &ids[2]).await == bodies[2]);
    // Pages of one resume after `null` and after ids.
    let after = all_versions(&s3, b, "k", 1).await;
    assert_eq!(after, listed);

    // DeleteObjects by version empties the bucket, reporting markers; then it can go.
    let mut objects = Vec::new();
    for (key, id, _, _) in all_versions(&s3, b, "", 1000).await {
        objects.push(
            ObjectIdentifier::builder()
                .key(key)
                .version_id(id)
                .build()
                .expect("identifier"),
        );
    }
    let out = s3
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .set_objects(Some(objects.clone()))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(out.deleted().len(), objects.len());
    let markers = out
        .deleted()
        .iter()
        .filter(|d| d.delete_marker() == Some(true))
        .count();
    assert_eq!(markers, 1, "the null delete marker");
    assert!(all_versions(&s3, b, "", 1000).await.is_empty());
    s3.delete_bucket()
        .bucket(b)
        .send()
        .await
        .expect("empty now");

    listing_and_batch_deletes(&s3).await;
}

/// ListObjectVersions over many versions of many keys, paged, with prefix and delimiter;
/// DeleteObjects without version ids makes markers.
async fn listing_and_batch_deletes(s3: &Client) {
    let b = "many";
    s3.create_bucket().bucket(b).send().await.expect("create");
    set_versioning(s3, b, BucketVersioningStatus::Enabled).await;
    let keys = ["a/1", "a/2", "b", "c", "d/x/1", "e", "f"];
    let mut expected: Vec<Listed> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let mut ids = Vec::new();
        for j in 0..3 {
            let body = data(100 + j, (i * 10 + j) as u64);
            ids.push(put_v(s3, b, key, &body).await.expect("id"));
        }
        for (n, id) in ids.iter().rev().enumerate() {
            expected.push((key.to_string(), id.clone(), n == 0, false));
        }
    }
    // A completed multipart upload is a version too.
    let upload = s3
        .create_multipart_upload()
        .bucket(b)
        .key("mp")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part = s3
        .upload_part()
        .bucket(b)
        .key("mp")
        .upload_id(upload_id)
        .part_number(1)
        .body(data(1000, 7).into())
        .send()
        .await
        .expect("upload part");
    let done = s3
        .complete_multipart_upload()
        .bucket(b)
        .key("mp")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mp_id = done.version_id().expect("a version id").to_string();
    assert!(get_v(s3, b, "mp", &mp_id).await == data(1000, 7));
    s3.delete_object()
        .bucket(b)
        .key("mp")
        .version_id(&mp_id)
        .send()
        .await
        .expect("remove the multipart version");
    for page in [1, 4, 7, 1000] {
        assert_eq!(
            all_versions(s3, b, "", page).await,
            expected,
            "pages of {page}"
        );
    }
    let a: Vec<Listed> = expected
        .iter()
        .filter(|l| l.0.starts_with("a/"))
        .cloned()
        .collect();
    assert_eq!(all_versions(s3, b, "a/", 2).await, a);

    let grouped = s3
        .list_object_versions()
        .bucket(b)
        .delimiter("/")
        .send()
        .await
        .expect("delimiter");
    let prefixes: Vec<&str> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/", "d/"]);
    assert_eq!(grouped.versions().len(), 4 * 3);

    // DeleteObjects: one version for good, one key to a marker.
    let out = s3
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("b")
                        .version_id(&expected[6].1)
                        .build()
                        .expect("id"),
                )
                .objects(ObjectIdentifier::builder().key("c").build().expect("id"))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let mut deleted: Vec<_> = out.deleted().to_vec();
    deleted.sort_by(|x, y| x.key().cmp(&y.key()));
    assert_eq!(deleted[0].key(), Some("b"));
    assert_eq!(deleted[0].version_id(), Some(expected[6].1.as_str()));
    assert_eq!(deleted[1].key(), Some("c"));
    assert_eq!(deleted[1].delete_marker(), Some(true));
    assert!(deleted[1].delete_marker_version_id().is_some());
    let versions_of = |key: &'static str| async move {
        all_versions(s3, b, key, 1000)
            .await
            .into_iter()
            .filter(|l| l.0 == key)
            .collect::<Vec<_>>()
    };
    let b_versions = versions_of("b").await;
    assert_eq!(b_versions.len(), 2);
    assert!(b_versions[0].2, "the newest of b is still the latest");
    let c_versions = versions_of("c").await;
    assert_eq!(c_versions.len(), 4);
    assert!(c_versions[0].2 && c_versions[0].3, "c's latest is a marker");
    assert_eq!(
        keys_of(s3, b).await,
        vec!["a/1", "a/2", "b", "d/x/1", "e", "f"]
    );
    // A prefix whose only key is deleted is not listed as a common prefix.
    s3.delete_object()
        .bucket(b)
        .key("d/x/1")
        .send()
        .await
        .expect("delete");
    let grouped = s3
        .list_objects_v2()
        .bucket(b)
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/"]);
}
