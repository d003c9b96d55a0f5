//! The seam between the client and an HTTP stack.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

/// Moves one buffered request to the server and brings back its buffered response.
///
/// The contract:
/// - the request has an absolute URI (`https://host/prefix/1.0/kb/usages`), its headers and
///   its whole body;
/// - **any** HTTP status is `Ok`: a transport only moves bytes; the client reads the status;
/// - a transport never retries and never follows redirects (the client decides what is safe to
///   retry; credentials must never be sent to another host);
/// - failures are a [`TransportError`] whose [`kind`](TransportError::kind) tells whether the
///   request may have reached the server.
///
/// The trait is object-safe; the client holds an `Arc<dyn Transport>`.
///
/// ```
/// use bytes::Bytes;
/// use usage_core::{Transport, TransportError};
///
/// /// Answers 201 to everything, as Kill Bill does to a good POST.
/// #[derive(Debug)]
/// struct Always201;
///
/// #[async_trait::async_trait]
/// impl Transport for Always201 {
///     async fn send(&self, _request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
///         Ok(http::Response::builder().status(201).body(Bytes::new()).unwrap())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Sends `request` and returns the whole response.
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError>;

    /// The longest one [`send`](Transport::send) can take, when the transport enforces that
    /// itself (a whole-exchange timeout). For an attempt whose remaining deadline is longer,
    /// the client then starts no timer of its own: one timer per call instead of two. `None`
    /// (the default) when the transport has no such bound.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
}

/// A shared transport is a transport, so a test can keep a handle on the one it gives the
/// client.
#[async_trait::async_trait]
impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
        (**self).send(request).await
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        (**self).timeout()
    }
}

/// What kind of transport failure happened; it tells whether the request may have reached the
/// server, and so what is safe to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection could be made (refused, DNS, TLS handshake): nothing was sent.
    Connect,
    /// The transport's own timeout fired; the request may have been processed.
    Timeout,
    /// An I/O error (reset, broken pipe) after the connection was made.
    Io,
    /// The connection closed before a whole response came back (often a stale pooled
    /// connection); the request may have been processed.
    Incomplete,
    /// The request could not be sent as built (a bad URI or header for this transport):
    /// nothing was sent, and retrying will not help.
    InvalidRequest,
    /// The response body was larger than the transport accepts.
    ResponseTooLarge,
    /// Anything else.
    Other,
}

impl TransportErrorKind {
    fn describe(self) -> &'static str {
        match self {
            TransportErrorKind::Connect => "could not connect",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Io => "I/O error",
            TransportErrorKind::Incomplete => "incomplete response",
            TransportErrorKind::InvalidRequest => "invalid request",
            TransportErrorKind::ResponseTooLarge => "response too large",
            TransportErrorKind::Other => "transport error",
        }
    }
}

/// A transport failure: a [kind](TransportErrorKind), a message and the source chain.
///
/// ```
/// use usage_core::{TransportError, TransportErrorKind};
///
/// let error = TransportError::new(TransportErrorKind::Connect, "connection refused");
/// assert!(!error.may_have_reached_server());
/// assert_eq!(error.to_string(), "could not connect: connection refused");
/// ```
#[derive(Debug)]
pub struct TransportError {
    kind: TransportErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TransportError {
    /// An error of `kind` with a message.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source` (its `Display` becomes the message).
    pub fn with_source(kind: TransportErrorKind, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        let source = source.into();
        TransportError {
            kind,
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// The kind.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the server may have received (and processed) the request. Only
    /// [`Connect`](TransportErrorKind::Connect) and
    /// [`InvalidRequest`](TransportErrorKind::InvalidRequest) errors guarantee that nothing was
    /// sent.
    pub fn may_have_reached_server(&self) -> bool {
        !matches!(
            self.kind,
            TransportErrorKind::Connect | TransportErrorKind::InvalidRequest
        )
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.describe(), self.message)
    }
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

/// A boxed, `Send` future of the [`Timer`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Time, for retries and deadlines: the client never reads a clock or sleeps but through
/// this, so tests can use a timer that takes no time.
pub trait Timer: Send + Sync + fmt::Debug + 'static {
    /// The current instant (deadlines and elapsed time).
    fn now(&self) -> Instant;

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The current wall-clock time, read only to turn a `Retry-After` HTTP date into a wait.
    /// The default reads the system clock; a timer with a virtual clock overrides it so that
    /// dates move with its [`now`](Timer::now).
    fn wall_clock(&self) -> SystemTime {
        SystemTime::now()
    }
}
