//! Any member serves any request, and failures in the middle of a workload cost retries, not
//! errors: a gateway that knows only a follower reads and writes (the follower forwards writes
//! and asks the leader for a read index), and gateways restarted or killed behind a load
//! balancer while a meta leader dies leave an S3 client with no error at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::balancer::Balancer;
use crate::cluster_harness::*;
use crate::harness::*;

/// A gateway configured with a single meta follower's address (and so unable to reach the
/// leader itself) writes and reads; what it writes is seen at once through another gateway and
/// the other way round (follower reads are linearizable); after the leader dies it goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_that_knows_only_a_follower_reads_and_writes() {
    let mut cluster = Cluster::start(3, 3, 1, 1, &[]);
    let leader = cluster.leader();
    let follower = (leader + 1) % 3;
    let follower_addr = cluster.meta_addrs[follower].clone();
    let gateway = cluster.add_gateway(&follower_addr);
    let via_follower = cluster.client(gateway);
    let via_all = cluster.client(0);

    via_follower
        .create_bucket()
        .bucket("fwd")
        .send()
        .await
        .expect("create bucket through a follower");
    for n in 0..6u64 {
        let mine = data(50_000 + n as usize * 999, n);
        put(&via_follower, "fwd", &format!("f{n}"), mine.clone()).await;
        assert!(get(&via_all, "fwd", &format!("f{n}")).await == mine);
        let theirs = data(40_000 + n as usize * 777, 100 + n);
        put(&via_all, "fwd", &format!("a{n}"), theirs.clone()).await;
        // Written through the leader a moment ago: the follower's read must already see it.
        assert!(
            get(&via_follower, "fwd", &format!("a{n}")).await == theirs,
            "a follower read missed an acknowledged write"
        );
    }
    let listed = via_follower
        .list_objects_v2()
        .bucket("fwd")
        .send()
        .await
        .expect("list through a follower");
    assert_eq!(listed.key_count, Some(12));

    // The leader dies: after the election the follower leads or forwards to the new leader.
    cluster.metas[leader].kill();
    let after = data(70_000, 999);
    put(&via_follower, "fwd", "after", after.clone()).await;
    assert!(get(&via_follower, "fwd", "after").await == after);
    assert!(get(&via_all, "fwd", "after").await == after);
}

/// One S3 client writes and reads back without pause through a load balancer over two
/// gateways while gateway 0 is restarted gracefully, gateway 1 is killed and restarted, and the
/// meta leader is killed. The client (default SDK retries) sees no error, and every
/// acknowledged object reads back.
#[tokio::test(flavor = "multi_thread")]
async fn restarts_and_a_leader_change_mid_workload_cost_no_client_errors() {
    let mut cluster = Cluster::start(3, 4, 1, 2, &[]);
    let balancer = Balancer::start(&cluster.gateway_endpoints).await;
    let client = client_for(&balancer.endpoint, ACCESS_KEY, SECRET_KEY);
    client
        .create_bucket()
        .bucket("steady")
        .send()
        .await
        .expect("create bucket");

    let stop = Arc::new(AtomicBool::new(false));
    let workload = tokio::spawn({
        let client = client.clone();
        let stop = stop.clone();
        async move {
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("obj{n}");
                let body = data(20_000 + (n as usize * 4_099) % 200_000, n);
                let put = client
                    .put_object()
                    .bucket("steady")
                    .key(&key)
                    .body(body.clone().into())
                    .send()
                    .await;
                match put {
                    Ok(_) => {
                        match client.get_object().bucket("steady").key(&key).send().await {
                            Ok(out) => match out.body.collect().await.map(|b| b.to_vec()) {
                                Ok(read) if read == body => {}
                                Ok(_) => errors.push(format!("GET {key}: wrong bytes")),
                                Err(e) => errors.push(format!("GET {key} body: {e}")),
                            },
                            Err(e) => errors.push(format!("GET {key}: {e:?}")),
                        }
                        acked.push((key, body));
                    }
                    Err(e) => errors.push(format!("PUT {key}: {e:?}")),
                }
                n += 1;
            }
            (acked, errors)
        }
    });

    let pause = || tokio::time::sleep(Duration::from_millis(1500));
    pause().await;
    tokio::task::block_in_place(|| {
        cluster.gateways[0].stop();
        cluster.restart_gateway(0);
    });
    pause().await;
    tokio::task::block_in_place(|| {
        cluster.gateways[1].kill();
        cluster.restart_gateway(1);
    });
    pause().await;
    tokio::task::block_in_place(|| {
        let leader = cluster.leader();
        cluster.metas[leader].kill();
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = workload.await.expect("workload task");

    assert!(
        errors.is_empty(),
        "the client saw {} errors: {errors:#?}",
        errors.len()
    );
    assert!(
        acked.len() >= 20,
        "the workload made progress: {} objects",
        acked.len()
    );
    for (key, body) in &acked {
        assert!(get(&client, "steady", key).await == *body, "{key} lost");
    }
}
