//! What both benchmarks send: a meter's readings.

use killbill_usage::models::{SubscriptionUsageRecord, SubscriptionUsageRecordBuilder, UsageDate};

/// `builder` with `rows` readings spread over `units` (at most 4) unit types, at instants with
/// milliseconds (the 0.24 wire form); half of the amounts integral (`42`), half with decimals
/// (`12.375`).
pub fn meter_readings(
    mut builder: SubscriptionUsageRecordBuilder,
    rows: usize,
    units: usize,
) -> SubscriptionUsageRecord {
    for i in 0..rows {
        let at = format!(
            "2013-08-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + i % 28,
            i % 24,
            (i / 24) % 60,
            (i * 7) % 60,
            (i * 13) % 1000
        );
        let at: UsageDate = at.parse().unwrap();
        let unit = ["api-calls", "storage-gb-hours", "egress-gb", "cpu-seconds"][i % units];
        let amount = if i % 2 == 0 {
            format!("{}", i % 1000)
        } else {
            format!("{}.{:03}", i % 1000, (i * 7919) % 1000 + 1)
        };
        builder = builder.record(unit, at, amount.as_str());
    }
    builder.build().unwrap()
}
