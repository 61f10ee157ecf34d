//! The response body that holds its HTTP/1.1 connection until read to the end, then
//! hands it back to its pool.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::{Conn, Pool};
use crate::net::timeout::{ReadTimer, Silent};

/// An upstream response body that returns its connection to the pool once read to the
/// end; dropped before that, or failed, it closes the connection.
pub struct PooledBody {
    inner: Incoming,
    /// The HTTP/1.1 connection it came on and its pool, until the body has ended.
    lease: Option<(Conn, Arc<Pool>)>,
    timer: ReadTimer,
}

/// Errors while a response body streams back.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Silent(#[from] Silent),
}

impl PooledBody {
    pub(super) fn new(
        inner: Incoming,
        lease: Option<(Conn, Arc<Pool>)>,
        read_timeout: Duration,
    ) -> PooledBody {
        let mut body = PooledBody {
            inner,
            lease,
            timer: ReadTimer::new(read_timeout),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    /// Back to the pool: now if the connection can take the next request, else once it
    /// can (a request body the upstream answered before reading may still be going out).
    /// Only ready connections are idle, so no request ever waits on another's.
    fn release(&mut self) {
        let Some((mut conn, pool)) = self.lease.take() else {
            return;
        };
        if conn.sender.is_ready() {
            pool.checkin(conn);
            return;
        }
        // Outside a runtime (a body dropped as the process ends) the connection just closes.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            conn.close();
            return;
        };
        let limit = pool.timeouts.idle;
        rt.spawn(async move {
            match tokio::time::timeout(limit, conn.sender.ready()).await {
                Ok(Ok(())) => pool.checkin(conn),
                _ => conn.close(),
            }
        });
    }

    /// The body failed or was abandoned: its connection is in an unknown state and closes.
    fn close(&mut self) {
        if let Some((conn, _)) = self.lease.take() {
            conn.close();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending if this.timer.expired(cx) => {
                this.close();
                Poll::Ready(Some(Err(Silent.into())))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.timer.heard();
                // Trailers end a chunked body: the server writing ours may not ask again.
                if frame.is_trailers() || this.inner.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.close();
                Poll::Ready(Some(Err(e.into())))
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

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        } else {
            self.close();
        }
    }
}
