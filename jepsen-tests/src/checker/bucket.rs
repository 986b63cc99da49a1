//! The bucket checker. Each bucket name is a register of existence, checked for
//! linearizability with the same WGL search as the object register
//! ([`super::linear`]): CreateBucket succeeds only on an absent bucket, DeleteBucket only on
//! a present one, and the refusals S3 defines are observations (409
//! BucketAlreadyOwnedByYou: it existed; 404 NoSuchBucket: it did not), as are HeadBucket's
//! 200 and 404. ListBuckets sees every name at once, so it is not compositional per name: each
//! listing is judged on its own against the acknowledged creates and deletes, by the list
//! checker ([`super::list`]) on the history rewritten as PUTs and DELETEs of keys.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::linear::{self, Entry, Model, Verdict};
use super::{describe, CheckResult, Validity};
use crate::history::{operations, Event, EventType, Operation};

/// `f` of a CreateBucket.
pub const CREATE_BUCKET: &str = "create-bucket";
/// `f` of a DeleteBucket.
pub const DELETE_BUCKET: &str = "delete-bucket";
/// `f` of a HeadBucket; its ok value is `true` (200) or `false` (404).
pub const HEAD_BUCKET: &str = "head-bucket";
/// `f` of a ListBuckets; its ok value is the names listed (of the workload's prefix).
pub const LIST_BUCKETS: &str = "list-buckets";

/// Steps the search may take per bucket name before it answers unknown.
pub const SEARCH_BUDGET: u64 = 20_000_000;

/// Whether a bucket exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exists(pub bool);

/// A bucket operation with what it observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketOp {
    /// An acknowledged CreateBucket: absent before, present after.
    Create,
    /// An acknowledged DeleteBucket: present before, absent after.
    Delete,
    /// An observation: HeadBucket 200 / 404, CreateBucket 409 (present), DeleteBucket 404
    /// (absent).
    Saw(bool),
    /// A create (`true`) or delete (`false`) of unknown outcome: whether or not it took
    /// effect, the bucket is in that state afterwards if it is placed here (a create of a
    /// present bucket fails and leaves it present), so it is never impossible.
    Maybe(bool),
}

impl Model for Exists {
    type Op = BucketOp;
    fn step(&self, op: &BucketOp) -> Option<Exists> {
        match op {
            BucketOp::Create => (!self.0).then_some(Exists(true)),
            BucketOp::Delete => self.0.then_some(Exists(false)),
            BucketOp::Saw(b) => (self.0 == *b).then_some(*self),
            BucketOp::Maybe(b) => Some(Exists(*b)),
        }
    }
}

/// The S3 error code of a definite failure (`"409 BucketAlreadyOwnedByYou"`).
fn failure_code(op: &Operation) -> Option<&str> {
    op.complete
        .as_ref()?
        .error
        .as_deref()?
        .split_whitespace()
        .nth(1)
}

/// The operation as a checker op, with its return time (`None`: at infinity), or `None`
/// when it says nothing (failed for a reason that is not an observation, read not answered).
///
/// `lenient`: read a refusal as "the bucket is in that state after the request" rather than
/// "it was in that state, untouched by the request" (`Maybe` with a definite return): what
/// a client sees when the gateway retried a command whose first attempt had already applied.
fn entry(op: &Operation, lenient: bool) -> Option<Entry<BucketOp>> {
    let done = op.complete.as_ref().map(|c| c.time_ns);
    let (bop, ret) = match (op.invoke.f.as_str(), op.outcome()) {
        (CREATE_BUCKET, EventType::Ok) => (BucketOp::Create, done),
        (DELETE_BUCKET, EventType::Ok) => (BucketOp::Delete, done),
        (CREATE_BUCKET, EventType::Fail) => match failure_code(op)? {
            "BucketAlreadyOwnedByYou" | "BucketAlreadyExists" if lenient => {
                (BucketOp::Maybe(true), done)
            }
            "BucketAlreadyOwnedByYou" | "BucketAlreadyExists" => (BucketOp::Saw(true), done),
            _ => return None,
        },
        (DELETE_BUCKET, EventType::Fail) => match failure_code(op)? {
            "NoSuchBucket" if lenient => (BucketOp::Maybe(false), done),
            "NoSuchBucket" => (BucketOp::Saw(false), done),
            _ => return None,
        },
        (CREATE_BUCKET, _) => (BucketOp::Maybe(true), None),
        (DELETE_BUCKET, _) => (BucketOp::Maybe(false), None),
        (HEAD_BUCKET, EventType::Ok) => {
            (BucketOp::Saw(op.complete.as_ref()?.value.as_bool()?), done)
        }
        _ => return None,
    };
    Some(Entry {
        op: bop,
        call: op.invoke.time_ns,
        ret,
    })
}

