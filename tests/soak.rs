//! Exactly-once recording under faults, against the in-memory emulator.
//!
//! 10,000 record calls with random exact amounts across subscriptions and units, under injected
//! connect errors, timeouts, resets, 503/429 (with and without `Retry-After`), proxy 502/504
//! pages, latency, and "commit then lose the answer". Afterwards every roll-up equals the exact
//! sum of what the caller was told was recorded: nothing lost, nothing counted twice; every call
//! that failed after attempts that provably did not land recorded nothing; calls that failed after
//! an attempt that may have landed are resubmitted under their tracking id, and count once.
//!
//! Time is tokio's, paused: latency, backoffs and `Retry-After` waits take no wall-clock time.
//! `cargo test --test soak -- --nocapture` prints the counts.
#![cfg(feature = "hyper")]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use killbill_usage::hyper::TokioTimer;
use killbill_usage::models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RetryPolicy, Transport, TransportError, TransportErrorKind, UsageClient, UsageWindow};
use usage_transport_memory::{Fault, InMemoryKillBill};

const CALLS: usize = 10_000;
const UNITS: [&str; 3] = ["gallons", "api calls", "liters/day"];

#[derive(Debug, Default)]
struct Counts {
    /// Faults the calls met (injected and reached), by kind.
    faults: BTreeMap<&'static str, usize>,
    recorded: usize,
    already_recorded: usize,
    failed_clean: usize,
    failed_ambiguous_resubmitted: usize,
}

fn fault(rng: &mut fastrand::Rng) -> (&'static str, Fault) {
    match rng.usize(0..8) {
        0 => ("connect error", Fault::transport(TransportErrorKind::Connect)),
        1 => ("timeout", Fault::transport(TransportErrorKind::Timeout)),
        2 => ("connection reset", Fault::transport(TransportErrorKind::Io)),
        3 => ("503 with Retry-After", Fault::unavailable(rng.u64(0..3))),
        4 => ("429", Fault::status(StatusCode::TOO_MANY_REQUESTS)),
        5 => ("502 proxy page", Fault::proxy_page(StatusCode::BAD_GATEWAY)),
        6 => ("504 proxy page", Fault::proxy_page(StatusCode::GATEWAY_TIMEOUT)),
        _ => ("commit then lose the answer", Fault::commit_then_lose()),
    }
}

/// A random amount within decimal(18,9): a number of fraction digits drawn from 0 to 9, then a
/// value drawn uniformly among those with that many fraction digits in
/// `-999,999,999.999999999 ..= 999,999,999.999999999` (at most 9 integer digits).
fn amount(rng: &mut fastrand::Rng) -> Decimal {
    let scale = rng.u32(0..=9);
    let bound = 10i64.pow(9 + scale) - 1;
    Decimal::new(rng.i64(-bound..=bound), scale)
}

/// The retry policy's attempts per call: a call that meets this many refusals fails.
const MAX_ATTEMPTS: u32 = 4;

