//! The `metrics` feature: the counters and gauges reach the installed recorder.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use usage_core::{TransportErrorKind, UsageClient};
use usage_meter::Meter;
use usage_models::{Amount, SubscriptionId, UnitType, UsageDate};
use usage_transport_memory::{Fault, InMemoryKillBill, InstantTimer};

/// Keeps every counter and gauge by name (a gauge as the bits of its f64).
#[derive(Default)]
struct Kept(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Kept {
    fn cell(&self, key: &Key) -> Arc<AtomicU64> {
        self.0
            .lock()
            .unwrap()
            .entry(key.name().to_string())
            .or_default()
            .clone()
    }

    fn value(&self, name: &str) -> Option<u64> {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map(|cell| cell.load(Ordering::Relaxed))
    }
}

impl Recorder for &'static Kept {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn counters_and_gauges_reach_the_recorder() {
    static KEPT: OnceLock<Kept> = OnceLock::new();
    let kept = KEPT.get_or_init(Kept::default);
    metrics::set_global_recorder(kept).unwrap();

    let kb = InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let client = UsageClient::builder("http://kb.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kb.clone())
        .timer(InstantTimer::new())
        .build()
        .unwrap();
    // The server is down at first: the events wait in the meter.
    kb.inject(Fault::transport(TransportErrorKind::Connect), 1_000_000);
    let meter = Meter::builder(client)
        .flush_interval(Duration::from_millis(10))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .start()
        .unwrap();
    let unit = UnitType::new("a").unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    for _ in 0..10 {
        meter.try_record(subscription, &unit, day, Amount::from(1)).unwrap();
    }
    meter
        .try_record(SubscriptionId::random(), &unit, day, Amount::from(1))
        .unwrap();
    let gauge = |name: &str| kept.value(name).map(f64::from_bits);
    for _ in 0..500 {
        if gauge("usage_meter_events_pending") == Some(11.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(gauge("usage_meter_events_pending"), Some(11.0));
    assert!(kept.value("usage_meter_requests_retried_total").unwrap_or(0) > 0);
    kb.clear_faults();
    assert!(meter.flush(Duration::from_secs(30)).await.complete);
    assert_eq!(kept.value("usage_meter_events_accepted_total"), Some(11));
    assert_eq!(kept.value("usage_meter_events_delivered_total"), Some(10));
    assert_eq!(kept.value("usage_meter_events_rejected_total"), Some(1));
    // The gauges follow at the next interval.
    for _ in 0..500 {
        if gauge("usage_meter_events_pending") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(gauge("usage_meter_events_pending"), Some(0.0));
    assert!(gauge("usage_meter_oldest_pending_seconds").is_some());
}
