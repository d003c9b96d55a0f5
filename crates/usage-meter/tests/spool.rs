//! The durable spool against the emulator: a restart delivers what is left exactly once
//! (same batches, same tracking ids), dead letters and checkpoints survive it.
#![cfg(feature = "spool")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use common::{client, total, LONG};
use rust_decimal::Decimal;
use usage_core::{RetryPolicy, Transport, TransportError, TransportErrorKind, UsageClient};
use usage_meter::{DurableError, Meter, Usage};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, UnitType, UsageDate};
use usage_transport_memory::{Fault, InMemoryKillBill, InstantTimer};

/// A spool file in a fresh temporary directory, removed when the directory is dropped.
fn spool_path() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.sqlite");
    (dir, path)
}

fn meter(kb: &InMemoryKillBill, path: &std::path::Path) -> Meter {
    Meter::builder(client(kb))
        .spool(path)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap()
}

#[tokio::test]
async fn a_restart_sends_the_same_batches_under_the_same_ids_and_counts_once() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    // Every attempt is committed by the server and its answer lost: the first run never
    // learns that anything was recorded.
    kb.inject(Fault::commit_then_lose(), 1_000_000);
    let first = meter(&kb, &path);
    for _ in 0..2_500 {
        first.record(subscription, &unit, day, Amount::from(1)).await.unwrap();
    }
    first.durable().await.unwrap();
    let report = first.flush(Duration::from_millis(300)).await;
    assert!(!report.complete);
    assert_eq!(report.pending_events, 2_500);
    first.shutdown(Duration::ZERO).await;
    drop(first);
    assert_eq!(
        total(&kb, subscription),
        Decimal::from(2_500),
        "the server has it all already"
    );

    // The answers come back; the restart must send the same batches under the same ids.
    kb.clear_faults();
    let second = meter(&kb, &path);
    assert_eq!(second.stats().pending, 2_500);
    let report = second.flush(LONG).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(report.pending_events, 0);
    assert_eq!(total(&kb, subscription), Decimal::from(2_500));
    assert_eq!(kb.rows(subscription).len(), 2_500);
    second.shutdown(LONG).await;

    // Nothing left: a third start holds nothing and sends nothing.
    let third = meter(&kb, &path);
    assert_eq!(third.stats().pending, 0);
    assert!(third.flush(LONG).await.complete);
    assert_eq!(kb.rows(subscription).len(), 2_500);
}

#[tokio::test]
async fn events_not_yet_sealed_survive_a_restart() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let first = meter(&kb, &path);
    for amount in 1..=10u32 {
        first
            .try_record(subscription, &unit, day, Amount::from(amount))
            .unwrap();
    }
    first.durable().await.unwrap();
    // Stopped before any interval: the events were never sealed nor sent.
    first.shutdown(Duration::ZERO).await;
    let second = meter(&kb, &path);
    assert!(second.flush(LONG).await.complete);
    assert_eq!(total(&kb, subscription), Decimal::from(55));
    assert_eq!(kb.rows(subscription).len(), 10);
}

#[tokio::test]
async fn dead_letters_and_checkpoints_survive_a_restart() {
    let kb = InMemoryKillBill::new();
    let known = kb.create_subscription();
    let unknown = SubscriptionId::random();
    let (_dir, path) = spool_path();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let first = meter(&kb, &path);
    first.try_record(unknown, &unit, day, Amount::from(1)).unwrap();
    let from_file = Usage {
        subscription: known,
        unit: unit.clone(),
        date: day,
        amount: Amount::from(2),
    };
    first.record_from_source(vec![from_file], "file", 42).await.unwrap();
    assert_eq!(first.checkpoint("file"), Some(42));
    let report = first.shutdown(LONG).await;
    assert_eq!((report.pending_events, report.dead_letter_events), (0, 1));

    let second = meter(&kb, &path);
    assert_eq!(second.checkpoint("file"), Some(42));
    let dead = second.dead_letters().letters;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].record.subscription_id(), unknown);
    assert!(dead[0].reason.contains("404"), "{}", dead[0].reason);
    assert_eq!(second.stats().dead_letter_events, 1);
    assert!(second.flush(LONG).await.complete);
    assert_eq!(total(&kb, known), Decimal::from(2));
    assert!(kb.rows(unknown).is_empty());
}

#[tokio::test]
async fn durable_needs_a_spool() {
    let kb = InMemoryKillBill::new();
    let meter = Meter::builder(client(&kb)).start().unwrap();
    assert_eq!(meter.durable().await, Err(DurableError::NoSpool));
    assert_eq!(
        meter.record_from_source(Vec::new(), "f", 1).await,
        Err(DurableError::NoSpool)
    );
}

