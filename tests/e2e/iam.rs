//! Users, policies and bucket policies against the real binary: users created with
//! `cairn admin user`, canned and custom policies enforced by the gateway (403
//! AccessDenied), a disabled user refused within the cache bound, and a bucket policy that
//! opens GetObject to anonymous (unsigned) requests until it is deleted.

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// How long a gateway may keep honouring a changed user (its cache, 5 s), plus slack for a
/// loaded machine.
const CACHE_BOUND: Duration = Duration::from_secs(8);

/// Runs `cairn admin --meta <server's meta> args...` with the root keys.
pub(crate) fn admin(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(cairn_bin())
        .arg("admin")
        .arg("--meta")
        .arg(&server.meta_endpoint)
        .args(args)
        .env("CAIRN_ACCESS_KEY", ACCESS_KEY)
        .env("CAIRN_SECRET_KEY", SECRET_KEY)
        .output()
        .expect("run cairn admin");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) fn admin_ok(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = admin(server, args);
    assert!(ok, "cairn admin {args:?} failed:\n{out}\n{err}");
    out
}

/// Adds user `key` with `policies` and returns a client signing as it.
pub(crate) fn add_user(server: &Server, key: &str, policies: &[&str]) -> Client {
    let secret = format!("{key}-secret-key");
    let mut args = vec!["user", "add", "--access-key", key, "--secret-key", &secret];
    for p in policies {
        args.extend(["--policy", p]);
    }
    let out = admin_ok(server, &args);
    assert!(
        out.contains(&secret),
        "the new user's keys are printed: {out}"
    );
    client_for(&server.endpoint, key, &secret)
}

async fn try_put(s3: &Client, bucket: &str, key: &str) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

async fn try_get(s3: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.expect("body").to_vec()),
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

