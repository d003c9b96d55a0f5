//! The servers: a canned hyper server and `kb-usage serve`'s emulator, each on its own thread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use killbill_usage::models::SubscriptionId;
use usage_transport_memory::serve::{ServeConfig, Server};
use usage_transport_memory::InMemoryKillBill;

use crate::measure::current_tid;

/// A server on its own thread.
pub(crate) struct ServerInfo {
    pub(crate) addr: SocketAddr,
    pub(crate) tid: u32,
    pub(crate) requests: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Connections accepted (the canned server only counts them).
    pub(crate) connections: Arc<AtomicU64>,
}

impl ServerInfo {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The canned server: `POST /1.0/kb/usages` reads the body and answers 201, empty, with
/// `Content-Type: application/json`; `GET /1.0/kb/usages/{id}/{unit}` answers 200 with
/// `get_body` (a roll-up the emulator wrote); anything else 404.
pub(crate) fn start_canned(get_body: Bytes) -> ServerInfo {
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let connections = Arc::new(AtomicU64::new(0));
    let accepted = connections.clone();
    let (addr, tid) = on_own_thread("canned-server", move |ready| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ready.send((listener.local_addr().unwrap(), current_tid())).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let (body, counter) = (get_body.clone(), counter.clone());
            let service = hyper::service::service_fn(move |request| {
                counter.fetch_add(1, Ordering::Relaxed);
                canned_answer(request, body.clone())
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    ServerInfo {
        addr,
        tid,
        requests: Arc::new(move || served.load(Ordering::Relaxed)),
        connections,
    }
}

/// Runs `serve` on a current-thread runtime of a new thread; returns what it sends first.
pub(crate) fn on_own_thread<T, F, Fut>(name: &str, serve: F) -> T
where
    T: Send + 'static,
    F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(tx));
        })
        .unwrap();
    rx.recv().unwrap()
}

pub(crate) async fn canned_answer(
    request: Request<Incoming>,
    get_body: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let json = HeaderValue::from_static("application/json");
    let path = request.uri().path();
    let response = if request.method() == Method::POST && path == "/1.0/kb/usages" {
        let _ = request.into_body().collect().await;
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::CREATED;
        response.headers_mut().insert(header::CONTENT_TYPE, json);
        response
    } else if request.method() == Method::GET
        && path
            .strip_prefix("/1.0/kb/usages/")
            .is_some_and(|rest| rest.split('/').count() == 2)
    {
        let mut response = Response::new(Full::new(get_body));
        response.headers_mut().insert(header::CONTENT_TYPE, json);
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    Ok(response)
}

/// `kb-usage serve`'s emulator, in-process, on its own thread.
pub(crate) fn start_emulator(
    subscriptions: Vec<SubscriptionId>,
    auto_provision: bool,
) -> (ServerInfo, InMemoryKillBill) {
    let (addr, tid, stats, emulator) = on_own_thread("emulator-server", move |ready| async move {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
        config = config.with_subscriptions(subscriptions.iter().map(|id| id.uuid()).collect());
        config = config.with_auto_provision(auto_provision);
        let server = Server::bind(config).await.unwrap();
        let emulator = server.emulator().unwrap().clone();
        ready
            .send((server.local_addr(), current_tid(), server.stats(), emulator))
            .unwrap();
        server.run_until(std::future::pending()).await.unwrap();
    });
    let info = ServerInfo {
        addr,
        tid,
        requests: Arc::new(move || stats.requests()),
        connections: Arc::new(AtomicU64::new(0)),
    };
    (info, emulator)
}