/// Checks a bucket history: every name for linearizability, every listing on its own.
pub fn check(events: &[Event], budget: u64) -> CheckResult {
    let ops = operations(events);
    let mut by_name: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in &ops {
        if let Some(name) = op.invoke.key.as_deref() {
            by_name.entry(name).or_default().push(op);
        }
    }
    let mut valid = Validity::Valid;
    let mut names = Vec::new();
    let mut anomalies = Vec::new();
    let mut checked_ops = 0;
    for (name, name_ops) in &by_name {
        let (history, origin): (Vec<Entry<BucketOp>>, Vec<&Operation>) = name_ops
            .iter()
            .filter_map(|op| entry(op, false).map(|e| (e, *op)))
            .unzip();
        checked_ops += history.len();
        let (v, anomaly) = match linear::check(Exists(false), &history, budget) {
            Verdict::Linearizable => (Validity::Valid, None),
            Verdict::Unknown(b) => (
                Validity::Unknown,
                Some(
                    json!({"bucket": name, "unknown": format!("search budget of {b} steps exhausted")}),
                ),
            ),
            Verdict::NotLinearizable(c) => {
                let tail: Vec<usize> = c.linearized.iter().rev().take(5).rev().copied().collect();
                let start = tail
                    .iter()
                    .chain([&c.stuck])
                    .map(|&i| history[i].call)
                    .min()
                    .unwrap_or(0);
                let end = history[c.stuck].ret.unwrap_or(u64::MAX);
                let window: Vec<Value> = origin
                    .iter()
                    .zip(&history)
                    .filter(|(_, e)| e.call <= end && e.ret.unwrap_or(u64::MAX) >= start)
                    .map(|(op, _)| describe(op))
                    .collect();
                (
                    Validity::Invalid,
                    Some(json!({
                        "bucket": name,
                        "stuck": describe(origin[c.stuck]),
                        "exists_before_stuck": c.state.0,
                        "linearized_before": tail.iter().map(|&i| describe(origin[i])).collect::<Vec<_>>(),
                        "sub_history": window,
                    })),
                )
            }
        };
        valid = valid.and(v);
        // For a diagnosis only (the verdict stays strict): would the name be linearizable if
        // its 409s and 404s came from retries of commands that had already applied?
        let lenient = (v == Validity::Invalid).then(|| {
            let h: Vec<Entry<BucketOp>> =
                name_ops.iter().filter_map(|op| entry(op, true)).collect();
            matches!(
                linear::check(Exists(false), &h, budget),
                Verdict::Linearizable
            )
        });
        names.push(json!({
            "bucket": name,
            "ops": name_ops.len(),
            "checked": history.len(),
            "valid": v,
            "valid_if_refusals_follow_own_effect": lenient,
        }));
        if let Some(a) = anomaly {
            anomalies.push(a);
        }
    }
    let listings = super::list::check(&as_list_history(events));
    // The list checker answers unknown without any listing; here the names' registers
    // still decide (a run always ends with one listing, unless the cluster never recovered).
    if listings.details["lists"].as_u64().unwrap_or(0) > 0 {
        valid = valid.and(listings.valid);
    }
    CheckResult {
        valid,
        details: json!({
            "checker": "linearizable bucket existence per name (WGL); each ListBuckets against the acknowledged creates and deletes",
            "buckets": names,
            "checked_ops": checked_ops,
            "anomalies": anomalies,
            "lists": listings.details["lists"],
            "list_checker": listings.details,
        }),
    }
}

