//! [`HyperTransport`] and its builder.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Body as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer as HyperTimer};
use usage_core::{Error, InputField, InvalidInput, Transport, TransportError, TransportErrorKind};

use crate::classify::{transport_error, ConnectTimedOut, TimedOut, TooLarge};
use crate::tls;

/// The default connect timeout (TCP connect and TLS handshake), as Kill Bill's Java client: 10 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default request timeout (connect, TLS, send, and the whole response read), as Kill
/// Bill's Java client: 10 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time an idle pooled connection is kept: 15 s, below the keep-alive timeout of
/// Kill Bill's Tomcat (20 s) so that the client closes first and rarely picks a connection
/// the server is closing.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// The default number of idle connections kept per host: 16.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 16;
/// The default cap on a response body: 4 MiB (a roll-up is a few hundred bytes per unit type).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

type HyperClient = Client<TimeoutConnector<HttpsConnector<HttpConnector>>, Full<Bytes>>;

/// A [`Transport`] over hyper 1 and hyper-util's pooled client, with rustls for TLS.
///
/// - HTTP/1.1 keep-alive; idle connections are really closed after the
///   [pool idle timeout](HyperTransportBuilder::pool_idle_timeout); `TCP_NODELAY` on;
/// - a connect timeout and a request timeout that covers the whole exchange, body included;
/// - a cap on the response body ([`TransportErrorKind::ResponseTooLarge`] past it), checked
///   against `Content-Length` first and counted while streaming, never buffered past the cap;
/// - redirects are never followed: a 3xx comes back to the client as it is;
/// - TLS with rustls (ring), certificates always verified against the bundled web PKI roots
///   (feature `webpki-roots`), the system's (feature `native-roots`) and any
///   [added root](HyperTransportBuilder::add_root_certificate);
/// - failures classified into [`TransportErrorKind`], the source chain kept.
///
/// Cloning is cheap and clones share the connection pool. Use it from inside a tokio runtime
/// with I/O and time enabled (`enable_all`), current-thread or multi-thread; its futures are
/// `Send`. Each connection is driven by a task on the runtime that opened it, so a connection
/// ends with its runtime (the pool then opens a new one). `Debug` shows the settings only (a
/// transport never holds credentials).
///
/// # Errors
///
/// | what happened | [`TransportErrorKind`] |
/// |---|---|
/// | refused, DNS failure, TLS handshake failed (untrusted certificate), no connection within the connect timeout | `Connect`: nothing was sent |
/// | no whole response within the request timeout | `Timeout` |
/// | connection reset, broken pipe | `Io` |
/// | connection closed before the whole response (a stale pooled connection, a body cut short) | `Incomplete` |
/// | relative or non-HTTP URI, credentials in the URI, `http://` when [https-only](HyperTransportBuilder::https_only) | `InvalidRequest`: nothing was sent |
/// | body over the cap | `ResponseTooLarge` |
/// | a response hyper cannot parse; no tokio runtime | `Other` |
///
/// The message joins the messages of the whole chain
/// (`client error (Connect): invalid peer certificate: UnknownIssuer`); the source chain
/// keeps the original errors (hyper-util's, hyper's, `std::io::Error`, rustls').
///
/// ```
/// use std::time::Duration;
/// use usage_transport_hyper::HyperTransport;
///
/// let transport = HyperTransport::builder()
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(5))
///     .max_response_bytes(64 * 1024)
///     .build()
///     .unwrap();
/// assert_eq!(transport.request_timeout(), Duration::from_secs(5));
/// assert!(format!("{transport:?}").starts_with("HyperTransport { connect_timeout: 2s"));
/// ```
#[derive(Clone)]
pub struct HyperTransport {
    client: HyperClient,
    settings: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    connect_timeout: Duration,
    request_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    max_response_bytes: usize,
    https_only: bool,
    root_certificates: usize,
}

impl fmt::Debug for HyperTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &*self.settings;
        f.debug_struct("HyperTransport")
            .field("connect_timeout", &s.connect_timeout)
            .field("request_timeout", &s.request_timeout)
            .field("pool_idle_timeout", &s.pool_idle_timeout)
            .field("pool_max_idle_per_host", &s.pool_max_idle_per_host)
            .field("max_response_bytes", &s.max_response_bytes)
            .field("https_only", &s.https_only)
            .field("root_certificates", &s.root_certificates)
            .field("http2", &cfg!(feature = "http2"))
            .finish()
    }
}

