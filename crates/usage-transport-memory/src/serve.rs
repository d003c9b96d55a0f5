//! The in-memory Kill Bill emulator over HTTP/1.1 (the engine of `kb-usage serve`), with
//! optional fault injection in the emulator's own vocabulary ([`Fault`]), usable in-process
//! by tests and benchmarks. Feature `serve`.
//!
//! ```no_run
//! use usage_transport_memory::serve::{ServeConfig, Server};
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let server = Server::bind(ServeConfig::new("127.0.0.1:0".parse().unwrap())).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.run_until(std::future::pending()).await // or until a shutdown signal
//! # }
//! ```
//!
//! Robustness: request bodies over [`ServeConfig::max_body_bytes`] get 413, a client that
//! does not send its headers within [`ServeConfig::header_read_timeout`] is cut off, a body
//! that does not arrive within [`ServeConfig::body_read_timeout`] gets 408, a client that does
//! not read its answers is cut off once a write has stalled for [`ServeConfig::write_timeout`],
//! malformed HTTP gets 400 (from hyper), and nothing a client sends stops the server.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use write_deadline::WriteDeadline;

mod config;
mod write_deadline;

pub use config::{build_emulator, Faults, ServeConfig, SlowCommits};

use crate::{Fault, InMemoryKillBill};

/// The path prefix of the emulator's admin routes, which faults never touch.
pub const ADMIN_PREFIX: &str = "/emulator/";

/// A `Send` boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Anything that answers buffered requests: the emulator, or a stand-in in tests.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request<Bytes>) -> Response<Bytes>;

    /// Answers one request taking the time processing takes, with `slow` more for a slow
    /// commit. By default: waits `slow`, then [`handle`](Self::handle)s.
    fn process(&self, request: Request<Bytes>, slow: Duration) -> BoxFuture<'_, Response<Bytes>> {
        Box::pin(async move {
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            self.handle(request)
        })
    }

    /// The fault queued for the next request, if any, applied before a randomly drawn one.
    /// By default none; the emulator's are those queued with [`InMemoryKillBill::inject`].
    fn next_fault(&self) -> Option<Fault> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(Request<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
{
    fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        self(request)
    }
}

impl Handler for InMemoryKillBill {
    fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        InMemoryKillBill::handle(self, request)
    }

    /// The emulator's own processing: with [`DuplicateCheck::KillBill`](crate::DuplicateCheck::KillBill), the processing time
    /// (and `slow`) between the tracking-id check and the insert.
    fn process(&self, request: Request<Bytes>, slow: Duration) -> BoxFuture<'_, Response<Bytes>> {
        Box::pin(self.process_slowly(request, slow))
    }

    /// The emulator's queued faults ([`InMemoryKillBill::inject`]): the same [`Fault`]s over
    /// HTTP as through the in-memory transport.
    fn next_fault(&self) -> Option<Fault> {
        InMemoryKillBill::next_fault(self)
    }
}

/// How a fault is named in the log and in [`Stats`]' `Display`.
fn label(fault: &Fault) -> String {
    match fault {
        Fault::Status { status, .. } => status.as_str().to_string(),
        Fault::Transport { .. } => "close-before".to_string(),
        Fault::CommitThenLose => "close-after".to_string(),
        Fault::SlowCommit { .. } => "slow-commit".to_string(),
    }
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    faults: [AtomicU64; 4],
    queued_faults: AtomicU64,
    open_connections: AtomicU64,
    slow_commits: AtomicU64,
}