/// The history as the list checker reads it: creates as PUTs, deletes as DELETEs of the
/// bucket name, listings as LISTs. Refused creates and deletes are failures there (no
/// effect), which is what they are.
fn as_list_history(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .filter_map(|e| {
            let f = match e.f.as_str() {
                CREATE_BUCKET => "write",
                DELETE_BUCKET => "delete",
                LIST_BUCKETS => super::list::LIST,
                _ => return None,
            };
            let mut e = e.clone();
            e.f = f.into();
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{EventBody, Process, Recorder};

    struct H {
        rec: Recorder,
    }

    impl H {
        fn new() -> H {
            H {
                rec: Recorder::new(),
            }
        }
        fn ev(&self, p: u64, kind: EventType, f: &str, name: Option<&str>, value: Value) {
            self.ev_err(p, kind, f, name, value, None);
        }
        fn ev_err(
            &self,
            p: u64,
            kind: EventType,
            f: &str,
            name: Option<&str>,
            value: Value,
            error: Option<&str>,
        ) {
            self.rec.record(EventBody {
                kind,
                process: Process::Client(p),
                f,
                key: name,
                value,
                error: error.map(str::to_string),
            });
        }
        /// An operation on bucket `b` completed at once.
        fn op(&self, p: u64, f: &str, b: &str, kind: EventType, value: Value, error: Option<&str>) {
            self.ev(p, EventType::Invoke, f, Some(b), Value::Null);
            self.ev_err(p, kind, f, Some(b), value, error);
        }
        fn list(&self, p: u64, names: &[&str]) {
            self.ev(p, EventType::Invoke, LIST_BUCKETS, None, Value::Null);
            self.ev(p, EventType::Ok, LIST_BUCKETS, None, json!(names));
        }
        fn check(&self) -> CheckResult {
            check(&self.rec.snapshot(), 1_000_000)
        }
    }

    use EventType::{Fail, Info, Ok as Done};

    #[test]
    fn a_clean_history_is_valid() {
        let h = H::new();
        h.op(0, HEAD_BUCKET, "a", Done, json!(false), None);
        h.op(0, CREATE_BUCKET, "a", Done, Value::Null, None);
        h.op(
            1,
            CREATE_BUCKET,
            "a",
            Fail,
            Value::Null,
            Some("409 BucketAlreadyOwnedByYou"),
        );
        h.op(1, HEAD_BUCKET, "a", Done, json!(true), None);
        h.list(2, &["a"]);
        h.op(1, DELETE_BUCKET, "a", Done, Value::Null, None);
        h.op(
            0,
            DELETE_BUCKET,
            "a",
            Fail,
            Value::Null,
            Some("404 NoSuchBucket"),
        );
        h.op(
            0,
            CREATE_BUCKET,
            "b",
            Fail,
            Value::Null,
            Some("connection refused: x"),
        );
        h.list(2, &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Valid, "{:#}", r.details);
        assert_eq!(r.details["checked_ops"], 6);
        assert_eq!(r.details["lists"], 2);
    }

    #[test]
    fn a_409_on_an_absent_bucket_is_caught() {
        let h = H::new();
        h.op(
            0,
            CREATE_BUCKET,
            "a",
            Fail,
            Value::Null,
            Some("409 BucketAlreadyOwnedByYou"),
        );
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.details["anomalies"][0]["bucket"], "a");
        // Unless the 409 answered a retry of a create that had applied.
        assert_eq!(
            r.details["buckets"][0]["valid_if_refusals_follow_own_effect"],
            true
        );
    }

    #[test]
    fn two_acknowledged_creates_are_caught_even_concurrent() {
        let h = H::new();
        h.ev(0, EventType::Invoke, CREATE_BUCKET, Some("a"), Value::Null);
        h.ev(1, EventType::Invoke, CREATE_BUCKET, Some("a"), Value::Null);
        h.ev(0, Done, CREATE_BUCKET, Some("a"), Value::Null);
        h.ev(1, Done, CREATE_BUCKET, Some("a"), Value::Null);
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn a_deleted_bucket_that_is_still_seen_is_caught() {
        let h = H::new();
        h.op(0, CREATE_BUCKET, "a", Done, Value::Null, None);
        h.op(0, DELETE_BUCKET, "a", Done, Value::Null, None);
        h.op(1, HEAD_BUCKET, "a", Done, json!(true), None);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid);
        // No refusal to blame here.
        assert_eq!(
            r.details["buckets"][0]["valid_if_refusals_follow_own_effect"],
            false
        );
    }

    #[test]
    fn indeterminate_operations_may_or_may_not_have_happened() {
        let h = H::new();
        h.ev(0, EventType::Invoke, CREATE_BUCKET, Some("a"), Value::Null);
        h.ev(0, Info, CREATE_BUCKET, Some("a"), Value::Null);
        h.op(1, HEAD_BUCKET, "a", Done, json!(false), None);
        h.op(1, HEAD_BUCKET, "a", Done, json!(true), None);
        h.op(1, DELETE_BUCKET, "a", Done, Value::Null, None);
        h.ev(2, EventType::Invoke, DELETE_BUCKET, Some("a"), Value::Null);
        h.ev(2, Info, DELETE_BUCKET, Some("a"), Value::Null);
        h.op(1, CREATE_BUCKET, "a", Done, Value::Null, None);
        assert_eq!(h.check().valid, Validity::Valid);
        // But a bucket seen, then deleted, cannot come back without a create.
        h.op(1, DELETE_BUCKET, "a", Done, Value::Null, None);
        h.op(1, HEAD_BUCKET, "a", Done, json!(true), None);
        assert_eq!(h.check().valid, Validity::Invalid);
    }

    #[test]
    fn stale_and_phantom_listings_are_caught() {
        let h = H::new();
        h.op(0, CREATE_BUCKET, "a", Done, Value::Null, None);
        h.list(1, &[]);
        let r = h.check();
        assert_eq!(r.valid, Validity::Invalid, "{:#}", r.details);
        assert!(r.details["anomalies"].as_array().is_some_and(Vec::is_empty));

        let h = H::new();
        h.list(1, &["ghost"]);
        assert_eq!(h.check().valid, Validity::Invalid);
    }
}
