//! Object Lock (WORM) end to end with aws-sdk-s3: buckets created with Object Lock (and so
//! versioned for good), default retention, per-object retention in both modes, legal holds,
//! locks given at PutObject, CopyObject and CreateMultipartUpload, every refusal S3 makes
//! (403 AccessDenied, 400 InvalidRequest / MalformedXML / InvalidRetentionPeriod, 404, 409),
//! DeleteObjects reporting locked keys one by one, bypassing GOVERNANCE (only for callers
//! allowed to), and locks surviving a restart. One server for the whole file.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, VersioningConfiguration,
};
use aws_sdk_s3::Client;

use crate::harness::*;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A date `days` from now, whole seconds.
fn in_days(days: i64) -> DateTime {
    DateTime::from_secs(now_secs() + days * 86_400)
}

fn lock_config(
    mode: ObjectLockRetentionMode,
    days: Option<i32>,
    years: Option<i32>,
) -> ObjectLockConfiguration {
    let mut retention = DefaultRetention::builder().mode(mode);
    if let Some(d) = days {
        retention = retention.days(d);
    }
    if let Some(y) = years {
        retention = retention.years(y);
    }
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(retention.build())
                .build(),
        )
        .build()
}

async fn lock_bucket(s3: &Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {bucket} with object lock: {e:?}"));
}

