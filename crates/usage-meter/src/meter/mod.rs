//! [`Meter`]: record usage events without waiting for the network; a background task batches
//! them per subscription and sends them through [`UsageClient`] with its retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use usage_core::{Error, RequestOptions, UsageClient};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UsageDate};

use crate::bulk::{Outcome, MAX_RECORDS_PER_REQUEST};
#[cfg(feature = "spool")]
use crate::spool::{Commit, Spool, SpoolError};

mod builder;
mod worker;

pub use builder::MeterBuilder;

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
#[non_exhaustive]
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
#[non_exhaustive]
pub enum StartError {
    /// A setting is out of its range.
    #[error("invalid meter setting: {0}")]
    Invalid(String),
    /// There is no tokio runtime to run the background task on.
    #[error("a meter must be started inside a tokio runtime")]
    NoRuntime,
    /// The spool cannot be opened or read.
    #[cfg(feature = "spool")]
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Why [`Meter::durable`] or [`Meter::record_from_source`] failed.
#[cfg(feature = "spool")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurableError {
    /// The meter has no spool: nothing it holds is durable.
    #[error("the meter has no spool")]
    NoSpool,
    /// The spool failed and the meter stopped (what was committed is still in the spool).
    #[error("the spool failed and the meter stopped: {0}")]
    Failed(String),
    /// The meter was shut down.
    #[error("the meter was shut down")]
    Closed,
    /// No room for the events (with [`WhenFull::Refuse`], or more events than the capacity).
    #[error("the meter is full")]
    Full,
    /// A request given to [`Meter::record_requests_from_source`] has no tracking id, or more
    /// than [`MAX_RECORDS_PER_REQUEST`] records; nothing of the call was taken.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A batch Kill Bill refused for good: its usage, how many events it gathers, and why.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The request that was refused, with its tracking id.
    pub record: SubscriptionUsageRecord,
    /// How many recorded events it carries (more than its records when aggregating).
    pub events: u64,
    /// Kill Bill's reason.
    pub reason: String,
}

/// The [dead letters](Meter::dead_letters) a meter holds in memory, and how many it left out.
///
/// The meter holds at most [`max_dead_letters`](MeterBuilder::max_dead_letters) of them (the
/// oldest); the later ones are only counted in `left_out`. Either way, their events are in
/// [`MeterStats::dead_letter_events`], and with a spool every one of them stays in it, with
/// its reason.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DeadLetters {
    /// The dead letters held, oldest first.
    pub letters: Vec<DeadLetter>,
    /// Refused requests not held, beyond the bound.
    pub left_out: u64,
}

/// The dead letters of a meter, bounded.
struct DeadLetterList {
    held: DeadLetters,
    max: usize,
}

impl DeadLetterList {
    fn push(&mut self, letter: DeadLetter) {
        if self.held.letters.len() < self.max {
            self.held.letters.push(letter);
        } else {
            self.held.left_out += 1;
        }
    }
}

/// What a [`Meter::flush`] or [`Meter::shutdown`] left undone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct MeterStats {
    /// Events accepted, as the background task takes them (with a spool, including those
    /// found in it at start).
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
    /// Age of the oldest undelivered event's batch, in milliseconds, as of the last flush
    /// interval (0 when nothing is held).
    pub oldest_pending_ms: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    delivered: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    dead_letter_events: AtomicU64,
    dead_letter_requests: AtomicU64,
    oldest_pending_ms: AtomicU64,
}

/// Events handed over by `record`, taken by the background task in groups: one lock per event
/// on the hot path, and one wake-up per group.
#[derive(Default)]
struct Inbox {
    events: Vec<Handed>,
    /// The unit types of `events`, each kept once (among the last few): no allocation per
    /// event on the hot path.
    units: Vec<UnitType>,
    /// The background task stopped: nothing is taken any more.
    stopped: bool,
}

