//! The results of a bench run as one serialisable [`Report`], printed as a table or as JSON,
//! with the ratios to the baseline's limits.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::baseline::Baseline;
use super::stats::{mib_per_s, per_s, OpKind, OpStats, Percentiles, Recorder};
use super::workload::Phase;

/// Everything a run measured. `errors` and `error_codes` count every failed request of
/// every phase (setup, prefill, workload, cleanup); nothing is dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The workload, absent for a baseline-only run.
    pub workload: Option<String>,
    /// The endpoint measured (the in-process server's for `--self-test`).
    pub endpoint: Option<String>,
    /// Whether the endpoint was the trivial in-process server.
    pub self_test: bool,
    /// The bucket used.
    pub bucket: Option<String>,
    /// Object size, as given.
    pub size: String,
    /// Distribution of sizes of a range.
    pub size_dist: String,
    /// Worker tasks.
    pub concurrency: usize,
    /// The duration limit, seconds.
    pub duration_limit_s: Option<f64>,
    /// The operation limit.
    pub ops_limit: Option<u64>,
    /// Wall time of the measured phase, seconds.
    pub elapsed_s: f64,
    /// Successful operations of the measured phase.
    pub ops: u64,
    /// `ops` per second.
    pub ops_per_s: f64,
    /// Payload bytes of the measured phase.
    pub bytes: u64,
    /// `bytes` in MiB per second.
    pub mib_per_s: f64,
    /// Failed requests of every phase.
    pub errors: u64,
    /// Failed requests of every phase, by error code.
    pub error_codes: BTreeMap<String, u64>,
    /// Results per operation kind.
    pub operations: BTreeMap<String, OpReport>,
    /// Objects written by the prefill.
    pub objects_prefilled: u64,
    /// Objects written by the workload (put and multipart).
    pub objects_written: u64,
    /// Key prefix of the objects the put workload wrote.
    pub put_prefix: Option<String>,
    /// Whether the bucket and objects were left in place (`--keep`).
    pub kept: bool,
    /// The phases around the measured one.
    pub phases: BTreeMap<String, PhaseReport>,
    /// Why the run stopped early, if it did.
    pub note: Option<String>,
    /// The machine's limits (`--baseline`).
    pub baseline: Option<Baseline>,
    /// The same workload against the trivial in-process server (`--baseline`).
    pub self_test_ceiling: Option<BTreeMap<String, Ceiling>>,
    /// Results as fractions of the limits (`--baseline`).
    pub ratios: Option<Vec<Ratio>>,
}

/// Results of one kind of operation.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    /// Successful operations.
    pub ops: u64,
    /// Per second.
    pub ops_per_s: f64,
    /// Payload bytes.
    pub bytes: u64,
    /// MiB per second.
    pub mib_per_s: f64,
    /// Keys returned (list).
    pub keys: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by code.
    pub error_codes: BTreeMap<String, u64>,
    /// Request-to-last-byte latency.
    pub latency_ms: Option<Percentiles>,
    /// Time to first byte (get).
    pub ttfb_ms: Option<Percentiles>,
    /// Time of a whole walk through the listing (list).
    pub listing_ms: Option<Percentiles>,
}

/// Requests of a phase that is not measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Successful requests.
    pub ops: u64,
    /// Failed requests.
    pub errors: u64,
    /// Failed requests by code.
    pub error_codes: BTreeMap<String, u64>,
    /// Seconds taken.
    pub seconds: f64,
}

impl From<&Phase> for PhaseReport {
    fn from(p: &Phase) -> Self {
        Self {
            ops: p.ops,
            errors: p.error_count(),
            error_codes: p.errors.clone(),
            seconds: p.elapsed.as_secs_f64(),
        }
    }
}

/// One operation kind's throughput against the trivial server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ceiling {
    /// Operations per second.
    pub ops_per_s: f64,
    /// MiB per second.
    pub mib_per_s: f64,
}

