//! State machine safety: replicas that applied the same entries hold the same state. At the
//! end every node has applied the same index (the run waits for that), so every key must
//! have the same value on every node.

use super::{Facts, Violation};

/// Violations of replica agreement in `facts`.
pub fn check(facts: &Facts) -> Vec<Violation> {
    let mut found = Vec::new();
    let Some(first) = facts.replicas.first() else {
        return found;
    };
    for other in &facts.replicas[1..] {
        if other.last_applied != first.last_applied {
            found.push(Violation {
                invariant: "replicas_agree",
                detail: format!(
                    "node {} applied up to {:?}, node {} up to {:?}",
                    first.id, first.last_applied, other.id, other.last_applied
                ),
            });
            continue;
        }
        for (key, value) in &first.values {
            let theirs = other.values.get(key).copied().flatten();
            if theirs != *value {
                found.push(Violation {
                    invariant: "replicas_agree",
                    detail: format!(
                        "key {key}: node {} has {value:?}, node {} has {theirs:?}",
                        first.id, other.id
                    ),
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::Replica;
    use super::*;

    fn replica(id: u64, applied: u64, values: &[(usize, Option<u64>)]) -> Replica {
        Replica {
            id,
            last_applied: Some(applied),
            values: values.iter().copied().collect(),
        }
    }

    #[test]
    fn differing_values_or_indexes_are_violations() {
        let mut facts = Facts {
            replicas: vec![
                replica(1, 10, &[(0, Some(4)), (1, None)]),
                replica(2, 10, &[(0, Some(4)), (1, None)]),
            ],
            ..Default::default()
        };
        assert!(check(&facts).is_empty());
        facts
            .replicas
            .push(replica(3, 10, &[(0, Some(5)), (1, None)]));
        assert_eq!(check(&facts).len(), 1);
        facts
            .replicas
            .push(replica(4, 9, &[(0, Some(4)), (1, None)]));
        assert_eq!(check(&facts).len(), 2);
    }
}
