//! Bringing back a voter whose directory was wiped, without breaking Raft's safety.
//!
//! A wiped directory has forgotten its vote and its log. If it came back under its old id it
//! could vote for a candidate that lacks an entry the cluster already committed (committed on
//! the leader and on the wiped node, say), and that entry would be lost. So, when the surviving
//! voters still form a majority, the wiped directory comes back as a *new* node (fresh id,
//! never used before), joins as a learner, catches up, and only then replaces the old voter
//! in one membership change. When the survivors are not a majority no safe replacement exists
//! (no leader can be elected without the wiped node); it then rejoins under its old id, which
//! is safe exactly when every committed entry is on every survivor — true for the two-voter
//! case, where a commit needs both voters.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::BasicNode;
use tracing::Instrument;

use crate::group::Group;
use crate::types::NodeId;

/// How a pristine directory joins an existing cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoin {
    /// Start as `new` and replace voter `old` once caught up.
    Replace { old: NodeId, new: NodeId },
    /// Start under the old id (the survivors are not a majority).
    SameId { id: NodeId },
}

/// Decides how each pristine directory rejoins. `voters` is the cluster's voter set as the
/// established nodes see it, `known` every id the cluster has ever been seen to use here,
/// `established` the ids of the local nodes that kept their data.
pub fn plan(
    voters: &BTreeSet<NodeId>,
    known: &BTreeSet<NodeId>,
    established: &BTreeSet<NodeId>,
    pristine: usize,
) -> Vec<Rejoin> {
    let missing: Vec<NodeId> = voters
        .iter()
        .filter(|v| !established.contains(v))
        .copied()
        .collect();
    let surviving = voters.iter().filter(|v| established.contains(v)).count();
    let majority_survives = surviving * 2 > voters.len();
    let mut next = known
        .iter()
        .chain(voters.iter())
        .max()
        .copied()
        .unwrap_or(0)
        + 1;
    missing
        .into_iter()
        .take(pristine)
        .map(|old| {
            if majority_survives {
                let new = next;
                next += 1;
                Rejoin::Replace { old, new }
            } else {
                Rejoin::SameId { id: old }
            }
        })
        .collect()
}

/// Spawns the named task that adds `new` as a learner and then swaps it for `old`.
pub fn spawn_replacement(group: Group, old: NodeId, new: NodeId, address: String) {
    let span = tracing::info_span!("meta-replace-voter", old, new);
    tokio::spawn(
        async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match replace_once(&group, old, new, &address).await {
                    Ok(()) => {
                        tracing::info!("replaced meta voter {old} with {new}");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "replacing a meta voter failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        .instrument(span),
    );
}

async fn replace_once(
    group: &Group,
    old: NodeId,
    new: NodeId,
    address: &str,
) -> Result<(), String> {
    let leader = group.leader().await.map_err(|e| e.to_string())?;
    // Blocking: returns once the learner has caught up with the leader's log.
    leader
        .raft
        .add_learner(new, BasicNode::new(address), true)
        .await
        .map_err(|e| e.to_string())?;
    let voters: BTreeSet<NodeId> = {
        let metrics = leader.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|&v| v != old)
            .chain(std::iter::once(new))
            .collect()
    };
    leader
        .raft
        .change_membership(voters, false)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_wiped_voter_of_three_comes_back_under_a_new_id() {
        let plans = plan(&set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[2, 3]), 1);
        assert_eq!(plans, vec![Rejoin::Replace { old: 1, new: 4 }]);
    }

    #[test]
    fn ids_are_never_reused() {
        // Voter 4 replaced 1 earlier; now 4 is wiped: the new node is 5, not 1.
        let plans = plan(&set(&[2, 3, 4]), &set(&[2, 3, 4]), &set(&[2, 3]), 1);
        assert_eq!(plans, vec![Rejoin::Replace { old: 4, new: 5 }]);
    }

    #[test]
    fn without_a_surviving_majority_the_old_id_is_kept() {
        assert_eq!(
            plan(&set(&[1, 2]), &set(&[1, 2]), &set(&[2]), 1),
            vec![Rejoin::SameId { id: 1 }]
        );
    }
}
