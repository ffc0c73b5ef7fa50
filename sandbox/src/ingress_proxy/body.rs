//! The client's request body on its way to the pod, telling when it has all been sent: the
//! pod's time to answer counts from then (as Go's `ResponseHeaderTimeout`, which Traefik
//! uses), so a long upload is not taken for a silent pod.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;

/// A request body that reports its end (or being dropped) on the paired receiver.
pub(super) struct Tracked {
    inner: Incoming,
    sent: Option<oneshot::Sender<()>>,
}

impl Tracked {
    /// The body, and a receiver that resolves once the body is sent or dropped.
    pub fn new(inner: Incoming) -> (Tracked, oneshot::Receiver<()>) {
        let (sent, done) = oneshot::channel();
        let mut tracked = Tracked {
            inner,
            sent: Some(sent),
        };
        // An empty body may never be polled at all.
        if tracked.inner.is_end_stream() {
            tracked.finish();
        }
        (tracked, done)
    }

    fn finish(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || this.inner.is_end_stream() {
            this.finish();
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
