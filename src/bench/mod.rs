//! `cairn bench`: a load tool for any S3 endpoint (like MinIO's warp), with the limits of the
//! machine measured in the same run (`--baseline`) and the tool's own ceiling against a
//! trivial in-process server (`--self-test`).
//!
//! A run: create the bucket, prefill objects if the workload reads, run `--concurrency`
//! workers for `--duration` or `--ops`, delete the run's objects and bucket (unless
//! `--keep`), print a table or JSON. Exit status: 0 when every request succeeded, 3 when the
//! run finished but some requests failed (all counted by S3 error code in the report), 1 when
//! the run could not be made at all (a bad endpoint URL, an unwritable `--dir`).

mod args;
mod baseline;
mod bucket;
pub mod meta;
mod plot;
mod progress;
mod report;
mod s3_client;
mod self_server;
mod sigv4;
mod stats;
mod workload;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;

pub use args::BenchArgs;
use args::WorkloadKind;
use report::{Ceiling, PhaseReport, Report};
use s3_client::S3Client;
use self_server::SelfServer;
use workload::{KeyPool, Outcome, Payload, Phase, Plan, Target};

/// Exit status of a run that finished with failed requests.
const EXIT_ERRORS: u8 = 3;

/// Duration when neither `--duration` nor `--ops` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// One workload run against one endpoint, with its phases.
struct RunResult {
    endpoint: String,
    bucket: String,
    setup: Phase,
    prefill: Phase,
    cleanup: Phase,
    prefilled: u64,
    outcome: Option<Outcome>,
}

/// Runs `cairn bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.workload.is_none() && !args.baseline {
        anyhow::bail!("give --workload (put, get, mixed, list, delete, multipart) or --baseline");
    }
    if args.concurrency == 0 {
        anyhow::bail!("--concurrency must be at least 1");
    }
    if args.page_size == 0 || args.page_size > 1000 {
        anyhow::bail!("--page-size must be 1..=1000");
    }
    let baseline = if args.baseline {
        let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        if !args.quiet {
            eprintln!("measuring the baseline (disk in {}) ...", dir.display());
        }
        Some(
            baseline::measure(&dir, args.baseline_size, args.scheme)
                .await
                .context("measuring the baseline")?,
        )
    } else {
        None
    };
    let Some(kind) = args.workload else {
        let report = baseline_only_report(&args, baseline);
        print(&args, &report)?;
        return Ok(ExitCode::SUCCESS);
    };
    let plan = plan(&args, kind);

    // The tool's ceiling for this workload, for the ratios. A self-test run is its own
    // ceiling: there is no ratio of it to itself.
    let ceiling = if args.baseline && !args.self_test {
        if !args.quiet {
            eprintln!("running the same workload against the in-process self-test server ...");
        }
        let mut quiet_plan = plan.clone();
        quiet_plan.timeline = false;
        let server = SelfServer::start().await?;
        let result = run_once(&args, &quiet_plan, &server.endpoint(), "self-test ").await?;
        server.stop().await;
        result.outcome.map(|o| ceiling_of(&o))
    } else {
        None
    };

    let (result, server) = if args.self_test {
        let server = SelfServer::start().await?;
        let result = run_once(&args, &plan, &server.endpoint(), "").await?;
        (result, Some(server))
    } else {
        (run_once(&args, &plan, &args.endpoint, "").await?, None)
    };
    if let Some(server) = server {
        server.stop().await;
    }

    if let (Some(path), Some(outcome)) = (&args.plot, &result.outcome) {
        if let Some(seconds) = &outcome.timeline {
            let title = format!(
                "cairn bench {} {} x{} against {}",
                kind.name(),
                args.size,
                args.concurrency,
                result.endpoint
            );
            plot::draw(path, seconds, &title)
                .with_context(|| format!("drawing {}", path.display()))?;
        }
    }

    let report = workload_report(&args, kind, &plan, result, baseline, ceiling);
    print(&args, &report)?;
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERRORS)
    })
}

fn plan(args: &BenchArgs, kind: WorkloadKind) -> Plan {
    let duration = match (args.duration, args.ops) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_DURATION),
    };
    let objects = args.objects.unwrap_or_else(|| match kind {
        WorkloadKind::List => 1000,
        _ => {
            let mean = args.size.mean(args.size_dist).max(1.0);
            ((1u64 << 30) as f64 / mean).clamp(16.0, 1000.0) as u64
        }
    });
    Plan {
        kind,
        size: args.size,
        dist: args.size_dist,
        concurrency: args.concurrency,
        prefill_concurrency: args
            .prefill_concurrency
            .unwrap_or(args.concurrency.max(32))
            .max(1),
        duration,
        ops: args.ops,
        objects,
        mix: args.mix.clone(),
        page_size: args.page_size,
        part_size: args.part_size,
        timeline: args.plot.is_some(),
        progress: !args.quiet,
        label: String::new(),
    }
}