/// An event in the [`Inbox`]: its unit type is an index into the inbox's `units`.
struct Handed {
    subscription: SubscriptionId,
    unit: usize,
    date: UsageDate,
    amount: Amount,
}

/// The default of [`MeterBuilder::max_dead_letters`].
pub const DEFAULT_MAX_DEAD_LETTERS: usize = 1_000;

/// How many of the inbox's latest unit types `record` looks through before adding one.
const UNITS_LOOKED_UP: usize = 8;

struct Shared {
    inbox: Mutex<Inbox>,
    wake: tokio::sync::Notify,
    room: Semaphore,
    when_full: WhenFull,
    closed: AtomicBool,
    counters: Counters,
    dead_letters: Mutex<DeadLetterList>,
    /// The background task, awaited by [`Meter::shutdown`].
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Why the spool failed, once it did.
    #[cfg(feature = "spool")]
    failure: Mutex<Option<String>>,
    /// The sources' positions, as last committed.
    #[cfg(feature = "spool")]
    checkpoints: Mutex<HashMap<String, u64>>,
    #[cfg(feature = "spool")]
    has_spool: bool,
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
            oldest_pending_ms: c.oldest_pending_ms.load(Ordering::Relaxed),
        }
    }
}

struct Event {
    subscription: SubscriptionId,
    unit: UnitType,
    date: UsageDate,
    amount: Amount,
}

/// One usage event, for [`Meter::record_from_source`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The subscription.
    pub subscription: SubscriptionId,
    /// The unit type.
    pub unit: UnitType,
    /// When.
    pub date: UsageDate,
    /// How much.
    pub amount: Amount,
}

/// What [`Meter::record_requests_from_source`] hands to the background task.
#[cfg(feature = "spool")]
struct Source {
    events: Vec<Usage>,
    requests: Vec<SubscriptionUsageRecord>,
    name: String,
    position: u64,
    /// Answered once committed, with the positions in `requests` of those not taken because
    /// their tracking id was taken.
    reply: oneshot::Sender<Vec<usize>>,
}

enum Message {
    Flush(oneshot::Sender<()>),
    #[cfg(feature = "spool")]
    Durable(oneshot::Sender<()>),
    #[cfg(feature = "spool")]
    Source(Source),
    Stop,
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
/// [`shutdown`](Self::shutdown) says how many; with a [spool](MeterBuilder::spool) (feature
/// `spool`), they stay in it and the next start on the same spool delivers them.
///
/// Exactly once rests on Kill Bill refusing a tracking id it already stored. A batch never has
/// two attempts in flight at once, and after the client gives up on one whose outcome is unknown
/// the meter waits [`retry_backoff`](MeterBuilder::retry_backoff) before sending it again. Kill
/// Bill's duplicate check is not atomic (check, then insert): an attempt still being processed
/// when its retry arrives can be stored twice. The wait must outlast the server's processing of
/// an attempt for that window to close; the tests show exactly once against the emulator, whose
/// check is atomic.
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
    /// requests in flight, 1,000 dead letters held.
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
            options: RequestOptions::new(),
            request_id: None,
            max_dead_letters: DEFAULT_MAX_DEAD_LETTERS,
            #[cfg(feature = "spool")]
            spool: None,
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
        let mut inbox = lock(&self.shared.inbox);
        if inbox.stopped {
            drop(inbox);
            self.shared.room.add_permits(1);
            return Err(RecordError::Closed);
        }
        let known = inbox.units.len();
        let unit = match inbox.units.iter().rev().take(UNITS_LOOKED_UP).position(|u| u == unit) {
            Some(back) => known - 1 - back,
            None => {
                inbox.units.push(unit.clone());
                known
            }
        };
        let first = inbox.events.is_empty();
        inbox.events.push(Handed {
            subscription,
            unit,
            date,
            amount,
        });
        drop(inbox);
        if first {
            self.shared.wake.notify_one();
        }
        // Counted by the background task as it takes it (one counter write per group, none
        // here on the hot path).
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
    /// background task (requests still in flight are abandoned; with a spool their batches
    /// stay in it, under their tracking ids). Returns once the task has stopped; what was not
    /// delivered by then is reported, and lost without a spool.
    pub async fn shutdown(&self, deadline: Duration) -> FlushReport {
        self.shared.closed.store(true, Ordering::Relaxed);
        let report = self.flush(deadline).await;
        // The task may already be gone: then there is nothing left to stop.
        let _ = self.sender.send(Message::Stop);
        self.shared.room.close();
        let worker = lock(&self.shared.worker).take();
        if let Some(worker) = worker {
            // A panic of the task was already reported by the runtime; what it held is in
            // the report below.
            let _ = worker.await;
        }
        self.report(report.complete)
    }

