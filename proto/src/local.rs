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
//!
//! Shard *data* goes one step further ([`LocalShardData`]): even in-process, a generated
//! client and server still run tonic's codec, which copies every byte of every message into
//! a frame and out of it again (a profile of 64 MiB GETs put a sixth of the process there).
//! A blob server's `PutShard` and `GetShard` are therefore also offered as plain method calls
//! on message streams: the `Bytes` a reader filled are the `Bytes` the gateway decodes from.
//! These calls skip the service's layers and the generated server code too, so: no
//! cluster-token check (the caller is this process; they work even before the blob server
//! has fetched the token, when its gRPC calls are still refused), no message size limit (the
//! gateway sends pieces of at most 1 MiB), no stream-end tracking (not needed: an in-process
//! `PutShard` must promise an explicit end). Every rule of the calls themselves is the same
//! code as for gRPC callers, and dropping a call or its reply stream cancels it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::{http, Service};
use tonic::transport::Channel;
use tonic::Status;
use tower::util::BoxCloneSyncService;

use crate::blob::{GetShardRequest, GetShardResponse, PutShardRequest, PutShardResponse};
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

/// The messages of an in-process `PutShard`, in order (the first carries the header).
pub type PutShardMessages = Pin<Box<dyn Stream<Item = PutShardRequest> + Send + 'static>>;

/// The reply of a `GetShard`, as a stream of messages: what tonic's generated trait returns,
/// and what an in-process caller reads directly.
pub type GetShardMessages =
    Pin<Box<dyn Stream<Item = Result<GetShardResponse, Status>> + Send + 'static>>;

/// A blob server's shard data calls, made in this process without encoding a message: the
/// same semantics as the `Blob` service's `PutShard` and `GetShard` (see `blob.proto`).
#[tonic::async_trait]
pub trait LocalShardData: Send + Sync + 'static {
    /// `PutShard`: answers once the shard is durable, as the gRPC call does. The header must
    /// promise an explicit end (`ShardHeader.explicit_end`): a stream that ends without its
    /// `last` message was abandoned and nothing is kept.
    async fn put_shard(&self, messages: PutShardMessages) -> Result<PutShardResponse, Status>;

    /// `GetShard`: the range's data as messages; dropping the stream stops the read.
    async fn get_shard(&self, request: GetShardRequest) -> Result<GetShardMessages, Status>;
}

/// A service running in this process and the address the rest of the cluster knows it by: a
/// client about to dial `address` calls `service` instead, and `shard_data` for shard data.
#[derive(Clone)]
pub struct LocalEndpoint {
    /// The address peers dial (`host:port`, as the service registered it).
    pub address: String,
    /// The service itself.
    pub service: LocalService,
    /// Its shard data calls without gRPC encoding.
    pub shard_data: std::sync::Arc<dyn LocalShardData>,
}

impl std::fmt::Debug for LocalEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEndpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}
