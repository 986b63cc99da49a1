//! Calling a gRPC service that runs in the same process without a socket.
//!
//! In the embedded mode (`cairn server`) the gateway and the blob server share a process, yet
//! every shard used to cross a loopback TCP connection: HTTP/2 framing, two kernel copies and
//! a few syscalls per message, on the same two cores that compute MD5 and erasure codes. A
//! [`Transport::Local`] hands the request to the service object directly: the generated
//! server code (routing, decoding, message size limits) and every layer wrapped around the
//! service object (interceptors included) run as for a network call, and the caller keeps
//! using its generated client.
//!
//! What differs, and why it is safe:
//! - layers of the *server* (`tonic::transport::Server::builder()`: timeouts, concurrency
//!   limits, connection info) do not run; none is used by Cairn's services, and a request has
//!   no peer address (`remote_addr()` is `None`);
//! - the server's handler is polled by the caller's task, so cancelling the call (dropping or
//!   aborting the caller) drops the handler with it, as a reset stream would end it;
//! - a client-streaming request whose stream simply ends looks like a clean end on both
//!   transports, so protocols that must tell a complete stream from an abandoned one carry
//!   their own end marker (see `blob.proto`, `PutShardRequest.last`); every request that
//!   comes this way carries the [`InProcess`] extension, so a service can insist on it;
//! - a server that shuts down keeps serving in-process callers that hold its service (the
//!   process is ending anyway; nothing they leave unfinished is committed).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, Service};
use tonic::transport::Channel;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// A gRPC service (a generated `...Server`, with its layers) to be called in-process.
pub type LocalService = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Marks a request that came through [`Transport::Local`] (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InProcess;

/// Boxes a gRPC service for in-process calls. Its response body may be any body (an
/// interceptor wraps it, for one); it is boxed into tonic's [`Body`]. Each request gets the
/// [`InProcess`] extension.
pub fn local_service<S, B>(service: S) -> LocalService
where
    S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    BoxCloneSyncService::new(
        service
            .map_request(|mut request: http::Request<Body>| {
                request.extensions_mut().insert(InProcess);
                request
            })
            .map_response(|response| response.map(Body::new)),
    )
}

/// Error of a call through a [`Transport`]: the network's, as tonic reports it.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// How a generated gRPC client reaches its server: over the network, or in this process.
#[derive(Clone)]
pub enum Transport {
    /// A (lazily connected) network channel.
    Remote(Channel),
    /// The server's own service object, called directly.
    Local(LocalService),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Remote(_) => f.write_str("Transport::Remote"),
            Transport::Local(_) => f.write_str("Transport::Local"),
        }
    }
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = TransportError;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, TransportError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Transport::Remote(channel) => channel.poll_ready(cx).map_err(Into::into),
            Transport::Local(service) => service.poll_ready(cx).map_err(|never| match never {}),
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Transport::Local(service) => {
                let call = service.call(request);
                Box::pin(async move { call.await.map_err(|never| match never {}) })
            }
        }
    }
}

/// A service running in this process and the address the rest of the cluster knows it by: a
/// client about to dial `address` calls `service` instead.
#[derive(Clone)]
pub struct LocalEndpoint {
    /// The address peers dial (`host:port`, as the service registered it).
    pub address: String,
    /// The service itself.
    pub service: LocalService,
}

impl std::fmt::Debug for LocalEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEndpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}
