//! Liveness: once every fault is healed, the cluster serves again. At least one write is
//! acknowledged after the heal, and every key's final read succeeds.

use super::super::trace::{OpKind, Outcome};
use super::{Facts, Violation};

/// Violations of liveness in `facts`.
pub fn check(facts: &Facts) -> Vec<Violation> {
    let mut found = Vec::new();
    let wrote = facts.ops.iter().any(|op| {
        op.call >= facts.healed_at
            && op.kind != OpKind::Read
            && matches!(
                op.outcome,
                Outcome::Ok(_) | Outcome::Refused | Outcome::RefusedAbsent
            )
    });
    if !wrote {
        found.push(Violation {
            invariant: "liveness",
            detail: "no write was answered after the heal".into(),
        });
    }
    if !facts.unread_keys.is_empty() {
        found.push(Violation {
            invariant: "liveness",
            detail: format!(
                "final reads never answered for keys {:?}",
                facts.unread_keys
            ),
        });
    }
    if let Some(why) = &facts.replicas_not_level {
        found.push(Violation {
            invariant: "liveness",
            detail: why.clone(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::super::trace::SimOp;
    use super::*;

    fn op(kind: OpKind, call: u64, outcome: Outcome) -> SimOp {
        SimOp {
            process: 0,
            key: 0,
            kind,
            call,
            ret: call + 1,
            outcome,
        }
    }

    #[test]
    fn a_cluster_that_answers_no_write_after_the_heal_is_not_live() {
        let mut facts = Facts {
            healed_at: 100,
            ops: vec![
                op(OpKind::Write(1), 50, Outcome::Ok(None)),
                op(OpKind::Write(2), 150, Outcome::Info),
                op(OpKind::Read, 160, Outcome::Ok(Some(1))),
            ],
            ..Default::default()
        };
        assert_eq!(check(&facts).len(), 1);
        facts.ops.push(op(OpKind::Delete, 170, Outcome::Ok(None)));
        assert!(check(&facts).is_empty());
        facts.unread_keys.push(3);
        assert_eq!(check(&facts).len(), 1);
    }
}
