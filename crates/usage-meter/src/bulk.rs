//! The bulk engine: many requests, each under a tracking id fixed before its first attempt,
//! sent with bounded concurrency, stopping early on a failure that would repeat.
//!
//! - [`derive_tracking_id`] gives a request a tracking id that depends only on what it
//!   carries: sending the same content again reuses the id, so Kill Bill refuses what it
//!   already stored (code 50000) and nothing is counted twice.
//! - [`Bulk::send`] sends requests with at most N in flight, tallies what happened to each
//!   and stops sending on `401 Unauthorized` or invalid input (both would fail again).
//! - [`Outcome::of`] is the one rule every sender of this crate applies to a call's result: a
//!   request refused as a duplicate of its own tracking id was recorded before (by an earlier
//!   run, or by an attempt whose answer was lost) and counts as already recorded.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use usage_core::{Error, RecordOutcome, RequestOptions, UsageClient};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UsageDate, ValidationError};

/// The most records (rows) in one request: what the meter and the import send at most.
pub const MAX_RECORDS_PER_REQUEST: usize = 1_000;

/// The tracking id of the `index`-th request of `subscription` carrying `records`
/// (unit type, date, amount), in the namespace `namespace`:
/// `{namespace}-{index}-{40 hex digits of a SHA-256 of the canonical content}`
/// (`{index}-{hex}` without a namespace). Amounts are compared by value (`10` and `10.0` give
/// the same id).
///
/// Fails, instead of inventing an id, when the namespace makes the id invalid (longer than
/// 128 characters, or with control characters): a random id would make a re-run count twice.
///
/// ```
/// use usage_meter::derive_tracking_id;
/// use usage_models::{Amount, SubscriptionId, UsageDate};
///
/// let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// let ten: Amount = "10".parse().unwrap();
/// let id = derive_tracking_id("kbu", subscription, 0, [("gallons", day, ten)]).unwrap();
/// assert!(id.as_str().starts_with("kbu-0-"));
/// let again = derive_tracking_id("kbu", subscription, 0, [("gallons", day, "10.0".parse().unwrap())]).unwrap();
/// assert_eq!(id, again);
/// assert!(derive_tracking_id(&"x".repeat(100), subscription, 0, [("gallons", day, ten)]).is_err());
/// ```
pub fn derive_tracking_id<'a>(
    namespace: &str,
    subscription: SubscriptionId,
    index: usize,
    records: impl IntoIterator<Item = (&'a str, UsageDate, Amount)>,
) -> Result<TrackingId, ValidationError> {
    let mut hash = Sha256::new();
    // The domain tag predates this crate: ids derived by earlier imports stay the same.
    hash.update(b"kb-usage import v1\x1e");
    hash.update(namespace.as_bytes());
    hash.update(b"\x1e");
    hash.update(subscription.to_string().as_bytes());
    hash.update(b"\x1e");
    hash.update(index.to_string().as_bytes());
    for (unit_type, record_date, amount) in records {
        hash.update(b"\x1e");
        hash.update(unit_type.as_bytes());
        hash.update(b"\x1f");
        // The same bytes as `to_string()`, written into the hash without a `String` per row.
        hash_display(&mut hash, record_date);
        hash.update(b"\x1f");
        hash_display(&mut hash, amount.value().normalize());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    let text = if namespace.is_empty() {
        format!("{index}-{hex}")
    } else {
        format!("{namespace}-{index}-{hex}")
    };
    TrackingId::new(text)
}

/// Feeds `value`'s `Display` text into `hash`.
fn hash_display(hash: &mut Sha256, value: impl std::fmt::Display) {
    struct Feed<'a>(&'a mut Sha256);
    impl std::fmt::Write for Feed<'_> {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            self.0.update(text.as_bytes());
            Ok(())
        }
    }
    // Writing into a hash never fails; a `Display` that fails is a bug, and says so.
    std::fmt::write(&mut Feed(hash), format_args!("{value}")).expect("Display into a hash");
}

/// What happened to one request.
#[derive(Debug)]
pub enum Outcome {
    /// Recorded by this call.
    Recorded {
        /// How many attempts it took.
        attempts: u32,
    },
    /// Refused as a duplicate of its own tracking id: recorded before, by an earlier run or
    /// by an attempt whose answer was lost. Nothing was counted twice.
    AlreadyRecorded {
        /// How many attempts the call took (1 when its first answer was the refusal).
        attempts: u32,
    },
    /// Failed after the client's retries.
    Failed(Error),
    /// Not sent: sending stopped before its turn.
    NotSent,
    /// Its task ended without an answer (it panicked): its outcome is unknown, and sending
    /// it again under the same tracking id is safe.
    Unfinished,
}

