//! A small AWS Signature Version 4 signer for header-authenticated requests.
//!
//! Why our own: the bench signs tens of thousands of requests a second and needs only the
//! header form with a given payload hash (`UNSIGNED-PAYLOAD` for bodies), so a few HMACs over
//! strings we build anyway beat a general signing pipeline. It is checked against AWS's
//! published examples (see the tests).

use std::sync::Mutex;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The payload hash sent when the body is not hashed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string, the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Signs requests for one access key, region and service.
pub struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    service: String,
    /// The signing key of the last date used: it changes once a day.
    key_cache: Mutex<Option<(String, [u8; 32])>>,
}

impl Signer {
    /// A signer for `service` (`s3`) in `region`.
    pub fn new(access_key: &str, secret_key: &str, region: &str, service: &str) -> Self {
        Self {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            key_cache: Mutex::new(None),
        }
    }

    /// The `Authorization` header value for a request.
    ///
    /// `path` is the URI path exactly as sent (already percent-encoded, see [`encode_path`]);
    /// `query` the canonical query string (see [`canonical_query`]); `headers` the headers to
    /// sign as `(lower-case name, value)`, which must include `host` and `x-amz-date`;
    /// `amz_date` the `x-amz-date` value (`YYYYMMDDTHHMMSSZ`).
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> String {
        let mut sorted: Vec<(&str, String)> = headers
            .iter()
            .map(|(name, value)| (*name, canonical_header_value(value)))
            .collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let signed_headers = sorted
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");
        let mut canonical = String::with_capacity(256);
        for part in [method, "\n", path, "\n", query, "\n"] {
            canonical.push_str(part);
        }
        for (name, value) in &sorted {
            canonical.push_str(name);
            canonical.push(':');
            canonical.push_str(value);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(&signed_headers);
        canonical.push('\n');
        canonical.push_str(payload_hash);

        let date = amz_date.get(..8).unwrap_or(amz_date);
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(date);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.access_key
        )
    }

    fn signing_key(&self, date: &str) -> [u8; 32] {
        let mut cache = self
            .key_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((d, key)) = cache.as_ref() {
            if d == date {
                return *key;
            }
        }
        let k_secret = format!("AWS4{}", self.secret_key);
        let k_date = hmac(k_secret.as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        *cache = Some((date.to_string(), key));
        key
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A header value in canonical form: trimmed, inner runs of spaces folded to one.
fn canonical_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Percent-encodes `s` the SigV4 way: everything but `A-Z a-z 0-9 - _ . ~` (and `/` when
/// `keep_slash`) as `%XX` of its UTF-8 bytes, upper-case hex.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// The request path of `/bucket/key` (path-style), encoded for both the URI and the
/// canonical request (S3 does not normalise paths, so they are the same string).
pub fn encode_path(bucket: &str, key: Option<&str>) -> String {
    match key {
        None => format!("/{}", uri_encode(bucket, false)),
        Some(key) => format!("/{}/{}", uri_encode(bucket, false), uri_encode(key, true)),
    }
}

/// The canonical query string of `pairs`: names and values encoded, sorted by name then
/// value, `name=value` joined with `&` (a flag such as `uploads` becomes `uploads=`). The same
/// string is sent on the wire.
pub fn canonical_query(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `x-amz-date` for now: `YYYYMMDDTHHMMSSZ` in UTC.
pub fn amz_date_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const S3_DATE: &str = "20130524T000000Z";
    const S3_HOST: &str = "examplebucket.s3.amazonaws.com";

    fn signature(auth: &str) -> &str {
        auth.rsplit("Signature=").next().unwrap()
    }

    /// The four examples of AWS's "Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk" (S3 API reference).
    #[test]
    fn s3_documentation_examples() {
        let signer = Signer::new(S3_KEY, S3_SECRET, "us-east-1", "s3");
        // GET Object with a Range.
        let auth = signer.authorization(
            "GET",
            "/test.txt",
            "",
            &[
                ("host", S3_HOST),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", S3_DATE),
            ],
            EMPTY_SHA256,
            S3_DATE,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );

        // PUT Object: a `$` in the key, a Date header, headers given unsorted.
        let body_hash = hex::encode(Sha256::digest(b"Welcome to Amazon S3."));
        assert_eq!(
            body_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let auth = signer.authorization(
            "PUT",
            &encode_path("examplebucket", Some("test$file.text"))["/examplebucket".len()..],
            "",
            &[
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ("host", S3_HOST),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", S3_DATE),
                ("x-amz-content-sha256", &body_hash),
            ],
            &body_hash,
            S3_DATE,
        );
        assert!(auth.contains(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        ));
        assert_eq!(
            signature(&auth),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );

        let base = [
            ("host", S3_HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", S3_DATE),
        ];
        // GET Bucket Lifecycle: a flag parameter becomes `lifecycle=`.
        let query = canonical_query(&[("lifecycle", "")]);
        assert_eq!(query, "lifecycle=");
        let auth = signer.authorization("GET", "/", &query, &base, EMPTY_SHA256, S3_DATE);
        assert_eq!(
            signature(&auth),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );

        // GET Bucket (list objects): parameters sorted by name.
        let query = canonical_query(&[("prefix", "J"), ("max-keys", "2")]);
        assert_eq!(query, "max-keys=2&prefix=J");
        let auth = signer.authorization("GET", "/", &query, &base, EMPTY_SHA256, S3_DATE);
        assert_eq!(
            signature(&auth),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    /// `get-vanilla` and `get-vanilla-query-order-key-case` of AWS's SigV4 test suite.
    #[test]
    fn sigv4_test_suite() {
        let signer = Signer::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "service",
        );
        let date = "20150830T123600Z";
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", date)];
        let auth = signer.authorization("GET", "/", "", &headers, EMPTY_SHA256, date);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let query = canonical_query(&[("Param2", "value2"), ("Param1", "value1")]);
        assert_eq!(query, "Param1=value1&Param2=value2");
        let auth = signer.authorization("GET", "/", &query, &headers, EMPTY_SHA256, date);
        assert_eq!(
            signature(&auth),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        // The cached signing key gives the same answer on the next call.
        let again = signer.authorization("GET", "/", "", &headers, EMPTY_SHA256, date);
        assert!(again.ends_with("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
    }

    #[test]
    fn encoding() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a b/c", false), "a%20b%2Fc");
        assert_eq!(uri_encode("é+=&", false), "%C3%A9%2B%3D%26");
        assert_eq!(encode_path("b", None), "/b");
        assert_eq!(encode_path("b", Some("x/y z")), "/b/x/y%20z");
        assert_eq!(canonical_header_value("  a   b  c "), "a b c");
        let date = amz_date_now();
        assert_eq!(date.len(), 16);
        assert_eq!(&date[8..9], "T");
        assert!(date.ends_with('Z'));
    }
}
