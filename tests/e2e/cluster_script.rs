//! `deploy/local/cluster.sh`: `up` brings a 3 meta + 4 blob + 2 gateway cluster up as plain
//! processes and prints its endpoints; `down` stops them and keeps the data; a second `up`
//! finds everything again.

use std::process::Command;

use crate::harness::*;

fn script(action: &str, dir: &std::path::Path, port: u16) -> String {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/local/cluster.sh"
        ))
        .arg(action)
        .arg(dir)
        .env("CAIRN_BIN", cairn_bin())
        .env("CAIRN_CLUSTER_PORT", port.to_string())
        .env("CAIRN_ACCESS_KEY", ACCESS_KEY)
        .env("CAIRN_SECRET_KEY", SECRET_KEY)
        .output()
        .expect("run cluster.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cluster.sh {action} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cluster.sh down` when dropped, also when the test panics.
struct Down {
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/local/cluster.sh"
            ))
            .arg("down")
            .arg(&self.dir)
            .env("CAIRN_BIN", cairn_bin())
            .env("CAIRN_CLUSTER_PORT", self.port.to_string())
            .output();
    }
}

fn pid_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_script_up_down_up_keeps_data() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("cluster");
    // A port range away from the OS's ephemeral ports (and from other tests).
    let port = 20_000 + (std::process::id() % 2_000) as u16 * 3;

    // Whatever happens below, the processes `up` detached are stopped at the end.
    let _down = Down {
        dir: dir.clone(),
        port,
    };
    let out = script("up", &dir, port);
    let gateways: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("S3 ")).collect();
    let metas = out.lines().filter(|l| l.starts_with("META ")).count();
    assert_eq!((gateways.len(), metas), (2, 3), "{out}");
    assert_eq!(pid_files(&dir), 9, "one pid file per process");

    let a = client_for(gateways[0], ACCESS_KEY, SECRET_KEY);
    let b = client_for(gateways[1], ACCESS_KEY, SECRET_KEY);
    a.create_bucket()
        .bucket("dev")
        .send()
        .await
        .expect("create");
    let body = data(3_000_000, 7);
    put(&a, "dev", "k", body.clone()).await;
    assert!(get(&b, "dev", "k").await == body);

    script("down", &dir, port);
    assert_eq!(pid_files(&dir), 0, "down removes the pid files");
    assert!(
        a.list_buckets().send().await.is_err(),
        "nothing serves after down"
    );

    let out = script("up", &dir, port);
    assert!(out.contains(gateways[0]), "same endpoints again:\n{out}");
    assert!(get(&b, "dev", "k").await == body, "data survives down/up");
    let status = script("status", &dir, port);
    assert!(status.contains("leader"), "{status}");
    script("down", &dir, port);
}