impl Outcome {
    /// The outcome of a `record_usage` call: the duplicate rule applied.
    pub fn of(result: Result<RecordOutcome, Error>) -> Outcome {
        match result {
            Ok(outcome) if outcome.already_recorded() => Outcome::AlreadyRecorded {
                attempts: outcome.attempts(),
            },
            Ok(outcome) => Outcome::Recorded {
                attempts: outcome.attempts(),
            },
            Err(e) if e.is_duplicate_tracking_id() => Outcome::AlreadyRecorded { attempts: 1 },
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Whether the usage is on the server (recorded now or before).
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Recorded { .. } | Outcome::AlreadyRecorded { .. })
    }
}

/// Counts of requests and of their rows, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tally {
    /// Requests recorded by this run.
    pub recorded_requests: u64,
    /// Their rows.
    pub recorded_rows: u64,
    /// Requests refused as duplicates: recorded before.
    pub already_recorded_requests: u64,
    /// Their rows.
    pub already_recorded_rows: u64,
    /// Requests that failed (or whose task ended without an answer).
    pub failed_requests: u64,
    /// Their rows.
    pub failed_rows: u64,
    /// Requests not sent because sending stopped.
    pub not_sent_requests: u64,
    /// Their rows.
    pub not_sent_rows: u64,
}

impl Tally {
    /// Counts one request of `rows` rows.
    pub fn add(&mut self, outcome: &Outcome, rows: u64) {
        let (requests, counted) = match outcome {
            Outcome::Recorded { .. } => (&mut self.recorded_requests, &mut self.recorded_rows),
            Outcome::AlreadyRecorded { .. } => (&mut self.already_recorded_requests, &mut self.already_recorded_rows),
            Outcome::Failed(_) | Outcome::Unfinished => (&mut self.failed_requests, &mut self.failed_rows),
            Outcome::NotSent => (&mut self.not_sent_requests, &mut self.not_sent_rows),
        };
        *requests += 1;
        *counted += rows;
    }

    /// Rows on the server: recorded now or before.
    pub fn delivered_rows(&self) -> u64 {
        self.recorded_rows + self.already_recorded_rows
    }
}

/// Stops a [`Bulk::send`]: requests not yet started are not sent; those in flight finish.
/// Cheap to clone; every clone stops the same sending.
#[derive(Clone, Debug, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A signal not yet raised.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// Raises it.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether it was raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A [`Bulk::send`] that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    /// A request has no tracking id: the client would make one up at random, and a re-run
    /// would count its rows twice. Nothing was sent.
    #[error("request {index} has no tracking id; nothing was sent")]
    MissingTrackingId {
        /// Its index.
        index: usize,
    },
}

/// What [`Bulk::send`] did: each request's outcome, in the order given, and the tally.
#[derive(Debug)]
#[non_exhaustive]
pub struct BulkReport {
    /// One outcome per request, in the order given.
    pub outcomes: Vec<Outcome>,
    /// The counts.
    pub tally: Tally,
}

type OptionsFn = dyn Fn(usize) -> RequestOptions + Send + Sync;

/// Sends many requests with bounded concurrency; see the [module](self).
///
/// ```
/// use usage_core::UsageClient;
/// use usage_meter::{derive_tracking_id, Bulk, Outcome};
/// use usage_models::{Amount, SubscriptionUsageRecord, UsageDate};
/// use usage_transport_memory::{InMemoryKillBill, InstantTimer};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let kb = InMemoryKillBill::new();
/// let subscription = kb.create_subscription();
/// let client = UsageClient::builder("http://kb.test").user("admin", "password").tenant("bob", "lazar")
///     .transport(kb.clone()).timer(InstantTimer::new()).build().unwrap();
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// let requests: Vec<SubscriptionUsageRecord> = (0..3)
///     .map(|index| {
///         let amount = Amount::from(index as u32 + 1);
///         let id = derive_tracking_id("doc", subscription, index, [("gallons", day, amount)]).unwrap();
///         SubscriptionUsageRecord::builder(subscription).tracking_id(id.as_str())
///             .record("gallons", day, amount).build().unwrap()
///     })
///     .collect();
/// let bulk = Bulk::new(client).concurrency(2);
/// let first = bulk.send(requests.clone(), |_, _, _| {}).await.unwrap();
/// assert_eq!(first.tally.recorded_rows, 3);
/// // Again: everything was recorded before, nothing counts twice.
/// let again = bulk.send(requests, |_, _, _| {}).await.unwrap();
/// assert_eq!(again.tally.already_recorded_rows, 3);
/// assert!(matches!(again.outcomes[0], Outcome::AlreadyRecorded { .. }));
/// assert_eq!(kb.rows(subscription).len(), 3);
/// # });
/// ```
#[derive(Clone)]
pub struct Bulk {
    client: UsageClient,
    concurrency: usize,
    stop: StopSignal,
    options: Option<Arc<OptionsFn>>,
}

