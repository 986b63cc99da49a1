//! Nemeses: faults injected on a schedule (quiet for a while, one fault for a while, heal,
//! repeat) and recorded in the history as `nemesis` events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::history::Recorder;
use crate::node::Role;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the meta leader; restart it at the heal.
    KillMetaLeader,
    /// `kill -9` a random minority of the meta nodes.
    KillMeta,
    /// `kill -9` one blob server.
    KillBlob,
    /// `kill -9` one gateway.
    KillGateway,
    /// SIGSTOP the meta leader; SIGCONT at the heal.
    PauseMetaLeader,
    /// SIGSTOP one meta node.
    PauseMeta,
    /// SIGSTOP one blob server.
    PauseBlob,
    /// SIGSTOP one gateway.
    PauseGateway,
    /// Cut the meta leader off from every other node.
    PartitionLeader,
    /// Cut the nodes into two random halves.
    PartitionHalves,
    /// Majorities ring (Jepsen's `majorities-ring`): the meta nodes in a random ring, each
    /// reaching only its two neighbours, so each sees a majority (itself and the two) and no
    /// two see the same one; every blob server and gateway reaches three consecutive meta
    /// nodes of the ring (a majority) and every other blob server and gateway.
    PartitionRing,
    /// Cut one random blob server or gateway off from every other node.
    PartitionNode,
    /// Remove a meta follower from the Raft group (`cairn admin meta remove`) and stop it;
    /// undone by wiping it and adding it back as a new member (`cairn admin meta add`), which
    /// restores all the voters.
    Membership,
}

impl Fault {
    /// Every fault, in a fixed order.
    pub const ALL: [Fault; 13] = [
        Fault::KillMetaLeader,
        Fault::KillMeta,
        Fault::KillBlob,
        Fault::KillGateway,
        Fault::PauseMetaLeader,
        Fault::PauseMeta,
        Fault::PauseBlob,
        Fault::PauseGateway,
        Fault::PartitionLeader,
        Fault::PartitionHalves,
        Fault::PartitionRing,
        Fault::PartitionNode,
        Fault::Membership,
    ];

    /// The name used on the command line and in the history.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillMetaLeader => "kill-meta-leader",
            Fault::KillMeta => "kill-meta",
            Fault::KillBlob => "kill-blob",
            Fault::KillGateway => "kill-gateway",
            Fault::PauseMetaLeader => "pause-meta-leader",
            Fault::PauseMeta => "pause-meta",
            Fault::PauseBlob => "pause-blob",
            Fault::PauseGateway => "pause-gateway",
            Fault::PartitionLeader => "partition-leader",
            Fault::PartitionHalves => "partition-halves",
            Fault::PartitionRing => "partition-ring",
            Fault::PartitionNode => "partition-node",
            Fault::Membership => "membership",
        }
    }

    /// The group it belongs to: `kill`, `pause`, `partition` or `membership`.
    pub fn group(self) -> &'static str {
        match self {
            Fault::KillMetaLeader | Fault::KillMeta | Fault::KillBlob | Fault::KillGateway => {
                "kill"
            }
            Fault::PauseMetaLeader | Fault::PauseMeta | Fault::PauseBlob | Fault::PauseGateway => {
                "pause"
            }
            Fault::PartitionLeader
            | Fault::PartitionHalves
            | Fault::PartitionRing
            | Fault::PartitionNode => "partition",
            Fault::Membership => "membership",
        }
    }
}

