//! The durable spool against the emulator: a restart delivers what is left exactly once
//! (same batches, same tracking ids), dead letters and checkpoints survive it.
#![cfg(feature = "spool")]

mod common;

use std::time::Duration;

use common::{client, total, LONG};
use rust_decimal::Decimal;
use usage_core::TransportErrorKind;
use usage_meter::{DurableError, Meter, Usage};
use usage_models::{Amount, SubscriptionId, UnitType, UsageDate};
use usage_transport_memory::{Fault, InMemoryKillBill};

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
    let dead = second.dead_letters();
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
