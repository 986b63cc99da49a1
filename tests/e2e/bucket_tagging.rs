//! Bucket tagging against the real binary: Put/Get/DeleteBucketTagging, NoSuchTagSet, the
//! limits (50 tags, the object tag rules), NoSuchBucket, and tags surviving a restart.

use aws_sdk_s3::types::{Tag, Tagging};
use aws_sdk_s3::Client;

use crate::harness::*;

fn tagging(pairs: &[(String, String)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("tag"))
                .collect(),
        ))
        .build()
        .expect("tagging")
}

fn pairs(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("k{i:02}"), format!("v{i}")))
        .collect()
}

/// The bucket's tags in the order answered.
async fn bucket_tags(s3: &Client, bucket: &str) -> Vec<(String, String)> {
    s3.get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get bucket tags of {bucket}: {e:?}"))
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

#[tokio::test]
async fn bucket_tags_are_set_read_replaced_and_deleted_within_limits() {
    let mut server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("tagged")
        .send()
        .await
        .expect("create");

    // A fresh bucket has no tag set.
    let err = s3
        .get_bucket_tagging()
        .bucket("tagged")
        .send()
        .await
        .expect_err("no tag set yet");
    assert_eq!(code(&err), "NoSuchTagSet");
    assert_eq!(status(&err), 404);

    // 50 tags are allowed and come back in order.
    let fifty = pairs(50);
    s3.put_bucket_tagging()
        .bucket("tagged")
        .tagging(tagging(&fifty))
        .send()
        .await
        .expect("put 50 tags");
    assert_eq!(bucket_tags(&s3, "tagged").await, fifty);

    // 51 are not; the stored set stays.
    let err = s3
        .put_bucket_tagging()
        .bucket("tagged")
        .tagging(tagging(&pairs(51)))
        .send()
        .await
        .expect_err("51 tags");
    assert_eq!(code(&err), "InvalidTag");
    assert_eq!(status(&err), 400);
    for bad in [
        vec![("a".to_string(), "1".to_string()), ("a".into(), "2".into())],
        vec![("aws:x".to_string(), "1".to_string())],
        vec![("k".repeat(129), String::new())],
        vec![("k".to_string(), "v".repeat(257))],
        vec![("bad*".to_string(), "1".to_string())],
    ] {
        let err = s3
            .put_bucket_tagging()
            .bucket("tagged")
            .tagging(tagging(&bad))
            .send()
            .await
            .expect_err("invalid tags");
        assert_eq!(code(&err), "InvalidTag", "{bad:?}");
    }
    assert_eq!(bucket_tags(&s3, "tagged").await, fifty);

    // A put replaces the whole set.
    let two = vec![
        ("team".to_string(), "storage".to_string()),
        ("cost center".to_string(), "a/b=c".to_string()),
    ];
    s3.put_bucket_tagging()
        .bucket("tagged")
        .tagging(tagging(&two))
        .send()
        .await
        .expect("replace");
    assert_eq!(bucket_tags(&s3, "tagged").await, two);

    // Bucket tags are not object tags and do not touch objects.
    put(&s3, "tagged", "obj", b"x".to_vec()).await;
    let obj_tags = s3
        .get_object_tagging()
        .bucket("tagged")
        .key("obj")
        .send()
        .await
        .expect("object tags");
    assert!(obj_tags.tag_set().is_empty());

    // The tag set is in the bucket record: it survives a restart.
    server.restart();
    let s3 = server.client();
    assert_eq!(bucket_tags(&s3, "tagged").await, two);

    // Delete removes it (204), and deleting again is fine.
    for _ in 0..2 {
        s3.delete_bucket_tagging()
            .bucket("tagged")
            .send()
            .await
            .expect("delete tags");
    }
    let err = s3
        .get_bucket_tagging()
        .bucket("tagged")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&err), "NoSuchTagSet");
}

#[tokio::test]
async fn bucket_tagging_of_a_missing_bucket_is_no_such_bucket() {
    let server = Server::start(1);
    let s3 = server.client();
    let err = s3
        .put_bucket_tagging()
        .bucket("nope")
        .tagging(tagging(&pairs(1)))
        .send()
        .await
        .expect_err("put");
    assert_eq!(code(&err), "NoSuchBucket");
    assert_eq!(status(&err), 404);
    let err = s3
        .get_bucket_tagging()
        .bucket("nope")
        .send()
        .await
        .expect_err("get");
    assert_eq!(code(&err), "NoSuchBucket");
    let err = s3
        .delete_bucket_tagging()
        .bucket("nope")
        .send()
        .await
        .expect_err("delete");
    assert_eq!(code(&err), "NoSuchBucket");

    // A bucket deleted and created again starts without tags.
    s3.create_bucket()
        .bucket("again")
        .send()
        .await
        .expect("create");
    s3.put_bucket_tagging()
        .bucket("again")
        .tagging(tagging(&pairs(3)))
        .send()
        .await
        .expect("put");
    s3.delete_bucket()
        .bucket("again")
        .send()
        .await
        .expect("delete bucket");
    s3.create_bucket()
        .bucket("again")
        .send()
        .await
        .expect("recreate");
    let err = s3
        .get_bucket_tagging()
        .bucket("again")
        .send()
        .await
        .expect_err("fresh bucket");
    assert_eq!(code(&err), "NoSuchTagSet");
}
