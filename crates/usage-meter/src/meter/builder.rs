//! [`MeterBuilder`]: a meter's settings, checked when it starts.

#[cfg(feature = "spool")]
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use usage_core::{RequestOptions, UsageClient};

use super::worker::Worker;
use super::{lock, Counters, DeadLetterList, DeadLetters, Inbox, Meter, Shared, StartError, WhenFull};
use crate::bulk::MAX_RECORDS_PER_REQUEST;
#[cfg(feature = "spool")]
use crate::spool::Spool;

/// Sets up a [`Meter`]; see [`Meter::builder`].
#[derive(Debug)]
#[must_use]
pub struct MeterBuilder {
    pub(super) client: UsageClient,
    pub(super) max_records: usize,
    pub(super) interval: Duration,
    pub(super) capacity: usize,
    pub(super) when_full: WhenFull,
    pub(super) bucket: Option<Duration>,
    pub(super) concurrency: usize,
    pub(super) backoff: Duration,
    pub(super) max_backoff: Duration,
    pub(super) options: RequestOptions,
    pub(super) request_id: Option<String>,
    pub(super) max_dead_letters: usize,
    #[cfg(feature = "spool")]
    pub(super) spool: Option<std::path::PathBuf>,
}

impl MeterBuilder {
    /// Keeps every accepted event in a durable spool, the SQLite database at `path` (created
    /// if missing): events survive a crash or a power cut once [durable](Meter::durable), and
    /// a restart on the same spool delivers what is left exactly once, each batch under the
    /// tracking id it was given before its first attempt. One meter per spool at a time: a
    /// second one on a spool in use fails to start (after SQLite's 5 s busy wait).
    #[cfg(feature = "spool")]
    pub fn spool(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.spool = Some(path.into());
        self
    }

    /// Records per request, 1 to 1,000 (default 1,000): a subscription's open batch is sent
    /// as soon as it holds this many.
    pub fn max_records_per_request(mut self, n: usize) -> Self {
        self.max_records = n;
        self
    }

    /// Every open batch is sent at least this often (default 1 s).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The most events held and not yet delivered (default 1,000,000): the memory bound.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// What [`Meter::record`] does when full (default [`WhenFull::Wait`]).
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// Sums the events of the same subscription, unit type and time bucket of this length
    /// (the record date is the bucket's start) into one record. Off by default.
    pub fn aggregate(mut self, bucket: Duration) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// Requests in flight at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The first wait before sending again a request that failed after all the client's
    /// retries (default 1 s); it doubles on each failure up to `max` (default 60 s).
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max;
        self
    }

    /// The options of every request (audit reason and comment, for instance). Default: none.
    pub fn request_options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }

    /// Sends each request with the request id (`X-Request-Id`) `{base}-{n}`, `n` the number
    /// of its batch (from 0, in the order batches are sealed), in place of the request id of
    /// [`request_options`](Self::request_options). Every attempt of a batch carries the same
    /// id, and with a [spool](Self::spool) so does a re-send after a restart; numbers are never
    /// reused within a spool. Default: the request id of the options, if any.
    ///
    /// ```
    /// # use usage_core::UsageClient;
    /// # use usage_meter::Meter;
    /// # fn client() -> UsageClient { unimplemented!() }
    /// # fn _doc() {
    /// // Requests go out as nightly-0, nightly-1, ...
    /// let builder = Meter::builder(client()).request_id("nightly");
    /// # }
    /// ```
    pub fn request_id(mut self, base: impl Into<String>) -> Self {
        self.request_id = Some(base.into());
        self
    }

    /// The most [dead letters](Meter::dead_letters) held in memory (default 1,000 requests,
    /// each of up to 1,000 records). Later ones are counted, not held: see [`DeadLetters`].
    pub fn max_dead_letters(mut self, requests: usize) -> Self {
        self.max_dead_letters = requests;
        self
    }

    /// Starts the background task on the current tokio runtime.
    pub fn start(self) -> Result<Meter, StartError> {
        if !(1..=MAX_RECORDS_PER_REQUEST).contains(&self.max_records) {
            return Err(StartError::Invalid(format!(
                "records per request must be 1 to {MAX_RECORDS_PER_REQUEST}, not {}",
                self.max_records
            )));
        }
        if self.capacity == 0 || self.capacity > Semaphore::MAX_PERMITS {
            return Err(StartError::Invalid(format!(
                "capacity {} is out of range",
                self.capacity
            )));
        }
        if self.concurrency == 0 {
            return Err(StartError::Invalid("concurrency must be at least 1".to_string()));
        }
        if self.interval.is_zero() || self.bucket.is_some_and(|b| b.as_millis() == 0) {
            return Err(StartError::Invalid(
                "the flush interval and the aggregation bucket must be positive (the bucket at least 1 ms)".to_string(),
            ));
        }
        if let Some(base) = &self.request_id {
            // Every batch's id is this one with another number: checking one checks them all.
            self.options
                .clone()
                .with_request_id(format!("{base}-0"))
                .map_err(|e| StartError::Invalid(format!("request id: {e}")))?;
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        #[cfg(feature = "spool")]
        let opened = self.spool.as_deref().map(Spool::open).transpose()?;
        #[cfg(feature = "spool")]
        let has_spool = opened.is_some();
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox::default()),
            wake: tokio::sync::Notify::new(),
            room: Semaphore::new(self.capacity),
            when_full: self.when_full,
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            dead_letters: Mutex::new(DeadLetterList {
                held: DeadLetters::default(),
                max: self.max_dead_letters,
            }),
            worker: Mutex::new(None),
            #[cfg(feature = "spool")]
            failure: Mutex::new(None),
            #[cfg(feature = "spool")]
            checkpoints: Mutex::new(HashMap::new()),
            #[cfg(feature = "spool")]
            has_spool,
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let interval = self.interval;
        #[allow(unused_mut)]
        let mut worker = Worker::new(self, shared.clone());
        #[cfg(feature = "spool")]
        if let Some((spool, recovered)) = opened {
            worker.resume(spool, recovered);
        }
        *lock(&shared.worker) = Some(runtime.spawn(worker.run(receiver, interval)));
        Ok(Meter { shared, sender })
    }
}
