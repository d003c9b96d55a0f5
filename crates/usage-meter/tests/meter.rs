//! The meter against the in-memory Kill Bill emulator: batching, intervals, refusals and dead
//! letters, transient failures, backpressure, aggregation, shutdown; and property tests of
//! the batching invariants.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{client, total, LONG};
use proptest::prelude::*;
use rust_decimal::Decimal;
use usage_core::TransportErrorKind;
use usage_meter::{Meter, RecordError, WhenFull};
use usage_models::{Amount, SubscriptionId, UnitType, UsageDate};
use usage_transport_memory::{Fault, InMemoryKillBill};

fn day() -> UsageDate {
    "2013-08-01".parse().unwrap()
}

fn unit(name: &str) -> UnitType {
    UnitType::new(name).unwrap()
}

/// Rows per tracking id (one tracking id = one request).
fn request_sizes(kb: &InMemoryKillBill, subscription: SubscriptionId) -> Vec<usize> {
    let mut sizes: HashMap<String, usize> = HashMap::new();
    for row in kb.rows(subscription) {
        *sizes.entry(row.tracking_id().to_string()).or_default() += 1;
    }
    sizes.into_values().collect()
}

#[tokio::test]
async fn events_go_out_in_requests_of_at_most_1000_per_subscription() {
    let kb = InMemoryKillBill::new();
    let a = kb.create_subscription();
    let b = kb.create_subscription();
    let meter = Meter::builder(client(&kb))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let gallons = unit("gallons");
    for i in 0..2_500u32 {
        meter.record(a, &gallons, day(), Amount::from(1)).await.unwrap();
        if i % 100 == 0 {
            meter.try_record(b, &gallons, day(), Amount::from(2)).unwrap();
        }
    }
    let report = meter.flush(LONG).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.pending_events, 0);
    let mut sizes = request_sizes(&kb, a);
    sizes.sort_unstable();
    assert_eq!(sizes, [500, 1000, 1000]);
    assert_eq!(request_sizes(&kb, b), [25]);
    assert_eq!(total(&kb, a), Decimal::from(2_500));
    assert_eq!(total(&kb, b), Decimal::from(50));
    let stats = meter.stats();
    assert_eq!((stats.accepted, stats.delivered, stats.requests), (2_525, 2_525, 4));
}

#[tokio::test]
async fn a_request_id_that_cannot_be_sent_is_refused_at_start() {
    let kb = InMemoryKillBill::new();
    let refused = Meter::builder(client(&kb)).request_id("night\nly").start().unwrap_err();
    assert!(
        matches!(&refused, usage_meter::StartError::Invalid(why) if why.starts_with("request id:")),
        "{refused}"
    );
    assert!(Meter::builder(client(&kb)).request_id("nightly").start().is_ok());
}

#[tokio::test]
async fn the_interval_sends_without_a_flush() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let meter = Meter::builder(client(&kb))
        .flush_interval(Duration::from_millis(20))
        .start()
        .unwrap();
    meter
        .try_record(subscription, &unit("a"), day(), Amount::from(3))
        .unwrap();
    for _ in 0..500 {
        if !kb.rows(subscription).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(total(&kb, subscription), Decimal::from(3));
}

#[tokio::test]
async fn a_refused_batch_becomes_a_dead_letter_and_blocks_nothing() {
    let kb = InMemoryKillBill::new();
    let known = kb.create_subscription();
    let unknown = SubscriptionId::random();
    let meter = Meter::builder(client(&kb))
        .concurrency(1)
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    for _ in 0..3 {
        meter.try_record(unknown, &unit("a"), day(), Amount::from(1)).unwrap();
        meter.try_record(known, &unit("a"), day(), Amount::from(1)).unwrap();
    }
    let report = meter.flush(LONG).await;
    assert!(report.complete);
    assert_eq!((report.pending_events, report.dead_letter_events), (0, 3));
    assert_eq!(total(&kb, known), Decimal::from(3));
    let dead = meter.dead_letters();
    assert_eq!(dead.left_out, 0);
    let dead = dead.letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record.subscription_id(), unknown);
    assert_eq!(dead[0].events, 3);
    assert!(dead[0].reason.contains("404"), "{}", dead[0].reason);
    assert_eq!(meter.stats().dead_letter_requests, 1);
}

