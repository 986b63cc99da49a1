//! `cairn bench` as a real process against a real embedded Cairn (and against its own
//! in-process self-test server): short runs with small objects, results read from `--json`.
//! No timing assertions: only that work was done, nothing failed unnoticed, and what the
//! report says was written is really there.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::*;

/// The outcome of one `cairn bench` run.
struct Run {
    json: Value,
    status: i32,
    stderr: String,
}

/// Runs `cairn bench ARGS --json` with the e2e keys in the environment.
async fn bench(args: &[&str]) -> Run {
    bench_with_keys(args, ACCESS_KEY, SECRET_KEY).await
}

async fn bench_with_keys(args: &[&str], access_key: &str, secret_key: &str) -> Run {
    let out = tokio::process::Command::new(cairn_bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("CAIRN_ACCESS_KEY", access_key)
        .env("CAIRN_SECRET_KEY", secret_key)
        .output()
        .await
        .expect("run cairn bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "cairn bench printed no JSON ({e}); status {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        )
    });
    Run {
        json,
        status: out.status.code().unwrap_or(-1),
        stderr,
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A clean run: exit 0, no error anywhere, and `op` did some work.
fn assert_clean(run: &Run, op: &str) {
    let j = &run.json;
    assert_eq!(
        run.status, 0,
        "exit status; report:\n{j:#}\nstderr:\n{}",
        run.stderr
    );
    assert_eq!(u(&j["errors"]), 0, "errors: {}", j["error_codes"]);
    assert!(u(&j["operations"][op]["ops"]) > 0, "no {op} ops: {j:#}");
    assert!(j["operations"][op]["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(u(&j["ops"]) > 0);
}

#[tokio::test]
async fn put_objects_reported_are_in_the_bucket() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "put",
        "--size",
        "1KiB..8KiB",
        "--size-dist",
        "log-uniform",
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--bucket",
        "bench-put",
        "--keep",
    ])
    .await;
    assert_clean(&run, "put");
    // The live progress line went to stderr while it ran.
    assert!(
        run.stderr.contains("ops/s"),
        "no progress line: {}",
        run.stderr
    );
    let j = &run.json;
    let written = u(&j["objects_written"]);
    assert_eq!(written, u(&j["operations"]["put"]["ops"]));
    assert_eq!(j["kept"], true);

    // Every object the report counts is in the bucket, with sizes that add up.
    let s3 = server.client();
    let prefix = j["put_prefix"].as_str().expect("put_prefix").to_string();
    let mut keys = BTreeSet::new();
    let mut bytes = 0u64;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("bench-put")
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        for o in page.contents() {
            let size = o.size().unwrap_or(-1) as u64;
            assert!((1024..=8192).contains(&size), "size {size}");
            bytes += size;
            keys.insert(o.key().unwrap_or_default().to_string());
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(keys.len() as u64, written);
    assert_eq!(bytes, u(&j["operations"]["put"]["bytes"]));
    // And one of them reads back whole.
    let first = keys.iter().next().unwrap();
    let body = get(&s3, "bench-put", first).await;
    assert!((1024..=8192).contains(&body.len()));
}

#[tokio::test]
async fn get_reads_prefilled_objects_and_cleans_up() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "get",
        "--size",
        "4KiB",
        "--objects",
        "20",
        "--concurrency",
        "4",
        "--duration",
        "1s",
        "--quiet",
    ])
    .await;
    assert_clean(&run, "get");
    let j = &run.json;
    assert_eq!(u(&j["objects_prefilled"]), 20);
    let get = &j["operations"]["get"];
    assert_eq!(u(&get["bytes"]), u(&get["ops"]) * 4096);
    assert!(get["ttfb_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(get["ttfb_ms"]["p50"].as_f64() <= get["latency_ms"]["max"].as_f64());
    // Without --keep the run's bucket is gone again.
    let bucket = j["bucket"].as_str().unwrap();
    let s3 = server.client();
    let err = s3.head_bucket().bucket(bucket).send().await.unwrap_err();
    assert_eq!(status(&err), 404);
    assert_eq!(u(&j["phases"]["cleanup"]["errors"]), 0);
    assert!(u(&j["phases"]["cleanup"]["ops"]) >= 21); // 20 deletes + the bucket
}

#[tokio::test]
async fn mixed_runs_every_operation_of_the_mix() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "mixed",
        "--mix",
        "get=40,put=30,delete=15,list=15",
        "--size",
        "2KiB",
        "--objects",
        "30",
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--page-size",
        "10",
        "--quiet",
    ])
    .await;
    let j = &run.json;
    assert_clean(&run, "get");
    for op in ["put", "delete", "list"] {
        assert!(u(&j["operations"][op]["ops"]) > 0, "no {op}: {j:#}");
    }
}

#[tokio::test]
async fn list_walks_the_prefilled_keys() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "list",
        "--size",
        "0",
        "--objects",
        "50",
        "--page-size",
        "10",
        "--concurrency",
        "2",
        "--duration",
        "1s",
        "--quiet",
    ])
    .await;
    assert_clean(&run, "list");
    let list = &run.json["operations"]["list"];
    // Every page holds 10 keys; at least one whole walk (5 pages) finished.
    assert_eq!(u(&list["keys"]), 10 * u(&list["ops"]));
    assert!(u(&list["listing_ms"]["count"]) >= 1, "{list:#}");
}

