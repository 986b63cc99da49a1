//! The simulated nemesis: a seeded schedule of faults, one at a time, each undone before
//! the next.

use std::collections::BTreeSet;
use std::time::Duration;

use cairn_meta::types::NodeId;
use openraft::ChangeMembers;
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
    /// A voter removed from the group (it keeps running, cut off from the log); undone by
    /// adding it back as a learner and then a voter.
    Membership(NodeId),
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
        inject(cluster, trace, &fault).await?;
        injected += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
        heal(cluster, trace).await?;
        trace.note("fault stop");
    }
    heal(cluster, trace).await?;
    trace.note("healed");
    Ok(injected)
}

async fn choose(cluster: &SimCluster, rng: &mut StdRng) -> Fault {
    let mut ids = cluster.ids().await;
    let n = ids.len();
    match rng.random_range(0..100) {
        0..18 => {
            ids.shuffle(rng);
            let cut = rng.random_range(1..=n / 2);
            let rest = ids.split_off(cut);
            Fault::Halves(ids, rest)
        }
        18..32 => match cluster.leaders().await.first() {
            Some(&(_, leader)) => Fault::IsolateLeader(leader),
            None => Fault::Slow,
        },
        32..42 => Fault::Lossy(rng.random_range(0.1..0.5)),
        42..50 => Fault::Slow,
        50..65 => {
            ids.shuffle(rng);
            ids.truncate(rng.random_range(1..=n.div_ceil(2)));
            Fault::Crash {
                nodes: ids,
                power_loss: false,
            }
        }
        65..82 => {
            ids.shuffle(rng);
            ids.truncate(rng.random_range(1..=n.div_ceil(2)));
            Fault::Crash {
                nodes: ids,
                power_loss: true,
            }
        }
        82..94 => Fault::Membership(ids[rng.random_range(0..n)]),
        // Every node at once: only what was fsynced survives anywhere.
        _ => Fault::Crash {
            nodes: ids,
            power_loss: true,
        },
    }
}

async fn inject(cluster: &SimCluster, trace: &Trace, fault: &Fault) -> Result<()> {
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
        Fault::Membership(id) => {
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([*id]));
            let deadline = Instant::now() + Duration::from_secs(5);
            if !cluster.change_membership(change, None, deadline).await {
                trace.note(format!("could not remove voter {id}"));
            }
        }
    }
    Ok(())
}

/// Removes every fault: links restored, crashed nodes restarted, every node a voter again.
pub async fn heal(cluster: &SimCluster, trace: &Trace) -> Result<()> {
    cluster.net.heal();
    cluster.restart_all().await?;
    let all: BTreeSet<NodeId> = cluster.ids().await.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(voters) = cluster.voters().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(&missing) = all.difference(&voters).next() else {
            return Ok(());
        };
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([missing]));
        if cluster
            .change_membership(change, Some(missing), deadline)
            .await
        {
            trace.note(format!("voter {missing} added back"));
        }
    }
    trace.note("could not restore every voter in 30 s");
    Ok(())
}