#[tokio::test]
async fn a_server_that_is_down_keeps_everything_in_the_spool() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    kb.inject(Fault::transport(TransportErrorKind::Connect), 1_000_000);
    let first = meter(&kb, &path);
    for _ in 0..1_234 {
        first.try_record(subscription, &unit, day, Amount::from(1)).unwrap();
    }
    let report = first.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.pending_events, 1_234);
    kb.clear_faults();
    let second = meter(&kb, &path);
    assert!(second.shutdown(LONG).await.complete);
    assert_eq!(kb.rows(subscription).len(), 1_234);
}

#[tokio::test]
async fn a_second_meter_on_the_same_spool_fails_to_start() {
    let kb = InMemoryKillBill::new();
    let (_dir, path) = spool_path();
    let first = meter(&kb, &path);
    first.durable().await.unwrap();
    let second = Meter::builder(client(&kb)).spool(&path).start();
    assert!(second.is_err(), "a second meter started on a spool in use");
    first.shutdown(LONG).await;
    // Once the first one stopped, the spool opens again.
    let third = meter(&kb, &path);
    assert!(third.shutdown(LONG).await.complete);
}

/// A request of `subscription` under `tracking_id`: `rows` records of 1.
fn request(subscription: SubscriptionId, tracking_id: &str, rows: u32) -> SubscriptionUsageRecord {
    let mut builder = SubscriptionUsageRecord::builder(subscription).tracking_id(tracking_id);
    for row in 0..rows {
        let date: UsageDate = format!("2013-08-01T00:00:{:02}Z", row % 60).parse().unwrap();
        builder = builder.record("a", date, Amount::from(1));
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn requests_under_their_own_tracking_ids_are_sealed_once_even_across_restarts() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let plain = Usage {
        subscription,
        unit: UnitType::new("a").unwrap(),
        date: "2013-08-01".parse().unwrap(),
        amount: Amount::from(1),
    };
    // The first run never learns that anything was recorded: everything is sent again.
    kb.inject(Fault::commit_then_lose(), 1_000_000);
    let first = meter(&kb, &path);
    let refused = first
        .record_requests_from_source(
            vec![plain.clone(); 3],
            vec![
                request(subscription, "t-1", 4),
                request(subscription, "t-2", 5),
                request(subscription, "t-1", 6),
            ],
            "file",
            10,
        )
        .await
        .unwrap();
    assert_eq!(refused, [2], "t-1 twice in one call");
    assert_eq!(first.checkpoint("file"), Some(10));
    assert_eq!(first.stats().accepted, 3 + 4 + 5);
    assert!(!first.flush(Duration::from_millis(200)).await.complete);
    first.shutdown(Duration::ZERO).await;
    drop(first);

    kb.clear_faults();
    let second = meter(&kb, &path);
    assert_eq!(second.stats().pending, 12);
    // t-2 was sealed by the first run (and is maybe on the server): refused again.
    let refused = second
        .record_requests_from_source(
            vec![plain],
            vec![request(subscription, "t-2", 1), request(subscription, "t-3", 2)],
            "file",
            20,
        )
        .await
        .unwrap();
    assert_eq!(refused, [0], "t-2 again");
    let report = second.shutdown(LONG).await;
    assert!(report.complete, "{report:?}");
    assert_eq!(total(&kb, subscription), Decimal::from(3 + 4 + 5 + 1 + 2));
    assert_eq!(kb.rows(subscription).len(), 15);

    // Delivered, t-1 still names its request of this subscription for good; another
    // subscription may use it (Kill Bill's duplicate check is per subscription).
    let third = meter(&kb, &path);
    let other = kb.create_subscription();
    let refused = third
        .record_requests_from_source(
            Vec::new(),
            vec![request(subscription, "t-1", 1), request(other, "t-1", 2)],
            "file",
            30,
        )
        .await
        .unwrap();
    assert_eq!(refused, [0]);
    assert_eq!(third.stats().accepted, 2);
    assert!(third.shutdown(LONG).await.complete);
    assert_eq!(kb.rows(subscription).len(), 15);
    assert_eq!(total(&kb, other), Decimal::from(2));
}

#[tokio::test]
async fn a_request_without_a_tracking_id_is_refused_whole() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let meter = meter(&kb, &path);
    let untracked = SubscriptionUsageRecord::builder(subscription)
        .record("a", "2013-08-01".parse::<UsageDate>().unwrap(), Amount::from(1))
        .build()
        .unwrap();
    let result = meter
        .record_requests_from_source(Vec::new(), vec![untracked], "file", 5)
        .await;
    assert!(matches!(result, Err(DurableError::Invalid(_))), "{result:?}");
    assert_eq!(meter.checkpoint("file"), None);
    assert_eq!(meter.stats().accepted, 0);
}