/// Parses a nemesis spec: `none`, or a comma-separated list of groups (`kill`, `pause`,
/// `partition`, `membership`, `all`) and single faults (`kill-meta-leader`, ...).
pub fn parse(spec: &str) -> Result<Vec<Fault>> {
    let mut out: Vec<Fault> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let matched: Vec<Fault> = match part {
            "none" => Vec::new(),
            "all" => Fault::ALL.to_vec(),
            group @ ("kill" | "pause" | "partition" | "membership") => Fault::ALL
                .into_iter()
                .filter(|f| f.group() == group)
                .collect(),
            name => match Fault::ALL.into_iter().find(|f| f.name() == name) {
                Some(f) => vec![f],
                None => return Err(unknown(name)),
            },
        };
        for f in matched {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn unknown(name: &str) -> Error {
    Error::Config(format!(
        "unknown nemesis {name:?}; use none, all, kill, pause, partition, membership or one \
         of {}",
        Fault::ALL.map(Fault::name).join(", ")
    ))
}

/// When faults come and go.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Quiet time before each fault.
    pub quiet: Duration,
    /// Shortest fault.
    pub fault_min: Duration,
    /// Longest fault.
    pub fault_max: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            quiet: Duration::from_secs(5),
            fault_min: Duration::from_secs(5),
            fault_max: Duration::from_secs(10),
        }
    }
}

/// A fault in effect, and what undoes it.
enum Active {
    Killed(Vec<usize>),
    Paused(Vec<usize>),
    Partitioned,
    /// A meta node removed from the group.
    Removed(usize),
}

/// Sleeps up to `d`, returning early (false) once `stop` is set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

fn lock(cluster: &Mutex<Cluster>) -> std::sync::MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|p| p.into_inner())
}

fn names(cluster: &Cluster, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .map(|&i| cluster.nodes[i].spec.name.clone())
        .collect()
}

/// The meta leader, or a random meta node if there is none right now.
fn leader_or_any(cluster: &Cluster, rng: &mut StdRng) -> usize {
    cluster.leader().unwrap_or_else(|_| {
        let metas = cluster.indices(Role::Meta);
        metas[rng.random_range(0..metas.len())]
    })
}

fn random_of(cluster: &Cluster, role: Role, rng: &mut StdRng) -> usize {
    let nodes = cluster.indices(role);
    nodes[rng.random_range(0..nodes.len())]
}

