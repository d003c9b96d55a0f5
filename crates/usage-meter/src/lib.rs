//! # usage-meter
//!
//! Metering at service scale into Kill Bill, on [`usage_core`]:
//!
//! - [`Meter`]: [`record`](Meter::record) returns at once; a background task groups events
//!   per subscription into requests of at most 1,000 records, sends them on size or on an
//!   interval through the [`UsageClient`](usage_core::UsageClient) with its retries, each
//!   under a tracking id fixed before its first attempt. Memory is bounded ([`WhenFull`]),
//!   refusals become [dead letters](Meter::dead_letters), [`flush`](Meter::flush) and
//!   [`shutdown`](Meter::shutdown) say what is left. Optional aggregation per subscription,
//!   unit type and time bucket.
//! - [`Bulk`]: the bulk engine behind `kb-usage import`: many requests, each under a tracking
//!   id fixed before its first attempt ([`derive_tracking_id`] makes it depend only on the
//!   content), sent with bounded concurrency, tallied, stopping on a failure that would repeat;
//!   [`plan`](plan::plan) cuts rows into such requests.
//!
//! ```
//! use std::time::Duration;
//! use usage_core::UsageClient;
//! use usage_meter::Meter;
//! use usage_models::{Amount, UnitType, UsageDate};
//! use usage_transport_memory::{InMemoryKillBill, InstantTimer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let kb = InMemoryKillBill::new(); // the emulator: admin/password, tenant bob/lazar
//! let subscription = kb.create_subscription();
//! let client = UsageClient::builder("http://kb.test").user("admin", "password").tenant("bob", "lazar")
//!     .transport(kb.clone()).timer(InstantTimer::new()).build().unwrap();
//!
//! let meter = Meter::builder(client).flush_interval(Duration::from_millis(500)).start().unwrap();
//! let calls = UnitType::new("api-calls").unwrap();
//! for _ in 0..2_500 {
//!     // Returns at once: no network here.
//!     meter.record(subscription, &calls, UsageDate::now(), Amount::from(1)).await.unwrap();
//! }
//! let report = meter.shutdown(Duration::from_secs(10)).await;
//! assert!(report.complete && report.pending_events == 0);
//! assert_eq!(kb.rows(subscription).len(), 2_500); // in 3 requests: 1,000 + 1,000 + 500
//! # });
//! ```
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `spool` | off | [`MeterBuilder::spool`]: a durable spool in SQLite (`rusqlite`, bundled; WAL, `synchronous=FULL`, group commit). Accepted events survive a crash or a power cut once [`Meter::durable`] returns; a batch's members and tracking id are committed before its first attempt, so a restart delivers what is left exactly once; dead letters and source checkpoints ([`Meter::record_from_source`]) are kept in it; [`Meter::record_requests_from_source`] seals whole requests under the caller's own tracking ids with a checkpoint, each (subscription, tracking id) once. |
//! | `metrics` | off | counters and gauges through the `metrics` facade: accepted, spooled, delivered, retried, rejected events, events pending, age of the oldest. |
//!
//! The meter logs through `tracing` (target `usage_meter`): deliveries at debug, retries and
//! dead letters at warn, a failing spool at error.

pub mod bulk;
mod meter;
mod observe;
pub mod plan;
#[cfg(feature = "spool")]
mod spool;

pub use bulk::{derive_tracking_id, Bulk, BulkError, BulkReport, Outcome, StopSignal, Tally, MAX_RECORDS_PER_REQUEST};
#[cfg(feature = "spool")]
pub use meter::DurableError;
pub use meter::{
    DeadLetter, DeadLetters, FlushReport, Meter, MeterBuilder, MeterStats, RecordError, StartError, Usage, WhenFull,
    DEFAULT_MAX_DEAD_LETTERS,
};
#[cfg(feature = "spool")]
pub use spool::SpoolError;
