//! The condition-key values of a request: what the `Condition` blocks of user and bucket
//! policies test (the keys and their meaning are listed at [`crate::policy::condition::key_type`]).
//!
//! Most come from the HTTP request itself ([`from_request`]); the caller's identity once it
//! is known ([`add_caller`]); the tags a request sets ([`add_request_tags`]) and the tags of
//! the object it names ([`add_existing_tags`]), which cost a metadata read and are only
//! looked up when a policy tests them.

use std::net::IpAddr;

use cairn_proto::meta as pb;
use http::{HeaderMap, Uri};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::iam::Caller;
use crate::policy::condition::HEADER_KEYS;
use crate::policy::{action, ConditionValues};

/// The values read off the request line and headers of `operation` (s3s's operation name).
pub(crate) fn from_request(
    operation: &str,
    uri: &Uri,
    headers: &HeaderMap,
    source_ip: Option<IpAddr>,
) -> ConditionValues {
    let mut values = ConditionValues::default();
    if let Some(ip) = source_ip {
        values.set("aws:SourceIp", ip.to_string());
    }
    // The gateway serves plain HTTP; a TLS proxy in front of it is not something a header
    // from the client may claim.
    values.set("aws:SecureTransport", "false");
    let now = OffsetDateTime::now_utc();
    if let Ok(text) = now.format(&Rfc3339) {
        values.set("aws:CurrentTime", text);
    }
    values.set("aws:EpochTime", now.unix_timestamp().to_string());
    // Bytes that are not UTF-8 are replaced rather than dropping the key, so that a Deny on
    // a header cannot be escaped by one odd byte; a repeated header counts as its first.
    let lossy = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(referer) = lossy("referer") {
        values.set("aws:Referer", referer);
    }
    if let Some(agent) = lossy("user-agent") {
        values.set("aws:UserAgent", agent);
    }

    let query = uri.query();
    if action::is_listing(operation) {
        values.set(
            "s3:prefix",
            query_param(query, "prefix").unwrap_or_default(),
        );
        for (param, key) in [("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys")] {
            if let Some(v) = query_param(query, param) {
                values.set(key, v);
            }
        }
    }
    if let Some(version) = query_param(query, "versionId") {
        values.set("s3:VersionId", version);
    }
    for name in HEADER_KEYS {
        if let Some(v) = lossy(name) {
            let v = if name == "x-amz-copy-source" {
                copy_source_value(&v)
            } else {
                v
            };
            values.set(&format!("s3:{name}"), v);
        }
    }
    for (name, key) in [
        ("x-amz-object-lock-mode", "s3:object-lock-mode"),
        (
            "x-amz-object-lock-retain-until-date",
            "s3:object-lock-retain-until-date",
        ),
        ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
    ] {
        if let Some(v) = lossy(name) {
            values.set(key, v);
        }
    }
    if let Some((version, auth_type)) = signature(query, header("authorization")) {
        values.set("s3:signatureversion", version);
        values.set("s3:authType", auth_type);
    }
    if let Some(tagging) = header("x-amz-tagging") {
        // A malformed header is the handler's to refuse (InvalidArgument); here it sets no tags.
        if let Ok(tags) = crate::tagging::from_header(tagging) {
            add_request_tags(&mut values, &tags);
        }
    }
    values
}

/// Adds `aws:username`, `aws:userid` (the access key) and `aws:PrincipalType`.
pub(crate) fn add_caller(values: &mut ConditionValues, caller: &Caller) {
    match caller {
        Caller::Anonymous => values.set("aws:PrincipalType", "Anonymous"),
        Caller::Root => values.set("aws:PrincipalType", "Account"),
        Caller::User(key, _) => {
            values.set("aws:PrincipalType", "User");
            values.set("aws:username", key.as_str());
            values.set("aws:userid", key.as_str());
        }
    }
}

/// Adds `s3:RequestObjectTag/<key>` for each tag a request sets, and `s3:RequestObjectTagKeys`.
pub(crate) fn add_request_tags(values: &mut ConditionValues, tags: &[pb::ObjectTag]) {
    for tag in tags {
        values.set(
            &format!("s3:RequestObjectTag/{}", tag.key),
            tag.value.as_str(),
        );
        values.push("s3:RequestObjectTagKeys", tag.key.as_str());
    }
}

/// Adds `s3:ExistingObjectTag/<key>` for each tag of the object as stored.
pub(crate) fn add_existing_tags(values: &mut ConditionValues, tags: &[pb::ObjectTag]) {
    for tag in tags {
        values.set(
            &format!("s3:ExistingObjectTag/{}", tag.key),
            tag.value.as_str(),
        );
    }
}

/// `s3:x-amz-copy-source` as AWS documents it: `bucket/key`, decoded, without a leading `/`
/// or a `?versionId=`.
fn copy_source_value(header: &str) -> String {
    let path = header.split_once("?versionId=").map_or(header, |(p, _)| p);
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    decoded.trim_start_matches('/').to_string()
}

