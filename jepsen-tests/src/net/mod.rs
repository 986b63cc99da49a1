//! Where the nodes live on the network, and network partitions.
//!
//! With root and `ip` on Linux every node gets its own network namespace and address (see
//! [`netns`]), so packets between any two nodes can be dropped. Otherwise all nodes share
//! 127.0.0.1 (distinct ports) and the partition nemesis is not available; kills and pauses
//! still are.

use std::net::{IpAddr, Ipv4Addr};

use crate::error::Result;

#[cfg(target_os = "linux")]
pub mod netns;

/// Where one node runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The address it listens on and is reached at.
    pub ip: IpAddr,
    /// The network namespace to start it in (`ip netns exec`), if any.
    pub netns: Option<String>,
}

/// How the nodes are isolated from each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// One network namespace per node; partitions drop packets with a firewall.
    Namespaces,
    /// One namespace per node, but no usable firewall: no partitions.
    NamespacesWithoutFirewall(String),
    /// Everything on 127.0.0.1: no partitions. The reason namespaces are not used.
    Loopback(String),
}

impl Isolation {
    /// A short description for the summary line.
    pub fn label(&self) -> &'static str {
        match self {
            Isolation::Namespaces => "netns",
            Isolation::NamespacesWithoutFirewall(_) => "netns-no-firewall",
            Isolation::Loopback(_) => "loopback",
        }
    }
}

enum Inner {
    #[cfg(target_os = "linux")]
    Netns(netns::Netns),
    Loopback,
}

/// The network of one run. Dropping it removes what it created.
pub struct Network {
    inner: Inner,
    isolation: Isolation,
}

impl Network {
    /// Places `nodes` (their names) for slot `slot`: in namespaces when `want_namespaces`
    /// and they can be created here, on loopback otherwise (the reason is kept).
    pub fn create(slot: u8, nodes: &[String], want_namespaces: bool) -> (Network, Vec<Placement>) {
        let loopback = |reason: String| {
            let placements = nodes
                .iter()
                .map(|_| Placement {
                    ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    netns: None,
                })
                .collect();
            (
                Network {
                    inner: Inner::Loopback,
                    isolation: Isolation::Loopback(reason),
                },
                placements,
            )
        };
        if !want_namespaces {
            return loopback("namespaces not requested (--no-netns)".into());
        }
        #[cfg(target_os = "linux")]
        {
            if let Err(why) = netns::available() {
                return loopback(why);
            }
            match netns::Netns::create(slot, nodes) {
                Ok(ns) => {
                    let placements = ns.placements();
                    let isolation = match ns.firewall_problem() {
                        None => Isolation::Namespaces,
                        Some(why) => Isolation::NamespacesWithoutFirewall(why),
                    };
                    (
                        Network {
                            inner: Inner::Netns(ns),
                            isolation,
                        },
                        placements,
                    )
                }
                Err(e) => loopback(format!("creating namespaces failed: {e}")),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = slot;
            loopback("network namespaces need Linux".into())
        }
    }

    /// How the nodes are isolated.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// Whether [`Network::cut`] works.
    pub fn can_partition(&self) -> bool {
        self.isolation == Isolation::Namespaces
    }

    /// Makes the nodes (indices into the node list) in `a` and those in `b` unable to reach
    /// each other, in both directions. Clients (the harness) still reach every node.
    pub fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        match &self.inner {
            #[cfg(target_os = "linux")]
            Inner::Netns(ns) => ns.cut(a, b),
            Inner::Loopback => {
                let _ = (a, b);
                Err(crate::error::Error::Config(
                    "partitions need network namespaces".into(),
                ))
            }
        }
    }

    /// Removes every partition rule.
    pub fn heal(&self) -> Result<()> {
        match &self.inner {
            #[cfg(target_os = "linux")]
            Inner::Netns(ns) => ns.heal(),
            Inner::Loopback => Ok(()),
        }
    }
}
