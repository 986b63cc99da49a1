//! `cairn bench-meta`: committed Raft writes per second of the meta service measured alone,
//! with no gateway, blob server or S3 in the way (issue 7's "metadata" figure).
//!
//! It starts a fresh meta service in this process (`--voters` voters, each on its own
//! directory under `--dir`, one Raft group as in the embedded mode) and runs `--concurrency`
//! clients that commit objects through its gRPC API for `--duration`. Each commit is one Raft
//! entry: appended and fsynced on a majority, applied and fsynced, then answered. With one
//! client nothing can be batched (every entry has its own append and apply); with many,
//! openraft appends, replicates and applies every entry waiting at once, so one fsync serves
//! many commits. The objects carry a small inline body (`--size`), as 4 KiB S3 PUTs do.
//! At the end the bucket is listed: every commit counted must be there, or the run fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cairn_proto::meta::meta_client::MetaClient;
use cairn_proto::meta::{
    CommitObjectRequest, CreateBucketRequest, ListObjectsRequest, MetaError, ObjectVersion,
};
use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Arguments of `cairn bench-meta`.
#[derive(clap::Args, Debug)]
pub struct MetaBenchArgs {
    /// Meta voters (one Raft group, each voter on its own directory), 1 to 3.
    #[arg(long, default_value_t = 3)]
    pub voters: u64,
    /// Clients committing at once: 1 measures unbatched commits.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to commit, e.g. `10s`.
    #[arg(long, default_value = "10s", value_parser = super::args::parse_duration)]
    pub duration: Duration,
    /// Bytes of inline body per object.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    /// Parent of the voters' directories (removed at the end); a temporary directory if unset.
    /// It decides which disk's fsyncs are measured.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// What the clients measured.
struct Tally {
    latency_us: Histogram<u64>,
    errors: u64,
}

/// Runs `cairn bench-meta`: prints one line of results.
pub async fn run(args: MetaBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=3).contains(&args.voters), "--voters must be 1, 2 or 3");
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let parent = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the voters' directories")?;
    let meta = cairn_meta::start(cairn_meta::MetaConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        advertise: None,
        nodes: (1..=args.voters)
            .map(|id| cairn_meta::MetaNodeConfig {
                id,
                dir: parent.path().join(format!("voter-{id}")),
            })
            .collect(),
        bootstrap: true,
        blob_down_after: crate::roles::DEFAULT_BLOB_DOWN_AFTER,
        admin: None,
        snapshot_logs: cairn_meta::DEFAULT_SNAPSHOT_LOGS,
        node_lost_after: cairn_meta::DEFAULT_NODE_LOST_AFTER,
        lifecycle: cairn_meta::lifecycle::LifecycleSettings::default(),
    })
    .await
    .context("starting the meta service")?;
    meta.wait_for_leader(Duration::from_secs(60))
        .await
        .context("waiting for a meta leader")?;

    let mut client = MetaClient::connect(meta.endpoint())
        .await
        .context("connecting to the meta service")?;
    let bucket = "bench-meta".to_string();
    let created = client
        .create_bucket(CreateBucketRequest {
            name: bucket.clone(),
            object_lock: false,
        })
        .await
        .context("creating the bucket")?
        .into_inner();
    meta_ok(created.error, "creating the bucket")?;

    let tally = Arc::new(Mutex::new(Tally {
        latency_us: Histogram::new(3).context("a latency histogram")?,
        errors: 0,
    }));
    let body = bytes::Bytes::from(vec![0x5a_u8; args.size]);
    let started = Instant::now();
    let deadline = started + args.duration;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let (mut client, tally) = (client.clone(), Arc::clone(&tally));
            let (bucket, body) = (bucket.clone(), body.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let request = CommitObjectRequest {
                        object: Some(ObjectVersion {
                            bucket: bucket.clone(),
                            key: format!("w{worker}/{n}"),
                            size: body.len() as u64,
                            etag: "0123456789abcdef0123456789abcdef".into(),
                            inline_data: Some(body.clone()),
                            ..Default::default()
                        }),
                        condition: None,
                    };
                    let sent = Instant::now();
                    let ok = match client.commit_object(request).await {
                        Ok(reply) => reply.into_inner().error == MetaError::None as i32,
                        Err(_) => false,
                    };
                    let micros = sent.elapsed().as_micros() as u64;
                    let mut tally = tally.lock().await;
                    if ok {
                        // Ignored error: a latency beyond the histogram's range (hours).
                        let _ = tally.latency_us.record(micros.max(1));
                    } else {
                        tally.errors += 1;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("a bench client panicked")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let tally = tally.lock().await;
    let commits = tally.latency_us.len();
    let listed = count_objects(&mut client, &bucket).await?;
    let ms = |q: f64| tally.latency_us.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "META voters={} concurrency={} size={} commits={} listed={} errors={} \
         commits_per_s={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.voters,
        args.concurrency,
        args.size,
        commits,
        listed,
        tally.errors,
        commits as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        tally.latency_us.max() as f64 / 1000.0,
    );
    let errors = tally.errors;
    drop(tally);
    meta.shutdown().await.context("stopping the meta service")?;
    anyhow::ensure!(commits > 0, "no commit succeeded");
    // A commit that timed out on the client side may still have been applied, so more keys
    // than counted commits is possible after errors; fewer never is.
    anyhow::ensure!(
        listed >= commits && (errors > 0 || listed == commits),
        "{commits} commits were answered but {listed} objects are listed"
    );
    Ok(())
}

/// Every key in `bucket`, counted page by page.
async fn count_objects(client: &mut MetaClient<Channel>, bucket: &str) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut start_after = String::new();
    loop {
        let page = client
            .list_objects(ListObjectsRequest {
                bucket: bucket.to_string(),
                start_after: start_after.clone(),
                max_keys: 1000,
                ..Default::default()
            })
            .await
            .context("listing the bucket")?
            .into_inner();
        meta_ok(page.error, "listing the bucket")?;
        count += page.objects.len() as u64;
        if !page.is_truncated {
            return Ok(count);
        }
        start_after = page.next_start_after;
    }
}

/// Fails with `what` and the meta service's error code unless `error` is `NONE`.
fn meta_ok(error: i32, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        error == MetaError::None as i32,
        "{what}: {:?}",
        MetaError::try_from(error)
    );
    Ok(())
}