#[tokio::test]
async fn delete_removes_prefilled_objects() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "delete",
        "--size",
        "1KiB",
        "--objects",
        "30",
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--keep",
        "--quiet",
    ])
    .await;
    assert_clean(&run, "delete");
    let j = &run.json;
    let deleted = u(&j["operations"]["delete"]["ops"]);
    assert!(deleted <= 30);
    // What the run did not delete is still there (--keep), and nothing more.
    let s3 = server.client();
    let prefix = format!(
        "{}pre/",
        j["put_prefix"].as_str().unwrap().trim_end_matches("put/")
    );
    let left = s3
        .list_objects_v2()
        .bucket(j["bucket"].as_str().unwrap())
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count().unwrap_or(0) as u64, 30 - deleted);
}

#[tokio::test]
async fn self_test_server_runs_put_get_and_multipart() {
    for (workload, size) in [("put", "4KiB"), ("get", "4KiB"), ("multipart", "11MiB")] {
        let run = bench(&[
            "--self-test",
            "--workload",
            workload,
            "--size",
            size,
            "--objects",
            "10",
            "--concurrency",
            "4",
            "--duration",
            "1s",
            "--quiet",
        ])
        .await;
        assert_clean(&run, workload);
        assert_eq!(run.json["self_test"], true);
    }
}

#[tokio::test]
async fn baseline_with_a_workload_reports_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("latency.png");
    let run = bench(&[
        "--self-test",
        "--workload",
        "put",
        "--size",
        "64KiB",
        "--concurrency",
        "2",
        "--duration",
        "1s",
        "--baseline",
        "--baseline-size",
        "8MiB",
        "--dir",
        dir.path().to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
        "--quiet",
    ])
    .await;
    assert_clean(&run, "put");
    let b = &run.json["baseline"];
    for field in [
        "disk_write_mib_s",
        "disk_read_mib_s",
        "loopback_mib_s",
        "memcpy_gib_s",
        "ec_encode_gib_s",
        "ec_decode_gib_s",
    ] {
        assert!(b[field].as_f64().unwrap() > 0.0, "{field}: {b:#}");
    }
    assert!(u(&b["fsync_ms"]["count"]) > 0);
    assert_eq!(b["scheme"], "2+2");
    let ratios = run.json["ratios"].as_array().expect("ratios");
    assert!(
        ratios.iter().any(|r| r["op"] == "put"
            && r["what"].as_str().unwrap().contains("disk write")
            && r["ratio"].as_f64().unwrap() > 0.0),
        "{ratios:?}"
    );
    // The baseline's temporary files are gone; the plot is a PNG.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("latency.png")]);
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
}

/// Wrong credentials are not a crash: the run finishes, prints its report with the failures
/// counted by S3 error code, and exits with status 3 (finished with errors).
#[tokio::test]
async fn wrong_credentials_are_counted_by_error_code() {
    let server = Server::start(1);
    let args = [
        "--endpoint",
        &server.endpoint,
        "--workload",
        "put",
        "--duration",
        "1s",
        "--quiet",
    ];
    for (access, secret, code) in [
        (ACCESS_KEY, "not-the-secret", "SignatureDoesNotMatch"),
        ("no-such-key", SECRET_KEY, "InvalidAccessKeyId"),
    ] {
        let run = bench_with_keys(&args, access, secret).await;
        let j = &run.json;
        assert_eq!(run.status, 3, "{j:#}\n{}", run.stderr);
        assert!(u(&j["errors"]) > 0);
        assert!(u(&j["error_codes"][code]) > 0, "{code}: {j:#}");
        assert_eq!(u(&j["ops"]), 0);
    }
}

/// The multipart workload (create, parts, complete) against Cairn.
#[tokio::test]
async fn multipart_against_cairn() {
    let server = Server::start(4);
    let run = bench(&[
        "--endpoint",
        &server.endpoint,
        "--workload",
        "multipart",
        "--size",
        "11MiB",
        "--concurrency",
        "2",
        "--duration",
        "2s",
        "--quiet",
    ])
    .await;
    assert_clean(&run, "multipart");
}

#[tokio::test]
async fn bench_meta_commits_what_it_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(cairn_bin())
        .args(["bench-meta", "--voters", "2", "--concurrency", "4"])
        .args(["--duration", "1s", "--size", "100", "--dir"])
        .arg(dir.path())
        .output()
        .await
        .expect("run cairn bench-meta");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("META "))
        .unwrap_or_else(|| panic!("no META line in {stdout}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    assert!(field("commits") > 0, "{line}");
    assert_eq!(field("listed"), field("commits"), "{line}");
    assert_eq!(field("errors"), 0, "{line}");
    // The voters' directories are removed at the end.
    assert_eq!(std::fs::read_dir(dir.path()).expect("read dir").count(), 0);
}