/// Set-up, prefill, workload and cleanup against `endpoint`.
async fn run_once(
    args: &BenchArgs,
    plan: &Plan,
    endpoint: &str,
    label: &str,
) -> anyhow::Result<RunResult> {
    let client = S3Client::new(
        endpoint,
        &args.access_key,
        &args.secret_key,
        &args.region,
        plan.concurrency.max(plan.prefill_concurrency),
        args.timeout,
    )?;
    let run_id = format!("{:08x}", rand::rng().random::<u32>());
    let seed = rand::rng().random::<u64>();
    let bucket = args
        .bucket
        .clone()
        .unwrap_or_else(|| format!("cairn-bench-{run_id}"));
    let target = Target {
        client: Arc::new(client),
        bucket: bucket.clone(),
        prefix: format!("{run_id}/"),
    };
    let mut result = RunResult {
        endpoint: endpoint.to_string(),
        bucket,
        setup: Phase::default(),
        prefill: Phase::default(),
        cleanup: Phase::default(),
        prefilled: 0,
        outcome: None,
    };
    let created = bucket::setup(&target, &mut result.setup).await;
    if result.setup.error_count() > 0 {
        // Without a bucket every request would fail the same way: report and stop.
        return Ok(result);
    }
    let max_body = match plan.kind {
        WorkloadKind::Multipart => plan.part_size.min(plan.size.max()),
        _ => plan.size.max(),
    };
    let payload = Payload::new(max_body)?;
    let mut plan = plan.clone();
    plan.label = label.to_string();
    let pool = if plan.needs_prefill() {
        let (pool, phase) = workload::prefill(&target, &plan, &payload, seed).await;
        result.prefill = phase;
        result.prefilled = pool.len() as u64;
        pool
    } else {
        Arc::new(KeyPool::default())
    };
    result.outcome = Some(workload::run(&target, &plan, payload, pool, seed).await);
    if !args.keep {
        result.cleanup = bucket::cleanup(&target, plan.prefill_concurrency, created).await;
    }
    Ok(result)
}

fn ceiling_of(o: &Outcome) -> BTreeMap<String, Ceiling> {
    let secs = o.elapsed.as_secs_f64();
    report::operations(&o.recorder, secs)
        .into_iter()
        .map(|(name, r)| {
            (
                name,
                Ceiling {
                    ops_per_s: r.ops_per_s,
                    mib_per_s: r.mib_per_s,
                },
            )
        })
        .collect()
}

fn baseline_only_report(args: &BenchArgs, baseline: Option<baseline::Baseline>) -> Report {
    Report {
        workload: None,
        endpoint: None,
        self_test: false,
        bucket: None,
        size: args.size.to_string(),
        size_dist: args.size_dist.name().to_string(),
        concurrency: args.concurrency,
        duration_limit_s: None,
        ops_limit: None,
        elapsed_s: 0.0,
        ops: 0,
        ops_per_s: 0.0,
        bytes: 0,
        mib_per_s: 0.0,
        errors: 0,
        error_codes: BTreeMap::new(),
        operations: BTreeMap::new(),
        objects_prefilled: 0,
        objects_written: 0,
        put_prefix: None,
        kept: false,
        phases: BTreeMap::new(),
        note: None,
        baseline,
        self_test_ceiling: None,
        ratios: None,
    }
}

fn workload_report(
    args: &BenchArgs,
    kind: WorkloadKind,
    plan: &Plan,
    result: RunResult,
    baseline: Option<baseline::Baseline>,
    ceiling: Option<BTreeMap<String, Ceiling>>,
) -> Report {
    let empty = stats::Recorder::default();
    let (recorder, secs) = match &result.outcome {
        Some(o) => (&o.recorder, o.elapsed.as_secs_f64()),
        None => (&empty, 0.0),
    };
    let operations = report::operations(recorder, secs);
    let error_codes =
        report::all_errors(recorder, &[&result.setup, &result.prefill, &result.cleanup]);
    let ratios = (baseline.is_some() || ceiling.is_some()).then(|| {
        report::ratios(
            &operations,
            baseline.as_ref(),
            (args.scheme.k, args.scheme.m),
            ceiling.as_ref(),
        )
    });
    let phases = [
        ("setup", &result.setup),
        ("prefill", &result.prefill),
        ("cleanup", &result.cleanup),
    ]
    .into_iter()
    .map(|(name, p)| (name.to_string(), PhaseReport::from(p)))
    .collect();
    let note = match &result.outcome {
        Some(o) => o.note.clone(),
        None => Some("the bucket could not be set up; the workload did not run".into()),
    };
    Report {
        workload: Some(kind.name().to_string()),
        endpoint: Some(result.endpoint.clone()),
        self_test: args.self_test,
        bucket: Some(result.bucket.clone()),
        size: args.size.to_string(),
        size_dist: args.size_dist.name().to_string(),
        concurrency: args.concurrency,
        duration_limit_s: plan.duration.map(|d| d.as_secs_f64()),
        ops_limit: plan.ops,
        elapsed_s: secs,
        ops: recorder.total_ops(),
        ops_per_s: stats::per_s(recorder.total_ops(), secs),
        bytes: recorder.total_bytes(),
        mib_per_s: stats::mib_per_s(recorder.total_bytes(), secs),
        errors: error_codes.values().sum(),
        error_codes,
        operations,
        objects_prefilled: result.prefilled,
        objects_written: result.outcome.as_ref().map_or(0, |o| o.written),
        put_prefix: result.outcome.as_ref().map(|o| o.put_prefix.clone()),
        kept: args.keep,
        phases,
        note,
        baseline,
        self_test_ceiling: ceiling,
        ratios,
    }
}

fn print(args: &BenchArgs, report: &Report) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report::table(report));
    }
    Ok(())
}
