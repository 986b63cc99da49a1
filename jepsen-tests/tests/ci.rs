//! The short CI version of the consistency tests: a real cluster (5 meta, 4 blob,
//! 2 gateways), the register workload for 25 s, set for 20 s, and the list and bucket
//! workloads for 15 s each, under every
//! fault this machine can inject (partitions need root and network namespaces; without
//! them the run says so and uses kills and pauses only), healed at the end.
//!
//! Each run must be valid, must have done real work under real faults, and its recorded
//! history must turn invalid when an anomaly is planted in it (so the verdict is not
//! vacuous). Longer runs: `cargo run -p jepsen-tests -- --help` and docs/jepsen.md.

use std::time::Duration;

use jepsen_tests::checker::bucket::HEAD_BUCKET;
use jepsen_tests::checker::list::LIST;
use jepsen_tests::checker::register::CAS;
use jepsen_tests::checker::set::FINAL_LIST;
use jepsen_tests::checker::Validity;
use jepsen_tests::history::{self, Event, EventBody, EventType, Process, Recorder};
use jepsen_tests::nemesis::{Fault, Schedule};
use jepsen_tests::workload::Workload;
use jepsen_tests::{run, RunConfig};
use serde_json::Value;

fn config(workload: Workload, dir: std::path::PathBuf) -> RunConfig {
    let bin = jepsen_tests::default_cairn_bin();
    assert!(
        bin.is_file(),
        "no cairn binary at {}: build it first (`cargo build --bin cairn`; `cargo test \
         --workspace` does) or set CAIRN_BIN",
        bin.display()
    );
    let mut cfg = RunConfig::new(workload, dir, bin);
    if workload == Workload::Bucket {
        // Gateway faults and the meta-leader pause that exposed finding 5 (bucket commands
        // resent after an ambiguous timeout and applied twice; fixed, docs/jepsen.md). The
        // long runs use every fault.
        cfg.faults = vec![
            Fault::KillGateway,
            Fault::PauseGateway,
            Fault::PauseMetaLeader,
        ];
        cfg.nemesis_label = "kill-gateway,pause-gateway,pause-meta-leader".into();
    } else {
        cfg.faults = Fault::ALL.to_vec();
        cfg.nemesis_label = "all".into();
    }
    cfg.time_limit = Duration::from_secs(match workload {
        Workload::Register => 25,
        Workload::Set => 20,
        Workload::List | Workload::Bucket | Workload::Multipart => 15,
    });
    cfg.seed = std::env::var("JEPSEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    cfg.schedule = Schedule {
        quiet: Duration::from_secs(3),
        fault_min: Duration::from_secs(4),
        fault_max: Duration::from_secs(7),
    };
    cfg
}

/// Appends a read of `key` that returns `value`, after everything else.
fn append_read(events: &mut Vec<Event>, f: &'static str, key: Option<&str>, value: Value) {
    let rec = Recorder::new();
    for kind in [EventType::Invoke, EventType::Ok] {
        rec.record(EventBody {
            kind,
            process: Process::Client(99_999_999),
            f,
            key,
            value: if kind == EventType::Ok {
                value.clone()
            } else {
                Value::Null
            },
            error: None,
        });
    }
    let last = events.last().map_or(0, |e| e.time_ns);
    for mut e in rec.snapshot() {
        e.index = events.len() as u64;
        e.time_ns += last + 1_000_000;
        events.push(e);
    }
}

/// A stale read planted after the run: on some key, write A completed before write B was
/// invoked; a read after everything returns A's value.
fn plant_stale_read(events: &[Event]) -> Vec<Event> {
    let ops = history::operations(events);
    let writes: Vec<&history::Operation> = ops
        .iter()
        .filter(|o| o.invoke.f == "write" && o.outcome() == EventType::Ok)
        .collect();
    let (key, stale) = writes
        .iter()
        .find_map(|a| {
            let a_done = a.complete.as_ref()?.time_ns;
            writes
                .iter()
                .find(|b| b.invoke.key == a.invoke.key && b.invoke.time_ns > a_done)
                .map(|_| (a.invoke.key.clone(), a.invoke.value.clone()))
        })
        .expect("two sequential acknowledged writes on one key");
    let mut planted = events.to_vec();
    append_read(&mut planted, "read", key.as_deref(), stale);
    planted
}

/// An acknowledged element removed from the final listing.
fn plant_lost_element(events: &[Event]) -> Vec<Event> {
    let ops = history::operations(events);
    let acked = ops
        .iter()
        .find(|o| o.invoke.f == "add" && o.outcome() == EventType::Ok)
        .and_then(|o| o.invoke.key.clone())
        .expect("an acknowledged add");
    let listing = ops
        .iter()
        .rev()
        .find(|o| o.invoke.f == FINAL_LIST && o.outcome() == EventType::Ok)
        .and_then(|o| o.complete.as_ref())
        .expect("a final listing");
    let shortened: Vec<Value> = listing
        .value
        .as_array()
        .expect("listing keys")
        .iter()
        .filter(|k| k.as_str() != Some(acked.as_str()))
        .cloned()
        .collect();
    let mut planted = events.to_vec();
    append_read(&mut planted, FINAL_LIST, None, Value::Array(shortened));
    planted
}

