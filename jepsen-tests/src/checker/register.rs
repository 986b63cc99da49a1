//! The register checker: for every key, the reads, writes and deletes on it must be
//! linearizable with respect to a register that holds a value or nothing (P-compositionality
//! lets each key be checked alone).

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};

use super::linear::{self, Entry, Model, Verdict};
use super::{describe, CheckResult, Validity};
use crate::history::{operations, Event, EventType, Operation};

/// Steps the search may take per key before it answers unknown.
pub const SEARCH_BUDGET: u64 = 20_000_000;

/// A register's content: `None` when the key does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Register(pub Option<u64>);

/// A register operation with its observed output.
#[derive(Debug, Clone, PartialEq)]
pub enum RegOp {
    /// PUT of a value.
    Write(u64),
    /// DELETE.
    Delete,
    /// GET that returned this (`None`: NoSuchKey). A body that is not a value ever
    /// written decodes to [`CORRUPT`]. A conditional PUT that failed because the key did not
    /// exist (`If-Match` answered 404 NoSuchKey) is the observation `Read(None)` too.
    Read(Option<u64>),
    /// An acknowledged compare-and-set (`If-Match` with the ETag of `expected`): the value
    /// was `expected` and became `new`.
    Cas {
        /// The value the condition named.
        expected: u64,
        /// The value written.
        new: u64,
    },
    /// An acknowledged create (`If-None-Match: *`): the key was absent and became `new`.
    Create(u64),
    /// A conditional PUT of unknown outcome: if the condition holds where it is placed, it
    /// writes its value, otherwise it is a no-op (it failed there). Never impossible, so
    /// like any indeterminate write it can also go last, which is the same as never.
    /// `expected` is `None` for a create (`If-None-Match: *`).
    MaybeConditional {
        /// `Some(v)`: the value must be `v` (`If-Match`); `None`: the key must be absent.
        expected: Option<u64>,
        /// The value written when the condition holds.
        new: u64,
    },
    /// A compare-and-set answered 412 PreconditionFailed: at its linearization point the key
    /// existed with a value other than `expected` (an observation, like a read).
    NotEqual(u64),
    /// A create answered 412 PreconditionFailed: the key existed (an observation).
    Present,
}

/// What a read that returned bytes no write wrote is recorded as: no write has this value.
pub const CORRUPT: u64 = u64::MAX;

impl Model for Register {
    type Op = RegOp;
    fn step(&self, op: &RegOp) -> Option<Register> {
        match op {
            RegOp::Write(v) => Some(Register(Some(*v))),
            RegOp::Delete => Some(Register(None)),
            RegOp::Read(seen) => (*seen == self.0).then(|| self.clone()),
            RegOp::Cas { expected, new } => {
                (self.0 == Some(*expected)).then_some(Register(Some(*new)))
            }
            RegOp::Create(new) => self.0.is_none().then_some(Register(Some(*new))),
            RegOp::MaybeConditional { expected, new } => Some(if self.0 == *expected {
                Register(Some(*new))
            } else {
                self.clone()
            }),
            RegOp::NotEqual(expected) => {
                self.0.is_some_and(|v| v != *expected).then(|| self.clone())
            }
            RegOp::Present => self.0.is_some().then(|| self.clone()),
        }
    }
}

/// The `f` of a compare-and-set in the history; its value is `[expected, new]`.
pub const CAS: &str = "cas";
/// The `f` of a create (`If-None-Match: *`); its value is the new value.
pub const CREATE: &str = "create";

/// A read's observed value as the history stores it: `null` (absent), a number, or a string
/// describing bytes that are not a written value.
pub fn read_value(v: &Value) -> Option<u64> {
    match v {
        Value::Null => None,
        Value::Number(n) => Some(n.as_u64().unwrap_or(CORRUPT)),
        _ => Some(CORRUPT),
    }
}

