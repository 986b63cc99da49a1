use std::collections::BTreeSet;

use crate::harness::*;

/// 1,000 keys in a two-level tree: `dir-NN/file-NNN`, plus a few top-level keys.
fn tree_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for d in 0..40 {
        for f in 0..25 {
            keys.push(format!("dir-{d:02}/file-{f:03}"));
        }
    }
    keys
}

async fn fill(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) {
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for (i, key) in keys.iter().enumerate() {
        let s3 = s3.clone();
        let key = key.clone();
        let bucket = bucket.to_string();
        pending.push(async move { put(&s3, &bucket, &key, format!("{i}").into_bytes()).await });
        if pending.len() >= 16 {
            pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
}

#[tokio::test]
async fn list_v2_pages_through_1000_keys_with_and_without_delimiter() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("list")
        .send()
        .await
        .expect("create");
    let mut keys = tree_keys();
    keys.push("top-a".into());
    keys.push("top-b".into());
    fill(&s3, "list", &keys).await;
    keys.sort();

    // Flat listing, 100 keys a page.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .max_keys(100)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list page");
        pages += 1;
        assert!(out.key_count().unwrap_or(0) <= 100);
        seen.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_string);
            assert!(token.is_some());
        } else {
            break;
        }
    }
    assert_eq!(seen, keys);
    assert_eq!(pages, 11);

    // With a delimiter: 40 common prefixes + 2 keys, 7 per page.
    let mut prefixes = Vec::new();
    let mut top = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .max_keys(7)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("list page");
        let n = out.contents().len() + out.common_prefixes().len();
        assert!(n <= 7);
        prefixes.extend(
            out.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        top.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_string);
        } else {
            break;
        }
    }
    let expected: Vec<String> = (0..40).map(|d| format!("dir-{d:02}/")).collect();
    assert_eq!(prefixes, expected);
    assert_eq!(top, vec!["top-a", "top-b"]);

    // Prefix + delimiter inside one directory, and start-after.
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("dir-07/")
        .delimiter("/")
        .start_after("dir-07/file-019")
        .send()
        .await
        .expect("list");
    let got: Vec<_> = out.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        got,
        vec![
            "dir-07/file-020",
            "dir-07/file-021",
            "dir-07/file-022",
            "dir-07/file-023",
            "dir-07/file-024"
        ]
    );
    let first = &out.contents()[0];
    assert_eq!(first.size(), Some(3));
    assert!(first.e_tag().is_some() && first.last_modified().is_some());

    let err = s3
        .list_objects_v2()
        .bucket("nobucket")
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(code(&err), "NoSuchBucket");
}

#[tokio::test]
async fn list_v1_with_markers() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("list-v1")
        .send()
        .await
        .expect("create");
    let keys: Vec<String> = (0..250).map(|i| format!("k{i:04}")).collect();
    fill(&s3, "list-v1", &keys).await;
    let mut seen = BTreeSet::new();
    let mut marker: Option<String> = None;
    loop {
        let out = s3
            .list_objects()
            .bucket("list-v1")
            .max_keys(60)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("list v1");
        let page: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        assert!(page.len() <= 60);
        for k in &page {
            assert!(seen.insert(k.clone()), "{k} listed twice");
        }
        if out.is_truncated() == Some(true) {
            marker = page.last().cloned();
        } else {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), keys);
}

#[tokio::test]
async fn keys_list_in_utf8_byte_order() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("order")
        .send()
        .await
        .expect("create");
    let keys = [
        "b", "a", "A", "a/b", "a-b", "\u{00E9}", "z", "\u{4E2D}", "0", "a b",
    ];
    for k in keys {
        put(&s3, "order", k, b"x".to_vec()).await;
    }
    let out = s3
        .list_objects_v2()
        .bucket("order")
        .send()
        .await
        .expect("list");
    let listed: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed, expected);
}

/// ListObjectVersions in a bucket that was never versioned: every key has one version, `null`,
/// the latest; pages follow the next key marker; a delimiter groups keys; a version-id marker
/// without a key marker is refused; DELETE of version `null` deletes the object.
#[tokio::test]
async fn list_versions_of_an_unversioned_bucket() {
    let server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("versions")
        .send()
        .await
        .expect("create");
    let mut keys: Vec<String> = (0..23).map(|i| format!("k{i:03}")).collect();
    keys.push("dir/a".into());
    keys.push("dir/b".into());
    fill(&s3, "versions", &keys).await;

    let mut seen = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let out = s3
            .list_object_versions()
            .bucket("versions")
            .max_keys(7)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list versions");
        assert!(out.versions().len() <= 7);
        for v in out.versions() {
            assert_eq!(v.version_id(), Some("null"));
            assert_eq!(v.is_latest(), Some(true));
            assert!(v.e_tag().is_some() && v.size().is_some());
            seen.push(v.key().unwrap_or_default().to_string());
        }
        assert!(out.delete_markers().is_empty());
        if out.is_truncated() != Some(true) {
            break;
        }
        key_marker = out.next_key_marker().map(str::to_string);
        version_marker = out.next_version_id_marker().map(str::to_string);
        assert!(
            key_marker.is_some(),
            "a truncated page names where to resume"
        );
    }
    keys.sort();
    assert_eq!(seen, keys, "every key once, in order");

    let grouped = s3
        .list_object_versions()
        .bucket("versions")
        .delimiter("/")
        .send()
        .await
        .expect("list versions with delimiter");
    let prefixes: Vec<&str> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/"]);
    assert_eq!(grouped.versions().len(), 23);

    let err = s3
        .list_object_versions()
        .bucket("versions")
        .version_id_marker("null")
        .send()
        .await
        .expect_err("a version marker needs a key marker");
    assert_eq!(status(&err), 400);
    assert_eq!(code(&err), "InvalidArgument");

    let missing = s3
        .list_object_versions()
        .bucket("no-such-bucket")
        .send()
        .await
        .expect_err("missing bucket");
    assert_eq!(code(&missing), "NoSuchBucket");

    s3.delete_object()
        .bucket("versions")
        .key("k000")
        .version_id("null")
        .send()
        .await
        .expect("delete version null");
    let err = s3
        .head_object()
        .bucket("versions")
        .key("k000")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(status(&err), 404);
}
