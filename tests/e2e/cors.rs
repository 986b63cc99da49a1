//! CORS against the real binary: Put/Get/DeleteBucketCors and their validation, unsigned
//! OPTIONS preflights on bucket and object paths, and `Access-Control-*` headers on ordinary
//! (here presigned) requests that carry an `Origin`.

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use aws_sdk_s3::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// A raw HTTP/1.1 answer: status, lowercase header names with their values, body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` with `headers` to `endpoint` over a fresh connection.
async fn raw(endpoint: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: body.to_string(),
    }
}

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let mut b = CorsRule::builder();
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    for h in headers {
        b = b.allowed_headers(*h);
    }
    b.build().expect("rule")
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .expect("config")
}

async fn put_cors(s3: &Client, bucket: &str, rules: Vec<CorsRule>) {
    s3.put_bucket_cors()
        .bucket(bucket)
        .cors_configuration(config(rules))
        .send()
        .await
        .expect("put cors");
}

#[tokio::test]
async fn cors_configuration_is_validated_stored_and_deleted() {
    let mut server = Server::start(1);
    let s3 = server.client();
    s3.create_bucket()
        .bucket("corsy")
        .send()
        .await
        .expect("create");

    let err = s3
        .get_bucket_cors()
        .bucket("corsy")
        .send()
        .await
        .expect_err("no configuration yet");
    assert_eq!(code(&err), "NoSuchCORSConfiguration");
    assert_eq!(status(&err), 404);

    // Invalid configurations are refused and store nothing.
    for (bad, want) in [
        (vec![rule(&["*"], &["PATCH"], &[])], "InvalidRequest"),
        (
            vec![rule(&["http://*.*.example"], &["GET"], &[])],
            "InvalidRequest",
        ),
        (
            (0..101).map(|_| rule(&["*"], &["GET"], &[])).collect(),
            "InvalidRequest",
        ),
    ] {
        let err = s3
            .put_bucket_cors()
            .bucket("corsy")
            .cors_configuration(config(bad))
            .send()
            .await
            .expect_err("invalid CORS configuration");
        assert_eq!(code(&err), want);
        assert_eq!(status(&err), 400);
    }
    let err = s3
        .get_bucket_cors()
        .bucket("corsy")
        .send()
        .await
        .expect_err("still nothing stored");
    assert_eq!(code(&err), "NoSuchCORSConfiguration");

    let mut first = rule(
        &["http://www.example.com"],
        &["PUT", "POST", "DELETE"],
        &["*"],
    );
    first.max_age_seconds = Some(3000);
    first.expose_headers = Some(vec!["ETag".into(), "x-amz-request-id".into()]);
    first.id = Some("writers".into());
    let rules = vec![first, rule(&["*"], &["GET", "HEAD"], &[])];
    put_cors(&s3, "corsy", rules.clone()).await;
    server.restart();
    let s3 = server.client();
    let got = s3
        .get_bucket_cors()
        .bucket("corsy")
        .send()
        .await
        .expect("get cors");
    assert_eq!(got.cors_rules(), rules.as_slice());

    for _ in 0..2 {
        s3.delete_bucket_cors()
            .bucket("corsy")
            .send()
            .await
            .expect("delete cors");
    }
    let err = s3
        .get_bucket_cors()
        .bucket("corsy")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(code(&err), "NoSuchCORSConfiguration");

    let err = s3
        .put_bucket_cors()
        .bucket("missing")
        .cors_configuration(config(vec![rule(&["*"], &["GET"], &[])]))
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(code(&err), "NoSuchBucket");
}