/// The HTTP status of a definite failure whose S3 error code says the condition did not
/// hold, from the history's error text: 412 (`"412 PreconditionFailed"`) or 404 (`"404
/// NoSuchKey"`, `If-Match` on a missing key).
fn failed_status(op: &Operation) -> Option<u16> {
    let error = op.complete.as_ref()?.error.as_deref()?;
    match error.split_whitespace().collect::<Vec<_>>()[..] {
        ["412", "PreconditionFailed", ..] => Some(412),
        ["404", "NoSuchKey", ..] => Some(404),
        _ => None,
    }
}

/// `[expected, new]` of a cas.
fn cas_values(v: &Value) -> Option<(u64, u64)> {
    Some((v.get(0)?.as_u64()?, v.get(1)?.as_u64()?))
}

/// Whether `op` is a conditional PUT that failed because its condition did not hold: such
/// a failure tells something about the register's value, so it is checked, not dropped.
fn failed_condition(op: &Operation) -> bool {
    op.outcome() == EventType::Fail
        && matches!(op.invoke.f.as_str(), CAS | CREATE)
        && matches!(failed_status(op), Some(404 | 412))
}

/// The operations of one key that constrain it, as checker entries, with the history
/// operation each came from. Failed operations are left out (they did not happen), except
/// conditional PUTs refused because their condition did not hold (412, or 404 for
/// `If-Match` on a missing key), which are observations; reads without a value are left
/// out (no effect); indeterminate writes and deletes may take effect at any time after
/// their invocation. An indeterminate write whose value no read saw is left out too (it can
/// always be placed after everything else), unless the key has a refused conditional PUT,
/// which that write might be what explains.
fn entries<'a>(ops: &[&'a Operation]) -> (Vec<Entry<RegOp>>, Vec<&'a Operation>) {
    let seen: HashSet<u64> = ops
        .iter()
        .filter(|o| o.invoke.f == "read" && o.outcome() == EventType::Ok)
        .filter_map(|o| o.complete.as_ref().and_then(|c| read_value(&c.value)))
        .chain(
            ops.iter()
                .filter(|o| o.invoke.f == CAS && o.outcome() == EventType::Ok)
                .filter_map(|o| cas_values(&o.invoke.value).map(|(e, _)| e)),
        )
        .collect();
    let refusals = ops.iter().any(|o| failed_condition(o));
    let droppable = |ret: Option<u64>, v: u64| ret.is_none() && !refusals && !seen.contains(&v);
    let mut out = Vec::new();
    let mut origin = Vec::new();
    for &op in ops {
        let outcome = op.outcome();
        let ret = match outcome {
            EventType::Ok => op.complete.as_ref().map(|c| c.time_ns),
            EventType::Info => None,
            EventType::Fail if failed_condition(op) => op.complete.as_ref().map(|c| c.time_ns),
            EventType::Fail | EventType::Invoke => continue,
        };
        let failed = outcome == EventType::Fail;
        let reg_op = match op.invoke.f.as_str() {
            "write" => {
                let Some(v) = op.invoke.value.as_u64() else {
                    continue;
                };
                if droppable(ret, v) {
                    continue;
                }
                RegOp::Write(v)
            }
            "delete" => RegOp::Delete,
            "read" => {
                let (Some(c), Some(_)) = (op.complete.as_ref(), ret) else {
                    continue;
                };
                RegOp::Read(read_value(&c.value))
            }
            CAS => {
                let Some((expected, new)) = cas_values(&op.invoke.value) else {
                    continue;
                };
                match (failed, ret) {
                    (true, _) if failed_status(op) == Some(404) => RegOp::Read(None),
                    (true, _) => RegOp::NotEqual(expected),
                    (false, Some(_)) => RegOp::Cas { expected, new },
                    (false, None) if droppable(ret, new) => continue,
                    (false, None) => RegOp::MaybeConditional {
                        expected: Some(expected),
                        new,
                    },
                }
            }
            CREATE => {
                let Some(new) = op.invoke.value.as_u64() else {
                    continue;
                };
                match (failed, ret) {
                    (true, _) => RegOp::Present,
                    (false, Some(_)) => RegOp::Create(new),
                    (false, None) if droppable(ret, new) => continue,
                    (false, None) => RegOp::MaybeConditional {
                        expected: None,
                        new,
                    },
                }
            }
            _ => continue,
        };
        out.push(Entry {
            op: reg_op,
            call: op.invoke.time_ns,
            ret,
        });
        origin.push(op);
    }
    (out, origin)
}