impl Stats {
    /// Connections accepted and not yet let go of (closed by either side, or cut off).
    pub fn open_connections(&self) -> u64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Requests received (faulted ones included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many times `fault` was injected (0 for a fault that is not one of
    /// [`Faults::kinds`]).
    pub fn faults(&self, fault: &Fault) -> u64 {
        Faults::kinds()
            .iter()
            .position(|kind| kind == fault)
            .map_or(0, |index| self.faults[index].load(Ordering::Relaxed))
    }

    /// How many faults were taken from the handler's queue ([`Handler::next_fault`]; counted
    /// here only, not in [`faults`](Self::faults)).
    pub fn queued_faults(&self) -> u64 {
        self.queued_faults.load(Ordering::Relaxed)
    }

    /// How many POSTs were slow commits.
    pub fn slow_commits(&self) -> u64 {
        self.slow_commits.load(Ordering::Relaxed)
    }

    /// All faults injected, drawn or queued (slow commits apart).
    pub fn total_faults(&self) -> u64 {
        self.faults
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.queued_faults()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requests, faults:", self.requests())?;
        for (kind, count) in Faults::kinds().iter().zip(&self.faults) {
            write!(f, " {}={}", label(kind), count.load(Ordering::Relaxed))?;
        }
        write!(f, ", slow commits: {}", self.slow_commits())
    }
}

/// One connection counted in [`Stats::open_connections`] for as long as this lives.
struct OpenConnection(Arc<Stats>);

impl OpenConnection {
    fn count(stats: Arc<Stats>) -> OpenConnection {
        stats.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection(stats)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Shared {
    handler: Arc<dyn Handler>,
    config: ServeConfig,
    rng: Option<Mutex<fastrand::Rng>>,
    slow_rng: Option<Mutex<fastrand::Rng>>,
    stats: Arc<Stats>,
}

impl Shared {
    fn draw_fault(&self) -> Option<Fault> {
        let (faults, rng) = (self.config.faults?, self.rng.as_ref()?);
        let mut rng = rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if rng.f64() >= faults.rate {
            return None;
        }
        let kinds = Faults::kinds();
        let index = rng.usize(0..kinds.len());
        drop(rng);
        self.stats.faults[index].fetch_add(1, Ordering::Relaxed);
        kinds.into_iter().nth(index)
    }

    /// The extra processing time of a POST drawn as a slow commit.
    fn draw_slow_commit(&self) -> Option<Duration> {
        let (slow, rng) = (self.config.slow_commits?, self.slow_rng.as_ref()?);
        let drawn = rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).f64() < slow.rate;
        drawn.then(|| {
            self.stats.slow_commits.fetch_add(1, Ordering::Relaxed);
            slow.processing
        })
    }
}

/// The server: bound, not yet serving.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    emulator: Option<InMemoryKillBill>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// The connection is dropped without an answer (a fault, or the client went away).
#[derive(Debug)]
struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped without an answer")
    }
}

impl std::error::Error for Dropped {}

impl Server {
    /// Builds the emulator from `config` and binds its address.
    pub async fn bind(config: ServeConfig) -> std::io::Result<Server> {
        let emulator = build_emulator(&config).map_err(std::io::Error::other)?;
        let mut server = Server::bind_with(config, Arc::new(emulator.clone())).await?;
        server.emulator = Some(emulator);
        Ok(server)
    }

    /// Binds `config.listen` with another handler (the emulator's settings in `config` are
    /// not used).
    pub async fn bind_with(config: ServeConfig, handler: Arc<dyn Handler>) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let rng = config
            .faults
            .map(|faults| Mutex::new(fastrand::Rng::with_seed(faults.seed)));
        let slow_rng = config
            .slow_commits
            .map(|slow| Mutex::new(fastrand::Rng::with_seed(slow.seed)));
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                handler,
                config,
                rng,
                slow_rng,
                stats: Arc::new(Stats::default()),
            }),
            emulator: None,
        })
    }

    /// The address it listens on (with the port picked when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.shared.config.listen)
    }

    /// The emulator, when [`bind`](Self::bind) built it.
    pub fn emulator(&self) -> Option<&InMemoryKillBill> {
        self.emulator.as_ref()
    }

    /// The counters (requests, faults, open connections), live.
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (up to the grace period) and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, _peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little, keep serving.
                    if self.shared.config.log {
                        eprintln!("accept failed: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { answer(request, shared).await }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(self.shared.config.header_read_timeout)
                .keep_alive(true);
            let stream = WriteDeadline {
                stream,
                timeout: self.shared.config.write_timeout,
                stalled: None,
            };
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            let log = self.shared.config.log;
            let open = OpenConnection::count(self.shared.stats.clone());
            tokio::spawn(async move {
                // Dropped last: the connection and its socket are gone by then.
                let _open = open;
                if let Err(e) = connection.await {
                    if log && !is_dropped(&e) {
                        eprintln!("connection ended: {e}");
                    }
                }
            });
        }
        drop(self.listener);
        let grace = self.shared.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
        Ok(())
    }
}

