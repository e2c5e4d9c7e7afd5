//! [`sleep`] and [`sleep_until`].

use super::TimerEntry;
use crate::error::{Error, Result};
use crate::runtime::{context, Handle};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Waits for `duration`, like `asyncio.sleep`. A cancellation point.
///
/// A zero duration yields once (asyncio's `sleep(0)`); a duration too large
/// to add to the clock sleeps until cancelled.
///
/// ```
/// use std::time::{Duration, Instant};
/// spindle::run(async {
///     let start = Instant::now();
///     spindle::sleep(Duration::from_millis(20)).await?;
///     assert!(start.elapsed() >= Duration::from_millis(20));
///     spindle::Ok(())
/// }).unwrap();
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now().checked_add(duration),
        // A positive delay is in the future when created: no second clock
        // read at registration (a deadline passed by then is refused by the
        // wheel and the sleep ends at once).
        may_have_passed: duration.is_zero(),
        state: State::Idle,
    }
}

/// Waits until `deadline`. A deadline already passed yields once.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: Some(deadline),
        may_have_passed: true,
        state: State::Idle,
    }
}

/// Converts seconds given as a float into a [`Duration`] the way asyncio
/// treats delays: a negative delay is zero, an infinite one is
/// `Duration::MAX` (no limit), and NaN is an invalid-argument error.
///
/// ```
/// use std::time::Duration;
/// use spindle::time::duration_from_secs;
/// assert_eq!(duration_from_secs(-1.0).unwrap(), Duration::ZERO);
/// assert_eq!(duration_from_secs(0.25).unwrap(), Duration::from_millis(250));
/// assert_eq!(duration_from_secs(f64::INFINITY).unwrap(), Duration::MAX);
/// assert!(duration_from_secs(f64::NAN).is_err());
/// ```
pub fn duration_from_secs(secs: f64) -> Result<Duration> {
    if secs.is_nan() {
        return Err(Error::invalid_argument("a delay of NaN seconds"));
    }
    if secs <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// The future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// `None`: sleep until cancelled.
    deadline: Option<Instant>,
    /// The deadline may already have passed at the first poll (then the
    /// sleep yields once, like asyncio's `sleep(0)`).
    may_have_passed: bool,
    state: State,
}

enum State {
    /// Not polled yet.
    Idle,
    /// The deadline had passed at the first poll: yielded once.
    Yielded,
    /// Waiting on a timer.
    Armed(TimerEntry),
    /// Sleeping until cancelled.
    Forever,
    Done,
}

impl Sleep {
    /// The deadline (`None`: no deadline, sleeps until cancelled).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn disarm(&mut self) {
        // Dropping the entry removes the timer from its wheel.
        self.state = State::Done;
    }

    fn arm(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(deadline) = self.deadline else {
            return match Handle::try_current() {
                Ok(_) => {
                    self.state = State::Forever;
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            };
        };
        let may_have_passed = self.may_have_passed;
        let armed = context::with_runtime(|shared, worker| {
            if may_have_passed && deadline <= Instant::now() {
                return None;
            }
            let timers = &shared.timers;
            let tick = timers.tick_of(deadline);
            let wheel = worker.unwrap_or_else(|| timers.outside_wheel());
            let entry = timers.register(wheel, tick, cx.waker().clone());
            if entry.is_some() {
                shared.timer_added(tick);
            }
            Some(entry)
        });
        match armed {
            None => Poll::Ready(Err(Error::runtime(
                "no spindle runtime on this thread: sleep must be awaited in a runtime",
            ))),
            Some(None) => {
                // asyncio: a delay <= 0 yields once.
                self.state = State::Yielded;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Some(Some(entry))) => {
                self.state = State::Armed(entry);
                Poll::Pending
            }
            Some(Some(None)) => {
                self.state = State::Done;
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl Future for Sleep {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        if let Some(cancel) = context::take_current_cancel() {
            this.disarm();
            return Poll::Ready(Err(cancel));
        }
        match &mut this.state {
            State::Idle => this.arm(cx),
            State::Yielded | State::Done => {
                this.state = State::Done;
                Poll::Ready(Ok(()))
            }
            State::Forever => Poll::Pending,
            State::Armed(entry) => {
                if entry.poll_fired(cx.waker()) {
                    this.disarm();
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
