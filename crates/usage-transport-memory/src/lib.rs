//! # usage-transport-memory
//!
//! In-memory transports for the Kill Bill Usage client, for tests with no network:
//!
//! - [`InMemoryKillBill`]: a stateful emulator of Kill Bill's usage endpoints that follows the
//!   workspace's contract ([`docs/contract.md`](https://github.com/example/killbill-usage/blob/main/docs/contract.md))
//!   to the letter: authentication and tenants,
//!   every check of `POST /1.0/kb/usages` in order with Kill Bill's statuses and bodies,
//!   half-open windows, exact sums written as Java's `BigDecimal` (`15.000000000`, `0E-9`),
//!   both wire formats, and [fault injection](Fault) (error statuses, transport errors,
//!   "commit then lose the answer", and slow commits). Its duplicate tracking-id check is
//!   atomic by default, or [non-atomic as Kill Bill's](DuplicateCheck::KillBill). It is a
//!   [`Transport`](usage_core::Transport), and its [`handle`](InMemoryKillBill::handle) is a
//!   plain function an HTTP server can serve ([`process`](InMemoryKillBill::process) when it
//!   should take Kill Bill's processing time).
//! - [`MockTransport`]: scripted [`Rule`]s and [`Reply`]s, with every request captured.
//! - [`InstantTimer`]: a [`Timer`](usage_core::Timer) whose sleeps take no time, for retry
//!   and deadline tests.
//!
//! Test your application code against the emulator:
//!
//! ```
//! use usage_core::UsageClient;
//! use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
//! use usage_transport_memory::{InMemoryKillBill, InstantTimer};
//!
//! /// Application code under test: meters one day of a pump's usage.
//! async fn meter_pump(client: &UsageClient, subscription: SubscriptionId, day: &str, gallons: &str)
//!     -> Result<(), usage_core::Error>
//! {
//!     let record = SubscriptionUsageRecord::builder(subscription)
//!         .tracking_id(format!("pump-{day}"))
//!         .record("gallons", day.parse::<UsageDate>()?, gallons)
//!         .build()?;
//!     client.record_usage(&record).await.map(|_| ())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let kb = InMemoryKillBill::new(); // admin/password, tenant bob/lazar
//! let subscription = kb.create_subscription();
//! let client = UsageClient::builder("http://kb.test")
//!     .user("admin", "password")
//!     .tenant("bob", "lazar")
//!     .transport(kb.clone())
//!     .timer(InstantTimer::new())
//!     .build()
//!     .unwrap();
//!
//! // The server is briefly unavailable, then answers lose themselves: the client's retries
//! // and tracking ids must still count each day exactly once.
//! kb.fail_next_with_503(1, 1);
//! meter_pump(&client, subscription, "2013-08-01", "10.5").await.unwrap();
//! kb.commit_then_lose_next(1);
//! meter_pump(&client, subscription, "2013-08-02", "4.5").await.unwrap();
//!
//! let august = usage_core::UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
//! let usage = client.get_usage(subscription, "gallons", august).unwrap().await.unwrap();
//! assert_eq!(usage.amount_of("gallons"), Some("15".parse().unwrap()));
//! assert_eq!(kb.rows(subscription).len(), 2);
//!
//! // Kill Bill's own errors come back typed.
//! let unknown = client.get_all_usage(SubscriptionId::random(), august).await.unwrap_err();
//! assert!(unknown.is_not_found());
//! # });
//! ```
//!
//! ## Features
//!
//! The emulator's latency uses `tokio::time::sleep`.
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `serve` | off | `serve`: the emulator over HTTP/1.1 (hyper), with random [`Fault`]s and slow commits (the engine of `kb-usage serve`) |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod emulator;
mod java;
mod mock;
mod query;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
mod timer;

pub use emulator::{
    DuplicateCheck, EmulatorError, Fault, InMemoryKillBill, InMemoryKillBillBuilder, NewSubscription, StoredRow,
    WireFormat,
};
pub use mock::{CapturedRequest, MockTransport, Reply, Rule};
pub use timer::InstantTimer;