impl std::fmt::Debug for Bulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulk")
            .field("concurrency", &self.concurrency)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Bulk {
    /// Sends through `client` (with its retries), one request at a time until
    /// [`concurrency`](Self::concurrency) says otherwise.
    pub fn new(client: UsageClient) -> Self {
        Bulk {
            client,
            concurrency: 1,
            stop: StopSignal::new(),
            options: None,
        }
    }

    /// At most `n` requests in flight (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Stops sending when `stop` is raised (Ctrl-C, for instance).
    pub fn stop_signal(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }

    /// The options of the request at each index (audit headers, request ids).
    pub fn request_options(mut self, options: impl Fn(usize) -> RequestOptions + Send + Sync + 'static) -> Self {
        self.options = Some(Arc::new(options));
        self
    }

    /// Sends every request (each must carry its tracking id) and calls `settled(index, rows,
    /// outcome)` as each one ends. Stops sending on `401 Unauthorized` or invalid input, which
    /// would fail again for every request, and when the [stop signal](Self::stop_signal) is
    /// raised; the requests not sent are [`Outcome::NotSent`].
    pub async fn send<F>(&self, requests: Vec<SubscriptionUsageRecord>, settled: F) -> Result<BulkReport, BulkError>
    where
        F: Fn(usize, u64, &Outcome) + Send + Sync + 'static,
    {
        if let Some(index) = requests.iter().position(|r| r.tracking_id().is_none()) {
            return Err(BulkError::MissingTrackingId { index });
        }
        let sizes: Vec<u64> = requests.iter().map(|r| r.record_count() as u64).collect();
        let settled = Arc::new(settled);
        let results = bounded(requests, self.concurrency, {
            let client = self.client.clone();
            let stop = self.stop.clone();
            let options = self.options.clone();
            move |index, record: SubscriptionUsageRecord| {
                let client = client.clone();
                let stop = stop.clone();
                let options = options.as_ref().map(|f| f(index)).unwrap_or_default();
                let settled = settled.clone();
                async move {
                    if stop.is_stopped() {
                        return Outcome::NotSent;
                    }
                    let outcome = Outcome::of(client.record_usage(&record).options(options).await);
                    if let Outcome::Failed(e) = &outcome {
                        if e.is_unauthorized() || e.is_invalid_input() {
                            tracing::warn!(error = %e, "bulk: stopping, this failure would repeat");
                            stop.stop();
                        }
                    }
                    settled(index, record.record_count() as u64, &outcome);
                    outcome
                }
            }
        })
        .await;
        let mut tally = Tally::default();
        let outcomes: Vec<Outcome> = results
            .into_iter()
            .zip(&sizes)
            .map(|(outcome, rows)| {
                let outcome = outcome.unwrap_or(Outcome::Unfinished);
                tally.add(&outcome, *rows);
                outcome
            })
            .collect();
        Ok(BulkReport { outcomes, tally })
    }
}

