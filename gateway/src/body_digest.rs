//! Integrity of the DeleteObjects body. S3 requires `Content-MD5` or an `x-amz-checksum-*`
//! header on that request and checks it; s3s parses the XML body itself and checks neither.
//! So the listener reads the (small) body first, compares it with those headers and leaves
//! the verdict in the request's extensions, where the DeleteObjects handler finds it after
//! s3s has authenticated the request.

use base64::Engine as _;
use http::{HeaderMap, Method};
use s3s::Body;

use crate::checksum::{Algorithm, BodyChecksums};
use crate::error::ApiError;

/// Largest body read ahead: 1,000 keys of 1,024 bytes with their XML fit easily.
const MAX_BODY: usize = 4 << 20;

/// What the listener found about a DeleteObjects body's digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyDigest {
    /// Every digest the request carried matches the body.
    Verified,
    /// The request carried neither `Content-MD5` nor a flexible checksum.
    Missing,
    /// `Content-MD5` is not a base64 MD5.
    Invalid,
    /// A digest does not match the body (the message says which).
    Mismatch(String),
    /// The body could not be read, or is too large.
    Unreadable(String),
}

impl BodyDigest {
    /// The error to answer, if any.
    pub fn check(&self) -> Result<(), ApiError> {
        match self {
            Self::Verified => Ok(()),
            Self::Missing => Err(ApiError::InvalidRequest(
                "Missing required header for this request: Content-MD5 or x-amz-checksum-*".into(),
            )),
            Self::Invalid => Err(ApiError::InvalidDigest),
            Self::Mismatch(why) => Err(ApiError::BadDigest(why.clone())),
            Self::Unreadable(why) => Err(ApiError::MalformedXml(format!(
                "the request body could not be read: {why}"
            ))),
        }
    }
}

/// Whether a request is a DeleteObjects (`POST /bucket?delete`).
pub(crate) fn is_delete_objects(method: &Method, query: Option<&str>) -> bool {
    // The name decoded as s3s decodes it, so that every spelling s3s routes to
    // DeleteObjects has its digest checked.
    method == Method::POST && crate::request_values::query_param(query, "delete").is_some()
}

/// Reads `body` into memory (it stays in `body` for s3s) and checks it against the digest
/// headers.
pub(crate) async fn verify(headers: &HeaderMap, body: &mut Body) -> BodyDigest {
    let md5 = headers
        .get("content-md5")
        .map(|v| v.to_str().unwrap_or_default().trim().to_string());
    let expected: Vec<(Algorithm, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            let algo = Algorithm::from_header(name.as_str())?;
            Some((algo, value.to_str().ok()?.trim().to_string()))
        })
        .collect();
    if md5.is_none() && expected.is_empty() {
        return BodyDigest::Missing;
    }
    let bytes = match body.store_all_limited(MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return BodyDigest::Unreadable(e.to_string()),
    };
    if let Some(md5) = md5 {
        let Ok(want) = base64::engine::general_purpose::STANDARD.decode(&md5) else {
            return BodyDigest::Invalid;
        };
        if want.len() != 16 {
            return BodyDigest::Invalid;
        }
        if md5_simd::digest(&bytes).as_slice() != want.as_slice() {
            return BodyDigest::Mismatch(
                "the Content-MD5 you specified did not match what was received".into(),
            );
        }
    }
    let mut sums = BodyChecksums::new(expected, None);
    sums.update(&bytes);
    match sums.finish() {
        Ok(_) => BodyDigest::Verified,
        Err(e) => BodyDigest::Mismatch(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn digests_are_checked() {
        let body = || Body::from(bytes::Bytes::from_static(b"hello"));
        // MD5("hello") = 5d41402abc4b2a76b9719d911017c592; CRC32("hello") = NhCmhg==.
        let md5 = "XUFAKrxLKna5cZ2REBfFkg==";
        assert_eq!(
            verify(&headers(&[("content-md5", md5)]), &mut body()).await,
            BodyDigest::Verified
        );
        assert_eq!(
            verify(
                &headers(&[("x-amz-checksum-crc32", "NhCmhg==")]),
                &mut body()
            )
            .await,
            BodyDigest::Verified
        );
        assert!(matches!(
            verify(
                &headers(&[("x-amz-checksum-crc32", "AAAAAA==")]),
                &mut body()
            )
            .await,
            BodyDigest::Mismatch(_)
        ));
        assert!(matches!(
            verify(
                &headers(&[("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==")]),
                &mut body()
            )
            .await,
            BodyDigest::Mismatch(_)
        ));
        assert_eq!(
            verify(&headers(&[("content-md5", "nope")]), &mut body()).await,
            BodyDigest::Invalid
        );
        assert_eq!(
            verify(&headers(&[]), &mut body()).await,
            BodyDigest::Missing
        );
        // The body stays readable after the check.
        let mut b = body();
        verify(&headers(&[("content-md5", md5)]), &mut b).await;
        assert_eq!(b.bytes().as_deref(), Some(&b"hello"[..]));
    }

    #[test]
    fn only_delete_objects_is_recognised() {
        assert!(is_delete_objects(&Method::POST, Some("delete")));
        assert!(is_delete_objects(
            &Method::POST,
            Some("delete=&x-id=DeleteObjects")
        ));
        assert!(!is_delete_objects(&Method::POST, Some("uploads")));
        assert!(!is_delete_objects(&Method::DELETE, Some("delete")));
        assert!(!is_delete_objects(&Method::POST, None));
    }
}