/// Whether a LIST appended after everything that leaves out one key of the final listing is
/// caught, for some key (for a key whose last acknowledged PUT overlapped a DELETE, either
/// answer is legal, so not every key can serve).
fn planted_stale_listing_is_caught(events: &[Event]) -> bool {
    let ops = history::operations(events);
    let last = ops
        .iter()
        .rev()
        .find(|o| o.invoke.f == LIST && o.outcome() == EventType::Ok)
        .and_then(|o| o.complete.as_ref())
        .expect("a final listing");
    let keys: Vec<Value> = last.value.as_array().expect("listed keys").clone();
    assert!(!keys.is_empty(), "the final listing shows some keys");
    keys.iter().any(|left_out| {
        let shown: Vec<Value> = keys.iter().filter(|k| *k != left_out).cloned().collect();
        let mut planted = events.to_vec();
        append_read(&mut planted, LIST, None, Value::Array(shown));
        jepsen_tests::run::check(Workload::List, &planted).valid == Validity::Invalid
    })
}

/// Whether a HeadBucket appended after everything that contradicts the final HeadBucket of
/// a name is caught, for some name (a name with an indeterminate create or delete can take
/// either answer, so not every name can serve).
fn planted_head_is_caught(events: &[Event]) -> bool {
    let ops = history::operations(events);
    let finals: Vec<(String, bool)> = ops
        .iter()
        .rev()
        .filter(|o| o.invoke.f == HEAD_BUCKET && o.outcome() == EventType::Ok)
        .filter_map(|o| Some((o.invoke.key.clone()?, o.complete.as_ref()?.value.as_bool()?)))
        .collect();
    assert!(!finals.is_empty(), "some HeadBucket answered");
    let mut names: Vec<&str> = Vec::new();
    finals.iter().any(|(name, exists)| {
        if names.contains(&name.as_str()) {
            return false;
        }
        names.push(name.as_str());
        let mut planted = events.to_vec();
        append_read(&mut planted, HEAD_BUCKET, Some(name), Value::Bool(!exists));
        jepsen_tests::run::check(Workload::Bucket, &planted).valid == Validity::Invalid
    })
}

#[test]
fn register_set_list_and_bucket_stay_valid_under_mixed_faults() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for workload in [
        Workload::Register,
        Workload::Set,
        Workload::List,
        Workload::Bucket,
    ] {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("cairn-jepsen-{}-", workload.name()))
            .tempdir()
            .expect("tmp");
        let cfg = config(workload, tmp.path().to_path_buf());
        let seed = cfg.seed;
        let report = runtime
            .block_on(run(cfg))
            .unwrap_or_else(|e| panic!("{} run failed: {e}", workload.name()));
        println!("{} (seed {seed})", report.summary);
        // Keep the run directory when the run is not valid, for the post-mortem.
        let dir = if report.valid == Validity::Valid {
            tmp.path().to_path_buf()
        } else {
            tmp.keep()
        };
        assert_eq!(
            report.valid,
            Validity::Valid,
            "{}\nseed {seed}; see {}/results.json",
            report.summary,
            dir.display()
        );
        assert!(
            report.counts.ok > 100,
            "too little work: {}",
            report.summary
        );
        assert!(
            report.checked > 100,
            "too little checked: {}",
            report.summary
        );
        assert!(
            report.faults_injected >= 2,
            "too few faults injected: {}",
            report.summary
        );
        if !report.skipped.is_empty() {
            println!(
                "note: not injected here: {:?}",
                report.skipped.iter().map(|f| f.name()).collect::<Vec<_>>()
            );
        }

        // The verdict is not vacuous: the same history with one anomaly planted is invalid.
        let events = history::read_jsonl(&dir.join("history.jsonl")).expect("history");
        let caught = match workload {
            Workload::Register => {
                jepsen_tests::run::check(workload, &plant_stale_read(&events)).valid
                    == Validity::Invalid
            }
            Workload::Set => {
                jepsen_tests::run::check(workload, &plant_lost_element(&events)).valid
                    == Validity::Invalid
            }
            Workload::List => planted_stale_listing_is_caught(&events),
            Workload::Bucket => planted_head_is_caught(&events),
            Workload::Multipart => unreachable!("not run here"),
        };
        assert!(caught, "a planted anomaly must be caught");
        for node in ["meta-1", "blob-1", "gateway-1"] {
            let log = dir.join("nodes").join(format!("{node}.log"));
            assert!(log.is_file(), "{} is kept", log.display());
        }
        assert!(dir.join("summary.txt").is_file() && dir.join("results.json").is_file());
        // The plots, listed in results.json.
        assert_eq!(report.plots.len(), 2, "{:?}", report.plots);
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("results.json")).expect("results.json"),
        )
        .expect("results JSON");
        for name in ["latency.png", "rate.png"] {
            let png = dir.join(name);
            let bytes = std::fs::read(&png).unwrap_or_default();
            assert!(
                bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is a PNG",
                png.display()
            );
            assert!(
                results["plots"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x == name)),
                "results.json lists {name}"
            );
        }
        // The register workload really compare-and-sets.
        if workload == Workload::Register {
            let acked_cas = history::operations(&events)
                .iter()
                .filter(|o| o.invoke.f == CAS && o.outcome() == EventType::Ok)
                .count();
            assert!(acked_cas > 5, "only {acked_cas} acknowledged cas");
        }
    }
}
