//! HyperTransport against tiny servers on 127.0.0.1: Kill Bill answers through the client,
//! every failure kind, the body cap, redirects, TLS with a self-signed root, the idle pool,
//! and secrets kept out of `Debug`.

use std::convert::Infallible;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use usage_core::{
    Error, Operation as _, RetryPolicy, Transport, TransportError, TransportErrorKind, UsageClient, UsageWindow,
};
use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_hyper::{client_builder, HyperTransport, TokioTimer};

const SUBSCRIPTION: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// base64("admin:password")
const BASIC_ADMIN_PASSWORD: &str = "Basic YWRtaW46cGFzc3dvcmQ=";

/// What the server received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    uri: String,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

type Handler = dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync;

/// A hyper server on 127.0.0.1, answering with `handler` and recording requests and
/// connections.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Server {
    async fn start(handler: impl Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Server {
        Server::start_with(None, handler).await
    }

    async fn start_with(
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

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/killbill", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Serves one connection: HTTP/1.1, or (feature `http2`) whatever the client speaks.
async fn serve<I, S, F>(io: TokioIo<I>, service: S)
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

fn json(status: u16, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn rolled_up(subscription: &str) -> String {
    format!(
        r#"{{"subscriptionId":"{subscription}","startDate":"2013-08-01T00:00:00.000Z",
            "endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[{{"unitType":"gallons used","amount":15.000000000}}]}}"#
    )
}

fn not_found(subscription: &str) -> String {
    format!(
        r#"{{"className":"org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist","code":null,
            "message":"Object id={subscription} type=SUBSCRIPTION doesn't exist!",
            "causeClassName":null,"causeMessage":null,"stackTrace":[]}}"#
    )
}

/// A Kill Bill that records (201, empty body) and answers GETs with one roll-up.
fn kill_bill(seen: &Seen) -> Response<Full<Bytes>> {
    match seen.method {
        Method::POST => json(201, ""),
        _ => json(200, &rolled_up(SUBSCRIPTION)),
    }
}

fn client(url: &str, transport: HyperTransport) -> UsageClient {
    UsageClient::builder(url)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .timer(TokioTimer)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

fn get_request(url: &str) -> Request<Bytes> {
    Request::builder()
        .uri(format!(
            "{url}/1.0/kb/usages/{SUBSCRIPTION}?startDate=2013-08-01&endDate=2013-09-01"
        ))
        .body(Bytes::new())
        .unwrap()
}

/// The source chain of `error`, itself excluded.
fn chain(error: &TransportError) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
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
async fn get_with_defaults(addr: SocketAddr) -> Result<Response<Bytes>, TransportError> {
    let transport = HyperTransport::new().unwrap();
    transport.send(get_request(&format!("http://{addr}"))).await
}

fn window() -> UsageWindow {
    UsageWindow::parse("2013-08-01", "2013-09-01").unwrap()
}

fn subscription() -> SubscriptionId {
    SUBSCRIPTION.parse().unwrap()
}

/// A listener that accepts connections and runs `behave` on each.
async fn raw_server<F, Fut>(behave: F) -> SocketAddr
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
type Held = Arc<Mutex<Vec<(Vec<u8>, TcpStream)>>>;

/// A server that accepts connections (reading the request head if `read` is set) and never
/// answers.
async fn silent_server(read: bool) -> (SocketAddr, Held) {
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
async fn timed_get(transport: &HyperTransport, url: &str) -> (TransportError, Duration) {
    let started = Instant::now();
    let error = transport.send(get_request(url)).await.unwrap_err();
    (error, started.elapsed())
}

/// Reads up to the end of a request head.
async fn read_head(stream: &mut TcpStream) -> Vec<u8> {
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

#[tokio::test]
async fn records_and_reads_through_the_client() {
    let server = Server::start(kill_bill).await;
    let client = client_builder(server.url("http"))
        .unwrap()
        .user("admin", "password")
        .tenant("bob", "lazar")
        .created_by("meter-7")
        .build()
        .unwrap();

    let day: UsageDate = "2013-08-01".parse().unwrap();
    let record = SubscriptionUsageRecord::builder(subscription())
        .tracking_id("t-1")
        .record("gallons used", day, 10)
        .build()
        .unwrap();
    let outcome = client.record_usage(&record).await.unwrap();
    assert_eq!(outcome.tracking_id.as_str(), "t-1");
    assert_eq!(outcome.attempts, 1);
    assert!(!outcome.already_recorded);

    let usage = client
        .get_usage(subscription(), "gallons used", window())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.subscription_id, subscription());
    assert_eq!(usage.start_date.to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.amount_of("gallons used").unwrap().to_string(), "15.000000000");

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let post = &seen[0];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.uri, "/killbill/1.0/kb/usages");
    assert_eq!(post.version, Version::HTTP_11);
    assert_eq!(post.headers["authorization"], BASIC_ADMIN_PASSWORD);
    assert_eq!(post.headers["x-killbill-apikey"], "bob");
    assert_eq!(post.headers["x-killbill-apisecret"], "lazar");
    assert_eq!(post.headers["x-killbill-createdby"], "meter-7");
    assert_eq!(post.headers["content-type"], "application/json");
    assert_eq!(post.headers["accept"], "application/json");
    assert_eq!(post.headers["host"], server.addr.to_string());
    assert_eq!(post.headers["content-length"], post.body.len().to_string());
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "subscriptionId": SUBSCRIPTION,
            "trackingId": "t-1",
            "unitUsageRecords": [{"unitType": "gallons used", "usageRecords": [{"recordDate": "2013-08-01", "amount": 10}]}]
        })
    );

    let get = &seen[1];
    assert_eq!(get.method, Method::GET);
    assert_eq!(
        get.uri,
        format!("/killbill/1.0/kb/usages/{SUBSCRIPTION}/gallons%20used?startDate=2013-08-01&endDate=2013-09-01")
    );
    assert_eq!(get.headers["authorization"], BASIC_ADMIN_PASSWORD);
    assert_eq!(get.headers["x-killbill-apisecret"], "lazar");
    assert!(get.body.is_empty());
    assert!(!get.headers.contains_key("content-length"));

    // Keep-alive: more calls, still (about) one connection. hyper-util may open one extra
    // connection in the background when a request starts before the previous connection is
    // back in the pool, hence "at most 2" rather than 1.
    for _ in 0..8 {
        client
            .get_usage(subscription(), "gallons used", window())
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(server.seen().len(), 10);
    let connections = server.accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&connections), "{connections} connections for 10 calls");
}

