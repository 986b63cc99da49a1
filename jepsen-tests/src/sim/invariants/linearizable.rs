//! Linearizability: every key's operations, final reads included, can be ordered one after
//! another, each at a point between its invocation and its completion, so that a register
//! explains every answer. This covers lost acknowledged writes (a later read misses them),
//! stale reads, and conditional writes whose condition was judged on an old state.

use std::collections::BTreeMap;

use crate::checker::linear::{self, Entry, Verdict};
use crate::checker::register::{RegOp, Register};

use super::super::trace::{OpKind, Outcome, SimOp};
use super::{Facts, Violation};

/// Search steps per key before the checker gives up (reported as a violation: a run must be
/// judged, and the keys' histories are kept small enough for that).
const BUDGET: u64 = 5_000_000;

/// The register operation an outcome means, with whether it completed (`None`: it was
/// indeterminate and may take effect any time after its invocation, or never).
fn reg_op(op: &SimOp) -> Option<(RegOp, bool)> {
    let done = |r: RegOp| Some((r, true));
    match (op.kind, op.outcome) {
        (_, Outcome::Fail) => None,
        (OpKind::Read, Outcome::Ok(v)) => done(RegOp::Read(v)),
        (OpKind::Read, _) => None,
        (OpKind::Write(v), Outcome::Info) => Some((RegOp::Write(v), false)),
        (OpKind::Write(v), _) => done(RegOp::Write(v)),
        (OpKind::Delete, Outcome::Info) => Some((RegOp::Delete, false)),
        (OpKind::Delete, _) => done(RegOp::Delete),
        (OpKind::Cas { expected, new }, Outcome::Ok(_)) => done(RegOp::Cas { expected, new }),
        (OpKind::Cas { expected, .. }, Outcome::Refused) => done(RegOp::NotEqual(expected)),
        (OpKind::Cas { .. }, Outcome::RefusedAbsent) => done(RegOp::Read(None)),
        (OpKind::Cas { expected, new }, Outcome::Info) => Some((
            RegOp::MaybeConditional {
                expected: Some(expected),
                new,
            },
            false,
        )),
        (OpKind::Create(new), Outcome::Ok(_)) => done(RegOp::Create(new)),
        (OpKind::Create(_), Outcome::Refused | Outcome::RefusedAbsent) => done(RegOp::Present),
        (OpKind::Create(new), Outcome::Info) => Some((
            RegOp::MaybeConditional {
                expected: None,
                new,
            },
            false,
        )),
    }
}

/// Violations of linearizability in `facts`, one per key.
pub fn check(facts: &Facts) -> Vec<Violation> {
    let mut per_key: BTreeMap<usize, Vec<Entry<RegOp>>> = BTreeMap::new();
    for op in &facts.ops {
        if let Some((reg, completed)) = reg_op(op) {
            per_key.entry(op.key).or_default().push(Entry {
                op: reg,
                call: op.call,
                ret: completed.then_some(op.ret),
            });
        }
    }
    let mut found = Vec::new();
    for (key, mut history) in per_key {
        history.sort_by_key(|e| e.call);
        match linear::check(Register(None), &history, BUDGET) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable(c) => {
                let stuck = history.get(c.stuck);
                found.push(Violation {
                    invariant: "linearizable",
                    detail: format!(
                        "key {key}: after {} operations (state {:?}) no order explains {stuck:?}",
                        c.linearized.len(),
                        c.state.0
                    ),
                });
            }
            Verdict::Unknown(steps) => found.push(Violation {
                invariant: "linearizable",
                detail: format!("key {key}: undecided after {steps} search steps"),
            }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, call: u64, ret: u64, outcome: Outcome) -> SimOp {
        SimOp {
            process: 0,
            key: 0,
            kind,
            call,
            ret,
            outcome,
        }
    }

    #[test]
    fn a_lost_acknowledged_write_is_a_violation() {
        let mut facts = Facts {
            ops: vec![
                op(OpKind::Write(1), 0, 10, Outcome::Ok(None)),
                op(
                    OpKind::Cas {
                        expected: 1,
                        new: 2,
                    },
                    20,
                    30,
                    Outcome::Ok(None),
                ),
                op(OpKind::Read, 40, 50, Outcome::Ok(Some(2))),
            ],
            ..Default::default()
        };
        assert!(check(&facts).is_empty());
        // The write of 2 was acknowledged, then a read finds 1 again.
        facts
            .ops
            .push(op(OpKind::Read, 60, 70, Outcome::Ok(Some(1))));
        assert_eq!(check(&facts).len(), 1);
    }

    #[test]
    fn an_indeterminate_write_may_land_late_or_never() {
        let facts = Facts {
            ops: vec![
                op(OpKind::Write(1), 0, 10, Outcome::Ok(None)),
                op(OpKind::Write(2), 20, 30, Outcome::Info),
                op(OpKind::Read, 40, 50, Outcome::Ok(Some(1))),
                op(OpKind::Read, 60, 70, Outcome::Ok(Some(2))),
                op(OpKind::Create(3), 80, 90, Outcome::Refused),
            ],
            ..Default::default()
        };
        assert!(check(&facts).is_empty());
    }
}
