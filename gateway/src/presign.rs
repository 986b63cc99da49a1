//! Limits on presigned URLs that s3s does not enforce: `X-Amz-Expires` must be a whole number
//! of seconds from 0 to 604,800 (seven days), as AWS and MinIO require. Without this check a
//! URL signed for a year would be honoured for a year.

use http::{header, HeaderValue, Response, StatusCode};
use s3s::Body;

/// The longest validity AWS accepts for a presigned URL, in seconds.
pub(crate) const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;

/// Why a presigned URL's `X-Amz-Expires` is refused, or `None` when it is acceptable (or
/// absent: the request is not a presigned SigV4 one).
pub(crate) fn expires_problem(query: Option<&str>) -> Option<&'static str> {
    // Decoded as s3s decodes the query (names too), so `X-Amz-%45xpires` is no way around.
    let raw = crate::request_values::query_param(query, "X-Amz-Expires")?;
    match raw.parse::<i64>() {
        Err(_) => Some("X-Amz-Expires should be a number"),
        Ok(n) if n < 0 => Some("X-Amz-Expires must be non-negative"),
        Ok(n) if n > MAX_EXPIRES_SECS => {
            Some("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        }
        Ok(_) => None,
    }
}

/// The S3 error response for a refused presigned URL: 400 `AuthorizationQueryParametersError`.
pub(crate) fn refusal(message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Error><Code>AuthorizationQueryParametersError</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Body::from(xml));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_rules() {
        assert_eq!(expires_problem(None), None);
        assert_eq!(expires_problem(Some("versioning")), None);
        assert_eq!(expires_problem(Some("X-Amz-Expires=0&a=b")), None);
        assert_eq!(expires_problem(Some("a=b&X-Amz-Expires=604800")), None);
        assert!(expires_problem(Some("X-Amz-Expires=604801")).is_some());
        assert!(expires_problem(Some("X-Amz-Expires=-7")).is_some());
        assert!(expires_problem(Some("X-Amz-Expires=soon")).is_some());
        assert!(expires_problem(Some("X-Amz-%45xpires=604801")).is_some());
    }
}
