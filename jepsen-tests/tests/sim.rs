//! The deterministic simulation of the meta cluster (`jepsen_tests::sim`): a run replays
//! exactly from its seed, the real meta code keeps every invariant under faults, and the
//! invariants catch bugs planted on purpose.

use jepsen_tests::sim::{run_many, run_seed, Plant, SimConfig};

/// Seeds every CI run checks; `SIM_SEEDS=<first>:<count>` picks others.
fn seeds() -> std::ops::Range<u64> {
    if let Ok(spec) = std::env::var("SIM_SEEDS") {
        if let Some((first, count)) = spec.split_once(':') {
            if let (Ok(first), Ok(count)) = (first.parse::<u64>(), count.parse::<u64>()) {
                return first..first + count;
            }
        }
    }
    1..9
}

#[test]
fn a_seed_replays_exactly() {
    let config = SimConfig::default();
    let first = run_seed(7, &config).expect("run");
    let second = run_seed(7, &config).expect("rerun");
    assert!(
        first.trace.len() > 1000,
        "too little happened: {}",
        first.summary()
    );
    assert!(first.faults > 0, "no fault injected: {}", first.summary());
    assert_eq!(first.trace, second.trace, "two runs of seed 7 differ");
    let other = run_seed(8, &config).expect("other seed");
    assert_ne!(first.digest(), other.digest(), "seeds 7 and 8 ran alike");
}

#[test]
fn the_meta_cluster_keeps_every_invariant_under_faults() {
    let config = SimConfig::default();
    let mut invalid = Vec::new();
    let mut installed = 0;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run_many(seeds(), jobs, &config, |report| {
        println!("{}", report.summary());
        assert!(report.ok > 200, "too little was done: {}", report.summary());
        assert!(
            report.snapshots_built > 0,
            "the log was never compacted: {}",
            report.summary()
        );
        installed += report.snapshots_installed;
        for v in &report.violations {
            println!("seed {}: {}: {}", report.seed, v.invariant, v.detail);
        }
        if !report.valid() {
            invalid.push(report.seed);
        }
    })
    .expect("run");
    // Catching up by snapshot is the path the black-box runs found a bug in (finding 8).
    assert!(installed > 0, "no node was ever caught up by a snapshot");
    assert!(invalid.is_empty(), "invalid seeds (replay with `cargo run -p jepsen-tests -- --sim 1 --seed N --sim-trace`): {invalid:?}");
}

#[test]
fn planted_stale_reads_are_caught() {
    let config = SimConfig {
        plant: Some(Plant::StaleReads),
        ..Default::default()
    };
    let report = run_seed(1, &config).expect("run");
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.invariant == "linearizable"),
        "stale reads went unnoticed: {}",
        report.summary()
    );
}

#[test]
fn planted_lying_disk_is_caught() {
    let config = SimConfig {
        plant: Some(Plant::LyingDisk),
        ..Default::default()
    };
    let mut caught = Vec::new();
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    run_many(1..7, jobs, &config, |report| {
        if !report.valid() {
            caught.push(report.seed);
        }
    })
    .expect("run");
    assert!(
        !caught.is_empty(),
        "a disk that loses acknowledged fsyncs went unnoticed in seeds 1-6"
    );
}
