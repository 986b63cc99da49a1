//! The token that calls inside a cluster carry (gateway → blob server), so a blob server
//! serves and stores shards only for members of its own cluster.
//!
//! Each cluster has a random secret, created by the meta service the first time it is asked
//! for (`Admin.GetClusterSecret`, which needs the admin credentials). Gateways and blob servers
//! fetch it at start-up with the root key pair; calls carry a token derived from it
//! (HMAC-SHA256 of a fixed label), never the secret itself. There is no default secret: a blob
//! server that has not fetched its cluster's secret yet refuses every call.

use std::sync::{Arc, OnceLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Metadata key of the token.
pub const TOKEN_HEADER: &str = "cairn-cluster-token";
const LABEL: &[u8] = b"cairn blob access v1";

/// The token derived from a cluster secret.
pub fn token_for(cluster_secret: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(cluster_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(LABEL);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token of this process's cluster, once fetched. Cheap to clone.
#[derive(Clone, Default)]
pub struct ClusterToken {
    token: Arc<OnceLock<String>>,
}

impl ClusterToken {
    /// Records the cluster secret (the first one wins; a cluster's secret never changes).
    pub fn set_secret(&self, cluster_secret: &str) {
        let _ = self.token.set(token_for(cluster_secret));
    }

    /// Whether the secret is known yet.
    pub fn is_ready(&self) -> bool {
        self.token.get().is_some()
    }

    /// Waits up to `timeout` for the secret (fetched by [`fetch::spawn`]); true once known.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }

    /// Checks a received call's token: UNAVAILABLE while this process does not know its
    /// cluster's secret yet, PERMISSION_DENIED when the token is missing or wrong.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = self.token.get() else {
            return Err(Status::unavailable(
                "this server has not fetched its cluster secret yet",
            ));
        };
        let given = metadata
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let equal = given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal {
            Ok(())
        } else {
            Err(Status::permission_denied(
                "missing or wrong cluster token: not a member of this cluster",
            ))
        }
    }
}

/// Adds the token to outgoing calls (client side); calls made before the secret is known go
/// without it and are refused by the server.
impl Interceptor for ClusterToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = self.token.get() {
            if let Ok(value) = token.parse() {
                request.metadata_mut().insert(TOKEN_HEADER, value);
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_token_passes() {
        let server = ClusterToken::default();
        let mut client = ClusterToken::default();
        let mut md = MetadataMap::new();
        assert_eq!(
            server.check(&md).map_err(|s| s.code()),
            Err(tonic::Code::Unavailable)
        );
        server.set_secret("s3cret");
        assert_eq!(
            server.check(&md).map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        client.set_secret("other");
        let request = client.call(Request::new(())).expect("call");
        md = request.metadata().clone();
        assert!(server.check(&md).is_err());
        let mut client = ClusterToken::default();
        client.set_secret("s3cret");
        let request = client.call(Request::new(())).expect("call");
        assert!(server.check(request.metadata()).is_ok());
        assert!(!token_for("s3cret").contains("s3cret"));
    }
}

/// Fetching the cluster secret from the meta service.
pub mod fetch {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tracing::Instrument;

    use super::ClusterToken;
    use crate::admin::admin_client::AdminClient;
    use crate::admin::GetClusterSecretRequest;
    use crate::admin_auth::AdminCredentials;
    use crate::endpoint_uri;

    const FIRST_RETRY: Duration = Duration::from_millis(200);
    const LONGEST_RETRY: Duration = Duration::from_secs(5);

    fn now_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Asks each meta endpoint in turn (following `cairn-leader` hints) for the secret.
    pub async fn secret_once(
        endpoints: &[String],
        credentials: &AdminCredentials,
    ) -> Result<String, String> {
        let mut errors = Vec::new();
        let mut queue: Vec<String> = endpoints.iter().map(|e| endpoint_uri(e)).collect();
        let mut tried = 0;
        while let Some(endpoint) = queue.first().cloned() {
            queue.remove(0);
            tried += 1;
            if tried > endpoints.len() + 3 {
                break;
            }
            let channel = match tonic::transport::Endpoint::from_shared(endpoint.clone()) {
                Ok(e) => e
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(15))
                    .connect_lazy(),
                Err(e) => {
                    errors.push(format!("{endpoint}: {e}"));
                    continue;
                }
            };
            let mut request = tonic::Request::new(GetClusterSecretRequest {});
            credentials.sign(request.metadata_mut(), "GetClusterSecret", now_ms());
            match AdminClient::new(channel).get_cluster_secret(request).await {
                Ok(reply) => return Ok(reply.into_inner().secret),
                Err(status) => {
                    if let Some(leader) = status
                        .metadata()
                        .get("cairn-leader")
                        .and_then(|v| v.to_str().ok())
                    {
                        queue.insert(0, endpoint_uri(leader));
                    }
                    errors.push(format!("{endpoint}: {}", status.message()));
                }
            }
        }
        Err(errors.join("; "))
    }

    /// Spawns the task that fetches the secret into `token`, retrying (with backoff) until
    /// it succeeds. Wrong credentials are retried too, loudly: an operator can fix them.
    pub fn spawn(
        endpoints: Vec<String>,
        credentials: AdminCredentials,
        token: ClusterToken,
    ) -> tokio::task::JoinHandle<()> {
        let span = tracing::info_span!("cluster-token");
        tokio::spawn(
            async move {
                let mut pause = FIRST_RETRY;
                loop {
                    match secret_once(&endpoints, &credentials).await {
                        Ok(secret) => {
                            token.set_secret(&secret);
                            tracing::info!("cluster secret fetched");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "cannot fetch the cluster secret yet");
                        }
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_RETRY);
                }
            }
            .instrument(span),
        )
    }
}
