//! Round trips and real-server bodies.

use chrono::{DateTime, NaiveDate};
use proptest::prelude::*;
use usage_models::{
    Amount, Decimal, RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UnitUsageRecord,
    UsageDate, UsageRecord,
};

fn amount() -> impl Strategy<Value = Amount> {
    (-999_999_999_999_999_999i64..=999_999_999_999_999_999i64, 0u32..=9).prop_map(|(mantissa, scale)| {
        let value = Decimal::new(mantissa, 9);
        // Re-scale so that several scales (trailing zeros) are produced.
        Amount::new(value.round_dp(scale)).unwrap()
    })
}

fn usage_date() -> impl Strategy<Value = UsageDate> {
    prop_oneof![
        (0i32..=3_650_000).prop_map(|days| UsageDate::Date(
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days as u64)
        )),
        (0i64..=253_402_300_799_999).prop_map(|ms| UsageDate::Instant(DateTime::from_timestamp_millis(ms).unwrap())),
    ]
}

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 1..=max).prop_map(|chars| chars.into_iter().collect())
}

fn record() -> impl Strategy<Value = SubscriptionUsageRecord> {
    let unit = (name(40), proptest::collection::vec((usage_date(), amount()), 1..5)).prop_map(|(unit, records)| {
        UnitUsageRecord::new(
            UnitType::new(unit).unwrap(),
            records.into_iter().map(|(d, a)| UsageRecord::new(d, a)).collect(),
        )
        .unwrap()
    });
    (
        any::<u128>(),
        proptest::option::of(name(128)),
        proptest::collection::vec(unit, 1..4),
    )
        .prop_map(|(id, tracking, units)| {
            SubscriptionUsageRecord::new(
                SubscriptionId::new(uuid::Uuid::from_u128(id)),
                tracking.map(|t| TrackingId::new(t).unwrap()),
                units,
            )
            .unwrap()
        })
}

proptest! {
    #[test]
    fn any_valid_record_round_trips(record in record()) {
        let json = serde_json::to_string(&record).unwrap();
        let back: SubscriptionUsageRecord = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &record);
        // Amounts keep every digit (equality above is numeric; check the text too).
        for (unit, back_unit) in record.unit_usage_records().iter().zip(back.unit_usage_records()) {
            for (r, b) in unit.usage_records().iter().zip(back_unit.usage_records()) {
                prop_assert_eq!(r.amount().value().normalize().to_string(), b.amount().value().normalize().to_string());
            }
        }
    }

    #[test]
    fn amounts_are_written_as_plain_json_numbers(a in amount()) {
        let json = serde_json::to_string(&a).unwrap();
        prop_assert!(!json.starts_with('"'));
        prop_assert!(!json.contains(['e', 'E']));
        if a.value().is_integer() {
            prop_assert!(!json.contains('.'), "{}", json);
        }
        let back: Amount = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn dates_round_trip(d in usage_date()) {
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<UsageDate>(&json).unwrap(), d);
        prop_assert_eq!(d.to_string().parse::<UsageDate>().unwrap(), d);
    }
}

#[test]
fn real_server_bodies_parse() {
    let sub = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
    // 0.24+: date-times with millis, scale-9 sums, exponent notation for tiny sums.
    let body = format!(
        r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-08-31T00:00:00.000Z",
        "rolledUpUnits":[{{"unitType":"gallons","amount":15.000000000}},{{"unitType":"zero","amount":0E-9}},
        {{"unitType":"tiny","amount":1.00E-7}},{{"unitType":"big","amount":333333333.333333333}},
        {{"unitType":"sum","amount":19.500000000}}]}}"#
    );
    let usage: RolledUpUsage = serde_json::from_str(&body).unwrap();
    assert_eq!(usage.subscription_id().to_string(), sub);
    assert_eq!(usage.start_date().to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.amount_of("gallons").unwrap(), Decimal::from(15));
    assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "15.000000000");
    assert!(usage.amount_of("zero").unwrap().is_zero());
    assert_eq!(usage.amount_of("tiny").unwrap().to_string(), "0.000000100");
    assert_eq!(usage.amount_of("big").unwrap().to_string(), "333333333.333333333");
    assert_eq!(usage.amount_of("sum").unwrap(), "19.5".parse::<Decimal>().unwrap());

    // 0.22: dates only, integer amounts.
    let body = format!(
        r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01","endDate":"2013-08-31",
        "rolledUpUnits":[{{"unitType":"gallons","amount":15}}]}}"#
    );
    let usage: RolledUpUsage = serde_json::from_str(&body).unwrap();
    assert_eq!(
        usage.start_date(),
        UsageDate::Date(NaiveDate::from_ymd_opt(2013, 8, 1).unwrap())
    );
    assert_eq!(usage.amount_of("gallons").unwrap(), Decimal::from(15));

    // Nothing in the window.
    let body = format!(
        r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-08-31T00:00:00.000Z","rolledUpUnits":[]}}"#
    );
    let usage: RolledUpUsage = serde_json::from_str(&body).unwrap();
    assert!(usage.rolled_up_units().is_empty());

    // Sums past decimal(18,9) still parse (they are sums of many rows).
    let body = format!(
        r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01","endDate":"2013-08-31",
        "rolledUpUnits":[{{"unitType":"u","amount":99999999999.999999999}}]}}"#
    );
    let usage: RolledUpUsage = serde_json::from_str(&body).unwrap();
    assert_eq!(usage.amount_of("u").unwrap().to_string(), "99999999999.999999999");
}
