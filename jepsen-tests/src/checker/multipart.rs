//! The multipart checker. Each upload has its own key and value, and only its completion
//! can make the key exist, so per key:
//!
//! - an upload whose CompleteMultipartUpload was acknowledged must be readable with exactly
//!   its part's bytes by every read invoked after that acknowledgement (**lost**);
//! - an upload whose AbortMultipartUpload was acknowledged must never be visible
//!   (**aborted-visible**), and cannot also have an acknowledged completion
//!   (**both-acknowledged**);
//! - a value no completion could have made visible yet (every completion failed for
//!   certain, or none was invoked before the read returned) is **phantom**;
//! - bytes that are not the upload's are **corrupt**.
//!
//! An upload with no acknowledged outcome may be visible or not.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::register::read_value;
use super::{describe, events_of, CheckResult, Validity};
use crate::history::{operations, Event, EventType, Operation};

/// `f` of CreateMultipartUpload + UploadPart; its value is the upload's value.
pub const START: &str = "start-upload";
/// `f` of CompleteMultipartUpload; its value is `{"upload": id, "value": n}`.
pub const COMPLETE: &str = "complete";
/// `f` of AbortMultipartUpload; its value is `{"upload": id, "value": n}`.
pub const ABORT: &str = "abort";

/// The operations of `ops` with this `f` and outcome.
fn of<'a>(ops: &[&'a Operation], f: &str, outcome: EventType) -> Vec<&'a Operation> {
    ops.iter()
        .filter(|o| o.invoke.f == f && o.outcome() == outcome)
        .copied()
        .collect()
}