#[tokio::test]
async fn dead_letters_held_are_bounded_and_the_rest_is_counted() {
    let kb = InMemoryKillBill::new();
    let meter = Meter::builder(client(&kb))
        .max_dead_letters(2)
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    let unknown: Vec<SubscriptionId> = (0..5).map(|_| SubscriptionId::random()).collect();
    for subscription in &unknown {
        meter
            .try_record(*subscription, &unit("a"), day(), Amount::from(1))
            .unwrap();
    }
    assert!(meter.flush(LONG).await.complete);
    let dead = meter.dead_letters();
    assert_eq!((dead.letters.len(), dead.left_out), (2, 3));
    let stats = meter.stats();
    assert_eq!((stats.dead_letter_requests, stats.dead_letter_events), (5, 5));
    // Taking them empties the list: the next refusal is held again, the totals stay.
    let taken = meter.take_dead_letters();
    assert_eq!((taken.letters.len(), taken.left_out), (2, 3));
    assert_eq!(meter.dead_letters().letters.len(), 0);
    meter
        .try_record(unknown[0], &unit("a"), day(), Amount::from(1))
        .unwrap();
    assert!(meter.flush(LONG).await.complete);
    let dead = meter.dead_letters();
    assert_eq!((dead.letters.len(), dead.left_out), (1, 0));
    assert_eq!(dead.letters[0].record.subscription_id(), unknown[0]);
    assert_eq!(meter.stats().dead_letter_requests, 6);
}

#[tokio::test]
async fn a_request_failing_past_the_client_retries_is_sent_again_and_counted_once() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let meter = Meter::builder(client(&kb))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    // Five answers lost after the commit, then five refused connections: more than the
    // client's two attempts, several times over.
    kb.commit_then_lose_next(5);
    kb.inject(Fault::transport(TransportErrorKind::Connect), 5);
    for _ in 0..10 {
        meter
            .try_record(subscription, &unit("a"), day(), Amount::from(1))
            .unwrap();
    }
    let report = meter.flush(LONG).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(total(&kb, subscription), Decimal::from(10));
    assert_eq!(kb.rows(subscription).len(), 10);
    assert!(meter.stats().retries >= 1, "{:?}", meter.stats());
}

#[tokio::test]
async fn a_full_meter_refuses_or_waits_and_never_drops() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    // The server is down: nothing leaves the meter.
    kb.inject(Fault::transport(TransportErrorKind::Connect), 1_000_000);
    let refusing = Meter::builder(client(&kb))
        .capacity(10)
        .when_full(WhenFull::Refuse)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .start()
        .unwrap();
    for _ in 0..10 {
        refusing
            .record(subscription, &unit("a"), day(), Amount::from(1))
            .await
            .unwrap();
    }
    assert_eq!(
        refusing.record(subscription, &unit("a"), day(), Amount::from(1)).await,
        Err(RecordError::Full)
    );
    let waiting = Meter::builder(client(&kb)).capacity(1).start().unwrap();
    waiting
        .record(subscription, &unit("a"), day(), Amount::from(1))
        .await
        .unwrap();
    let blocked = tokio::time::timeout(
        Duration::from_millis(50),
        waiting.record(subscription, &unit("a"), day(), Amount::from(1)),
    )
    .await;
    assert!(blocked.is_err(), "record should wait while the meter is full");
    // The server comes back: the waiting meter makes room and takes the next event.
    kb.clear_faults();
    let report = waiting.flush(LONG).await;
    assert!(report.complete);
    waiting
        .record(subscription, &unit("a"), day(), Amount::from(1))
        .await
        .unwrap();
    let report = refusing.shutdown(Duration::from_millis(50)).await;
    assert!(report.pending_events <= 10);
    let report = waiting.shutdown(LONG).await;
    assert_eq!(report.pending_events, 0);
    assert_eq!(
        waiting.try_record(subscription, &unit("a"), day(), Amount::from(1)),
        Err(RecordError::Closed)
    );
}

