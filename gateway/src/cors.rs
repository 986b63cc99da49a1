//! CORS: the rules of PutBucketCors (checked, then stored in the bucket record), OPTIONS
//! preflight requests, and the `Access-Control-*` headers of ordinary requests that carry an
//! `Origin`.
//!
//! s3s does not route `OPTIONS`, and a browser's preflight is never signed, so the listener
//! ([`crate::server`]) answers preflights itself, before s3s, from the bucket's stored rules.

use cairn_proto::meta as pb;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use s3s::dto::{CORSConfiguration, CORSRule, CORSRules};
use s3s::Body;

use crate::error::{ApiError, ApiResult};
use crate::Gateway;

/// Most rules a CORS configuration may have.
pub(crate) const MAX_RULES: usize = 100;
/// The methods a rule may allow.
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// Checks a PutBucketCors body and turns it into the stored form: 1 to 100 rules, each with
/// at least one origin and one method, methods among GET/PUT/POST/DELETE/HEAD, at most one
/// `*` in each origin and allowed header.
pub(crate) fn from_s3(config: CORSConfiguration) -> ApiResult<pb::CorsConfiguration> {
    let rules = config.cors_rules;
    if rules.is_empty() {
        return Err(ApiError::MalformedXml(
            "a CORS configuration needs at least one CORSRule".into(),
        ));
    }
    if rules.len() > MAX_RULES {
        return Err(ApiError::InvalidRequest(format!(
            "The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules."
        )));
    }
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(ApiError::MalformedXml(
                "a CORSRule needs at least one AllowedOrigin and one AllowedMethod".into(),
            ));
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(ApiError::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
            )));
        }
        if let Some(o) = rule.allowed_origins.iter().find(|o| wildcards(o) > 1) {
            return Err(ApiError::InvalidRequest(format!(
                "AllowedOrigin \"{o}\" can not have more than one wildcard."
            )));
        }
        let allowed_headers = rule.allowed_headers.unwrap_or_default();
        if let Some(h) = allowed_headers.iter().find(|h| wildcards(h) > 1) {
            return Err(ApiError::InvalidRequest(format!(
                "AllowedHeader \"{h}\" can not have more than one wildcard."
            )));
        }
        if rule.max_age_seconds.is_some_and(|s| s < 0) {
            return Err(ApiError::MalformedXml(
                "MaxAgeSeconds must not be negative".into(),
            ));
        }
        out.push(pb::CorsRule {
            id: rule.id.unwrap_or_default(),
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers,
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        });
    }
    Ok(pb::CorsConfiguration { rules: out })
}

fn wildcards(pattern: &str) -> usize {
    pattern.matches('*').count()
}

/// The stored rules as GetBucketCors answers them.
pub(crate) fn to_s3(config: &pb::CorsConfiguration) -> CORSRules {
    config
        .rules
        .iter()
        .map(|r| CORSRule {
            id: (!r.id.is_empty()).then(|| r.id.clone()),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_seconds,
        })
        .collect()
}

/// Replaces the bucket's CORS configuration.
pub(crate) async fn put(gw: &Gateway, bucket: &str, config: CORSConfiguration) -> ApiResult<()> {
    let config = from_s3(config)?;
    gw.meta
        .set_bucket_config(bucket, None, Some(config))
        .await?;
    Ok(())
}

/// The bucket's CORS rules; `NoSuchCORSConfiguration` when it has none.
pub(crate) async fn get(gw: &Gateway, bucket: &str) -> ApiResult<CORSRules> {
    let record = gw.meta.get_bucket(bucket).await?;
    match record.cors {
        Some(config) if !config.rules.is_empty() => Ok(to_s3(&config)),
        _ => Err(ApiError::NoSuchCorsConfiguration),
    }
}

/// Removes the bucket's CORS configuration (no error when it has none, as in S3).
pub(crate) async fn delete(gw: &Gateway, bucket: &str) -> ApiResult<()> {
    gw.meta
        .set_bucket_config(bucket, None, Some(pb::CorsConfiguration::default()))
        .await?;
    Ok(())
}

/// Whether `value` matches `pattern`, which holds at most one `*` (any run of characters).
fn matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

/// The first rule that allows `origin` to use `method` with every one of `headers`
/// (lowercase request header names), and the origin pattern that matched.
fn find_rule<'a>(
    config: &'a pb::CorsConfiguration,
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<(&'a pb::CorsRule, &'a str)> {
    config.rules.iter().find_map(|rule| {
        let pattern = rule.allowed_origins.iter().find(|p| matches(p, origin))?;
        if !rule.allowed_methods.iter().any(|m| m == method) {
            return None;
        }
        let allowed = headers.iter().all(|h| {
            rule.allowed_headers
                .iter()
                .any(|p| matches(&p.to_ascii_lowercase(), h))
        });
        allowed.then_some((rule, pattern.as_str()))
    })
}

