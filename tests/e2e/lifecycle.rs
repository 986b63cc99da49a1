//! Bucket lifecycle end to end with aws-sdk-s3: configurations stored and given back as
//! written, S3's checks on them, the `x-amz-expiration` header, and the meta service's
//! scanner really expiring current versions, noncurrent versions, lone delete markers and
//! incomplete multipart uploads, by prefix and by tag, never touching a locked version.
//!
//! The server runs with a lifecycle "day" of 2 s and a scan every second
//! (`CAIRN_LIFECYCLE_DAY_SECS`, `CAIRN_LIFECYCLE_INTERVAL`), so that expiration can be
//! watched; the header keeps real days. One server for the whole file.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockLegalHoldStatus, Tag, Transition,
    TransitionStorageClass, VersioningConfiguration,
};
use aws_sdk_s3::Client;

use crate::harness::*;

/// Long enough for a few 2 s days and 1 s scans on a loaded machine.
const WAIT: Duration = Duration::from_secs(40);

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

fn expire_after(days: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(days).build()
}

async fn set_rules(s3: &Client, bucket: &str, rules: Vec<LifecycleRule>) -> Result<(), String> {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .expect("config"),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

async fn exists(s3: &Client, bucket: &str, key: &str) -> bool {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => true,
        Err(e) if status(&e) == 404 => false,
        Err(e) => panic!("head {bucket}/{key}: {e:?}"),
    }
}

/// Every (key, version id, is a delete marker) of `bucket`.
async fn versions(s3: &Client, bucket: &str) -> Vec<(String, String, bool)> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("list versions");
    let mut all: Vec<(String, String, bool)> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap_or("").to_string(),
                v.version_id().unwrap_or("").to_string(),
                false,
            )
        })
        .chain(out.delete_markers().iter().map(|m| {
            (
                m.key().unwrap_or("").to_string(),
                m.version_id().unwrap_or("").to_string(),
                true,
            )
        }))
        .collect();
    all.sort();
    all
}

/// Polls `check` until it holds or [`WAIT`] runs out; says whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

async fn enable_versioning(s3: &Client, bucket: &str) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

