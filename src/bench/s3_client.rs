//! A lean S3 client for load generation: hyper's pooled HTTP/1 client, our SigV4 signer,
//! path-style requests, `UNSIGNED-PAYLOAD` bodies. Only the calls the workloads make.
//!
//! Every failure becomes an [`OpError`] with an S3 error code (from the XML error body) or a
//! client-side code (`ConnectError`, `ClientTimeout`, ...), so the caller can count it.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::sigv4::{self, Signer, EMPTY_SHA256, UNSIGNED_PAYLOAD};

/// A failed request: what S3 (or the client) called the failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// The S3 error code (`NoSuchKey`, `SignatureDoesNotMatch`, ...) or a client-side code:
    /// `ConnectError`, `HttpError`, `BodyError`, `ClientTimeout`, `BadResponse`, or
    /// `HTTP <status>` for an error reply without an S3 error body.
    pub code: String,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
}

impl OpError {
    fn client(code: &str) -> Self {
        Self {
            code: code.to_string(),
            status: None,
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.code),
            None => f.write_str(&self.code),
        }
    }
}

/// A successful reply and how long it took.
#[derive(Debug)]
pub struct Reply {
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, when the caller asked to keep it.
    pub body: Bytes,
    /// Body bytes received (also when not kept).
    pub body_len: u64,
    /// From sending the request to the first body byte (to the headers if the body is empty).
    pub ttfb: Duration,
    /// From sending the request to the end of the body.
    pub latency: Duration,
}

/// One page of ListObjectsV2.
#[derive(Debug, Default)]
pub struct ListPage {
    /// The keys of the page, in order.
    pub keys: Vec<String>,
    /// Token for the next page; `None` when this was the last.
    pub next_token: Option<String>,
}

/// An S3 endpoint with credentials.
pub struct S3Client {
    http: Client<HttpConnector, Full<Bytes>>,
    /// `http://host:port`
    base: String,
    /// `host:port`, signed as the `host` header.
    host: String,
    signer: Signer,
    timeout: Duration,
}

