//! A multi-process cluster of the real binary: separate `cairn meta`, `cairn blob` and
//! `cairn gateway` processes on loopback, formed with `cairn admin`, with handles to kill and
//! restart any one of them.

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_s3::Client;

use crate::harness::*;

/// A free loopback port (the OS picks it; a restarted node reuses it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One restartable process: its arguments and, while it runs, its handle.
pub struct Node {
    pub args: Vec<String>,
    pub log: PathBuf,
    pub env: Vec<(&'static str, String)>,
    pub proc: Option<Proc>,
}

impl Node {
    fn start(&mut self, marker: &str) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut proc = Proc::spawn(&self.args, &self.log, &env);
        let line = proc.wait_line(marker);
        self.proc = Some(proc);
        line
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    /// `host:port` of each meta node.
    pub meta_addrs: Vec<String>,
    pub metas: Vec<Node>,
    pub blobs: Vec<Node>,
    pub gateways: Vec<Node>,
    pub gateway_endpoints: Vec<String>,
}

impl Cluster {
    /// `metas` meta nodes joined into one cluster, `blobs` blob servers with `disks` each,
    /// and `gateways` gateways. `meta_env` goes to every meta node.
    pub fn start(
        metas: usize,
        blobs: usize,
        disks: usize,
        gateways: usize,
        meta_env: &[(&'static str, &str)],
    ) -> Cluster {
        Self::start_zoned(metas, &vec![""; blobs], disks, gateways, meta_env)
    }

    /// Like [`Cluster::start`], with one blob server per entry of `zones`, labelled with it.
    pub fn start_zoned(
        metas: usize,
        zones: &[&str],
        disks: usize,
        gateways: usize,
        meta_env: &[(&'static str, &str)],
    ) -> Cluster {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut cluster = Cluster {
            tmp,
            meta_addrs: Vec::new(),
            metas: Vec::new(),
            blobs: Vec::new(),
            gateways: Vec::new(),
            gateway_endpoints: Vec::new(),
        };
        for _ in 0..metas {
            cluster.add_meta_process(meta_env);
        }
        cluster.admin_ok(&["init"]);
        for zone in zones {
            cluster.add_blob(zone, disks);
        }
        let meta = cluster.meta_endpoints();
        for _ in 0..gateways {
            cluster.add_gateway(&meta);
        }
        cluster.wait_for_blob_nodes(zones.len());
        cluster
    }

    /// Starts one more gateway that knows only the meta endpoints `meta` (comma-separated);
    /// returns its index.
    pub fn add_gateway(&mut self, meta: &str) -> usize {
        let i = self.gateways.len();
        let mut node = Node {
            args: vec![
                "gateway".into(),
                "--address".into(),
                format!("127.0.0.1:{}", free_port()),
                "--meta".into(),
                meta.to_string(),
            ],
            log: self.tmp.path().join(format!("gateway{i}.log")),
            env: vec![("CAIRN_SHARD_DELETE_GRACE", "1".into())],
            proc: None,
        };
        let endpoint = node.start("S3");
        self.gateway_endpoints.push(first_word(&endpoint));
        self.gateways.push(node);
        i
    }

    pub fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).display().to_string()
    }

    /// Starts one more pristine meta process (not yet a member); returns its index.
    pub fn add_meta_process(&mut self, env: &[(&'static str, &str)]) -> usize {
        let i = self.metas.len();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut node = Node {
            args: vec![
                "meta".into(),
                "--listen".into(),
                addr.clone(),
                "--dir".into(),
                self.path(&format!("meta{i}")),
            ],
            log: self.tmp.path().join(format!("meta{i}.log")),
            env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            proc: None,
        };
        node.start("META");
        self.meta_addrs.push(addr);
        self.metas.push(node);
        i
    }

    /// Starts one more blob server with `disks` disks in `zone`; returns its index.
    pub fn add_blob(&mut self, zone: &str, disks: usize) -> usize {
        self.add_blob_with_env(zone, disks, &[])
    }

    /// Like [`Cluster::add_blob`], with extra environment variables (its settings). Its
    /// disks are `blob{i}-d{d}` under the cluster's directory.
    pub fn add_blob_with_env(
        &mut self,
        zone: &str,
        disks: usize,
        env: &[(&'static str, &str)],
    ) -> usize {
        let i = self.blobs.len();
        let mut args = vec![
            "blob".to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
            "--meta".into(),
            self.meta_endpoints(),
        ];
        args.extend((0..disks).map(|d| self.path(&format!("blob{i}-d{d}"))));
        let mut node = Node {
            args,
            log: self.tmp.path().join(format!("blob{i}.log")),
            env: std::iter::once(("CAIRN_BLOB_ZONE", zone.to_string()))
                .chain(env.iter().map(|(k, v)| (*k, v.to_string())))
                .collect(),
            proc: None,
        };
        node.start("BLOB");
        self.blobs.push(node);
        i
    }

    /// Every meta endpoint, comma-separated (what the other roles take).
    pub fn meta_endpoints(&self) -> String {
        self.meta_addrs
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `cairn admin --meta ALL args...`; returns (success, stdout, stderr).
    pub fn admin(&self, args: &[&str]) -> (bool, String, String) {
        self.admin_at(&self.meta_endpoints(), args)
    }

    /// `cairn admin --meta <endpoints> args...`: (success, stdout, stderr).
    pub fn admin_at(&self, endpoints: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(cairn_bin())
            .arg("admin")
            .arg("--meta")
            .arg(endpoints)
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

    /// Like [`Cluster::admin`], panicking unless it succeeds; returns stdout.
    pub fn admin_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.admin(args);
        assert!(ok, "cairn admin {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    /// `cairn admin status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin_ok(&["status", "--json"])).expect("status json")
    }

    /// Index (into `metas`) of the current leader.
    pub fn leader(&self) -> usize {
        let status = self.status();
        let address = status["leader_address"].as_str().expect("leader address");
        self.meta_addrs
            .iter()
            .position(|a| a == address)
            .unwrap_or_else(|| panic!("leader {address} is not one of {:?}", self.meta_addrs))
    }

    /// Waits until `n` blob nodes are registered and up.
    pub fn wait_for_blob_nodes(&self, n: usize) {
        self.wait_for("blob nodes up", |s| {
            s["blob_nodes"]
                .as_array()
                .map(|a| a.iter().filter(|b| b["state"] == "up").count() >= n)
                .unwrap_or(false)
        });
    }

    /// Polls `cairn admin status` until `pred` holds (up to 60 s).
    pub fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (ok, stdout, _) = self.admin(&["status", "--json"]);
            if ok {
                if let Ok(status) = serde_json::from_str::<serde_json::Value>(&stdout) {
                    if pred(&status) {
                        return status;
                    }
                    if std::time::Instant::now() > deadline {
                        panic!("timed out waiting for {what}; last status:\n{status:#}");
                    }
                }
            } else if std::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; status failed");
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// An S3 client through gateway `i`.
    pub fn client(&self, i: usize) -> Client {
        client_for(&self.gateway_endpoints[i], ACCESS_KEY, SECRET_KEY)
    }

    pub fn restart_meta(&mut self, i: usize) {
        self.metas[i].start("META");
    }

    pub fn restart_gateway(&mut self, i: usize) {
        self.gateways[i].start("S3");
    }

    pub fn restart_blob(&mut self, i: usize) {
        self.blobs[i].start("BLOB");
    }
}
