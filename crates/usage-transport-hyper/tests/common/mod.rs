//! Helpers shared by the HyperTransport integration tests: a recording hyper server, raw TCP
//! servers, a Kill Bill answer, and the client and request they are called with.

#![allow(dead_code)]

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use usage_core::{RetryPolicy, Transport, TransportError, UsageClient, UsageWindow};
use usage_models::SubscriptionId;
use usage_transport_hyper::{HyperTransport, TokioTimer};

pub const SUBSCRIPTION: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// base64("admin:password")
pub const BASIC_ADMIN_PASSWORD: &str = "Basic YWRtaW46cGFzc3dvcmQ=";

/// What the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Handler = dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync;

/// A hyper server on 127.0.0.1, answering with `handler` and recording requests and
/// connections.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub accepted: Arc<AtomicUsize>,
    pub closed: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start(handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Server {
        Server::start_with(None, handler).await
    }

    pub async fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (seen2, accepted2, closed2) = (seen.clone(), accepted.clone(), closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accepted2.fetch_add(1, Ordering::SeqCst);
                let (seen, closed, handler, tls) = (seen2.clone(), closed2.clone(), handler.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (seen, handler) = (seen.clone(), handler.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let request = Seen {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            let response = handler(&request);
                            seen.lock().unwrap().push(request);
                            Ok::<_, Infallible>(response)
                        }
                    });
                    match tls {
                        None => serve(TokioIo::new(stream), service).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            seen,
            accepted,
            closed,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/killbill", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one connection: HTTP/1.1, or (feature `http2`) whatever the client speaks.
pub async fn serve<I, S, F>(io: TokioIo<I>, service: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible, Future = F>
        + Send
        + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    #[cfg(not(feature = "http2"))]
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
    #[cfg(feature = "http2")]
    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

pub fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

pub fn rolled_up(subscription: &str) -> String {
    format!(
        r#"{{"subscriptionId":"{subscription}","startDate":"2013-08-01T00:00:00.000Z",
            "endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[{{"unitType":"gallons used","amount":15.000000000}}]}}"#
    )
}

pub fn not_found(subscription: &str) -> String {
    format!(
        r#"{{"className":"org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist","code":null,
            "message":"Object id={subscription} type=SUBSCRIPTION doesn't exist!",
            "causeClassName":null,"causeMessage":null,"stackTrace":[]}}"#
    )
}

/// A Kill Bill that records (201, empty body) and answers GETs with one roll-up.
pub fn kill_bill(seen: &Seen) -> Response<Full<Bytes>> {
    match seen.method {
        Method::POST => json(201, ""),
        _ => json(200, &rolled_up(SUBSCRIPTION)),
    }
}

pub fn client(url: &str, transport: HyperTransport) -> UsageClient {
    UsageClient::builder(url)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .timer(TokioTimer)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

pub fn get_request(url: &str) -> Request<Bytes> {
    Request::builder()
        .uri(format!(
            "{url}/1.0/kb/usages/{SUBSCRIPTION}?startDate=2013-08-01&endDate=2013-09-01"
        ))
        .body(Bytes::new())
        .unwrap()
}

/// The source chain of `error`, itself excluded.
pub fn chain(error: &TransportError) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    let mut next = error.source();
    std::iter::from_fn(move || {
        let current = next?;
        // An io::Error reports its wrapped error's source, not the wrapped error: look inside.
        next = match current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// A GET through a transport with the default settings.
pub async fn get_with_defaults(addr: SocketAddr) -> Result<Response<Bytes>, TransportError> {
    let transport = HyperTransport::new().unwrap();
    transport.send(get_request(&format!("http://{addr}"))).await
}

pub fn window() -> UsageWindow {
    UsageWindow::parse("2013-08-01", "2013-09-01").unwrap()
}

pub fn subscription() -> SubscriptionId {
    SUBSCRIPTION.parse().unwrap()
}

/// A listener that accepts connections and runs `behave` on each.
pub async fn raw_server<F, Fut>(behave: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behave(stream));
        }
    });
    addr
}

/// Connections kept open by a silent server, with what it read of each.
pub type Held = Arc<Mutex<Vec<(Vec<u8>, TcpStream)>>>;

/// A server that accepts connections (reading the request head if `read` is set) and never
/// answers.
pub async fn silent_server(read: bool) -> (SocketAddr, Held) {
    let held: Held = Arc::default();
    let keep = held.clone();
    let addr = raw_server(move |mut stream| {
        let keep = keep.clone();
        async move {
            let head = if read { read_head(&mut stream).await } else { Vec::new() };
            keep.lock().unwrap().push((head, stream));
        }
    })
    .await;
    (addr, held)
}

/// A GET that must fail, and how long it took.
pub async fn timed_get(transport: &HyperTransport, url: &str) -> (TransportError, Duration) {
    let started = Instant::now();
    let error = transport.send(get_request(url)).await.unwrap_err();
    (error, started.elapsed())
}

/// Reads up to the end of a request head.
pub async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head
}
