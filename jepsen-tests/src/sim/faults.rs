//! The simulated nemesis: a seeded schedule of faults, one at a time, each undone before
//! the next.

use std::time::Duration;

use cairn_meta::types::NodeId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use super::cluster::SimCluster;
use super::trace::Trace;
use crate::Result;

/// One fault.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The nodes split into two random groups (the smaller one of at least one node).
    Halves(Vec<NodeId>, Vec<NodeId>),
    /// The leader cut off from every other node.
    IsolateLeader(NodeId),
    /// A fraction of all messages lost.
    Lossy(f64),
    /// Every message delayed by tens to hundreds of milliseconds.
    Slow,
    /// Nodes crash and later restart; with `power_loss`, losing what they had not fsynced.
    Crash {
        /// The nodes.
        nodes: Vec<NodeId>,
        /// Whether unsynced writes are lost.
        power_loss: bool,
    },
}

/// Injects faults until `until`, then heals everything. Returns how many were injected.
pub async fn run(
    cluster: &SimCluster,
    trace: &Trace,
    mut rng: StdRng,
    until: Instant,
) -> Result<u32> {
    let mut injected = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..1000))).await;
        if Instant::now() >= until {
            break;
        }
        let fault = choose(cluster, &mut rng).await;
        trace.note(format!("fault start {fault:?}"));
        inject(cluster, &fault).await?;
        injected += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        heal(cluster).await?;
        trace.note("fault stop");
    }
    heal(cluster).await?;
    trace.note("healed");
    Ok(injected)
}

async fn choose(cluster: &SimCluster, rng: &mut StdRng) -> Fault {
    let mut ids = cluster.ids().await;
    let n = ids.len();
    match rng.random_range(0..100) {
        0..20 => {
            ids.shuffle(rng);
            let cut = rng.random_range(1..=n / 2);
            let rest = ids.split_off(cut);
            Fault::Halves(ids, rest)
        }
        20..35 => match cluster.leaders().await.first() {
            Some(&(_, leader)) => Fault::IsolateLeader(leader),
            None => Fault::Slow,
        },
        35..45 => Fault::Lossy(rng.random_range(0.1..0.5)),
        45..55 => Fault::Slow,
        55..75 => {
            ids.shuffle(rng);
            ids.truncate(rng.random_range(1..=n.div_ceil(2)));
            Fault::Crash {
                nodes: ids,
                power_loss: false,
            }
        }
        75..95 => {
            ids.shuffle(rng);
            ids.truncate(rng.random_range(1..=n.div_ceil(2)));
            Fault::Crash {
                nodes: ids,
                power_loss: true,
            }
        }
        // Every node at once: only what was fsynced survives anywhere.
        _ => Fault::Crash {
            nodes: ids,
            power_loss: true,
        },
    }
}

async fn inject(cluster: &SimCluster, fault: &Fault) -> Result<()> {
    match fault {
        Fault::Halves(a, b) => cluster.net.partition(a, b),
        Fault::IsolateLeader(leader) => {
            let others: Vec<NodeId> = cluster
                .ids()
                .await
                .into_iter()
                .filter(|id| id != leader)
                .collect();
            cluster.net.partition(&[*leader], &others);
        }
        Fault::Lossy(loss) => cluster.net.set_quality(*loss, super::net::NORMAL_DELAY_MS),
        Fault::Slow => cluster.net.set_quality(0.0, (20, 300)),
        Fault::Crash { nodes, power_loss } => {
            for &id in nodes {
                cluster.crash(id, *power_loss).await?;
            }
        }
    }
    Ok(())
}

/// Removes every fault: links restored, crashed nodes restarted.
pub async fn heal(cluster: &SimCluster) -> Result<()> {
    cluster.net.heal();
    cluster.restart_all().await
}
