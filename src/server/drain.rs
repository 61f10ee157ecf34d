//! The graceful stop of a listener's connections: once the drain starts, every open
//! connection finishes what it is serving and closes (an idle keep-alive connection at
//! once), and the listener learns when the last one has gone.
//!
//! hyper-util's `GracefulShutdown` does the same by polling a watch channel's `changed()`
//! every time a connection is polled — twice per proxied request, about 300 instructions
//! (callgrind). Here a connection looks at one flag per poll; the drain wakes each
//! connection once, through the waker it registered, so an idle one hears of it too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use futures_util::task::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

use crate::sweep::Watched;

#[derive(Default)]
pub struct Drain {
    started: AtomicBool,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
    /// Where each open connection's task waits to hear of the drain.
    wakers: Watched<AtomicWaker>,
    /// Told when `open` falls to zero.
    none_open: Notify,
}

/// One accepted connection's place in the drain: counted from accept (a TLS handshake
/// included) until the ticket is dropped.
pub struct Ticket {
    drain: Arc<Drain>,
    waker: Arc<AtomicWaker>,
}

impl Drain {
    /// A ticket for a connection just accepted.
    pub fn admit(self: &Arc<Self>) -> Ticket {
        self.open.fetch_add(1, Ordering::AcqRel);
        let waker = Arc::new(AtomicWaker::new());
        self.wakers.add(&waker);
        Ticket {
            drain: self.clone(),
            waker,
        }
    }

    /// Asks every open connection to close once it has answered what it is serving, and
    /// resolves when none is open.
    pub async fn start(&self) {
        self.started.store(true, Ordering::SeqCst);
        self.wakers.sweep(AtomicWaker::wake);
        loop {
            let none_open = self.none_open.notified();
            let mut none_open = std::pin::pin!(none_open);
            // Listening before looking: a close between the two is not missed.
            none_open.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            none_open.await;
        }
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Ticket {
    /// Serves `conn` to its end, asking it to shut down gracefully once the drain starts.
    pub async fn serve<C: GracefulConnection>(self, conn: C) -> C::Output {
        let mut conn = std::pin::pin!(conn);
        let mut asked = false;
        // The waker last registered: a task polls its future with the same waker every
        // time, so registering happens once, not at every poll.
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(|cx| {
            if !asked {
                if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    self.waker.register(cx.waker());
                    registered = Some(cx.waker().clone());
                }
                // After registering: a drain that starts from here on wakes this task.
                if self.drain.started.load(Ordering::SeqCst) {
                    asked = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            conn.as_mut().poll(cx)
        })
        .await
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.drain.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drain.none_open.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("started", &self.started.load(Ordering::Relaxed))
            .field("open", &self.open())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Drain;

    #[tokio::test]
    async fn the_drain_waits_for_every_ticket() {
        let drain = Arc::new(Drain::default());
        let a = drain.admit();
        let b = drain.admit();
        assert_eq!(drain.open(), 2);
        let finished = tokio::spawn({
            let drain = drain.clone();
            async move { drain.start().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!finished.is_finished(), "finished with a ticket still out");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("the drain finished once no ticket was left")
            .expect("task");
        assert_eq!(drain.open(), 0);
    }

    #[tokio::test]
    async fn a_drain_with_nothing_open_finishes_at_once() {
        let drain = Drain::default();
        tokio::time::timeout(Duration::from_secs(5), drain.start())
            .await
            .expect("finished");
    }
}