/// Applies `fault`; returns what undoes it and the nodes it hit.
fn apply(
    cluster: &mut Cluster,
    fault: Fault,
    rng: &mut StdRng,
) -> Result<(Active, serde_json::Value)> {
    // The leader before the fault, for whoever reads the history.
    let leader = cluster
        .leader()
        .ok()
        .map(|i| cluster.nodes[i].spec.name.clone());
    let (active, mut detail) = match fault {
        Fault::KillMetaLeader | Fault::KillMeta | Fault::KillBlob | Fault::KillGateway => {
            let targets = match fault {
                Fault::KillMetaLeader => vec![leader_or_any(cluster, rng)],
                Fault::KillMeta => {
                    let mut metas = cluster.indices(Role::Meta);
                    metas.shuffle(rng);
                    let minority = (metas.len().saturating_sub(1) / 2).max(1);
                    metas.truncate(rng.random_range(1..=minority));
                    metas
                }
                Fault::KillBlob => vec![random_of(cluster, Role::Blob, rng)],
                _ => vec![random_of(cluster, Role::Gateway, rng)],
            };
            for &i in &targets {
                cluster.kill(i);
            }
            let detail = json!({"nodes": names(cluster, &targets)});
            (Active::Killed(targets), detail)
        }
        Fault::PauseMetaLeader | Fault::PauseMeta | Fault::PauseBlob | Fault::PauseGateway => {
            let target = match fault {
                Fault::PauseMetaLeader => leader_or_any(cluster, rng),
                Fault::PauseMeta => random_of(cluster, Role::Meta, rng),
                Fault::PauseBlob => random_of(cluster, Role::Blob, rng),
                _ => random_of(cluster, Role::Gateway, rng),
            };
            if !cluster.pause(target) {
                return Err(Error::Config(format!(
                    "cannot pause {}",
                    cluster.nodes[target].spec.name
                )));
            }
            let detail = json!({"nodes": names(cluster, &[target])});
            (Active::Paused(vec![target]), detail)
        }
        Fault::PartitionLeader => {
            let leader = leader_or_any(cluster, rng);
            let others: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != leader).collect();
            cluster.cut(&[leader], &others)?;
            let detail = json!({"isolated": names(cluster, &[leader])});
            (Active::Partitioned, detail)
        }
        Fault::PartitionHalves => {
            let mut all: Vec<usize> = (0..cluster.nodes.len()).collect();
            all.shuffle(rng);
            let b = all.split_off(all.len() / 2);
            cluster.cut(&all, &b)?;
            let detail = json!({"halves": [names(cluster, &all), names(cluster, &b)]});
            (Active::Partitioned, detail)
        }
        Fault::PartitionRing => {
            let mut ring = cluster.indices(Role::Meta);
            ring.shuffle(rng);
            let sees = ring_views(ring.len(), rng, cluster.nodes.len() - ring.len());
            let mut views = serde_json::Map::new();
            // Meta node at ring position p is cut from every meta node it does not see.
            for (p, seen) in sees.metas.iter().enumerate() {
                let unseen: Vec<usize> = (0..ring.len())
                    .filter(|q| !seen.contains(q))
                    .map(|q| ring[q])
                    .collect();
                cluster.cut(&[ring[p]], &unseen)?;
                let view: Vec<usize> = seen.iter().map(|&q| ring[q]).collect();
                views.insert(
                    cluster.nodes[ring[p]].spec.name.clone(),
                    json!(names(cluster, &view)),
                );
            }
            let others: Vec<usize> = (0..cluster.nodes.len())
                .filter(|i| !ring.contains(i))
                .collect();
            for (&node, seen) in others.iter().zip(&sees.others) {
                let unseen: Vec<usize> = (0..ring.len())
                    .filter(|q| !seen.contains(q))
                    .map(|q| ring[q])
                    .collect();
                cluster.cut(&[node], &unseen)?;
                let view: Vec<usize> = seen.iter().map(|&q| ring[q]).collect();
                views.insert(
                    cluster.nodes[node].spec.name.clone(),
                    json!(names(cluster, &view)),
                );
            }
            (Active::Partitioned, json!({"meta_nodes_seen": views}))
        }
        Fault::PartitionNode => {
            let candidates: Vec<usize> = cluster
                .indices(Role::Blob)
                .into_iter()
                .chain(cluster.indices(Role::Gateway))
                .collect();
            let target = candidates[rng.random_range(0..candidates.len())];
            let others: Vec<usize> = (0..cluster.nodes.len()).filter(|&i| i != target).collect();
            cluster.cut(&[target], &others)?;
            let detail = json!({"isolated": names(cluster, &[target])});
            (Active::Partitioned, detail)
        }
        Fault::Membership => {
            let leader = cluster.leader()?;
            let followers: Vec<usize> = cluster
                .indices(Role::Meta)
                .into_iter()
                .filter(|&i| i != leader)
                .collect();
            let target = followers[rng.random_range(0..followers.len())];
            let id = cluster.remove_meta(target)?;
            let detail = json!({"nodes": names(cluster, &[target]), "removed_member_id": id});
            (Active::Removed(target), detail)
        }
    };
    detail["leader"] = json!(leader);
    Ok((active, detail))
}

/// Undoes one fault.
fn undo(cluster: &mut Cluster, active: Active) -> Result<()> {
    match active {
        Active::Killed(nodes) => {
            for i in nodes {
                cluster.restart(i)?;
            }
            Ok(())
        }
        Active::Paused(nodes) => {
            for i in nodes {
                cluster.resume(i);
            }
            Ok(())
        }
        Active::Partitioned => cluster.heal_network(),
        Active::Removed(i) => cluster.add_back(i),
    }
}

/// Who sees whom in a majorities ring of `n` meta nodes (ring positions `0..n`): each
/// position sees itself and the `k` nearest positions on each side, `k` the smallest that
/// makes this a majority (for 5: its two neighbours), so no two positions see the same
/// majority (for n >= 5); and each of `others` further nodes sees a random window of
/// consecutive positions of majority size. Visibility is symmetric because a cut is (a
/// `DROP` both ways); for 3 meta nodes this is no partition at all.
struct RingViews {
    metas: Vec<Vec<usize>>,
    others: Vec<Vec<usize>>,
}

