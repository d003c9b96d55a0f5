//! [`Meter`]: record usage events without waiting for the network; a background task batches
//! them per subscription and sends them through [`UsageClient`] with its retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use usage_core::{Error, UsageClient};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UsageDate};

use crate::bulk::{Outcome, MAX_RECORDS_PER_REQUEST};

/// What [`Meter::record`] does when the meter holds as many undelivered events as its
/// [capacity](MeterBuilder::capacity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Wait until deliveries make room (backpressure).
    #[default]
    Wait,
    /// Refuse the event with [`RecordError::Full`] at once.
    Refuse,
}

/// Why an event was not accepted. An event that was not accepted is not counted anywhere:
/// the caller still owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The meter holds as many undelivered events as its capacity.
    #[error("the meter is full: as many undelivered events as its capacity")]
    Full,
    /// The meter was shut down.
    #[error("the meter was shut down")]
    Closed,
}

/// A [`MeterBuilder::start`] that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of its range.
    #[error("invalid meter setting: {0}")]
    Invalid(String),
    /// There is no tokio runtime to run the background task on.
    #[error("a meter must be started inside a tokio runtime")]
    NoRuntime,
}

/// A batch Kill Bill refused for good: its usage, how many events it gathers, and why.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The request that was refused, with its tracking id.
    pub record: SubscriptionUsageRecord,
    /// How many recorded events it carries (more than its records when aggregating).
    pub events: u64,
    /// Kill Bill's reason.
    pub reason: String,
}

/// What a [`Meter::flush`] or [`Meter::shutdown`] left undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushReport {
    /// Whether every event accepted before the call was delivered or dead-lettered in time.
    pub complete: bool,
    /// Events accepted (at any time) and not yet delivered nor dead-lettered when the call
    /// returned.
    pub pending_events: u64,
    /// Events in dead letters so far (see [`Meter::dead_letters`]).
    pub dead_letter_events: u64,
}

/// Counters and gauges of a meter, as [`Meter::stats`] reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterStats {
    /// Events accepted by `record`.
    pub accepted: u64,
    /// Events on the server (recorded now, or recorded before by an attempt whose answer was
    /// lost).
    pub delivered: u64,
    /// Requests delivered.
    pub requests: u64,
    /// Times a request failed after all the client's retries and was put back to be sent again.
    pub retries: u64,
    /// Events in dead letters.
    pub dead_letter_events: u64,
    /// Requests in dead letters.
    pub dead_letter_requests: u64,
    /// Events accepted and neither delivered nor dead-lettered.
    pub pending: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    dead_letter_events: AtomicU64,
    dead_letter_requests: AtomicU64,
}

struct Shared {
    room: Semaphore,
    when_full: WhenFull,
    closed: AtomicBool,
    counters: Counters,
    dead_letters: Mutex<Vec<DeadLetter>>,
}

impl Shared {
    fn stats(&self) -> MeterStats {
        let c = &self.counters;
        let accepted = c.accepted.load(Ordering::Relaxed);
        let delivered = c.delivered.load(Ordering::Relaxed);
        let dead_letter_events = c.dead_letter_events.load(Ordering::Relaxed);
        MeterStats {
            accepted,
            delivered,
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            dead_letter_events,
            dead_letter_requests: c.dead_letter_requests.load(Ordering::Relaxed),
            pending: accepted.saturating_sub(delivered + dead_letter_events),
        }
    }
}

struct Event {
    subscription: SubscriptionId,
    unit: UnitType,
    date: UsageDate,
    amount: Amount,
}

enum Message {
    Event(Event),
    Flush(oneshot::Sender<()>),
    Stop,
}

/// Sets up a [`Meter`]; see [`Meter::builder`].
#[derive(Debug)]
#[must_use]
pub struct MeterBuilder {
    client: UsageClient,
    max_records: usize,
    interval: Duration,
    capacity: usize,
    when_full: WhenFull,
    bucket: Option<Duration>,
    concurrency: usize,
    backoff: Duration,
    max_backoff: Duration,
}

impl MeterBuilder {
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
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let shared = Arc::new(Shared {
            room: Semaphore::new(self.capacity),
            when_full: self.when_full,
            closed: AtomicBool::new(false),
            counters: Counters::default(),
            dead_letters: Mutex::new(Vec::new()),
        });
        let (sender, receiver) = mpsc::unbounded_channel();
        let worker = Worker {
            client: self.client,
            max_records: self.max_records,
            bucket_ms: self.bucket.map(|b| b.as_millis() as i64),
            concurrency: self.concurrency,
            backoff: self.backoff,
            max_backoff: self.max_backoff,
            shared: shared.clone(),
            open: HashMap::new(),
            ready: VecDeque::new(),
            waiting: Vec::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            waiters: Vec::new(),
            next_id: 0,
        };
        runtime.spawn(worker.run(receiver, self.interval));
        Ok(Meter { shared, sender })
    }
}

