//! The timer behind `server.header_read_timeout`, kept by one sweep per listener instead
//! of a timer registered and cancelled for every request.
//!
//! hyper asks its timer for a sleep each time it starts reading a request head and drops
//! it when the head is in: on a keep-alive connection, once per request. With tokio's
//! timer that was an allocation, a registration in the timer wheel and a removal, each
//! under the driver's lock. Here each connection has its own [`HeadTimer`], whose sleep
//! only writes its deadline where the listener's [`HeadSweep`] looks, every eighth of the
//! timeout (at most once a second): a head still incomplete at its deadline is cut off at
//! the next sweep, that much later at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use hyper::rt::{Sleep, Timer};

use crate::sweep::{self, Millis, Watched};

/// One connection's head-read deadline, as its timer sets it and the sweep reads it.
#[derive(Default)]
struct Deadline {
    /// On the sweep's [`Millis`] clock; 0 when no head is being read.
    at: AtomicU64,
    /// Set by the sweep when `at` has passed.
    expired: AtomicBool,
    /// The connection's task, woken when the deadline passes.
    waker: AtomicWaker,
}

/// The deadlines of a listener's connections, checked now and then by [`HeadSweep::run`].
pub struct HeadSweep {
    clock: Millis,
    period: Duration,
    connections: Watched<Deadline>,
}

impl HeadSweep {
    pub fn new(timeout: Duration) -> Arc<HeadSweep> {
        Arc::new(HeadSweep {
            clock: Millis::default(),
            period: sweep::period_for(timeout),
            connections: Watched::default(),
        })
    }

    /// A timer for one new connection.
    pub fn timer(self: &Arc<Self>) -> HeadTimer {
        let deadline = Arc::new(Deadline::default());
        self.connections.add(&deadline);
        HeadTimer {
            sweep: self.clone(),
            deadline,
        }
    }

    /// Sweeps every period until the listener and its connections are gone.
    pub fn run(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        sweep::every(self.period, Arc::downgrade(self), |s: &HeadSweep| {
            s.expire(s.clock.at(Instant::now()))
        })
    }

    /// Marks the deadlines passed at `now` and wakes their connections; forgets the
    /// connections that are gone.
    fn expire(&self, now: u64) {
        self.connections.sweep(|deadline| {
            let at = deadline.at.load(Ordering::Acquire);
            if at != 0 && now >= at {
                deadline.expired.store(true, Ordering::Release);
                deadline.waker.wake();
            }
        });
    }
}

/// hyper's timer for one connection's request heads.
pub struct HeadTimer {
    sweep: Arc<HeadSweep>,
    deadline: Arc<Deadline>,
}

impl HeadTimer {
    fn set(&self, deadline: Instant) {
        self.deadline.expired.store(false, Ordering::Release);
        self.deadline
            .at
            .store(self.sweep.clock.at(deadline), Ordering::Release);
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        // A year is as good as forever here, and cannot overflow the clock.
        let year = Duration::from_secs(365 * 86_400);
        self.sleep_until(Instant::now() + duration.min(year))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.set(deadline);
        Box::pin(HeadSleep(self.deadline.clone()))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        // A connection reads one head at a time: its sleep is moved, not replaced, so
        // that dropping the old one cannot clear the new deadline.
        if sleep.as_mut().downcast_mut_pin::<HeadSleep>().is_some() {
            self.set(new_deadline);
        } else {
            *sleep = self.sleep_until(new_deadline);
        }
    }
}

/// Ready once the sweep has found the deadline passed; dropped, it clears the deadline.
struct HeadSleep(Arc<Deadline>);

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = &self.0;
        if deadline.expired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        deadline.waker.register(cx.waker());
        // The sweep may have marked it between the check and the registration.
        if deadline.expired.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        self.0.at.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use hyper::rt::Timer;

    use super::HeadSweep;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_head_sleep_ends_at_the_first_sweep_past_its_deadline() {
        let sweep = HeadSweep::new(Duration::from_secs(8));
        assert_eq!(sweep.period, Duration::from_secs(1));
        let timer = sweep.timer();
        let start = Instant::now();
        let mut sleep = timer.sleep_until(start + Duration::from_secs(8));
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());

        // A sweep before the deadline leaves it pending.
        sweep.expire(sweep.clock.at(start + Duration::from_secs(7)));
        assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());

        // The first sweep past it wakes the connection, and the sleep is over.
        sweep.expire(sweep.clock.at(start + Duration::from_secs(9)));
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(sleep.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn a_head_read_in_time_leaves_nothing_for_the_sweep() {
        let sweep = HeadSweep::new(Duration::from_secs(1));
        let timer = sweep.timer();
        let start = Instant::now();
        let sleep = timer.sleep_until(start + Duration::from_secs(1));
        drop(sleep);
        // The next head's sleep starts afresh.
        let mut sleep = timer.sleep_until(start + Duration::from_secs(5));
        sweep.expire(sweep.clock.at(start + Duration::from_secs(2)));
        let waker = Waker::from(Arc::new(Flag(Default::default())));
        assert!(sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        // A reset moves the deadline of the sleep in place.
        timer.reset(&mut sleep, start + Duration::from_secs(1));
        sweep.expire(sweep.clock.at(start + Duration::from_secs(2)));
        assert!(sleep
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
    }

    #[test]
    fn the_sweep_forgets_closed_connections() {
        let sweep = HeadSweep::new(Duration::from_secs(1));
        let kept = sweep.timer();
        drop(sweep.timer());
        sweep.expire(1);
        assert_eq!(sweep.connections.count(), 1);
        drop(kept);
    }
}
