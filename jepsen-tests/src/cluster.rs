//! A cluster of real `cairn` processes: meta nodes formed with `cairn admin init`, blob
//! servers and gateways, each in its own network namespace when possible, with the controls
//! the nemeses need (kill, restart, pause, resume, partition, heal) and the admin queries
//! (leader, health).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::net::{Isolation, Network};
use crate::node::{free_port, Node, NodeSpec, Role};
use crate::slot::Slot;

/// How long one `cairn admin` call may take before it is killed.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);
/// `cairn admin init` adds every member and waits for each to catch up.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// `cairn admin meta add` waits for the new member to catch up before promoting it.
const ADD_MEMBER_TIMEOUT: Duration = Duration::from_secs(90);

/// Fixed ports, used when every node has its own address.
const META_PORT: u16 = 7000;
const BLOB_PORT: u16 = 7100;
const GATEWAY_PORT: u16 = 9000;

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The `cairn` binary.
    pub bin: PathBuf,
    /// Node data and logs go under `DIR/nodes/`.
    pub dir: PathBuf,
    /// Meta nodes (a Raft group of this many voters).
    pub metas: usize,
    /// Blob servers.
    pub blobs: usize,
    /// Data directories per blob server.
    pub blob_disks: usize,
    /// S3 gateways.
    pub gateways: usize,
    /// Try network namespaces (else loopback).
    pub namespaces: bool,
    /// Root access key.
    pub access_key: String,
    /// Root secret key.
    pub secret_key: String,
}

/// A running cluster. Dropping it kills every node and removes the network.
pub struct Cluster {
    cfg: ClusterConfig,
    /// Every node: metas, then blobs, then gateways. Declared before `net` and `slot` so
    /// the processes die before their namespaces go and before the slot is released.
    pub nodes: Vec<Node>,
    net: Network,
    slot: Slot,
    /// Nodes found to have exited by themselves (not killed by the harness): `name: status`.
    crashes: Vec<String>,
    /// Meta nodes removed from the Raft group by the membership nemesis (node indices),
    /// stopped until they are wiped and added back as new members.
    removed: Vec<usize>,
}

