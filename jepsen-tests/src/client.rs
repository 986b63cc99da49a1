//! The S3 client the workloads use (`aws-sdk-s3`, no retries, bounded timeouts) and the rule
//! that turns an S3 outcome into `ok` / `fail` / `info` (see docs/jepsen.md).

use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// How long a client waits to connect to a gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An S3 client for one gateway. Retries are off: the SDK would otherwise resend a request
/// whose outcome is unknown and hide it from the history. The operation timeout bounds how
/// long an operation may hang (it then counts as `info`).
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str, timeout: Duration) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            access_key, secret_key, None, None, "jepsen",
        ))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(timeout)
                .build(),
        )
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// What a failed request means for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It certainly did not take effect (`fail`).
    Definite(String),
    /// It may have taken effect (`info`).
    Indeterminate(String),
}

impl Failure {
    /// The description.
    pub fn message(&self) -> &str {
        match self {
            Failure::Definite(m) | Failure::Indeterminate(m) => m,
        }
    }
}

/// Whether the operation changes state. A read that fails has no effect whatever happened,
/// so only its timeouts are reported as `info` (to show they were not answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GET, HEAD, LIST.
    Read,
    /// PUT, DELETE.
    Write,
}

/// Classifies an SDK error:
/// - never sent (request construction failed, connection refused): `fail`;
/// - timeout, connection lost after sending, unparsable response: `info`;
/// - an S3 error response: 4xx is `fail` (the gateway checks and rejects before any
///   commit); 5xx is `info` for writes (a commit may have been applied while its reply was
///   lost: the gateway itself says "commit outcome unknown") and `fail` for reads.
pub fn classify<E>(err: &SdkError<E, HttpResponse>, kind: Kind) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ConstructionFailure(_) => Failure::Definite(format!("not sent: {}", chain(err))),
        SdkError::TimeoutError(_) => Failure::Indeterminate("timeout".into()),
        SdkError::DispatchFailure(d) => {
            let text = chain(err);
            if connection_refused(err) {
                Failure::Definite(format!("connection refused: {text}"))
            } else if d.is_timeout() {
                Failure::Indeterminate(format!("timeout: {text}"))
            } else if kind == Kind::Read && d.is_io() {
                Failure::Definite(format!("io: {text}"))
            } else {
                Failure::Indeterminate(format!("dispatch: {text}"))
            }
        }
        SdkError::ResponseError(_) => match kind {
            Kind::Read => Failure::Definite(format!("bad response: {}", chain(err))),
            Kind::Write => Failure::Indeterminate(format!("bad response: {}", chain(err))),
        },
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("?").to_string();
            let text = format!("{status} {code}");
            if status < 500 || kind == Kind::Read {
                Failure::Definite(text)
            } else {
                Failure::Indeterminate(text)
            }
        }
        _ => Failure::Indeterminate(chain(err)),
    }
}

/// The error and its sources, one line.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether a connection attempt was refused (nothing was sent).
fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = s.source();
    }
    false
}
