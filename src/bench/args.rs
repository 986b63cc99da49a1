//! `cairn bench` flags and the parsers of their values: sizes (`4KiB`, `4KiB..1MiB`),
//! durations (`30s`, `2m`, `1m30s`), operation mixes (`get=70,put=20,delete=5,list=5`) and
//! erasure schemes (`2+2`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// `cairn bench`: a load generator for any S3 endpoint, with baselines of this machine.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// S3 endpoint (http://HOST:PORT; https is not supported). Path-style requests.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// S3 access key.
    #[arg(long, env = "CAIRN_ACCESS_KEY", default_value = crate::roles::DEFAULT_ACCESS_KEY)]
    pub access_key: String,
    /// S3 secret key.
    #[arg(long, env = "CAIRN_SECRET_KEY", default_value = crate::roles::DEFAULT_SECRET_KEY, hide_default_value = true)]
    pub secret_key: String,
    /// Region the requests are signed for.
    #[arg(long, env = "CAIRN_REGION", default_value = "us-east-1")]
    pub region: String,
    /// What to run. Without it, `--baseline` measures only the machine.
    #[arg(long, value_enum)]
    pub workload: Option<WorkloadKind>,
    /// Object size: fixed (`4KiB`, `64MiB`) or a range (`4KiB..1MiB`) drawn per object.
    #[arg(long, default_value = "4KiB", value_parser = parse_size_spec)]
    pub size: SizeSpec,
    /// How sizes of a range are drawn.
    #[arg(long, value_enum, default_value_t = SizeDist::Uniform)]
    pub size_dist: SizeDist,
    /// Requests in flight at once (one worker task each).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long the workload runs (`30s`, `2m`, `1m30s`, `500ms`). Default 10s unless
    /// `--ops` is given.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many operations (whichever of this and `--duration` comes first).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Operation mix of the `mixed` workload, as weights.
    #[arg(long, default_value = "get=70,put=20,delete=5,list=5", value_parser = parse_mix)]
    pub mix: Mix,
    /// Objects written before get, list, delete and mixed run. Default: 1000 for list,
    /// otherwise as many as fit in 1 GiB (at least 16, at most 1000).
    #[arg(long)]
    pub objects: Option<u64>,
    /// Requests in flight while prefilling and cleaning up (not measured). Default: the
    /// larger of `--concurrency` and 32.
    #[arg(long)]
    pub prefill_concurrency: Option<usize>,
    /// Keys per ListObjectsV2 page.
    #[arg(long, default_value_t = 1000)]
    pub page_size: u32,
    /// Part size of the multipart workload (the last part may be smaller).
    #[arg(long, default_value = "5MiB", value_parser = parse_size)]
    pub part_size: u64,
    /// Bucket to use. Default: a new `cairn-bench-<run id>`. An existing bucket is used as
    /// it is and never deleted; only the run's own keys are cleaned up.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Leave the bucket and every object written in place.
    #[arg(long)]
    pub keep: bool,
    /// Give up on one request after this long (counted as error `ClientTimeout`).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw latency over time (p50, p99, max per second) into this PNG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// No live progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Run against a trivial in-process S3 server instead of `--endpoint`: the tool's own
    /// ceiling on this machine.
    #[arg(long)]
    pub self_test: bool,
    /// Also measure this machine: disk write and read, fsync latency, loopback TCP, memcpy
    /// and erasure coding; with a workload, print its results as ratios to these limits.
    #[arg(long)]
    pub baseline: bool,
    /// Directory of the baseline's temporary file (default: the system temp directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Bytes the baseline writes and reads back on disk.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub baseline_size: u64,
    /// Erasure scheme `k+m` of the baseline's coding figures and of the PUT ratio.
    #[arg(long, default_value = "2+2", value_parser = parse_scheme)]
    pub scheme: SchemeSpec,
}

/// The workloads.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// PUT new objects.
    Put,
    /// GET prefilled objects.
    Get,
    /// A mix of get, put, delete and list (`--mix`).
    Mixed,
    /// Walk the listing of the prefilled objects page by page.
    List,
    /// DELETE prefilled objects (stops when none are left).
    Delete,
    /// Multipart uploads: create, `--part-size` parts, complete.
    Multipart,
}