/// PUTs `key` and returns its version id.
async fn put_version(s3: &Client, bucket: &str, key: &str) -> String {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(b"locked bytes".to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"))
        .version_id()
        .expect("a version id")
        .to_string()
}

/// Deletes one version; the error code on failure.
async fn delete_version(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: &str,
    bypass: bool,
) -> Result<(), String> {
    let mut req = s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .version_id(version);
    if bypass {
        req = req.bypass_governance_retention(true);
    }
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

async fn set_retention(
    s3: &Client,
    (bucket, key, version): (&str, &str, &str),
    mode: ObjectLockRetentionMode,
    until: DateTime,
    bypass: bool,
) -> Result<(), String> {
    let mut req = s3
        .put_object_retention()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .retention(
            ObjectLockRetention::builder()
                .mode(mode)
                .retain_until_date(until)
                .build(),
        );
    if bypass {
        req = req.bypass_governance_retention(true);
    }
    req.send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

async fn set_hold(s3: &Client, (bucket, key, version): (&str, &str, &str), on: bool) {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    s3.put_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .legal_hold(ObjectLockLegalHold::builder().status(status).build())
        .send()
        .await
        .unwrap_or_else(|e| panic!("legal hold {on} on {bucket}/{key}: {e:?}"));
}

#[tokio::test]
async fn object_lock_end_to_end() {
    let mut server = Server::start(4);
    let s3 = server.client();

    // --- Bucket state ---
    lock_bucket(&s3, "worm").await;
    let versioning = s3
        .get_bucket_versioning()
        .bucket("worm")
        .send()
        .await
        .expect("versioning");
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    let err = s3
        .put_bucket_versioning()
        .bucket("worm")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect_err("suspending an Object Lock bucket");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (409, "InvalidBucketState")
    );
    let got = s3
        .get_object_lock_configuration()
        .bucket("worm")
        .send()
        .await
        .expect("get config");
    let config = got.object_lock_configuration().expect("a configuration");
    assert_eq!(
        config.object_lock_enabled(),
        Some(&ObjectLockEnabled::Enabled)
    );
    assert!(config.rule().is_none());

    // A plain bucket: no lock of any kind, and Object Lock only once it is versioned.
    s3.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("create plain");
    let err = s3
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .expect_err("no config");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (404, "ObjectLockConfigurationNotFoundError")
    );
    let plain_version = {
        s3.put_object()
            .bucket("plain")
            .key("k")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect("put");
        "null"
    };
    let err = s3
        .put_object()
        .bucket("plain")
        .key("k2")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(1))
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("a lock in a plain bucket");
    assert_eq!((status(&err), code(&err).as_str()), (400, "InvalidRequest"));
    let refused = set_retention(
        &s3,
        ("plain", "k", plain_version),
        ObjectLockRetentionMode::Governance,
        in_days(1),
        false,
    )
    .await;
    assert_eq!(refused, Err("400 InvalidRequest".into()));
    let err = s3
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(lock_config(
            ObjectLockRetentionMode::Governance,
            Some(1),
            None,
        ))
        .send()
        .await
        .expect_err("not versioned");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (409, "InvalidBucketState")
    );
    s3.put_bucket_versioning()
        .bucket("plain")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    s3.put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(lock_config(
            ObjectLockRetentionMode::Governance,
            Some(1),
            None,
        ))
        .send()
        .await
        .expect("Object Lock on a versioned bucket");

    // --- Configuration checks ---
    for (config, expected) in [
        (
            lock_config(ObjectLockRetentionMode::Governance, Some(1), Some(1)),
            "400 MalformedXML",
        ),
        (
            lock_config(ObjectLockRetentionMode::Governance, Some(0), None),
            "400 InvalidRetentionPeriod",
        ),
        (
            lock_config(ObjectLockRetentionMode::Compliance, None, Some(-1)),
            "400 InvalidRetentionPeriod",
        ),
        (
            lock_config(ObjectLockRetentionMode::from("governance"), Some(1), None),
            "400 MalformedXML",
        ),
    ] {
        let err = s3
            .put_object_lock_configuration()
            .bucket("worm")
            .object_lock_configuration(config)
            .send()
            .await
            .expect_err("a bad configuration");
        assert_eq!(format!("{} {}", status(&err), code(&err)), expected);
    }

    // --- A lock given with the write: GOVERNANCE and a legal hold ---
    let until = in_days(2);
    let put = s3
        .put_object()
        .bucket("worm")
        .key("gov")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(until)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"governed".to_vec().into())
        .send()
        .await
        .expect("put with a lock");
    let gov = put.version_id().expect("version").to_string();
    let head = s3
        .head_object()
        .bucket("worm")
        .key("gov")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(
        head.object_lock_retain_until_date().map(|d| d.secs()),
        Some(until.secs())
    );
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    let err = s3
        .put_object()
        .bucket("worm")
        .key("past")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(-1))
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("a date in the past");
    assert_eq!(
        (status(&err), code(&err).as_str()),
        (400, "InvalidArgument")
    );

    // The hold protects even against the bypass; released, the bypass works.
    assert_eq!(
        delete_version(&s3, "worm", "gov", &gov, true).await,
        Err("403 AccessDenied".into())
    );
    set_hold(&s3, ("worm", "gov", &gov), false).await;
    let hold = s3
        .get_object_legal_hold()
        .bucket("worm")
        .key("gov")
        .version_id(&gov)
        .send()
        .await
        .expect("hold");
    assert_eq!(
        hold.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::Off)
    );
    assert_eq!(
        delete_version(&s3, "worm", "gov", &gov, false).await,
        Err("403 AccessDenied".into())
    );
    // Shortening GOVERNANCE needs the bypass; extending does not.
    let shorter = set_retention(
        &s3,
        ("worm", "gov", &gov),
        ObjectLockRetentionMode::Governance,
        in_days(1),
        false,
    )
    .await;
    assert_eq!(shorter, Err("403 AccessDenied".into()));
    set_retention(
        &s3,
        ("worm", "gov", &gov),
        ObjectLockRetentionMode::Governance,
        in_days(3),
        false,
    )
    .await
    .expect("extend");
    let retention = s3
        .get_object_retention()
        .bucket("worm")
        .key("gov")
        .version_id(&gov)
        .send()
        .await
        .expect("retention");
    let retention = retention.retention().expect("a retention");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Governance));
    assert_eq!(
        retention.retain_until_date().map(DateTime::secs),
        Some(in_days(3).secs())
    );
    // A delete without a version id only adds a marker.
    let marker = s3
        .delete_object()
        .bucket("worm")
        .key("gov")
        .send()
        .await
        .expect("delete marker");
    assert_eq!(marker.delete_marker(), Some(true));
    delete_version(&s3, "worm", "gov", &gov, true)
        .await
        .expect("bypassed");

    // --- Default retention: COMPLIANCE for a day ---
    s3.put_object_lock_configuration()
        .bucket("worm")
        .object_lock_configuration(lock_config(
            ObjectLockRetentionMode::Compliance,
            Some(1),
            None,
        ))
        .send()
        .await
        .expect("default retention");
    let got = s3
        .get_object_lock_configuration()
        .bucket("worm")
        .send()
        .await
        .expect("get config");
    assert_eq!(
        got.object_lock_configuration(),
        Some(&lock_config(
            ObjectLockRetentionMode::Compliance,
            Some(1),
            None
        ))
    );
    let comp = put_version(&s3, "worm", "comp").await;
    let head = s3
        .head_object()
        .bucket("worm")
        .key("comp")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let until = head.object_lock_retain_until_date().expect("a date").secs();
    assert!(
        (until - in_days(1).secs()).abs() < 120,
        "a day from now: {until}"
    );
    assert_eq!(
        delete_version(&s3, "worm", "comp", &comp, true).await,
        Err("403 AccessDenied".into())
    );
    // COMPLIANCE cannot be shortened or turned into GOVERNANCE, not even with the bypass.
    for (mode, date) in [
        (
            ObjectLockRetentionMode::Compliance,
            DateTime::from_secs(until - 3600),
        ),
        (ObjectLockRetentionMode::Governance, in_days(5)),
    ] {
        let refused = set_retention(&s3, ("worm", "comp", &comp), mode, date, true).await;
        assert_eq!(
            refused,
            Err("403 AccessDenied".into()),
            "weakening COMPLIANCE"
        );
    }
    set_retention(
        &s3,
        ("worm", "comp", &comp),
        ObjectLockRetentionMode::Compliance,
        in_days(2),
        false,
    )
    .await
    .expect("extend COMPLIANCE");

    // --- CopyObject and multipart uploads take their own locks ---
    let copy = s3
        .copy_object()
        .bucket("worm")
        .key("copy")
        .copy_source("worm/comp")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(1))
        .send()
        .await
        .expect("copy with a lock");
    let copy_version = copy.version_id().expect("version").to_string();
    let head = s3
        .head_object()
        .bucket("worm")
        .key("copy")
        .send()
        .await
        .expect("head copy");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let upload = s3
        .create_multipart_upload()
        .bucket("worm")
        .key("mpu")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let part = s3
        .upload_part()
        .bucket("worm")
        .key("mpu")
        .upload_id(upload_id)
        .part_number(1)
        .body(data(100_000, 1).into())
        .send()
        .await
        .expect("part");
    let done = s3
        .complete_multipart_upload()
        .bucket("worm")
        .key("mpu")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mpu = done.version_id().expect("version").to_string();
    let head = s3
        .head_object()
        .bucket("worm")
        .key("mpu")
        .send()
        .await
        .expect("head mpu");
    assert_eq!(
        head.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    // The bucket's default applies too, counted from the completion.
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));

    // --- DeleteObjects: locked keys fail one by one, quiet or not ---
    s3.put_object_lock_configuration()
        .bucket("worm")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("no default retention");
    let free = put_version(&s3, "worm", "free").await;
    for quiet in [false, true] {
        let out = s3
            .delete_objects()
            .bucket("worm")
            .delete(
                Delete::builder()
                    .quiet(quiet)
                    .objects(
                        ObjectIdentifier::builder()
                            .key("copy")
                            .version_id(&copy_version)
                            .build()
                            .expect("id"),
                    )
                    .objects(
                        ObjectIdentifier::builder()
                            .key("mpu")
                            .version_id(&mpu)
                            .build()
                            .expect("id"),
                    )
                    .build()
                    .expect("delete"),
            )
            .send()
            .await
            .expect("delete objects");
        let errors: Vec<(&str, &str)> = out
            .errors()
            .iter()
            .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
            .collect();
        assert_eq!(
            errors,
            vec![("copy", "AccessDenied"), ("mpu", "AccessDenied")],
            "quiet {quiet}"
        );
    }
    let out = s3
        .delete_objects()
        .bucket("worm")
        .bypass_governance_retention(true)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("copy")
                        .version_id(&copy_version)
                        .build()
                        .expect("id"),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("mpu")
                        .version_id(&mpu)
                        .build()
                        .expect("id"),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("free")
                        .version_id(&free)
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects with bypass");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec!["copy", "free"],
        "GOVERNANCE bypassed, the hold kept"
    );
    assert_eq!(out.errors().len(), 1);

    // --- A user without s3:BypassGovernanceRetention cannot bypass ---
    let policy = server.tmp.path().join("no-bypass.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"},
            {"Effect":"Deny","Action":"s3:BypassGovernanceRetention","Resource":"arn:aws:s3:::*"}]}"#,
    )
    .expect("write policy");
    crate::iam::admin_ok(
        &server,
        &["policy", "add", "no-bypass", policy.to_str().expect("path")],
    );
    let user = crate::iam::add_user(&server, "locked-out", &["no-bypass"]);
    let guarded = s3
        .put_object()
        .bucket("worm")
        .key("guarded")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(1))
        .body(b"g".to_vec().into())
        .send()
        .await
        .expect("put guarded")
        .version_id()
        .expect("version")
        .to_string();
    assert_eq!(
        delete_version(&user, "worm", "guarded", &guarded, true).await,
        Err("403 AccessDenied".into())
    );

    // --- s3:PutObject alone does not let a writer lock what it writes ---
    let writer = crate::iam::add_user(&server, "writer", &["writeonly"]);
    let err = writer
        .put_object()
        .bucket("worm")
        .key("w")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_days(1))
        .body(b"w".to_vec().into())
        .send()
        .await
        .expect_err("locking needs s3:PutObjectRetention");
    assert_eq!((status(&err), code(&err).as_str()), (403, "AccessDenied"));
    let err = writer
        .put_object()
        .bucket("worm")
        .key("w")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(b"w".to_vec().into())
        .send()
        .await
        .expect_err("a hold needs s3:PutObjectLegalHold");
    assert_eq!((status(&err), code(&err).as_str()), (403, "AccessDenied"));
    writer
        .put_object()
        .bucket("worm")
        .key("w")
        .body(b"w".to_vec().into())
        .send()
        .await
        .expect("an unlocked write");

    // --- Locks are durable: after a kill -9 and restart they still hold ---
    server.kill9_and_restart();
    let s3 = server.client();
    assert_eq!(
        delete_version(&s3, "worm", "comp", &comp, true).await,
        Err("403 AccessDenied".into())
    );
    assert_eq!(
        delete_version(&s3, "worm", "mpu", &mpu, true).await,
        Err("403 AccessDenied".into())
    );
    set_hold(&s3, ("worm", "mpu", &mpu), false).await;
    assert_eq!(
        delete_version(&s3, "worm", "guarded", &guarded, false).await,
        Err("403 AccessDenied".into())
    );
    delete_version(&s3, "worm", "guarded", &guarded, true)
        .await
        .expect("root bypasses");
    let body = s3
        .get_object()
        .bucket("worm")
        .key("comp")
        .send()
        .await
        .expect("get comp");
    assert_eq!(
        body.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"locked bytes"
    );
}