/// `s3:signatureversion` and `s3:authType`; `None` for an unsigned request.
fn signature(
    query: Option<&str>,
    authorization: Option<&str>,
) -> Option<(&'static str, &'static str)> {
    if let Some(auth) = authorization {
        let version = if auth.starts_with("AWS4-HMAC-SHA256") {
            "AWS4-HMAC-SHA256"
        } else {
            "AWS"
        };
        return Some((version, "REST-HEADER"));
    }
    if query_param(query, "X-Amz-Algorithm").is_some() {
        return Some(("AWS4-HMAC-SHA256", "REST-QUERY-STRING"));
    }
    if query_param(query, "Signature").is_some() {
        return Some(("AWS", "REST-QUERY-STRING"));
    }
    // A browser-form upload (POST) signs its policy in the body, which is not read yet:
    // such a request carries neither key.
    None
}

/// The query parameter `name`, decoded; `None` when absent, `""` when it has no value.
///
/// Names are decoded too (`pre%66ix` is `prefix`), as s3s decodes them: a condition must see
/// the parameter the operation will act on, whatever its spelling.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(uri: &str, headers: &[(&str, &str)], op: &str) -> ConditionValues {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let uri: Uri = uri.parse().expect("uri");
        from_request(op, &uri, &map, Some("127.0.0.1".parse().expect("ip")))
    }

    fn one<'a>(v: &'a ConditionValues, key: &str) -> Option<&'a str> {
        v.get(key).and_then(|v| v.first()).map(String::as_str)
    }

    #[test]
    fn listings_carry_their_parameters_and_others_do_not() {
        let v = values(
            "/b?list-type=2&prefix=a%2Fb+c&delimiter=%2F&max-keys=5",
            &[],
            "ListObjectsV2",
        );
        assert_eq!(one(&v, "s3:prefix"), Some("a/b c"));
        assert_eq!(one(&v, "s3:delimiter"), Some("/"));
        assert_eq!(one(&v, "s3:max-keys"), Some("5"));
        let v = values(
            "/b?pre%66ix=home%2Fbob%2F&max%2Dkeys=5000",
            &[],
            "ListObjects",
        );
        assert_eq!(
            one(&v, "s3:prefix"),
            Some("home/bob/"),
            "encoded names count"
        );
        assert_eq!(one(&v, "s3:max-keys"), Some("5000"));
        let v = values("/b", &[], "ListObjects");
        assert_eq!(one(&v, "s3:prefix"), Some(""), "empty when absent");
        assert_eq!(v.get("s3:delimiter"), None);
        let v = values("/b/k?prefix=x&versionId=7", &[], "GetObject");
        assert_eq!(v.get("s3:prefix"), None);
        assert_eq!(one(&v, "s3:versionid"), Some("7"));
        assert_eq!(one(&v, "aws:sourceip"), Some("127.0.0.1"));
        assert_eq!(one(&v, "aws:securetransport"), Some("false"));
        assert!(one(&v, "aws:currenttime").is_some_and(|t| t.ends_with('Z')));
        assert_eq!(v.get("s3:signatureversion"), None, "unsigned");
    }

    #[test]
    fn headers_tags_and_signatures() {
        let v = values(
            "/b/k",
            &[
                ("authorization", "AWS4-HMAC-SHA256 Credential=x/..."),
                ("x-amz-copy-source", "/src/public%2Ffoo?versionId=3"),
                ("x-amz-tagging", "security=public&Team=a%20b"),
                ("x-amz-server-side-encryption", "AES256"),
                ("referer", "http://example.com/"),
                ("x-amz-object-lock-mode", "GOVERNANCE"),
            ],
            "CopyObject",
        );
        assert_eq!(one(&v, "s3:x-amz-copy-source"), Some("src/public/foo"));
        assert_eq!(one(&v, "s3:x-amz-server-side-encryption"), Some("AES256"));
        assert_eq!(one(&v, "s3:requestobjecttag/security"), Some("public"));
        assert_eq!(one(&v, "s3:requestobjecttag/Team"), Some("a b"));
        assert_eq!(
            v.get("s3:requestobjecttagkeys"),
            Some(&["security".to_string(), "Team".to_string()][..])
        );
        assert_eq!(one(&v, "aws:referer"), Some("http://example.com/"));
        assert_eq!(one(&v, "s3:object-lock-mode"), Some("GOVERNANCE"));
        assert_eq!(one(&v, "s3:signatureversion"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(one(&v, "s3:authtype"), Some("REST-HEADER"));
        let presigned = values(
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00",
            &[],
            "GetObject",
        );
        assert_eq!(one(&presigned, "s3:authtype"), Some("REST-QUERY-STRING"));
        let v2 = values("/b/k", &[("authorization", "AWS key:sig")], "GetObject");
        assert_eq!(one(&v2, "s3:signatureversion"), Some("AWS"));
    }

    #[test]
    fn callers() {
        let mut v = ConditionValues::default();
        add_caller(&mut v, &Caller::Anonymous);
        assert_eq!(one(&v, "aws:principaltype"), Some("Anonymous"));
        assert_eq!(v.get("aws:username"), None);
        add_caller(&mut v, &Caller::Root);
        assert_eq!(one(&v, "aws:principaltype"), Some("Account"));
    }
}
