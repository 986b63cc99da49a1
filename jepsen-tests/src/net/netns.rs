//! One network namespace per node (Linux, root, `ip` from iproute2).
//!
//! Layout for slot N: a hub namespace `cairnjN-hub` holds a bridge; each node's namespace
//! `cairnjN-<node>` has a veth `eth0` (10.77.N.(10+i)/24) whose peer is on the bridge; the
//! harness reaches every node through a veth `cairnjNup` (10.77.N.1) in its own namespace.
//! The bridge lives in its own namespace on purpose: bridged traffic then meets only that
//! namespace's (empty) firewall, not the host's (Docker's FORWARD policy DROP, for
//! instance, would silently drop it), and the host's firewall is never touched.
//!
//! Partitions are DROP rules on INPUT inside the node namespaces (iptables, else nft).
//! Everything is removed on drop, and leftovers of a crashed run in the same slot are
//! removed before a new one is created.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use super::Placement;
use crate::error::{Error, Result};

/// The nft table partition rules live in.
const NFT_TABLE: &str = "cairnj";

/// How partition rules are installed in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firewall {
    Iptables,
    Nft,
}

/// The namespaces, bridge and veths of one run.
pub struct Netns {
    slot: u8,
    /// (namespace, address) of each node, in node order.
    nodes: Vec<(String, Ipv4Addr)>,
    firewall: std::result::Result<Firewall, String>,
}

/// Why namespaces cannot be used here, if they cannot.
pub fn available() -> std::result::Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`ip -V` failed: {}", out.status)),
        Err(e) => Err(format!("`ip` (iproute2) not found: {e}")),
    }
}

/// Runs `program args...`; its stdout, or an error with its stderr.
fn run(program: &str, args: &[&str]) -> Result<String> {
    run_with_input(program, args, None)
}

fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(text.as_bytes());
    }
    crate::error::command_output(command, child.wait_with_output())
}

/// Runs a command inside namespace `ns`.
fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// The namespace-name prefix of slot `slot`.
fn prefix(slot: u8) -> String {
    format!("cairnj{slot}")
}

/// Removes the namespaces (killing their processes) and the uplink of slot `slot`.
fn remove(slot: u8) {
    let prefix = prefix(slot);
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if !name.starts_with(&format!("{prefix}-")) {
                continue;
            }
            if let Ok(pids) = run("ip", &["netns", "pids", name]) {
                for pid in pids.lines().filter_map(|p| p.trim().parse::<u32>().ok()) {
                    crate::signal::kill(pid);
                }
            }
            let _ = run("ip", &["netns", "del", name]);
        }
    }
    let uplink = format!("{prefix}up");
    if run("ip", &["link", "show", &uplink]).is_ok() {
        let _ = run("ip", &["link", "del", &uplink]);
    }
}

