//! The HTTP listener: hyper connections over the s3s service, `GET /health`, CORS (preflights
//! answered here, since s3s does not route `OPTIONS`; `Access-Control-*` headers added to
//! responses), and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Request, S3Response, S3Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::{body_digest, cors, object_attributes, presign, request_id, Gateway};

/// How long in-flight requests may run on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `GET /health` without credentials: 200 "ok" (a signed request is S3's).
pub(crate) struct HealthRoute;

#[async_trait::async_trait]
impl S3Route for HealthRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        _: &mut http::Extensions,
    ) -> bool {
        let signed = headers.contains_key(http::header::AUTHORIZATION)
            || uri
                .query()
                .is_some_and(|q| q.contains("X-Amz-Signature") || q.contains("Signature="));
        (method == Method::GET || method == Method::HEAD) && uri.path() == "/health" && !signed
    }

    async fn check_access(&self, _req: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, _req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let mut resp = S3Response::new(Body::from("ok".to_string()));
        resp.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        Ok(resp)
    }
}

/// Calls s3s, then fixes what it cannot express: s3s ignores `S3Response::status`, so a
/// ranged HEAD would be 200 where S3 says 206. A DeleteObjects body is read first and its
/// digests checked ([`body_digest`]), since s3s checks none; so is a presigned URL's validity
/// ([`presign`]). GetObjectAttributes' ETag loses the quotes s3s gives it
/// ([`object_attributes::unquote_etag`]). `OPTIONS` (a CORS preflight, unsigned) is
/// answered here from the bucket's CORS rules; a request with an `Origin` gets the
/// `Access-Control-*` headers of the rule that allows it ([`cors`]). Every response gets a
/// request id ([`request_id`]).
async fn handle(
    s3: S3Service,
    gw: Arc<Gateway>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, s3s::HttpError> {
    let id = request_id::next();
    let span = info_span!("s3_request", request_id = %id);
    let mut resp = call_s3(s3, gw, req).instrument(span).await?;
    request_id::stamp(&mut resp, &id);
    Ok(resp)
}

async fn call_s3(
    s3: S3Service,
    gw: Arc<Gateway>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, s3s::HttpError> {
    if let Some(problem) = presign::expires_problem(req.uri().query()) {
        return Ok(presign::refusal(problem));
    }
    if req.method() == Method::OPTIONS {
        return Ok(cors::preflight(&gw, req.uri(), req.headers()).await);
    }
    let is_head = req.method() == Method::HEAD;
    let is_attributes =
        object_attributes::is_get_object_attributes(req.method(), req.uri().query());
    let cors_request = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .zip(cors::bucket_of(req.uri()))
        .map(|(origin, bucket)| (origin.to_string(), bucket.to_string(), req.method().clone()));
    let mut req = req.map(Body::from);
    if body_digest::is_delete_objects(req.method(), req.uri().query()) {
        let (mut parts, mut body) = req.into_parts();
        let verdict = body_digest::verify(&parts.headers, &mut body).await;
        parts.extensions.insert(verdict);
        req = http::Request::from_parts(parts, body);
    }
    let mut resp = s3.call(req).await?;
    if is_head
        && resp.status() == StatusCode::OK
        && resp.headers().contains_key(http::header::CONTENT_RANGE)
    {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    if is_attributes && resp.status() == StatusCode::OK {
        object_attributes::unquote_etag(&mut resp);
    }
    if let Some((origin, bucket, method)) = cors_request {
        cors::decorate(&gw, &bucket, &origin, &method, resp.headers_mut()).await;
    }
    Ok(resp)
}

/// Accepts connections until `stop` fires, then lets in-flight requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    s3: S3Service,
    gw: Arc<Gateway>,
    stop: oneshot::Receiver<()>,
) -> Result<(), Infallible> {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut stop = stop;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    debug!(error = %e, "set_nodelay failed");
                }
                let s3 = s3.clone();
                let gw = Arc::clone(&gw);
                let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                    // For `aws:SourceIp` policy conditions (crate::access).
                    req.extensions_mut().insert(crate::access::PeerAddr(peer));
                    handle(s3.clone(), Arc::clone(&gw), req)
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(
                    async move {
                        if let Err(e) = conn.await {
                            debug!(error = %e, "connection ended with an error");
                        }
                    }
                    .instrument(info_span!("s3_connection", %peer)),
                );
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    info!(
        connections = graceful.count(),
        "S3 listener closed; draining connections"
    );
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the shutdown grace period; dropping them");
    }
    Ok(())
}

/// The address a listener is bound to, or the configured one if the OS will not say.
pub(crate) fn bound_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}
