//! # killbill-usage
//!
//! Meter usage into [Kill Bill](https://killbill.io) from any Rust service. This facade
//! re-exports the layers of the workspace:
//!
//! - [`models`] (`usage-models`): the JSON types, exact decimals and dates;
//! - [`client`] (`usage-core`): sans-IO operations, typed errors, the [`Transport`] trait and the
//!   [`UsageClient`] with safe retries and deadlines (named `client`, not `core`, so that a
//!   glob import of this crate never shadows Rust's own `core`);
//! - [`hyper`] (`usage-transport-hyper`, feature `hyper`): the production transport, and
//!   [`client_builder`], a client for a URL in one call;
//! - [`memory`] (`usage-transport-memory`, feature `test-util`): an in-memory Kill Bill
//!   emulator, a scripted mock and an instant timer, for tests with no network;
//! - [`tower`] (feature `tower`): tower interop both ways.
//!
//! ```
//! # #[cfg(feature = "hyper")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord};
//! use killbill_usage::UsageWindow;
//!
//! let client = killbill_usage::client_builder("https://billing.example.com")?
//!     .user("admin", "password")
//!     .tenant("bob", "lazar")
//!     .build()?;
//! let window = UsageWindow::parse("2013-08-01", "2013-09-01")?;
//! let record = SubscriptionUsageRecord::builder(SubscriptionId::random())
//!     .tracking_id("meter-7-2013-08-01")
//!     .record("gallons", window.start(), 10)
//!     .build()?;
//! // client.record_usage(&record).await?; and client.get_usage(...)?.await?
//! # let _ = (client, record);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "hyper"))]
//! # fn main() {}
//! ```
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `hyper` | on | [`hyper`]: the hyper 1 transport with rustls (ring) and the web PKI roots; [`client_builder`] |
//! | `tracing` | on | a `tracing` span per call and events per attempt, never with credentials |
//! | `native-roots` | off | the operating system's TLS roots too |
//! | `http2` | off | HTTP/2 over TLS |
//! | `test-util` | off | [`memory`]: the emulator, the mock and the instant timer (enable it in `[dev-dependencies]`) |
//! | `tower` | off | [`tower`]: `tower::Service` clients as transports and transports as services |
//!
//! With no default features, the facade is the models and the sans-IO core: bring your own
//! [`Transport`].
//!
//! Built without a feature, a module it gates is not there: its links above lead to this table.
//!
//! [`Transport`]: crate::Transport
#![cfg_attr(not(feature = "hyper"), doc = "[`hyper`]: #features")]
#![cfg_attr(not(feature = "hyper"), doc = "[`client_builder`]: #features")]
#![cfg_attr(not(feature = "test-util"), doc = "[`memory`]: #features")]
#![cfg_attr(not(feature = "tower"), doc = "[`tower`]: #features")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tower")]
pub mod tower;

pub use usage_core as client;
pub use usage_models as models;
#[cfg(feature = "hyper")]
pub use usage_transport_hyper as hyper;
#[cfg(feature = "test-util")]
pub use usage_transport_memory as memory;

pub use usage_core::{
    Error, RecordOutcome, RequestOptions, RequestOptionsBuilder, RetryPolicy, Transport, TransportError,
    TransportErrorKind, UsageClient, UsageWindow,
};
#[cfg(feature = "hyper")]
pub use usage_transport_hyper::client_builder;
