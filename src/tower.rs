//! tower interop (feature `tower`): any `tower::Service` HTTP client is a [`Transport`], and any
//! [`Transport`] is a `tower::Service`, so tower and tower-http layers (timeouts, rate limits,
//! concurrency limits, ...) fit around either.
//!
//! ```
//! use std::time::Duration;
//! use killbill_usage::tower::{ServiceTransport, TransportService};
//! use killbill_usage::{Transport, TransportError};
//! use tower::ServiceBuilder;
//!
//! #[derive(Debug)]
//! struct Always201;
//!
//! #[async_trait::async_trait]
//! impl Transport for Always201 {
//!     async fn send(&self, _: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, TransportError> {
//!         Ok(http::Response::builder().status(201).body(bytes::Bytes::new()).unwrap())
//!     }
//! }
//!
//! // A transport, wrapped in tower layers, used as a transport again.
//! let layered = ServiceBuilder::new()
//!     .concurrency_limit(16)
//!     .timeout(Duration::from_secs(5))
//!     .service(TransportService::new(Always201));
//! let transport = ServiceTransport::new(layered);
//! # let _ = transport;
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Service, ServiceExt};

use crate::{Transport, TransportError, TransportErrorKind};

/// The error type tower services commonly use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `tower::Service<http::Request<Bytes>>` used as a [`Transport`].
///
/// Errors are classified by walking the source chain: a [`TransportError`] keeps its kind, a
/// `tower::timeout` elapsed error becomes [`TransportErrorKind::Timeout`], and everything else
/// (load-shed refusals included) is [`TransportErrorKind::Other`], with the source kept. Services with other body types can be
/// adapted with `ServiceBuilder::map_request` / `map_response`.
#[derive(Clone)]
pub struct ServiceTransport<S> {
    service: S,
}

impl<S> ServiceTransport<S> {
    /// Wraps `service`; it is cloned for each request (tower's usual pattern).
    pub fn new(service: S) -> Self {
        ServiceTransport { service }
    }
}

impl<S> fmt::Debug for ServiceTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceTransport")
            .field("service", &std::any::type_name::<S>())
            .finish()
    }
}

#[async_trait::async_trait]
impl<S> Transport for ServiceTransport<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let service = self.service.clone();
        service.oneshot(request).await.map_err(|e| classify(e.into()))
    }
}

/// The kind of a tower error, found by walking its source chain.
fn classify(error: BoxError) -> TransportError {
    let error = match error.downcast::<TransportError>() {
        Ok(transport) => return *transport,
        Err(error) => error,
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*error);
    let mut kind = TransportErrorKind::Other;
    while let Some(e) = source {
        if let Some(transport) = e.downcast_ref::<TransportError>() {
            kind = transport.kind();
            break;
        }
        if e.is::<tower::timeout::error::Elapsed>() {
            kind = TransportErrorKind::Timeout;
            break;
        }
        source = e.source();
    }
    TransportError::with_source(kind, error)
}

/// A [`Transport`] used as a `tower::Service<http::Request<Bytes>>`, always ready.
#[derive(Clone, Debug)]
pub struct TransportService {
    transport: Arc<dyn Transport>,
}

impl TransportService {
    /// Wraps `transport`.
    pub fn new(transport: impl Transport) -> Self {
        TransportService {
            transport: Arc::new(transport),
        }
    }

    /// Wraps an already shared transport.
    pub fn from_arc(transport: Arc<dyn Transport>) -> Self {
        TransportService { transport }
    }
}

impl Service<Request<Bytes>> for TransportService {
    type Response = Response<Bytes>;
    type Error = TransportError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Bytes>, TransportError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let transport = self.transport.clone();
        Box::pin(async move { transport.send(request).await })
    }
}
