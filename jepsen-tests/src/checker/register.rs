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
    /// written decodes to [`CORRUPT`].
    Read(Option<u64>),
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
        }
    }
}

/// A read's observed value as the history stores it: `null` (absent), a number, or a string
/// describing bytes that are not a written value.
pub fn read_value(v: &Value) -> Option<u64> {
    match v {
        Value::Null => None,
        Value::Number(n) => Some(n.as_u64().unwrap_or(CORRUPT)),
        _ => Some(CORRUPT),
    }
}

/// The operations of one key that constrain it, as checker entries, with the history
/// operation each came from. Failed operations are left out (they did not happen), and so
/// are reads without a value (no effect); indeterminate writes and deletes may take effect
/// at any time after their invocation. An indeterminate write whose value no read saw is
/// left out too: it can always be placed after everything else.
fn entries<'a>(ops: &[&'a Operation]) -> (Vec<Entry<RegOp>>, Vec<&'a Operation>) {
    let seen: HashSet<u64> = ops
        .iter()
        .filter(|o| o.invoke.f == "read" && o.outcome() == EventType::Ok)
        .filter_map(|o| o.complete.as_ref().and_then(|c| read_value(&c.value)))
        .collect();
    let mut out = Vec::new();
    let mut origin = Vec::new();
    for &op in ops {
        let outcome = op.outcome();
        let ret = match outcome {
            EventType::Ok => op.complete.as_ref().map(|c| c.time_ns),
            EventType::Info => None,
            EventType::Fail | EventType::Invoke => continue,
        };
        let reg_op = match op.invoke.f.as_str() {
            "write" => {
                let Some(v) = op.invoke.value.as_u64() else {
                    continue;
                };
                if ret.is_none() && !seen.contains(&v) {
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
            "checker": "linearizable register per key (WGL)",
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
