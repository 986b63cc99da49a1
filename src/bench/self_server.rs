//! A trivial in-process S3 server for `--self-test`: the bench against it shows the tool's own
//! ceiling (HTTP, signing, bookkeeping) on this machine, with a server that does almost
//! nothing.
//!
//! It checks no signatures and keeps only each object's length, not its bytes, so memory
//! stays flat however much is written; a GET returns that many zero bytes from one shared
//! buffer. It knows path-style CreateBucket, DeleteBucket, PutObject, GetObject,
//! DeleteObject, ListObjectsV2 and the multipart calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

#[derive(Default)]
struct Store {
    buckets: BTreeSet<String>,
    /// `(bucket, key)` → length.
    objects: BTreeMap<(String, String), u64>,
    /// upload id → part lengths by part number.
    uploads: HashMap<String, BTreeMap<u32, u64>>,
    next_upload: u64,
    /// Zeros to serve GETs from; grown to the largest object.
    zeros: Bytes,
}

type Shared = Arc<Mutex<Store>>;

fn lock(store: &Shared) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running self-test server; dropping it stops accepting connections.
pub struct SelfServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SelfServer {
    /// Starts listening on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let store: Shared = Arc::default();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            async move {
                loop {
                    let accepted = tokio::select! {
                        _ = &mut stopped => break,
                        a = listener.accept() => a,
                    };
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let store = store.clone();
                    tokio::spawn(
                        async move {
                            let service = service_fn(move |req| handle(store.clone(), req));
                            if let Err(e) = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                            {
                                tracing::debug!("self-test connection ended: {e}");
                            }
                        }
                        .instrument(tracing::debug_span!("bench-self-server-conn")),
                    );
                }
            }
            .instrument(tracing::info_span!("bench-self-server", %addr)),
        );
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for SelfServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

fn error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>"),
    )
}

fn etag(len: u64) -> Response<Full<Bytes>> {
    let mut r = reply(StatusCode::OK, Bytes::new());
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{len:032x}\"")) {
        r.headers_mut().insert(http::header::ETAG, v);
    }
    r
}

/// Reads a body to its end, keeping only its length.
async fn drain(body: Incoming) -> Result<u64, hyper::Error> {
    let mut body = body;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}