#[tokio::test]
async fn error_statuses_come_back_as_typed_api_errors() {
    let server = Server::start(|seen| {
        if seen.uri.contains("startDate=2013-08-01x") {
            json(
                400,
                r#"{"className":"java.lang.IllegalArgumentException","code":null,
                    "message":"Invalid format: \"2013-08-01x\" is malformed at \"x\"",
                    "causeClassName":null,"causeMessage":null,"stackTrace":[]}"#,
            )
        } else {
            json(404, &not_found(SUBSCRIPTION))
        }
    })
    .await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());

    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let kill_bill = error.kill_bill_error().unwrap();
    assert_eq!(kill_bill.short_class_name(), "ObjectDoesNotExist");
    assert_eq!(
        kill_bill.message.as_deref(),
        Some(format!("Object id={SUBSCRIPTION} type=SUBSCRIPTION doesn't exist!").as_str())
    );

    // A 400 JSON error, through the transport alone and then parsed by the core.
    let transport = HyperTransport::new().unwrap();
    let request = Request::builder()
        .uri(format!(
            "{}/1.0/kb/usages/{SUBSCRIPTION}?startDate=2013-08-01x&endDate=2013-09-01",
            server.url("http")
        ))
        .body(Bytes::new())
        .unwrap();
    let response = transport.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let error = usage_core::GetAllUsage::new(subscription(), window())
        .parse(response)
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        error.kill_bill_error().unwrap().class_name,
        "java.lang.IllegalArgumentException"
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");

    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(!error.may_have_reached_server());
    let io = chain(&error)
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .expect("the io::Error is kept in the chain");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        error
            .message()
            .starts_with("client error (Connect): tcp connect error: "),
        "{}",
        error.message()
    );

    let client = client(&url, HyperTransport::new().unwrap());
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert_eq!(
        error.transport_error().map(TransportError::kind),
        Some(TransportErrorKind::Connect)
    );
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_request_timeout() {
    let (addr, held) = silent_server(true).await;
    let transport = HyperTransport::builder()
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (error, elapsed) = timed_get(&transport, &format!("http://{addr}")).await;
    assert_eq!(error.kind(), TransportErrorKind::Timeout, "{error:?}");
    assert!(error.may_have_reached_server());
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(error.to_string().contains("200ms"), "{error}");
    // The server did get the request.
    let held = held.lock().unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].0.starts_with(b"GET /1.0/kb/usages/"));
}

