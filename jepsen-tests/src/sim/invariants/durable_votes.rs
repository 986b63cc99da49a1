//! Durable votes: a node's vote never goes back, not even across a crash or a power loss.
//!
//! A vote is what makes elections safe: a node that granted its vote to a leader and then
//! forgets it (because the vote was acknowledged before it was on disk) can grant it again
//! to another candidate, and two leaders may then overwrite each other's committed entries.
//! openraft orders votes by (term, candidate id, committed) and lets a node move only
//! forward (its default "advanced" leader ids allow several leaders in one term, each with
//! its own id, so "one leader per term" is not the property to check; this is).

use super::{Facts, Violation};

/// Violations of vote durability in `facts`.
pub fn check(facts: &Facts) -> Vec<Violation> {
    facts
        .vote_regressions
        .iter()
        .map(|what| Violation {
            invariant: "durable_votes",
            detail: what.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_that_went_back_is_a_violation() {
        let mut facts = Facts::default();
        assert!(check(&facts).is_empty());
        facts
            .vote_regressions
            .push("node 2: T5-N3:committed then T4-N2:uncommitted".into());
        assert_eq!(check(&facts).len(), 1);
    }
}
