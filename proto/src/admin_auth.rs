//! Signing and checking the admin credentials that every `Admin` call carries.
//!
//! The admin key pair is the root S3 key pair. A call carries the access key, the caller's
//! clock and an HMAC-SHA256 of the method name and that clock under the secret key, so the
//! secret itself never travels. A signature is valid for [`MAX_SKEW_MS`] either side of the
//! server's clock; within that window a captured signature can be replayed for the same
//! method (the channel is not encrypted yet: run admin traffic on a trusted network).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tonic::metadata::MetadataMap;

/// Metadata key of the access key.
pub const KEY_HEADER: &str = "cairn-admin-key";
/// Metadata key of the caller's clock (ms since the Unix epoch).
pub const TIME_HEADER: &str = "cairn-admin-time";
/// Metadata key of the hex signature.
pub const SIGNATURE_HEADER: &str = "cairn-admin-signature";
/// How far the caller's clock may be from the server's.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// An admin key pair.
#[derive(Clone)]
pub struct AdminCredentials {
    /// The access key (public name).
    pub access_key: String,
    /// The secret key (never sent).
    pub secret_key: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Why a call's credentials were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing or not text.
    #[error("missing admin credential header {0}")]
    Missing(&'static str),
    /// The access key is not the admin key.
    #[error("unknown admin access key")]
    UnknownKey,
    /// The clock is malformed or too far from the server's.
    #[error("admin request time is malformed or outside the allowed skew")]
    Skew,
    /// The signature does not match.
    #[error("admin signature does not match")]
    BadSignature,
}

fn signature(secret: &str, method: &str, time_ms: i64) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(time_ms.to_string().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AdminCredentials {
    /// Adds the credential headers for a call of `method` made at `now_ms`.
    pub fn sign(&self, metadata: &mut MetadataMap, method: &str, now_ms: i64) {
        let sig = to_hex(&signature(&self.secret_key, method, now_ms));
        for (key, value) in [
            (KEY_HEADER, self.access_key.clone()),
            (TIME_HEADER, now_ms.to_string()),
            (SIGNATURE_HEADER, sig),
        ] {
            if let Ok(value) = value.parse() {
                metadata.insert(key, value);
            }
        }
    }

    /// Checks the credential headers of a call of `method` received at `now_ms`.
    pub fn verify(
        &self,
        metadata: &MetadataMap,
        method: &str,
        now_ms: i64,
    ) -> Result<(), AuthError> {
        let get = |key: &'static str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::Missing(key))
        };
        let key = get(KEY_HEADER)?;
        let time = get(TIME_HEADER)?;
        let sig = get(SIGNATURE_HEADER)?;
        if key != self.access_key {
            return Err(AuthError::UnknownKey);
        }
        let time_ms: i64 = time.parse().map_err(|_| AuthError::Skew)?;
        if (now_ms - time_ms).abs() > MAX_SKEW_MS {
            return Err(AuthError::Skew);
        }
        let expected = to_hex(&signature(&self.secret_key, method, time_ms));
        // Constant-time comparison: the signature must not leak through timing.
        let equal = expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> AdminCredentials {
        AdminCredentials {
            access_key: "admin".into(),
            secret_key: "s3cret".into(),
        }
    }

    #[test]
    fn signed_call_verifies() {
        let mut md = MetadataMap::new();
        creds().sign(&mut md, "Status", 1_000_000);
        assert_eq!(creds().verify(&md, "Status", 1_000_500), Ok(()));
    }

    #[test]
    fn wrong_method_secret_key_or_time_is_refused() {
        let mut md = MetadataMap::new();
        creds().sign(&mut md, "Status", 1_000_000);
        assert_eq!(
            creds().verify(&md, "RemoveMetaMember", 1_000_000),
            Err(AuthError::BadSignature)
        );
        let other = AdminCredentials {
            access_key: "admin".into(),
            secret_key: "other".into(),
        };
        assert_eq!(
            other.verify(&md, "Status", 1_000_000),
            Err(AuthError::BadSignature)
        );
        let other_key = AdminCredentials {
            access_key: "nobody".into(),
            secret_key: "s3cret".into(),
        };
        assert_eq!(
            other_key.verify(&md, "Status", 1_000_000),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(
            creds().verify(&md, "Status", 1_000_000 + MAX_SKEW_MS + 1),
            Err(AuthError::Skew)
        );
        assert_eq!(
            creds().verify(&MetadataMap::new(), "Status", 0),
            Err(AuthError::Missing(KEY_HEADER))
        );
    }
}
