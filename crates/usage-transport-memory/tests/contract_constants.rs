//! The client's copies of Kill Bill's facts checked against the emulator's, which are checked
//! against `docs/contract.md` (`emulator::contract`'s unit tests): a typo on either side fails
//! here. The emulator shares no constant with the client, only the `Transport` seam.

mod common;

use common::{client, day, BASE};
use usage_core::UsageClient;
use usage_models::SubscriptionUsageRecord;
use usage_transport_memory::InMemoryKillBill;

/// The column limits of docs/contract.md §2: the longest values the client accepts are exactly
/// the longest the emulator stores, and one character more is refused before anything is sent.
#[tokio::test]
async fn the_clients_limits_are_the_emulators() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let record = |unit: &str, tracking: &str| {
        SubscriptionUsageRecord::builder(subscription)
            .tracking_id(tracking)
            .record(unit, day("2013-08-01"), "1")
            .build()
    };

    // docs/contract.md §2: `unit_type varchar(255)`, `tracking_id varchar(128)`.
    let longest = record(&"u".repeat(255), &"t".repeat(128)).unwrap();
    client(&kb).record_usage(&longest).await.unwrap();
    assert_eq!(kb.rows(subscription).len(), 1);
    assert!(record(&"u".repeat(256), "t").is_err());
    assert!(record("u", &"t".repeat(129)).is_err());

    // docs/contract.md §2: `created_by varchar(50)`.
    let by = |created_by: String| {
        UsageClient::builder(BASE)
            .user("admin", "password")
            .tenant("bob", "lazar")
            .created_by(created_by)
            .transport(kb.clone())
            .retry_policy(usage_core::RetryPolicy::none().without_deadline())
            .build()
    };
    let fifty = by("c".repeat(50)).unwrap();
    let other = record("u", "another").unwrap();
    fifty.record_usage(&other).await.unwrap();
    assert_eq!(kb.rows(subscription)[1].created_by(), "c".repeat(50));
    assert!(by("c".repeat(51)).is_err());
}

/// docs/contract.md §4 row 14: the emulator's refusal of a tracking id used before is the one
/// the client recognizes (`code` 50000).
#[tokio::test]
async fn the_clients_duplicate_code_is_the_emulators() {
    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id("once")
        .record("gallons", day("2013-08-01"), "1")
        .build()
        .unwrap();
    client(&kb).record_usage(&record).await.unwrap();
    let again = client(&kb).record_usage(&record).await.unwrap_err();
    assert_eq!(again.kill_bill_code(), Some(50000));
    assert!(again.is_duplicate_tracking_id());
}
