//! Election safety: at most one leader per term (Raft's first guarantee). A second leader
//! in a term would mean a node voted twice, e.g. because a vote it had acknowledged was not
//! durable when its power failed.

use super::{Facts, Violation};

/// Violations of election safety in `facts`.
pub fn check(facts: &Facts) -> Vec<Violation> {
    facts
        .leaders
        .iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|(term, nodes)| Violation {
            invariant: "election_safety",
            detail: format!("term {term} had leaders {nodes:?}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leaders_in_one_term_are_a_violation() {
        let mut facts = Facts::default();
        facts.leaders.entry(3).or_default().insert(1);
        facts.leaders.entry(4).or_default().insert(2);
        assert!(check(&facts).is_empty());
        facts.leaders.entry(4).or_default().insert(5);
        let found = check(&facts);
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("term 4"));
    }
}
