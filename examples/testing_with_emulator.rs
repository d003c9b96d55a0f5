//! Testing application code against the in-memory Kill Bill emulator.
//!
//! `PumpMeter` is "your" code: it meters the gallons a pump delivers, one record per delivery,
//! with a tracking id derived from the delivery so that a retry never counts it twice. The
//! scenario below tests it against the emulator, including the faults that break naive clients.
//!
//! ```sh
//! cargo run --example testing_with_emulator    # runs the scenario and prints what it checked
//! cargo test --example testing_with_emulator   # the same scenario as a test
//! ```

use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{Error, UsageClient, UsageWindow};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

/// Application code: meters pump deliveries.
struct PumpMeter {
    client: UsageClient,
    subscription: SubscriptionId,
    pump: String,
}

impl PumpMeter {
    /// Records one delivery; the delivery number makes the tracking id.
    async fn delivered(&self, delivery: u64, at: &str, gallons: &str) -> Result<bool, Error> {
        let record = SubscriptionUsageRecord::builder(self.subscription)
            .tracking_id(format!("{}-delivery-{delivery}", self.pump))
            .record("gallons", at.parse::<UsageDate>()?, gallons)
            .build()?;
        let outcome = self.client.record_usage(&record).await?;
        Ok(outcome.already_recorded())
    }

    /// Gallons delivered in `[from, to)`.
    async fn gallons(&self, from: &str, to: &str) -> Result<String, Error> {
        let usage = self
            .client
            .get_usage(self.subscription, "gallons", UsageWindow::parse(from, to)?)?
            .await?;
        Ok(usage
            .amount_of("gallons")
            .map(|a| a.normalize().to_string())
            .unwrap_or_else(|| "0".into()))
    }
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    let kill_bill = InMemoryKillBill::new();
    let subscription = kill_bill.create_subscription();
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kill_bill.clone())
        .timer(InstantTimer::new())
        .build()?;
    let meter = PumpMeter {
        client,
        subscription,
        pump: "pump-7".into(),
    };

    meter.delivered(1, "2013-08-01T06:30:00Z", "10.5").await?;
    // The server is briefly unavailable: the client waits (Retry-After) and retries.
    kill_bill.fail_next_with_503(2, 1);
    meter.delivered(2, "2013-08-02T07:00:00Z", "4.25").await?;
    // The usage is stored but the answer is lost: the retry is refused as a duplicate, which
    // proves the first attempt landed.
    kill_bill.commit_then_lose_next(1);
    let already = meter.delivered(3, "2013-08-31T23:59:59.999Z", "0.25").await?;
    assert!(already, "the lost answer was recovered through the tracking id");
    // A delivery exactly at the end of the window is not in it (half-open windows).
    meter.delivered(4, "2013-09-01T00:00:00Z", "100").await?;

    assert_eq!(meter.gallons("2013-08-01", "2013-09-01").await?, "15");
    assert_eq!(meter.gallons("2013-08-01", "2013-09-02").await?, "115");
    assert_eq!(
        kill_bill.rows(subscription).len(),
        4,
        "each delivery stored exactly once"
    );
    println!("4 deliveries, 3 faults survived, August = 15 gallons, nothing counted twice");

    // Kill Bill's validation comes back typed, before or after the wire.
    let err = meter.delivered(5, "2013-08-03", "1234567890").await.unwrap_err();
    assert!(err.is_invalid_input(), "refused before sending: {err}");
    let stranger = PumpMeter {
        client: meter.client.clone(),
        subscription: SubscriptionId::random(),
        pump: "pump-8".into(),
    };
    assert!(stranger
        .delivered(1, "2013-08-01", "1")
        .await
        .unwrap_err()
        .is_not_found());
    println!("invalid amounts are refused before sending; unknown subscriptions are 404s");
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