#[tokio::test]
async fn a_body_cut_short_is_io_or_incomplete() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"subscri")
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let error = get_with_defaults(addr).await.unwrap_err();
    assert!(
        matches!(error.kind(), TransportErrorKind::Incomplete | TransportErrorKind::Io),
        "{error:?}"
    );
    assert_eq!(
        error.message(),
        "error reading a body from connection: end of file before message length reached"
    );
    assert!(error.may_have_reached_server());
}

#[tokio::test]
async fn a_server_closing_without_answering_is_incomplete() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        drop(stream);
    })
    .await;
    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Incomplete, "{error:?}");
    assert_eq!(
        error.message(),
        "client error (SendRequest): connection closed before message completed"
    );
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_reading_it() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n{\"a\":")
            .await;
        // Keep the connection open: the client must not wait for the body.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    assert_eq!(
        error.message(),
        "the response declares a body of 5000000 bytes, more than the limit of 4194304 bytes"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A chunked response of `total` bytes (in 16 KiB chunks); returns how many body bytes the
/// server managed to write.
async fn chunked_server(total: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let addr = raw_server(move |mut stream| {
        let counter = counter.clone();
        async move {
            read_head(&mut stream).await;
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let chunk = vec![b'x'; 16 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                let mut frame = format!("{n:x}\r\n").into_bytes();
                frame.extend_from_slice(&chunk[..n]);
                frame.extend_from_slice(b"\r\n");
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                counter.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    (addr, written)
}

#[tokio::test]
async fn a_streamed_body_is_cut_at_the_cap() {
    let transport = HyperTransport::builder().max_response_bytes(100_000).build().unwrap();

    // At the cap exactly: accepted.
    let (addr, _) = chunked_server(100_000).await;
    let response = transport.send(get_request(&format!("http://{addr}"))).await.unwrap();
    assert_eq!(response.body().len(), 100_000);

    // One byte over: refused.
    let (addr, _) = chunked_server(100_001).await;
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    assert_eq!(error.message(), "the response body exceeds the limit of 100000 bytes");

    // A huge body: the client stops reading at the cap and drops the connection, so the
    // server cannot write it all.
    let huge = 256 * 1024 * 1024;
    let (addr, written) = chunked_server(huge).await;
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = written.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    assert!(last < huge / 4, "the server wrote {last} bytes");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start(|seen| {
        if seen.uri.starts_with("/elsewhere") {
            return json(200, &rolled_up(SUBSCRIPTION));
        }
        Response::builder()
            .status(302)
            .header("location", "/elsewhere/1.0/kb/usages")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FOUND));
    let Error::Api(api) = &error else {
        panic!("not an API error: {error:?}")
    };
    assert_eq!(api.headers()["location"], "/elsewhere/1.0/kb/usages");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].uri.starts_with("/killbill/1.0/kb/usages/"));
}

#[tokio::test]
async fn requests_that_cannot_be_sent_are_invalid() {
    let transport = HyperTransport::builder().https_only(true).build().unwrap();
    for (uri, message) in [
        (
            "/1.0/kb/usages",
            "the URI must be absolute and start with http:// or https://",
        ),
        (
            "ftp://127.0.0.1/1.0/kb/usages",
            "the URI must be absolute and start with http:// or https://",
        ),
        (
            "http://127.0.0.1:1/1.0/kb/usages",
            "this transport is https-only; refusing to send over http://",
        ),
        (
            "https://admin:password@127.0.0.1:1/x",
            "the URI must not carry credentials",
        ),
    ] {
        let request = Request::builder().uri(uri).body(Bytes::new()).unwrap();
        let error = transport.send(request).await.unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::InvalidRequest, "{uri}");
        assert_eq!(error.message(), message, "{uri}");
        assert!(!error.may_have_reached_server());
        assert!(!error.to_string().contains("password"), "{error}");
    }
}

/// A self-signed certificate for 127.0.0.1 and a TLS acceptor serving it.
fn tls_acceptor() -> (rcgen::CertifiedKey<rcgen::KeyPair>, tokio_rustls::TlsAcceptor) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = if cfg!(feature = "http2") {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    (certified, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test]
async fn tls_with_an_added_root() {
    let (certified, acceptor) = tls_acceptor();
    let server = Server::start_with(Some(acceptor), kill_bill).await;
    let url = server.url("https");

    // Trusted through the PEM root: the call works.
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.pem())
        .https_only(true)
        .build()
        .unwrap();
    let usage = client(&url, transport)
        .get_all_usage(subscription(), window())
        .await
        .unwrap();
    assert_eq!(usage.subscription_id, subscription());
    assert_eq!(usage.rolled_up_units.len(), 1);

    // The same root in DER.
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.der())
        .build()
        .unwrap();
    let response = transport.send(get_request(&url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["authorization"], BASIC_ADMIN_PASSWORD);

    // Without the root, the handshake fails: a connect error, nothing sent.
    let error = client(&url, HyperTransport::new().unwrap())
        .get_all_usage(subscription(), window())
        .await
        .unwrap_err();
    let transport_error = error.transport_error().expect("a transport error");
    assert_eq!(transport_error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert_eq!(
        transport_error.message(),
        "client error (Connect): invalid peer certificate: UnknownIssuer"
    );
    let rustls_error = chain(transport_error)
        .find_map(|e| e.downcast_ref::<rustls::Error>())
        .expect("the rustls error is kept in the chain");
    assert!(
        matches!(rustls_error, rustls::Error::InvalidCertificate(_)),
        "{rustls_error:?}"
    );
    assert_eq!(server.seen().len(), 2, "nothing reached the server");
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let (certified, acceptor) = tls_acceptor();
    let server = Server::start_with(Some(acceptor), kill_bill).await;
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.pem())
        .build()
        .unwrap();
    let usage = client(&server.url("https"), transport)
        .get_all_usage(subscription(), window())
        .await
        .unwrap();
    assert_eq!(usage.subscription_id, subscription());
    assert_eq!(server.seen()[0].version, Version::HTTP_2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start(kill_bill).await;
    let transport = HyperTransport::builder()
        .pool_idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let response = transport.send(get_request(&server.url("http"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    while server.closed.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.closed.load(Ordering::SeqCst),
        1,
        "the idle connection was not closed"
    );
    // The transport (and its pool) is still alive: the client closed the connection.
    let response = transport.send(get_request(&server.url("http"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_a_multi_thread_runtime() {
    let server = Server::start(kill_bill).await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            // tokio::spawn requires the call's future to be Send.
            tokio::spawn(async move { client.get_all_usage(subscription(), window()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().subscription_id, subscription());
    }
    assert_eq!(server.seen().len(), 16);
    assert!(server.accepted.load(Ordering::SeqCst) <= 16);
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let server = Server::start(|_| {
        Response::builder()
            .status(401)
            .header("www-authenticate", "BASIC realm=\"application\"")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let password = "pa55-w0rd-xyz";
    let api_secret = "t3nant-s3cret-xyz";
    // base64("admin:pa55-w0rd-xyz")
    let basic = "YWRtaW46cGE1NS13MHJkLXh5eg==";
    let build = |url: &str| {
        client_builder(url)
            .unwrap()
            .user("admin", password)
            .tenant("bob", api_secret)
            .build()
            .unwrap()
    };
    let client = build(&server.url("http"));
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(error.is_unauthorized());
    // The server did get the secrets (so they were there to leak)...
    let seen = server.seen();
    assert_eq!(seen[0].headers["authorization"], format!("Basic {basic}"));
    assert_eq!(seen[0].headers["x-killbill-apisecret"], api_secret);

    // ... and a transport error from a refused connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = build(&url).get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(refused.transport_error().is_some());

    let transport = HyperTransport::new().unwrap();
    for text in [
        format!("{client:?}"),
        format!("{error:?}"),
        format!("{error}"),
        format!("{refused:?}"),
        format!("{refused}"),
        format!("{transport:?}"),
        format!("{:?}", HyperTransport::builder().add_root_certificate("x")),
    ] {
        for secret in [password, api_secret, basic] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_a_connect_error() {
    // Accept TCP, never answer the ClientHello.
    let (addr, _held) = silent_server(false).await;
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_millis(200))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (error, elapsed) = timed_get(&transport, &format!("https://{addr}")).await;
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(!error.may_have_reached_server());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        chain(&error)
            .any(|e| e.to_string()
                == "no connection (TCP connect and TLS handshake) within the connect timeout of 200ms"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_tcp_connect_that_never_completes_is_a_connect_error() {
    // A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    // so a new connection hangs until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // It timed out (rather than being refused).
    assert!(
        chain(&error).any(|e| e.to_string().contains("within the connect timeout of 200ms")
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)),
        "{error:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_lost_answer_to_a_post_is_retried_under_the_same_tracking_id() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let addr = raw_server(move |mut stream| {
        let seen = seen.clone();
        async move {
            let mut request = read_head(&mut stream).await;
            // The body follows the head (a few hundred bytes); read it all.
            let length = String::from_utf8_lossy(&request)
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let mut buf = [0u8; 1024];
            while request.len() < head_end + length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push(request[head_end..].to_vec());
                seen.len() == 1
            };
            if first {
                // The server got the request, the answer is lost.
                drop(stream);
            } else {
                let _ = stream
                    .write_all(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await;
    let client = client_builder(format!("http://{addr}"))
        .unwrap()
        .user("admin", "password")
        .tenant("bob", "lazar")
        .retry_policy(RetryPolicy::default().with_initial_backoff(Duration::from_millis(10)))
        .build()
        .unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let record = SubscriptionUsageRecord::builder(subscription())
        .record("gallons", day, 10)
        .build()
        .unwrap();
    let outcome = client.record_usage(&record).await.unwrap();
    assert_eq!(outcome.attempts, 2);
    let bodies = attempts.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the retry resends the same body");
    let body: serde_json::Value = serde_json::from_slice(&bodies[1]).unwrap();
    assert_eq!(body["trackingId"], outcome.tracking_id.as_str());
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_not_reused() {
    // Answers one request per connection, then closes its side (FIN, 20 ms later, with no
    // `Connection: close` to warn the client) and keeps reading: bytes arriving after the
    // answer are a request sent on a connection the server closes, that is, a reuse.
    // (Counting connections alone cannot tell: hyper-util resends a request that hit a dead
    // pooled connection on a new one, so the count would be the same.)
    let accepted = Arc::new(AtomicUsize::new(0));
    let sent_after_close = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (count, late, done) = (accepted.clone(), sent_after_close.clone(), finished.clone());
    let addr = raw_server(move |mut stream| {
        count.fetch_add(1, Ordering::SeqCst);
        let (late, done) = (late.clone(), done.clone());
        async move {
            read_head(&mut stream).await;
            let body = rolled_up(SUBSCRIPTION);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = stream.shutdown().await;
            // Until the client closes its side (or 5 s pass).
            let mut buf = [0u8; 1024];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                if n > 0 {
                    late.fetch_add(1, Ordering::SeqCst);
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let client = client(&format!("http://{addr}"), HyperTransport::new().unwrap());
    for _ in 0..3 {
        let usage = client.get_all_usage(subscription(), window()).await.unwrap();
        assert_eq!(usage.subscription_id, subscription());
        // Give the pool time to see the server's FIN.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dropping the client closes what the pool holds: every connection's watch then ends.
    drop(client);
    for _ in 0..500 {
        if finished.load(Ordering::SeqCst) == accepted.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(finished.load(Ordering::SeqCst), accepted.load(Ordering::SeqCst));
    assert_eq!(
        sent_after_close.load(Ordering::SeqCst),
        0,
        "a request went out on a connection the server had closed"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn outside_a_tokio_runtime_the_transport_fails_without_panicking() {
    let transport = HyperTransport::new().unwrap();
    let error = block_on(transport.send(get_request("http://127.0.0.1:1"))).unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Other);
    assert_eq!(
        error.message(),
        "HyperTransport must be used inside a tokio runtime (with I/O and time enabled)"
    );
}
