//! When and how long to wait before trying a call again.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderMap, StatusCode};

/// The retry policy of a client: how many attempts, how long to back off between them, and the
/// default deadline of a call.
///
/// What is retried:
/// - reads (both GETs): connect, timeout, I/O and incomplete-response failures, and 429, 502,
///   503, 504;
/// - recording (POST): the same, because the client always sends a tracking id, which makes the
///   request idempotent; when a retry is refused as a duplicate (code 50000) after an attempt
///   that may have landed, the call succeeds and [`RecordOutcome`](crate::RecordOutcome) says
///   the usage was already recorded.
///
/// A POST whose attempt *timed out* (the transport's `Timeout`, or a gateway's 504) may still be
/// being processed by Kill Bill, whose duplicate check is not atomic (docs/contract.md §4): a retry that
/// arrives before that processing is over can pass the check too and count the usage twice. So
/// such a POST is retried no sooner than [`timed_out_post_wait`](Self::with_timed_out_post_wait)
/// (5 s by default) after its attempt ended, whatever the backoff: the server then has had the
/// attempt timeout plus that wait to finish, and the retry is refused as a duplicate (the call
/// succeeds as "already recorded"). See docs/RELIABILITY.md for the guarantee in numbers.
///
/// Backoff is exponential (`initial * 2^n`, capped at `max_backoff`) with full jitter, unless
/// jitter is turned off. `Retry-After` (seconds or an HTTP date) is honoured for 429 and 503 when
/// it is at most `max_retry_after`; a longer one ends the retries. No wait ever runs past the
/// call's deadline.
///
/// Retries and deadlines wait on a [`Timer`](crate::Timer): a client built without one must
/// have a policy of one attempt and no deadline
/// (`RetryPolicy::none().without_deadline()`), or [`build`](crate::UsageClientBuilder::build)
/// refuses it.
///
/// ```
/// use std::time::Duration;
/// use usage_core::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .with_max_attempts(5)
///     .with_initial_backoff(Duration::from_millis(50))
///     .with_deadline(Duration::from_secs(10));
/// assert_eq!(policy.backoff(1), Duration::from_millis(50).min(policy.backoff(1)));
/// assert_eq!(RetryPolicy::none().max_attempts(), 1);
/// assert_eq!(policy.deadline(), Some(Duration::from_secs(10)));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    jitter: bool,
    deadline: Option<Duration>,
    timed_out_post_wait: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 100 ms up to 5 s with jitter, `Retry-After` up to 30 s, at
    /// least 5 s before retrying a POST whose attempt timed out, and a deadline of 60 s per call.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            jitter: true,
            deadline: Some(Duration::from_secs(60)),
            timed_out_post_wait: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// One attempt only (the deadline still holds).
    pub fn none() -> Self {
        RetryPolicy::default().with_max_attempts(1)
    }

    /// Sets the most attempts of a call, the first included (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the first backoff.
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the longest backoff.
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the longest `Retry-After` honoured; a longer one ends the retries.
    pub fn with_max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Sets whether backoffs are drawn at random in `[0, backoff]` (on by default, so that
    /// many clients do not retry in step).
    pub fn with_jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the default deadline of a call, across all attempts and waits.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the least wait before retrying a POST whose attempt timed out (a transport `Timeout` or
    /// a 504), counted from the end of that attempt: set it to at least the longest time Kill
    /// Bill may go on processing a POST after your attempt timeout, so that the retry cannot
    /// overlap it. Longer waits leave fewer attempts within the deadline; when the wait would
    /// pass the deadline, the call fails with the timeout instead (its outcome unknown: resubmit
    /// it later under the same tracking id). `Duration::ZERO` retries after the plain backoff.
    pub fn with_timed_out_post_wait(mut self, wait: Duration) -> Self {
        self.timed_out_post_wait = wait;
        self
    }

    /// No default deadline: a call lasts as long as its attempts, waits and the transport's own
    /// timeouts (a call's [`RequestOptions::deadline`](crate::RequestOptions::deadline) still
    /// holds).
    pub fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// The most attempts of a call, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The first backoff.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest backoff.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The longest `Retry-After` honoured.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Whether backoffs are jittered.
    pub fn jitter(&self) -> bool {
        self.jitter
    }

    /// The default deadline of a call, if it has one.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The least wait before retrying a POST whose attempt timed out.
    pub fn timed_out_post_wait(&self) -> Duration {
        self.timed_out_post_wait
    }

    /// The backoff before attempt `retry + 1` (`retry` counts from 1), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(31));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// The wait before retry number `retry` (from 1) of a POST whose attempt `timed_out`:
    /// at least [`timed_out_post_wait`](Self::with_timed_out_post_wait).
    pub(crate) fn post_wait(&self, retry: u32, retry_after: Option<Duration>, timed_out: bool) -> Option<Duration> {
        let wait = self.wait(retry, retry_after)?;
        Some(if timed_out {
            wait.max(self.timed_out_post_wait)
        } else {
            wait
        })
    }

    /// The wait before retry number `retry` (from 1): `Retry-After` when the server gave one,
    /// the (jittered) backoff otherwise; `None` when the server asks for more than
    /// `max_retry_after`.
    pub(crate) fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(wait) = retry_after {
            return (wait <= self.max_retry_after).then_some(wait);
        }
        let backoff = self.backoff(retry);
        if !self.jitter || backoff.is_zero() {
            return Some(backoff);
        }
        let nanos = u64::try_from(backoff.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(fastrand::u64(0..=nanos)))
    }
}