impl WorkloadKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Mixed => "mixed",
            Self::List => "list",
            Self::Delete => "delete",
            Self::Multipart => "multipart",
        }
    }
}

/// How object sizes of a range are drawn.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeDist {
    /// Every size in the range equally likely.
    Uniform,
    /// The logarithm of the size uniform: as many objects between 4 and 8 KiB as between
    /// 512 KiB and 1 MiB.
    LogUniform,
}

impl SizeDist {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Uniform => "uniform",
            Self::LogUniform => "log-uniform",
        }
    }
}

/// A fixed object size or an inclusive range of sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    /// Every object has this many bytes.
    Fixed(u64),
    /// Sizes are drawn from `min..=max`.
    Range {
        /// Smallest size.
        min: u64,
        /// Largest size.
        max: u64,
    },
}

impl SizeSpec {
    /// The largest size an object can get.
    pub fn max(self) -> u64 {
        match self {
            Self::Fixed(n) => n,
            Self::Range { max, .. } => max,
        }
    }

    /// The mean size under `dist`.
    pub fn mean(self, dist: SizeDist) -> f64 {
        match (self, dist) {
            (Self::Fixed(n), _) => n as f64,
            (Self::Range { min, max }, SizeDist::Uniform) => (min as f64 + max as f64) / 2.0,
            (Self::Range { min, max }, SizeDist::LogUniform) => {
                let (lo, hi) = (min.max(1) as f64, max.max(1) as f64);
                if hi <= lo {
                    lo
                } else {
                    (hi - lo) / (hi.ln() - lo.ln())
                }
            }
        }
    }

    /// Draws one size from a uniform `u` in `[0, 1)`.
    pub fn pick(self, dist: SizeDist, u: f64) -> u64 {
        match (self, dist) {
            (Self::Fixed(n), _) => n,
            (Self::Range { min, max }, SizeDist::Uniform) => {
                let span = (max - min) as f64 + 1.0;
                (min + (u * span) as u64).min(max)
            }
            (Self::Range { min, max }, SizeDist::LogUniform) => {
                let (lo, hi) = ((min.max(1) as f64).ln(), ((max + 1) as f64).ln());
                let v = (lo + u * (hi - lo)).exp() as u64;
                v.clamp(min, max)
            }
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => f.write_str(&format_size(*n)),
            Self::Range { min, max } => {
                write!(f, "{}..{}", format_size(*min), format_size(*max))
            }
        }
    }
}

/// A byte count in the largest binary unit that divides it (`4KiB`, `1536B`).
pub fn format_size(n: u64) -> String {
    for (unit, mult) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= mult && n.is_multiple_of(mult) {
            return format!("{}{unit}", n / mult);
        }
    }
    format!("{n}B")
}