/// Checks every key of a register history.
pub fn check(events: &[Event], budget: u64) -> CheckResult {
    let ops = operations(events);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        if let Some(key) = op.invoke.key.as_deref() {
            by_key.entry(key).or_default().push(op);
        }
    }
    let mut valid = Validity::Valid;
    let mut keys = Vec::new();
    let mut anomalies = Vec::new();
    let mut checked_ops = 0;
    for (key, key_ops) in &by_key {
        let (history, origin) = entries(key_ops);
        checked_ops += history.len();
        let verdict = linear::check(Register(None), &history, budget);
        let (v, anomaly) = match verdict {
            Verdict::Linearizable => (Validity::Valid, None),
            Verdict::Unknown(b) => (
                Validity::Unknown,
                Some(
                    json!({"key": key, "unknown": format!("search budget of {b} steps exhausted")}),
                ),
            ),
            Verdict::NotLinearizable(c) => (
                Validity::Invalid,
                Some(counterexample(key, key_ops, &history, &origin, &c)),
            ),
        };
        valid = valid.and(v);
        keys.push(json!({"key": key, "ops": key_ops.len(), "checked": history.len(), "valid": v}));
        if let Some(a) = anomaly {
            anomalies.push(a);
        }
    }
    CheckResult {
        valid,
        details: json!({
            "checker": "linearizable register with compare-and-set per key (WGL)",
            "keys": keys,
            "checked_ops": checked_ops,
            "anomalies": anomalies,
        }),
    }
}

