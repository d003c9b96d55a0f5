//! Faults the emulator can inject: error statuses, transport errors, and lost answers.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use usage_core::{TransportError, TransportErrorKind};

/// The body of [`Fault::retry_later`].
const RETRY_LATER_BODY: &str = "fault injected by kb-usage serve: retry later\n";

/// A fault injected in front of the emulator, applied to one request.
///
/// Faults are queued with [`InMemoryKillBill::inject`](crate::InMemoryKillBill::inject) and
/// consumed one per request, in order, by the [`Transport`](usage_core::Transport)
/// implementation, by [`InMemoryKillBill::serve`](crate::InMemoryKillBill::serve) and by the
/// emulator's HTTP server (module `serve`, feature `serve`: a status fault is answered, a
/// transport fault closes the connection before handling, [`CommitThenLose`](Fault::CommitThenLose)
/// closes it after); another HTTP server built on [`handle`](crate::InMemoryKillBill::handle)
/// takes them with [`next_fault`](crate::InMemoryKillBill::next_fault).
///
/// ```
/// use usage_transport_memory::Fault;
///
/// let fault = Fault::unavailable(1);
/// let response = fault.response().unwrap();
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "1");
/// assert!(Fault::commit_then_lose().response().is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status (and headers and body) without reaching Kill Bill: nothing is
    /// stored. A proxy's 502/503/504, a 429 from a rate limiter... The answer's
    /// `Content-Type` is `application/json` for an empty body, `text/html` for a body that
    /// starts with `<`, `text/plain; charset=utf-8` otherwise.
    Status {
        /// The status.
        status: StatusCode,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
        /// The body (an HTML page from a proxy, or empty).
        body: Bytes,
    },
    /// Fail with a transport error of this kind without reaching Kill Bill: nothing is
    /// stored.
    Transport {
        /// The kind.
        kind: TransportErrorKind,
        /// The message.
        message: String,
    },
    /// Let Kill Bill process the request (a POST stores its usage), then lose the answer: the
    /// caller sees a transport error of kind [`Incomplete`](TransportErrorKind::Incomplete).
    /// This is the fault that makes naive retries count usage twice.
    CommitThenLose,
    /// Let Kill Bill process the request taking `processing` more before its insert (with
    /// [`DuplicateCheck::KillBill`](crate::DuplicateCheck::KillBill): after the tracking-id
    /// check; with the atomic check: before the check and the insert), then answer. A client
    /// whose attempt timeout is shorter gives up while the attempt is still being processed:
    /// its retry overlaps it, and with Kill Bill's check both can be stored.
    SlowCommit {
        /// The extra processing time.
        processing: std::time::Duration,
    },
}

impl Fault {
    /// Answer `status` with an empty body.
    pub fn status(status: StatusCode) -> Fault {
        Fault::Status {
            status,
            retry_after: None,
            body: Bytes::new(),
        }
    }

    /// 503 with `Retry-After: <seconds>` and an empty body.
    pub fn unavailable(retry_after_seconds: u64) -> Fault {
        Fault::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(retry_after_seconds),
            body: Bytes::new(),
        }
    }

    /// A proxy's HTML error page with `status` (502 and 504 are the usual ones).
    pub fn proxy_page(status: StatusCode) -> Fault {
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = status.as_u16();
        let body = format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n\
             <center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n\
             </body>\r\n</html>\r\n"
        );
        Fault::Status {
            status,
            retry_after: None,
            body: Bytes::from(body),
        }
    }

    /// `status` with `Retry-After: 0` and a short plain-text body, before handling: the 503
    /// and 429 among the random faults of the `serve` module (feature `serve`).
    pub fn retry_later(status: StatusCode) -> Fault {
        Fault::Status {
            status,
            retry_after: Some(0),
            body: Bytes::from_static(RETRY_LATER_BODY.as_bytes()),
        }
    }

    /// The connection closed before any answer, and before Kill Bill saw the request: nothing
    /// is stored. A transport error of kind [`Incomplete`](TransportErrorKind::Incomplete) for
    /// the in-memory transport; over HTTP (the `serve` module), the connection is closed
    /// (as with every [`Transport`](Fault::Transport) fault).
    pub fn connection_closed() -> Fault {
        Fault::Transport {
            kind: TransportErrorKind::Incomplete,
            message: "the connection closed before the request was processed (fault injected by the \
                      in-memory Kill Bill emulator)"
                .to_string(),
        }
    }

    /// A transport error of `kind`.
    pub fn transport(kind: TransportErrorKind) -> Fault {
        Fault::Transport {
            kind,
            message: "fault injected by the in-memory Kill Bill emulator".to_string(),
        }
    }

    /// Process the request, then lose the answer (see [`Fault::CommitThenLose`]).
    pub fn commit_then_lose() -> Fault {
        Fault::CommitThenLose
    }

    /// The response of a [`Status`](Fault::Status) fault; `None` for the others.
    pub fn response(&self) -> Option<Response<Bytes>> {
        let Fault::Status {
            status,
            retry_after,
            body,
        } = self
        else {
            return None;
        };
        let mut response = Response::new(body.clone());
        *response.status_mut() = *status;
        let content_type = if body.is_empty() {
            "application/json"
        } else if body.starts_with(b"<") {
            "text/html"
        } else {
            "text/plain; charset=utf-8"
        };
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(*seconds));
        }
        Some(response)
    }

    /// The transport error of a [`Transport`](Fault::Transport) or
    /// [`CommitThenLose`](Fault::CommitThenLose) fault; `None` for a status or a slow commit.
    pub fn transport_error(&self) -> Option<TransportError> {
        match self {
            Fault::Status { .. } | Fault::SlowCommit { .. } => None,
            Fault::Transport { kind, message } => Some(TransportError::new(*kind, message.clone())),
            Fault::CommitThenLose => Some(TransportError::new(
                TransportErrorKind::Incomplete,
                "the connection closed before the response came back (the request was processed; \
                 fault injected by the in-memory Kill Bill emulator)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_later_is_plain_text_with_retry_after_zero() {
        let response = Fault::retry_later(StatusCode::TOO_MANY_REQUESTS).response().unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "0");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(response.body(), "fault injected by kb-usage serve: retry later\n");
        assert!(Fault::retry_later(StatusCode::SERVICE_UNAVAILABLE)
            .transport_error()
            .is_none());
    }

    #[test]
    fn content_types_follow_the_body() {
        let html = Fault::proxy_page(StatusCode::BAD_GATEWAY).response().unwrap();
        assert_eq!(html.headers()[CONTENT_TYPE], "text/html");
        let empty = Fault::unavailable(1).response().unwrap();
        assert_eq!(empty.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn connection_closed_is_an_incomplete_transport_error() {
        let fault = Fault::connection_closed();
        assert!(fault.response().is_none());
        assert_eq!(fault.transport_error().unwrap().kind(), TransportErrorKind::Incomplete);
    }
}
