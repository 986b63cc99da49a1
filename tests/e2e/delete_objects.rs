//! DeleteObjects against the real binary: present and missing keys, quiet mode, per-key
//! errors, the 1,000-key limit, a missing bucket, and the shards of deleted objects.

use std::time::Duration;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;

use crate::harness::*;

fn ids<S: AsRef<str>>(keys: &[S]) -> Vec<ObjectIdentifier> {
    keys.iter()
        .map(|k| {
            ObjectIdentifier::builder()
                .key(k.as_ref())
                .build()
                .expect("identifier")
        })
        .collect()
}

fn delete_of(objects: Vec<ObjectIdentifier>, quiet: bool) -> Delete {
    Delete::builder()
        .set_objects(Some(objects))
        .quiet(quiet)
        .build()
        .expect("delete")
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
async fn delete_objects_reports_every_key_and_enforces_the_limit() {
    let server = Server::start_with_env(2, &[("CAIRN_SHARD_DELETE_GRACE", "1")]);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("batch")
        .send()
        .await
        .expect("create bucket");
    for i in 0..6 {
        put(&s3, "batch", &format!("k{i}"), data(100 + i, i as u64)).await;
    }
    put(&s3, "batch", "dir/odd key ü&<>", data(10, 99)).await;
    let shards_per_object = server.shard_files().len() / 7;

    // Present and missing keys: every one is reported deleted, in order.
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(
            ids(&["k0", "missing-1", "k1", "dir/odd key ü&<>", "missing-2"]),
            false,
        ))
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(
        deleted,
        vec!["k0", "missing-1", "k1", "dir/odd key ü&<>", "missing-2"]
    );
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(keys_of(&s3, "batch").await, vec!["k2", "k3", "k4", "k5"]);

    // Quiet mode: only errors are listed.
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(ids(&["k2", "k3", "gone"]), true))
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty(), "{:?}", out.deleted());
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    assert_eq!(keys_of(&s3, "batch").await, vec!["k4", "k5"]);

    // Per-key errors do not stop the others, and quiet mode still lists them. A version that
    // does not exist counts as deleted, as in S3.
    let mut objects = ids(&["k4", &"x".repeat(1025)]);
    objects.push(
        ObjectIdentifier::builder()
            .key("k5")
            .version_id("00000000000000000042")
            .build()
            .expect("identifier"),
    );
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(objects, true))
        .send()
        .await
        .expect("delete with errors");
    assert!(out.deleted().is_empty());
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or_default(), e.code().unwrap_or_default()))
        .collect();
    let long = "x".repeat(1025);
    assert_eq!(errors, vec![(long.as_str(), "KeyTooLongError")]);
    assert_eq!(keys_of(&s3, "batch").await, vec!["k5"]);

    // 1,000 keys is the limit; 1,001 is refused whole and deletes nothing.
    let mut many: Vec<String> = (0..1000).map(|i| format!("many-{i}")).collect();
    many.push("k5".into());
    let err = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(ids(&many), true))
        .send()
        .await
        .expect_err("1001 keys");
    assert_eq!(code(&err), "MalformedXML");
    assert_eq!(status(&err), 400);
    assert_eq!(keys_of(&s3, "batch").await, vec!["k5"]);
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(ids(&many[..1000]), false))
        .send()
        .await
        .expect("1000 keys");
    assert_eq!(out.deleted().len(), 1000);

    let err = s3
        .delete_objects()
        .bucket("no-such-bucket")
        .delete(delete_of(ids(&["a"]), false))
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(code(&err), "NoSuchBucket");
    assert_eq!(status(&err), 404);

    // S3 requires Content-MD5 or a flexible checksum on DeleteObjects, and checks it.
    let strip = |req: &mut aws_smithy_runtime_api::http::Request| {
        let names: Vec<String> = req
            .headers()
            .iter()
            .map(|(n, _)| n.to_string())
            .filter(|n| n.starts_with("x-amz-checksum-") || n == "content-md5")
            .collect();
        for n in names {
            req.headers_mut().remove(n);
        }
    };
    let err = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(ids(&["k5"]), false))
        .customize()
        .mutate_request(strip)
        .send()
        .await
        .expect_err("no digest");
    assert_eq!(code(&err), "InvalidRequest");
    assert_eq!(status(&err), 400);
    let err = s3
        .delete_objects()
        .bucket("batch")
        .delete(delete_of(ids(&["k5"]), false))
        .customize()
        .mutate_request(move |req| {
            strip(req);
            // MD5 of the empty string: not this body's.
            req.headers_mut()
                .insert("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==");
        })
        .send()
        .await
        .expect_err("wrong digest");
    assert_eq!(code(&err), "BadDigest");
    assert_eq!(status(&err), 400);
    assert_eq!(keys_of(&s3, "batch").await, vec!["k5"]);

    // The deleted objects' shards go after the grace; k5's stay.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.shard_files().len() > shards_per_object && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.shard_files().len(), shards_per_object);
    assert!(get(&s3, "batch", "k5").await == data(105, 5));
}