/// The bucket a path-style request names (its first path segment), if any.
pub(crate) fn bucket_of(uri: &Uri) -> Option<&str> {
    let bucket = uri.path().trim_start_matches('/').split('/').next()?;
    (!bucket.is_empty()).then_some(bucket)
}

/// What a preflight asks: its origin, the method of the request to come and its headers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Preflight {
    origin: String,
    method: String,
    headers: Vec<String>,
}

impl Preflight {
    /// Reads a preflight's `Origin`, `Access-Control-Request-Method` and
    /// `Access-Control-Request-Headers`; `None` when either of the first two is missing.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let text = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let origin = text(header::ORIGIN)?;
        let method = text(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let headers = text(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .map(|list| {
                list.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            origin,
            method,
            headers,
        })
    }
}

/// The answer to a preflight against a bucket's rules (`None`: no configuration): 200 with
/// the `Access-Control-*` headers of the first matching rule, else 403.
pub(crate) fn answer_preflight(
    config: Option<&pb::CorsConfiguration>,
    preflight: &Preflight,
) -> http::Response<Body> {
    let found =
        config.and_then(|c| find_rule(c, &preflight.origin, &preflight.method, &preflight.headers));
    let Some((rule, pattern)) = found else {
        return forbidden();
    };
    let mut resp = http::Response::new(Body::empty());
    let headers = resp.headers_mut();
    allow_headers(headers, rule, pattern, &preflight.origin);
    if !preflight.headers.is_empty() {
        put_header(
            headers,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            &preflight.headers.join(", "),
        );
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    resp
}

/// The `Access-Control-*` headers a matched rule grants (shared by preflights and ordinary
/// requests).
fn allow_headers(headers: &mut HeaderMap, rule: &pb::CorsRule, pattern: &str, origin: &str) {
    if pattern == "*" {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        put_header(headers, header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    put_header(
        headers,
        header::ACCESS_CONTROL_ALLOW_METHODS,
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        put_header(
            headers,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(secs) = rule.max_age_seconds {
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(secs));
    }
}

/// Inserts a header whose value came from the client or the stored rules; a value that is
/// not a valid header value is left out.
fn put_header(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// An S3 error document with `status`.
fn error_response(status: StatusCode, code: &str, message: &str) -> http::Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

/// S3's refusal of a preflight no rule allows.
fn forbidden() -> http::Response<Body> {
    error_response(
        StatusCode::FORBIDDEN,
        "AccessForbidden",
        "CORSResponse: This CORS request is not allowed. This is usually because the \
         evalution of Origin, request method / Access-Control-Request-Method or \
         Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
    )
}

/// Answers an `OPTIONS` request (a CORS preflight) on a bucket or object path.
pub(crate) async fn preflight(
    gw: &Gateway,
    uri: &Uri,
    headers: &HeaderMap,
) -> http::Response<Body> {
    let Some(preflight) = Preflight::from_headers(headers) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header and \
             Access-Control-Request-Method are needed.",
        );
    };
    let Some(bucket) = bucket_of(uri) else {
        return forbidden();
    };
    match gw.meta.get_bucket(bucket).await {
        Ok(record) => answer_preflight(record.cors.as_ref(), &preflight),
        Err(ApiError::NoSuchBucket) => error_response(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        ),
        Err(e) => {
            tracing::warn!(error = %e, bucket, "CORS preflight: bucket lookup failed");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The metadata service is unavailable; retry the request.",
            )
        }
    }
}

/// Adds the `Access-Control-*` headers of the bucket's first rule that allows `origin` and
/// `method` to the response of an ordinary request, and `Vary: Origin` whenever the bucket
/// has CORS rules. A request whose bucket cannot be read gets no CORS headers.
pub(crate) async fn decorate(
    gw: &Gateway,
    bucket: &str,
    origin: &str,
    method: &Method,
    headers: &mut HeaderMap,
) {
    let Ok(record) = gw.meta.get_bucket(bucket).await else {
        return;
    };
    if let Some(config) = record.cors.as_ref() {
        decorate_with(config, origin, method, headers);
    }
}

/// [`decorate`] once the rules are known.
fn decorate_with(
    config: &pb::CorsConfiguration,
    origin: &str,
    method: &Method,
    headers: &mut HeaderMap,
) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some((rule, pattern)) = find_rule(config, origin, method.as_str(), &[]) {
        allow_headers(headers, rule, pattern, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CORSRule {
        CORSRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: Some(headers.iter().map(|s| s.to_string()).collect()),
            expose_headers: Some(vec!["ETag".into()]),
            id: None,
            max_age_seconds: Some(600),
        }
    }

    fn config(rules: Vec<CORSRule>) -> ApiResult<pb::CorsConfiguration> {
        from_s3(CORSConfiguration { cors_rules: rules })
    }

    #[test]
    fn validation() {
        assert!(config(vec![rule(
            &["*"],
            &["GET", "PUT", "POST", "DELETE", "HEAD"],
            &[]
        )])
        .is_ok());
        assert!(matches!(config(vec![]), Err(ApiError::MalformedXml(_))));
        assert!(matches!(
            config(vec![rule(&["*"], &["PATCH"], &[])]),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            config(vec![rule(&["http://*.*.com"], &["GET"], &[])]),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            config(vec![rule(&["*"], &["GET"], &["x-*-*"])]),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            config(vec![rule(&[], &["GET"], &[])]),
            Err(ApiError::MalformedXml(_))
        ));
        let hundred = (0..100).map(|_| rule(&["*"], &["GET"], &[])).collect();
        assert!(config(hundred).is_ok());
        let too_many = (0..101).map(|_| rule(&["*"], &["GET"], &[])).collect();
        assert!(matches!(config(too_many), Err(ApiError::InvalidRequest(_))));
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("*", "http://a.example"));
        assert!(matches("http://*.example.com", "http://www.example.com"));
        assert!(!matches("http://*.example.com", "https://www.example.com"));
        assert!(!matches("http://*.example.com", "http://example.org"));
        assert!(matches("http://a.com", "http://a.com"));
        assert!(!matches("http://a.com", "http://a.co"));
        // Prefix and suffix must not overlap.
        assert!(!matches("ab*ba", "aba"));
    }

    #[test]
    fn first_matching_rule_answers_preflights() -> ApiResult<()> {
        let cfg = config(vec![
            rule(
                &["http://www.example.com"],
                &["PUT"],
                &["x-amz-*", "Content-Type"],
            ),
            rule(&["*"], &["GET"], &[]),
        ])?;
        let ask = |origin: &str, method: &str, headers: &[&str]| Preflight {
            origin: origin.into(),
            method: method.into(),
            headers: headers.iter().map(|s| s.to_string()).collect(),
        };
        let ok = answer_preflight(
            Some(&cfg),
            &ask(
                "http://www.example.com",
                "PUT",
                &["x-amz-date", "content-type"],
            ),
        );
        assert_eq!(ok.status(), StatusCode::OK);
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], "http://www.example.com");
        assert_eq!(h["access-control-allow-methods"], "PUT");
        assert_eq!(
            h["access-control-allow-headers"],
            "x-amz-date, content-type"
        );
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-expose-headers"], "ETag");

        let any = answer_preflight(Some(&cfg), &ask("http://other", "GET", &[]));
        assert_eq!(any.status(), StatusCode::OK);
        assert_eq!(any.headers()["access-control-allow-origin"], "*");

        for refused in [
            ask("http://other", "PUT", &[]),
            ask("http://www.example.com", "DELETE", &[]),
            ask("http://www.example.com", "PUT", &["x-other"]),
            ask("http://other", "GET", &["x-amz-date"]),
        ] {
            let resp = answer_preflight(Some(&cfg), &refused);
            assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{refused:?}");
        }
        let none = answer_preflight(None, &ask("http://other", "GET", &[]));
        assert_eq!(none.status(), StatusCode::FORBIDDEN);
        Ok(())
    }

    #[test]
    fn ordinary_requests_get_headers_of_a_matching_rule() -> ApiResult<()> {
        let cfg = config(vec![rule(&["http://a.example"], &["GET"], &[])])?;
        let mut h = HeaderMap::new();
        decorate_with(&cfg, "http://a.example", &Method::GET, &mut h);
        assert_eq!(h["access-control-allow-origin"], "http://a.example");
        assert_eq!(h["vary"], "Origin");
        let mut h = HeaderMap::new();
        decorate_with(&cfg, "http://b.example", &Method::GET, &mut h);
        assert!(!h.contains_key("access-control-allow-origin"));
        assert_eq!(h["vary"], "Origin");
        Ok(())
    }

    #[test]
    fn bucket_from_path() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert_eq!(bucket_of(&uri("/b/k/x")), Some("b"));
        assert_eq!(bucket_of(&uri("/b")), Some("b"));
        assert_eq!(bucket_of(&uri("/b?cors")), Some("b"));
        assert_eq!(bucket_of(&uri("/")), None);
    }
}