    /// Waits until every event accepted before the call is committed to the spool (and so
    /// survives a crash or a power cut). Many events share one commit: call it after a group
    /// of events rather than after each.
    #[cfg(feature = "spool")]
    pub async fn durable(&self) -> Result<(), DurableError> {
        if !self.shared.has_spool {
            return Err(DurableError::NoSpool);
        }
        let (reply, done) = oneshot::channel();
        self.sender.send(Message::Durable(reply)).map_err(|_| self.stopped())?;
        done.await.map_err(|_| self.stopped())
    }

    /// Accepts `events` read from the source `name` (a file, a queue) up to `position`, and
    /// commits them in ONE transaction with `position` as the source's new position; returns
    /// once that commit is durable. A crash leaves either all of them and the new position,
    /// or none and the old one: read from [`checkpoint`](Self::checkpoint) after a restart,
    /// and no event is taken twice. Room for all of them is taken first, per the meter's
    /// [`WhenFull`] policy (more events than the capacity are refused: send fewer at once).
    #[cfg(feature = "spool")]
    pub async fn record_from_source(&self, events: Vec<Usage>, name: &str, position: u64) -> Result<(), DurableError> {
        self.record_requests_from_source(events, Vec::new(), name, position)
            .await
            .map(drop)
    }

    /// [`record_from_source`](Self::record_from_source), with whole requests under the
    /// caller's own tracking ids besides the events: each of `requests` is sealed as given (its
    /// records, its tracking id; no aggregation, no regrouping) in the same transaction as
    /// the events and the source's new position, before its first attempt, and sent like any
    /// batch (a restart sends it again under the same id).
    ///
    /// A tracking id names one request of a subscription (Kill Bill's duplicate check is per
    /// subscription and tracking id): a request whose subscription and tracking id this spool
    /// already sealed (earlier in this call, or in an earlier one, in any run) is not taken, and
    /// its position in `requests` is returned. Kill Bill would refuse it as a duplicate and its
    /// records would never count; the caller decides what to do with it. Every request must have a tracking id and at most
    /// [`MAX_RECORDS_PER_REQUEST`] records ([`DurableError::Invalid`] otherwise, and nothing is
    /// taken). Each record takes room like an event.
    ///
    /// ```
    /// # #[cfg(feature = "spool")]
    /// # {
    /// use std::time::Duration;
    /// use usage_core::UsageClient;
    /// use usage_meter::Meter;
    /// use usage_models::{Amount, SubscriptionUsageRecord, UsageDate};
    /// use usage_transport_memory::{InMemoryKillBill, InstantTimer};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let kb = InMemoryKillBill::new();
    /// let subscription = kb.create_subscription();
    /// let client = UsageClient::builder("http://kb.test").user("admin", "password").tenant("bob", "lazar")
    ///     .transport(kb.clone()).timer(InstantTimer::new()).build().unwrap();
    /// let dir = tempfile::tempdir().unwrap();
    /// let meter = Meter::builder(client).spool(dir.path().join("spool.sqlite")).start().unwrap();
    /// let request = |amount: u32| {
    ///     SubscriptionUsageRecord::builder(subscription)
    ///         .tracking_id("order-42")
    ///         .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), Amount::from(amount))
    ///         .build()
    ///         .unwrap()
    /// };
    /// // Sealed under "order-42", with the position of the source, in one commit.
    /// let refused = meter.record_requests_from_source(Vec::new(), vec![request(5)], "orders", 1).await.unwrap();
    /// assert!(refused.is_empty());
    /// // The same tracking id again: not taken; its position is returned.
    /// let refused = meter.record_requests_from_source(Vec::new(), vec![request(7)], "orders", 2).await.unwrap();
    /// assert_eq!(refused, [0]);
    /// assert!(meter.shutdown(Duration::from_secs(10)).await.complete);
    /// assert_eq!(kb.rows(subscription).len(), 1);
    /// assert_eq!(meter.checkpoint("orders"), Some(2));
    /// # });
    /// # }
    /// ```
    #[cfg(feature = "spool")]
    pub async fn record_requests_from_source(
        &self,
        events: Vec<Usage>,
        requests: Vec<SubscriptionUsageRecord>,
        name: &str,
        position: u64,
    ) -> Result<Vec<usize>, DurableError> {
        if !self.shared.has_spool {
            return Err(DurableError::NoSpool);
        }
        let mut records = events.len();
        for request in &requests {
            let rows = request_records(request);
            if request.tracking_id().is_none() || rows > MAX_RECORDS_PER_REQUEST {
                return Err(DurableError::Invalid(format!(
                    "a request of subscription {} needs a tracking id and at most {MAX_RECORDS_PER_REQUEST} records \
                     (it has {rows})",
                    request.subscription_id()
                )));
            }
            records += rows;
        }
        let count = u32::try_from(records).map_err(|_| DurableError::Full)?;
        let room = match self.shared.when_full {
            WhenFull::Wait => self.shared.room.acquire_many(count).await.map_err(|_| self.stopped())?,
            WhenFull::Refuse => self.shared.room.try_acquire_many(count).map_err(|e| match e {
                tokio::sync::TryAcquireError::NoPermits => DurableError::Full,
                tokio::sync::TryAcquireError::Closed => self.stopped(),
            })?,
        };
        room.forget();
        let (reply, done) = oneshot::channel();
        let source = Source {
            events,
            requests,
            name: name.to_string(),
            position,
            reply,
        };
        if self.shared.closed.load(Ordering::Relaxed) || self.sender.send(Message::Source(source)).is_err() {
            self.shared.room.add_permits(count as usize);
            return Err(self.stopped());
        }
        done.await.map_err(|_| self.stopped())
    }

