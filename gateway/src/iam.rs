//! The gateway's view of S3 users: the root key pair from the command line, and the users
//! stored in the meta service, looked up through the `Admin.GetUser` call (signed with the
//! root keys) and cached for [`USER_CACHE_TTL`].
//!
//! The cache bounds how long a change takes to reach this gateway: a user disabled or
//! removed, or a policy detached or changed, is honoured by every gateway within
//! `USER_CACHE_TTL` (5 s); an access key unknown when first asked is asked again after
//! [`UNKNOWN_CACHE_TTL`] (1 s). Entries are per access key and hold the parsed policies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_proto::admin::admin_client::AdminClient;
use cairn_proto::admin::GetUserRequest;
use cairn_proto::admin_auth::AdminCredentials;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tracing::{debug, warn};

use crate::error::{ApiError, ApiResult, GatewayError};
use crate::policy::{canned, Decision, Policy, PolicyKind, RequestContext};

/// How long a looked-up user is trusted before it is looked up again.
pub(crate) const USER_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long "no such access key" is remembered.
pub(crate) const UNKNOWN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Above this many entries, expired ones are dropped at the next insert (and all of them
/// if that is not enough), so the cache's memory is bounded whatever keys clients send.
const CACHE_PRUNE_AT: usize = 10_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses between passes over the meta endpoints (an election takes a few hundred ms).
const LOOKUP_BACKOFF: [Duration; 3] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
];
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A stored S3 user, as this gateway uses it.
pub(crate) struct User {
    /// Its SigV4 secret.
    pub secret_key: String,
    /// Disabled users are refused like unknown keys.
    pub disabled: bool,
    /// Its policies, parsed (canned ones are shared).
    policies: Vec<Arc<Policy>>,
    /// Names of attached custom policies that did not parse: the user is refused everything
    /// rather than granted less or more than the operator meant.
    broken: Vec<String>,
}

impl User {
    /// Whether one of the user's policies tests the object's stored tags.
    pub fn tests_existing_object_tags(&self) -> bool {
        self.policies.iter().any(|p| p.tests_existing_object_tags())
    }

    /// What the user's own policies say about `cx` (a policy that did not parse denies).
    pub fn decide(&self, cx: &RequestContext<'_>) -> Decision {
        if !self.broken.is_empty() {
            return Decision::Deny;
        }
        self.policies
            .iter()
            .fold(Decision::NotApplicable, |d, p| d.combine(p.evaluate(cx)))
    }
}

struct Cached {
    at: Instant,
    user: Option<Arc<User>>,
}

/// The users this gateway knows: the root and a cache over the meta service.
pub(crate) struct Users {
    root: AdminCredentials,
    endpoints: Vec<(String, AdminClient<Channel>)>,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Who sent a request.
pub(crate) enum Caller {
    /// Unsigned.
    Anonymous,
    /// The root key pair: may do everything.
    Root,
    /// A stored user (enabled: a disabled one never gets past authentication).
    User(String, Arc<User>),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Users {
    /// The root key pair and lazy admin channels to every meta endpoint.
    pub fn new(root: AdminCredentials, meta_endpoints: &[String]) -> Result<Self, GatewayError> {
        let mut endpoints = Vec::with_capacity(meta_endpoints.len());
        for raw in meta_endpoints {
            let uri = cairn_proto::endpoint_uri(raw);
            let endpoint = Endpoint::from_shared(uri.clone())
                .map_err(|e| GatewayError::Config(format!("meta endpoint {raw:?}: {e}")))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT);
            endpoints.push((uri, AdminClient::new(endpoint.connect_lazy())));
        }
        Ok(Self {
            root,
            endpoints,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `access_key` is the root's.
    pub fn is_root(&self, access_key: &str) -> bool {
        access_key == self.root.access_key
    }

    /// The root's secret.
    pub fn root_secret(&self) -> &str {
        &self.root.secret_key
    }

    /// Who signed with `access_key` (`None`: anonymous). An unknown or disabled key is an
    /// error here only if authentication let it through, which it does not.
    pub async fn caller(&self, access_key: Option<&str>) -> ApiResult<Caller> {
        let Some(key) = access_key else {
            return Ok(Caller::Anonymous);
        };
        if self.is_root(key) {
            return Ok(Caller::Root);
        }
        match self.user(key).await? {
            Some(user) if !user.disabled => Ok(Caller::User(key.to_string(), user)),
            _ => Err(ApiError::AccessDenied(
                "unknown or disabled access key".into(),
            )),
        }
    }

    /// The stored user with `access_key`, from the cache while it is fresh.
    pub async fn user(&self, access_key: &str) -> ApiResult<Option<Arc<User>>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(c) = cache.get(access_key) {
                let ttl = if c.user.is_some() {
                    USER_CACHE_TTL
                } else {
                    UNKNOWN_CACHE_TTL
                };
                if c.at.elapsed() < ttl {
                    return Ok(c.user.clone());
                }
            }
        }
        let user = self.fetch(access_key).await?.map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_PRUNE_AT {
                cache.retain(|_, c| c.at.elapsed() < USER_CACHE_TTL);
                if cache.len() >= CACHE_PRUNE_AT {
                    // A flood of fresh keys (most of them unknown, say): start over rather
                    // than grow without bound; the cost is a lookup per key again.
                    cache.clear();
                }
            }
            cache.insert(
                access_key.to_string(),
                Cached {
                    at: Instant::now(),
                    user: user.clone(),
                },
            );
        }
        Ok(user)
    }

