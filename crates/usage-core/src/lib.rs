//! # usage-core
//!
//! The sans-IO core of the Kill Bill Usage client:
//!
//! - [operations](Operation) that turn into `http::Request<Bytes>` values and parse
//!   `http::Response<Bytes>` values into typed results or typed [errors](Error), usable on
//!   their own with a [`ClientConfig`] and any HTTP stack;
//! - the [`Transport`] trait, the one seam between the client and an HTTP stack, and the
//!   [`Timer`] trait for retries and deadlines;
//! - [`UsageClient`]: credentials, audit headers, per-call [`RequestOptions`], safe
//!   [retries](RetryPolicy) (recording is made idempotent with a tracking id) and deadlines.
//!
//! No hyper and no tokio appear in its API: only `http`, `bytes` and this workspace's types.
//!
//! What the operations send, and every answer they parse, is Kill Bill's real behaviour as
//! written down in the workspace's contract,
//! [`docs/contract.md`](https://github.com/example/killbill-usage/blob/main/docs/contract.md)
//! (not Kill Bill's OpenAPI file, which is wrong in places: its §7).
//!
//! ```
//! use usage_core::{ClientConfig, GetUsage, Operation, RequestOptions, TenantCredentials, UserCredentials, UsageWindow};
//! use usage_models::{SubscriptionId, UnitType};
//!
//! let config = ClientConfig::new(
//!     "https://billing.example.com/killbill",
//!     UserCredentials::new("admin", "password"),
//!     TenantCredentials::new("bob", "lazar"),
//! )
//! .unwrap();
//! let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
//! let unit = UnitType::new("api calls").unwrap();
//! let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
//! let operation = GetUsage::new(subscription, &unit, window).unwrap();
//!
//! let request = operation.to_request(&config, &RequestOptions::new()).unwrap();
//! assert_eq!(request.uri().path(), "/killbill/1.0/kb/usages/8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11/api%20calls");
//!
//! // ... send it with any HTTP stack, then:
//! let response = http::Response::builder()
//!     .status(404)
//!     .body(bytes::Bytes::from_static(br#"{"className":"org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist",
//!         "code":null,"message":"Object id=8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 type=SUBSCRIPTION doesn't exist!",
//!         "causeClassName":null,"causeMessage":null,"stackTrace":[]}"#))
//!     .unwrap();
//! let error = operation.parse(response).unwrap_err();
//! assert!(error.is_not_found());
//! assert_eq!(error.kill_bill_error().unwrap().short_class_name(), "ObjectDoesNotExist");
//! ```
//!
//! ## Errors
//!
//! One error type, [`Error`], is what every fallible public function of this crate and of the
//! transport crates (`usage-transport-hyper`, `usage-transport-memory`) returns: building a
//! [client](UsageClientBuilder::build), a transport (`HyperTransport::builder().build()`),
//! [options](RequestOptionsBuilder::build), a [window](UsageWindow::parse) or an
//! [operation](GetUsage::new), and every call. So `client_builder(url)?...build()?` and
//! `client.get_usage(..)?.await?` all meet the same type.
//!
//! - [`Error::InvalidInput`]: refused before anything was sent. Its payload, an
//!   [`InvalidInput`] (also reached with [`Error::invalid_input`]), names the
//!   [field](InputField) at fault as an enum, with indices where there are some (a record's
//!   `unitUsageRecords[1].usageRecords[0].amount`, a transport's
//!   [`RootCertificate { index }`](InputField::RootCertificate)), and keeps the underlying
//!   error (a TLS library's) as its [source](std::error::Error::source).
//! - [`Error::Transport`]: the request may or may not have been sent
//!   ([`TransportError::kind`], [`TransportError::may_have_reached_server`]).
//! - [`Error::Api`]: Kill Bill answered an error status, with its body parsed when it was a
//!   Kill Bill error ([`Error::kill_bill_error`], [`Error::kill_bill_code`]).
//! - [`Error::Decode`]: a success status with a body that is not what the API promises.
//! - [`Error::DeadlineExceeded`]: the call's deadline passed.
//!
//! Match on the variant, or ask the predicates, which beat matching on text:
//! [`status`](Error::status), [`is_not_found`](Error::is_not_found),
//! [`is_unauthorized`](Error::is_unauthorized),
//! [`is_duplicate_tracking_id`](Error::is_duplicate_tracking_id),
//! [`is_invalid_input`](Error::is_invalid_input), [`invalid_input`](Error::invalid_input),
//! [`transport_error`](Error::transport_error).
//!
//! ```
//! use usage_core::{Error, InputField, UsageWindow};
//!
//! let error = UsageWindow::parse("2013-09-01", "2013-08-01").unwrap_err();
//! match &error {
//!     Error::InvalidInput(invalid) => assert_eq!(invalid.field(), InputField::Window),
//!     other => panic!("{other}"),
//! }
//! assert!(error.is_invalid_input());
//! ```
//!
//! `usage-models` stands alone and keeps its own [`ValidationError`](usage_models::ValidationError)
//! (a value breaks one of Kill Bill's rules when it is built); it converts into
//! `Error::InvalidInput` with `?`, its field and indices kept. Two errors stay apart on
//! purpose: a [`Transport`]'s `send` returns a [`TransportError`] (the seam a transport
//! implements; the client wraps it in `Error::Transport`), and the in-memory emulator's
//! administration (creating subscriptions) returns its own `EmulatorError`, which is about
//! the emulated server's state, not the client.
//!
//! ## Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `tracing` | on | a `tracing` span per call (operation, subscription id, unit type, tracking id) and events per attempt (status or error, retries and their waits, the outcome), never with credentials. Off, the client pays nothing. |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod encode;
mod error;
mod operation;
mod options;
mod retry;
mod secret;
mod trace;
mod transport;
mod window;

pub use client::{GetUsageCall, GetUsageFuture, RecordUsageCall, RecordUsageFuture, UsageClient, UsageClientBuilder};
pub use config::{BaseUrl, ClientConfig, DEFAULT_CREATED_BY, MAX_CREATED_BY_CHARS};
pub use error::{ApiError, DecodeError, Error, InputField, InvalidInput, DUPLICATE_TRACKING_ID_CODE};
pub use operation::{GetAllUsage, GetUsage, Operation, RecordOutcome, RecordUsage};
pub use options::{RequestOptions, RequestOptionsBuilder};
pub use retry::RetryPolicy;
pub use secret::{Secret, TenantCredentials, UserCredentials};
pub use transport::{Sleep, Timer, Transport, TransportError, TransportErrorKind};
pub use window::UsageWindow;
