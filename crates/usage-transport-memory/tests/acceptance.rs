//! docs/contract.md §6: the acceptance cases of Kill Bill's own tests, through `UsageClient`.

mod common;

use chrono::{Days, NaiveDate, Utc};
use common::*;
use usage_core::UsageWindow;
use usage_models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_memory::InMemoryKillBill;

fn today_plus(days: i64) -> NaiveDate {
    let today = Utc::now().date_naive();
    if days >= 0 {
        today.checked_add_days(Days::new(days as u64)).unwrap()
    } else {
        today.checked_sub_days(Days::new((-days) as u64)).unwrap()
    }
}

fn days(start: i64, end: i64) -> UsageWindow {
    UsageWindow::new(today_plus(start), today_plus(end)).unwrap()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn setup() -> (InMemoryKillBill, usage_core::UsageClient, SubscriptionId) {
    let kb = InMemoryKillBill::new();
    let client = client(&kb);
    let sub = kb.create_subscription();
    (kb, client, sub)
}

#[tokio::test]
async fn bullets_yesterday_and_today() {
    let (_kb, client, sub) = setup();
    let record = SubscriptionUsageRecord::builder(sub)
        .record("bullets", UsageDate::Date(today_plus(-1)), 10)
        .record("bullets", UsageDate::Date(today_plus(0)), 5)
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    for (window, expected) in [(days(-1, 0), "10"), (days(-1, 1), "15"), (days(0, 1), "5")] {
        let usage = client.get_usage(sub, "bullets", window).unwrap().await.unwrap();
        assert_eq!(usage.subscription_id(), sub);
        assert_eq!(usage.amount_of("bullets"), Some(dec(expected)));
    }
    let all = client.get_all_usage(sub, days(0, 1)).await.unwrap();
    assert_eq!(all.subscription_id(), sub);
    assert_eq!(all.rolled_up_units().len(), 1);
    assert_eq!(all.rolled_up_units()[0].unit_type(), "bullets");
    assert_eq!(all.rolled_up_units()[0].amount(), dec("5"));
}

#[tokio::test]
async fn same_post_twice_with_the_same_tracking_id() {
    let (kb, client, sub) = setup();
    let record = SubscriptionUsageRecord::builder(sub)
        .tracking_id("xxx")
        .record("bullets", UsageDate::Date(today_plus(0)), 5)
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    let error = client.record_usage(&record).await.unwrap_err();
    assert_eq!(error.kill_bill_code(), Some(50000));
    assert_eq!(kb.row_count(), 1);
}

async fn three_days(values: [&str; 3]) -> (usage_core::UsageClient, SubscriptionId) {
    let (_kb, client, sub) = setup();
    let record = SubscriptionUsageRecord::builder(sub)
        .record("bullets", UsageDate::Date(today_plus(-1)), values[0])
        .record("bullets", UsageDate::Date(today_plus(0)), values[1])
        .record("bullets", UsageDate::Date(today_plus(1)), values[2])
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    (client, sub)
}

#[tokio::test]
async fn decimals() {
    let (client, sub) = three_days(["4.75", "6.25", "8.5"]).await;
    for (window, expected) in [(days(-1, 1), "11"), (days(-1, 2), "19.5"), (days(0, 2), "14.75")] {
        let usage = client.get_usage(sub, "bullets", window).unwrap().await.unwrap();
        assert_eq!(usage.amount_of("bullets"), Some(dec(expected)));
    }
}

#[tokio::test]
async fn large_decimals() {
    let (client, sub) = three_days(["111111111.111111111", "222222222.222222222", "333333333.333333333"]).await;
    for (window, expected) in [
        (days(-1, 1), "333333333.333333333"),
        (days(-1, 2), "666666666.666666666"),
        (days(0, 2), "555555555.555555555"),
    ] {
        let usage = client.get_usage(sub, "bullets", window).unwrap().await.unwrap();
        assert_eq!(usage.amount_of("bullets"), Some(dec(expected)));
    }
}

#[tokio::test]
async fn boundaries() {
    let (kb, client, sub) = setup();
    let record = SubscriptionUsageRecord::builder(sub)
        .record("gallons", day("2013-08-01T06:30:00Z"), 10)
        .record("gallons", day("2013-08-31T06:30:00Z"), 5)
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    let usage = client
        .get_usage(sub, "gallons", window("2013-08-1", "2013-08-31"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some(dec("10")));
    assert_eq!(usage.start_date().to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.end_date().to_string(), "2013-08-31T00:00:00.000Z");
    let usage = client
        .get_usage(sub, "gallons", window("2013-08-1", "2013-09-01"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some(dec("15")));
    // The one-digit day exactly as docs/contract.md §6 sends it.
    let response = Raw::get(&format!(
        "/1.0/kb/usages/{sub}/gallons?startDate=2013-08-1&endDate=2013-08-31"
    ))
    .send(&kb);
    let body = json(&response);
    assert_eq!(body["startDate"], "2013-08-01T00:00:00.000Z");
    assert_eq!(body["endDate"], "2013-08-31T00:00:00.000Z");
    assert!(text(&response).contains(r#""amount":10.000000000"#));
}

#[tokio::test]
async fn a_row_at_end_date_is_excluded_and_timestamps_are_exact() {
    let (kb, client, sub) = setup();
    client
        .record_usage(&one(sub, "gallons", "2013-01-01T13:15:46Z", "3"))
        .await
        .unwrap();
    assert_eq!(kb.rows(sub)[0].record_date().to_rfc3339(), "2013-01-01T13:15:46+00:00");
    let excluded = client
        .get_usage(sub, "gallons", window("2013-01-01", "2013-01-01T13:15:46Z"))
        .unwrap()
        .await
        .unwrap();
    assert!(excluded.rolled_up_units().is_empty());
    let included = client
        .get_usage(
            sub,
            "gallons",
            window("2013-01-01T13:15:46Z", "2013-01-01T13:15:46.001Z"),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(included.amount_of("gallons"), Some(dec("3")));
}
