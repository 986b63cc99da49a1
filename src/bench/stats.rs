//! Recording results cheaply while the load runs, and summarising them after.
//!
//! Each worker owns a [`Recorder`] (no locks on the hot path); the recorders are merged
//! at the end. Latencies go into HDR histograms in microseconds with two significant digits
//! (values are exact to 1%), which keeps each histogram at a few tens of KiB. The live
//! progress line reads shared atomic counters; the per-second [`Timeline`] (for the plot) is
//! only kept when asked for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The operations a workload issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// DeleteObject.
    Delete,
    /// One ListObjectsV2 page.
    List,
    /// A whole multipart upload (create, parts, complete).
    Multipart,
}

impl OpKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Multipart => "multipart",
        }
    }
}

/// Highest latency a histogram holds (longer ones are clamped): one hour in microseconds.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds and precision are constants that `new_with_bounds` accepts.
    match Histogram::new_with_bounds(1, MAX_MICROS, 2) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds rejected: {e:?}"),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// Results of one kind of operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Successful operations.
    pub ops: u64,
    /// Payload bytes moved by them (request bodies for writes, response bodies for reads).
    pub bytes: u64,
    /// Keys returned (listings only).
    pub items: u64,
    /// Latency of each successful operation, request to last byte.
    pub latency: Histogram<u64>,
    /// Time to first byte (GET only).
    pub ttfb: Option<Histogram<u64>>,
    /// Duration of each complete walk through a listing (list only).
    pub walk: Option<Histogram<u64>>,
    /// Failed operations by error code.
    pub errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> Self {
        Self {
            ops: 0,
            bytes: 0,
            items: 0,
            latency: new_histogram(),
            ttfb: None,
            walk: None,
            errors: BTreeMap::new(),
        }
    }

    /// Failed operations.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: &OpStats) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.items += other.items;
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.latency.add(&other.latency);
        merge_opt(&mut self.ttfb, &other.ttfb);
        merge_opt(&mut self.walk, &other.walk);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
    }
}

fn merge_opt(into: &mut Option<Histogram<u64>>, from: &Option<Histogram<u64>>) {
    if let Some(from) = from {
        let _ = into.get_or_insert_with(new_histogram).add(from);
    }
}

/// Per-worker results of every kind of operation.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    ops: BTreeMap<OpKind, OpStats>,
}

impl Recorder {
    fn entry(&mut self, kind: OpKind) -> &mut OpStats {
        self.ops.entry(kind).or_insert_with(OpStats::new)
    }

    /// A success of `kind` that moved `bytes` in `latency`.
    pub fn success(&mut self, kind: OpKind, bytes: u64, latency: Duration) {
        let s = self.entry(kind);
        s.ops += 1;
        s.bytes += bytes;
        let _ = s.latency.record(micros(latency));
    }

    /// The time to first byte of a successful GET.
    pub fn ttfb(&mut self, kind: OpKind, ttfb: Duration) {
        let s = self.entry(kind);
        let _ = s
            .ttfb
            .get_or_insert_with(new_histogram)
            .record(micros(ttfb));
    }

    /// Keys returned by a listing page.
    pub fn items(&mut self, kind: OpKind, n: u64) {
        self.entry(kind).items += n;
    }

    /// A complete walk through a listing.
    pub fn walk(&mut self, kind: OpKind, took: Duration) {
        let s = self.entry(kind);
        let _ = s
            .walk
            .get_or_insert_with(new_histogram)
            .record(micros(took));
    }

    /// A failure of `kind` with `code`.
    pub fn failure(&mut self, kind: OpKind, code: &str) {
        *self.entry(kind).errors.entry(code.to_string()).or_default() += 1;
    }

    /// Adds `other` into this recorder.
    pub fn merge(&mut self, other: &Recorder) {
        for (kind, stats) in &other.ops {
            self.entry(*kind).merge(stats);
        }
    }

    /// The kinds that saw any operation, in report order.
    pub fn kinds(&self) -> impl Iterator<Item = (OpKind, &OpStats)> {
        self.ops.iter().map(|(k, s)| (*k, s))
    }

    /// Results of one kind, if any operation of it ran.
    #[cfg(test)]
    pub fn get(&self, kind: OpKind) -> Option<&OpStats> {
        self.ops.get(&kind)
    }

    /// Successful operations of every kind.
    pub fn total_ops(&self) -> u64 {
        self.ops.values().map(|s| s.ops).sum()
    }

    /// Bytes of every kind.
    pub fn total_bytes(&self) -> u64 {
        self.ops.values().map(|s| s.bytes).sum()
    }

    /// Failures of every kind, merged by code.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in self.ops.values() {
            for (code, n) in &s.errors {
                *out.entry(code.clone()).or_default() += n;
            }
        }
        out
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Samples summarised.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// The summary of a histogram in microseconds, as milliseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Counters shared by all workers for the live progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Successful operations so far.
    pub ops: AtomicU64,
    /// Bytes moved so far.
    pub bytes: AtomicU64,
    /// Failed operations so far.
    pub errors: AtomicU64,
}

