//! The set checker: clients add unique elements (one new key per PUT); after the final heal
//! the harness lists the bucket and reads every key. Every acknowledged add must be listed
//! and readable with its own bytes (else it is **lost**); nothing that no client tried to
//! add may be listed (**unexpected**); an add that failed for certain must not be present
//! (**failed-visible**); indeterminate adds may be present or not (**recovered** counts
//! those that are).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{describe, events_of, CheckResult, Validity};
use crate::history::{operations, Event, EventType, Operation};

/// The final listing's `f`.
pub const FINAL_LIST: &str = "final-list";
/// The final reads' `f`.
pub const FINAL_READ: &str = "final-read";

/// What a final read of element `n` returned: its number if the bytes were right,
/// `"corrupt..."` otherwise, `null` if there was no such key.
fn read_ok(v: &Value, n: u64) -> Result<bool, String> {
    match v {
        Value::Null => Ok(false),
        Value::Number(x) if x.as_u64() == Some(n) => Ok(true),
        other => Err(other.to_string()),
    }
}

/// Checks a set history.
pub fn check(events: &[Event]) -> CheckResult {
    let ops = operations(events);
    // element -> the add operation (each element is added once).
    let mut adds: BTreeMap<u64, &Operation> = BTreeMap::new();
    let mut key_of: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.invoke.f == "add") {
        if let (Some(n), Some(key)) = (op.invoke.value.as_u64(), op.invoke.key.as_ref()) {
            adds.insert(n, op);
            key_of.insert(key.clone(), n);
        }
    }
    let listed: Option<BTreeSet<String>> = ops
        .iter()
        .filter(|o| o.invoke.f == FINAL_LIST && o.outcome() == EventType::Ok)
        .filter_map(|o| o.complete.as_ref())
        .next_back()
        .map(|c| {
            c.value
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        });
    // key -> the last successful final read's value.
    let mut reads: BTreeMap<String, Value> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.invoke.f == FINAL_READ) {
        if let (Some(key), Some(c)) = (op.invoke.key.as_ref(), op.complete.as_ref()) {
            if c.kind == EventType::Ok {
                reads.insert(key.clone(), c.value.clone());
            }
        }
    }

    let outcome_count = |t: EventType| adds.values().filter(|o| o.outcome() == t).count();
    let Some(listed) = listed else {
        return CheckResult {
            valid: Validity::Unknown,
            details: json!({
                "checker": "set",
                "error": "the final listing never succeeded",
                "attempted": adds.len(),
                "acknowledged": outcome_count(EventType::Ok),
            }),
        };
    };

    let mut lost = Vec::new();
    let mut unreadable = Vec::new();
    let mut corrupt = Vec::new();
    let mut failed_visible = Vec::new();
    let mut recovered = 0usize;
    for (&n, op) in &adds {
        let Some(key) = op.invoke.key.as_deref() else {
            continue;
        };
        let in_list = listed.contains(key);
        let read = reads.get(key).map(|v| read_ok(v, n));
        if let Some(Err(bytes)) = &read {
            corrupt.push(json!({"key": key, "read": bytes}));
        }
        let readable = matches!(read, Some(Ok(true)));
        match op.outcome() {
            EventType::Ok => {
                if !in_list || !readable {
                    lost.push(*op);
                }
                if read.is_none() {
                    unreadable.push(key.to_string());
                }
            }
            EventType::Fail => {
                if in_list || readable {
                    failed_visible.push(*op);
                }
            }
            _ => {
                if in_list || readable {
                    recovered += 1;
                }
            }
        }
    }
    let unexpected: Vec<&String> = listed.iter().filter(|k| !key_of.contains_key(*k)).collect();
    // An acknowledged element whose final read never succeeded cannot be judged readable;
    // that is an unknown, not a loss, unless the listing already misses it.
    let lost_for_sure: Vec<&Operation> = lost
        .iter()
        .copied()
        .filter(|op| {
            let key = op.invoke.key.as_deref().unwrap_or_default();
            !listed.contains(key) || reads.contains_key(key)
        })
        .collect();
    let valid = if !lost_for_sure.is_empty()
        || !unexpected.is_empty()
        || !failed_visible.is_empty()
        || !corrupt.is_empty()
    {
        Validity::Invalid
    } else if !unreadable.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    let mut anomalous: Vec<&Operation> = lost_for_sure.clone();
    anomalous.extend(failed_visible.iter().copied());
    CheckResult {
        valid,
        details: json!({
            "checker": "set",
            "attempted": adds.len(),
            "acknowledged": outcome_count(EventType::Ok),
            "failed": outcome_count(EventType::Fail),
            "indeterminate": adds.len() - outcome_count(EventType::Ok) - outcome_count(EventType::Fail),
            "recovered": recovered,
            "listed": listed.len(),
            "lost": lost_for_sure.iter().map(|o| describe(o)).collect::<Vec<_>>(),
            "unexpected": unexpected,
            "failed_visible": failed_visible.iter().map(|o| describe(o)).collect::<Vec<_>>(),
            "corrupt": corrupt,
            "never_read": unreadable,
            "sub_history": events_of(&anomalous),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventBody, Process, Recorder};

    fn key(n: u64) -> String {
        format!("s/{n:08}")
    }

    /// A history of adds with the given outcomes, then a final listing of `listed` and
    /// final reads of every listed or acknowledged key (returning `read(n)`).
    fn history(
        outcomes: &[(u64, EventType)],
        listed: &[String],
        read: impl Fn(u64) -> Value,
    ) -> Vec<Event> {
        let rec = Recorder::new();
        let ev = |p: u64, kind, f: &'static str, k: Option<&str>, value: Value| {
            rec.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key: k,
                value,
                error: None,
            })
        };
        for (p, &(n, outcome)) in outcomes.iter().enumerate() {
            let p = p as u64;
            ev(p, EventType::Invoke, "add", Some(&key(n)), json!(n));
            ev(p, outcome, "add", Some(&key(n)), json!(n));
        }
        ev(1000, EventType::Invoke, FINAL_LIST, None, Value::Null);
        ev(1000, EventType::Ok, FINAL_LIST, None, json!(listed));
        let mut to_read: BTreeSet<String> = listed.iter().cloned().collect();
        to_read.extend(
            outcomes
                .iter()
                .filter(|(_, o)| *o == EventType::Ok)
                .map(|(n, _)| key(*n)),
        );
        for k in to_read {
            let n: u64 = k[2..].parse().unwrap_or(u64::MAX);
            ev(1000, EventType::Invoke, FINAL_READ, Some(&k), Value::Null);
            ev(1000, EventType::Ok, FINAL_READ, Some(&k), read(n));
        }
        rec.snapshot()
    }

    fn right(n: u64) -> Value {
        json!(n)
    }

    #[test]
    fn every_acknowledged_element_present_is_valid() {
        let outcomes = [
            (1, EventType::Ok),
            (2, EventType::Ok),
            (3, EventType::Info),
            (4, EventType::Info),
            (5, EventType::Fail),
        ];
        let listed = vec![key(1), key(2), key(3)];
        let r = check(&history(&outcomes, &listed, right));
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["recovered"], 1);
        assert_eq!(r.details["acknowledged"], 2);
        assert_eq!(r.details["indeterminate"], 2);
    }

    #[test]
    fn a_lost_acknowledged_element_is_caught() {
        let outcomes = [(1, EventType::Ok), (2, EventType::Ok)];
        let r = check(&history(&outcomes, &[key(1)], |n| {
            if n == 2 {
                Value::Null
            } else {
                json!(n)
            }
        }));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["lost"][0]["key"], key(2));
        assert_eq!(r.details["sub_history"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn listed_but_unreadable_is_lost() {
        let outcomes = [(1, EventType::Ok)];
        let r = check(&history(&outcomes, &[key(1)], |_| Value::Null));
        assert_eq!(r.valid, Validity::Invalid);
    }

    #[test]
    fn phantoms_failed_writes_and_corrupt_bytes_are_caught() {
        let outcomes = [(1, EventType::Ok)];
        let r = check(&history(&outcomes, &[key(1), key(99)], right));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["unexpected"][0], key(99));

        let outcomes = [(1, EventType::Ok), (2, EventType::Fail)];
        let r = check(&history(&outcomes, &[key(1), key(2)], right));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["failed_visible"][0]["key"], key(2));

        let outcomes = [(1, EventType::Ok)];
        let r = check(&history(&outcomes, &[key(1)], |_| {
            json!("corrupt: 3 bytes")
        }));
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["corrupt"][0]["key"], key(1));
    }

    #[test]
    fn no_final_listing_is_unknown() {
        let rec = Recorder::new();
        rec.record(EventBody {
            kind: EventType::Invoke,
            process: Process::Client(0),
            f: "add",
            key: Some("s/00000001"),
            value: json!(1),
            error: None,
        });
        assert_eq!(check(&rec.snapshot()).valid, Validity::Unknown);
    }
}