/// Parses a byte count: a number with an optional unit. `KiB`/`K`, `MiB`/`M`, `GiB`/`G`,
/// `TiB`/`T` are powers of 1024; `KB`, `MB`, `GB`, `TB` powers of 1000; `B` or none is bytes.
/// Units are case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` is not a size (e.g. 4KiB, 64MiB, 1000)"));
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{s}`")),
    };
    let value = if num.contains('.') {
        let f: f64 = num
            .parse()
            .map_err(|_| format!("`{num}` is not a number"))?;
        let bytes = f * mult as f64;
        if !bytes.is_finite() || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
            return Err(format!("`{s}` is not a whole number of bytes"));
        }
        bytes as u64
    } else {
        let n: u64 = num.parse().map_err(|_| format!("`{num}` is too large"))?;
        n.checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"))?
    };
    Ok(value)
}

/// Parses `SIZE` or `MIN..MAX` (inclusive, `MIN <= MAX`).
pub fn parse_size_spec(s: &str) -> Result<SizeSpec, String> {
    match s.split_once("..") {
        None => Ok(SizeSpec::Fixed(parse_size(s)?)),
        Some((lo, hi)) => {
            let (min, max) = (parse_size(lo)?, parse_size(hi)?);
            if min > max {
                return Err(format!("size range `{s}` runs backwards"));
            }
            if min == max {
                return Ok(SizeSpec::Fixed(min));
            }
            Ok(SizeSpec::Range { min, max })
        }
    }
}

/// Parses a duration: one or more `NUMBER UNIT` groups (`ms`, `s`, `m`, `h`), e.g. `30s`,
/// `2m`, `1m30s`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = text.parse::<f64>() {
        return secs_to_duration(secs, s);
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration (e.g. 30s, 2m, 1m30s)"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("unknown unit `{unit}` in duration `{s}`")),
        };
        total += n * scale;
        rest = next;
    }
    secs_to_duration(total, s)
}

fn secs_to_duration(secs: f64, s: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a valid duration"))
}

/// One kind of operation of the `mixed` workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MixOp {
    /// GetObject of an existing object.
    Get,
    /// PutObject of a new object.
    Put,
    /// DeleteObject of an existing object.
    Delete,
    /// One ListObjectsV2 page.
    List,
}

/// Weights of the operations of the `mixed` workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// `(operation, weight)`, every weight > 0, no operation twice.
    pub weights: Vec<(MixOp, u32)>,
}

impl Mix {
    /// Sum of the weights.
    pub fn total(&self) -> u32 {
        self.weights.iter().map(|(_, w)| w).sum()
    }

    /// The operation for a draw `r` in `0..total()`.
    pub fn pick(&self, mut r: u32) -> MixOp {
        for &(op, w) in &self.weights {
            if r < w {
                return op;
            }
            r -= w;
        }
        // Unreachable for r < total(); the last op keeps any rounding excess.
        self.weights.last().map_or(MixOp::Get, |(op, _)| *op)
    }
}

/// Parses `op=weight,...` with ops `get`, `put`, `delete`, `list`; weights are positive
/// integers (percentages or any other scale).
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut weights: Vec<(MixOp, u32)> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not op=weight"))?;
        let op = match name.trim().to_ascii_lowercase().as_str() {
            "get" => MixOp::Get,
            "put" => MixOp::Put,
            "delete" => MixOp::Delete,
            "list" => MixOp::List,
            other => {
                return Err(format!(
                    "unknown operation `{other}` in the mix (get, put, delete, list)"
                ))
            }
        };
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("weight `{weight}` of `{name}` is not a whole number"))?;
        if weight == 0 {
            continue;
        }
        if weights.iter().any(|(o, _)| *o == op) {
            return Err(format!("`{name}` appears twice in the mix"));
        }
        weights.push((op, weight));
    }
    if weights.is_empty() {
        return Err("the mix has no operation with a positive weight".into());
    }
    if weights.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() > u64::from(u32::MAX) {
        return Err("the mix's weights are too large".into());
    }
    Ok(Mix { weights })
}

/// An erasure scheme `k+m` for the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemeSpec {
    /// Data shards.
    pub k: usize,
    /// Parity shards.
    pub m: usize,
}

/// Parses `k+m`, e.g. `2+2` or `4+2`.
pub fn parse_scheme(s: &str) -> Result<SchemeSpec, String> {
    let (k, m) = s
        .split_once('+')
        .ok_or_else(|| format!("`{s}` is not k+m (e.g. 2+2)"))?;
    let k: usize = k.trim().parse().map_err(|_| format!("bad k in `{s}`"))?;
    let m: usize = m.trim().parse().map_err(|_| format!("bad m in `{s}`"))?;
    if k == 0 || k + m > 256 {
        return Err(format!("`{s}`: need k >= 1 and k + m <= 256"));
    }
    Ok(SchemeSpec { k, m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4kib"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4KB"), Ok(4000));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("12B"), Ok(12));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size(" 2 MiB "), Ok(2 << 20));
        assert!(parse_size("1.3B").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("4XB").is_err());
        assert!(parse_size("-4KiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn size_specs() {
        assert_eq!(parse_size_spec("4KiB"), Ok(SizeSpec::Fixed(4096)));
        assert_eq!(
            parse_size_spec("4KiB..1MiB"),
            Ok(SizeSpec::Range {
                min: 4096,
                max: 1 << 20
            })
        );
        assert_eq!(parse_size_spec("1KiB..1KiB"), Ok(SizeSpec::Fixed(1024)));
        assert!(parse_size_spec("1MiB..4KiB").is_err());
        assert!(parse_size_spec("1MiB..").is_err());
        assert_eq!(SizeSpec::Fixed(4096).to_string(), "4KiB");
        assert_eq!(
            parse_size_spec("4KiB..1MiB").unwrap().to_string(),
            "4KiB..1MiB"
        );
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(64 << 20), "64MiB");
    }

    #[test]
    fn size_draws_stay_in_range_and_follow_the_distribution() {
        let spec = SizeSpec::Range {
            min: 4096,
            max: 1 << 20,
        };
        for dist in [SizeDist::Uniform, SizeDist::LogUniform] {
            assert_eq!(spec.pick(dist, 0.0), 4096);
            assert_eq!(spec.pick(dist, 0.999_999_999), 1 << 20);
            for i in 0..1000 {
                let v = spec.pick(dist, i as f64 / 1000.0);
                assert!((4096..=1 << 20).contains(&v), "{dist:?} {v}");
            }
        }
        // Uniform: the middle draw is the middle size. Log-uniform: the geometric mean.
        let mid = spec.pick(SizeDist::Uniform, 0.5);
        assert!((mid as i64 - (4096 + (1 << 20)) / 2).abs() < 2, "{mid}");
        let geo = spec.pick(SizeDist::LogUniform, 0.5);
        assert!(
            (geo as f64 - (4096.0f64 * 1048577.0).sqrt()).abs() < 2.0,
            "{geo}"
        );
        // Means: uniform is the midpoint; log-uniform (hi - lo) / ln(hi / lo).
        assert_eq!(spec.mean(SizeDist::Uniform), (4096.0 + 1048576.0) / 2.0);
        let log_mean = spec.mean(SizeDist::LogUniform);
        assert!(
            (log_mean - 1044480.0 / 256f64.ln()).abs() < 1.0,
            "{log_mean}"
        );
        assert_eq!(SizeSpec::Fixed(7).pick(SizeDist::LogUniform, 0.3), 7);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn mixes() {
        let mix = parse_mix("get=70,put=20,delete=5,list=5").unwrap();
        assert_eq!(mix.total(), 100);
        assert_eq!(mix.pick(0), MixOp::Get);
        assert_eq!(mix.pick(69), MixOp::Get);
        assert_eq!(mix.pick(70), MixOp::Put);
        assert_eq!(mix.pick(89), MixOp::Put);
        assert_eq!(mix.pick(90), MixOp::Delete);
        assert_eq!(mix.pick(95), MixOp::List);
        assert_eq!(mix.pick(99), MixOp::List);
        let counts = (0..mix.total()).fold([0u32; 4], |mut acc, r| {
            acc[mix.pick(r) as usize] += 1;
            acc
        });
        assert_eq!(counts, [70, 20, 5, 5]);
        // Weights need not add up to 100; a zero weight drops the op.
        let mix = parse_mix(" PUT=1 , get=3, list=0").unwrap();
        assert_eq!(mix.weights, vec![(MixOp::Put, 1), (MixOp::Get, 3)]);
        assert!(parse_mix("get=70,get=30").is_err());
        assert!(parse_mix("copy=1").is_err());
        assert!(parse_mix("get").is_err());
        assert!(parse_mix("get=x").is_err());
        assert!(parse_mix("get=-1").is_err());
        assert!(parse_mix("get=0").is_err());
        assert!(parse_mix("").is_err());
        assert!(parse_mix("get=4294967295,put=1").is_err());
    }

    #[test]
    fn schemes() {
        assert_eq!(parse_scheme("2+2"), Ok(SchemeSpec { k: 2, m: 2 }));
        assert_eq!(parse_scheme("4+2"), Ok(SchemeSpec { k: 4, m: 2 }));
        assert_eq!(parse_scheme("1+0"), Ok(SchemeSpec { k: 1, m: 0 }));
        assert!(parse_scheme("0+2").is_err());
        assert!(parse_scheme("2-2").is_err());
        assert!(parse_scheme("200+57").is_err());
    }
}
