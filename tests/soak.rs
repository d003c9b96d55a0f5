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

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use killbill_usage::hyper::TokioTimer;
use killbill_usage::models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RetryPolicy, TransportErrorKind, UsageClient, UsageWindow};
use usage_transport_memory::{Fault, InMemoryKillBill};

const CALLS: usize = 10_000;
const UNITS: [&str; 3] = ["gallons", "api calls", "liters/day"];

#[derive(Debug, Default)]
struct Counts {
    faults: BTreeMap<&'static str, usize>,
    recorded: usize,
    already_recorded: usize,
    failed_clean: usize,
    failed_ambiguous_resubmitted: usize,
    attempts: usize,
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

/// A random amount with up to 9 fraction digits, within decimal(18,9).
fn amount(rng: &mut fastrand::Rng) -> Decimal {
    let scale = rng.u32(0..=9);
    let mantissa = rng.i64(-1_000_000_000..=999_999_999_999);
    Decimal::new(mantissa, scale)
        .round_dp(9)
        .min(Decimal::new(999_999_999, 0))
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_calls_under_faults_nothing_lost_nothing_doubled() {
    let mut rng = fastrand::Rng::with_seed(20261126);
    let kill_bill = InMemoryKillBill::new();
    let subscriptions: Vec<SubscriptionId> = (0..4).map(|_| kill_bill.create_subscription()).collect();
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kill_bill.clone())
        .timer(TokioTimer)
        .retry_policy(RetryPolicy::default().with_max_attempts(4))
        .build()
        .unwrap();

    let mut expected: BTreeMap<(SubscriptionId, &str), Decimal> = BTreeMap::new();
    let mut counts = Counts::default();
    for call in 0..CALLS {
        let subscription = subscriptions[rng.usize(0..subscriptions.len())];
        let unit = UNITS[rng.usize(0..UNITS.len())];
        let value = amount(&mut rng);
        let day = 1 + rng.u32(0..28);
        let at: UsageDate = format!("2013-08-{day:02}T{:02}:{:02}:00Z", rng.u32(0..24), rng.u32(0..60))
            .parse()
            .unwrap();
        let mut builder = SubscriptionUsageRecord::builder(subscription);
        if call % 2 == 0 {
            builder = builder.tracking_id(format!("soak-{call}"));
        }
        let record = builder.record(unit, at, value).build().unwrap();

        // Most calls meet 0 to 3 faults (the client has 4 attempts); some meet 5 that provably do
        // not land (the call fails and must record nothing); some a lost commit then 5 refusals
        // (the call fails, but its usage landed: resubmitting it under its id counts it once).
        let scenario = rng.usize(0..100);
        kill_bill.clear_faults();
        let mut ambiguous_exhaustion = false;
        if scenario < 2 {
            for _ in 0..5 {
                kill_bill.inject(Fault::unavailable(0), 1);
            }
            *counts.faults.entry("503 with Retry-After").or_default() += 5;
        } else if scenario < 3 {
            kill_bill.inject(Fault::commit_then_lose(), 1);
            kill_bill.inject(Fault::transport(TransportErrorKind::Connect), 5);
            *counts.faults.entry("commit then lose the answer").or_default() += 1;
            *counts.faults.entry("connect error").or_default() += 5;
            ambiguous_exhaustion = true;
        } else {
            for _ in 0..rng.usize(0..=3) {
                let (name, fault) = fault(&mut rng);
                kill_bill.inject(fault, 1);
                *counts.faults.entry(name).or_default() += 1;
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
        match pending.await {
            Ok(outcome) => {
                counts.recorded += 1;
                counts.attempts += outcome.attempts as usize;
                counts.already_recorded += usize::from(outcome.already_recorded);
                *expected.entry((subscription, unit)).or_default() += value;
            }
            Err(error) => {
                let landed: Vec<_> = kill_bill
                    .rows(subscription)
                    .into_iter()
                    .filter(|row| row.tracking_id == tracking_id.as_str())
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

    println!("soak: {CALLS} record calls, {stored} rows stored, exact total {total_checked}");
    println!(
        "  recorded {} (of which {} recovered from a lost answer through the tracking id), \
         {} attempts in all",
        counts.recorded, counts.already_recorded, counts.attempts
    );
    println!(
        "  failed with nothing recorded: {}; failed after a lost commit, resubmitted, counted once: {}",
        counts.failed_clean, counts.failed_ambiguous_resubmitted
    );
    for (name, n) in &counts.faults {
        println!("  fault survived: {name:<28} {n}");
    }
}
