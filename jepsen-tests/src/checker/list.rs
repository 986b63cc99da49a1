//! The list checker: a LIST must reflect every PUT and DELETE acknowledged before it was
//! invoked. For each successful LIST and each key, the states the key may be in at the
//! LIST's linearization point are the effects of
//!
//! - the acknowledged mutations completed before the LIST was invoked that no other such
//!   mutation certainly follows (invoked after it completed),
//! - acknowledged mutations concurrent with the LIST,
//! - indeterminate mutations invoked before the LIST completed (they may land any time),
//! - "absent" if no mutation of the key completed before the LIST;
//!
//! and whether the LIST shows the key must match one of them. Keys listed that no client
//! ever tried to PUT are unexpected. This checks each LIST on its own (a necessary condition
//! of linearizability, not a full search), which is what catches a listing that lags behind
//! acknowledged writes or deletes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{describe, events_of, CheckResult, Validity};
use crate::history::{operations, Event, EventType, Operation};

/// The listing operation's `f`.
pub const LIST: &str = "list";

/// A PUT or DELETE: when it was invoked and completed (`None`: indeterminate), and whether
/// it leaves the key present.
struct Mutation<'a> {
    op: &'a Operation,
    invoke: u64,
    complete: Option<u64>,
    present: bool,
}

/// Checks a list history.
pub fn check(events: &[Event]) -> CheckResult {
    let ops = operations(events);
    let mut mutations: BTreeMap<&str, Vec<Mutation>> = BTreeMap::new();
    let mut written: BTreeSet<&str> = BTreeSet::new();
    for op in &ops {
        let present = match op.invoke.f.as_str() {
            "write" => true,
            "delete" => false,
            _ => continue,
        };
        let Some(key) = op.invoke.key.as_deref() else {
            continue;
        };
        if present {
            written.insert(key);
        }
        let complete = match op.outcome() {
            EventType::Ok => op.complete.as_ref().map(|c| c.time_ns),
            EventType::Info => None,
            EventType::Fail | EventType::Invoke => continue,
        };
        mutations.entry(key).or_default().push(Mutation {
            op,
            invoke: op.invoke.time_ns,
            complete,
            present,
        });
    }
    let lists: Vec<(&Operation, BTreeSet<String>)> = ops
        .iter()
        .filter(|o| o.invoke.f == LIST && o.outcome() == EventType::Ok)
        .filter_map(|o| {
            let keys = o.complete.as_ref()?.value.as_array()?;
            Some((
                o,
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect(),
            ))
        })
        .collect();

    let mut anomalies = Vec::new();
    let mut evidence: Vec<&Operation> = Vec::new();
    let mut unexpected: BTreeSet<String> = BTreeSet::new();
    for (list, shown) in &lists {
        let a = list.invoke.time_ns;
        let b = list.complete.as_ref().map_or(u64::MAX, |c| c.time_ns);
        for key in shown {
            if !written.contains(key.as_str()) {
                unexpected.insert(key.clone());
            }
        }
        for (key, muts) in &mutations {
            let before: Vec<&Mutation> = muts
                .iter()
                .filter(|m| m.complete.is_some_and(|c| c < a))
                .collect();
            // A mutation completed before the LIST is certainly followed by another one iff
            // some other such mutation was invoked after it completed.
            let latest_invoke = before.iter().map(|m| m.invoke).max().unwrap_or(0);
            let last = |m: &&&Mutation| m.complete.is_some_and(|c| c >= latest_invoke);
            let mut possible: BTreeSet<bool> = BTreeSet::new();
            if before.is_empty() {
                possible.insert(false);
            }
            for m in before.iter().filter(last) {
                possible.insert(m.present);
            }
            for m in muts {
                let concurrent_ok = m.complete.is_some_and(|c| c >= a) && m.invoke < b;
                let pending = m.complete.is_none() && m.invoke < b;
                if concurrent_ok || pending {
                    possible.insert(m.present);
                }
            }
            let listed = shown.contains(*key);
            if !possible.contains(&listed) {
                let culprits: Vec<&Operation> = before.iter().filter(last).map(|m| m.op).collect();
                anomalies.push(json!({
                    "key": key,
                    "list": describe(list),
                    "listed": listed,
                    "expected": if listed { "absent" } else { "present" },
                    "last_acknowledged": culprits.iter().map(|o| describe(o)).collect::<Vec<_>>(),
                }));
                evidence.push(list);
                evidence.extend(culprits);
            }
        }
    }
    evidence.sort_by_key(|o| o.invoke.index);
    evidence.dedup_by_key(|o| o.invoke.index);
    let valid = if !anomalies.is_empty() || !unexpected.is_empty() {
        Validity::Invalid
    } else if lists.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    CheckResult {
        valid,
        details: json!({
            "checker": "list reflects acknowledged mutations",
            "lists": lists.len(),
            "keys": mutations.len(),
            "stale": anomalies.len(),
            "anomalies": anomalies.into_iter().take(50).collect::<Vec<Value>>(),
            "unexpected": unexpected,
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
        fn ev(&self, p: u64, kind: EventType, f: &str, key: Option<&str>, value: Value) {
            self.0.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key,
                value,
                error: None,
            });
        }
        fn op(&self, p: u64, f: &str, key: &str, kind: EventType) {
            self.ev(p, EventType::Invoke, f, Some(key), Value::Null);
            self.ev(p, kind, f, Some(key), Value::Null);
        }
        fn list(&self, p: u64, keys: &[&str]) {
            self.ev(p, EventType::Invoke, LIST, None, Value::Null);
            self.ev(p, EventType::Ok, LIST, None, json!(keys));
        }
        fn check(&self) -> CheckResult {
            check(&self.0.snapshot())
        }
    }

    #[test]
    fn listings_that_follow_the_writes_are_valid() {
        let h = H::new();
        h.list(9, &[]);
        h.op(0, "write", "a", EventType::Ok);
        h.op(0, "write", "b", EventType::Ok);
        h.list(9, &["a", "b"]);
        h.op(1, "delete", "a", EventType::Ok);
        h.op(1, "write", "c", EventType::Fail);
        h.list(9, &["b"]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["lists"], 3);
    }

    #[test]
    fn a_listing_missing_an_acknowledged_put_is_caught() {
        let h = H::new();
        h.op(0, "write", "a", EventType::Ok);
        h.list(9, &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["anomalies"][0]["key"], "a");
        assert_eq!(r.details["anomalies"][0]["expected"], "present");
    }

    #[test]
    fn a_listing_showing_an_acknowledged_delete_is_caught() {
        let h = H::new();
        h.op(0, "write", "a", EventType::Ok);
        h.op(0, "delete", "a", EventType::Ok);
        h.list(9, &["a"]);
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn concurrent_and_indeterminate_mutations_allow_either() {
        let h = H::new();
        h.op(0, "write", "a", EventType::Ok);
        // A delete in flight during the listing: either answer is fine.
        h.ev(1, EventType::Invoke, "delete", Some("a"), Value::Null);
        h.list(9, &[]);
        h.list(9, &["a"]);
        h.ev(1, EventType::Ok, "delete", Some("a"), Value::Null);
        h.list(9, &[]);
        // An indeterminate write may show up in any later listing, or not.
        h.op(2, "write", "b", EventType::Info);
        h.list(9, &["b"]);
        h.list(9, &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
    }

    #[test]
    fn phantom_keys_are_caught() {
        let h = H::new();
        h.op(0, "write", "a", EventType::Ok);
        h.list(9, &["a", "zzz"]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["unexpected"][0], "zzz");
    }
}
