//! # killbill-usage
//!
//! Meter usage into [Kill Bill](https://killbill.io) from any Rust service. This facade
//! re-exports the layers of the workspace:
//!
//! - [`models`] (`usage-models`): the JSON types, exact decimals and dates;
//! - [`core`] (`usage-core`): sans-IO operations, typed errors, the [`Transport`] trait and the
//!   [`UsageClient`].
//!
//! ```
//! use killbill_usage::{models::SubscriptionUsageRecord, models::SubscriptionId, UsageWindow};
//!
//! let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
//! let record = SubscriptionUsageRecord::builder(SubscriptionId::random())
//!     .record("gallons", window.start(), 10)
//!     .build()
//!     .unwrap();
//! assert_eq!(record.record_count(), 1);
//! ```

#[cfg(feature = "tower")]
pub mod tower;

pub use usage_core as core;
pub use usage_models as models;

pub use usage_core::{
    Error, RecordOutcome, RequestOptions, RetryPolicy, Transport, TransportError, TransportErrorKind, UsageClient,
    UsageWindow,
};
