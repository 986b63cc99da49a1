//! Checkers: each turns a history into a verdict (valid, invalid with the anomalies and the
//! sub-history that shows them, or unknown).

pub mod bucket;
pub mod linear;
pub mod list;
pub mod multipart;
pub mod register;
pub mod set;

use serde::Serialize;
use serde_json::Value;

use crate::history::{Event, EventType, Operation};

/// The overall answer; serialized as `true`, `false` or `"unknown"` (as Jepsen does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// No anomaly found.
    Valid,
    /// At least one anomaly.
    Invalid,
    /// The checker could not decide (search budget exhausted, final reads never answered).
    Unknown,
}

impl Serialize for Validity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => s.serialize_bool(true),
            Validity::Invalid => s.serialize_bool(false),
            Validity::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl Validity {
    /// `true`, `false` or `unknown`, as the summary line prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "true",
            Validity::Invalid => "false",
            Validity::Unknown => "unknown",
        }
    }

    /// Invalid wins over unknown, which wins over valid.
    pub fn and(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// A checker's verdict and its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The verdict.
    pub valid: Validity,
    /// Checker-specific details: counts, anomalies, sub-histories.
    pub details: Value,
}

/// A compact view of one operation for reports: who, what, when, how it ended.
pub fn describe(op: &Operation) -> Value {
    let c = op.complete.as_ref();
    serde_json::json!({
        "process": op.invoke.process,
        "f": op.invoke.f,
        "key": op.invoke.key,
        "value": match c {
            Some(c) if c.kind == EventType::Ok && !c.value.is_null() => c.value.clone(),
            _ => op.invoke.value.clone(),
        },
        "outcome": op.outcome(),
        "invoke_index": op.invoke.index,
        "invoke_ns": op.invoke.time_ns,
        "complete_ns": c.map(|c| c.time_ns),
        "error": c.and_then(|c| c.error.clone()),
    })
}

/// The invocation and completion events of `ops`, in history order.
pub fn events_of(ops: &[&Operation]) -> Vec<Event> {
    let mut out: Vec<Event> = ops
        .iter()
        .flat_map(|op| std::iter::once(op.invoke.clone()).chain(op.complete.clone()))
        .collect();
    out.sort_by_key(|e| e.index);
    out
}
