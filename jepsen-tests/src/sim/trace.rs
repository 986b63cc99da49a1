//! The record of one simulated run: every client operation and fault with its simulated
//! time, in the order it happened. Two runs of the same seed must produce equal traces.

use std::sync::{Arc, Mutex};

use tokio::time::Instant;

/// What a client operation asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Read the key.
    Read,
    /// Write a value.
    Write(u64),
    /// Delete the key.
    Delete,
    /// Write `new` if the key's current value is `expected` (`If-Match`).
    Cas {
        /// The value the condition names.
        expected: u64,
        /// The value written.
        new: u64,
    },
    /// Write `new` if the key has no value (`If-None-Match: *`).
    Create(u64),
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; a read carries what it saw.
    Ok(Option<u64>),
    /// The condition of a `Cas` or `Create` did not hold: the key held another value.
    Refused,
    /// The condition of a `Cas` did not hold: the key had no value.
    RefusedAbsent,
    /// Certainly had no effect (only reads are ever counted so).
    Fail,
    /// Unknown: it may have taken effect, now or later.
    Info,
}

/// One client operation: invocation and completion in simulated nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOp {
    /// The client (a new number after an `Info`, as in Jepsen).
    pub process: usize,
    /// Index of the key.
    pub key: usize,
    /// What it did.
    pub kind: OpKind,
    /// Invocation time.
    pub call: u64,
    /// Completion time.
    pub ret: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The shared, append-only record of a run. Cheap to clone.
#[derive(Clone)]
pub struct Trace {
    start: Instant,
    inner: Arc<Mutex<TraceInner>>,
}

#[derive(Default)]
struct TraceInner {
    lines: Vec<String>,
    ops: Vec<SimOp>,
}

impl Trace {
    /// An empty trace whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            inner: Arc::default(),
        }
    }

    /// Simulated nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records a line of text, stamped with the simulated time.
    pub fn note(&self, text: impl AsRef<str>) {
        let line = format!("{:>12} {}", self.now_ns(), text.as_ref());
        if let Ok(mut inner) = self.inner.lock() {
            inner.lines.push(line);
        }
    }

    /// Records a completed operation (and a line for it).
    pub fn op(&self, op: SimOp) {
        let line = format!(
            "{:>12} p{} k{} {:?} called {} -> {:?}",
            op.ret, op.process, op.key, op.kind, op.call, op.outcome
        );
        if let Ok(mut inner) = self.inner.lock() {
            inner.lines.push(line);
            inner.ops.push(op);
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.lines.clone())
            .unwrap_or_default()
    }

    /// Every operation so far, in completion order.
    pub fn ops(&self) -> Vec<SimOp> {
        self.inner.lock().map(|i| i.ops.clone()).unwrap_or_default()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

/// A stable fingerprint (FNV-1a, 64 bits) of `lines`: equal for equal traces on every
/// platform and build, unlike `std`'s randomly keyed hasher.
pub fn digest(lines: &[String]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for line in lines {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