impl S3Client {
    /// A client for `endpoint` (`http://HOST:PORT`) keeping up to `connections` idle
    /// connections, with `timeout` per request.
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        connections: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("endpoint `{endpoint}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                anyhow::bail!("endpoint `{endpoint}`: only http:// is supported (not {other}://)")
            }
            None => anyhow::bail!("endpoint `{endpoint}` needs http://"),
        }
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| anyhow::anyhow!("endpoint `{endpoint}` has no host"))?;
        if !matches!(uri.path(), "" | "/") {
            anyhow::bail!("endpoint `{endpoint}` must not have a path");
        }
        let mut connector = HttpConnector::new();
        // Small requests would otherwise wait for Nagle's delayed ACK.
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(connections.max(1))
            .build(connector);
        Ok(Self {
            http,
            base: format!("http://{host}"),
            host,
            signer: Signer::new(access_key, secret_key, region, "s3"),
            timeout,
        })
    }

    /// Sends one signed request; a non-2xx reply is an `OpError` with its S3 code. With
    /// `keep_body` false, the body is counted and dropped.
    pub async fn send(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        body: Bytes,
        keep_body: bool,
    ) -> Result<Reply, OpError> {
        match tokio::time::timeout(
            self.timeout,
            self.send_inner(method, bucket, key, query, body, keep_body),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(OpError::client("ClientTimeout")),
        }
    }

    async fn send_inner(
        &self,
        method: Method,
        bucket: &str,
        key: Option<&str>,
        query: &[(&str, &str)],
        body: Bytes,
        keep_body: bool,
    ) -> Result<Reply, OpError> {
        let path = sigv4::encode_path(bucket, key);
        let query = sigv4::canonical_query(query);
        let payload_hash = if body.is_empty() {
            EMPTY_SHA256
        } else {
            UNSIGNED_PAYLOAD
        };
        let date = sigv4::amz_date_now();
        let auth = self.signer.authorization(
            method.as_str(),
            &path,
            &query,
            &[
                ("host", &self.host),
                ("x-amz-content-sha256", payload_hash),
                ("x-amz-date", &date),
            ],
            payload_hash,
            &date,
        );
        let uri = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::HOST, &self.host)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", &date)
            .header(http::header::AUTHORIZATION, auth)
            .body(Full::new(body))
            .map_err(|_| OpError::client("BadRequest"))?;

        let start = Instant::now();
        let response = self.http.request(request).await.map_err(|e| {
            OpError::client(if e.is_connect() {
                "ConnectError"
            } else {
                "HttpError"
            })
        })?;
        let status = response.status();
        let (parts, mut incoming) = response.into_parts();
        let mut ttfb = None;
        let mut body_len = 0u64;
        let keep = keep_body || !status.is_success();
        let mut kept: Vec<Bytes> = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|_| OpError {
                code: "BodyError".into(),
                status: Some(status.as_u16()),
            })?;
            if let Ok(data) = frame.into_data() {
                if ttfb.is_none() && !data.is_empty() {
                    ttfb = Some(start.elapsed());
                }
                body_len += data.len() as u64;
                if keep {
                    kept.push(data);
                }
            }
        }
        let latency = start.elapsed();
        let body = join(kept);
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        Ok(Reply {
            headers: parts.headers,
            body,
            body_len,
            ttfb: ttfb.unwrap_or(latency),
            latency,
        })
    }

    /// CreateBucket. `Ok(false)` when the bucket already exists and is ours.
    pub async fn create_bucket(&self, bucket: &str) -> Result<bool, OpError> {
        match self
            .send(Method::PUT, bucket, None, &[], Bytes::new(), false)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code == "BucketAlreadyOwnedByYou" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// DeleteBucket.
    pub async fn delete_bucket(&self, bucket: &str) -> Result<Reply, OpError> {
        self.send(Method::DELETE, bucket, None, &[], Bytes::new(), false)
            .await
    }

    /// PutObject with `body`.
    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes) -> Result<Reply, OpError> {
        self.send(Method::PUT, bucket, Some(key), &[], body, false)
            .await
    }

    /// GetObject; the body is counted, not kept.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Reply, OpError> {
        self.send(Method::GET, bucket, Some(key), &[], Bytes::new(), false)
            .await
    }

    /// DeleteObject.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<Reply, OpError> {
        self.send(Method::DELETE, bucket, Some(key), &[], Bytes::new(), false)
            .await
    }

    /// One ListObjectsV2 page of `prefix`, continuing from `token`.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
        max_keys: u32,
    ) -> Result<(ListPage, Reply), OpError> {
        let max_keys = max_keys.to_string();
        let mut query = vec![
            ("list-type", "2"),
            ("prefix", prefix),
            ("max-keys", max_keys.as_str()),
        ];
        if let Some(token) = token {
            query.push(("continuation-token", token));
        }
        let reply = self
            .send(Method::GET, bucket, None, &query, Bytes::new(), true)
            .await?;
        let page = parse_list(&reply.body)?;
        Ok((page, reply))
    }

    /// CreateMultipartUpload; returns the upload id.
    pub async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String, OpError> {
        let reply = self
            .send(
                Method::POST,
                bucket,
                Some(key),
                &[("uploads", "")],
                Bytes::new(),
                true,
            )
            .await?;
        xml_text(&reply.body, "UploadId")
            .map(unescape_xml)
            .ok_or_else(|| OpError::client("BadResponse"))
    }

    /// UploadPart; returns the part's ETag.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<String, OpError> {
        let number = part_number.to_string();
        let reply = self
            .send(
                Method::PUT,
                bucket,
                Some(key),
                &[("partNumber", &number), ("uploadId", upload_id)],
                body,
                false,
            )
            .await?;
        reply
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| OpError::client("BadResponse"))
    }

    /// CompleteMultipartUpload of `etags` (part 1 first).
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<Reply, OpError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                escape_xml(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let reply = self
            .send(
                Method::POST,
                bucket,
                Some(key),
                &[("uploadId", upload_id)],
                Bytes::from(xml),
                true,
            )
            .await?;
        // S3 may answer 200 and still fail the completion in the body.
        if let Some(code) = xml_text(&reply.body, "Code") {
            if reply.body.windows(7).any(|w| w == b"<Error>") {
                return Err(OpError {
                    code: unescape_xml(code),
                    status: Some(200),
                });
            }
        }
        Ok(reply)
    }

    /// AbortMultipartUpload.
    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Reply, OpError> {
        self.send(
            Method::DELETE,
            bucket,
            Some(key),
            &[("uploadId", upload_id)],
            Bytes::new(),
            false,
        )
        .await
    }
}

