//! A [`Timer`] on tokio's clock.

use std::time::{Duration, Instant};

use usage_core::{Sleep, Timer};

/// The [`Timer`] of the client's retries and deadlines, on tokio's clock.
///
/// [`now`](Timer::now) reads `tokio::time::Instant::now()`, so a test on a runtime with paused
/// time (`#[tokio::test(start_paused = true)]`) sees retries and deadlines advance the virtual
/// clock instead of waiting. [`sleep`](Timer::sleep) must be polled inside a tokio runtime
/// with its time driver enabled (`enable_time` or `enable_all`).
///
/// ```
/// use std::time::Duration;
/// use usage_core::Timer;
/// use usage_transport_hyper::TokioTimer;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let timer = TokioTimer;
/// let before = timer.now();
/// timer.sleep(Duration::from_secs(60)).await; // paused time: returns at once
/// assert!(timer.now() - before >= Duration::from_secs(60));
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}
