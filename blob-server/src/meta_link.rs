//! The blob server's calls to the meta service besides registration: `ReportDamage` (from the
//! scrubber) and `CollectGarbage` (from the GC walker).
//!
//! Both are Raft writes on the meta side, so only the leader answers them; a follower or a
//! node without a leader answers UNAVAILABLE. Like the gateway's client, [`MetaLink`] tries
//! every endpoint in turn, starting with the one that answered last, for a few rounds with
//! growing pauses (an election takes a few hundred milliseconds). Any other status is final and
//! returned to the caller, which logs it and tries again at its next round: nothing here is
//! urgent, and both calls are idempotent (reporting twice queues once; asking twice about the
//! same shards answers the same garbage).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_proto::meta::meta_client::MetaClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Deadline of one call: longer than a meta node waits for a leader (3 s), so its "no leader"
/// answer arrives first. A CollectGarbage batch of 500 keys is one small Raft entry.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pauses between passes over the endpoint list.
const BACKOFF: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// A CollectGarbage request names up to 500 keys of at most 128 bytes; answers are smaller.
const MAX_MESSAGE: usize = 4 << 20;

/// The meta service, reached through any of its endpoints.
pub(crate) struct MetaLink {
    clients: Vec<(String, MetaClient<Channel>)>,
    /// The endpoint that answered last; calls start there.
    preferred: AtomicUsize,
}

impl MetaLink {
    /// Lazy channels to every valid endpoint (nothing is dialed before the first call);
    /// `None` when no endpoint is valid.
    pub(crate) fn new(endpoints: &[String]) -> Option<MetaLink> {
        let mut clients = Vec::new();
        for raw in endpoints {
            let uri = cairn_proto::endpoint_uri(raw);
            match Endpoint::from_shared(uri.clone()) {
                Ok(e) => {
                    let channel = e
                        .connect_timeout(CONNECT_TIMEOUT)
                        .timeout(CALL_TIMEOUT)
                        .connect_lazy();
                    let client = MetaClient::new(channel)
                        .max_decoding_message_size(MAX_MESSAGE)
                        .max_encoding_message_size(MAX_MESSAGE);
                    clients.push((uri, client));
                }
                Err(e) => {
                    tracing::warn!(endpoint = %raw, error = %e, "invalid meta endpoint, ignored")
                }
            }
        }
        (!clients.is_empty()).then(|| MetaLink {
            clients,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Runs one RPC, moving to the next endpoint while the current one is unreachable or has
    /// no leader. Any other status is final.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Status>
    where
        F: Fn(MetaClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.clients.len();
        let mut last = Status::unavailable("no meta endpoint");
        for (round, pause) in BACKOFF.iter().enumerate() {
            let start = self.preferred.load(Ordering::Relaxed);
            for step in 0..n {
                let index = (start + step) % n;
                let (uri, client) = &self.clients[index];
                match f(client.clone()).await {
                    Ok(reply) => {
                        self.preferred.store(index, Ordering::Relaxed);
                        return Ok(reply.into_inner());
                    }
                    Err(status) if retryable(&status) => {
                        tracing::debug!(op, endpoint = %uri, round, code = ?status.code(), msg = status.message(), "meta endpoint failed; trying the next");
                        last = status;
                    }
                    Err(status) => return Err(status),
                }
            }
            if round + 1 < BACKOFF.len() {
                tokio::time::sleep(*pause).await;
            }
        }
        Err(last)
    }
}

/// Whether another endpoint (or a later round) may answer: no leader here, unreachable, or
/// too slow.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}
