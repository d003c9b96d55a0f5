//! The background task of a [`Meter`]: it takes the events handed over, seals them into
//! batches per subscription, commits them to the spool, sends them with bounded concurrency
//! and settles what came back.

use super::*;

/// A subscription's batch still taking events.
struct Open {
    since: Instant,
    events: u64,
    /// The ids of its events (in the spool's `events` table when there is a spool).
    members: Vec<i64>,
    /// (unit type, date, amount) in arrival order; one entry per bucket when aggregating.
    /// Amounts stay [`Amount`]s (checked once, on the way in, or when summed), so that sealing
    /// does not check them again.
    entries: Vec<(UnitType, UsageDate, Amount)>,
    /// Aggregation only: where each (unit type, bucket start) is in `entries`.
    buckets: HashMap<(UnitType, i64), usize>,
}

/// A batch whose members and tracking id are fixed.
struct Sealed {
    id: u64,
    since: Instant,
    record: Arc<SubscriptionUsageRecord>,
    events: u64,
    failures: u32,
}

struct Waiter {
    batches: HashSet<u64>,
    reply: oneshot::Sender<()>,
}

pub(super) struct Worker {
    client: UsageClient,
    max_records: usize,
    bucket_ms: Option<i64>,
    concurrency: usize,
    backoff: Duration,
    max_backoff: Duration,
    options: RequestOptions,
    /// The base of each request's id: `{base}-{batch id}`.
    request_id: Option<String>,
    shared: Arc<Shared>,
    open: HashMap<SubscriptionId, Open>,
    /// Sealed, not yet committed to the spool: not sent before.
    sealing: Vec<Sealed>,
    ready: VecDeque<Sealed>,
    waiting: Vec<(Instant, Sealed)>,
    in_flight: HashMap<tokio::task::Id, Sealed>,
    tasks: JoinSet<Outcome>,
    waiters: Vec<Waiter>,
    /// The other half of the inbox's double buffer.
    spare: (Vec<Handed>, Vec<UnitType>),
    next_batch: u64,
    next_event: i64,
    #[cfg(feature = "spool")]
    spool: Option<Arc<Mutex<Spool>>>,
    /// What the next group commit writes.
    #[cfg(feature = "spool")]
    commit: Commit,
    #[cfg(feature = "spool")]
    durable_waiters: Vec<oneshot::Sender<()>>,
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

/// The most control messages (flush, durable, source, stop) the background task takes at
/// once. Events do not go through them: `record` hands them over in the inbox, and a group
/// commit holds every event handed over since the previous one.
const INBOX: usize = 64;

impl Worker {
    /// A worker with the settings of `builder`, sharing `shared`, holding nothing yet.
    /// Takes over `spool` and what it held when opened: those batches are sent first.
    #[cfg(feature = "spool")]
    pub(super) fn resume(&mut self, spool: Spool, recovered: crate::spool::Recovered) {
        self.recover(recovered);
        self.spool = Some(Arc::new(Mutex::new(spool)));
    }

    pub(super) fn new(builder: MeterBuilder, shared: Arc<Shared>) -> Worker {
        Worker {
            client: builder.client,
            max_records: builder.max_records,
            bucket_ms: builder.bucket.map(|b| b.as_millis() as i64),
            concurrency: builder.concurrency,
            backoff: builder.backoff,
            max_backoff: builder.max_backoff,
            options: builder.options,
            request_id: builder.request_id,
            shared,
            open: HashMap::new(),
            sealing: Vec::new(),
            ready: VecDeque::new(),
            waiting: Vec::new(),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            waiters: Vec::new(),
            spare: (Vec::new(), Vec::new()),
            next_batch: 0,
            next_event: 0,
            #[cfg(feature = "spool")]
            spool: None,
            #[cfg(feature = "spool")]
            commit: Commit::default(),
            #[cfg(feature = "spool")]
            durable_waiters: Vec::new(),
        }
    }

    /// Serves the meter until it stops, then closes the inbox.
    pub(super) async fn run(mut self, receiver: mpsc::UnboundedReceiver<Message>, interval: Duration) {
        self.serve(receiver, interval).await;
        self.close_inbox();
    }