    /// Asks the meta endpoints in turn (the answering one reads linearizably), for a few
    /// rounds, so a lookup during a meta leader election waits it out as other meta calls
    /// do. Refused root credentials are final.
    async fn fetch(&self, access_key: &str) -> ApiResult<Option<User>> {
        let mut last = String::from("no meta endpoint");
        for (round, pause) in LOOKUP_BACKOFF.iter().enumerate() {
            for (uri, client) in &self.endpoints {
                let mut request = tonic::Request::new(GetUserRequest {
                    access_key: access_key.to_string(),
                });
                self.root.sign(request.metadata_mut(), "GetUser", now_ms());
                match client.clone().get_user(request).await {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        let Some(stored) = reply.user else {
                            return Ok(None);
                        };
                        return Ok(Some(user_from(stored, reply.policies)));
                    }
                    Err(status) if status.code() == Code::NotFound => return Ok(None),
                    Err(status)
                        if matches!(
                            status.code(),
                            Code::Unauthenticated | Code::PermissionDenied
                        ) =>
                    {
                        warn!(endpoint = %uri, msg = status.message(), "the meta service refused the gateway's root keys for a user lookup");
                        return Err(ApiError::Internal(format!(
                            "user lookup refused: {}",
                            status.message()
                        )));
                    }
                    Err(status) => {
                        debug!(endpoint = %uri, round, code = ?status.code(), msg = status.message(), "user lookup failed; trying the next meta endpoint");
                        last = format!("{uri}: {}", status.message());
                    }
                }
            }
            if round + 1 < LOOKUP_BACKOFF.len() {
                tokio::time::sleep(*pause).await;
            }
        }
        warn!(error = %last, "cannot look S3 users up");
        Err(ApiError::Unavailable(format!("user lookup: {last}")))
    }
}

/// Parses a stored user's policies.
fn user_from(
    stored: cairn_proto::admin::IamUser,
    custom: Vec<cairn_proto::admin::IamPolicy>,
) -> User {
    let mut policies = Vec::new();
    let mut broken = Vec::new();
    for name in &stored.policies {
        if let Some(p) = canned::policy(name) {
            policies.push(Arc::new(p.clone()));
            continue;
        }
        // A name with no document grants nothing: GetUser returns every attached custom
        // policy (one in use cannot be removed).
        let Some(c) = custom.iter().find(|c| &c.name == name) else {
            continue;
        };
        match Policy::parse(&c.document, &PolicyKind::User) {
            Ok(p) => policies.push(Arc::new(p)),
            Err(e) => {
                warn!(user = %stored.access_key, policy = %name, error = %e, "a policy of this user does not parse: refusing the user everything");
                broken.push(name.clone());
            }
        }
    }
    User {
        secret_key: stored.secret_key,
        disabled: stored.disabled,
        policies,
        broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::admin::{IamPolicy, IamUser};

    fn stored(policies: &[&str]) -> IamUser {
        IamUser {
            access_key: "alice".into(),
            secret_key: "secret-key".into(),
            policies: policies.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn cx(action: &'static str) -> RequestContext<'static> {
        RequestContext {
            action,
            resource: "arn:aws:s3:::b/k",
            principal: Some("alice"),
            values: &crate::policy::NO_VALUES,
        }
    }

    #[test]
    fn a_user_gets_its_canned_and_custom_policies_and_a_broken_one_denies_all() {
        let custom = IamPolicy {
            name: "deleter".into(),
            document:
                r#"{"Statement":{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"*"}}"#
                    .into(),
            updated_ms: 0,
        };
        let user = user_from(stored(&["readonly", "deleter"]), vec![custom]);
        assert_eq!(user.decide(&cx("s3:GetObject")), Decision::Allow);
        assert_eq!(user.decide(&cx("s3:DeleteObject")), Decision::Allow);
        assert_eq!(user.decide(&cx("s3:PutObject")), Decision::NotApplicable);

        let broken = IamPolicy {
            name: "bad".into(),
            document: r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"BinaryEquals":{"s3:prefix":"eA=="}}}}"#.into(),
            updated_ms: 0,
        };
        let user = user_from(stored(&["readwrite", "bad"]), vec![broken]);
        assert_eq!(user.decide(&cx("s3:GetObject")), Decision::Deny);
    }
}