async fn handle(
    store: Shared,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let path = percent_decode(req.uri().path());
    let query = parse_query(req.uri().query().unwrap_or(""));
    let (bucket, key) = match path.trim_start_matches('/').split_once('/') {
        Some((b, k)) if !k.is_empty() => (b.to_string(), Some(k.to_string())),
        Some((b, _)) => (b.to_string(), None),
        None => (path.trim_start_matches('/').to_string(), None),
    };
    let body = req.into_body();
    let response = match (method, key) {
        (Method::PUT, None) => {
            let _ = drain(body).await;
            if lock(&store).buckets.insert(bucket) {
                reply(StatusCode::OK, Bytes::new())
            } else {
                error(StatusCode::CONFLICT, "BucketAlreadyOwnedByYou")
            }
        }
        (Method::DELETE, None) => delete_bucket(&store, &bucket),
        (Method::GET, None) => list(&store, &bucket, &query),
        (method, Some(key)) => {
            if !lock(&store).buckets.contains(&bucket) {
                let _ = drain(body).await;
                return Ok(error(StatusCode::NOT_FOUND, "NoSuchBucket"));
            }
            object(&store, method, bucket, key, &query, body).await
        }
        _ => error(StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
    };
    Ok(response)
}

fn delete_bucket(store: &Shared, bucket: &str) -> Response<Full<Bytes>> {
    let mut s = lock(store);
    if !s.buckets.contains(bucket) {
        return error(StatusCode::NOT_FOUND, "NoSuchBucket");
    }
    let from = (bucket.to_string(), String::new());
    if s.objects
        .range(from..)
        .next()
        .is_some_and(|((b, _), _)| b == bucket)
    {
        return error(StatusCode::CONFLICT, "BucketNotEmpty");
    }
    s.buckets.remove(bucket);
    reply(StatusCode::NO_CONTENT, Bytes::new())
}

async fn object(
    store: &Shared,
    method: Method,
    bucket: String,
    key: String,
    query: &HashMap<String, String>,
    body: Incoming,
) -> Response<Full<Bytes>> {
    let upload = query.get("uploadId").cloned();
    match (method, upload) {
        (Method::PUT, None) => match drain(body).await {
            Ok(len) => {
                let mut s = lock(store);
                s.objects.insert((bucket, key), len);
                etag(len)
            }
            Err(_) => error(StatusCode::BAD_REQUEST, "IncompleteBody"),
        },
        (Method::GET, None) => {
            let mut s = lock(store);
            let Some(&len) = s.objects.get(&(bucket, key)) else {
                return error(StatusCode::NOT_FOUND, "NoSuchKey");
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if s.zeros.len() < len {
                s.zeros = Bytes::from(vec![0u8; len]);
            }
            reply(StatusCode::OK, s.zeros.slice(..len))
        }
        (Method::DELETE, None) => {
            lock(store).objects.remove(&(bucket, key));
            reply(StatusCode::NO_CONTENT, Bytes::new())
        }
        (Method::POST, None) if query.contains_key("uploads") => {
            let mut s = lock(store);
            s.next_upload += 1;
            let id = format!("upload-{}", s.next_upload);
            s.uploads.insert(id.clone(), BTreeMap::new());
            reply(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult>\
                     <Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId>\
                     </InitiateMultipartUploadResult>",
                    escape(&bucket),
                    escape(&key)
                ),
            )
        }
        (Method::PUT, Some(id)) => {
            let number: Option<u32> = query.get("partNumber").and_then(|n| n.parse().ok());
            let len = match drain(body).await {
                Ok(len) => len,
                Err(_) => return error(StatusCode::BAD_REQUEST, "IncompleteBody"),
            };
            let mut s = lock(store);
            match (s.uploads.get_mut(&id), number) {
                (Some(parts), Some(n)) => {
                    parts.insert(n, len);
                    etag(len)
                }
                (None, _) => error(StatusCode::NOT_FOUND, "NoSuchUpload"),
                (_, None) => error(StatusCode::BAD_REQUEST, "InvalidArgument"),
            }
        }
        (Method::POST, Some(id)) => {
            let _ = drain(body).await;
            let mut s = lock(store);
            let Some(parts) = s.uploads.remove(&id) else {
                return error(StatusCode::NOT_FOUND, "NoSuchUpload");
            };
            let len = parts.values().sum();
            s.objects.insert((bucket.clone(), key.clone()), len);
            reply(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult>\
                     <Bucket>{}</Bucket><Key>{}</Key><ETag>\"{len:032x}\"</ETag>\
                     </CompleteMultipartUploadResult>",
                    escape(&bucket),
                    escape(&key)
                ),
            )
        }
        (Method::DELETE, Some(id)) => {
            lock(store).uploads.remove(&id);
            reply(StatusCode::NO_CONTENT, Bytes::new())
        }
        _ => error(StatusCode::NOT_IMPLEMENTED, "NotImplemented"),
    }
}

/// ListObjectsV2: `prefix`, `max-keys` (≤ 1000) and a continuation token that is the last
/// key returned.
fn list(store: &Shared, bucket: &str, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let s = lock(store);
    if !s.buckets.contains(bucket) {
        return error(StatusCode::NOT_FOUND, "NoSuchBucket");
    }
    let prefix = query.get("prefix").map_or("", String::as_str);
    let max = query
        .get("max-keys")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(1000)
        .min(1000);
    let after = query.get("continuation-token").cloned();
    let from = (
        bucket.to_string(),
        after.clone().unwrap_or_else(|| prefix.to_string()),
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>");
    let mut count = 0;
    let mut last = None;
    let mut truncated = false;
    for ((b, key), len) in s.objects.range(from..) {
        if b != bucket || !key.starts_with(prefix) {
            break;
        }
        if after.as_deref() == Some(key.as_str()) {
            continue;
        }
        if count == max {
            truncated = true;
            break;
        }
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{len}</Size></Contents>",
            escape(key)
        ));
        count += 1;
        last = Some(key.clone());
    }
    xml.push_str(&format!(
        "<KeyCount>{count}</KeyCount><IsTruncated>{truncated}</IsTruncated>"
    ));
    if let (true, Some(last)) = (truncated, last) {
        xml.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            escape(&last)
        ));
    }
    xml.push_str("</ListBucketResult>");
    reply(StatusCode::OK, xml)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("x%41"), "xA");
        let q = parse_query("uploads&partNumber=2&uploadId=u%2D1");
        assert_eq!(q.get("uploads").map(String::as_str), Some(""));
        assert_eq!(q.get("partNumber").map(String::as_str), Some("2"));
        assert_eq!(q.get("uploadId").map(String::as_str), Some("u-1"));
    }
}