/// The emulator, noting the request id of every attempt by tracking id.
#[derive(Debug, Clone)]
struct Ids {
    kb: InMemoryKillBill,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

#[async_trait::async_trait]
impl Transport for Ids {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
        if let Some(tracking_id) = body["trackingId"].as_str() {
            let request_id = request
                .headers()
                .get("X-Request-Id")
                .map(|v| v.to_str().unwrap().to_string());
            self.seen
                .lock()
                .unwrap()
                .push((tracking_id.to_string(), request_id.unwrap_or_default()));
        }
        self.kb.send(request).await
    }
}

fn id_meter(ids: &Ids, path: &std::path::Path) -> Meter {
    let client = UsageClient::builder("http://kb.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(ids.clone())
        .timer(InstantTimer::new())
        .retry_policy(RetryPolicy::default().with_max_attempts(2))
        .build()
        .unwrap();
    Meter::builder(client)
        .spool(path)
        .request_id("job")
        .max_records_per_request(10)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .flush_interval(Duration::from_secs(3600))
        .start()
        .unwrap()
}

#[tokio::test]
async fn each_batch_has_its_request_id_on_every_attempt_and_after_a_restart() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let (_dir, path) = spool_path();
    let ids = Ids {
        kb: kb.clone(),
        seen: Arc::default(),
    };
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    kb.inject(Fault::commit_then_lose(), 1_000_000);
    let first = id_meter(&ids, &path);
    for _ in 0..25 {
        first.try_record(subscription, &unit, day, Amount::from(1)).unwrap();
    }
    assert!(!first.flush(Duration::from_millis(200)).await.complete);
    first.shutdown(Duration::ZERO).await;
    drop(first);
    kb.clear_faults();
    let second = id_meter(&ids, &path);
    second.try_record(subscription, &unit, day, Amount::from(1)).unwrap();
    assert!(second.shutdown(LONG).await.complete);
    drop(second);
    // Every batch delivered, the spool holds none: numbers still go on.
    let third = id_meter(&ids, &path);
    third.try_record(subscription, &unit, day, Amount::from(1)).unwrap();
    assert!(third.shutdown(LONG).await.complete);
    assert_eq!(total(&kb, subscription), Decimal::from(27));

    // Three batches of the first run, each sent several times under one request id, the
    // same after the restart; the later runs' batches have numbers of their own.
    let seen = ids.seen.lock().unwrap().clone();
    let mut by_batch: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (tracking_id, request_id) in &seen {
        by_batch
            .entry(tracking_id.clone())
            .or_default()
            .insert(request_id.clone());
    }
    assert_eq!(by_batch.len(), 5, "{seen:?}");
    assert!(
        seen.len() > 5 + 3,
        "the first run's batches were sent several times: {seen:?}"
    );
    let mut request_ids: Vec<String> = by_batch
        .values()
        .map(|ids| {
            assert_eq!(ids.len(), 1, "one request id per batch: {ids:?}");
            ids.iter().next().unwrap().clone()
        })
        .collect();
    request_ids.sort();
    assert_eq!(request_ids, ["job-0", "job-1", "job-2", "job-3", "job-4"]);
}

#[tokio::test]
async fn dead_letters_found_in_the_spool_at_start_are_held_within_the_bound() {
    let kb = InMemoryKillBill::new();
    let (_dir, path) = spool_path();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let first = meter(&kb, &path);
    for _ in 0..3 {
        first
            .try_record(SubscriptionId::random(), &unit, day, Amount::from(1))
            .unwrap();
    }
    assert!(first.shutdown(LONG).await.complete);
    assert_eq!(first.dead_letters().letters.len(), 3);
    drop(first);
    let second = Meter::builder(client(&kb))
        .spool(&path)
        .max_dead_letters(1)
        .start()
        .unwrap();
    let dead = second.dead_letters();
    assert_eq!((dead.letters.len(), dead.left_out), (1, 2));
    assert_eq!(second.stats().dead_letter_requests, 3);
    second.shutdown(LONG).await;
    drop(second);
    // Every one is still in the spool.
    let third = meter(&kb, &path);
    assert_eq!(third.dead_letters().letters.len(), 3);
}