    async fn serve(&mut self, mut receiver: mpsc::UnboundedReceiver<Message>, interval: Duration) {
        let shared = self.shared.clone();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut draining = false;
        let mut inbox = Vec::with_capacity(INBOX);
        loop {
            // Delivered marks alone wait while requests are out, for the next commit that has
            // to be made anyway: one commit per answer kept the loop from sending while it
            // waited for the disk. A mark lost in a crash only costs a re-send, which Kill Bill
            // refuses as a duplicate of its tracking id (already recorded).
            let marks_only = self.commit_holds_delivered_marks_only() && !self.tasks.is_empty();
            if !marks_only && !self.persist().await {
                return;
            }
            self.dispatch();
            if draining && self.outstanding() == 0 {
                return;
            }
            let next_retry = self.waiting.iter().map(|(at, _)| *at).min();
            tokio::select! {
                _ = shared.wake.notified() => self.take_events(),
                received = receiver.recv_many(&mut inbox, INBOX), if !draining => {
                    // Events recorded before a message are taken before it.
                    self.take_events();
                    if received == 0 {
                        // Every handle was dropped without a shutdown: deliver what is held.
                        self.seal_all();
                        draining = true;
                    }
                    for message in inbox.drain(..) {
                        match message {
                            Message::Flush(reply) => self.flush(reply),
                            #[cfg(feature = "spool")]
                            Message::Durable(reply) => self.durable_waiters.push(reply),
                            #[cfg(feature = "spool")]
                            Message::Source(source) => {
                                // The events, the requests and the position go in one
                                // commit, and alone: events before them are committed first.
                                if !self.persist().await {
                                    return;
                                }
                                let Some(refused) = self.take_source(source.events, source.requests) else {
                                    return;
                                };
                                self.commit.checkpoint = Some((source.name, source.position));
                                if !self.persist().await {
                                    return;
                                }
                                // The caller may have stopped waiting.
                                let _ = source.reply.send(refused);
                            }
                            Message::Stop => {
                                // Events recorded as the meter stopped are counted (and, with
                                // a spool, kept for the next start), never dropped unseen.
                                self.close_inbox();
                                let _ = self.persist().await;
                                return;
                            }
                        }
                    }
                }
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.settle(joined),
                _ = tick.tick() => {
                    self.seal_all();
                    self.observe();
                }
                _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now)), if next_retry.is_some() => {
                    self.wake_retries();
                }
            }
        }
    }

    /// Takes the events `record` handed over since the last time.
    fn take_events(&mut self) {
        {
            let mut inbox = lock(&self.shared.inbox);
            let inbox = &mut *inbox;
            std::mem::swap(&mut inbox.events, &mut self.spare.0);
            std::mem::swap(&mut inbox.units, &mut self.spare.1);
        }
        let (mut events, mut units) = std::mem::take(&mut self.spare);
        self.count_accepted(events.len() as u64);
        for handed in events.drain(..) {
            self.accept(Event {
                subscription: handed.subscription,
                unit: units[handed.unit].clone(),
                date: handed.date,
                amount: handed.amount,
            });
        }
        units.clear();
        self.spare = (events, units);
    }

    /// Takes the last events and refuses any more.
    fn close_inbox(&mut self) {
        lock(&self.shared.inbox).stopped = true;
        self.take_events();
    }

    /// Commits what changed since the last commit (one transaction), then lets the sealed
    /// batches go and answers the [`Meter::durable`] waiters. `false` when the spool failed:
    /// the meter stops.
    async fn persist(&mut self) -> bool {
        #[cfg(feature = "spool")]
        if let Some(spool) = &self.spool {
            if !self.commit.is_empty() {
                let commit = std::mem::take(&mut self.commit);
                let events = commit.events.len() as u64;
                let spool = spool.clone();
                let written =
                    tokio::task::spawn_blocking(move || lock(&spool).write(&commit).map(|()| commit.checkpoint)).await;
                match written {
                    Ok(Ok(checkpoint)) => {
                        crate::observe::spooled(events);
                        if let Some((name, position)) = checkpoint {
                            lock(&self.shared.checkpoints).insert(name, position);
                        }
                    }
                    Ok(Err(e)) => return self.fail(e.to_string()),
                    Err(e) => return self.fail(format!("the spool's writer ended: {e}")),
                }
            }
            for waiter in self.durable_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
        self.ready.extend(self.sealing.drain(..));
        true
    }

    /// Whether the next commit holds delivered marks and nothing else, and no one waits
    /// for a commit.
    fn commit_holds_delivered_marks_only(&self) -> bool {
        #[cfg(feature = "spool")]
        return self.commit.holds_delivered_marks_only() && self.durable_waiters.is_empty();
        #[cfg(not(feature = "spool"))]
        false
    }

    /// Stops the meter on a spool failure: loudly, keeping what was committed.
    #[cfg(feature = "spool")]
    fn fail(&mut self, reason: String) -> bool {
        tracing::error!(%reason, "meter: the spool failed; stopping (what was committed stays in the spool)");
        *lock(&self.shared.failure) = Some(reason);
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.room.close();
        false
    }

    /// Puts back what a spool held at start: events in open batches, sealed batches as they
    /// were (same members, same tracking id), dead letters.
    #[cfg(feature = "spool")]
    fn recover(&mut self, recovered: crate::spool::Recovered) {
        let shared = self.shared.clone();
        let counters = &shared.counters;
        let mut held = 0u64;
        for batch in recovered.batches {
            self.next_batch = self.next_batch.max(batch.id + 1);
            match batch.dead_reason {
                Some(reason) => {
                    counters.accepted.fetch_add(batch.events, Ordering::Relaxed);
                    counters.dead_letter_events.fetch_add(batch.events, Ordering::Relaxed);
                    counters.dead_letter_requests.fetch_add(1, Ordering::Relaxed);
                    lock(&shared.dead_letters).push(DeadLetter {
                        record: batch.record,
                        events: batch.events,
                        reason,
                    });
                }
                None => {
                    held += batch.events;
                    self.ready.push_back(Sealed {
                        id: batch.id,
                        since: Instant::now(),
                        record: Arc::new(batch.record),
                        events: batch.events,
                        failures: 0,
                    });
                }
            }
        }
        for event in recovered.events {
            held += 1;
            self.next_event = self.next_event.max(event.id + 1);
            self.add(
                event.id,
                Event {
                    subscription: event.subscription,
                    unit: event.unit,
                    date: event.date,
                    amount: event.amount,
                },
            );
        }
        counters.accepted.fetch_add(held, Ordering::Relaxed);
        // Recovered events take room like new ones (at most all of it).
        let room = &self.shared.room;
        room.forget_permits(usize::try_from(held).unwrap_or(usize::MAX));
        self.next_batch = self.next_batch.max(recovered.next_batch);
        *lock(&self.shared.checkpoints) = recovered.checkpoints;
        tracing::info!(events = held, "meter: recovered from the spool");
    }

    /// Takes what a source hands over: its events into their open batches, its requests
    /// sealed as given, but those whose (subscription, tracking id) the spool sealed before
    /// (their positions returned, their room given back). `None` when the spool failed: the meter stops.
    #[cfg(feature = "spool")]
    fn take_source(&mut self, events: Vec<Usage>, requests: Vec<SubscriptionUsageRecord>) -> Option<Vec<usize>> {
        let mut refused = Vec::new();
        let mut taken = Vec::with_capacity(requests.len());
        let mut fresh = HashSet::new();
        for (at, request) in requests.into_iter().enumerate() {
            let tracking_id = request
                .tracking_id()
                .map(TrackingId::as_str)
                .unwrap_or_default()
                .to_string();
            let key = (request.subscription_id(), tracking_id);
            let sealed_before = match self
                .spool
                .as_ref()
                .map(|spool| lock(spool).has_tracking_id(key.0, &key.1))
            {
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    self.fail(e.to_string());
                    return None;
                }
                None => false,
            };
            if sealed_before || !fresh.insert(key) {
                self.shared.room.add_permits(request_records(&request));
                refused.push(at);
            } else {
                taken.push(request);
            }
        }
        let records: usize = taken.iter().map(request_records).sum();
        self.count_accepted((events.len() + records) as u64);
        for usage in events {
            self.accept(Event {
                subscription: usage.subscription,
                unit: usage.unit,
                date: usage.date,
                amount: usage.amount,
            });
        }
        for request in taken {
            let events = request_records(&request) as u64;
            let id = self.next_batch;
            self.next_batch += 1;
            // The wire form of a validated record always serializes.
            let body = serde_json::to_string(&request).expect("a record always serializes");
            let tracking_id = request
                .tracking_id()
                .map(TrackingId::as_str)
                .unwrap_or_default()
                .to_string();
            self.commit
                .seal_given(id, request.subscription_id(), tracking_id, events, body);
            self.sealing.push(Sealed {
                id,
                since: Instant::now(),
                record: Arc::new(request),
                events,
                failures: 0,
            });
        }
        Some(refused)
    }

    fn count_accepted(&self, events: u64) {
        if events > 0 {
            self.shared.counters.accepted.fetch_add(events, Ordering::Relaxed);
            crate::observe::accepted(events);
        }
    }

    fn outstanding(&self) -> usize {
        self.open.len() + self.sealing.len() + self.ready.len() + self.waiting.len() + self.in_flight.len()
    }

    /// Takes a new event: into the next commit (with a spool) and into its open batch.
    fn accept(&mut self, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        #[cfg(feature = "spool")]
        if self.spool.is_some() {
            self.commit
                .events
                .push((id, event.subscription, event.unit.clone(), event.date, event.amount));
        }
        self.add(id, event);
    }

    fn add(&mut self, id: i64, event: Event) {
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
        let amount = event.amount;
        let open = self.open.entry(event.subscription).or_insert_with(|| Open {
            since: Instant::now(),
            events: 0,
            members: Vec::new(),
            entries: Vec::new(),
            buckets: HashMap::new(),
        });
        if let Some(at) = key.as_ref().and_then(|key| open.buckets.get(key)).copied() {
            let sum = open.entries[at]
                .2
                .value()
                .checked_add(amount.value())
                .and_then(|s| Amount::new(s).ok());
            if let Some(sum) = sum {
                open.entries[at].2 = sum;
                open.events += 1;
                open.members.push(id);
                return;
            }
            // The sum would not fit decimal(18,9): send what the bucket holds, start anew.
            self.seal(event.subscription);
            return self.add(id, event);
        }
        if let Some(key) = key {
            open.buckets.insert(key, open.entries.len());
        }
        open.entries.push((event.unit, date, amount));
        open.events += 1;
        open.members.push(id);
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

    /// Fixes the members and the tracking id of `subscription`'s open batch; it goes out
    /// after the next commit.
    fn seal(&mut self, subscription: SubscriptionId) {
        let Some(open) = self.open.remove(&subscription) else {
            return;
        };
        let tracking_id = TrackingId::random();
        let mut builder = SubscriptionUsageRecord::builder(subscription).tracking_id(tracking_id.as_str());
        for (unit, date, amount) in &open.entries {
            builder = builder.record(unit.as_str(), *date, *amount);
        }
        let id = self.next_batch;
        self.next_batch += 1;
        // Every unit type and amount was validated on the way in, sums are kept within
        // decimal(18,9) and a batch is never empty: a failure here is a bug, and says so.
        let record = builder.build().expect("a batch of validated events always builds");
        #[cfg(feature = "spool")]
        if self.spool.is_some() {
            // The wire form of a validated record always serializes.
            let body = serde_json::to_string(&record).expect("a record always serializes");
            self.commit
                .seal(id, tracking_id.into_string(), open.events, body, open.members);
        }
        self.sealing.push(Sealed {
            id,
            since: open.since,
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
            let options = match &self.request_id {
                Some(base) => self
                    .options
                    .clone()
                    .with_request_id(format!("{base}-{}", sealed.id))
                    .expect("checked by MeterBuilder::start: a number suffix keeps a request id valid"),
                None => self.options.clone(),
            };
            let handle = self
                .tasks
                .spawn(async move { Outcome::of(client.record_usage(&record).options(options).await) });
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
            Outcome::Recorded { .. } | Outcome::AlreadyRecorded { .. } => {
                counters.delivered.fetch_add(sealed.events, Ordering::Relaxed);
                counters.requests.fetch_add(1, Ordering::Relaxed);
                crate::observe::delivered(sealed.events);
                tracing::debug!(tracking_id = %tracking_id(&sealed), events = sealed.events, "meter: delivered");
                #[cfg(feature = "spool")]
                if self.spool.is_some() {
                    self.commit.delivered.push(sealed.id);
                }
            }
            Outcome::Failed(e) if refused_for_good(&e) => {
                tracing::warn!(tracking_id = %tracking_id(&sealed), events = sealed.events, error = %e,
                    "meter: refused for good, kept as a dead letter");
                let reason = e.to_string();
                #[cfg(feature = "spool")]
                if self.spool.is_some() {
                    self.commit.dead.push((sealed.id, reason.clone()));
                }
                lock(&self.shared.dead_letters).push(DeadLetter {
                    record: (*sealed.record).clone(),
                    events: sealed.events,
                    reason,
                });
                counters.dead_letter_events.fetch_add(sealed.events, Ordering::Relaxed);
                counters.dead_letter_requests.fetch_add(1, Ordering::Relaxed);
                crate::observe::dead_lettered(sealed.events);
            }
            Outcome::Failed(_) | Outcome::Unfinished | Outcome::NotSent => {
                sealed.failures += 1;
                counters.retries.fetch_add(1, Ordering::Relaxed);
                crate::observe::retried();
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
        for mut waiter in std::mem::take(&mut self.waiters) {
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
            .sealing
            .iter()
            .chain(&self.ready)
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

    /// Updates the gauges: events held, age of the oldest.
    fn observe(&self) {
        let oldest = self
            .open
            .values()
            .map(|o| o.since)
            .chain(
                self.sealing
                    .iter()
                    .chain(&self.ready)
                    .chain(self.waiting.iter().map(|(_, s)| s))
                    .chain(self.in_flight.values())
                    .map(|s| s.since),
            )
            .min();
        let age = oldest.map(|at| at.elapsed().as_millis() as u64).unwrap_or(0);
        self.shared.counters.oldest_pending_ms.store(age, Ordering::Relaxed);
        crate::observe::gauges(self.shared.stats().pending, age);
    }
}

fn tracking_id(sealed: &Sealed) -> &str {
    sealed.record.tracking_id().map(TrackingId::as_str).unwrap_or_default()
}