async fn try_list(s3: &Client, bucket: &str, prefix: Option<&str>) -> Result<Vec<String>, String> {
    match s3
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix(prefix.map(str::to_string))
        .send()
        .await
    {
        Ok(out) => Ok(out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()),
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

async fn try_delete(s3: &Client, bucket: &str, key: &str) -> Result<(), String> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

const DENIED: &str = "403 AccessDenied";

#[tokio::test]
async fn canned_policies_allow_what_they_name_and_nothing_else() {
    let server = Server::start(1);
    let root = server.client();
    root.create_bucket()
        .bucket("data")
        .send()
        .await
        .expect("create");
    put(&root, "data", "a.txt", b"hello".to_vec()).await;

    let reader = add_user(&server, "reader", &["readonly"]);
    assert_eq!(try_get(&reader, "data", "a.txt").await.unwrap(), b"hello");
    assert_eq!(
        try_list(&reader, "data", None).await.unwrap(),
        vec!["a.txt"]
    );
    let buckets = reader.list_buckets().send().await.expect("list buckets");
    assert_eq!(buckets.buckets().len(), 1);
    assert_eq!(try_put(&reader, "data", "b.txt").await.unwrap_err(), DENIED);
    assert_eq!(
        try_delete(&reader, "data", "a.txt").await.unwrap_err(),
        DENIED
    );
    let err = reader
        .create_bucket()
        .bucket("mine")
        .send()
        .await
        .expect_err("readonly creates no bucket");
    assert_eq!(code(&err), "AccessDenied");

    // Presigned URLs carry the user's rights, no more.
    let cfg = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300))
        .expect("presigning config");
    let url = reader
        .get_object()
        .bucket("data")
        .key("a.txt")
        .presigned(cfg.clone())
        .await
        .expect("presign get");
    let path = url.uri().trim_start_matches(&server.endpoint).to_string();
    let (code_, body) = unsigned(&server.endpoint, "GET", &path, b"").await;
    assert_eq!((code_, body.ends_with("hello")), (200, true), "{body}");
    let url = reader
        .put_object()
        .bucket("data")
        .key("p.txt")
        .presigned(cfg)
        .await
        .expect("presign put");
    let path = url.uri().trim_start_matches(&server.endpoint).to_string();
    let (code_, body) = unsigned(&server.endpoint, "PUT", &path, b"x").await;
    assert_eq!(code_, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");

    let writer = add_user(&server, "writer", &["writeonly"]);
    try_put(&writer, "data", "w.txt")
        .await
        .expect("writeonly puts");
    assert_eq!(try_get(&writer, "data", "w.txt").await.unwrap_err(), DENIED);
    assert_eq!(try_list(&writer, "data", None).await.unwrap_err(), DENIED);
    assert_eq!(
        try_delete(&writer, "data", "w.txt").await.unwrap_err(),
        DENIED
    );
    assert_eq!(try_get(&root, "data", "w.txt").await.unwrap(), b"data");

    // No policy: nothing. Attaching one takes effect once the gateway's cache expires.
    let nobody = add_user(&server, "nobody", &[]);
    assert_eq!(try_get(&nobody, "data", "a.txt").await.unwrap_err(), DENIED);
    admin_ok(&server, &["user", "attach", "nobody", "readwrite"]);
    let start = Instant::now();
    while try_get(&nobody, "data", "a.txt").await.is_err() {
        assert!(start.elapsed() < CACHE_BOUND, "attach not honoured in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    try_put(&nobody, "data", "n.txt")
        .await
        .expect("readwrite puts");
    try_delete(&nobody, "data", "n.txt")
        .await
        .expect("readwrite deletes");

    // An unknown key is not a user.
    let stranger = client_for(&server.endpoint, "stranger", "stranger-secret");
    let err = stranger
        .list_buckets()
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(code(&err), "InvalidAccessKeyId");
    assert_eq!(status(&err), 403);

    // Listing and info through the CLI.
    let list = admin_ok(&server, &["user", "list"]);
    for key in ["reader", "writer", "nobody"] {
        assert!(list.contains(key), "{list}");
    }
    assert!(
        !list.contains("reader-secret-key"),
        "list shows no secrets: {list}"
    );
    let info = admin_ok(&server, &["user", "info", "reader", "--json"]);
    let info: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(info["status"], "enabled");
    assert_eq!(info["policies"], serde_json::json!(["readonly"]));
    // Duplicates and unknown policies are refused.
    let (ok, _, err) = admin(&server, &["user", "add", "--access-key", "reader"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = admin(
        &server,
        &["user", "add", "--access-key", "x1y", "--policy", "nope"],
    );
    assert!(!ok && err.contains("no such policy"), "{err}");
    let (ok, _, err) = admin(&server, &["user", "add", "--access-key", ACCESS_KEY]);
    assert!(
        !ok && err.contains("root"),
        "the root's key is not a user's: {err}"
    );
    let (ok, _, err) = admin(
        &server,
        &[
            "user",
            "add",
            "--access-key",
            "shorty",
            "--secret-key",
            "short",
        ],
    );
    assert!(!ok && err.contains("secret key"), "{err}");
    // Generated keys work.
    let out = admin_ok(&server, &["user", "add", "--policy", "readonly", "--json"]);
    let out: serde_json::Value = serde_json::from_str(&out).expect("json");
    let generated = client_for(
        &server.endpoint,
        out["access_key"].as_str().expect("access key"),
        out["secret_key"].as_str().expect("secret key"),
    );
    assert_eq!(
        try_get(&generated, "data", "a.txt").await.unwrap(),
        b"hello"
    );
}

#[tokio::test]
async fn a_custom_policy_limits_a_user_to_its_prefix() {
    let mut server = Server::start(1);
    let root = server.client();
    root.create_bucket()
        .bucket("home")
        .send()
        .await
        .expect("create");
    put(&root, "home", "alice/notes", b"a".to_vec()).await;
    put(&root, "home", "bob/notes", b"b".to_vec()).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("alice.json");
    std::fs::write(
        &file,
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::home/${aws:username}/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::home","Condition":{"StringLike":{"s3:prefix":"${aws:username}/*"}}},
            {"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::home/${aws:username}/keep*"}]}"#,
    )
    .expect("write policy");
    admin_ok(
        &server,
        &["policy", "add", "home-dirs", file.to_str().expect("path")],
    );
    assert!(admin_ok(&server, &["policy", "list"]).contains("home-dirs"));
    let alice = add_user(&server, "alice", &["home-dirs"]);
    // The same policy gives every user its own prefix (`${aws:username}`).
    let bob = add_user(&server, "bob", &["home-dirs"]);
    assert_eq!(try_get(&bob, "home", "bob/notes").await.unwrap(), b"b");
    assert_eq!(
        try_get(&bob, "home", "alice/notes").await.unwrap_err(),
        DENIED
    );
    assert_eq!(
        try_list(&bob, "home", Some("bob/")).await.unwrap(),
        vec!["bob/notes"]
    );

    assert_eq!(try_get(&alice, "home", "alice/notes").await.unwrap(), b"a");
    assert_eq!(
        try_get(&alice, "home", "bob/notes").await.unwrap_err(),
        DENIED
    );
    try_put(&alice, "home", "alice/new")
        .await
        .expect("own prefix");
    assert_eq!(
        try_put(&alice, "home", "bob/new").await.unwrap_err(),
        DENIED
    );
    assert_eq!(
        try_list(&alice, "home", Some("alice/")).await.unwrap(),
        vec!["alice/new", "alice/notes"]
    );
    assert_eq!(
        try_list(&alice, "home", Some("bob/")).await.unwrap_err(),
        DENIED
    );
    assert_eq!(try_list(&alice, "home", None).await.unwrap_err(), DENIED);
    // The explicit Deny wins over the Allow on alice/*.
    try_put(&alice, "home", "alice/keep-me").await.expect("put");
    assert_eq!(
        try_delete(&alice, "home", "alice/keep-me")
            .await
            .unwrap_err(),
        DENIED
    );
    try_delete(&alice, "home", "alice/new")
        .await
        .expect("delete own");

    // A copy needs s3:GetObject on its source too.
    let copy = |source: &'static str| {
        alice
            .copy_object()
            .bucket("home")
            .key("alice/copy")
            .copy_source(source)
            .send()
    };
    let err = copy("home/bob/notes")
        .await
        .expect_err("bob's notes are not alice's");
    assert_eq!(code(&err), "AccessDenied");
    copy("home/alice/notes")
        .await
        .expect("copy within the prefix");
    assert_eq!(try_get(&alice, "home", "alice/copy").await.unwrap(), b"a");

    // DeleteObjects needs s3:DeleteObject on every key it names.
    let batch = |keys: &[&str]| {
        let objects = keys
            .iter()
            .map(|k| {
                aws_sdk_s3::types::ObjectIdentifier::builder()
                    .key(*k)
                    .build()
                    .expect("id")
            })
            .collect();
        alice
            .delete_objects()
            .bucket("home")
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .set_objects(Some(objects))
                    .build()
                    .expect("delete"),
            )
            .send()
    };
    // (per key, as S3 answers; refused whole when no key is allowed).
    let err = batch(&["bob/notes"]).await.expect_err("no key is alice's");
    assert_eq!(code(&err), "AccessDenied");
    let out = batch(&["alice/copy", "bob/notes"])
        .await
        .expect("one key is alice's");
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, vec!["alice/copy"]);
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, vec![("bob/notes", "AccessDenied")]);
    assert_eq!(try_get(&root, "home", "bob/notes").await.unwrap(), b"b");
    assert!(try_get(&root, "home", "alice/copy").await.is_err());

    // Users and policies are metadata: they survive a crash and restart.
    server.kill9_and_restart();
    let alice = client_for(&server.endpoint, "alice", "alice-secret-key");
    assert_eq!(try_get(&alice, "home", "alice/notes").await.unwrap(), b"a");
    assert_eq!(
        try_get(&alice, "home", "bob/notes").await.unwrap_err(),
        DENIED
    );

    // A policy in use cannot be removed; detached, it can.
    let (ok, _, err) = admin(&server, &["policy", "remove", "home-dirs"]);
    assert!(!ok && err.contains("attached"), "{err}");
    admin_ok(&server, &["user", "detach", "alice", "home-dirs"]);
    admin_ok(&server, &["user", "detach", "bob", "home-dirs"]);
    admin_ok(&server, &["policy", "remove", "home-dirs"]);

    // A condition the evaluator does not support is refused when the policy is added.
    std::fs::write(
        &file,
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"BinaryEquals":{"s3:prefix":"eA=="}}}}"#,
    )
    .expect("write policy");
    let (ok, _, err) = admin(
        &server,
        &["policy", "add", "by-arn", file.to_str().expect("path")],
    );
    assert!(
        !ok && err.contains("BinaryEquals") && err.contains("not supported"),
        "{err}"
    );
    assert!(!admin_ok(&server, &["policy", "list"]).contains("by-arn"));
}

#[tokio::test]
async fn a_disabled_or_removed_user_is_refused_within_the_cache_bound() {
    let server = Server::start(1);
    let root = server.client();
    root.create_bucket()
        .bucket("vault")
        .send()
        .await
        .expect("create");
    put(&root, "vault", "k", b"v".to_vec()).await;
    let carol = add_user(&server, "carol", &["readwrite"]);
    assert_eq!(try_get(&carol, "vault", "k").await.unwrap(), b"v");

    admin_ok(&server, &["user", "disable", "carol"]);
    let start = Instant::now();
    let refusal = loop {
        match try_get(&carol, "vault", "k").await {
            Ok(_) => {
                assert!(
                    start.elapsed() < CACHE_BOUND,
                    "still served after {:?}",
                    start.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refusal, "403 InvalidAccessKeyId");
    let info = admin_ok(&server, &["user", "info", "carol"]);
    assert!(info.contains("disabled"), "{info}");

    admin_ok(&server, &["user", "enable", "carol"]);
    let start = Instant::now();
    while try_get(&carol, "vault", "k").await.is_err() {
        assert!(start.elapsed() < CACHE_BOUND, "enable not honoured in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    admin_ok(&server, &["user", "remove", "carol"]);
    let start = Instant::now();
    let refusal = loop {
        match try_get(&carol, "vault", "k").await {
            Ok(_) => {
                assert!(start.elapsed() < CACHE_BOUND, "removed user still served");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refusal, "403 InvalidAccessKeyId");
    assert!(!admin_ok(&server, &["user", "list"]).contains("carol"));
}

/// An unsigned HTTP/1.1 request; returns the status and the body.
async fn unsigned(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    unsigned_with(endpoint, method, path, &[], body).await
}

/// [`unsigned`] with extra `headers`.
async fn unsigned_with(
    endpoint: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write body");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes).to_string();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An unsigned DeleteObjects of `keys` (with the Content-MD5 S3 requires).
async fn unsigned_delete_objects(endpoint: &str, bucket: &str, keys: &[&str]) -> (u16, String) {
    use base64::Engine as _;
    use md5::Digest as _;
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    let body = format!("<Delete>{objects}</Delete>");
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
    let path = format!("/{bucket}?delete");
    unsigned_with(
        endpoint,
        "POST",
        &path,
        &[("Content-MD5", &md5)],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_bucket_policy_opens_get_object_to_anonymous_requests() {
    let server = Server::start(1);
    let root = server.client();
    root.create_bucket()
        .bucket("site")
        .send()
        .await
        .expect("create");
    put(&root, "site", "index.html", b"<h1>hi</h1>".to_vec()).await;
    let ep = &server.endpoint;

    // Private by default.
    let (code_, body) = unsigned(ep, "GET", "/site/index.html", b"").await;
    assert_eq!(code_, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let err = root
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .expect_err("no policy yet");
    assert_eq!(code(&err), "NoSuchBucketPolicy");
    assert_eq!(status(&err), 404);

    // Malformed policies are refused.
    for bad in [
        "{not json",
        r#"{"Statement":[{"Effect":"Permit","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*","Condition":{"BinaryEquals":{"s3:prefix":"eA=="}}}]}"#,
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}]}"#,
    ] {
        let err = root
            .put_bucket_policy()
            .bucket("site")
            .policy(bad)
            .send()
            .await
            .expect_err(bad);
        assert_eq!(code(&err), "MalformedPolicy", "{bad}");
        assert_eq!(status(&err), 400, "{bad}");
    }

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::site/*"]}]}"#;
    root.put_bucket_policy()
        .bucket("site")
        .policy(policy)
        .send()
        .await
        .expect("put policy");
    let got = root
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .expect("get policy");
    assert_eq!(got.policy(), Some(policy));
    let status_out = root
        .get_bucket_policy_status()
        .bucket("site")
        .send()
        .await
        .expect("policy status");
    assert_eq!(
        status_out.policy_status().and_then(|s| s.is_public()),
        Some(true)
    );

    // Anonymous GET now works; anonymous PUT, LIST and DELETE do not.
    let (code_, body) = unsigned(ep, "GET", "/site/index.html", b"").await;
    assert_eq!(code_, 200, "{body}");
    assert!(body.contains("<h1>hi</h1>"), "{body}");
    let (code_, body) = unsigned(ep, "PUT", "/site/evil.html", b"evil").await;
    assert_eq!(code_, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (code_, _) = unsigned(ep, "GET", "/site?list-type=2", b"").await;
    assert_eq!(code_, 403);
    let (code_, _) = unsigned(ep, "DELETE", "/site/index.html", b"").await;
    assert_eq!(code_, 403);
    let (code_, body) = unsigned_delete_objects(ep, "site", &["index.html"]).await;
    assert_eq!(code_, 403, "{body}");
    assert!(try_get(&root, "site", "evil.html").await.is_err());
    // A missing key is 403 to a caller who may not list the bucket (no probing for which
    // keys exist), 404 to one who may, as in S3; the root always gets 404.
    let (code_, body) = unsigned(ep, "GET", "/site/missing.html", b"").await;
    assert_eq!(code_, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    assert_eq!(unsigned(ep, "HEAD", "/site/missing.html", b"").await.0, 403);
    assert_eq!(
        try_get(&root, "site", "missing.html").await.unwrap_err(),
        "404 NoSuchKey"
    );
    let lister = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"},
        {"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::site","Condition":{"StringLike":{"s3:prefix":"pub/*"}}}]}"#;
    root.put_bucket_policy()
        .bucket("site")
        .policy(lister)
        .send()
        .await
        .expect("put lister policy");
    let (code_, body) = unsigned(ep, "GET", "/site/pub/missing.html", b"").await;
    assert_eq!(code_, 404, "{body}");
    assert!(body.contains("NoSuchKey"), "{body}");
    assert_eq!(unsigned(ep, "GET", "/site/missing.html", b"").await.0, 403);
    // A condition sees the parameter the listing acts on, however its name is encoded: a
    // grant to list the top level only (prefix "") does not cover `pre%66ix=secret/`.
    let top_only = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::site","Condition":{"StringEquals":{"s3:prefix":""}}}}"#;
    root.put_bucket_policy()
        .bucket("site")
        .policy(top_only)
        .send()
        .await
        .expect("put top-only policy");
    assert_eq!(unsigned(ep, "GET", "/site?list-type=2", b"").await.0, 200);
    let (code_, body) = unsigned(ep, "GET", "/site?list-type=2&pre%66ix=secret%2F", b"").await;
    assert_eq!(code_, 403, "{body}");
    root.put_bucket_policy()
        .bucket("site")
        .policy(policy)
        .send()
        .await
        .expect("put policy back");

    // A user without policies of its own gets what the bucket policy grants everyone, and
    // may not touch the bucket policy (the owner's, the root's).
    let dave = add_user(&server, "dave", &[]);
    assert_eq!(
        try_get(&dave, "site", "index.html").await.unwrap(),
        b"<h1>hi</h1>"
    );
    assert_eq!(try_put(&dave, "site", "x").await.unwrap_err(), DENIED);
    let admin_user = add_user(&server, "boss", &["readwrite"]);
    let err = admin_user
        .delete_bucket_policy()
        .bucket("site")
        .send()
        .await
        .expect_err("only the root manages bucket policies");
    assert_eq!(code(&err), "AccessDenied");

    // A bucket policy can grant a user by name, and deny one explicitly over its own policy.
    let named = r#"{"Statement":[
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:user/dave"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::site/uploads/*"},
        {"Effect":"Deny","Principal":{"AWS":"boss"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*"}]}"#;
    root.put_bucket_policy()
        .bucket("site")
        .policy(named)
        .send()
        .await
        .expect("put named policy");
    try_put(&dave, "site", "uploads/x")
        .await
        .expect("granted by the bucket");
    assert_eq!(try_put(&dave, "site", "y").await.unwrap_err(), DENIED);
    assert_eq!(
        try_get(&admin_user, "site", "index.html")
            .await
            .unwrap_err(),
        DENIED
    );
    try_put(&admin_user, "site", "z")
        .await
        .expect("its own policy still allows puts");
    let (code_, _) = unsigned(ep, "GET", "/site/index.html", b"").await;
    assert_eq!(code_, 403, "no longer public");

    // aws:SourceIp is the client's address (these requests come from 127.0.0.1).
    for (block, expected) in [("10.0.0.0/8", 403), ("127.0.0.0/8", 200)] {
        let by_ip = format!(
            r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/*","Condition":{{"IpAddress":{{"aws:SourceIp":"{block}"}}}}}}}}"#
        );
        root.put_bucket_policy()
            .bucket("site")
            .policy(by_ip)
            .send()
            .await
            .expect("put policy by ip");
        let (code_, body) = unsigned(ep, "GET", "/site/index.html", b"").await;
        assert_eq!(code_, expected, "{block}: {body}");
    }

    // Anonymous batch deletes, when the policy grants them, are checked key by key.
    let scratch = r#"{"Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::site/tmp/*"}]}"#;
    root.put_bucket_policy()
        .bucket("site")
        .policy(scratch)
        .send()
        .await
        .expect("put scratch policy");
    put(&root, "site", "tmp/a", b"a".to_vec()).await;
    let (code_, body) = unsigned_delete_objects(ep, "site", &["index.html"]).await;
    assert_eq!(code_, 403, "{body}");
    let (code_, body) = unsigned_delete_objects(ep, "site", &["tmp/a", "index.html"]).await;
    assert_eq!(code_, 200, "{body}");
    assert!(
        body.contains("<Deleted><Key>tmp/a</Key></Deleted>")
            && body.contains("<Key>index.html</Key>")
            && body.contains("<Code>AccessDenied</Code>"),
        "{body}"
    );
    assert!(try_get(&root, "site", "tmp/a").await.is_err());
    assert_eq!(
        try_get(&root, "site", "index.html").await.unwrap(),
        b"<h1>hi</h1>"
    );

    // Deleting the policy makes the bucket private again.
    root.put_bucket_policy()
        .bucket("site")
        .policy(policy)
        .send()
        .await
        .expect("put policy again");
    assert_eq!(unsigned(ep, "GET", "/site/index.html", b"").await.0, 200);
    root.delete_bucket_policy()
        .bucket("site")
        .send()
        .await
        .expect("delete policy");
    let (code_, body) = unsigned(ep, "GET", "/site/index.html", b"").await;
    assert_eq!(code_, 403, "{body}");
    let err = root
        .get_bucket_policy()
        .bucket("site")
        .send()
        .await
        .expect_err("policy gone");
    assert_eq!(code(&err), "NoSuchBucketPolicy");
    // The root is never denied.
    assert_eq!(
        try_get(&root, "site", "index.html").await.unwrap(),
        b"<h1>hi</h1>"
    );
}

/// Puts `bucket/key` as `s3` with the `x-amz-tagging` header `tagging` (if any).
async fn try_put_tagged(
    s3: &Client,
    bucket: &str,
    key: &str,
    tagging: Option<&str>,
) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_tagging(tagging.map(str::to_string))
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

/// Replaces the tags of `bucket/key` with `key=value`, as `s3`.
async fn try_tag(s3: &Client, bucket: &str, key: &str, tag: (&str, &str)) -> Result<(), String> {
    use aws_sdk_s3::types::{Tag, Tagging};
    let tag = Tag::builder().key(tag.0).value(tag.1).build().expect("tag");
    s3.put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(Tagging::builder().tag_set(tag).build().expect("tagging"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

#[tokio::test]
async fn bucket_policy_conditions_test_tags_headers_listing_parameters_and_time() {
    let server = Server::start(1);
    let root = server.client();
    let ep = &server.endpoint;
    root.create_bucket()
        .bucket("cond")
        .send()
        .await
        .expect("create");
    try_put_tagged(&root, "cond", "open", Some("security=public"))
        .await
        .expect("put open");
    try_put_tagged(&root, "cond", "closed", Some("security=private"))
        .await
        .expect("put closed");
    try_put_tagged(&root, "cond", "untagged", None)
        .await
        .expect("put untagged");
    let set_policy = |policy: String| {
        let root = root.clone();
        async move {
            root.put_bucket_policy()
                .bucket("cond")
                .policy(policy.as_str())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put policy {policy}: {e:?}"));
        }
    };

    // s3:ExistingObjectTag: the object's tags as stored, read at each request.
    set_policy(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/security":"public"}}}}"#.into()).await;
    assert_eq!(unsigned(ep, "GET", "/cond/open", b"").await.0, 200);
    assert_eq!(unsigned(ep, "GET", "/cond/closed", b"").await.0, 403);
    assert_eq!(unsigned(ep, "GET", "/cond/untagged", b"").await.0, 403);
    try_tag(&root, "cond", "closed", ("security", "public"))
        .await
        .expect("retag");
    assert_eq!(unsigned(ep, "GET", "/cond/closed", b"").await.0, 200);

    // aws:Referer with IfExists: absent passes, present must match.
    set_policy(r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/*","Condition":{"StringLikeIfExists":{"aws:Referer":"http://www.example.com/*"}}}}"#.into()).await;
    assert_eq!(unsigned(ep, "GET", "/cond/open", b"").await.0, 200);
    for (referer, expected) in [
        ("http://www.example.com/page", 200),
        ("http://evil.example.net/", 403),
    ] {
        let (code_, body) =
            unsigned_with(ep, "GET", "/cond/open", &[("Referer", referer)], b"").await;
        assert_eq!(code_, expected, "{referer}: {body}");
    }

    // aws:CurrentTime: a grant that expired, and one that has not.
    for (date, expected) in [("2001-01-01T00:00:00Z", 403), ("2999-01-01T00:00:00Z", 200)] {
        set_policy(format!(r#"{{"Statement":{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/*","Condition":{{"DateLessThan":{{"aws:CurrentTime":"{date}"}}}}}}}}"#)).await;
        assert_eq!(
            unsigned(ep, "GET", "/cond/open", b"").await.0,
            expected,
            "{date}"
        );
    }

    // A user with no policy of its own: what the bucket grants, under conditions on the tags
    // it sets (header or PutObjectTagging body) and on its listings' max-keys.
    let tagger = add_user(&server, "tagger", &[]);
    set_policy(r#"{"Statement":[
        {"Effect":"Allow","Principal":{"AWS":"tagger"},"Action":["s3:PutObject","s3:PutObjectTagging"],"Resource":"arn:aws:s3:::cond/*","Condition":{"StringEquals":{"s3:RequestObjectTag/team":"blue"}}},
        {"Effect":"Allow","Principal":{"AWS":"tagger"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::cond"},
        {"Effect":"Deny","Principal":{"AWS":"tagger"},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::cond","Condition":{"NumericGreaterThan":{"s3:max-keys":100}}}]}"#.into()).await;
    try_put_tagged(&tagger, "cond", "blue", Some("team=blue"))
        .await
        .expect("tagged blue: allowed");
    assert_eq!(
        try_put_tagged(&tagger, "cond", "red", Some("team=red"))
            .await
            .unwrap_err(),
        DENIED
    );
    assert_eq!(
        try_put_tagged(&tagger, "cond", "none", None)
            .await
            .unwrap_err(),
        DENIED
    );
    try_tag(&tagger, "cond", "blue", ("team", "blue"))
        .await
        .expect("retag blue: allowed");
    assert_eq!(
        try_tag(&tagger, "cond", "blue", ("team", "red"))
            .await
            .unwrap_err(),
        DENIED
    );
    let list = |max: i32| tagger.list_objects_v2().bucket("cond").max_keys(max).send();
    assert!(list(10).await.is_ok(), "max-keys 10 is allowed");
    let err = list(500).await.expect_err("max-keys 500 is denied");
    assert_eq!(code(&err), "AccessDenied");
    assert!(
        try_list(&tagger, "cond", None).await.is_ok(),
        "no max-keys: the Deny's key is absent"
    );
}

#[tokio::test]
async fn users_and_bucket_policies_reach_every_gateway_of_a_cluster() {
    use crate::cluster_harness::Cluster;
    // Three meta nodes; gateway 0 knows them all, gateway 1 only a follower, so its user
    // lookups and bucket-policy reads go through a follower's linearizable read.
    let mut cluster = Cluster::start(3, 1, 2, 1, &[]);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let only_follower = format!("http://{}", cluster.meta_addrs[follower]);
    cluster.add_gateway(&only_follower);
    let root = cluster.client(0);
    root.create_bucket()
        .bucket("shared")
        .send()
        .await
        .expect("create");
    put(&root, "shared", "k", b"v".to_vec()).await;

    cluster.admin_ok(&[
        "user",
        "add",
        "--access-key",
        "eve",
        "--secret-key",
        "eve-secret-key",
        "--policy",
        "readonly",
    ]);
    let eve: Vec<Client> = (0..2)
        .map(|i| client_for(&cluster.gateway_endpoints[i], "eve", "eve-secret-key"))
        .collect();
    for s3 in &eve {
        assert_eq!(try_get(s3, "shared", "k").await.unwrap(), b"v");
        assert_eq!(try_put(s3, "shared", "x").await.unwrap_err(), DENIED);
    }

    // Disabled on the leader, refused by both gateways within the bound.
    cluster.admin_ok(&["user", "disable", "eve"]);
    let start = Instant::now();
    for s3 in &eve {
        while try_get(s3, "shared", "k").await.is_ok() {
            assert!(start.elapsed() < CACHE_BOUND, "a gateway still serves eve");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            try_get(s3, "shared", "k").await.unwrap_err(),
            "403 InvalidAccessKeyId"
        );
    }

    // A bucket policy put through one gateway applies at the other at once.
    let public = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/*"}}"#;
    root.put_bucket_policy()
        .bucket("shared")
        .policy(public)
        .send()
        .await
        .expect("put policy");
    let (code_, body) = unsigned(&cluster.gateway_endpoints[1], "GET", "/shared/k", b"").await;
    assert_eq!(code_, 200, "{body}");
    client_for(&cluster.gateway_endpoints[1], ACCESS_KEY, SECRET_KEY)
        .delete_bucket_policy()
        .bucket("shared")
        .send()
        .await
        .expect("delete policy");
    assert_eq!(
        unsigned(&cluster.gateway_endpoints[0], "GET", "/shared/k", b"")
            .await
            .0,
        403
    );
}

/// A browser-form upload (POST Object, SigV4-signed policy) of `key` into `bucket` as
/// `access`/`secret`; returns the status and the body.
async fn post_object(
    endpoint: &str,
    (access, secret): (&str, &str),
    bucket: &str,
    key: &str,
) -> (u16, String) {
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    type HmacSha256 = Hmac<sha2::Sha256>;
    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    let now = time::OffsetDateTime::now_utc();
    let day = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let stamp = format!(
        "{day}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let credential = format!("{access}/{day}/us-east-1/s3/aws4_request");
    let expiration = (now + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let policy = serde_json::json!({
        "expiration": expiration,
        "conditions": [
            {"bucket": bucket},
            ["starts-with", "$key", ""],
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": credential},
            {"x-amz-date": stamp},
        ],
    });
    let policy = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let signing_key = [day.as_str(), "us-east-1", "s3", "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |k, part| {
            hmac(&k, part.as_bytes())
        });
    let signature = hex::encode(hmac(&signing_key, policy.as_bytes()));
    let boundary = "cairn-form-boundary";
    let mut body = String::new();
    for (name, value) in [
        ("key", key),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", &credential),
        ("x-amz-date", &stamp),
        ("policy", &policy),
        ("x-amz-signature", &signature),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
         Content-Type: text/plain\r\n\r\nform body\r\n--{boundary}--\r\n"
    ));
    let content_type = format!("multipart/form-data; boundary={boundary}");
    unsigned_with(
        endpoint,
        "POST",
        &format!("/{bucket}"),
        &[("Content-Type", &content_type)],
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_browser_form_upload_is_decided_as_the_put_of_its_key() {
    let server = Server::start(1);
    let root = server.client();
    root.create_bucket()
        .bucket("forms")
        .send()
        .await
        .expect("create");
    let ep = &server.endpoint;
    // The root may post anywhere.
    let (code_, body) = post_object(ep, (ACCESS_KEY, SECRET_KEY), "forms", "any/key").await;
    assert!((200..300).contains(&code_), "{code_}: {body}");
    assert_eq!(get(&root, "forms", "any/key").await, b"form body");

    // A user without policies: what the bucket policy grants on the key, less its Deny.
    add_user(&server, "poster", &[]);
    let poster = ("poster", "poster-secret-key");
    root.put_bucket_policy()
        .bucket("forms")
        .policy(
            r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":"poster"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::forms/uploads/*"},
            {"Effect":"Deny","Principal":{"AWS":"poster"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::forms/uploads/secret*"}]}"#,
        )
        .send()
        .await
        .expect("put policy");
    let (code_, body) = post_object(ep, poster, "forms", "uploads/ok").await;
    assert!((200..300).contains(&code_), "{code_}: {body}");
    assert_eq!(get(&root, "forms", "uploads/ok").await, b"form body");
    for key in ["uploads/secret-plan", "elsewhere"] {
        let (code_, body) = post_object(ep, poster, "forms", key).await;
        assert_eq!(code_, 403, "{key}: {body}");
        assert!(body.contains("AccessDenied"), "{key}: {body}");
        assert!(
            try_get(&root, "forms", key).await.is_err(),
            "{key} was not written"
        );
    }
}
