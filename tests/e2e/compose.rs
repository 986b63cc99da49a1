//! The docker-compose dev cluster (`deploy/compose/`): `up.sh` builds the images from the binary
//! under test and brings 3 meta + 4 blob + 2 gateways + HAProxy up under a project name of its
//! own; S3 through the load balancer keeps working after the meta leader's container and one
//! blob container are stopped; `down.sh --volumes` leaves nothing behind.
//!
//! Needs a Docker engine and Compose (v2 or docker-compose 1.x); without them the test says
//! SKIPPED on stderr and passes. The first run on a machine also makes the Debian base image
//! (debootstrap, about two minutes); later runs take 30 to 40 s.

use std::io::Write;
use std::process::Command;

use aws_sdk_s3::Client;

use crate::cluster_harness::free_port;
use crate::harness::*;

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose");

/// A line on the real stderr: the test harness captures `eprintln!` of passing tests.
fn loud(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Why the compose test cannot run here, if it cannot.
fn missing_docker() -> Option<String> {
    match Command::new("docker").arg("info").output() {
        Err(e) => return Some(format!("no docker command ({e})")),
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            return Some(format!(
                "no Docker engine (`docker info`: {})",
                err.lines().last().unwrap_or("failed")
            ));
        }
        Ok(_) => {}
    }
    let compose = Command::new(format!("{SCRIPTS}/compose.sh"))
        .arg("version")
        .output();
    match compose {
        Ok(out) if out.status.success() => None,
        _ => Some("neither `docker compose` nor `docker-compose` is installed".into()),
    }
}

/// One compose project of the test's own; `down --volumes` and the image removal happen on
/// drop, also when the test fails.
struct Project {
    name: String,
    image: String,
    port: u16,
    down: bool,
}

impl Project {
    fn new() -> Project {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("cairn-e2e-{}-{}", std::process::id(), nanos % 1_000_000);
        Project {
            image: format!("cairn-e2e:{name}"),
            name,
            port: free_port(),
            down: false,
        }
    }

    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new(format!("{SCRIPTS}/{script}"));
        cmd.env("COMPOSE_PROJECT_NAME", &self.name)
            .env("CAIRN_IMAGE", &self.image)
            .env("CAIRN_S3_PORT", self.port.to_string())
            .env("CAIRN_S3_BIND", "127.0.0.1")
            .env("CAIRN_ACCESS_KEY", ACCESS_KEY)
            .env("CAIRN_SECRET_KEY", SECRET_KEY)
            .env("CAIRN_BIN", cairn_bin());
        cmd
    }

    /// Runs `deploy/compose/SCRIPT args...`; panics unless it succeeds; returns stdout.
    fn run(&self, script: &str, args: &[&str]) -> String {
        let out = self
            .command(script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script} {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `cairn admin status --json`, run inside a meta container.
    fn status(&self) -> Option<serde_json::Value> {
        let out = self.command("status.sh").arg("--json").output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Polls the status until `pred` holds (up to 90 s).
    fn wait_for(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let status = self.status();
            if let Some(s) = status.as_ref().filter(|s| pred(s)) {
                return s.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; last status: {status:#?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Docker objects (containers or volumes) still labelled with this project.
    fn leftovers(&self, kind: &[&str]) -> String {
        let out = Command::new("docker")
            .args(kind)
            .args(["-q", "--filter"])
            .arg(format!("label=com.docker.compose.project={}", self.name))
            .output()
            .expect("docker ls");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if !self.down {
            if std::thread::panicking() {
                if let Ok(out) = self
                    .command("compose.sh")
                    .args(["logs", "--no-color", "--tail", "40"])
                    .output()
                {
                    eprintln!(
                        "---- compose logs ----\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                }
            }
            let _ = self.command("down.sh").arg("--volumes").output();
        }
        let _ = Command::new("docker").args(["rmi", &self.image]).output();
    }
}

async fn put_get(s3: &Client, key: &str, body: &[u8]) {
    put(s3, "compose", key, body.to_vec()).await;
    assert!(get(s3, "compose", key).await == body, "{key} reads back");
}

async fn keys(s3: &Client) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket("compose")
        .send()
        .await
        .expect("list");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_cluster_serves_s3_through_the_load_balancer_and_survives_stopped_containers() {
    if let Some(why) = missing_docker() {
        loud(&format!(
            "SKIPPED compose::compose_cluster_serves_s3_through_the_load_balancer_and_survives_stopped_containers: {why}"
        ));
        return;
    }
    let mut project = Project::new();
    let out = project.run("up.sh", &[]);
    let endpoint = out
        .lines()
        .find_map(|l| l.strip_prefix("S3 "))
        .unwrap_or_else(|| panic!("no `S3 ` line from up.sh:\n{out}"))
        .to_string();
    assert_eq!(endpoint, format!("http://127.0.0.1:{}", project.port));
    assert!(out.contains(&format!("access key: {ACCESS_KEY}")), "{out}");

    let status = project.status().expect("status after up");
    let voters = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["voter"] == true && m["role"] != "unreachable")
        .count();
    let blobs_up = status["blob_nodes"]
        .as_array()
        .expect("blob nodes")
        .iter()
        .filter(|b| b["state"] == "up")
        .count();
    assert_eq!((voters, blobs_up), (3, 4), "{status:#}");

    // Through the load balancer, with the real SDK.
    let s3 = client_for(&endpoint, ACCESS_KEY, SECRET_KEY);
    s3.create_bucket()
        .bucket("compose")
        .send()
        .await
        .expect("create bucket");
    let small = data(1_000, 1);
    let big = data(3_000_000, 2);
    put_get(&s3, "small", &small).await;
    put_get(&s3, "dir/big", &big).await;
    assert_eq!(keys(&s3).await, ["dir/big", "small"]);

    // Stop the meta leader's container and one blob server's.
    let leader = status["leader_address"]
        .as_str()
        .expect("leader address")
        .to_string();
    let leader_service = leader.split(':').next().unwrap_or_default().to_string();
    assert!(
        ["meta-1", "meta-2", "meta-3"].contains(&leader_service.as_str()),
        "leader {leader}"
    );
    project.run("compose.sh", &["stop", &leader_service, "blob-2"]);
    let status = project.wait_for("a new meta leader", |s| {
        s["leader_address"].as_str().is_some_and(|a| a != leader)
    });
    let old = status["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["address"] == leader.as_str())
        .unwrap_or_else(|| panic!("{leader} is still a member: {status:#}"));
    assert_eq!(old["role"], "unreachable", "{status:#}");

    // Objects written before read back (degraded: blob-2 held some of their shards), new writes
    // land, and the listing has them all. (4+2 over 4 nodes puts shards of every object on
    // every blob server.)
    assert!(get(&s3, "compose", "small").await == small);
    assert!(get(&s3, "compose", "dir/big").await == big);
    let after = data(2_500_000, 3);
    put_get(&s3, "after", &after).await;
    put_get(&s3, "dir/after-small", &small).await;
    assert_eq!(
        keys(&s3).await,
        ["after", "dir/after-small", "dir/big", "small"]
    );

    project.run("down.sh", &["--volumes"]);
    project.down = true;
    assert_eq!(project.leftovers(&["ps", "-a"]), "", "containers left");
    assert_eq!(project.leftovers(&["volume", "ls"]), "", "volumes left");
}
