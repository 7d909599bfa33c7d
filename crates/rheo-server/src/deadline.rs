//! A deadline on receiving a gRPC request's body.
//!
//! hyper's header timeout does not cover bodies, so a client could trickle a request body and
//! hold its connection and up to a message's worth of buffer for as long as it liked. Every
//! Kinesis and Admin method is unary or server-streaming: the client sends its one message and
//! closes its side at once, so the whole request body must arrive within the deadline, or the
//! call fails with DEADLINE_EXCEEDED. Server reflection is bidirectional (grpcurl keeps the
//! stream open while it asks), so its requests are left alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// Gives the body of every request but server reflection's `timeout` to arrive.
pub(crate) fn limit_body(request: Request, timeout: Duration) -> Request {
    if request.uri().path().starts_with("/grpc.reflection.") {
        return request;
    }
    request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            timeout,
        })
    })
}

struct DeadlineBody {
    inner: Body,
    /// Running until the body ends or the deadline fires.
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(frame)) => Poll::Ready(Some(frame)),
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                this.deadline = None;
                let status = crate::error::body_timeout_status(this.timeout);
                Poll::Ready(Some(Err(axum::Error::new(status))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