/// Runs `work` on every item, each in its own tokio task, with at most `concurrency` in
/// flight; results in item order, `None` for a task that did not finish (it panicked).
/// [`Bulk::send`] runs on it; `kb-usage series` uses it for its reads.
pub async fn bounded<T, R, F, Fut>(items: Vec<T>, concurrency: usize, work: F) -> Vec<Option<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(usize, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        let job = work(index, item);
        tasks.spawn(async move {
            let result = job.await;
            drop(permit);
            (index, result)
        });
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::UsageClient;
    use usage_transport_memory::{InMemoryKillBill, InstantTimer};

    fn client(kb: &InMemoryKillBill) -> UsageClient {
        UsageClient::builder("http://kb.test")
            .user("admin", "password")
            .tenant("bob", "lazar")
            .transport(kb.clone())
            .timer(InstantTimer::new())
            .build()
            .unwrap()
    }

    fn request(subscription: SubscriptionId, index: usize) -> SubscriptionUsageRecord {
        let day: UsageDate = "2013-08-01".parse().unwrap();
        let amount = Amount::from(index as u32);
        let id = derive_tracking_id("t", subscription, index, [("a", day, amount)]).unwrap();
        SubscriptionUsageRecord::builder(subscription)
            .tracking_id(id.as_str())
            .record("a", day, amount)
            .build()
            .unwrap()
    }

    #[test]
    fn derived_tracking_ids_stay_what_earlier_versions_derived() {
        // Ids derived by an earlier import must come out the same, or its re-run counts twice.
        let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
        let rows = [
            ("gallons", "2013-08-01".parse().unwrap(), "10.50".parse().unwrap()),
            (
                "liters",
                "2013-08-01T06:30:00.123Z".parse().unwrap(),
                "0.000000001".parse().unwrap(),
            ),
        ];
        let id = derive_tracking_id("kbu", subscription, 3, rows).unwrap();
        assert_eq!(id.as_str(), "kbu-3-d2311db2979929f5c6e32c7f0c441a1045410012");
    }

    #[tokio::test]
    async fn a_duplicate_of_its_own_tracking_id_is_already_recorded() {
        let kb = InMemoryKillBill::new();
        let subscription = kb.create_subscription();
        let client = client(&kb);
        let record = request(subscription, 0);
        let first = Outcome::of(client.record_usage(&record).await);
        assert!(matches!(first, Outcome::Recorded { attempts: 1 }), "{first:?}");
        // Kill Bill refuses the same tracking id (code 50000): recorded before, not a failure.
        let again = Outcome::of(client.record_usage(&record).await);
        assert!(matches!(again, Outcome::AlreadyRecorded { attempts: 1 }), "{again:?}");
        assert!(again.is_delivered());
        assert_eq!(kb.rows(subscription).len(), 1);
    }

    #[tokio::test]
    async fn a_401_stops_the_sending() {
        let kb = InMemoryKillBill::new();
        let subscription = kb.create_subscription();
        let wrong = UsageClient::builder("http://kb.test")
            .user("admin", "wrong")
            .tenant("bob", "lazar")
            .transport(kb.clone())
            .timer(InstantTimer::new())
            .build()
            .unwrap();
        let requests: Vec<_> = (0..20).map(|i| request(subscription, i)).collect();
        let report = Bulk::new(wrong)
            .concurrency(1)
            .send(requests, |_, _, _| {})
            .await
            .unwrap();
        assert_eq!(report.tally.failed_requests, 1);
        assert_eq!(report.tally.not_sent_requests, 19);
        assert!(matches!(&report.outcomes[0], Outcome::Failed(e) if e.is_unauthorized()));
    }

    #[tokio::test]
    async fn a_lost_answer_then_a_rerun_counts_once() {
        let kb = InMemoryKillBill::new();
        let subscription = kb.create_subscription();
        let requests: Vec<_> = (0..5).map(|i| request(subscription, i)).collect();
        kb.commit_then_lose_next(1);
        let first = Bulk::new(client(&kb))
            .concurrency(3)
            .send(requests.clone(), |_, _, _| {})
            .await
            .unwrap();
        assert_eq!(first.tally.delivered_rows(), 5);
        assert_eq!(first.tally.already_recorded_requests, 1);
        let again = Bulk::new(client(&kb)).send(requests, |_, _, _| {}).await.unwrap();
        assert_eq!(again.tally.already_recorded_requests, 5);
        assert_eq!(kb.rows(subscription).len(), 5);
    }

    #[tokio::test]
    async fn a_request_without_a_tracking_id_is_refused_before_anything_is_sent() {
        let kb = InMemoryKillBill::new();
        let subscription = kb.create_subscription();
        let day: UsageDate = "2013-08-01".parse().unwrap();
        let bare = SubscriptionUsageRecord::builder(subscription)
            .record("a", day, 1)
            .build()
            .unwrap();
        let error = Bulk::new(client(&kb))
            .send(vec![request(subscription, 0), bare], |_, _, _| {})
            .await
            .unwrap_err();
        assert!(matches!(error, BulkError::MissingTrackingId { index: 1 }));
        assert!(kb.rows(subscription).is_empty());
    }
}