impl HyperTransport {
    /// A transport with the defaults ([`DEFAULT_CONNECT_TIMEOUT`], [`DEFAULT_REQUEST_TIMEOUT`],
    /// [`DEFAULT_POOL_IDLE_TIMEOUT`], [`DEFAULT_POOL_MAX_IDLE_PER_HOST`],
    /// [`DEFAULT_MAX_RESPONSE_BYTES`], the default roots).
    pub fn new() -> Result<Self, Error> {
        HyperTransport::builder().build()
    }

    /// Starts building a transport from the defaults.
    pub fn builder() -> HyperTransportBuilder {
        HyperTransportBuilder::default()
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    /// The request timeout (the whole exchange, body included).
    pub fn request_timeout(&self) -> Duration {
        self.settings.request_timeout
    }

    /// How long an idle pooled connection is kept.
    pub fn pool_idle_timeout(&self) -> Duration {
        self.settings.pool_idle_timeout
    }

    /// The cap on a response body, in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.settings.max_response_bytes
    }

    /// Checks the request and turns it into hyper's.
    fn prepare(&self, request: Request<Bytes>) -> Result<Request<Full<Bytes>>, TransportError> {
        let invalid = |message: &str| TransportError::new(TransportErrorKind::InvalidRequest, message);
        let uri = request.uri();
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if !self.settings.https_only => {}
            Some("http") => return Err(invalid("this transport is https-only; refusing to send over http://")),
            _ => return Err(invalid("the URI must be absolute and start with http:// or https://")),
        }
        let Some(authority) = uri.authority() else {
            return Err(invalid("the URI has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(invalid("the URI must not carry credentials"));
        }
        let (mut parts, body) = request.into_parts();
        // The connection decides: HTTP/1.1, or HTTP/2 when TLS negotiated it.
        parts.version = Version::HTTP_11;
        Ok(Request::from_parts(parts, Full::new(body)))
    }

    /// Waits for the response to a request hyper has taken, and reads it whole, within the
    /// body cap.
    async fn exchange(&self, response: ResponseFuture) -> Result<Response<Bytes>, TransportError> {
        let response = response.await.map_err(transport_error)?;
        let limit = self.settings.max_response_bytes;
        let (parts, body) = response.into_parts();
        // For a body with a Content-Length, the size hint is exactly that length.
        let declared = body.size_hint().lower();
        if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(TransportError::with_source(
                TransportErrorKind::ResponseTooLarge,
                TooLarge {
                    limit,
                    declared: Some(declared),
                },
            ));
        }
        let body = Limited::new(body, limit).collect().await.map_err(|error| {
            if error.is::<LengthLimitError>() {
                TransportError::with_source(TransportErrorKind::ResponseTooLarge, TooLarge { limit, declared: None })
            } else {
                transport_error(error)
            }
        })?;
        Ok(Response::from_parts(parts, body.to_bytes()))
    }
}

#[async_trait::async_trait]
impl Transport for HyperTransport {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        if tokio::runtime::Handle::try_current().is_err() {
            // Rather than tokio's panic.
            return Err(TransportError::new(
                TransportErrorKind::Other,
                "HyperTransport must be used inside a tokio runtime (with I/O and time enabled)",
            ));
        }
        let request = self.prepare(request)?;
        let timeout = self.settings.request_timeout;
        // hyper takes the request now (its future starts nothing before it is polled), so the
        // future under the timeout holds hyper's boxed future rather than the request.
        let response = self.client.request(request);
        match tokio::time::timeout(timeout, self.exchange(response)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(transport_error(TimedOut { after: timeout })),
        }
    }

    /// The request timeout: it bounds the whole exchange (connection, request, response).
    fn timeout(&self) -> Option<Duration> {
        Some(self.settings.request_timeout)
    }
}