fn is_dropped(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<Dropped>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A body hyper could not decode (a bad chunk size or chunk framing), as opposed to one the
/// client cut short: hyper reports it as an `InvalidInput` I/O error.
fn is_malformed_body(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::InvalidInput)
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn answer(request: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Full<Bytes>>, Dropped> {
    let started = Instant::now();
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let fault = if path.starts_with(ADMIN_PREFIX) {
        None
    } else if let Some(queued) = shared.handler.next_fault() {
        shared.stats.queued_faults.fetch_add(1, Ordering::Relaxed);
        Some(queued)
    } else {
        shared.draw_fault()
    };
    let log = |status: &str| {
        if shared.config.log {
            eprintln!(
                "{} {method} {path} {status} {:.1}ms",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
    };
    let result = respond(request, &shared, fault.as_ref()).await;
    match &result {
        Ok(response) => log(response.status().as_str()),
        Err(_) => log(&format!(
            "closed-without-answer{}",
            fault
                .as_ref()
                .map(|f| format!(" (fault {})", label(f)))
                .unwrap_or_default()
        )),
    }
    if fault.is_some() && shared.config.log {
        if let Ok(response) = &result {
            eprintln!("  (fault injected: {})", response.status());
        }
    }
    result
}

async fn respond(
    request: Request<Incoming>,
    shared: &Shared,
    fault: Option<&Fault>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    if let Some(response) = fault.and_then(Fault::response) {
        return Ok(response.map(Full::new));
    }
    // Over HTTP, a transport fault is the connection closed before anything is handled.
    if matches!(fault, Some(Fault::Transport { .. })) {
        return Err(Dropped);
    }
    let max = shared.config.max_body_bytes;
    let too_large = || {
        let mut response = plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {max} bytes"),
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Ok(too_large());
    }
    let (parts, body) = request.into_parts();
    let collected = tokio::time::timeout(shared.config.body_read_timeout, Limited::new(body, max).collect()).await;
    let body = match collected {
        Err(_elapsed) => return Ok(plain(StatusCode::REQUEST_TIMEOUT, "request body too slow")),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Ok(too_large()),
        Ok(Err(e)) if is_malformed_body(&*e) => {
            let mut response = plain(StatusCode::BAD_REQUEST, "malformed request body");
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(response);
        }
        Ok(Err(_)) => return Err(Dropped),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let slow = if let Some(Fault::SlowCommit { processing }) = fault {
        *processing
    } else if parts.method == http::Method::POST && !parts.uri.path().starts_with(ADMIN_PREFIX) {
        shared.draw_slow_commit().unwrap_or_default()
    } else {
        Duration::ZERO
    };
    let request = Request::from_parts(parts, body);
    // Processed on a task of its own, as a servlet container goes on processing a request
    // whose client went away: hyper drops this future when the connection closes, and an
    // attempt the client gave up on must still be stored.
    let handler = shared.handler.clone();
    let processing = tokio::spawn(async move { handler.process(request, slow).await });
    let response = processing.await.map_err(|_| Dropped)?;
    if fault == Some(&Fault::CommitThenLose) {
        return Err(Dropped);
    }
    Ok(response.map(Full::new))
}
