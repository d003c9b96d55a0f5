//! Counters and gauges through the `metrics` facade (feature `metrics`); without the feature
//! every function here is empty and costs nothing.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `usage_meter_events_accepted_total` | counter | events taken by the background task |
//! | `usage_meter_events_spooled_total` | counter | events committed to the spool |
//! | `usage_meter_events_delivered_total` | counter | events on the server |
//! | `usage_meter_requests_retried_total` | counter | requests put back after the client's retries |
//! | `usage_meter_events_rejected_total` | counter | events in dead letters |
//! | `usage_meter_events_pending` | gauge | events held, not yet delivered nor dead-lettered |
//! | `usage_meter_oldest_pending_seconds` | gauge | age of the oldest held event's batch |

#[cfg(feature = "metrics")]
mod on {
    pub fn accepted(events: u64) {
        metrics::counter!("usage_meter_events_accepted_total").increment(events);
    }

    #[cfg(feature = "spool")]
    pub fn spooled(events: u64) {
        metrics::counter!("usage_meter_events_spooled_total").increment(events);
    }

    pub fn delivered(events: u64) {
        metrics::counter!("usage_meter_events_delivered_total").increment(events);
    }

    pub fn retried() {
        metrics::counter!("usage_meter_requests_retried_total").increment(1);
    }

    pub fn dead_lettered(events: u64) {
        metrics::counter!("usage_meter_events_rejected_total").increment(events);
    }

    pub fn gauges(pending: u64, oldest_ms: u64) {
        metrics::gauge!("usage_meter_events_pending").set(pending as f64);
        metrics::gauge!("usage_meter_oldest_pending_seconds").set(oldest_ms as f64 / 1000.0);
    }
}

#[cfg(not(feature = "metrics"))]
mod on {
    pub fn accepted(_: u64) {}
    #[cfg(feature = "spool")]
    pub fn spooled(_: u64) {}
    pub fn delivered(_: u64) {}
    pub fn retried() {}
    pub fn dead_lettered(_: u64) {}
    pub fn gauges(_: u64, _: u64) {}
}

pub(crate) use on::*;