    /// The last committed position of the source `name` (from this run or an earlier one).
    #[cfg(feature = "spool")]
    pub fn checkpoint(&self, name: &str) -> Option<u64> {
        lock(&self.shared.checkpoints).get(name).copied()
    }

    #[cfg(feature = "spool")]
    fn stopped(&self) -> DurableError {
        match lock(&self.shared.failure).clone() {
            Some(reason) => DurableError::Failed(reason),
            None => DurableError::Closed,
        }
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

    /// The batches Kill Bill refused for good, oldest first, as many as
    /// [`max_dead_letters`](MeterBuilder::max_dead_letters), and how many more were left out
    /// (with a spool, this includes those found in it at start).
    pub fn dead_letters(&self) -> DeadLetters {
        lock(&self.shared.dead_letters).held.clone()
    }

    /// Takes the dead letters held (as [`dead_letters`](Self::dead_letters) returns them) and
    /// empties the list: the next ones are held again, up to the bound. The counters keep
    /// their totals. For a caller that writes dead letters somewhere as they come.
    pub fn take_dead_letters(&self) -> DeadLetters {
        std::mem::take(&mut lock(&self.shared.dead_letters).held)
    }
}

/// The usage records of a request.
#[cfg(feature = "spool")]
fn request_records(request: &SubscriptionUsageRecord) -> usize {
    request
        .unit_usage_records()
        .iter()
        .map(|unit| unit.usage_records().len())
        .sum()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