impl Cluster {
    /// Starts every node and forms the cluster; returns once every blob server is up.
    pub fn start(cfg: ClusterConfig) -> Result<Cluster> {
        if !cfg.bin.is_file() {
            return Err(Error::Config(format!(
                "no cairn binary at {} (build it with `cargo build --bin cairn`, or pass \
                 --cairn-bin / CAIRN_BIN)",
                cfg.bin.display()
            )));
        }
        if cfg.metas == 0 || cfg.blobs == 0 || cfg.gateways == 0 || cfg.blob_disks == 0 {
            return Err(Error::Config("every role needs at least one node".into()));
        }
        let slot = Slot::acquire()?;
        let nodes_dir = cfg.dir.join("nodes");
        std::fs::create_dir_all(&nodes_dir).map_err(|e| Error::io("create", &nodes_dir, e))?;
        let roles: Vec<(Role, usize)> = (1..=cfg.metas)
            .map(|i| (Role::Meta, i))
            .chain((1..=cfg.blobs).map(|i| (Role::Blob, i)))
            .chain((1..=cfg.gateways).map(|i| (Role::Gateway, i)))
            .collect();
        let names: Vec<String> = roles
            .iter()
            .map(|(r, i)| format!("{}-{i}", r.label()))
            .collect();
        let (net, placements) = Network::create(slot.index, &names, cfg.namespaces);
        let mut specs = Vec::new();
        for (((role, _), name), place) in roles.iter().zip(&names).zip(placements) {
            let port = match (&place.netns, role) {
                (Some(_), Role::Meta) => META_PORT,
                (Some(_), Role::Blob) => BLOB_PORT,
                (Some(_), Role::Gateway) => GATEWAY_PORT,
                (None, _) => free_port()?,
            };
            let data = nodes_dir.join(name);
            specs.push(NodeSpec {
                name: name.clone(),
                role: *role,
                ip: place.ip,
                port,
                netns: place.netns,
                args: Vec::new(),
                env: vec![
                    ("CAIRN_ACCESS_KEY".into(), cfg.access_key.clone()),
                    ("CAIRN_SECRET_KEY".into(), cfg.secret_key.clone()),
                    (
                        "CAIRN_LOG".into(),
                        std::env::var("CAIRN_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
                    ),
                ],
                log: nodes_dir.join(format!("{name}.log")),
                marker: data.display().to_string(),
            });
        }
        let meta_endpoints = specs
            .iter()
            .filter(|s| s.role == Role::Meta)
            .map(|s| format!("http://{}:{}", s.ip, s.port))
            .collect::<Vec<_>>()
            .join(",");
        for spec in &mut specs {
            let addr = format!("{}:{}", spec.ip, spec.port);
            spec.args = match spec.role {
                Role::Meta => vec![
                    "meta".into(),
                    "--listen".into(),
                    addr,
                    "--dir".into(),
                    format!("{}/data", spec.marker),
                ],
                Role::Blob => {
                    let mut args = vec![
                        "blob".into(),
                        "--listen".into(),
                        addr,
                        "--meta".into(),
                        meta_endpoints.clone(),
                    ];
                    args.extend((1..=cfg.blob_disks).map(|d| format!("{}/disk{d}", spec.marker)));
                    args
                }
                Role::Gateway => vec![
                    "gateway".into(),
                    "--address".into(),
                    addr,
                    "--meta".into(),
                    meta_endpoints.clone(),
                ],
            };
        }
        // Gateways have no data directory; their address identifies them instead.
        for spec in &mut specs {
            if spec.role == Role::Gateway {
                spec.marker = format!("{}:{}", spec.ip, spec.port);
            }
        }
        let mut cluster = Cluster {
            nodes: specs.into_iter().map(Node::new).collect(),
            cfg,
            net,
            slot,
            crashes: Vec::new(),
            removed: Vec::new(),
        };
        for i in cluster.indices(Role::Meta) {
            cluster.start_node(i)?;
        }
        cluster.admin_with_timeout(&["init"], INIT_TIMEOUT)?;
        for i in cluster.indices(Role::Blob) {
            cluster.start_node(i)?;
        }
        for i in cluster.indices(Role::Gateway) {
            cluster.start_node(i)?;
        }
        cluster.wait_healthy(Duration::from_secs(90))?;
        Ok(cluster)
    }

    fn start_node(&mut self, i: usize) -> Result<()> {
        let bin = self.cfg.bin.clone();
        self.nodes[i].start(&bin, &self.slot).map(|_| ())
    }

    /// Indices (into [`Cluster::nodes`]) of the nodes of `role`.
    pub fn indices(&self, role: Role) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].spec.role == role)
            .collect()
    }

    /// How the nodes are isolated.
    pub fn isolation(&self) -> &Isolation {
        self.net.isolation()
    }

    /// Whether partitions can be made.
    pub fn can_partition(&self) -> bool {
        self.net.can_partition()
    }

    /// The S3 endpoints (`http://ip:port`) of the gateways, in order.
    pub fn gateway_endpoints(&self) -> Vec<String> {
        self.indices(Role::Gateway)
            .into_iter()
            .map(|i| format!("http://{}", self.nodes[i].addr()))
            .collect()
    }

    /// Every meta endpoint, comma-separated.
    pub fn meta_endpoints(&self) -> String {
        self.indices(Role::Meta)
            .into_iter()
            .map(|i| format!("http://{}", self.nodes[i].addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs `cairn admin --meta ALL args...` (from the harness's namespace, which reaches
    /// every node whatever the partitions); returns stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        self.admin_with_timeout(args, ADMIN_TIMEOUT)
    }

    fn admin_with_timeout(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let command = format!("cairn admin {}", args.join(" "));
        let mut child = Command::new(&self.cfg.bin)
            .arg("admin")
            .arg("--meta")
            .arg(self.meta_endpoints())
            .args(args)
            .env("CAIRN_ACCESS_KEY", &self.cfg.access_key)
            .env("CAIRN_SECRET_KEY", &self.cfg.secret_key)
            // An error is one line in the notes, not a stack trace.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Command {
                command: command.clone(),
                detail: e.to_string(),
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Timeout(format!("{command} ({timeout:?})")));
                }
            }
        }
        crate::error::command_output(command, child.wait_with_output())
    }

    /// `cairn admin status --json`.
    pub fn status(&self) -> Result<Value> {
        let text = self.admin(&["status", "--json"])?;
        serde_json::from_str(&text).map_err(|e| Error::Command {
            command: "cairn admin status --json".into(),
            detail: format!("not JSON: {e}"),
        })
    }

    /// The node index of the current meta leader, per `cairn admin status`.
    pub fn leader(&self) -> Result<usize> {
        let status = self.status()?;
        let address = status["leader_address"].as_str().unwrap_or_default();
        self.indices(Role::Meta)
            .into_iter()
            .find(|&i| self.nodes[i].addr() == address)
            .ok_or_else(|| Error::Command {
                command: "cairn admin status --json".into(),
                detail: format!("leader {address:?} is not one of the meta nodes"),
            })
    }

    /// `kill -9` node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again (same arguments and data) if it is not running.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.note_crash(i);
        self.start_node(i)
    }

    /// Records node `i` as crashed if it exited by itself.
    fn note_crash(&mut self, i: usize) {
        if let Some(status) = self.nodes[i].exited() {
            let name = &self.nodes[i].spec.name;
            tracing::warn!(node = %name, %status, "node had exited by itself");
            self.crashes.push(format!("{name}: {status}"));
        }
    }

    /// Every node that exited by itself so far (checking all of them now), as
    /// `name: status`.
    pub fn crashes(&mut self) -> Vec<String> {
        for i in 0..self.nodes.len() {
            self.note_crash(i);
        }
        self.crashes.clone()
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) -> bool {
        self.nodes[i].pause()
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].resume();
    }

    /// Cuts the nodes of `a` off from those of `b` (both ways).
    pub fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        self.net.cut(a, b)
    }

    /// Removes every partition.
    pub fn heal_network(&self) -> Result<()> {
        self.net.heal()
    }

    /// Removes every fault: resumes paused nodes, restarts dead ones, heals the network,
    /// and adds removed meta nodes back (wiped, as new members).
    pub fn heal_all(&mut self) -> Result<()> {
        let mut first_error = None;
        if let Err(e) = self.net.heal() {
            first_error.get_or_insert(e);
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].resume();
            if self.removed.contains(&i) {
                continue;
            }
            if let Err(e) = self.restart(i) {
                first_error.get_or_insert(e);
            }
        }
        for i in self.removed.clone() {
            if let Err(e) = self.add_back(i) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The Raft member id of meta node `i`, per `cairn admin status`.
    pub fn member_id(&self, i: usize) -> Result<u64> {
        let status = self.status()?;
        let address = self.nodes[i].addr();
        status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["address"].as_str() == Some(address.as_str()))
            .and_then(|m| m["id"].as_u64())
            .ok_or_else(|| Error::Command {
                command: "cairn admin status --json".into(),
                detail: format!("{} ({address}) is not a member", self.nodes[i].spec.name),
            })
    }

    /// Removes meta node `i` from the Raft group (`cairn admin meta remove`) and stops it;
    /// returns its member id. It stays down until [`Cluster::add_back`].
    pub fn remove_meta(&mut self, i: usize) -> Result<u64> {
        let id = self.member_id(i)?;
        self.admin(&["meta", "remove", &id.to_string()])?;
        self.removed.push(i);
        self.nodes[i].kill();
        Ok(id)
    }

    /// Adds removed meta node `i` back: its data directory is wiped (a removed member must
    /// not come back under its old id, which is never reused), it starts pristine at the
    /// same address and `cairn admin meta add` makes it a voter again once it has caught up.
    pub fn add_back(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill();
        // An earlier attempt that timed out may have left it a member (a learner that never
        // caught up): remove that member first, or the add is refused as AlreadyExists.
        if let Ok(id) = self.member_id(i) {
            self.admin(&["meta", "remove", &id.to_string()])?;
        }
        let data = PathBuf::from(format!("{}/data", self.nodes[i].spec.marker));
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|e| Error::io("remove", &data, e))?;
        }
        self.start_node(i)?;
        let address = self.nodes[i].addr();
        self.admin_with_timeout(&["meta", "add", &address], ADD_MEMBER_TIMEOUT)?;
        self.removed.retain(|&r| r != i);
        Ok(())
    }

    /// Waits until the meta group has a leader, every member has applied what was committed
    /// when the previous poll looked, and every blob server is up.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let metas = self.indices(Role::Meta).len();
        let blobs = self.indices(Role::Blob).len();
        let mut previous_commit: Option<u64> = None;
        let mut last = String::from("no status yet");
        while Instant::now() < deadline {
            match self.status() {
                Ok(s) => {
                    let commit = s["commit_index"].as_u64();
                    let members = s["members"].as_array().cloned().unwrap_or_default();
                    let applied: Vec<Option<u64>> = members
                        .iter()
                        .map(|m| m["applied_index"].as_u64())
                        .collect();
                    let caught_up = members.len() == metas
                        && previous_commit.is_some()
                        && applied.iter().all(|a| *a >= previous_commit);
                    let up = s["blob_nodes"]
                        .as_array()
                        .map(|b| b.iter().filter(|n| n["state"] == "up").count())
                        .unwrap_or(0);
                    if caught_up && up >= blobs {
                        return Ok(());
                    }
                    last = format!(
                        "commit {commit:?}, applied {applied:?}, {up} of {blobs} blob nodes up"
                    );
                    previous_commit = commit;
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(Error::Timeout(format!("a healthy cluster (last: {last})")))
    }

    /// Node logs live here.
    pub fn nodes_dir(&self) -> PathBuf {
        self.cfg.dir.join("nodes")
    }

    /// Kills every node (the network goes when the cluster is dropped).
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    /// The binary in use.
    pub fn bin(&self) -> &Path {
        &self.cfg.bin
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
