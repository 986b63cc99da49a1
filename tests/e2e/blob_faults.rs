//! A blob server's disks failing under it, and the blob server itself dying mid-write: real
//! `cairn meta`, `cairn blob` and `cairn gateway` processes, real disk faults (a removed
//! directory, a tmpfs remounted read-only, a tmpfs that fills up), `kill -9`.
//!
//! The tmpfs tests need `mount` (root); where it is not permitted they say so and skip that
//! part.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster_harness::*;
use crate::harness::*;

/// A tmpfs mounted for a test, lazily unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "48m") at `path`; `None` (with a message) if mounting is
    /// not permitted here.
    fn mount(path: &str, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path])
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: PathBuf::from(path),
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED (tmpfs part): cannot mount a tmpfs at {path}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED (tmpfs part): cannot run mount: {e}");
                None
            }
        }
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount read-only failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Every file under `dir`, recursively (temporary files included).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Shard files (committed and temporary) under a blob data directory.
fn shard_files(disk: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    files_under(&Path::new(disk).join("shards"))
        .into_iter()
        .partition(|p| !p.to_string_lossy().ends_with(".tmp"))
}

/// PUTs until the blob server's registration lets placement succeed (bounded).
async fn put_when_placed(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    for attempt in 0.. {
        let out = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.to_vec().into())
            .send()
            .await;
        match out {
            Ok(_) => return,
            Err(e) if attempt < 100 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("put {key} never succeeded: {e:?}"),
        }
    }
}

