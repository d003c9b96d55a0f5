//! Retries and tracking ids: how the client records usage once over a flaky network (and the one
//! exception, a retry overlapping an attempt Kill Bill is still processing: docs/RELIABILITY.md).
//!
//! - Reads are retried on connect/timeout/I/O errors and on 429, 502, 503, 504.
//! - Recording is retried too, because the client always sends a tracking id (yours, or one it
//!   generates): Kill Bill refuses a second delivery of the same id with code 50000, and a retry
//!   refused that way means an earlier attempt landed, so the call succeeds with
//!   `already_recorded = true`.
//! - When a call fails for good, its tracking id (known before the call) lets you resubmit the
//!   same usage later, counted once when the earlier attempts are no longer being processed: a
//!   resubmission refused with code 50000 (`err.is_duplicate_tracking_id()`) means the usage was
//!   already recorded.
//!
//! ```sh
//! cargo run --example retries_and_tracking_ids
//! ```

use std::time::Duration;

use killbill_usage::models::{SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RequestOptions, RetryPolicy, TransportErrorKind, UsageClient, UsageWindow};
use usage_transport_memory::{Fault, InMemoryKillBill, InstantTimer};

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    let kill_bill = InMemoryKillBill::new();
    let subscription = kill_bill.create_subscription();
    let timer = InstantTimer::new();
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kill_bill.clone())
        .timer(timer.clone())
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(2))
                .with_deadline(Duration::from_secs(30)),
        )
        .build()?;
    let record = |amount: i32| {
        SubscriptionUsageRecord::builder(subscription)
            .record("requests", "2013-08-01T12:00:00Z".parse::<UsageDate>().unwrap(), amount)
            .build()
    };

    // 1. A connection refused, a 503 with Retry-After, then the answer is lost after the
    //    usage was stored: four attempts, one row.
    kill_bill.inject(Fault::transport(TransportErrorKind::Connect), 1);
    kill_bill.fail_next_with_503(1, 2);
    kill_bill.commit_then_lose_next(1);
    let outcome = client.record_usage(&record(10)?).await?;
    println!(
        "recorded under {} in {} attempts (already recorded: {}); waits asked for: {:?}",
        outcome.tracking_id(),
        outcome.attempts(),
        outcome.already_recorded(),
        timer.sleeps()
    );
    assert_eq!((outcome.attempts(), outcome.already_recorded()), (4, true));

    // 2. The server stays down past the deadline: the call fails, and its tracking id lets the
    //    caller resubmit later with no risk of double counting.
    kill_bill.commit_then_lose_next(1);
    kill_bill.fail_next_with_503(10, 10);
    let usage = record(5)?;
    let call = client
        .record_usage(&usage)
        .options(RequestOptions::builder().deadline(Duration::from_secs(15)).build()?);
    let tracking_id = call.tracking_id().clone();
    let err = call.await.unwrap_err();
    println!("gave up: {err}");
    kill_bill.clear_faults();
    match client.record_usage(&usage.clone().with_tracking_id(tracking_id)).await {
        Err(e) if e.is_duplicate_tracking_id() => println!("resubmitted under the same id: already recorded"),
        other => return Err(format!("the first attempt had stored it, yet: {other:?}").into()),
    }

    // 3. Without a tracking id of your own, each call is new usage (as on Kill Bill itself).
    client.record_usage(&record(1)?).await?;

    let day = UsageWindow::parse("2013-08-01", "2013-08-02")?;
    let total = client
        .get_usage(subscription, "requests", day)?
        .await?
        .amount_of("requests");
    println!("total: {total:?} (10 + 5 + 1, nothing lost, nothing doubled)");
    assert_eq!(total, Some(16.into()));
    assert_eq!(kill_bill.rows(subscription).len(), 3);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    scenario().await
}

#[test]
fn the_scenario_passes() {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(scenario())
        .unwrap();
}