fn join(parts: Vec<Bytes>) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => {
            let mut out = Vec::with_capacity(parts.iter().map(Bytes::len).sum());
            for p in parts {
                out.extend_from_slice(&p);
            }
            Bytes::from(out)
        }
    }
}

/// The error of a non-2xx reply: its S3 `<Code>`, else `HTTP <status>`.
fn error_of(status: StatusCode, body: &[u8]) -> OpError {
    let code = xml_text(body, "Code")
        .map(unescape_xml)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    OpError {
        code,
        status: Some(status.as_u16()),
    }
}

/// The text of the first `<tag>...</tag>` in `xml` (still escaped).
fn xml_text<'a>(xml: &'a [u8], tag: &str) -> Option<&'a str> {
    let xml = std::str::from_utf8(xml).ok()?;
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

/// Parses a ListObjectsV2 reply: the `<Key>` of every `<Contents>` and the continuation.
fn parse_list(body: &[u8]) -> Result<ListPage, OpError> {
    let xml = std::str::from_utf8(body).map_err(|_| OpError::client("BadResponse"))?;
    let mut page = ListPage::default();
    let mut rest = xml;
    while let Some(at) = rest.find("<Contents>") {
        rest = &rest[at + "<Contents>".len()..];
        let end = rest
            .find("</Contents>")
            .ok_or_else(|| OpError::client("BadResponse"))?;
        let entry = &rest[..end];
        let key =
            xml_text(entry.as_bytes(), "Key").ok_or_else(|| OpError::client("BadResponse"))?;
        page.keys.push(unescape_xml(key));
        rest = &rest[end..];
    }
    let truncated = xml_text(body, "IsTruncated") == Some("true");
    if truncated {
        let token = xml_text(body, "NextContinuationToken")
            .ok_or_else(|| OpError::client("BadResponse"))?;
        page.next_token = Some(unescape_xml(token));
    }
    Ok(page)
}

/// Resolves the five XML entities and numeric character references.
fn unescape_xml(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_from_bodies() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        let e = error_of(StatusCode::FORBIDDEN, body);
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert_eq!(e.status, Some(403));
        assert_eq!(e.to_string(), "SignatureDoesNotMatch (HTTP 403)");
        let e = error_of(StatusCode::NOT_FOUND, b"");
        assert_eq!(e.code, "HTTP 404");
    }

    #[test]
    fn list_pages() {
        let body = b"<ListBucketResult><IsTruncated>true</IsTruncated>\
            <Contents><Key>a&amp;b</Key><Size>1</Size></Contents>\
            <Contents><Key>c&#x2F;d</Key></Contents>\
            <NextContinuationToken>tok=</NextContinuationToken></ListBucketResult>";
        let page = parse_list(body).unwrap();
        assert_eq!(page.keys, vec!["a&b", "c/d"]);
        assert_eq!(page.next_token.as_deref(), Some("tok="));
        let last =
            parse_list(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
                .unwrap();
        assert!(last.keys.is_empty());
        assert!(last.next_token.is_none());
        assert!(parse_list(b"<IsTruncated>true</IsTruncated>").is_err());
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            unescape_xml("&lt;a&gt; &quot;&apos;&#65;&bogus; &"),
            "<a> \"'A&bogus; &"
        );
        assert_eq!(escape_xml("\"e&t\""), "&quot;e&amp;t&quot;");
    }
}
