//! `upstream.read_timeout`: the longest silence allowed while a body streams, either way
//! (like nginx's `proxy_read_timeout`). The clock restarts with every frame; a body that
//! stays silent longer ends with an error, which cuts the exchange.
//!
//! The timer is armed only when a body first has nothing to give: a body that arrives
//! with its head (most API answers) never arms one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Where a body's bytes are counted (the request's access line: `server::access_log`).
pub trait CountBytes: Send + Sync {
    fn add(&self, n: usize);
}

/// A counter for a body's bytes, shared with whoever writes them down.
pub type BytesIn = std::sync::Arc<dyn CountBytes>;

/// The silence allowed, and the timer of the silence under way.
pub struct ReadTimer {
    limit: Duration,
    /// Armed at the first `Pending`, reset by every frame after.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A frame came since the timer was last set: the next `Pending` restarts it.
    fresh: bool,
}

impl ReadTimer {
    pub fn new(limit: Duration) -> ReadTimer {
        ReadTimer {
            limit,
            sleep: None,
            fresh: true,
        }
    }

    /// A frame arrived: the silence starts again.
    pub fn heard(&mut self) {
        self.fresh = true;
    }

    /// The body had nothing to give: true once the silence has lasted `limit`.
    pub fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if std::mem::take(&mut self.fresh) {
            let deadline = Instant::now() + self.limit;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

/// A body went silent for longer than `upstream.read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no data for longer than upstream.read_timeout")]
pub struct Silent;

/// A request body on its way upstream, under a [`ReadTimer`].
pub struct TimedBody<B> {
    inner: B,
    timer: ReadTimer,
    /// The access log's count of the bytes read, when it is on.
    bytes_in: Option<BytesIn>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, limit: Duration) -> TimedBody<B> {
        TimedBody {
            inner,
            timer: ReadTimer::new(limit),
            bytes_in: None,
        }
    }

    /// Counts the body's bytes into `bytes_in` (`None`: the access log is off).
    pub fn counting(mut self, bytes_in: Option<BytesIn>) -> TimedBody<B> {
        self.bytes_in = bytes_in;
        self
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer.heard();
                if let (Some(count), Some(Ok(f))) = (&this.bytes_in, &frame) {
                    count.add(f.data_ref().map_or(0, |d| d.len()));
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending if this.timer.expired(cx) => Poll::Ready(Some(Err(Box::new(Silent)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;

    use super::TimedBody;

    #[tokio::test(start_paused = true)]
    async fn a_body_silent_past_the_limit_fails_and_one_that_speaks_in_time_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut body = TimedBody::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(5));
        // Each frame within the limit restarts the silence.
        for _ in 0..3 {
            let sender = tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let _ = sender.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            });
            let frame = body.frame().await.expect("a frame").expect("in time");
            assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"x")));
        }
        // Then silence: the body fails once the limit has passed, not before.
        let started = tokio::time::Instant::now();
        let err = body.frame().await.expect("an error").expect_err("silent");
        assert!(err.is::<super::Silent>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        drop(tx);
    }
}