impl Netns {
    /// Creates the hub, the uplink and one namespace per node, after removing leftovers of
    /// slot `slot`. The caller holds the slot's lock.
    pub fn create(slot: u8, names: &[String]) -> Result<Netns> {
        remove(slot);
        let prefix = prefix(slot);
        let hub = format!("{prefix}-hub");
        let uplink = format!("{prefix}up");
        let mut ns = Netns {
            slot,
            nodes: Vec::new(),
            firewall: Err("not checked".into()),
        };
        // From here on, a failure drops `ns`, which removes whatever exists so far; a signal
        // removes it through the cleanup registry.
        crate::cleanup::set_network_teardown(Box::new(move || remove(slot)));
        run("ip", &["netns", "add", &hub])?;
        run("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        run(
            "ip",
            &[
                "link", "add", &uplink, "type", "veth", "peer", "name", "up0", "netns", &hub,
            ],
        )?;
        run(
            "ip",
            &["-n", &hub, "link", "set", "up0", "master", "br0", "up"],
        )?;
        run(
            "ip",
            &["addr", "add", &format!("10.77.{slot}.1/24"), "dev", &uplink],
        )?;
        run("ip", &["link", "set", &uplink, "up"])?;
        for (i, name) in names.iter().enumerate() {
            let node_ns = format!("{prefix}-{name}");
            let ip = Ipv4Addr::new(10, 77, slot, 10 + i as u8);
            let peer = format!("v{i}");
            run("ip", &["netns", "add", &node_ns])?;
            run(
                "ip",
                &[
                    "-n", &hub, "link", "add", &peer, "type", "veth", "peer", "name", "eth0",
                    "netns", &node_ns,
                ],
            )?;
            run(
                "ip",
                &["-n", &hub, "link", "set", &peer, "master", "br0", "up"],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    &node_ns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &node_ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &node_ns, "link", "set", "lo", "up"])?;
            ns.nodes.push((node_ns, ip));
        }
        ns.firewall = ns.detect_firewall();
        if let Ok(fw) = ns.firewall {
            ns.heal_with(fw)?;
        }
        Ok(ns)
    }

    /// Where each node runs.
    pub fn placements(&self) -> Vec<Placement> {
        self.nodes
            .iter()
            .map(|(ns, ip)| Placement {
                ip: IpAddr::V4(*ip),
                netns: Some(ns.clone()),
            })
            .collect()
    }

    /// Why partitions are unavailable, if they are.
    pub fn firewall_problem(&self) -> Option<String> {
        self.firewall.as_ref().err().cloned()
    }

    /// iptables if it works inside a namespace, else nft (with our table and chain made in
    /// every node namespace).
    fn detect_firewall(&self) -> std::result::Result<Firewall, String> {
        let probe = &self.nodes.first().ok_or("no nodes")?.0;
        let iptables = in_ns(probe, "iptables", &["-w", "-n", "-L", "INPUT"]);
        if iptables.is_ok() {
            return Ok(Firewall::Iptables);
        }
        let mut nft_error = None;
        for (ns, _) in &self.nodes {
            let script = format!(
                "add table inet {NFT_TABLE}\n\
                 add chain inet {NFT_TABLE} input {{ type filter hook input priority 0; policy accept; }}\n"
            );
            if let Err(e) = run_with_input(
                "ip",
                &["netns", "exec", ns, "nft", "-f", "-"],
                Some(&script),
            ) {
                nft_error = Some(e.to_string());
                break;
            }
        }
        match nft_error {
            None => Ok(Firewall::Nft),
            Some(nft) => Err(format!(
                "no usable firewall in the namespaces: iptables: {}; nft: {nft}",
                iptables.err().map(|e| e.to_string()).unwrap_or_default()
            )),
        }
    }

    fn firewall(&self) -> Result<Firewall> {
        self.firewall.clone().map_err(Error::Config)
    }

    /// Drops packets between the nodes of `a` and those of `b`, both ways: each side's
    /// INPUT drops what comes from the other.
    pub fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        let fw = self.firewall()?;
        for (side, other) in [(a, b), (b, a)] {
            let sources: Vec<String> = other
                .iter()
                .filter_map(|&i| self.nodes.get(i))
                .map(|(_, ip)| ip.to_string())
                .collect();
            if sources.is_empty() {
                continue;
            }
            for &i in side {
                let Some((ns, _)) = self.nodes.get(i) else {
                    continue;
                };
                match fw {
                    Firewall::Iptables => {
                        in_ns(
                            ns,
                            "iptables",
                            &["-w", "-A", "INPUT", "-s", &sources.join(","), "-j", "DROP"],
                        )?;
                    }
                    Firewall::Nft => {
                        let rule = format!(
                            "add rule inet {NFT_TABLE} input ip saddr {{ {} }} drop",
                            sources.join(", ")
                        );
                        in_ns(ns, "nft", &[&rule])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> Result<()> {
        self.heal_with(self.firewall()?)
    }

    fn heal_with(&self, fw: Firewall) -> Result<()> {
        for (ns, _) in &self.nodes {
            match fw {
                Firewall::Iptables => in_ns(ns, "iptables", &["-w", "-F", "INPUT"])?,
                Firewall::Nft => {
                    in_ns(ns, "nft", &[&format!("flush chain inet {NFT_TABLE} input")])?
                }
            };
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(self.slot);
        crate::cleanup::clear_network_teardown();
    }
}