#[tokio::test]
async fn lifecycle_end_to_end() {
    let server = Server::start_with_env(
        4,
        &[
            ("CAIRN_LIFECYCLE_DAY_SECS", "2"),
            ("CAIRN_LIFECYCLE_INTERVAL", "1"),
        ],
    );
    let s3 = server.client();
    s3.create_bucket()
        .bucket("lcb")
        .send()
        .await
        .expect("create");

    // --- Configuration: none, checks, round trip, removal ---
    let err = s3
        .get_bucket_lifecycle_configuration()
        .bucket("lcb")
        .send()
        .await
        .expect_err("no configuration yet");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (404, "NoSuchLifecycleConfiguration")
    );
    let long_id = "x".repeat(256);
    for (bad, expected) in [
        (
            rule(&long_id, "").expiration(expire_after(1)).build(),
            "400 InvalidArgument",
        ),
        (
            rule("zero", "").expiration(expire_after(0)).build(),
            "400 InvalidArgument",
        ),
        (rule("none", "").build(), "400 InvalidRequest"),
        (
            rule("glacier", "")
                .transitions(
                    Transition::builder()
                        .days(1)
                        .storage_class(TransitionStorageClass::Glacier)
                        .build(),
                )
                .build(),
            "400 InvalidStorageClass",
        ),
        (
            LifecycleRule::builder()
                .id("status")
                .status(ExpirationStatus::from("enabled"))
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(expire_after(1))
                .build(),
            "400 MalformedXML",
        ),
    ] {
        let bad = bad.expect("rule");
        assert_eq!(
            set_rules(&s3, "lcb", vec![bad]).await,
            Err(expected.to_string())
        );
    }
    let same = rule("same", "a/")
        .expiration(expire_after(1))
        .build()
        .expect("rule");
    assert_eq!(
        set_rules(&s3, "lcb", vec![same.clone(), same]).await,
        Err("400 InvalidArgument".into())
    );
    let written = vec![
        rule("tmp", "tmp/")
            .expiration(expire_after(1))
            .build()
            .expect("rule"),
        LifecycleRule::builder()
            .id("tagged")
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .tag(
                        Tag::builder()
                            .key("expire")
                            .value("yes")
                            .build()
                            .expect("tag"),
                    )
                    .build(),
            )
            .expiration(expire_after(1))
            .build()
            .expect("rule"),
        rule("uploads", "")
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(1)
                    .build(),
            )
            .build()
            .expect("rule"),
        rule("header-only", "real/")
            .expiration(expire_after(30))
            .build()
            .expect("rule"),
    ];
    set_rules(&s3, "lcb", written.clone())
        .await
        .expect("put rules");
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("lcb")
        .send()
        .await
        .expect("get rules");
    assert_eq!(
        got.rules(),
        written.as_slice(),
        "the rules come back as written"
    );

    // --- x-amz-expiration: real days, rounded up to midnight UTC ---
    let written_put = s3
        .put_object()
        .bucket("lcb")
        .key("real/a")
        .body(b"a".to_vec().into())
        .send()
        .await
        .expect("put");
    let header = written_put
        .expiration()
        .expect("an x-amz-expiration header")
        .to_string();
    assert!(header.contains("rule-id=\"header-only\""), "{header}");
    assert!(header.contains("00:00:00 GMT"), "{header}");
    let head = s3
        .head_object()
        .bucket("lcb")
        .key("real/a")
        .send()
        .await
        .expect("head");
    assert_eq!(head.expiration(), Some(header.as_str()));
    let untouched = s3
        .put_object()
        .bucket("lcb")
        .key("keep/a")
        .body(b"k".to_vec().into())
        .send()
        .await
        .expect("put");
    assert_eq!(untouched.expiration(), None);

    // --- Expiration by prefix and by tag; other keys stay ---
    put(&s3, "lcb", "tmp/gone", b"t".to_vec()).await;
    s3.put_object()
        .bucket("lcb")
        .key("tagged")
        .tagging("expire=yes")
        .body(b"t".to_vec().into())
        .send()
        .await
        .expect("put tagged");
    put(&s3, "lcb", "untagged", b"u".to_vec()).await;
    let upload = s3
        .create_multipart_upload()
        .bucket("lcb")
        .key("keep/upload")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("id").to_string();
    assert!(
        eventually(|| async {
            !exists(&s3, "lcb", "tmp/gone").await && !exists(&s3, "lcb", "tagged").await
        })
        .await,
        "expired by prefix and by tag"
    );
    assert!(
        eventually(|| async {
            let uploads = s3
                .list_multipart_uploads()
                .bucket("lcb")
                .send()
                .await
                .expect("list uploads");
            uploads
                .uploads()
                .iter()
                .all(|u| u.upload_id() != Some(upload_id.as_str()))
        })
        .await,
        "the incomplete upload was aborted"
    );
    for key in ["untagged", "keep/a", "real/a"] {
        assert!(
            exists(&s3, "lcb", key).await,
            "{key} is out of every rule's reach"
        );
    }
    s3.delete_bucket_lifecycle()
        .bucket("lcb")
        .send()
        .await
        .expect("delete rules");
    let err = s3
        .get_bucket_lifecycle_configuration()
        .bucket("lcb")
        .send()
        .await
        .expect_err("removed");
    assert_eq!(code(&err), "NoSuchLifecycleConfiguration");
    let written_put = s3
        .put_object()
        .bucket("lcb")
        .key("real/b")
        .body(b"b".to_vec().into())
        .send()
        .await
        .expect("put");
    assert_eq!(written_put.expiration(), None, "no rules, no header");

    // --- A versioned bucket: marker, then the noncurrent versions, then the lone marker ---
    s3.create_bucket()
        .bucket("lcv")
        .send()
        .await
        .expect("create");
    enable_versioning(&s3, "lcv").await;
    put(&s3, "lcv", "k", b"one".to_vec()).await;
    put(&s3, "lcv", "k", b"two".to_vec()).await;
    set_rules(
        &s3,
        "lcv",
        vec![rule("all", "")
            .expiration(expire_after(1))
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(1)
                    .build(),
            )
            .build()
            .expect("rule")],
    )
    .await
    .expect("put rules");
    assert!(
        eventually(|| async { versions(&s3, "lcv").await.is_empty() }).await,
        "every version and the marker expired: {:?}",
        versions(&s3, "lcv").await
    );

    // --- Locked versions outlive the rules ---
    s3.create_bucket()
        .bucket("lcl")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create lock bucket");
    s3.put_object()
        .bucket("lcl")
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"held".to_vec().into())
        .send()
        .await
        .expect("put held");
    put(&s3, "lcl", "held", b"newer".to_vec()).await;
    set_rules(
        &s3,
        "lcl",
        vec![rule("all", "")
            .expiration(expire_after(1))
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(1)
                    .build(),
            )
            .build()
            .expect("rule")],
    )
    .await
    .expect("put rules");
    // The current version expires into a marker; the held one stays, noncurrent.
    assert!(
        eventually(|| async {
            let v = versions(&s3, "lcl").await;
            v.len() == 2 && v.iter().any(|(_, _, marker)| *marker)
        })
        .await,
        "marker added, newer version removed: {:?}",
        versions(&s3, "lcl").await
    );
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let left = versions(&s3, "lcl").await;
    assert!(
        left.iter().any(|(key, _, marker)| key == "held" && !marker),
        "the held version is still there {}s later: {left:?}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            - started
    );
}