fn ring_views(n: usize, rng: &mut StdRng, others: usize) -> RingViews {
    let majority = n / 2 + 1;
    let window = |start: usize, len: usize| -> Vec<usize> {
        (0..len.min(n)).map(|k| (start + k) % n).collect()
    };
    let k = majority / 2;
    let metas = (0..n).map(|p| window((p + n - k) % n, 2 * k + 1)).collect();
    let others = (0..others)
        .map(|_| window(rng.random_range(0..n.max(1)), majority))
        .collect();
    RingViews { metas, others }
}

/// Runs the schedule until `stop` is set: quiet, one random fault from `faults`, heal,
/// and so on. Blocking; run it on its own thread. Leaves no fault in effect when it
/// returns (the final heal also restores everything).
pub fn run(
    cluster: Arc<Mutex<Cluster>>,
    faults: Vec<Fault>,
    schedule: Schedule,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    if faults.is_empty() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x006E_656D_6573_6973);
    while sleep_unless_stopped(schedule.quiet, &stop) {
        let fault = faults[rng.random_range(0..faults.len())];
        let applied = apply(&mut lock(&cluster), fault, &mut rng);
        let active = match applied {
            Ok((active, detail)) => {
                recorder.nemesis("start", json!({"fault": fault.name(), "detail": detail}));
                active
            }
            Err(e) => {
                recorder.nemesis(
                    "error",
                    json!({"fault": fault.name(), "error": e.to_string()}),
                );
                continue;
            }
        };
        let span = schedule.fault_max.saturating_sub(schedule.fault_min);
        let length = schedule.fault_min + span.mul_f64(rng.random_range(0.0..=1.0));
        sleep_unless_stopped(length, &stop);
        match undo(&mut lock(&cluster), active) {
            Ok(()) => recorder.nemesis("stop", json!({"fault": fault.name()})),
            Err(e) => recorder.nemesis(
                "error",
                json!({"fault": fault.name(), "undo": true, "error": e.to_string()}),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_faults() {
        assert!(parse("none").expect("none").is_empty());
        assert_eq!(parse("all").expect("all").len(), Fault::ALL.len());
        let kill = parse("kill").expect("kill");
        assert_eq!(kill.len(), 4);
        assert!(kill.iter().all(|f| f.group() == "kill"));
        assert_eq!(
            parse("partition-leader,pause,partition-leader").expect("mixed"),
            vec![
                Fault::PartitionLeader,
                Fault::PauseMetaLeader,
                Fault::PauseMeta,
                Fault::PauseBlob,
                Fault::PauseGateway
            ]
        );
        assert!(parse("explode").is_err());
        assert_eq!(
            parse("membership").expect("membership"),
            vec![Fault::Membership]
        );
        assert_eq!(parse("partition").expect("partition").len(), 4);
    }

    #[test]
    fn ring_views_are_distinct_majorities() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [5usize, 7, 9] {
            let v = ring_views(n, &mut rng, 6);
            for (p, seen) in v.metas.iter().enumerate() {
                assert!(seen.contains(&p), "{n}: {p} sees itself");
                assert!(seen.len() > n / 2, "{n}: {seen:?} is a majority");
            }
            let mut sorted: Vec<Vec<usize>> = v
                .metas
                .iter()
                .map(|s| {
                    let mut s = s.clone();
                    s.sort();
                    s
                })
                .collect();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), n, "no two meta nodes see the same majority");
            assert!(v.others.iter().all(|s| s.len() > n / 2));
        }
        // Five: each sees exactly its two neighbours.
        let v = ring_views(5, &mut rng, 0);
        assert_eq!(v.metas[0], vec![4, 0, 1]);
        assert_eq!(v.metas[2], vec![1, 2, 3]);
    }
}