/// Statuses worth another attempt: throttled, or a gateway or the server briefly unavailable.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Statuses after which a POST may have been processed (a gateway lost the answer).
pub(crate) fn ambiguous_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502 | 504)
}

/// `Retry-After` of a 429 or 503, in seconds or as an HTTP date (a date in the past is 0),
/// measured from `now` (the timer's wall clock, read only for a date).
pub(crate) fn retry_after(
    status: StatusCode,
    headers: &HeaderMap,
    now: impl FnOnce() -> SystemTime,
) -> Option<Duration> {
    if !matches!(status.as_u16(), 429 | 503) {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::DateTime::<chrono::Utc>::from(now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn exponential_and_capped() {
        let policy = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_millis(700))
            .with_jitter(false);
        let waits: Vec<_> = (1..=5).map(|n| policy.wait(n, None).unwrap().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        assert_eq!(policy.backoff(1000), Duration::from_millis(700));
    }

    #[test]
    fn a_timed_out_post_waits_at_least_its_wait() {
        let policy = RetryPolicy::default().with_jitter(false);
        assert_eq!(policy.post_wait(1, None, true), Some(Duration::from_secs(5)));
        assert_eq!(policy.post_wait(1, None, false), Some(Duration::from_millis(100)));
        let policy = policy.with_timed_out_post_wait(Duration::from_millis(50));
        assert_eq!(policy.post_wait(2, None, true), Some(Duration::from_millis(200)));
        assert_eq!(policy.post_wait(1, Some(Duration::from_secs(60)), true), None);
    }

    #[test]
    fn jitter_stays_within_the_backoff() {
        let policy = RetryPolicy::default().with_initial_backoff(Duration::from_millis(100));
        for _ in 0..100 {
            assert!(policy.wait(2, None).unwrap() <= Duration::from_millis(200));
        }
    }

    #[test]
    fn retry_after_in_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers, SystemTime::now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after(StatusCode::BAD_GATEWAY, &headers, SystemTime::now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &headers, SystemTime::now),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(StatusCode::TOO_MANY_REQUESTS, &headers, SystemTime::now).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        // Measured from the clock it is given, not the system's.
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        let then = || std::time::UNIX_EPOCH + Duration::from_secs(784_111_740); // 08:49:00
        assert_eq!(
            retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers, then),
            Some(Duration::from_secs(37))
        );
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait(1, Some(wait)), None, "longer than max_retry_after");
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
    }
}
