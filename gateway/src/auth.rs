//! SigV4 credentials: the root key pair and the users stored in the meta service
//! ([`crate::iam::Users`]).
//!
//! s3s's `SimpleAuth` answers `NotSignedUp` for an unknown key; S3 (and its SDKs) expect
//! `InvalidAccessKeyId`, so the lookup lives here. A disabled user gets
//! `InvalidAccessKeyId` too (403, "Your account is disabled"), as MinIO answers; AWS answers
//! an inactive access key the same way.

use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::iam::Users;

/// Looks secrets up for s3s's signature check.
pub(crate) struct CairnAuth {
    users: Arc<Users>,
}

impl CairnAuth {
    /// Authenticates against `users`.
    pub fn new(users: Arc<Users>) -> Self {
        Self { users }
    }
}

#[async_trait::async_trait]
impl S3Auth for CairnAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if self.users.is_root(access_key) {
            return Ok(SecretKey::from(self.users.root_secret()));
        }
        match self.users.user(access_key).await? {
            Some(user) if user.disabled => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "Your account is disabled; please contact your administrator.",
            )),
            Some(user) => Ok(SecretKey::from(user.secret_key.as_str())),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::admin_auth::AdminCredentials;

    #[tokio::test]
    async fn the_root_is_known_without_the_meta_service() {
        // No meta service listens on this port: the root needs none, anyone else's lookup
        // fails as unavailable rather than as an unknown key.
        let users = Users::new(
            AdminCredentials {
                access_key: "AK".into(),
                secret_key: "SK".into(),
            },
            &["http://127.0.0.1:1".to_string()],
        )
        .unwrap();
        let auth = CairnAuth::new(Arc::new(users));
        assert_eq!(auth.get_secret_key("AK").await.unwrap().expose(), "SK");
        let err = auth.get_secret_key("other").await.unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::ServiceUnavailable);
    }
}
