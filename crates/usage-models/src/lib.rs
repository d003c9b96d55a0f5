//! # usage-models
//!
//! The data types of Kill Bill's Usage API, exact to the wire, with no HTTP and no I/O: use
//! this crate alone if you only need the schemas.
//!
//! - [`SubscriptionUsageRecord`] (the body of `POST /1.0/kb/usages`), [`UnitUsageRecord`],
//!   [`UsageRecord`]; valid by construction, with a [builder](SubscriptionUsageRecord::builder)
//!   that names the field at fault.
//! - [`RolledUpUsage`] and [`RolledUpUnit`] (the answer of both GETs).
//! - [`KillBillError`], the JSON error body of every Kill Bill error.
//! - [`Amount`]: an exact decimal within Kill Bill's `decimal(18,9)`, read from the JSON number's
//!   text and never through `f64` (`333333333.333333333`, `15.000000000`, `0E-9` and `1.00E-7` all
//!   survive), written as a JSON number (integral values without a fraction, so 0.22 servers,
//!   which store 64-bit integers, accept them).
//! - [`UsageDate`]: a calendar date or an instant; both Kill Bill wire forms (0.22's `yyyy-MM-dd`
//!   and 0.24's `yyyy-MM-ddTHH:mm:ss.SSSZ`, plus offsets and epoch milliseconds) are read.
//! - [`SubscriptionId`], [`UnitType`], [`TrackingId`]: typed ids with Kill Bill's limits.
//!
//! ```
//! use usage_models::{RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, UsageDate};
//!
//! let subscription = SubscriptionId::random();
//! let record = SubscriptionUsageRecord::builder(subscription)
//!     .tracking_id("meter-1")
//!     .record("gallons", "2013-08-01T06:30:00Z".parse::<UsageDate>().unwrap(), "10.5")
//!     .build()
//!     .unwrap();
//! let body = serde_json::to_string(&record).unwrap();
//! assert!(body.contains(r#""amount":10.5"#));
//!
//! // A real 0.24 server's answer, scale-9 amounts and all:
//! let answer = format!(
//!     r#"{{"subscriptionId":"{subscription}","startDate":"2013-08-01T00:00:00.000Z",
//!        "endDate":"2013-09-01T00:00:00.000Z",
//!        "rolledUpUnits":[{{"unitType":"gallons","amount":10.500000000}}]}}"#
//! );
//! let usage: RolledUpUsage = serde_json::from_str(&answer).unwrap();
//! assert_eq!(usage.amount_of("gallons"), Some("10.5".parse().unwrap()));
//! ```
//!
//! ## Features
//!
//! This crate has no optional features. It depends on serde, serde_json (for exact numbers
//! through its public `RawValue`, feature `raw_value`; `arbitrary_precision` is not turned on),
//! chrono, uuid and rust_decimal. What an amount becomes through `serde_json::Value` and other
//! serde formats is on [`Amount`].
#![cfg_attr(docsrs, feature(doc_cfg))]

mod amount;
mod date;
mod error;
mod ids;
mod kill_bill_error;
mod record;
mod rollup;

pub use amount::{json_decimal, Amount, MAX_FRACTION_DIGITS, MAX_INTEGER_DIGITS};
pub use date::UsageDate;
pub use error::{Field, ValidationError};
pub use ids::{SubscriptionId, TrackingId, UnitType, MAX_TRACKING_ID_CHARS, MAX_UNIT_TYPE_CHARS};
pub use kill_bill_error::{KillBillError, StackTraceElement};
pub use record::{SubscriptionUsageRecord, SubscriptionUsageRecordBuilder, UnitUsageRecord, UsageRecord};
pub use rollup::{RolledUpUnit, RolledUpUsage};

/// The exact decimal type of amounts and sums.
pub use rust_decimal::Decimal;
