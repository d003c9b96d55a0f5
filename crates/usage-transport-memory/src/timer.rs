//! A timer that takes no time.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use usage_core::{Sleep, Timer};

/// A [`Timer`] whose sleeps complete at once and move a virtual clock: retry and deadline
/// tests never wait on the wall clock.
///
/// - [`now`](Timer::now) starts at the instant the timer was made and moves only when a
///   sleep completes, by exactly the slept duration;
/// - its [`wall_clock`](Timer::wall_clock) starts at the system time the timer was made (or
///   the one given to [`with_wall_clock`](Self::with_wall_clock)) and moves with `now`, so a
///   `Retry-After` HTTP date gives the same wait in every run;
/// - every duration asked for is recorded, in order: [`sleeps`](Self::sleeps);
/// - clones share the clock and the record, so keep one to inspect and give one to the
///   client.
///
/// It suits transports that answer without waiting (the mock, the emulator without latency):
/// with a transport that is still pending when the client starts its deadline timer, that
/// deadline passes at once.
///
/// ```
/// use std::time::Duration;
/// use usage_core::Timer;
/// use usage_transport_memory::InstantTimer;
///
/// let timer = InstantTimer::new();
/// let start = timer.now();
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// timer.sleep(Duration::from_secs(30)).await;
/// # });
/// assert_eq!(timer.now() - start, Duration::from_secs(30));
/// assert_eq!(timer.sleeps(), [Duration::from_secs(30)]);
/// ```
#[derive(Clone, Debug)]
pub struct InstantTimer {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    origin: Instant,
    wall_origin: SystemTime,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for InstantTimer {
    fn default() -> Self {
        InstantTimer::new()
    }
}

impl InstantTimer {
    /// A timer whose clock starts now.
    pub fn new() -> Self {
        InstantTimer {
            state: Arc::new(Mutex::new(State {
                origin: Instant::now(),
                wall_origin: SystemTime::now(),
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
            })),
        }
    }

    /// The same timer with its wall clock set to `time` (it moves with the virtual clock from
    /// there).
    pub fn with_wall_clock(self, time: SystemTime) -> Self {
        {
            let mut state = self.state();
            state.wall_origin = time.checked_sub(state.elapsed).unwrap_or(time);
        }
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every duration a sleep was asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }

    /// How far the virtual clock has moved.
    pub fn elapsed(&self) -> Duration {
        self.state().elapsed
    }

    /// Moves the virtual clock by `duration` (without recording a sleep).
    pub fn advance(&self, duration: Duration) {
        let mut state = self.state();
        state.elapsed = state.elapsed.saturating_add(duration);
    }
}

impl Timer for InstantTimer {
    fn now(&self) -> Instant {
        let state = self.state();
        state.origin.checked_add(state.elapsed).unwrap_or(state.origin)
    }

    fn wall_clock(&self) -> SystemTime {
        let state = self.state();
        state
            .wall_origin
            .checked_add(state.elapsed)
            .unwrap_or(state.wall_origin)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.state().sleeps.push(duration);
        let timer = self.clone();
        Box::pin(async move { timer.advance(duration) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clock_moves_when_a_sleep_completes() {
        let timer = InstantTimer::new();
        let clone = timer.clone();
        let start = timer.now();
        let pending = timer.sleep(Duration::from_millis(250));
        assert_eq!(timer.now(), start, "not yet slept");
        pending.await;
        clone.sleep(Duration::from_secs(2)).await;
        assert_eq!(timer.now() - start, Duration::from_millis(2250));
        assert_eq!(timer.elapsed(), Duration::from_millis(2250));
        assert_eq!(timer.sleeps(), [Duration::from_millis(250), Duration::from_secs(2)]);
        drop(timer.sleep(Duration::from_secs(60)));
        assert_eq!(timer.sleeps().len(), 3, "asked for, even if never awaited");
        assert_eq!(timer.elapsed(), Duration::from_millis(2250));
    }
}
