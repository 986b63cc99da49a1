//! SigV4 credentials: one configured access key.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The gateway's single key pair. s3s's `SimpleAuth` answers `NotSignedUp` for an unknown
/// key; S3 (and its SDKs) expect `InvalidAccessKeyId`, so the lookup lives here.
pub(crate) struct StaticAuth {
    access_key: String,
    secret_key: SecretKey,
}

impl StaticAuth {
    /// The key pair requests must be signed with.
    pub fn new(access_key: &str, secret_key: &str) -> Self {
        Self {
            access_key: access_key.to_string(),
            secret_key: SecretKey::from(secret_key),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for StaticAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret_key.clone())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_key_is_invalid_access_key_id() {
        let auth = StaticAuth::new("AK", "SK");
        assert_eq!(auth.get_secret_key("AK").await.unwrap().expose(), "SK");
        let err = auth.get_secret_key("other").await.unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::InvalidAccessKeyId);
    }
}