/// Builds a [`HyperTransport`]; see [`HyperTransport::builder`].
///
/// ```
/// use std::time::Duration;
/// use usage_transport_hyper::HyperTransport;
///
/// let transport = HyperTransport::builder()
///     .pool_idle_timeout(Duration::from_secs(5))
///     .pool_max_idle_per_host(4)
///     .https_only(true)
///     .build()
///     .unwrap();
/// assert_eq!(transport.pool_idle_timeout(), Duration::from_secs(5));
///
/// let error = HyperTransport::builder().add_root_certificate("not a certificate").build().unwrap_err();
/// assert!(error.invalid_input().unwrap().to_string().starts_with("root certificate #0"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct HyperTransportBuilder {
    connect_timeout: Duration,
    request_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    max_response_bytes: usize,
    https_only: bool,
    root_certificates: Vec<Vec<u8>>,
    webpki_roots: bool,
    native_roots: bool,
}

impl Default for HyperTransportBuilder {
    fn default() -> Self {
        HyperTransportBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            https_only: false,
            root_certificates: Vec::new(),
            webpki_roots: cfg!(feature = "webpki-roots"),
            native_roots: cfg!(feature = "native-roots"),
        }
    }
}

impl fmt::Debug for HyperTransportBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperTransportBuilder")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("https_only", &self.https_only)
            .field("root_certificates", &self.root_certificates.len())
            .field("webpki_roots", &self.webpki_roots)
            .field("native_roots", &self.native_roots)
            .finish()
    }
}

impl HyperTransportBuilder {
    /// How long to wait for a new connection, TCP connect and TLS handshake together (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]). A failure to connect in time is a
    /// [`Connect`](TransportErrorKind::Connect) error: nothing was sent. It runs inside the
    /// request timeout, which bounds the whole exchange.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one exchange may take, from the start of `send` to the last byte of the body
    /// (default [`DEFAULT_REQUEST_TIMEOUT`]). Past it, the call fails with a
    /// [`Timeout`](TransportErrorKind::Timeout) error. The client's deadline, across retries,
    /// is set on the client.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long an idle connection stays in the pool before it is closed (default
    /// [`DEFAULT_POOL_IDLE_TIMEOUT`]); keep it below the server's keep-alive timeout.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// How many idle connections are kept per host (default
    /// [`DEFAULT_POOL_MAX_IDLE_PER_HOST`]; `0` turns keep-alive reuse off).
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// The largest response body accepted, in bytes (default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    /// A larger one fails with [`ResponseTooLarge`](TransportErrorKind::ResponseTooLarge).
    pub fn max_response_bytes(mut self, max: usize) -> Self {
        self.max_response_bytes = max;
        self
    }

    /// Refuses `http://` URIs (an [`InvalidRequest`](TransportErrorKind::InvalidRequest)
    /// error, nothing sent), so credentials never travel in clear text. Off by default: a
    /// local Kill Bill often listens on plain `http://127.0.0.1:8080`.
    pub fn https_only(mut self, https_only: bool) -> Self {
        self.https_only = https_only;
        self
    }

    /// Also trusts this root certificate, in PEM (one or more `CERTIFICATE` blocks) or DER:
    /// a private CA, or a test server's self-signed certificate. Checked by
    /// [`build`](Self::build).
    pub fn add_root_certificate(mut self, certificate: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(certificate.as_ref().to_vec());
        self
    }

    /// Whether to trust the Mozilla roots bundled by `webpki-roots` (default: on).
    #[cfg(feature = "webpki-roots")]
    pub fn webpki_roots(mut self, trust: bool) -> Self {
        self.webpki_roots = trust;
        self
    }

    /// Whether to trust the operating system's roots, read by [`build`](Self::build)
    /// (default: on when the `native-roots` feature is). They are added when present: a system
    /// with no CA bundle (as in a minimal container) builds a transport all the same, which
    /// trusts the other roots only.
    #[cfg(feature = "native-roots")]
    pub fn native_roots(mut self, trust: bool) -> Self {
        self.native_roots = trust;
        self
    }