/// The emulator, counting every attempt that reaches it (faulted ones included).
#[derive(Debug)]
struct Counted {
    kill_bill: InMemoryKillBill,
    attempts: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Transport for Counted {
    async fn send(&self, request: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, TransportError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.kill_bill.send(request).await
    }
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_calls_under_faults_nothing_lost_nothing_doubled() {
    let mut rng = fastrand::Rng::with_seed(20261126);
    let kill_bill = InMemoryKillBill::new();
    let subscriptions: Vec<SubscriptionId> = (0..4).map(|_| kill_bill.create_subscription()).collect();
    let attempts = Arc::new(AtomicUsize::new(0));
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(Counted {
            kill_bill: kill_bill.clone(),
            attempts: attempts.clone(),
        })
        .timer(TokioTimer)
        .retry_policy(RetryPolicy::default().with_max_attempts(MAX_ATTEMPTS))
        .build()
        .unwrap();

    let mut expected: BTreeMap<(SubscriptionId, &str), Decimal> = BTreeMap::new();
    let mut counts = Counts::default();
    let mut drawn: HashMap<Decimal, usize> = HashMap::new();
    for call in 0..CALLS {
        let subscription = subscriptions[rng.usize(0..subscriptions.len())];
        let unit = UNITS[rng.usize(0..UNITS.len())];
        let value = amount(&mut rng);
        *drawn.entry(value).or_default() += 1;
        let day = 1 + rng.u32(0..28);
        let at: UsageDate = format!("2013-08-{day:02}T{:02}:{:02}:00Z", rng.u32(0..24), rng.u32(0..60))
            .parse()
            .unwrap();
        let mut builder = SubscriptionUsageRecord::builder(subscription);
        if call % 2 == 0 {
            builder = builder.tracking_id(format!("soak-{call}"));
        }
        let record = builder.record(unit, at, value).build().unwrap();

        // Most calls meet 0 to 3 faults (fewer than the attempts); some meet as many refusals
        // that provably do not land as there are attempts (the call fails and must record
        // nothing); some a lost commit, then connect errors for every attempt left (the call
        // fails, but its usage landed: resubmitting it under its id counts it once).
        let scenario = rng.usize(0..100);
        kill_bill.clear_faults();
        let mut queued: Vec<&'static str> = Vec::new();
        let mut queue = |name: &'static str, fault: Fault, times: usize| {
            kill_bill.inject(fault, times);
            queued.extend(std::iter::repeat_n(name, times));
        };
        let attempts_per_call = MAX_ATTEMPTS as usize;
        let ambiguous_exhaustion = (2..3).contains(&scenario);
        if scenario < 2 {
            queue("503 with Retry-After", Fault::unavailable(0), attempts_per_call);
        } else if ambiguous_exhaustion {
            queue("commit then lose the answer", Fault::commit_then_lose(), 1);
            let connect = Fault::transport(TransportErrorKind::Connect);
            queue("connect error", connect, attempts_per_call - 1);
        } else {
            for _ in 0..rng.usize(0..attempts_per_call) {
                let (name, fault) = fault(&mut rng);
                queue(name, fault, 1);
            }
        }
        let latency = rng.usize(0..10) == 0;
        kill_bill.set_latency(if latency {
            Duration::from_millis(rng.u64(1..50))
        } else {
            Duration::ZERO
        });
        counts
            .faults
            .entry("latency")
            .and_modify(|n| *n += usize::from(latency))
            .or_insert(usize::from(latency));

        let pending = client.record_usage(&record);
        let tracking_id = pending.tracking_id().clone();
        let result = pending.await;
        // Faults are met in the order they were queued: those left were never reached.
        let met = queued.len() - kill_bill.pending_faults();
        for name in &queued[..met] {
            *counts.faults.entry(name).or_default() += 1;
        }
        if scenario < 3 {
            assert_eq!(met, queued.len(), "call {call}: every attempt met its refusal");
        }
        match result {
            Ok(outcome) => {
                counts.recorded += 1;
                counts.already_recorded += usize::from(outcome.already_recorded());
                *expected.entry((subscription, unit)).or_default() += value;
            }
            Err(error) => {
                let landed: Vec<_> = kill_bill
                    .rows(subscription)
                    .into_iter()
                    .filter(|row| row.tracking_id() == tracking_id.as_str())
                    .collect();
                if ambiguous_exhaustion {
                    assert_eq!(landed.len(), 1, "call {call}: the lost commit stored the usage once");
                    kill_bill.clear_faults();
                    let again = client
                        .record_usage(&record.clone().with_tracking_id(tracking_id.clone()))
                        .await;
                    let again = again.expect_err("a resubmission of landed usage is a duplicate");
                    assert!(again.is_duplicate_tracking_id(), "call {call}: {again}");
                    counts.failed_ambiguous_resubmitted += 1;
                    *expected.entry((subscription, unit)).or_default() += value;
                } else {
                    assert!(
                        scenario < 2,
                        "call {call} failed ({error}) with fewer faults than attempts"
                    );
                    assert!(
                        landed.is_empty(),
                        "call {call} failed ({error}) yet recorded {landed:?}"
                    );
                    counts.failed_clean += 1;
                }
            }
        }
    }
    kill_bill.clear_faults();
    kill_bill.set_latency(Duration::ZERO);
    let attempts = attempts.load(Ordering::Relaxed);

    let august = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let mut total_checked = Decimal::ZERO;
    for subscription in &subscriptions {
        let usage = client.get_all_usage(*subscription, august).await.unwrap();
        for unit in UNITS {
            let want = expected.get(&(*subscription, unit)).copied();
            let got = usage.amount_of(unit);
            assert_eq!(got, want, "{subscription} {unit}");
            total_checked += want.unwrap_or_default();
        }
    }
    let stored = kill_bill.row_count();
    assert_eq!(
        stored,
        counts.recorded + counts.failed_ambiguous_resubmitted,
        "one row per recorded call"
    );
    assert_eq!(
        counts.recorded + counts.failed_clean + counts.failed_ambiguous_resubmitted,
        CALLS
    );
    assert!(counts.already_recorded > 0 && counts.failed_clean > 0 && counts.failed_ambiguous_resubmitted > 0);
    // The amounts are spread: no value is drawn more than a handful of times.
    let most_drawn = drawn.values().copied().max().unwrap_or(0);
    assert!(most_drawn <= 3, "one amount drawn {most_drawn} times");
    // Every attempt met a fault or was answered by the emulator, and only a call's last
    // attempt (or a resubmission) is answered without a fault: the attempts are all counted.
    let faulted: usize = counts
        .faults
        .iter()
        .filter(|(name, _)| **name != "latency")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        attempts,
        faulted + counts.recorded + counts.failed_ambiguous_resubmitted
    );

    println!("soak: {CALLS} record calls, {stored} rows stored, exact total {total_checked}");
    println!(
        "  amounts: {} distinct of {CALLS} (the most frequent drawn {most_drawn}x)",
        drawn.len()
    );
    println!(
        "  recorded {} (of which {} recovered from a lost answer through the tracking id); \
         {attempts} attempts in all (every call and resubmission, failed ones included)",
        counts.recorded, counts.already_recorded
    );
    println!(
        "  failed after {MAX_ATTEMPTS} refusals, nothing recorded: {}; failed after a lost commit, \
         resubmitted, counted once: {}",
        counts.failed_clean, counts.failed_ambiguous_resubmitted
    );
    for (name, n) in &counts.faults {
        println!("  fault met: {name:<28} {n}");
    }
}
