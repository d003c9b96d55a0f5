//! # usage-meter
//!
//! Metering at service scale into Kill Bill, on [`usage_core`]:
//!
//! - [`Bulk`]: the bulk engine behind `kb-usage import`: many requests, each under a tracking
//!   id fixed before its first attempt ([`derive_tracking_id`] makes it depend only on the
//!   content), sent with bounded concurrency, tallied, stopping on a failure that would repeat.
//!
//! ```
//! use usage_core::UsageClient;
//! use usage_meter::{derive_tracking_id, Bulk};
//! use usage_models::{Amount, SubscriptionUsageRecord, UsageDate};
//! use usage_transport_memory::{InMemoryKillBill, InstantTimer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let kb = InMemoryKillBill::new(); // the emulator: admin/password, tenant bob/lazar
//! let subscription = kb.create_subscription();
//! let client = UsageClient::builder("http://kb.test").user("admin", "password").tenant("bob", "lazar")
//!     .transport(kb.clone()).timer(InstantTimer::new()).build().unwrap();
//! let day: UsageDate = "2013-08-01".parse().unwrap();
//! let amount = Amount::from(7);
//! let id = derive_tracking_id("app", subscription, 0, [("gallons", day, amount)]).unwrap();
//! let request = SubscriptionUsageRecord::builder(subscription).tracking_id(id.as_str())
//!     .record("gallons", day, amount).build().unwrap();
//! let report = Bulk::new(client).send(vec![request], |_, _, _| {}).await.unwrap();
//! assert_eq!(report.tally.recorded_rows, 1);
//! assert_eq!(kb.rows(subscription).len(), 1);
//! # });
//! ```

pub mod bulk;

pub use bulk::{derive_tracking_id, Bulk, BulkError, BulkReport, Outcome, StopSignal, Tally, MAX_RECORDS_PER_REQUEST};
