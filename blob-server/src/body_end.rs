//! Tells a streaming handler whether its request body really ended, or was cut off.
//!
//! tonic's `Streaming` reports a request stream that the client cancelled (HTTP/2
//! `RST_STREAM(CANCEL)`, e.g. a dropped client future) exactly like a normal end of stream:
//! `message()` returns `Ok(None)`. For PutShard that would commit a truncated shard, possibly
//! over a good one. [`TrackBodyEnd`] wraps the gRPC service and gives every request a
//! [`BodyEnd`] flag (in its extensions) that is set only when the body ends cleanly: the
//! transport reported end of stream, or trailers arrived.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;
use tower_service::Service;

const OPEN: u8 = 0;
const CLEAN: u8 = 1;
const FAILED: u8 = 2;

/// How a request body ended: set once, to clean or failed, and never changed afterwards (a
/// body polled again after an error may well report a normal end). Found in the request's
/// extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyEnd(Arc<AtomicU8>);

impl BodyEnd {
    /// Whether the body ended cleanly (as opposed to: not yet, or with an error).
    pub(crate) fn ended_cleanly(&self) -> bool {
        self.0.load(Ordering::Acquire) == CLEAN
    }

    fn settle(&self, state: u8) {
        // Only the first outcome counts; a failed exchange means it was already settled.
        let _ = self
            .0
            .compare_exchange(OPEN, state, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A body that sets its [`BodyEnd`] flag when it ends cleanly.
struct TrackedBody {
    inner: Body,
    end: BodyEnd,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.end.settle(CLEAN),
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => this.end.settle(CLEAN),
            Poll::Ready(Some(Err(_))) => this.end.settle(FAILED),
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps a gRPC service so that its handlers can check [`BodyEnd`].
#[derive(Debug, Clone)]
pub(crate) struct TrackBodyEnd<S>(pub(crate) S);

impl<S: NamedService> NamedService for TrackBodyEnd<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for TrackBodyEnd<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let end = BodyEnd::default();
        let (mut parts, inner) = request.into_parts();
        if inner.is_end_stream() {
            end.settle(CLEAN);
        }
        parts.extensions.insert(end.clone());
        let body = Body::new(TrackedBody { inner, end });
        self.0.call(http::Request::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::{BodyExt, StreamBody};

    fn tracked(frames: Vec<Result<Frame<Bytes>, Status>>) -> (TrackedBody, BodyEnd) {
        let end = BodyEnd::default();
        let inner = Body::new(StreamBody::new(futures::stream::iter(frames)));
        (
            TrackedBody {
                inner,
                end: end.clone(),
            },
            end,
        )
    }

    #[tokio::test]
    async fn clean_end_is_flagged() {
        let (mut body, end) = tracked(vec![Ok(Frame::data(Bytes::from_static(b"x")))]);
        assert!(body.frame().await.is_some());
        assert!(!end.ended_cleanly());
        assert!(body.frame().await.is_none());
        assert!(end.ended_cleanly());
    }

    #[tokio::test]
    async fn cancelled_body_is_not_flagged() {
        let (body, end) = tracked(vec![
            Ok(Frame::data(Bytes::from_static(b"x"))),
            Err(Status::cancelled("reset by client")),
        ]);
        // Polled to the end: the `None` after the error must not count as a clean end.
        let frames: Vec<_> = body.into_data_stream().collect().await;
        assert_eq!(frames.len(), 2);
        assert!(!end.ended_cleanly());
    }
}
