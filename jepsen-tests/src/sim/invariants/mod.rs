//! The properties every simulated run must have, one per file. Each reads the [`Facts`] the
//! run gathered and names what it found wrong.

pub mod durable_votes;
pub mod linearizable;
pub mod liveness;
pub mod replicas_agree;

use std::collections::BTreeMap;

use cairn_meta::types::NodeId;

use super::trace::SimOp;

/// What a run observed, for the invariants to judge.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Every client operation, final reads included.
    pub ops: Vec<SimOp>,
    /// Every time a node's vote was seen lower than before, described.
    pub vote_regressions: Vec<String>,
    /// Simulated time (ns) at which every fault was healed.
    pub healed_at: u64,
    /// Keys whose final read never succeeded.
    pub unread_keys: Vec<usize>,
    /// Each node's state at the end.
    pub replicas: Vec<Replica>,
    /// Why the replicas were not compared, if they could not be brought level.
    pub replicas_not_level: Option<String>,
}

/// One node's applied state at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The node.
    pub id: NodeId,
    /// Index of the last applied entry.
    pub last_applied: Option<u64>,
    /// Each key's value in its state (`None`: absent).
    pub values: BTreeMap<usize, Option<u64>>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant (its file's name).
    pub invariant: &'static str,
    /// What was wrong.
    pub detail: String,
}

/// Judges `facts` by every invariant.
pub fn check_all(facts: &Facts) -> Vec<Violation> {
    let mut found = Vec::new();
    found.extend(linearizable::check(facts));
    found.extend(durable_votes::check(facts));
    found.extend(liveness::check(facts));
    found.extend(replicas_agree::check(facts));
    found
}
