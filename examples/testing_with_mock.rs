//! Testing application code with the scripted mock: script the answers, then assert on the exact
//! requests your code sent.
//!
//! ```sh
//! cargo run --example testing_with_mock
//! cargo test --example testing_with_mock
//! ```

use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RequestOptions, RetryPolicy, UsageClient};
use usage_transport_memory::{InstantTimer, MockTransport, Reply, Rule};

/// Application code: reports an API call of a customer, with audit headers.
async fn report_api_call(
    client: &UsageClient,
    subscription: SubscriptionId,
    at: &str,
) -> Result<(), killbill_usage::Error> {
    let record = SubscriptionUsageRecord::builder(subscription)
        .record("api-calls", at.parse::<UsageDate>()?, 1)
        .build()?;
    client
        .record_usage(&record)
        .options(
            RequestOptions::builder()
                .created_by("gateway")
                .reason("api call")
                .request_id("req-1")
                .build()?,
        )
        .await
        .map(|_| ())
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockTransport::new();
    // The first attempt is throttled, the second succeeds.
    mock.expect(
        Rule::post("/killbill/1.0/kb/usages")
            .replies([Reply::status(429).header("retry-after", "3"), Reply::created()]),
    );
    let timer = InstantTimer::new();
    let client = UsageClient::builder("https://billing.example.com/killbill")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(mock.clone())
        .timer(timer.clone())
        .retry_policy(RetryPolicy::default().with_jitter(false))
        .build()?;
    let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse()?;

    report_api_call(&client, subscription, "2013-08-01T06:30:00Z").await?;

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(
        first.uri().to_string(),
        "https://billing.example.com/killbill/1.0/kb/usages"
    );
    assert_eq!(first.header("x-killbill-createdby"), Some("gateway"));
    assert_eq!(first.header("x-killbill-reason"), Some("api call"));
    assert_eq!(first.header("x-request-id"), Some("req-1"));
    let body = first.body_json().expect("a JSON body");
    assert_eq!(body["unitUsageRecords"][0]["unitType"], "api-calls");
    assert_eq!(
        body["unitUsageRecords"][0]["usageRecords"][0]["recordDate"],
        "2013-08-01T06:30:00.000Z"
    );
    assert_eq!(body["unitUsageRecords"][0]["usageRecords"][0]["amount"], 1);
    // The retry resent the very same tracking id, after exactly the Retry-After asked for.
    assert_eq!(requests[1].body_json().unwrap()["trackingId"], body["trackingId"]);
    assert_eq!(timer.sleeps(), [std::time::Duration::from_secs(3)]);
    mock.assert_all_consumed();
    println!("2 requests captured; the retry kept tracking id {}", body["trackingId"]);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    scenario().await
}

#[test]
fn the_scenario_passes() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(scenario())
        .unwrap();
}
