//! Record usage and read it back.
//!
//! On the in-memory Kill Bill emulator by default (no server, no configuration):
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! On a real Kill Bill server (or `kb-usage serve`) when `KILLBILL_URL` is set, with
//! `KILLBILL_USER`, `KILLBILL_PASSWORD`, `KILLBILL_API_KEY`, `KILLBILL_API_SECRET` defaulting to
//! Kill Bill's usual `admin`, `password`, `bob`, `lazar`, and `KILLBILL_SUBSCRIPTION_ID` naming an
//! existing subscription (required on a real server; `kb-usage serve --subscription ID` makes one):
//!
//! ```sh
//! KILLBILL_URL=http://127.0.0.1:8080 KILLBILL_SUBSCRIPTION_ID=... cargo run --example quickstart
//! ```
//!
//! The test suite runs it on the emulator and checks what it reads back
//! (`cargo test --example quickstart`).

use std::env;
use std::error::Error;

use killbill_usage::models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RequestOptions, UsageClient, UsageWindow};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

fn var(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let (client, subscription) = connect()?;
    record_and_read_back(&client, subscription).await?;
    Ok(())
}

/// A client for `KILLBILL_URL`, or for a fresh in-memory emulator when it is not set.
fn connect() -> Result<(UsageClient, SubscriptionId), Box<dyn Error>> {
    let user = var("KILLBILL_USER", "admin");
    let password = var("KILLBILL_PASSWORD", "password");
    let api_key = var("KILLBILL_API_KEY", "bob");
    let api_secret = var("KILLBILL_API_SECRET", "lazar");

    let (client, subscription) = match env::var("KILLBILL_URL") {
        Ok(url) => {
            let subscription: SubscriptionId = env::var("KILLBILL_SUBSCRIPTION_ID")
                .map_err(|_| "KILLBILL_SUBSCRIPTION_ID must name a subscription of the tenant")?
                .parse()?;
            println!("Kill Bill at {url}, subscription {subscription}");
            let client = killbill_usage::client_builder(url)?
                .user(user, password)
                .tenant(api_key, api_secret)
                .created_by("quickstart")
                .build()?;
            (client, subscription)
        }
        Err(_) => {
            let kill_bill = InMemoryKillBill::builder()
                .user(user.clone(), password.clone())
                .tenant(api_key.clone(), api_secret.clone())
                .build();
            let subscription = kill_bill.create_subscription_in(&api_key)?;
            println!(
                "In-memory Kill Bill emulator (set KILLBILL_URL to use a real server), subscription {subscription}"
            );
            let client = UsageClient::builder("http://kill-bill.emulator")
                .user(user, password)
                .tenant(api_key, api_secret)
                .created_by("quickstart")
                .transport(kill_bill)
                .timer(InstantTimer::new())
                .build()?;
            (client, subscription)
        }
    };
    Ok((client, subscription))
}

/// Records August's usage under one tracking id, checks that recording it again is refused,
/// and returns August's sums per unit type, sorted by unit type.
async fn record_and_read_back(
    client: &UsageClient,
    subscription: SubscriptionId,
) -> Result<Vec<(String, Decimal)>, Box<dyn Error>> {
    // Usage of two unit types on a few days, under one tracking id: once stored, recording it again
    // is refused as a duplicate.
    let day = |s: &str| s.parse::<UsageDate>();
    let run = uuid_suffix();
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id(format!("quickstart-{run}"))
        .record("gallons", day("2013-08-01")?, "10.5")
        .record("gallons", day("2013-08-02T06:30:00Z")?, 4)
        .record("gallons", day("2013-08-31T23:59:59.999Z")?, "0.25")
        .record("liters", day("2013-08-15")?, 3)
        .record("gallons", day("2013-09-01")?, 100) // outside August's half-open window
        .build()?;
    let outcome = client
        .record_usage(&record)
        .options(
            RequestOptions::builder()
                .reason("quickstart")
                .request_id(format!("quickstart-{run}"))
                .build()?,
        )
        .await?;
    println!(
        "Recorded {} usage records under tracking id {} in {} attempt(s)",
        record.record_count(),
        outcome.tracking_id(),
        outcome.attempts()
    );

    match client.record_usage(&record).await {
        Err(e) if e.is_duplicate_tracking_id() => println!("Recording it again is refused: {e}"),
        other => return Err(format!("recording it again should be refused as a duplicate: {other:?}").into()),
    }

    let august = UsageWindow::parse("2013-08-01", "2013-09-01")?;
    println!("\nAugust 2013 ([2013-08-01, 2013-09-01), the end excluded):");
    let gallons = client.get_usage(subscription, "gallons", august)?.await?;
    println!(
        "  gallons only: {}",
        gallons.amount_of("gallons").map_or("none".into(), |a| a.to_string())
    );
    let all = client.get_all_usage(subscription, august).await?;
    let mut units: Vec<(String, Decimal)> = all
        .rolled_up_units()
        .iter()
        .map(|unit| (unit.unit_type().as_str().to_owned(), unit.amount()))
        .collect();
    units.sort();
    for (unit, amount) in &units {
        println!("  {unit:<10} {:>16}", amount.to_string());
    }
    Ok(units)
}

/// A short random suffix, so that each run records under its own tracking id.
fn uuid_suffix() -> String {
    SubscriptionId::random().to_string()[..8].to_string()
}

#[test]
fn records_and_reads_back_august_on_the_emulator() {
    assert!(
        env::var_os("KILLBILL_URL").is_none(),
        "the test runs on the emulator: unset KILLBILL_URL"
    );
    let august = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let (client, subscription) = connect()?;
            record_and_read_back(&client, subscription).await
        })
        .unwrap();
    let decimal = |text: &str| text.parse::<Decimal>().unwrap();
    // 10.5 + 4 + 0.25 gallons; the 100 gallons of 2013-09-01 fall outside the half-open window.
    assert_eq!(
        august,
        [
            ("gallons".to_owned(), decimal("14.75")),
            ("liters".to_owned(), decimal("3"))
        ]
    );
}