impl Live {
    /// Counts a success.
    pub fn success(&self, bytes: u64) {
        self.ops.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a failure.
    pub fn failure(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// `(ops, bytes, errors)` now.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ops.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Second {
    /// Latencies of the operations that finished in this second.
    pub latency: Histogram<u64>,
    /// Failures in this second.
    pub errors: u64,
}

/// Latency per second of the run, for the plot. Workers share it behind one lock; it is
/// only kept when a plot is asked for.
#[derive(Debug, Default)]
pub struct Timeline {
    seconds: Mutex<Vec<Second>>,
}

impl Timeline {
    /// Records an operation that finished `at` after the start.
    pub fn record(&self, at: Duration, latency: Option<Duration>) {
        let index = usize::try_from(at.as_secs())
            .unwrap_or(usize::MAX)
            .min(86_400);
        let mut seconds = self
            .seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while seconds.len() <= index {
            seconds.push(Second {
                latency: new_histogram(),
                errors: 0,
            });
        }
        match latency {
            Some(l) => {
                let _ = seconds[index].latency.record(micros(l));
            }
            None => seconds[index].errors += 1,
        }
    }

    /// The seconds recorded so far.
    pub fn seconds(&self) -> Vec<Second> {
        self.seconds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// `bytes` over `secs` in MiB/s.
pub fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / (1024.0 * 1024.0) / secs
    } else {
        0.0
    }
}

/// `n` over `secs` per second.
pub fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut r = Recorder::default();
        // 1..=1000 ms, one sample each.
        for i in 1..=1000 {
            r.success(OpKind::Get, 10, ms(i));
        }
        let s = r.get(OpKind::Get).unwrap();
        assert_eq!(s.ops, 1000);
        assert_eq!(s.bytes, 10_000);
        let p = Percentiles::of(&s.latency);
        assert_eq!(p.count, 1000);
        // Two significant digits: every value within 1% of the exact order statistic.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.01;
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p90, 900.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.p999, 999.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
        assert!(close(p.mean, 500.5), "{p:?}");
    }

    #[test]
    fn tail_percentiles_see_rare_outliers() {
        let mut r = Recorder::default();
        for _ in 0..9995 {
            r.success(OpKind::Put, 0, ms(1));
        }
        for _ in 0..5 {
            r.success(OpKind::Put, 0, ms(100));
        }
        let p = Percentiles::of(&r.get(OpKind::Put).unwrap().latency);
        assert!((p.p50 - 1.0).abs() < 0.011, "{p:?}");
        assert!((p.p99 - 1.0).abs() < 0.011, "{p:?}");
        // 5 of 10,000 samples are inside the top 0.1%: p99.9 is still 1 ms, the max is 100 ms.
        assert!((p.p999 - 1.0).abs() < 0.011, "{p:?}");
        assert!((p.max - 100.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn merging_adds_counts_errors_and_samples() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        a.success(OpKind::Get, 100, ms(1));
        a.ttfb(OpKind::Get, ms(1));
        a.failure(OpKind::Get, "NoSuchKey");
        b.success(OpKind::Get, 50, ms(3));
        b.ttfb(OpKind::Get, ms(2));
        b.failure(OpKind::Get, "NoSuchKey");
        b.failure(OpKind::Put, "SlowDown");
        b.items(OpKind::List, 7);
        a.merge(&b);
        let get = a.get(OpKind::Get).unwrap();
        assert_eq!((get.ops, get.bytes), (2, 150));
        assert_eq!(get.latency.len(), 2);
        assert_eq!(get.ttfb.as_ref().unwrap().len(), 2);
        assert_eq!(get.errors.get("NoSuchKey"), Some(&2));
        assert_eq!(get.error_count(), 2);
        assert_eq!(a.get(OpKind::List).unwrap().items, 7);
        let all = a.errors();
        assert_eq!(all.get("NoSuchKey"), Some(&2));
        assert_eq!(all.get("SlowDown"), Some(&1));
        assert_eq!(a.total_ops(), 2);
        assert_eq!(a.total_bytes(), 150);
        let kinds: Vec<OpKind> = a.kinds().map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![OpKind::Put, OpKind::Get, OpKind::List]);
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut r = Recorder::default();
        r.success(OpKind::Get, 0, Duration::ZERO);
        r.success(OpKind::Get, 0, Duration::from_secs(10 * 3600));
        let h = &r.get(OpKind::Get).unwrap().latency;
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_MICROS);
    }

    #[test]
    fn timeline_buckets_by_second() {
        let t = Timeline::default();
        t.record(ms(100), Some(ms(5)));
        t.record(ms(2500), Some(ms(7)));
        t.record(ms(2600), None);
        let s = t.seconds();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].latency.len(), 1);
        assert_eq!(s[1].latency.len(), 0);
        assert_eq!((s[2].latency.len(), s[2].errors), (1, 1));
    }

    #[test]
    fn rates() {
        assert_eq!(mib_per_s(10 << 20, 2.0), 5.0);
        assert_eq!(per_s(30, 3.0), 10.0);
        assert_eq!(per_s(30, 0.0), 0.0);
    }
}
