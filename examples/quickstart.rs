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

use std::env;
use std::error::Error;

use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RequestOptions, UsageClient, UsageWindow};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

fn var(name: &str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
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
            RequestOptions::new()
                .reason("quickstart")
                .request_id(format!("quickstart-{run}")),
        )
        .await?;
    println!(
        "Recorded {} usage records under tracking id {} in {} attempt(s)",
        record.record_count(),
        outcome.tracking_id,
        outcome.attempts
    );

    let again = client.record_usage(&record).await;
    match again {
        Err(e) if e.is_duplicate_tracking_id() => println!("Recording it again is refused: {e}"),
        other => println!("Recording it again: {other:?}"),
    }

    let august = UsageWindow::parse("2013-08-01", "2013-09-01")?;
    println!("\nAugust 2013 ([2013-08-01, 2013-09-01), the end excluded):");
    let gallons = client.get_usage(subscription, "gallons", august).await?;
    println!(
        "  gallons only: {}",
        gallons.amount_of("gallons").map_or("none".into(), |a| a.to_string())
    );
    let all = client.get_all_usage(subscription, august).await?;
    let mut units = all.rolled_up_units.clone();
    units.sort_by(|a, b| a.unit_type.cmp(&b.unit_type));
    for unit in units {
        println!("  {:<10} {:>16}", unit.unit_type.as_str(), unit.amount.to_string());
    }
    Ok(())
}

/// A short random suffix, so that each run records under its own tracking id.
fn uuid_suffix() -> String {
    SubscriptionId::random().to_string()[..8].to_string()
}