/// A result as a fraction of a limit.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// The operation kind.
    pub op: String,
    /// What is compared: `"MiB/s vs disk write × k/(k+m)"` and so on.
    pub what: String,
    /// The result.
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// `value / limit`.
    pub ratio: f64,
}

impl OpReport {
    /// The report of `s` over `secs`.
    pub fn of(s: &OpStats, secs: f64) -> Self {
        Self {
            ops: s.ops,
            ops_per_s: per_s(s.ops, secs),
            bytes: s.bytes,
            mib_per_s: mib_per_s(s.bytes, secs),
            keys: s.items,
            errors: s.error_count(),
            error_codes: s.errors.clone(),
            latency_ms: (!s.latency.is_empty()).then(|| Percentiles::of(&s.latency)),
            ttfb_ms: s.ttfb.as_ref().map(Percentiles::of),
            listing_ms: s.walk.as_ref().map(Percentiles::of),
        }
    }
}

/// The per-kind reports of a recorder over `secs`.
pub fn operations(rec: &Recorder, secs: f64) -> BTreeMap<String, OpReport> {
    rec.kinds()
        .map(|(k, s)| (k.name().to_string(), OpReport::of(s, secs)))
        .collect()
}

/// The ratios of `operations` to the baseline and the self-test ceiling.
pub fn ratios(
    operations: &BTreeMap<String, OpReport>,
    baseline: Option<&Baseline>,
    scheme: (usize, usize),
    ceiling: Option<&BTreeMap<String, Ceiling>>,
) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut push = |op: &str, what: String, value: f64, limit: f64| {
        if limit > 0.0 {
            out.push(Ratio {
                op: op.to_string(),
                what,
                value,
                limit,
                ratio: value / limit,
            });
        }
    };
    for (name, r) in operations {
        if let Some(b) = baseline {
            let (k, m) = scheme;
            if name == OpKind::Put.name() || name == OpKind::Multipart.name() {
                let limit = b.disk_write_mib_s * k as f64 / (k + m) as f64;
                push(
                    name,
                    format!("MiB/s vs disk write x {k}/{}", k + m),
                    r.mib_per_s,
                    limit,
                );
            }
            if name == OpKind::Get.name() {
                push(
                    name,
                    "MiB/s vs loopback TCP".into(),
                    r.mib_per_s,
                    b.loopback_mib_s,
                );
            }
        }
        if let Some(c) = ceiling.and_then(|c| c.get(name)) {
            push(name, "ops/s vs self-test".into(), r.ops_per_s, c.ops_per_s);
        }
    }
    out
}