#[tokio::test]
async fn a_shutdown_that_cannot_deliver_says_what_is_left() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    kb.inject(Fault::transport(TransportErrorKind::Connect), 1_000_000);
    let meter = Meter::builder(client(&kb))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .start()
        .unwrap();
    for _ in 0..7 {
        meter
            .try_record(subscription, &unit("a"), day(), Amount::from(1))
            .unwrap();
    }
    let report = meter.shutdown(Duration::from_millis(100)).await;
    assert!(!report.complete);
    assert_eq!(report.pending_events, 7);
}

#[tokio::test]
async fn aggregation_sums_per_subscription_unit_and_bucket() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let meter = Meter::builder(client(&kb))
        .aggregate(Duration::from_secs(60))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap();
    for second in 0..120 {
        let at: UsageDate = format!("2013-08-01T10:{:02}:{:02}Z", second / 60, second % 60)
            .parse()
            .unwrap();
        meter
            .try_record(subscription, &unit("calls"), at, Amount::from(1))
            .unwrap();
        meter
            .try_record(subscription, &unit("bytes"), at, "0.5".parse().unwrap())
            .unwrap();
    }
    assert!(meter.flush(LONG).await.complete);
    let mut rows: Vec<(String, String, Decimal)> = kb
        .rows(subscription)
        .into_iter()
        .map(|r| (r.unit_type().to_string(), r.record_date().to_rfc3339(), r.amount()))
        .collect();
    rows.sort();
    let expected = |unit: &str, minute: u32, amount: i64| {
        (
            unit.to_string(),
            format!("2013-08-01T10:0{minute}:00+00:00"),
            Decimal::from(amount),
        )
    };
    assert_eq!(
        rows,
        [
            expected("bytes", 0, 30),
            expected("bytes", 1, 30),
            expected("calls", 0, 60),
            expected("calls", 1, 60),
        ]
    );
    assert_eq!(meter.stats().delivered, 240);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the events and the batch size: every request holds at most the batch size,
    /// carries one subscription, and every event is counted exactly once.
    #[test]
    fn batching_keeps_every_event_once_within_the_size(
        events in prop::collection::vec((0usize..4, 1u32..1000, 0usize..3), 0..600),
        max_records in 1usize..50,
        flush_midway in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let kb = InMemoryKillBill::new();
            let subscriptions: Vec<SubscriptionId> = (0..4).map(|_| kb.create_subscription()).collect();
            let units = [unit("a"), unit("b"), unit("c")];
            let meter = Meter::builder(client(&kb))
                .max_records_per_request(max_records)
                .flush_interval(Duration::from_secs(3600))
                .start()
                .unwrap();
            let mut expected: HashMap<SubscriptionId, (usize, Decimal)> = HashMap::new();
            for (at, (sub, amount, u)) in events.iter().enumerate() {
                let subscription = subscriptions[*sub];
                meter.try_record(subscription, &units[*u], day(), Amount::from(*amount)).unwrap();
                let entry = expected.entry(subscription).or_default();
                entry.0 += 1;
                entry.1 += Decimal::from(*amount);
                if flush_midway && at == events.len() / 2 {
                    prop_assert!(meter.flush(LONG).await.complete);
                }
            }
            prop_assert!(meter.flush(LONG).await.complete);
            for subscription in &subscriptions {
                let (count, sum) = expected.get(subscription).copied().unwrap_or_default();
                prop_assert_eq!(kb.rows(*subscription).len(), count);
                prop_assert_eq!(total(&kb, *subscription), sum);
                for size in request_sizes(&kb, *subscription) {
                    prop_assert!(size <= max_records, "a request of {} > {}", size, max_records);
                }
            }
            prop_assert_eq!(meter.stats().delivered, events.len() as u64);
            Ok(())
        })?;
    }
}
