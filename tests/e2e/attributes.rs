//! GetBucketLocation (us-east-1 and another configured region) and GetObjectAttributes
//! against the real binary.

use aws_sdk_s3::config::Region;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use md5::{Digest, Md5};

use crate::harness::*;

const MIB: usize = 1 << 20;

#[tokio::test]
async fn bucket_location_and_object_attributes() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("attrs")
        .send()
        .await
        .expect("create bucket");
    // us-east-1 is the empty LocationConstraint.
    let loc = s3
        .get_bucket_location()
        .bucket("attrs")
        .send()
        .await
        .expect("location");
    assert_eq!(loc.location_constraint().map_or("", |c| c.as_str()), "");
    let err = s3
        .get_bucket_location()
        .bucket("nobucket")
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(code(&err), "NoSuchBucket");

    let body = data(1234, 1);
    put(&s3, "attrs", "single", body.clone()).await;
    let out = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    // S3 sends this one ETag unquoted (every other ETag is quoted).
    assert_eq!(out.e_tag(), Some(hex::encode(Md5::digest(&body)).as_str()));
    assert_eq!(out.object_size(), Some(1234));
    assert_eq!(out.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert!(out.object_parts().is_none());
    assert!(out.last_modified().is_some());
    // Only what was asked for.
    let out = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("attributes");
    assert_eq!(out.e_tag(), None);
    assert_eq!(out.object_size(), Some(1234));

    // A multipart object lists its parts, paged.
    let id = s3
        .create_multipart_upload()
        .bucket("attrs")
        .key("multi")
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("id")
        .to_string();
    let mut parts = Vec::new();
    for (n, size) in [(1, 5 * MIB), (2, 5 * MIB), (3, 17)] {
        let etag = s3
            .upload_part()
            .bucket("attrs")
            .key("multi")
            .upload_id(&id)
            .part_number(n)
            .body(data(size, n as u64).into())
            .send()
            .await
            .expect("part")
            .e_tag()
            .expect("etag")
            .to_string();
        parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    s3.complete_multipart_upload()
        .bucket("attrs")
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
    let out = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .max_parts(2)
        .send()
        .await
        .expect("attributes");
    assert_eq!(out.object_size(), Some((10 * MIB + 17) as i64));
    let page = out.object_parts().expect("ObjectParts");
    assert_eq!(page.total_parts_count(), Some(3));
    assert_eq!(page.is_truncated(), Some(true));
    let sizes: Vec<_> = page
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(
        sizes,
        vec![
            (Some(1), Some(5 * MIB as i64)),
            (Some(2), Some(5 * MIB as i64))
        ]
    );
    let rest = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .object_attributes(ObjectAttributes::ObjectParts)
        .part_number_marker(
            page.next_part_number_marker()
                .expect("next marker")
                .to_string(),
        )
        .send()
        .await
        .expect("second page");
    let page = rest.object_parts().expect("ObjectParts");
    assert_eq!(page.is_truncated(), Some(false));
    let sizes: Vec<_> = page
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(sizes, vec![(Some(3), Some(17))]);

    let err = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("missing")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .expect_err("missing key");
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
}

#[tokio::test]
async fn object_attributes_name_the_version_they_describe() {
    use aws_sdk_s3::types::BucketVersioningStatus;
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("vattrs")
        .send()
        .await
        .expect("create");
    put(&s3, "vattrs", "plain", b"p".to_vec()).await;
    let attrs = |key: &'static str, version: Option<String>| {
        s3.get_object_attributes()
            .bucket("vattrs")
            .key(key)
            .set_version_id(version)
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
    };
    let unversioned = attrs("plain", None).await.expect("attributes");
    assert_eq!(unversioned.version_id(), None, "never-versioned: no id");
    crate::versioning::set_versioning(&s3, "vattrs", BucketVersioningStatus::Enabled).await;
    let put_version = |body: &'static [u8]| {
        s3.put_object()
            .bucket("vattrs")
            .key("obj")
            .body(body.to_vec().into())
            .send()
    };
    let first = put_version(b"one").await.expect("put one");
    let second = put_version(b"two!").await.expect("put two");
    let current = attrs("obj", None).await.expect("current");
    assert_eq!(current.version_id(), second.version_id());
    assert_eq!(current.object_size(), Some(4));
    let old = attrs("obj", first.version_id().map(str::to_string))
        .await
        .expect("first version");
    assert_eq!(old.version_id(), first.version_id());
    assert_eq!(old.object_size(), Some(3));
}

#[tokio::test]
async fn bucket_location_names_a_configured_region() {
    let server = Server::start_with_env(1, &[("CAIRN_REGION", "eu-west-3")]);
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(Region::new("eu-west-3"))
        .endpoint_url(&server.endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "e2e",
        ))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    s3.create_bucket()
        .bucket("paris")
        .send()
        .await
        .expect("create bucket");
    let loc = s3
        .get_bucket_location()
        .bucket("paris")
        .send()
        .await
        .expect("location");
    assert_eq!(
        loc.location_constraint(),
        Some(&BucketLocationConstraint::EuWest3)
    );
}

/// A flexible checksum sent with a PUT is kept: GET and HEAD with checksum mode return it for
/// whole-object reads (not for ranges), GetObjectAttributes names it, and a copy keeps it.
#[tokio::test]
async fn put_checksums_are_stored_and_returned() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
    use base64::Engine as _;
    use sha2::Digest as _;

    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("sums")
        .send()
        .await
        .expect("create bucket");
    let body = data(300_000, 9);
    let want = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
    let put = s3
        .put_object()
        .bucket("sums")
        .key("obj")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(body.clone().into())
        .send()
        .await
        .expect("put with sha256");
    assert_eq!(put.checksum_sha256(), Some(want.as_str()));

    let got = s3
        .get_object()
        .bucket("sums")
        .key("obj")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get with checksum mode");
    assert_eq!(got.checksum_sha256(), Some(want.as_str()));
    assert_eq!(got.body.collect().await.expect("body").to_vec(), body);
    let head = s3
        .head_object()
        .bucket("sums")
        .key("obj")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_sha256(), Some(want.as_str()));
    let ranged = s3
        .get_object()
        .bucket("sums")
        .key("obj")
        .range("bytes=0-99")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("ranged get");
    assert_eq!(
        ranged.checksum_sha256(),
        None,
        "no whole-object checksum for a range"
    );

    let attrs = s3
        .get_object_attributes()
        .bucket("sums")
        .key("obj")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("attributes");
    assert_eq!(
        attrs.checksum().and_then(|c| c.checksum_sha256()),
        Some(want.as_str())
    );

    s3.copy_object()
        .bucket("sums")
        .key("copy")
        .copy_source("sums/obj")
        .send()
        .await
        .expect("copy");
    let copy = s3
        .head_object()
        .bucket("sums")
        .key("copy")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head copy");
    assert_eq!(copy.checksum_sha256(), Some(want.as_str()));
}