#[tokio::test]
async fn preflights_and_responses_follow_the_rules() {
    let server = Server::start(1);
    let s3 = server.client();
    let ep = server.endpoint.as_str();
    s3.create_bucket()
        .bucket("web")
        .send()
        .await
        .expect("create");
    put(&s3, "web", "page.html", b"<html/>".to_vec()).await;

    // No configuration: every preflight is refused.
    let refused = raw(
        ep,
        "OPTIONS",
        "/web/page.html",
        &[
            ("Origin", "http://www.example.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("CORSResponse"), "{}", refused.body);

    let mut writers = rule(
        &["http://*.example.com"],
        &["PUT", "DELETE"],
        &["x-amz-*", "content-type"],
    );
    writers.max_age_seconds = Some(3000);
    writers.expose_headers = Some(vec!["ETag".into()]);
    put_cors(&s3, "web", vec![writers, rule(&["*"], &["GET"], &[])]).await;

    // A preflight the first rule allows, on an object path.
    let ok = raw(
        ep,
        "OPTIONS",
        "/web/page.html",
        &[
            ("Origin", "http://app.example.com"),
            ("Access-Control-Request-Method", "PUT"),
            ("Access-Control-Request-Headers", "X-Amz-Date, Content-Type"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("http://app.example.com")
    );
    assert_eq!(
        ok.header("access-control-allow-methods"),
        Some("PUT, DELETE")
    );
    assert_eq!(
        ok.header("access-control-allow-headers"),
        Some("x-amz-date, content-type")
    );
    assert_eq!(ok.header("access-control-max-age"), Some("3000"));
    assert_eq!(ok.header("access-control-expose-headers"), Some("ETag"));

    // The wildcard rule, on the bucket path.
    let any = raw(
        ep,
        "OPTIONS",
        "/web",
        &[
            ("Origin", "http://elsewhere.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(any.status, 200, "{}", any.body);
    assert_eq!(any.header("access-control-allow-origin"), Some("*"));
    assert_eq!(any.header("access-control-allow-methods"), Some("GET"));

    // Refusals: a method, an origin or a header no rule allows.
    for (origin, method, headers) in [
        ("http://elsewhere.test", "PUT", ""),
        ("http://app.example.com", "POST", ""),
        ("http://app.example.com", "PUT", "x-custom"),
        ("https://app.example.com", "DELETE", ""),
    ] {
        let mut h = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if !headers.is_empty() {
            h.push(("Access-Control-Request-Headers", headers));
        }
        let resp = raw(ep, "OPTIONS", "/web/page.html", &h).await;
        assert_eq!(
            resp.status, 403,
            "{origin} {method} {headers}: {}",
            resp.body
        );
        assert!(resp.body.contains("CORSResponse"), "{}", resp.body);
    }

    // Not a preflight (no Access-Control-Request-Method), and a missing bucket.
    let bad = raw(ep, "OPTIONS", "/web/page.html", &[("Origin", "http://a")]).await;
    assert_eq!(bad.status, 400);
    let missing = raw(
        ep,
        "OPTIONS",
        "/nowhere/x",
        &[
            ("Origin", "http://a"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(missing.status, 404);

    // An ordinary (presigned) GET with an Origin gets the headers of the rule that allows
    // it; without an Origin it gets none.
    let cfg = PresigningConfig::expires_in(std::time::Duration::from_secs(300)).expect("cfg");
    let url = s3
        .get_object()
        .bucket("web")
        .key("page.html")
        .presigned(cfg)
        .await
        .expect("presign");
    let uri = url.uri().trim_start_matches("http://").to_string();
    let path = &uri[uri.find('/').expect("path")..];
    let get = raw(ep, "GET", path, &[("Origin", "http://elsewhere.test")]).await;
    assert_eq!(get.status, 200, "{}", get.body);
    assert_eq!(get.body, "<html/>");
    assert_eq!(get.header("access-control-allow-origin"), Some("*"));
    assert_eq!(get.header("vary"), Some("Origin"));
    let plain = raw(ep, "GET", path, &[]).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("access-control-allow-origin"), None);

    // Deleting the configuration makes preflights fail again.
    s3.delete_bucket_cors()
        .bucket("web")
        .send()
        .await
        .expect("delete cors");
    let after = raw(
        ep,
        "OPTIONS",
        "/web",
        &[
            ("Origin", "http://elsewhere.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(after.status, 403);
}