/// Records usage events without waiting for the network.
///
/// A background task groups the events per subscription into requests of at most 1,000
/// records, sends a subscription's batch when it is full or every
/// [flush interval](MeterBuilder::flush_interval), and sends each through the
/// [`UsageClient`] with its retries, under a tracking id fixed when the batch is sealed (so a
/// retry after a lost answer never counts twice). A request that still fails with an error
/// that may pass (the network, 5xx, 401, 403, 408, 429) is sent again later under the same
/// id; one Kill Bill refuses for good (another 4xx: an invalid row, an unknown subscription)
/// goes to the [dead letters](Meter::dead_letters), with its reason, and blocks nothing else.
///
/// Memory is bounded: at most [`capacity`](MeterBuilder::capacity) events are held undelivered;
/// beyond, [`record`](Self::record) waits or refuses, per [`WhenFull`]. Nothing is dropped
/// silently. Without a spool, events still held when the process ends are lost:
/// [`shutdown`](Self::shutdown) says how many.
///
/// Cheap to clone: every clone feeds the same meter.
#[derive(Clone)]
pub struct Meter {
    shared: Arc<Shared>,
    sender: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// A meter sending through `client`, with the defaults: 1,000 records per request, a 1 s
    /// flush interval, room for 1,000,000 events, [`WhenFull::Wait`], no aggregation, 4
    /// requests in flight.
    pub fn builder(client: UsageClient) -> MeterBuilder {
        MeterBuilder {
            client,
            max_records: MAX_RECORDS_PER_REQUEST,
            interval: Duration::from_secs(1),
            capacity: 1_000_000,
            when_full: WhenFull::Wait,
            bucket: None,
            concurrency: 4,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }

    /// Accepts one event. Returns at once when there is room; when full, waits or refuses
    /// per the meter's [`WhenFull`] policy. Never waits for the network itself.
    pub async fn record(
        &self,
        subscription: SubscriptionId,
        unit: &UnitType,
        date: UsageDate,
        amount: Amount,
    ) -> Result<(), RecordError> {
        if self.shared.when_full == WhenFull::Wait && self.shared.room.available_permits() == 0 {
            self.shared
                .room
                .acquire()
                .await
                .map_err(|_| RecordError::Closed)?
                .forget();
            return self.enqueue(subscription, unit, date, amount);
        }
        self.try_record(subscription, unit, date, amount)
    }

    /// Accepts one event, or refuses it at once with [`RecordError::Full`] when full,
    /// whatever the policy. Never waits.
    pub fn try_record(
        &self,
        subscription: SubscriptionId,
        unit: &UnitType,
        date: UsageDate,
        amount: Amount,
    ) -> Result<(), RecordError> {
        match self.shared.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(RecordError::Full),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(RecordError::Closed),
        }
        self.enqueue(subscription, unit, date, amount)
    }