/// The evidence of a non-linearizable key: where the search got stuck, the last operations
/// it could place, and every operation of the key overlapping that stretch.
fn counterexample(
    key: &str,
    key_ops: &[&Operation],
    history: &[Entry<RegOp>],
    origin: &[&Operation],
    c: &linear::Counterexample<Register>,
) -> Value {
    let tail: Vec<usize> = c.linearized.iter().rev().take(5).rev().copied().collect();
    let start = tail
        .iter()
        .chain([&c.stuck])
        .map(|&i| history[i].call)
        .min()
        .unwrap_or(0);
    let end = history[c.stuck].ret.unwrap_or(u64::MAX);
    let window: Vec<Value> = key_ops
        .iter()
        .filter(|op| {
            let call = op.invoke.time_ns;
            let ret = match op.outcome() {
                EventType::Ok | EventType::Fail => {
                    op.complete.as_ref().map_or(u64::MAX, |c| c.time_ns)
                }
                _ => u64::MAX,
            };
            call <= end && ret >= start
        })
        .map(|op| describe(op))
        .collect();
    json!({
        "key": key,
        "stuck": describe(origin[c.stuck]),
        "state_before_stuck": c.state.0,
        "linearized_before": tail.iter().map(|&i| describe(origin[i])).collect::<Vec<_>>(),
        "linearized_count": c.linearized.len(),
        "sub_history": window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventBody, Process, Recorder};

    /// Builds a history from (process, f, key, value, outcome, read value) steps; each step
    /// is an invoke immediately followed by its completion unless `open` keeps it pending.
    struct H {
        rec: Recorder,
    }

    impl H {
        fn new() -> H {
            H {
                rec: Recorder::new(),
            }
        }
        fn invoke(&self, p: u64, f: &str, value: Value) {
            self.rec.record(EventBody {
                kind: EventType::Invoke,
                process: Process::Client(p),
                f,
                key: Some("k"),
                value,
                error: None,
            });
        }
        fn done(&self, p: u64, f: &str, kind: EventType, value: Value) {
            self.rec.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key: Some("k"),
                value,
                error: None,
            });
        }
        fn op(&self, p: u64, f: &str, value: Value, kind: EventType, out: Value) {
            self.invoke(p, f, value);
            self.done(p, f, kind, out);
        }
        fn check(&self) -> CheckResult {
            check(&self.rec.snapshot(), 1_000_000)
        }
        /// A conditional PUT refused with `error` (e.g. "412 PreconditionFailed").
        fn refused(&self, p: u64, f: &str, value: Value, error: &str) {
            self.invoke(p, f, value.clone());
            self.rec.record(EventBody {
                kind: EventType::Fail,
                process: Process::Client(p),
                f,
                key: Some("k"),
                value,
                error: Some(error.into()),
            });
        }
        fn valid(&self) -> Validity {
            self.check().valid
        }
    }

    const P412: &str = "412 PreconditionFailed";
    const P404: &str = "404 NoSuchKey";

    #[test]
    fn a_linearizable_cas_history_is_valid() {
        let h = H::new();
        h.op(0, CREATE, json!(1), EventType::Ok, json!(1));
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        h.op(1, CAS, json!([1, 2]), EventType::Ok, json!([1, 2]));
        h.op(0, "read", Value::Null, EventType::Ok, json!(2));
        h.refused(0, CAS, json!([1, 3]), P412);
        h.refused(0, CREATE, json!(4), P412);
        h.op(1, "delete", Value::Null, EventType::Ok, Value::Null);
        h.refused(0, CAS, json!([2, 5]), P404);
        h.op(0, CREATE, json!(6), EventType::Ok, json!(6));
        h.op(1, "read", Value::Null, EventType::Ok, json!(6));
        // A failure for another reason (the gateway was down) says nothing.
        h.refused(1, CAS, json!([1, 7]), "connection refused: ...");
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["checked_ops"], 10);
    }

    #[test]
    fn two_acknowledged_cas_from_one_value_are_caught() {
        // One after the other...
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(1, CAS, json!([1, 2]), EventType::Ok, json!([1, 2]));
        h.op(2, CAS, json!([1, 3]), EventType::Ok, json!([1, 3]));
        assert_eq!(h.valid(), Validity::Invalid);
        // ...or concurrently: only one of them can win.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.invoke(1, CAS, json!([1, 2]));
        h.invoke(2, CAS, json!([1, 3]));
        h.done(1, CAS, EventType::Ok, json!([1, 2]));
        h.done(2, CAS, EventType::Ok, json!([1, 3]));
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["anomalies"][0]["state_before_stuck"], json!(2));
        // With a write of the expected value in between, both can.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(1, CAS, json!([1, 2]), EventType::Ok, json!([1, 2]));
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(2, CAS, json!([1, 3]), EventType::Ok, json!([1, 3]));
        assert_eq!(h.valid(), Validity::Valid);
    }

    #[test]
    fn refused_conditions_are_checked_not_dropped() {
        // 412 although the value was the expected one.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.refused(1, CAS, json!([1, 2]), P412);
        assert_eq!(h.valid(), Validity::Invalid);
        // 412 on a create although the key is absent; 404 on a cas although it exists.
        let h = H::new();
        h.refused(1, CREATE, json!(2), P412);
        assert_eq!(h.valid(), Validity::Invalid);
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.refused(1, CAS, json!([1, 2]), P404);
        assert_eq!(h.valid(), Validity::Invalid);
        // An acknowledged create over an existing value.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(1, CREATE, json!(2), EventType::Ok, json!(2));
        assert_eq!(h.valid(), Validity::Invalid);
    }

    #[test]
    fn an_unread_indeterminate_write_may_explain_a_refusal() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.invoke(2, "write", json!(2));
        h.done(2, "write", EventType::Info, json!(2));
        h.refused(1, CAS, json!([1, 3]), P412);
        assert_eq!(h.valid(), Validity::Valid);
        // But then the value cannot be 1 again.
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        assert_eq!(h.valid(), Validity::Invalid);
    }

    #[test]
    fn an_indeterminate_cas_applies_only_where_its_condition_holds() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.invoke(1, CAS, json!([1, 2]));
        h.done(1, CAS, EventType::Info, json!([1, 2]));
        h.op(0, "read", Value::Null, EventType::Ok, json!(1));
        h.op(0, "read", Value::Null, EventType::Ok, json!(2));
        assert_eq!(h.valid(), Validity::Valid);
        // Once 3 was written over 1, the cas from 1 cannot produce 2 any more.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.invoke(1, CAS, json!([1, 2]));
        h.done(1, CAS, EventType::Info, json!([1, 2]));
        h.op(0, "write", json!(3), EventType::Ok, json!(3));
        h.op(0, "read", Value::Null, EventType::Ok, json!(2));
        assert_eq!(h.valid(), Validity::Invalid);
        // An indeterminate create that shows up after a delete is fine.
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.invoke(1, CREATE, json!(5));
        h.done(1, CREATE, EventType::Info, json!(5));
        h.op(0, "delete", Value::Null, EventType::Ok, Value::Null);
        h.op(0, "read", Value::Null, EventType::Ok, json!(5));
        assert_eq!(h.valid(), Validity::Valid);
    }

    #[test]
    fn a_clean_history_is_valid() {
        let h = H::new();
        h.op(0, "read", Value::Null, EventType::Ok, Value::Null);
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        h.op(1, "delete", Value::Null, EventType::Ok, Value::Null);
        h.op(0, "read", Value::Null, EventType::Ok, Value::Null);
        h.op(0, "write", json!(2), EventType::Fail, Value::Null);
        h.op(0, "read", Value::Null, EventType::Ok, Value::Null);
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["checked_ops"], 6);
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_with_its_sub_history() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(1, "write", json!(2), EventType::Ok, json!(2));
        h.op(2, "read", Value::Null, EventType::Ok, json!(1));
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        let a = &r.details["anomalies"][0];
        assert_eq!(a["key"], "k");
        assert_eq!(a["stuck"]["f"], "read");
        assert_eq!(a["state_before_stuck"], 2);
        assert_eq!(a["sub_history"].as_array().map(Vec::len), Some(3), "{a:#}");
    }

    #[test]
    fn a_failed_write_that_shows_up_is_caught() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Fail, Value::Null);
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn an_indeterminate_write_may_appear_later_but_not_disappear() {
        let h = H::new();
        h.invoke(0, "write", json!(1));
        h.done(0, "write", EventType::Info, Value::Null);
        h.op(1, "read", Value::Null, EventType::Ok, Value::Null);
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        assert_eq!(h.check().valid, Validity::Valid);
        h.op(1, "read", Value::Null, EventType::Ok, Value::Null);
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn a_resurrected_delete_is_caught() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(0, "delete", Value::Null, EventType::Ok, Value::Null);
        h.op(1, "read", Value::Null, EventType::Ok, Value::Null);
        h.op(1, "read", Value::Null, EventType::Ok, json!(1));
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn corrupt_bytes_and_reads_from_the_future_are_caught() {
        let h = H::new();
        h.op(0, "write", json!(1), EventType::Ok, json!(1));
        h.op(
            1,
            "read",
            Value::Null,
            EventType::Ok,
            json!("corrupt: 5 bytes"),
        );
        assert_eq!(h.check().valid, Validity::Invalid);

        let h = H::new();
        h.op(1, "read", Value::Null, EventType::Ok, json!(9));
        h.invoke(0, "write", json!(9));
        h.done(0, "write", EventType::Ok, json!(9));
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn concurrent_operations_on_other_keys_do_not_interfere() {
        let rec = Recorder::new();
        let step = |p: u64, kind, f: &str, key: &str, value: Value| {
            rec.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key: Some(key),
                value,
                error: None,
            })
        };
        step(0, EventType::Invoke, "write", "a", json!(1));
        step(1, EventType::Invoke, "read", "b", Value::Null);
        step(1, EventType::Ok, "read", "b", Value::Null);
        step(0, EventType::Ok, "write", "a", json!(1));
        step(1, EventType::Invoke, "read", "a", Value::Null);
        step(1, EventType::Ok, "read", "a", json!(1));
        let r = check(&rec.snapshot(), 1000);
        assert_eq!(r.valid, Validity::Valid);
        assert_eq!(r.details["keys"].as_array().map(Vec::len), Some(2));
    }
}
