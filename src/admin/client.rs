//! A signed `Admin` client that finds the meta leader by itself.
//!
//! Calls go to the given endpoints in turn; a node that is not the leader answers UNAVAILABLE
//! with the leader's address in `cairn-leader`, and the call is repeated there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use cairn_meta::AdminCredentials;
use cairn_proto::admin::admin_client::AdminClient;
use cairn_proto::cluster_token::{fetch, ClusterToken};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// How many leader redirects one call follows before giving up.
const MAX_REDIRECTS: usize = 5;
/// Rounds over every endpoint while the cluster has no leader (e.g. during an election).
const ROUNDS: usize = 20;
const ROUND_PAUSE: Duration = Duration::from_millis(500);

/// Admin API access to one cluster.
pub struct Admin {
    endpoints: Vec<String>,
    credentials: AdminCredentials,
}

pub use cairn_proto::endpoint_uri;

/// `http://host:port` -> `host:port` (the form membership records).
pub fn host_port(raw: &str) -> &str {
    raw.split_once("://")
        .map_or(raw, |(_, rest)| rest)
        .trim_end_matches('/')
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Connects to one meta node's admin API.
pub async fn connect(uri: &str) -> anyhow::Result<AdminClient<Channel>> {
    let channel = Endpoint::from_shared(uri.to_string())
        .with_context(|| format!("bad meta endpoint {uri:?}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(180))
        .connect()
        .await
        .with_context(|| format!("cannot reach {uri}"))?;
    Ok(AdminClient::new(channel))
}

fn leader_hint(status: &Status) -> Option<String> {
    status
        .metadata()
        .get("cairn-leader")
        .and_then(|v| v.to_str().ok())
        .map(endpoint_uri)
}

impl Admin {
    /// A client over `endpoints` (at least one) signing with `credentials`.
    pub fn new(endpoints: Vec<String>, credentials: AdminCredentials) -> anyhow::Result<Self> {
        if endpoints.is_empty() {
            bail!("no meta endpoint given (--meta)");
        }
        Ok(Self {
            endpoints: endpoints.iter().map(|e| endpoint_uri(e)).collect(),
            credentials,
        })
    }

    /// The endpoints, as URIs.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The token blob servers want from members of this cluster (fetched with the admin
    /// credentials).
    pub async fn cluster_token(&self) -> anyhow::Result<ClusterToken> {
        let secret = fetch::secret_once(&self.endpoints, &self.credentials)
            .await
            .map_err(|e| anyhow!("fetching the cluster secret: {e}"))?;
        let token = ClusterToken::default();
        token.set_secret(&secret);
        Ok(token)
    }

    /// A request for `method`, signed now.
    pub fn signed<T>(&self, method: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.credentials
            .sign(request.metadata_mut(), method, now_ms());
        request
    }

    /// Runs `call` against `uri` once.
    pub async fn call_at<T, R, F, Fut>(
        &self,
        uri: &str,
        method: &str,
        message: T,
        call: F,
    ) -> Result<R, Status>
    where
        T: Clone,
        F: Fn(AdminClient<Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let client = connect(uri)
            .await
            .map_err(|e| Status::unavailable(format!("{e:#}")))?;
        call(client, self.signed(method, message))
            .await
            .map(|r| r.into_inner())
    }

    /// Runs `call` on the leader: follows `cairn-leader` hints, tries every endpoint, and
    /// waits out elections.
    pub async fn on_leader<T, R, F, Fut>(
        &self,
        method: &str,
        message: T,
        call: F,
    ) -> anyhow::Result<R>
    where
        T: Clone,
        F: Fn(AdminClient<Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let mut last = String::from("no endpoint tried");
        for _ in 0..ROUNDS {
            for start in &self.endpoints {
                let mut uri = start.clone();
                for _ in 0..=MAX_REDIRECTS {
                    match self.call_at(&uri, method, message.clone(), &call).await {
                        Ok(reply) => return Ok(reply),
                        Err(status) if status.code() == Code::Unavailable => {
                            last = format!("{uri}: {}", status.message());
                            match leader_hint(&status) {
                                Some(leader) if leader != uri => uri = leader,
                                _ => break,
                            }
                        }
                        Err(status) => {
                            return Err(anyhow!(
                                "{method} failed at {uri}: {:?}: {}",
                                status.code(),
                                status.message()
                            ))
                        }
                    }
                }
            }
            tokio::time::sleep(ROUND_PAUSE).await;
        }
        Err(anyhow!(
            "{method}: no meta leader answered; last error: {last}"
        ))
    }
}