    /// Hands an event whose room is taken to the background task.
    fn enqueue(
        &self,
        subscription: SubscriptionId,
        unit: &UnitType,
        date: UsageDate,
        amount: Amount,
    ) -> Result<(), RecordError> {
        if self.shared.closed.load(Ordering::Relaxed) {
            self.shared.room.add_permits(1);
            return Err(RecordError::Closed);
        }
        let event = Event {
            subscription,
            unit: unit.clone(),
            date,
            amount,
        };
        if self.sender.send(Message::Event(event)).is_err() {
            self.shared.room.add_permits(1);
            return Err(RecordError::Closed);
        }
        self.shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends every open batch now and waits, at most `deadline`, until every event accepted
    /// before the call is delivered or dead-lettered.
    pub async fn flush(&self, deadline: Duration) -> FlushReport {
        let (reply, done) = oneshot::channel();
        let complete = self.sender.send(Message::Flush(reply)).is_ok()
            && matches!(tokio::time::timeout(deadline, done).await, Ok(Ok(())));
        self.report(complete)
    }

    /// Refuses new events, then [flushes](Self::flush) within `deadline` and stops the
    /// background task. What was not delivered by then is reported, and lost (no spool).
    pub async fn shutdown(&self, deadline: Duration) -> FlushReport {
        self.shared.closed.store(true, Ordering::Relaxed);
        let report = self.flush(deadline).await;
        // The task may already be gone: then there is nothing left to stop.
        let _ = self.sender.send(Message::Stop);
        self.shared.room.close();
        report
    }

    fn report(&self, complete: bool) -> FlushReport {
        let stats = self.stats();
        FlushReport {
            complete,
            pending_events: stats.pending,
            dead_letter_events: stats.dead_letter_events,
        }
    }

    /// The counters and gauges now.
    pub fn stats(&self) -> MeterStats {
        self.shared.stats()
    }

    /// The batches Kill Bill refused for good, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A subscription's batch still taking events.
struct Open {
    events: u64,
    /// (unit type, date, amount) in arrival order; one entry per bucket when aggregating.
    entries: Vec<(UnitType, UsageDate, Decimal)>,
    /// Aggregation only: where each (unit type, bucket start) is in `entries`.
    buckets: HashMap<(UnitType, i64), usize>,
}

/// A batch whose members and tracking id are fixed.
struct Sealed {
    id: u64,
    record: Arc<SubscriptionUsageRecord>,
    events: u64,
    failures: u32,
}

struct Waiter {
    batches: HashSet<u64>,
    reply: oneshot::Sender<()>,
}

struct Worker {
    client: UsageClient,
    max_records: usize,
    bucket_ms: Option<i64>,
    concurrency: usize,
    backoff: Duration,
    max_backoff: Duration,
    shared: Arc<Shared>,
    open: HashMap<SubscriptionId, Open>,
    ready: VecDeque<Sealed>,
    waiting: Vec<(Instant, Sealed)>,
    in_flight: HashMap<tokio::task::Id, Sealed>,
    tasks: JoinSet<Outcome>,
    waiters: Vec<Waiter>,
    next_id: u64,
}

/// Whether Kill Bill refused a request for good: invalid input, or a 4xx other than 401,
/// 403, 408 and 429 (credentials and permissions can be fixed, timeouts and rate limits
/// pass). The contract lists 400 (invalid row) and 404 (unknown subscription) as final.
fn refused_for_good(error: &Error) -> bool {
    error.is_invalid_input()
        || error
            .status()
            .is_some_and(|s| s.is_client_error() && !matches!(s.as_u16(), 401 | 403 | 408 | 429))
}

impl Worker {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Message>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        let mut inbox = Vec::with_capacity(1024);
        loop {
            self.dispatch();
            if draining && self.outstanding() == 0 {
                return;
            }
            let next_retry = self.waiting.iter().map(|(at, _)| *at).min();
            tokio::select! {
                received = receiver.recv_many(&mut inbox, 1024), if !draining => {
                    if received == 0 {
                        // Every handle was dropped without a shutdown: deliver what is held.
                        self.seal_all();
                        draining = true;
                    }
                    for message in inbox.drain(..) {
                        match message {
                            Message::Event(event) => self.add(event),
                            Message::Flush(reply) => self.flush(reply),
                            Message::Stop => return,
                        }
                    }
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.settle(joined),
                _ = tick.tick() => self.seal_all(),
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {
                    self.wake_retries();
                }
            }
        }
    }

    fn outstanding(&self) -> usize {
        self.open.len() + self.ready.len() + self.waiting.len() + self.in_flight.len()
    }

    fn add(&mut self, event: Event) {
        let (date, key) = match self.bucket_ms {
            None => (event.date, None),
            Some(bucket) => {
                let millis = event.date.instant().timestamp_millis();
                let start = millis.div_euclid(bucket) * bucket;
                let date = chrono::DateTime::from_timestamp_millis(start)
                    .map(UsageDate::Instant)
                    .unwrap_or(event.date);
                (date, Some((event.unit.clone(), start)))
            }
        };
        let amount = event.amount.value();
        let open = self.open.entry(event.subscription).or_insert_with(|| Open {
            events: 0,
            entries: Vec::new(),
            buckets: HashMap::new(),
        });
        if let Some(at) = key.as_ref().and_then(|key| open.buckets.get(key)).copied() {
            let sum = open.entries[at]
                .2
                .checked_add(amount)
                .filter(|s| Amount::new(*s).is_ok());
            if let Some(sum) = sum {
                open.entries[at].2 = sum;
                open.events += 1;
                return;
            }
            // The sum would not fit decimal(18,9): send what the bucket holds, start anew.
            self.seal(event.subscription);
            return self.add(event);
        }
        if let Some(key) = key {
            open.buckets.insert(key, open.entries.len());
        }
        open.entries.push((event.unit, date, amount));
        open.events += 1;
        if open.entries.len() >= self.max_records {
            self.seal(event.subscription);
        }
    }

    fn seal_all(&mut self) {
        let subscriptions: Vec<SubscriptionId> = self.open.keys().copied().collect();
        for subscription in subscriptions {
            self.seal(subscription);
        }
    }

    /// Fixes the members and the tracking id of `subscription`'s open batch.
    fn seal(&mut self, subscription: SubscriptionId) {
        let Some(open) = self.open.remove(&subscription) else {
            return;
        };
        let tracking_id = TrackingId::random();
        let mut builder = SubscriptionUsageRecord::builder(subscription).tracking_id(tracking_id.as_str());
        for (unit, date, amount) in &open.entries {
            builder = builder.record(unit.as_str(), *date, *amount);
        }
        let id = self.next_id;
        self.next_id += 1;
        // Every unit type and amount was validated on the way in, sums are kept within
        // decimal(18,9) and a batch is never empty: a failure here is a bug, and says so.
        let record = builder.build().expect("a batch of validated events always builds");
        self.ready.push_back(Sealed {
            id,
            record: Arc::new(record),
            events: open.events,
            failures: 0,
        });
    }

    fn dispatch(&mut self) {
        while self.tasks.len() < self.concurrency {
            let Some(sealed) = self.ready.pop_front() else {
                return;
            };
            let client = self.client.clone();
            let record = sealed.record.clone();
            let handle = self
                .tasks
                .spawn(async move { Outcome::of(client.record_usage(&record).await) });
            self.in_flight.insert(handle.id(), sealed);
        }
    }

    fn settle(&mut self, joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let (task, outcome) = match joined {
            Ok((task, outcome)) => (task, outcome),
            Err(e) => (e.id(), Outcome::Unfinished),
        };
        let Some(mut sealed) = self.in_flight.remove(&task) else {
            return;
        };
        let counters = &self.shared.counters;
        match outcome {
            Outcome::Recorded { .. } | Outcome::AlreadyRecorded => {
                counters.delivered.fetch_add(sealed.events, Ordering::Relaxed);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(tracking_id = %tracking_id(&sealed), events = sealed.events, "meter: delivered");
            }
            Outcome::Failed(e) if refused_for_good(&e) => {
                tracing::warn!(tracking_id = %tracking_id(&sealed), events = sealed.events, error = %e,
                    "meter: refused for good, kept as a dead letter");
                self.shared
                    .dead_letters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(DeadLetter {
                        record: (*sealed.record).clone(),
                        events: sealed.events,
                        reason: e.to_string(),
                    });
                counters.dead_letter_events.fetch_add(sealed.events, Ordering::Relaxed);
                counters.dead_letter_requests.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(_) | Outcome::Unfinished | Outcome::NotSent => {
                sealed.failures += 1;
                counters.retries.fetch_add(1, Ordering::Relaxed);
                let wait = self
                    .backoff
                    .saturating_mul(1 << sealed.failures.min(16).saturating_sub(1))
                    .min(self.max_backoff);
                tracing::warn!(tracking_id = %tracking_id(&sealed), failures = sealed.failures,
                    wait_ms = wait.as_millis() as u64, "meter: request failed, sending it again later");
                self.waiting.push((Instant::now() + wait, sealed));
                return;
            }
        }
        self.shared.room.add_permits(sealed.events as usize);
        for waiter in std::mem::take(&mut self.waiters) {
            let mut waiter = waiter;
            waiter.batches.remove(&sealed.id);
            if waiter.batches.is_empty() {
                // The caller may have stopped waiting (its deadline passed).
                let _ = waiter.reply.send(());
            } else {
                self.waiters.push(waiter);
            }
        }
    }

    fn wake_retries(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.waiting = later;
        self.ready.extend(due.into_iter().map(|(_, sealed)| sealed));
    }

    fn flush(&mut self, reply: oneshot::Sender<()>) {
        self.seal_all();
        let batches: HashSet<u64> = self
            .ready
            .iter()
            .chain(self.waiting.iter().map(|(_, s)| s))
            .chain(self.in_flight.values())
            .map(|s| s.id)
            .collect();
        if batches.is_empty() {
            let _ = reply.send(());
        } else {
            self.waiters.push(Waiter { batches, reply });
        }
    }
}

fn tracking_id(sealed: &Sealed) -> &str {
    sealed.record.tracking_id().map(TrackingId::as_str).unwrap_or_default()
}
