//! The history of a run: every client operation's invocation and completion (and every
//! nemesis action), with a monotonic timestamp, in the order they happened.
//!
//! Written as JSON lines (`history.jsonl`), one event per line, in the style of Jepsen:
//! `{"index":0,"type":"invoke","process":3,"f":"write","key":"r0","value":17,"time_ns":..}`.
//! An operation is an `invoke` followed by the next `ok` / `fail` / `info` of the same
//! process; a process has at most one operation outstanding.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// What an event says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client is about to send the request.
    Invoke,
    /// The operation took effect (for a read: this is what it saw).
    Ok,
    /// The operation certainly did not take effect.
    Fail,
    /// Unknown: it may or may not have taken effect (a timeout, a lost reply, a 5xx on a
    /// write). The process that issued it never issues another operation.
    Info,
}

/// Who issued an event: a client process (a number) or the nemesis.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    /// A client process. A client worker takes a new process number after an `info`.
    Client(u64),
    /// The fault injector (`"nemesis"`).
    Named(String),
}

impl Process {
    /// The nemesis.
    pub fn nemesis() -> Self {
        Process::Named("nemesis".into())
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the history (0-based).
    pub index: u64,
    /// Invocation or completion kind.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Who issued it.
    pub process: Process,
    /// The operation: `read`, `write`, `delete`, `add`, `final-list`, or a nemesis action.
    pub f: String,
    /// The object key, for operations on one key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The operation's value: what is written, or (on completion) what was read.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    /// Nanoseconds since the run started (monotonic clock).
    pub time_ns: u64,
    /// Why it failed or is indeterminate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Records events from many tasks and threads, stamping them in one total order.
pub struct Recorder {
    start: Instant,
    events: Mutex<Vec<Event>>,
}

/// The fields of an event other than its index and time.
pub struct EventBody<'a> {
    /// Invocation or completion kind.
    pub kind: EventType,
    /// Who issued it.
    pub process: Process,
    /// The operation.
    pub f: &'a str,
    /// The key, if any.
    pub key: Option<&'a str>,
    /// The value.
    pub value: Value,
    /// The error, if any.
    pub error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Appends an event. The timestamp is taken under the lock, so history order is time
    /// order.
    pub fn record(&self, body: EventBody<'_>) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let time_ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let index = events.len() as u64;
        events.push(Event {
            index,
            kind: body.kind,
            process: body.process,
            f: body.f.to_string(),
            key: body.key.map(str::to_string),
            value: body.value,
            time_ns,
            error: body.error,
        });
    }

    /// A nemesis action (recorded as `info`, as Jepsen does).
    pub fn nemesis(&self, f: &str, value: Value) {
        self.record(EventBody {
            kind: EventType::Info,
            process: Process::nemesis(),
            f,
            key: None,
            value,
            error: None,
        });
    }

    /// A copy of the events so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Writes `events` to `path` as JSON lines.
pub fn write_jsonl(path: &Path, events: &[Event]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut out = std::io::BufWriter::new(file);
    for event in events {
        let line = serde_json::to_string(event).map_err(|e| Error::History {
            line: event.index as usize + 1,
            detail: e.to_string(),
        })?;
        writeln!(out, "{line}").map_err(|e| Error::io("write", path, e))?;
    }
    out.flush().map_err(|e| Error::io("write", path, e))
}

/// Reads a history written by [`write_jsonl`].
pub fn read_jsonl(path: &Path) -> Result<Vec<Event>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io("read", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|e| Error::History {
            line: i + 1,
            detail: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// One client operation: its invocation and its completion (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The `invoke` event.
    pub invoke: Event,
    /// The matching `ok` / `fail` / `info`; `None` if the run ended first (indeterminate).
    pub complete: Option<Event>,
}

impl Operation {
    /// The completion kind; an operation that never completed counts as `info`.
    pub fn outcome(&self) -> EventType {
        self.complete.as_ref().map_or(EventType::Info, |c| c.kind)
    }
}

/// Pairs each client invocation with the next completion of the same process, in history
/// order. Nemesis events are skipped.
pub fn operations(events: &[Event]) -> Vec<Operation> {
    let mut open: std::collections::HashMap<&Process, usize> = Default::default();
    let mut ops: Vec<Operation> = Vec::new();
    for e in events {
        if matches!(e.process, Process::Named(_)) {
            continue;
        }
        match e.kind {
            EventType::Invoke => {
                open.insert(&e.process, ops.len());
                ops.push(Operation {
                    invoke: e.clone(),
                    complete: None,
                });
            }
            _ => {
                if let Some(i) = open.remove(&e.process) {
                    ops[i].complete = Some(e.clone());
                }
            }
        }
    }
    ops
}

/// Counts of client operations by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Invocations.
    pub ops: usize,
    /// Completed `ok`.
    pub ok: usize,
    /// Completed `fail`.
    pub fail: usize,
    /// `info` or never completed.
    pub info: usize,
}

/// Outcome counts over the client operations of `events`.
pub fn counts(events: &[Event]) -> Counts {
    let mut c = Counts::default();
    for op in operations(events) {
        c.ops += 1;
        match op.outcome() {
            EventType::Ok => c.ok += 1,
            EventType::Fail => c.fail += 1,
            EventType::Info | EventType::Invoke => c.info += 1,
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventType, p: u64, f: &str) -> EventBody<'static> {
        EventBody {
            kind,
            process: Process::Client(p),
            f: match f {
                "write" => "write",
                _ => "read",
            },
            key: Some("k"),
            value: Value::Null,
            error: None,
        }
    }

    #[test]
    fn operations_pair_by_process_and_survive_a_round_trip() {
        let rec = Recorder::new();
        rec.record(ev(EventType::Invoke, 0, "write"));
        rec.record(ev(EventType::Invoke, 1, "read"));
        rec.nemesis("kill", serde_json::json!({"node": "meta-1"}));
        rec.record(ev(EventType::Ok, 1, "read"));
        rec.record(ev(EventType::Info, 0, "write"));
        rec.record(ev(EventType::Invoke, 2, "read"));
        let events = rec.snapshot();
        let ops = operations(&events);
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].invoke.process, Process::Client(0));
        assert_eq!(ops[0].outcome(), EventType::Info);
        assert_eq!(ops[1].outcome(), EventType::Ok);
        assert!(ops[2].complete.is_none());
        assert_eq!(ops[2].outcome(), EventType::Info);
        assert_eq!(
            counts(&events),
            Counts {
                ops: 3,
                ok: 1,
                fail: 0,
                info: 2
            }
        );
        assert!(events.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));

        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("h.jsonl");
        write_jsonl(&path, &events).expect("write");
        assert_eq!(read_jsonl(&path).expect("read"), events);
        let text = std::fs::read_to_string(&path).expect("text");
        assert!(text.contains(r#""process":"nemesis""#), "{text}");
    }
}
