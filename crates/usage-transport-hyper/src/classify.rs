//! Classifies hyper, hyper-util, rustls and I/O failures into the core's
//! [`TransportErrorKind`], by walking the source chain.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use usage_core::{TransportError, TransportErrorKind};

/// The kind of a failure of hyper-util's client or of reading a response body.
///
/// - anything hyper-util reports as a connect failure (refused, DNS, TCP connect timeout, TLS
///   handshake) is [`Connect`](TransportErrorKind::Connect): nothing was sent;
/// - then the first decisive error in the chain wins: hyper's own timeouts and
///   `io::ErrorKind::TimedOut` are `Timeout`; a message cut short (`is_incomplete_message`,
///   `UnexpectedEof`, a canceled request on a closing connection) is `Incomplete`; resets,
///   aborts and broken pipes are `Io`; hyper's "user" errors (a request it refuses to send)
///   are `InvalidRequest`; a response hyper cannot parse is `Other`.
pub(crate) fn classify(error: &(dyn StdError + 'static)) -> TransportErrorKind {
    if chain(error).any(|e| {
        e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
    }) {
        return TransportErrorKind::Connect;
    }
    for e in chain(error) {
        if e.is::<ConnectTimedOut>() {
            return TransportErrorKind::Connect;
        }
        if let Some(kind) = e.downcast_ref::<TimedOut>().map(|_| TransportErrorKind::Timeout) {
            return kind;
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_timeout() {
                return TransportErrorKind::Timeout;
            }
            if e.is_incomplete_message() || e.is_canceled() {
                return TransportErrorKind::Incomplete;
            }
            if e.is_body_write_aborted() {
                return TransportErrorKind::Io;
            }
            if e.is_user() {
                return TransportErrorKind::InvalidRequest;
            }
            if e.is_parse() {
                return TransportErrorKind::Other;
            }
            // Otherwise its cause (an io::Error, mostly) decides.
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            if let Some(kind) = io_kind(e.kind()) {
                return kind;
            }
        }
    }
    // An I/O error with no better description still means the connection failed after it was
    // made; anything else is unknown.
    if chain(error).any(|e| e.is::<io::Error>()) {
        TransportErrorKind::Io
    } else {
        TransportErrorKind::Other
    }
}

fn io_kind(kind: io::ErrorKind) -> Option<TransportErrorKind> {
    use io::ErrorKind as K;
    Some(match kind {
        K::ConnectionRefused | K::AddrNotAvailable | K::NotConnected => TransportErrorKind::Connect,
        K::TimedOut => TransportErrorKind::Timeout,
        K::UnexpectedEof => TransportErrorKind::Incomplete,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::WriteZero | K::Interrupted => {
            TransportErrorKind::Io
        }
        // `Other` and friends wrap something more precise, further down the chain.
        _ => return None,
    })
}

/// `error` and its causes. An `io::Error` wrapping another error reports that error's
/// *source* as its own, skipping the wrapped error itself; the walk looks at the wrapped error
/// too (hyper-rustls wraps rustls errors so).
fn chain<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |e: &&'a (dyn StdError + 'static)| {
        let e: &'a (dyn StdError + 'static) = *e;
        match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

/// A [`TransportError`] of the right kind, keeping `error` as its source. Its message is the
/// chain's messages joined (`client error (Connect): tcp connect error: Connection refused`),
/// as hyper's top-level messages alone say little.
pub(crate) fn transport_error(error: impl Into<Box<dyn StdError + Send + Sync>>) -> TransportError {
    let error = error.into();
    let kind = classify(&*error);
    let mut message = String::new();
    let mut last = String::new();
    for e in chain(&*error) {
        let text = e.to_string();
        if text.is_empty() || text == last || message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
        last = text;
    }
    TransportError::with_source(kind, Described { message, source: error })
}

/// An error with the message of its whole chain; its source is the original error.
#[derive(Debug)]
struct Described {
    message: String,
    source: Box<dyn StdError + Send + Sync>,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Described {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// The transport's own per-request timeout fired.
#[derive(Debug)]
pub(crate) struct TimedOut {
    pub(crate) after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no whole response within the request timeout of {:?} (connect, send, headers and body)",
            self.after
        )
    }
}

impl StdError for TimedOut {}

/// No connection (TCP and TLS) within the connect timeout.
#[derive(Debug)]
pub(crate) struct ConnectTimedOut {
    pub(crate) after: Duration,
}

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no connection (TCP connect and TLS handshake) within the connect timeout of {:?}",
            self.after
        )
    }
}

impl StdError for ConnectTimedOut {}

/// The response body is larger than the transport accepts.
#[derive(Debug)]
pub(crate) struct TooLarge {
    pub(crate) limit: usize,
    pub(crate) declared: Option<u64>,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.declared {
            Some(declared) => write!(
                f,
                "the response declares a body of {declared} bytes, more than the limit of {} bytes",
                self.limit
            ),
            None => write!(f, "the response body exceeds the limit of {} bytes", self.limit),
        }
    }
}

impl StdError for TooLarge {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(Box<dyn StdError + Send + Sync>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn io_kinds_found_down_the_chain() {
        for (kind, expected) in [
            (io::ErrorKind::ConnectionRefused, TransportErrorKind::Connect),
            (io::ErrorKind::ConnectionReset, TransportErrorKind::Io),
            (io::ErrorKind::BrokenPipe, TransportErrorKind::Io),
            (io::ErrorKind::TimedOut, TransportErrorKind::Timeout),
            (io::ErrorKind::UnexpectedEof, TransportErrorKind::Incomplete),
            (io::ErrorKind::PermissionDenied, TransportErrorKind::Io),
        ] {
            let error = Wrap(Box::new(Wrap(Box::new(io::Error::new(kind, "boom")))));
            assert_eq!(classify(&error), expected, "{kind:?}");
            let error = transport_error(error);
            assert_eq!(error.kind(), expected, "{kind:?}");
            assert_eq!(error.message(), "wrapped: boom");
            assert!(error.source().is_some(), "the chain is kept");
        }
    }

    #[test]
    fn an_io_error_of_kind_other_defers_to_its_cause() {
        let inner = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let error = io::Error::other(Wrap(Box::new(inner)));
        assert_eq!(classify(&error), TransportErrorKind::Io);
        let error = io::Error::other(TimedOut {
            after: Duration::from_secs(1),
        });
        assert_eq!(classify(&error), TransportErrorKind::Timeout);
    }

    #[test]
    fn own_errors() {
        let error = transport_error(TimedOut {
            after: Duration::from_millis(200),
        });
        assert_eq!(error.kind(), TransportErrorKind::Timeout);
        assert_eq!(
            error.to_string(),
            "timed out: no whole response within the request timeout of 200ms (connect, send, headers and body)"
        );
        let error = TooLarge {
            limit: 10,
            declared: Some(11),
        };
        assert_eq!(
            error.to_string(),
            "the response declares a body of 11 bytes, more than the limit of 10 bytes"
        );
        assert_eq!(classify(&error), TransportErrorKind::Other);
    }

    #[test]
    fn unknown_errors_are_other() {
        let error = Wrap(Box::<dyn StdError + Send + Sync>::from("something"));
        assert_eq!(classify(&error), TransportErrorKind::Other);
    }
}