/// Checks a multipart history.
pub fn check(events: &[Event]) -> CheckResult {
    let ops = operations(events);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        if let Some(k) = op.invoke.key.as_deref() {
            by_key.entry(k).or_default().push(op);
        }
    }
    let mut anomalies: Vec<Value> = Vec::new();
    let mut evidence: Vec<&Operation> = Vec::new();
    let (mut completed, mut aborted, mut reads_checked, mut uploads) = (0, 0, 0, 0);
    let mut unverified = 0;
    for (key, key_ops) in &by_key {
        let Some(value) = key_ops
            .iter()
            .find(|o| o.invoke.f == START)
            .and_then(|o| o.invoke.value.as_u64())
        else {
            continue;
        };
        uploads += 1;
        let completes_ok = of(key_ops, COMPLETE, EventType::Ok);
        let aborts_ok = of(key_ops, ABORT, EventType::Ok);
        // The earliest acknowledgement of a completion: every read invoked after it must
        // see the value.
        let completed_at = completes_ok
            .iter()
            .filter_map(|o| o.complete.as_ref().map(|c| c.time_ns))
            .min();
        // The earliest invocation of a completion that may have taken effect.
        let may_complete_from = key_ops
            .iter()
            .filter(|o| o.invoke.f == COMPLETE && o.outcome() != EventType::Fail)
            .map(|o| o.invoke.time_ns)
            .min();
        completed += usize::from(!completes_ok.is_empty());
        aborted += usize::from(!aborts_ok.is_empty());
        // (kind, the operations that show it, detail)
        let mut found: Vec<(&str, Vec<&Operation>, Value)> = Vec::new();
        let mut anomaly = |kind, culprits, extra| found.push((kind, culprits, extra));
        if let (Some(c), Some(a)) = (completes_ok.first(), aborts_ok.first()) {
            anomaly("both-acknowledged", vec![c, a], Value::Null);
        }
        let mut verified = completed_at.is_none();
        for read in of(key_ops, "read", EventType::Ok) {
            let Some(done) = read.complete.as_ref() else {
                continue;
            };
            reads_checked += 1;
            let seen = read_value(&done.value);
            let after_ack = completed_at.is_some_and(|t| read.invoke.time_ns > t);
            match seen {
                // A body that is not exactly some value's decodes to CORRUPT.
                Some(v) if v != value => {
                    anomaly("corrupt", vec![read], json!({"read": done.value}));
                }
                Some(_) => {
                    if let Some(a) = aborts_ok.first() {
                        anomaly("aborted-visible", vec![a, read], Value::Null);
                    } else if may_complete_from.is_none_or(|t| t > done.time_ns) {
                        anomaly(
                            "phantom",
                            vec![read],
                            json!("no completion that may have succeeded was invoked before it"),
                        );
                    }
                    verified |= after_ack;
                }
                None if after_ack => {
                    let mut culprits: Vec<&Operation> = completes_ok.clone();
                    culprits.push(read);
                    anomaly("lost", culprits, Value::Null);
                    verified = true;
                }
                None => {}
            }
        }
        if !verified {
            unverified += 1;
        }
        for (kind, culprits, extra) in found {
            anomalies.push(json!({
                "type": kind,
                "key": key,
                "value": value,
                "ops": culprits.iter().map(|o| describe(o)).collect::<Vec<_>>(),
                "detail": extra,
            }));
            evidence.extend(culprits);
        }
    }
    evidence.sort_by_key(|o| o.invoke.index);
    evidence.dedup_by_key(|o| o.invoke.index);
    let valid = if !anomalies.is_empty() {
        Validity::Invalid
    } else if unverified > 0 {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    CheckResult {
        valid,
        details: json!({
            "checker": "multipart: completed readable, aborted invisible, not both",
            "uploads": uploads,
            "completed": completed,
            "aborted": aborted,
            "reads_checked": reads_checked,
            "completed_unverified": unverified,
            "anomalies": anomalies.into_iter().take(50).collect::<Vec<_>>(),
            "sub_history": events_of(&evidence.into_iter().take(200).collect::<Vec<_>>()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventBody, Process, Recorder};

    struct H(Recorder);

    impl H {
        fn new() -> H {
            H(Recorder::new())
        }
        fn ev(&self, p: u64, kind: EventType, f: &str, key: &str, value: Value) {
            self.0.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key: Some(key),
                value,
                error: None,
            });
        }
        fn op(&self, p: u64, f: &str, key: &str, kind: EventType, out: Value) {
            let v = match f {
                START => json!(1),
                "read" => Value::Null,
                _ => json!({"upload": "u", "value": 1}),
            };
            self.ev(p, EventType::Invoke, f, key, v);
            self.ev(p, kind, f, key, out);
        }
        fn started(&self) {
            self.op(0, START, "m/1", EventType::Ok, json!({"upload": "u"}));
        }
        fn check(&self) -> CheckResult {
            check(&self.0.snapshot())
        }
    }

    use EventType::{Fail, Info, Ok as Done};

    #[test]
    fn clean_races_are_valid() {
        let h = H::new();
        h.started();
        h.op(1, "read", "m/1", Done, Value::Null);
        h.op(1, COMPLETE, "m/1", Done, Value::Null);
        h.op(2, ABORT, "m/1", Fail, Value::Null);
        h.op(1, "read", "m/1", Done, json!(1));
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["completed"], 1);

        let h = H::new();
        h.started();
        h.op(2, ABORT, "m/1", Done, Value::Null);
        h.op(1, COMPLETE, "m/1", Fail, Value::Null);
        h.op(1, "read", "m/1", Done, Value::Null);
        assert_eq!(h.check().valid, Validity::Valid);

        // Neither acknowledged: visible or not.
        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Info, Value::Null);
        h.op(1, "read", "m/1", Done, json!(1));
        assert_eq!(h.check().valid, Validity::Valid);
    }

    #[test]
    fn planted_anomalies_are_caught() {
        let kinds = |h: &H| -> Vec<String> {
            let r = h.check();
            assert_eq!(r.valid, Validity::Invalid, "{:#}", r.details);
            r.details["anomalies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["type"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Done, Value::Null);
        h.op(2, ABORT, "m/1", Done, Value::Null);
        assert!(kinds(&h).contains(&"both-acknowledged".to_string()));

        let h = H::new();
        h.started();
        h.op(2, ABORT, "m/1", Done, Value::Null);
        h.op(1, COMPLETE, "m/1", Info, Value::Null);
        h.op(1, "read", "m/1", Done, json!(1));
        assert_eq!(kinds(&h), ["aborted-visible"]);

        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Done, Value::Null);
        h.op(1, "read", "m/1", Done, Value::Null);
        assert_eq!(kinds(&h), ["lost"]);

        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Done, Value::Null);
        h.op(1, "read", "m/1", Done, json!("corrupt: 3 bytes"));
        assert_eq!(kinds(&h), ["corrupt"]);

        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Fail, Value::Null);
        h.op(1, "read", "m/1", Done, json!(1));
        assert_eq!(kinds(&h), ["phantom"]);
    }

    #[test]
    fn an_acknowledged_completion_never_read_is_unknown() {
        let h = H::new();
        h.started();
        h.op(1, COMPLETE, "m/1", Done, Value::Null);
        assert_eq!(h.check().valid, Validity::Unknown);
    }
}