/// The disks of blob node 0 as `cairn admin status` reports them: (path, state, free bytes).
fn disks_of(status: &serde_json::Value) -> Vec<(String, String, u64)> {
    status["blob_nodes"][0]["disks"]
        .as_array()
        .map(|disks| {
            disks
                .iter()
                .map(|d| {
                    (
                        d["path"].as_str().unwrap_or_default().to_string(),
                        d["state"].as_str().unwrap_or_default().to_string(),
                        d["free_bytes"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn log_of(node: &Node) -> String {
    std::fs::read_to_string(&node.log).unwrap_or_default()
}

/// One blob server with four disks; one directory is removed and (where a tmpfs can be
/// mounted) another is remounted read-only while the server runs. Both are detected without a
/// restart, reported FAULTY by `cairn admin status` (keeping their disk ids), new objects go to
/// the remaining disks only, and the objects written before read back from what is left.
#[tokio::test]
async fn a_vanished_or_read_only_disk_is_marked_faulty_and_writes_go_elsewhere() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    let paths: Vec<String> = (0..4)
        .map(|d| cluster.path(&format!("blob0-d{d}")))
        .collect();
    let disk = |d: usize| paths[d].clone();
    let tmpfs = Tmpfs::mount(&disk(3), "64m");
    cluster.add_blob("", 4);
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("faults")
        .send()
        .await
        .expect("create");
    let mut before = Vec::new();
    for i in 0..3u64 {
        let body = data((1 << 20) + i as usize * 1000, i);
        put_when_placed(&s3, "faults", &format!("before-{i}"), &body).await;
        before.push(body);
    }
    let ids_before: Vec<String> = cluster.status()["blob_nodes"][0]["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .map(|d| d["disk_id"].as_str().unwrap_or_default().to_string())
        .collect();

    // Pull disk 2 out from under the server, and turn disk 3 read-only.
    // Renamed away first: the rename is atomic, whereas removing the tree in place raced the
    // server, which may create a file in it meanwhile ("Directory not empty").
    let pulled = format!("{}.pulled", disk(2));
    std::fs::rename(disk(2), &pulled).expect("pull disk 2");
    let _ = std::fs::remove_dir_all(&pulled); // only tidying: the disk is gone already
    if let Some(t) = &tmpfs {
        t.remount_read_only();
    }
    let faulty_expected: Vec<String> = if tmpfs.is_some() {
        vec![disk(2), disk(3)]
    } else {
        vec![disk(2)]
    };
    let status = cluster.wait_for("the lost disks reported faulty", |s| {
        let disks = disks_of(s);
        disks.len() == 4
            && disks.iter().all(|(path, state, _)| {
                let lost = faulty_expected.contains(path);
                (state == "faulty") == lost
            })
    });
    let ids_after: Vec<String> = status["blob_nodes"][0]["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .map(|d| d["disk_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        ids_after, ids_before,
        "a disk that fails at run time keeps its id"
    );
    let (ok, text, _) = cluster.admin(&["status"]);
    assert!(ok && text.contains("faulty"), "{text}");

    // New objects: placed on the healthy disks only, and they read back.
    let healthy: Vec<String> = (0..4)
        .map(disk)
        .filter(|d| !faulty_expected.contains(d))
        .collect();
    let count = |dirs: &[String]| -> usize { dirs.iter().map(|d| shard_files(d).0.len()).sum() };
    let on_healthy = count(&healthy);
    for i in 0..3u64 {
        let body = data((2 << 20) + i as usize, 100 + i);
        put(&s3, "faults", &format!("after-{i}"), body.clone()).await;
        assert_eq!(get(&s3, "faults", &format!("after-{i}")).await, body);
    }
    assert!(
        count(&healthy) >= on_healthy + 3 * healthy.len(),
        "new shards went to the healthy disks"
    );
    assert!(
        !Path::new(&disk(2)).exists(),
        "nothing recreated the removed disk"
    );
    // The objects written before lost at most two of their four shards: they read back.
    for (i, body) in before.iter().enumerate() {
        assert_eq!(&get(&s3, "faults", &format!("before-{i}")).await, body);
    }
    let log = log_of(&cluster.blobs[0]);
    assert!(log.contains("FAULTY"), "the blob log names the fault");
    drop(tmpfs);
}

/// One blob server with four disks, one of them a 48 MiB tmpfs. Eight 16 MiB objects are PUT
/// at once: placement (which sees 48 MiB free) gives each an 8 MiB shard on the tmpfs, so the
/// tmpfs runs out of space part-way. The shards that hit ENOSPC fail cleanly (no temporary
/// file, no torn shard), every PUT still reaches its write quorum on the other disks, every
/// object reads back, and the full disk is not mistaken for a faulty one.
#[tokio::test]
async fn a_full_disk_fails_its_shards_cleanly_and_puts_go_on() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    let full = cluster.path("blob0-d3");
    let Some(tmpfs) = Tmpfs::mount(&full, "48m") else {
        eprintln!("SKIPPED a_full_disk_fails_its_shards_cleanly_and_puts_go_on: no tmpfs");
        return;
    };
    cluster.add_blob("", 4);
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("full")
        .send()
        .await
        .expect("create");
    put_when_placed(&s3, "full", "warm-up", b"x").await;
    // Registration is every 10 s: wait for one that reports the tmpfs's free space.
    cluster.wait_for("the tmpfs's free space", |s| {
        disks_of(s)
            .iter()
            .any(|(path, state, free)| path == &full && state == "ok" && *free > 40 << 20)
    });

    let bodies: Vec<Vec<u8>> = (0..8).map(|i| data(16 << 20, 500 + i)).collect();
    let puts = bodies.iter().enumerate().map(|(i, body)| {
        let s3 = s3.clone();
        let body = body.clone();
        async move {
            s3.put_object()
                .bucket("full")
                .key(format!("o{i}"))
                .body(body.into())
                .send()
                .await
        }
    });
    for (i, out) in futures::future::join_all(puts)
        .await
        .into_iter()
        .enumerate()
    {
        out.unwrap_or_else(|e| panic!("put o{i} failed: {e:?}"));
    }
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(&get(&s3, "full", &format!("o{i}")).await, body, "o{i}");
    }

    let (shards, tmps) = shard_files(&full);
    assert!(
        tmps.is_empty(),
        "temporary files left on the full disk: {tmps:?}"
    );
    for shard in &shards {
        cairn_blob::verify_shard_file(shard)
            .unwrap_or_else(|e| panic!("torn shard {}: {e}", shard.display()));
    }
    assert!(
        shards.len() < 8,
        "the tmpfs was expected to run out of space ({} shards on it)",
        shards.len()
    );
    let log = log_of(&cluster.blobs[0]);
    assert!(
        log.contains("disk is full"),
        "the blob log names the full disk"
    );
    // Full is not faulty: the disk stays OK (its next registration reports its space).
    let status = cluster.status();
    let state = disks_of(&status)
        .into_iter()
        .find(|(path, _, _)| path == &full)
        .map(|(_, state, _)| state);
    assert_eq!(state.as_deref(), Some("ok"));
    // New PUTs still succeed.
    let body = data(4 << 20, 9);
    put(&s3, "full", "after", body.clone()).await;
    assert_eq!(get(&s3, "full", "after").await, body);
    drop(cluster);
    drop(tmpfs);
}

/// A blob server `kill -9`ed while a large object streams into it: the PUT fails and leaves no
/// object; at restart no temporary file is left on any disk and every shard file there (the
/// interrupted upload's finished shards included) verifies completely; the object written
/// before reads back.
#[tokio::test]
async fn kill_9_mid_put_leaves_no_tmp_files_and_no_torn_shards() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    cluster.add_blob("", 2);
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("crash")
        .send()
        .await
        .expect("create");
    let before = data(3 << 20, 1);
    put_when_placed(&s3, "crash", "before", &before).await;

    let disks = [cluster.path("blob0-d0"), cluster.path("blob0-d1")];
    let big = data(256 << 20, 2);
    let upload = {
        let s3 = s3.clone();
        tokio::spawn(async move {
            s3.put_object()
                .bucket("crash")
                .key("big")
                .body(big.into())
                .send()
                .await
        })
    };
    // Wait until a shard is being written (a temporary file of more than 1 MiB), then kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let writing = disks.iter().flat_map(|d| shard_files(d).1).any(|t| {
            std::fs::metadata(&t)
                .map(|m| m.len() > 1 << 20)
                .unwrap_or(false)
        });
        if writing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the big PUT never started writing shards"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.blobs[0].kill();
    let tmps_at_kill: usize = disks.iter().map(|d| shard_files(d).1.len()).sum();
    assert!(tmps_at_kill > 0, "the kill was meant to land mid-write");
    let out = upload.await.expect("upload task");
    assert!(out.is_err(), "a PUT whose blob server died cannot succeed");
    assert!(
        s3.head_object()
            .bucket("crash")
            .key("big")
            .send()
            .await
            .is_err(),
        "the failed PUT left an object behind"
    );

    cluster.restart_blob(0);
    for d in &disks {
        let (shards, tmps) = shard_files(d);
        assert!(
            tmps.is_empty(),
            "temporary files survived the restart: {tmps:?}"
        );
        for shard in &shards {
            cairn_blob::verify_shard_file(shard)
                .unwrap_or_else(|e| panic!("torn shard after kill -9: {}: {e}", shard.display()));
        }
    }
    cluster.wait_for_blob_nodes(1);
    assert_eq!(get(&s3, "crash", "before").await, before);
}

/// Fast maintenance settings for the tests below: a scrub pass per second at up to 1 GiB/s,
/// a GC walk per second over files older than 2 s.
const FAST_MAINTENANCE: [(&str, &str); 4] = [
    ("CAIRN_SCRUB_RATE", "1024"),
    ("CAIRN_SCRUB_INTERVAL", "1"),
    ("CAIRN_GC_GRACE", "2"),
    ("CAIRN_GC_INTERVAL", "1"),
];

/// Waits (bounded) until `pred` holds for the node's log; returns the log.
async fn wait_for_log(node: &Node, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = log_of(node);
        if pred(&log) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A byte flipped in a shard file that nobody reads: the scrubber finds it on its next pass
/// and the meta service accepts the report (the object is queued for healing); a gateway's
/// healer rebuilds the shard elsewhere and garbage collection removes the damaged file.
#[tokio::test]
async fn a_flipped_byte_is_scrubbed_reported_healed_and_collected() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    cluster.add_blob_with_env("", 5, &FAST_MAINTENANCE);
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("rot")
        .send()
        .await
        .expect("create");
    let body = data(3 << 20, 77);
    put_when_placed(&s3, "rot", "victim", &body).await;

    let disks: Vec<String> = (0..5)
        .map(|d| cluster.path(&format!("blob0-d{d}")))
        .collect();
    let victim = disks
        .iter()
        .flat_map(|d| shard_files(d).0)
        .next()
        .expect("a shard file");
    let mut bytes = std::fs::read(&victim).expect("read shard");
    bytes[256 + 1000] ^= 0x40; // a data byte of chunk 0
    std::fs::write(&victim, &bytes).expect("write shard");
    let key = victim
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();

    let log = wait_for_log(&cluster.blobs[0], "the damage report", |log| {
        log.lines().any(|l| {
            l.contains("damaged shard reported to the meta service")
                && l.contains(&key)
                && l.contains("queued=true")
        })
    })
    .await;
    assert!(log.contains("scrub found a damaged shard file"), "{log}");
    // The object still reads back (three good shards of four).
    assert_eq!(get(&s3, "rot", "victim").await, body);

    // The loop closes: a gateway's healer rebuilds the shard elsewhere and deletes the damaged
    // file (garbage collection would, had it not), and every shard file left verifies.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (ok, out, _) = cluster.admin(&["heal", "status", "--json"]);
        let healed = ok
            && serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|s| {
                s["objects_healed"].as_u64().unwrap_or(0) >= 1 && s["queued_objects"] == 0
            });
        if healed && !victim.exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healed and collected in time; heal status {out}; victim exists: {}",
            victim.exists()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for shard in disks.iter().flat_map(|d| shard_files(d).0) {
        cairn_blob::verify_shard_file(&shard)
            .unwrap_or_else(|e| panic!("{}: {e}", shard.display()));
    }
    assert_eq!(get(&s3, "rot", "victim").await, body);
    // The operator sees it too: the counters travel with the heartbeat to `admin status`.
    cluster.wait_for("scrub and GC counters in the status", |s| {
        let m = &s["blob_nodes"][0]["maintenance"];
        m["corrupt_shards"].as_u64() >= Some(1)
            && m["scrubbed_shards"].as_u64() >= Some(1)
            && m["gc_passes"].as_u64() >= Some(1)
    });
    assert!(cluster.admin_ok(&["status"]).contains("MAINTENANCE"));
}

/// Orphan shard files (what a crashed upload or a gateway that died before deleting leaves
/// behind) disappear once older than the grace; every shard of every committed object stays.
#[tokio::test]
async fn orphan_shards_are_collected_after_the_grace_and_live_ones_stay() {
    let mut cluster = Cluster::start(1, 0, 0, 1, &[]);
    cluster.add_blob_with_env("", 4, &FAST_MAINTENANCE);
    cluster.wait_for_blob_nodes(1);
    let s3 = cluster.client(0);
    s3.create_bucket()
        .bucket("gc-walk")
        .send()
        .await
        .expect("create");
    let mut bodies = Vec::new();
    for i in 0..4u64 {
        let body = data((1 << 20) + i as usize * 4096, 300 + i);
        put_when_placed(&s3, "gc-walk", &format!("live-{i}"), &body).await;
        bodies.push(body);
    }
    let disks: Vec<String> = (0..4)
        .map(|d| cluster.path(&format!("blob0-d{d}")))
        .collect();
    let live: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = disks.iter().flat_map(|d| shard_files(d).0).collect();
        v.sort();
        v
    };
    assert!(live.len() >= 16, "four objects on 2+2: {live:?}");

    // Orphans: copies of live shards under names no metadata knows, on every disk.
    let mut orphans = Vec::new();
    for (n, d) in disks.iter().enumerate() {
        let source = shard_files(d)
            .0
            .into_iter()
            .next()
            .expect("a shard on each disk");
        let key = format!("0000000000000000deadbeef{n:08x}.{n}");
        let path = cairn_blob::shard_path(Path::new(d), &key);
        std::fs::copy(&source, &path).expect("plant orphan");
        orphans.push(path);
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while orphans.iter().any(|p| p.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "orphans still there: {:?}; blob log:\n{}",
            orphans.iter().filter(|p| p.exists()).collect::<Vec<_>>(),
            log_of(&cluster.blobs[0])
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A few more walks over the live shards (all older than the grace by now) delete nothing.
    let walks = |log: &str| log.matches("gc walk finished").count();
    let seen = walks(&log_of(&cluster.blobs[0]));
    wait_for_log(&cluster.blobs[0], "two more gc walks", |log| {
        walks(log) >= seen + 2 * disks.len()
    })
    .await;
    let mut now: Vec<PathBuf> = disks.iter().flat_map(|d| shard_files(d).0).collect();
    now.sort();
    assert_eq!(now, live, "garbage collection touched a live shard");
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(&get(&s3, "gc-walk", &format!("live-{i}")).await, body);
    }
}
