//! The bench bucket's life: created before the run (unless it exists), and afterwards the
//! run's keys deleted and the bucket too if the run created it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::Instrument;

use super::workload::{Phase, Target};

/// Creates the bucket; `true` when this run created it, `false` when it already existed
/// (and is ours) or could not be created (the failure is counted in `phase`).
pub async fn setup(target: &Target, phase: &mut Phase) -> bool {
    let start = Instant::now();
    let result = target.client.create_bucket(&target.bucket).await;
    phase.elapsed = start.elapsed();
    match result {
        Ok(created) => {
            phase.ops += 1;
            created
        }
        Err(e) => {
            phase.fail(&e);
            false
        }
    }
}

/// Deletes every key under the run's prefix with `concurrency` tasks, then the bucket when
/// `delete_bucket`. Every failure is counted in the returned phase.
pub async fn cleanup(target: &Target, concurrency: usize, delete_bucket: bool) -> Phase {
    let start = Instant::now();
    let mut phase = Phase::default();
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        match target
            .client
            .list_page(&target.bucket, &target.prefix, token.as_deref(), 1000)
            .await
        {
            Ok((page, _)) => {
                phase.ops += 1;
                keys.extend(page.keys);
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            Err(e) => {
                phase.fail(&e);
                break;
            }
        }
    }
    let queue = Arc::new(Mutex::new(keys));
    let mut tasks = Vec::new();
    for worker in 0..concurrency.max(1) {
        let (queue, target) = (queue.clone(), target.clone());
        tasks.push(tokio::spawn(
            async move {
                let mut phase = Phase::default();
                loop {
                    let key = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pop();
                    let Some(key) = key else { break };
                    match target.client.delete_object(&target.bucket, &key).await {
                        Ok(_) => phase.ops += 1,
                        Err(e) => phase.fail(&e),
                    }
                }
                phase
            }
            .instrument(tracing::info_span!("bench-cleanup", worker)),
        ));
    }
    for task in tasks {
        match task.await {
            Ok(p) => {
                phase.ops += p.ops;
                for (code, n) in p.errors {
                    *phase.errors.entry(code).or_default() += n;
                }
            }
            Err(e) => *phase.errors.entry(format!("TaskFailed: {e}")).or_default() += 1,
        }
    }
    if delete_bucket {
        match target.client.delete_bucket(&target.bucket).await {
            Ok(_) => phase.ops += 1,
            Err(e) => phase.fail(&e),
        }
    }
    phase.elapsed = start.elapsed();
    phase
}