    /// The transport, or what is wrong with the settings, as an [`Error::InvalidInput`] with
    /// the [field](InputField) at fault: a zero timeout ([`InputField::ConnectTimeout`],
    /// [`InputField::RequestTimeout`], [`InputField::PoolIdleTimeout`]), a root certificate
    /// given to [`add_root_certificate`](Self::add_root_certificate) that cannot be read
    /// ([`InputField::RootCertificate`], with its index), or a TLS configuration rustls refuses
    /// ([`InputField::Tls`]); the underlying error, if any, is its source.
    ///
    /// ```
    /// use usage_core::InputField;
    /// use usage_transport_hyper::HyperTransport;
    ///
    /// let error = HyperTransport::builder().add_root_certificate(b"hello").build().unwrap_err();
    /// let invalid = error.invalid_input().unwrap();
    /// assert_eq!(invalid.field(), InputField::RootCertificate { index: 0 });
    /// assert_eq!(invalid.reason(), "neither PEM nor DER");
    /// ```
    pub fn build(self) -> Result<HyperTransport, Error> {
        for (field, value) in [
            (InputField::ConnectTimeout, self.connect_timeout),
            (InputField::RequestTimeout, self.request_timeout),
            (InputField::PoolIdleTimeout, self.pool_idle_timeout),
        ] {
            if value.is_zero() {
                return Err(InvalidInput::new(field, "must be greater than zero").into());
            }
        }
        let (tls, root_certificates) = tls::client_config(&tls::Roots {
            webpki: self.webpki_roots,
            native: self.native_roots,
            extra: &self.root_certificates,
        })?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.connect_timeout));

        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let https = if self.https_only {
            https.https_only()
        } else {
            https.https_or_http()
        };
        #[cfg(feature = "http2")]
        let connector = https.enable_http1().enable_http2().wrap_connector(http);
        #[cfg(not(feature = "http2"))]
        let connector = https.enable_http1().wrap_connector(http);

        let connector = TimeoutConnector {
            inner: connector,
            timeout: self.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(HyperTimer::new())
            .timer(HyperTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector);
        Ok(HyperTransport {
            client,
            settings: Arc::new(Settings {
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                pool_idle_timeout: self.pool_idle_timeout,
                pool_max_idle_per_host: self.pool_max_idle_per_host,
                max_response_bytes: self.max_response_bytes,
                https_only: self.https_only,
                root_certificates,
            }),
        })
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Bounds the whole making of a connection (TCP connect and TLS handshake) by the connect
/// timeout, so that a server that never finishes the handshake is a connect failure (nothing
/// sent) rather than a request timeout.
#[derive(Clone, Debug)]
struct TimeoutConnector<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower::Service<http::Uri> for TimeoutConnector<C>
where
    C: tower::Service<http::Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: http::Uri) -> Self::Future {
        let after = self.timeout;
        let connecting = self.inner.call(destination);
        Box::pin(async move {
            match tokio::time::timeout(after, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_elapsed) => Err(Box::new(ConnectTimedOut { after }) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_are_refused() {
        let refused = |builder: HyperTransportBuilder| {
            let error = builder.build().unwrap_err();
            let invalid = error.invalid_input().unwrap();
            (invalid.field(), invalid.to_string())
        };
        assert_eq!(
            refused(HyperTransport::builder().request_timeout(Duration::ZERO)),
            (
                InputField::RequestTimeout,
                "request_timeout: must be greater than zero".to_string()
            )
        );
        assert_eq!(
            refused(HyperTransport::builder().connect_timeout(Duration::ZERO)),
            (
                InputField::ConnectTimeout,
                "connect_timeout: must be greater than zero".to_string()
            )
        );
        assert_eq!(
            refused(HyperTransport::builder().pool_idle_timeout(Duration::ZERO)),
            (
                InputField::PoolIdleTimeout,
                "pool_idle_timeout: must be greater than zero".to_string()
            )
        );
    }

    #[test]
    fn defaults() {
        let transport = HyperTransport::new().unwrap();
        assert_eq!(transport.connect_timeout(), Duration::from_secs(10));
        assert_eq!(transport.request_timeout(), Duration::from_secs(10));
        assert_eq!(transport.pool_idle_timeout(), Duration::from_secs(15));
        assert_eq!(transport.max_response_bytes(), 4 * 1024 * 1024);
        let debug = format!("{transport:?}");
        assert!(
            debug.starts_with(
                "HyperTransport { connect_timeout: 10s, request_timeout: 10s, pool_idle_timeout: 15s, \
                 pool_max_idle_per_host: 16, max_response_bytes: 4194304, https_only: false, root_certificates: "
            ),
            "{debug}"
        );
    }
}
