//! # usage-transport-hyper
//!
//! The production [`Transport`](usage_core::Transport) of the Kill Bill Usage client:
//! [`HyperTransport`] sends the client's requests over hyper 1 and hyper-util's pooled
//! connections, with rustls for TLS, finite timeouts, a cap on response bodies and failures
//! classified so that the client knows what is safe to retry. [`TokioTimer`] gives the
//! client's retries and deadlines tokio's clock, and [`client_builder`] sets both up in one
//! call.
//!
//! ```
//! use std::time::Duration;
//! use usage_core::{RetryPolicy, UsageClient};
//! use usage_transport_hyper::{client_builder, HyperTransport, TokioTimer};
//!
//! // One call: the hyper transport with its defaults, and tokio's timer.
//! let client = client_builder("https://billing.example.com/killbill")?
//!     .user("admin", "password")
//!     .tenant("bob", "lazar")
//!     .build()?;
//! assert_eq!(client.config().base_url().as_str(), "https://billing.example.com/killbill");
//!
//! // Or with settings of your own.
//! let transport = HyperTransport::builder()
//!     .connect_timeout(Duration::from_secs(2))
//!     .request_timeout(Duration::from_secs(5))
//!     .max_response_bytes(256 * 1024)
//!     .build()?;
//! let client = UsageClient::builder("http://127.0.0.1:8080")
//!     .user("admin", "password")
//!     .tenant("bob", "lazar")
//!     .transport(transport)
//!     .timer(TokioTimer)
//!     .retry_policy(RetryPolicy::default().with_deadline(Duration::from_secs(20)))
//!     .build()?;
//! # let _ = client;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Calls need a Kill Bill server (and a tokio runtime with I/O and time enabled):
//!
//! ```no_run
//! use usage_core::UsageWindow;
//! use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = usage_transport_hyper::client_builder("http://127.0.0.1:8080")?
//!     .user("admin", "password")
//!     .tenant("bob", "lazar")
//!     .build()?;
//! let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse()?;
//! let day: UsageDate = "2013-08-01".parse()?;
//! let record = SubscriptionUsageRecord::builder(subscription).record("gallons", day, 10).build()?;
//! client.record_usage(&record).await?;
//! let usage = client.get_usage(subscription, "gallons", UsageWindow::parse("2013-08-01", "2013-09-01")?)?.await?;
//! println!("{:?}", usage.amount_of("gallons"));
//! # Ok(())
//! # }
//! ```
//!
//! ## What the transport does
//!
//! | concern | behaviour |
//! |---|---|
//! | connections | HTTP/1.1 keep-alive pool; idle connections closed after the pool idle timeout (15 s); `TCP_NODELAY` |
//! | timeouts | connect (TCP and TLS handshake) 10 s, whole request (body included) 10 s, as Kill Bill's Java client |
//! | response size | 4 MiB cap: `Content-Length` checked first, then counted while streaming |
//! | redirects | never followed: a 3xx reaches the client as an API error |
//! | TLS | rustls with the ring provider; certificates always verified; no switch turns that off |
//! | errors | [`TransportErrorKind`](usage_core::TransportErrorKind): `Connect` (nothing sent), `Timeout`, `Io`, `Incomplete`, `InvalidRequest`, `ResponseTooLarge`, `Other`; source chain kept |
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `webpki-roots` | on | trusts the Mozilla roots bundled by the `webpki-roots` crate |
//! | `native-roots` | off | also trusts the operating system's roots (read once, when the transport is built; none found is not an error) |
//! | `http2` | off | offers HTTP/2 by ALPN to TLS servers (HTTP/1.1 stays available; plain `http://` is always HTTP/1.1) |
//!
//! With neither root feature, only [added roots](HyperTransportBuilder::add_root_certificate)
//! are trusted.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod timer;
mod tls;
mod transport;

pub use timer::TokioTimer;
pub use transport::{
    HyperTransport, HyperTransportBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_POOL_MAX_IDLE_PER_HOST, DEFAULT_REQUEST_TIMEOUT,
};

/// A [`UsageClientBuilder`](usage_core::UsageClientBuilder) for the server at `base_url`
/// with a [`HyperTransport`] of default settings and the [`TokioTimer`] already set: add the
/// credentials and build.
///
/// ```
/// let client = usage_transport_hyper::client_builder("http://127.0.0.1:8080")
///     .unwrap()
///     .user("admin", "password")
///     .tenant("bob", "lazar")
///     .build()
///     .unwrap();
/// assert!(!format!("{client:?}").contains("lazar"));
/// ```
pub fn client_builder(base_url: impl Into<String>) -> Result<usage_core::UsageClientBuilder, usage_core::Error> {
    Ok(usage_core::UsageClient::builder(base_url)
        .transport(HyperTransport::new()?)
        .timer(TokioTimer))
}