/// The failures of the workload and of every phase, merged by code.
pub fn all_errors(rec: &Recorder, phases: &[&Phase]) -> BTreeMap<String, u64> {
    let mut out = rec.errors();
    for p in phases {
        for (code, n) in &p.errors {
            *out.entry(code.clone()).or_default() += n;
        }
    }
    out
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn latency_cells(p: &Percentiles) -> String {
    format!(
        "{:>9} {:>9} {:>9} {:>9} {:>9}",
        fmt_ms(p.p50),
        fmt_ms(p.p90),
        fmt_ms(p.p99),
        fmt_ms(p.p999),
        fmt_ms(p.max)
    )
}

/// The human-readable table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    if let Some(workload) = &r.workload {
        let limit = match (r.duration_limit_s, r.ops_limit) {
            (Some(d), Some(n)) => format!("{d} s or {n} ops"),
            (Some(d), None) => format!("{d} s"),
            (None, Some(n)) => format!("{n} ops"),
            (None, None) => "no limit".into(),
        };
        let _ = writeln!(
            s,
            "cairn bench: {workload}, size {}{}, concurrency {}, {limit}, against {}{}",
            r.size,
            if r.size.contains("..") {
                format!(" ({})", r.size_dist)
            } else {
                String::new()
            },
            r.concurrency,
            r.endpoint.as_deref().unwrap_or("-"),
            if r.self_test {
                " (self-test server)"
            } else {
                ""
            },
        );
        let _ = writeln!(
            s,
            "bucket {}, {} objects prefilled, {} written, ran {:.2} s{}",
            r.bucket.as_deref().unwrap_or("-"),
            r.objects_prefilled,
            r.objects_written,
            r.elapsed_s,
            if r.kept { ", kept" } else { "" }
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<14} {:>9} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op",
            "ops",
            "ops/s",
            "MiB/s",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for (name, op) in &r.operations {
            let lat = op
                .latency_ms
                .as_ref()
                .map(latency_cells)
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{name:<14} {:>9} {:>10.1} {:>9.2} {:>7} {lat}",
                op.ops, op.ops_per_s, op.mib_per_s, op.errors
            );
            if let Some(t) = &op.ttfb_ms {
                let _ = writeln!(
                    s,
                    "{:<14} {:>38} {}",
                    format!("{name} ttfb"),
                    "",
                    latency_cells(t)
                );
            }
            if let Some(w) = &op.listing_ms {
                let _ = writeln!(
                    s,
                    "{:<14} {:>38} {}",
                    format!("{name} walk"),
                    format!("{} keys listed", op.keys),
                    latency_cells(w)
                );
            }
        }
        let _ = writeln!(
            s,
            "{:<14} {:>9} {:>10.1} {:>9.2} {:>7}",
            "total", r.ops, r.ops_per_s, r.mib_per_s, r.errors
        );
        if let Some(note) = &r.note {
            let _ = writeln!(s, "stopped early: {note}");
        }
        let _ = writeln!(s);
        if r.errors == 0 {
            let _ = writeln!(s, "errors: none");
        } else {
            let _ = writeln!(s, "errors by code:");
            for (name, op) in &r.operations {
                for (code, n) in &op.error_codes {
                    let _ = writeln!(s, "  {name:<10} {code:<28} {n}");
                }
            }
            for (name, phase) in &r.phases {
                for (code, n) in &phase.error_codes {
                    let _ = writeln!(s, "  {:<10} {code:<28} {n}", format!("({name})"));
                }
            }
        }
    }
    if let Some(b) = &r.baseline {
        let _ = writeln!(s);
        let _ = writeln!(s, "baseline (this machine, this run):");
        let mut row = |label: String, value: String| {
            let _ = writeln!(s, "  {label:<32} {value}");
        };
        row(
            format!(
                "disk write {} + fsync",
                super::args::format_size(b.disk_bytes)
            ),
            format!("{:>9.1} MiB/s  ({})", b.disk_write_mib_s, b.disk_dir),
        );
        row(
            "disk read".into(),
            format!(
                "{:>9.1} MiB/s  ({})",
                b.disk_read_mib_s,
                if b.disk_read_uncached {
                    "page cache dropped first"
                } else {
                    "may be from the page cache"
                }
            ),
        );
        row(
            "fsync of a 4 KiB append".into(),
            format!(
                "p50 {} ms, p99 {} ms ({} samples)",
                fmt_ms(b.fsync_ms.p50),
                fmt_ms(b.fsync_ms.p99),
                b.fsync_ms.count
            ),
        );
        row(
            "loopback TCP, 1 connection".into(),
            format!("{:>9.1} MiB/s", b.loopback_mib_s),
        );
        row("memcpy".into(), format!("{:>9.2} GiB/s", b.memcpy_gib_s));
        row(
            format!("erasure {} encode / decode", b.scheme),
            format!(
                "{:>9.2} GiB/s / {:.2} GiB/s",
                b.ec_encode_gib_s, b.ec_decode_gib_s
            ),
        );
    }
    if let Some(c) = &r.self_test_ceiling {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "self-test ceiling (same workload, trivial in-process server):"
        );
        for (name, c) in c {
            let _ = writeln!(
                s,
                "  {name:<10} {:>10.1} ops/s {:>9.2} MiB/s",
                c.ops_per_s, c.mib_per_s
            );
        }
    }
    if let Some(ratios) = &r.ratios {
        let _ = writeln!(s);
        let _ = writeln!(s, "ratios:");
        for q in ratios {
            let _ = writeln!(
                s,
                "  {:<10} {:<32} {:>10.1} / {:>10.1} = {:.3}",
                q.op, q.what, q.value, q.limit, q.ratio
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn baseline() -> Baseline {
        Baseline {
            disk_bytes: 1 << 20,
            disk_dir: "/tmp".into(),
            disk_write_mib_s: 400.0,
            disk_read_mib_s: 800.0,
            disk_read_uncached: true,
            fsync_ms: Percentiles {
                count: 1,
                mean: 1.0,
                p50: 1.0,
                p90: 1.0,
                p99: 1.0,
                p999: 1.0,
                max: 1.0,
            },
            loopback_mib_s: 2000.0,
            memcpy_gib_s: 10.0,
            scheme: "2+2".into(),
            ec_encode_gib_s: 5.0,
            ec_decode_gib_s: 4.0,
        }
    }

    #[test]
    fn ratios_use_the_relevant_limit() {
        let mut rec = Recorder::default();
        for _ in 0..100 {
            rec.success(OpKind::Put, 1 << 20, Duration::from_millis(5));
            rec.success(OpKind::Get, 2 << 20, Duration::from_millis(5));
        }
        // 100 MiB of puts and 200 MiB of gets in 1 s.
        let ops = operations(&rec, 1.0);
        let ceiling: BTreeMap<String, Ceiling> = [(
            "get".to_string(),
            Ceiling {
                ops_per_s: 400.0,
                mib_per_s: 800.0,
            },
        )]
        .into();
        let r = ratios(&ops, Some(&baseline()), (2, 2), Some(&ceiling));
        let find = |op: &str, what: &str| {
            r.iter()
                .find(|q| q.op == op && q.what.contains(what))
                .map(|q| q.ratio)
                .unwrap()
        };
        // put: 100 MiB/s vs 400 × 2/4 = 200.
        assert!((find("put", "disk write") - 0.5).abs() < 1e-9);
        // get: 200 MiB/s vs 2000 loopback.
        assert!((find("get", "loopback") - 0.1).abs() < 1e-9);
        // get: 100 ops/s vs 400 self-test.
        assert!((find("get", "self-test") - 0.25).abs() < 1e-9);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn table_lists_every_error_code() {
        let mut rec = Recorder::default();
        rec.failure(OpKind::Put, "SignatureDoesNotMatch");
        let mut setup = Phase::default();
        setup.errors.insert("InvalidAccessKeyId".into(), 1);
        let errors = all_errors(&rec, &[&setup]);
        let report = Report {
            workload: Some("put".into()),
            endpoint: Some("http://x".into()),
            self_test: false,
            bucket: Some("b".into()),
            size: "4KiB".into(),
            size_dist: "uniform".into(),
            concurrency: 1,
            duration_limit_s: Some(1.0),
            ops_limit: None,
            elapsed_s: 1.0,
            ops: 0,
            ops_per_s: 0.0,
            bytes: 0,
            mib_per_s: 0.0,
            errors: errors.values().sum(),
            error_codes: errors,
            operations: operations(&rec, 1.0),
            objects_prefilled: 0,
            objects_written: 0,
            put_prefix: None,
            kept: false,
            phases: [("setup".to_string(), PhaseReport::from(&setup))].into(),
            note: None,
            baseline: Some(baseline()),
            self_test_ceiling: None,
            ratios: None,
        };
        let t = table(&report);
        assert!(t.contains("SignatureDoesNotMatch"), "{t}");
        assert!(
            t.contains("(setup)") && t.contains("InvalidAccessKeyId"),
            "{t}"
        );
        assert!(t.contains("loopback TCP"), "{t}");
        assert_eq!(report.errors, 2);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["errors"], 2);
        assert_eq!(json["error_codes"]["InvalidAccessKeyId"], 1);
    }
}
