//! Request ids: every response carries `x-amz-request-id` (and `x-amz-id-2`), and an error
//! body names the same id in `<RequestId>`, as S3 does. SDKs put the id in their error reports
//! and the gateway logs it, so a user's failed request can be found in the logs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Response};
use s3s::Body;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Differs between processes (start time and pid), so gateways behind one load balancer do
/// not hand out the same ids.
fn process_salt() -> u64 {
    static SALT: OnceLock<u64> = OnceLock::new();
    *SALT.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos.rotate_left(17) ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// A new id: 12 hex digits of the process salt and 8 of a sequence number.
pub(crate) fn next() -> String {
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{:012X}{n:08X}", process_salt() & 0xFFFF_FFFF_FFFF)
}

/// Stamps `id` on `resp`: the two id headers, and `<RequestId>` in an S3 error body that has
/// none (s3s writes error bodies whole, so they are in memory and small).
pub(crate) fn stamp(resp: &mut Response<Body>, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        resp.headers_mut().insert("x-amz-request-id", value.clone());
        resp.headers_mut().insert("x-amz-id-2", value);
    }
    if resp.status().as_u16() < 300 {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return;
    };
    if let Some(with_id) = with_request_id(&body, id) {
        let len = with_id.len();
        *resp.body_mut() = Body::from(with_id);
        if let Ok(value) = HeaderValue::from_str(&len.to_string()) {
            resp.headers_mut()
                .insert(http::header::CONTENT_LENGTH, value);
        }
    }
}

/// The error XML with `<RequestId>` added before `</Error>`, or `None` if it is not an error
/// document or already names one.
fn with_request_id(body: &Bytes, id: &str) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") {
        return None;
    }
    let at = text.rfind("</Error>")?;
    Some(Bytes::from(format!(
        "{}<RequestId>{id}</RequestId>{}",
        &text[..at],
        &text[at..]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_header_safe() {
        let a = next();
        let b = next();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn error_bodies_name_the_id_once() {
        let xml =
            Bytes::from_static(b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>");
        let out = with_request_id(&xml, "ABC").unwrap();
        assert_eq!(
            &out[..],
            b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><RequestId>ABC</RequestId></Error>"
        );
        assert!(with_request_id(&out, "ABC").is_none());
        assert!(with_request_id(&Bytes::from_static(b"ok"), "ABC").is_none());
    }
}
