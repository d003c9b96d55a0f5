//! Load harness over loopback: the client under load against real HTTP servers on 127.0.0.1,
//! next to its FLOOR, a bare hyper-util client sending the same bytes.
//!
//! `cargo bench --bench load` runs, in one process:
//!
//! 1. `memory`: `UsageClient` + `HyperTransport` against the canned server for
//!    `LOAD_MEMORY_SECS`, GET and POST mixed at concurrency 16; VmRSS sampled ten times,
//!    VmHWM at the end (is there growth per call?).
//! 2. `compare`: for GET and POST, at each concurrency, in alternation (A B C ... A B C ...,
//!    `LOAD_ROUNDS` rounds):
//!    - `ours`: `UsageClient` + `HyperTransport` + `TokioTimer`, default retry policy;
//!    - `floor`: a hyper-util legacy client with the same pool settings, sending a request
//!      prebuilt once (byte for byte what `ours` sends: method, URI, headers, body) and
//!      reading the whole body, nothing else;
//!    - `js`: Kill Bill's official JavaScript client (npm `killbill`) run by `node`, when both
//!      are installed (`cd benches/js && npm install`; the harness never installs anything);
//!    - `ours` and `floor` (GET only: the emulator refuses a repeated tracking id) against
//!      `kb-usage serve`'s emulator, to show what the emulator's own work costs (the emulator
//!      is emptied and seeded again after each POST measurement, so that it does not grow).
//! 3. `bulk`: rows per second through `record_usage` to the emulator, 100 and 1,000 rows per
//!    request, concurrency 4.
//!
//! Threads: each server runs a current-thread tokio runtime on its own thread, and the Rust
//! clients a current-thread runtime on the main thread: on two cores, one core each.
//!
//! CPU: the kernel's per-thread run time (`/proc/self/task/*/schedstat`, nanoseconds, the
//! figure `getrusage` sums): client = every thread of the process but the servers', over the
//! measured period; server = the server's thread over warm-up and measurement, divided by the
//! requests it served then. The JavaScript client reports `process.cpuUsage()` of node.
//!
//! Settings (environment): `LOAD_SECS` (1.0, per measurement), `LOAD_WARMUP_SECS` (0.2),
//! `LOAD_ROUNDS` (3), `LOAD_CONCURRENCY` (`1,16,64`), `LOAD_PHASES` (`memory,compare,bulk`),
//! `LOAD_MEMORY_SECS` (20), `LOAD_BULK_SECS` (1.5), `LOAD_JS` (`0` skips node),
//! `LOAD_CLIENTS` (`ours,floor,js,ours@emulator,floor@emulator`) and `LOAD_OPS` (`get,post`):
//! which to run, for profiling. It prints what it does, one line per measurement, then
//! Markdown tables (BENCHMARKS.md, "Load harness over loopback"). Without `--bench`
//! (`cargo test --benches`) it makes one quick pass, without node, to check that all runs.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer as HyperTimer};
use killbill_usage::core::{
    ClientConfig, GetUsage, Operation, RecordUsage, RequestOptions, TenantCredentials, UserCredentials,
};
use killbill_usage::hyper::{HyperTransport, TokioTimer};
use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UnitType};
use killbill_usage::{UsageClient, UsageWindow};
use tokio::runtime::Runtime;
use usage_transport_memory::serve::{ServeConfig, Server};
use usage_transport_memory::{InMemoryKillBill, NewSubscription};

/// The subscription the GETs read (it has [`SEED_RECORDS`] records of [`POST_ROWS`] rows).
const GET_SUBSCRIPTION: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// The subscription the POSTs write to.
const POST_SUBSCRIPTION: &str = "3f2a4d1c-7b6e-4c5d-9e8f-0a1b2c3d4e5f";
const UNIT: &str = "api-calls";
const START: &str = "2013-08-01T00:00:00.000Z";
const END: &str = "2013-09-01T00:00:00.000Z";
/// Rows in the record of each POST: a meter's flush, 2 unit types x 5 readings.
const POST_ROWS: usize = 10;
const SEED_RECORDS: usize = 20;
const MEMORY_CONCURRENCY: usize = 16;
const BULK_CONCURRENCY: usize = 4;
const BULK_ROWS: [usize; 2] = [100, 1000];

// ----------------------------------------------------------------------------------------
// Settings
// ----------------------------------------------------------------------------------------

struct Settings {
    secs: f64,
    warmup_secs: f64,
    rounds: usize,
    concurrency: Vec<usize>,
    phases: Vec<String>,
    memory_secs: f64,
    bulk_secs: f64,
    js: bool,
    clients: Vec<String>,
    ops: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    /// The settings from the environment; without `--bench` (`cargo test --benches`), a quick
    /// pass that only checks that everything runs.
    fn from_env(bench: bool) -> Settings {
        let quick = |full: f64, smoke: f64| if bench { full } else { smoke };
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Settings {
            secs: env_or("LOAD_SECS", quick(1.0, 0.05)),
            warmup_secs: env_or("LOAD_WARMUP_SECS", quick(0.2, 0.02)),
            rounds: env_or("LOAD_ROUNDS", if bench { 3usize } else { 1 }).max(1),
            concurrency: list("LOAD_CONCURRENCY", "1,16,64")
                .iter()
                .map(|c| c.parse().expect("LOAD_CONCURRENCY: numbers separated by commas"))
                .collect(),
            phases: list("LOAD_PHASES", "memory,compare,bulk"),
            memory_secs: env_or("LOAD_MEMORY_SECS", quick(20.0, 0.5)),
            bulk_secs: env_or("LOAD_BULK_SECS", quick(1.5, 0.05)),
            js: std::env::var("LOAD_JS").map(|v| v != "0").unwrap_or(bench),
            clients: list("LOAD_CLIENTS", "ours,floor,js,ours@emulator,floor@emulator"),
            ops: list("LOAD_OPS", "get,post"),
        }
    }

    fn phase(&self, name: &str) -> bool {
        self.phases.iter().any(|p| p == name)
    }
}

// ----------------------------------------------------------------------------------------
// CPU and memory, from /proc
// ----------------------------------------------------------------------------------------

/// This thread's id.
fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok());
    tid.expect("a thread id")
}

/// A thread's run time in nanoseconds (first field of its schedstat).
fn thread_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Every live thread's run time.
fn all_threads_ns() -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        if let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.insert(tid, thread_ns(tid));
        }
    }
    out
}

/// Run time of every thread but `excluded` between two snapshots, in seconds.
fn cpu_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>, excluded: &[u32]) -> f64 {
    let ns: u64 = after
        .iter()
        .filter(|(tid, _)| !excluded.contains(tid))
        .map(|(tid, end)| end.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1e9
}

/// `(VmRSS, VmHWM)` in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ----------------------------------------------------------------------------------------
// Servers
// ----------------------------------------------------------------------------------------

/// A server on its own thread.
struct ServerInfo {
    addr: SocketAddr,
    tid: u32,
    requests: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Connections accepted (the canned server only counts them).
    connections: Arc<AtomicU64>,
}

impl ServerInfo {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The canned server: `POST /1.0/kb/usages` reads the body and answers 201, empty, with
/// `Content-Type: application/json`; `GET /1.0/kb/usages/{id}/{unit}` answers 200 with
/// `get_body` (a roll-up the emulator wrote); anything else 404.
fn start_canned(get_body: Bytes) -> ServerInfo {
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
fn on_own_thread<T, F, Fut>(name: &str, serve: F) -> T
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

async fn canned_answer(request: Request<Incoming>, get_body: Bytes) -> Result<Response<Full<Bytes>>, Infallible> {
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
fn start_emulator(subscriptions: Vec<SubscriptionId>, auto_provision: bool) -> (ServerInfo, InMemoryKillBill) {
    let (addr, tid, stats, emulator) = on_own_thread("emulator-server", move |ready| async move {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
        config.subscriptions = subscriptions.iter().map(|id| id.uuid()).collect();
        config.auto_provision = auto_provision;
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

// ----------------------------------------------------------------------------------------
// Clients
// ----------------------------------------------------------------------------------------

type RawClient = Client<HttpConnector, Full<Bytes>>;

/// The floor: hyper-util's legacy client with the pool settings of `HyperTransport`'s
/// defaults (15 s idle timeout with its timer, 16 idle per host, TCP_NODELAY, 10 s connect).
fn raw_client() -> RawClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new())
        .pool_timer(HyperTimer::new())
        .timer(HyperTimer::new())
        .pool_idle_timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(16)
        .build(http)
}

fn ours(base_url: &str) -> UsageClient {
    let transport = HyperTransport::builder().build().unwrap();
    UsageClient::builder(base_url)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .timer(TokioTimer)
        .build()
        .unwrap()
}

fn config(base_url: &str) -> ClientConfig {
    ClientConfig::new(
        base_url,
        UserCredentials::new("admin", "password"),
        TenantCredentials::new("bob", "lazar"),
    )
    .unwrap()
}

fn subscription(id: &str) -> SubscriptionId {
    id.parse().unwrap()
}

fn window() -> UsageWindow {
    UsageWindow::parse(START, END).unwrap()
}

/// A record of `rows` readings over `units` unit types, at instants with milliseconds, half
/// the amounts with decimals; no tracking id (the client makes one per call).
fn record(subscription_id: SubscriptionId, rows: usize, units: usize) -> SubscriptionUsageRecord {
    common::meter_readings(SubscriptionUsageRecord::builder(subscription_id), rows, units)
}

/// One kind of call, cloned into each worker task.
#[derive(Clone)]
enum Caller {
    /// The client, and what a caller holds: the subscription and the window.
    OursGet(UsageClient, SubscriptionId, UsageWindow),
    OursPost(UsageClient, Arc<SubscriptionUsageRecord>),
    Raw {
        client: Box<RawClient>,
        template: Arc<Request<Bytes>>,
        expect: StatusCode,
    },
}

impl Caller {
    /// One call.
    async fn call(&self) -> Result<(), String> {
        match self {
            Caller::OursGet(client, subscription_id, window) => {
                let usage = client
                    .get_usage(*subscription_id, UNIT, *window)
                    .unwrap()
                    .await
                    .map_err(|e| e.to_string())?;
                black_box(usage);
            }
            Caller::OursPost(client, record) => {
                let outcome = client.record_usage(record).await.map_err(|e| e.to_string())?;
                black_box(outcome);
            }
            Caller::Raw {
                client,
                template,
                expect,
            } => {
                let response = client.request(copy(template)).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
                black_box(body.to_bytes());
                if status != *expect {
                    return Err(format!("status {status}"));
                }
            }
        }
        Ok(())
    }
}

/// A copy of the prebuilt request for one send (the body is shared, not copied).
fn copy(template: &Request<Bytes>) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(template.body().clone()));
    *request.method_mut() = template.method().clone();
    *request.uri_mut() = template.uri().clone();
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = template.headers().clone();
    request
}

/// Writes the usage the GETs read: [`SEED_RECORDS`] records of [`POST_ROWS`] rows.
fn seed(runtime: &Runtime, emulator: &ServerInfo) {
    runtime.block_on(async {
        let client = ours(&emulator.url());
        let seed = record(subscription(GET_SUBSCRIPTION), POST_ROWS, 2);
        for _ in 0..SEED_RECORDS {
            client.record_usage(&seed).await.unwrap();
        }
    });
}

/// `ours` reading the roll-up of [`UNIT`] of [`GET_SUBSCRIPTION`].
fn ours_get(client: &UsageClient) -> Caller {
    Caller::OursGet(client.clone(), subscription(GET_SUBSCRIPTION), window())
}

/// The floor sending `template`, expecting `expect`.
fn floor(client: &RawClient, template: Arc<Request<Bytes>>, expect: StatusCode) -> Caller {
    Caller::Raw {
        client: Box::new(client.clone()),
        template,
        expect,
    }
}

/// The request `ours` sends for a GET, prebuilt.
fn get_template(base_url: &str) -> Arc<Request<Bytes>> {
    let unit = UnitType::new(UNIT).unwrap();
    let operation = GetUsage::new(subscription(GET_SUBSCRIPTION), &unit, window()).unwrap();
    Arc::new(operation.to_request(&config(base_url), &RequestOptions::new()).unwrap())
}

/// The request `ours` sends for a POST of `record`, prebuilt (with one tracking id).
fn post_template(base_url: &str, record: &SubscriptionUsageRecord) -> Arc<Request<Bytes>> {
    Arc::new(
        RecordUsage::new(record)
            .to_request(&config(base_url), &RequestOptions::new())
            .unwrap(),
    )
}

// ----------------------------------------------------------------------------------------
// Measuring
// ----------------------------------------------------------------------------------------

/// One measurement.
#[derive(Clone, Debug, Default)]
struct Sample {
    calls: u64,
    errors: u64,
    elapsed_s: f64,
    p50_us: f64,
    p99_us: f64,
    client_cpu_s: f64,
    server_cpu_s: f64,
    server_requests: u64,
    /// Connections the server accepted over warm-up and measurement.
    connections: u64,
}

impl Sample {
    fn rps(&self) -> f64 {
        self.calls as f64 / self.elapsed_s
    }

    /// Client CPU seconds per 10,000 calls.
    fn client_cpu(&self) -> f64 {
        self.client_cpu_s / self.calls.max(1) as f64 * 1e4
    }

    /// Server CPU seconds per 10,000 requests served.
    fn server_cpu(&self) -> f64 {
        self.server_cpu_s / self.server_requests.max(1) as f64 * 1e4
    }
}

struct Driven {
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_ns: Vec<u64>,
}

/// `concurrency` workers calling `caller` in a loop until `duration` has passed.
async fn drive(caller: &Caller, concurrency: usize, duration: Duration) -> Driven {
    let end = Instant::now() + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let caller = caller.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(16 * 1024);
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < end {
                let started = Instant::now();
                match caller.call().await {
                    Ok(()) => latencies.push(started.elapsed().as_nanos() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut driven = Driven {
        calls: 0,
        errors: 0,
        first_error: None,
        latencies_ns: Vec::new(),
    };
    while let Some(joined) = workers.join_next().await {
        let (latencies, errors, first_error) = joined.expect("a worker panicked");
        driven.calls += latencies.len() as u64;
        driven.errors += errors;
        driven.latencies_ns.extend(latencies);
        if driven.first_error.is_none() {
            driven.first_error = first_error;
        }
    }
    driven
}

fn percentile_us(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let index = ((sorted_ns.len() as f64 * q) as usize).min(sorted_ns.len() - 1);
    sorted_ns[index] as f64 / 1e3
}

/// Warm-up, then one measurement of `caller` from the main thread's runtime.
fn measure(
    runtime: &Runtime,
    caller: &Caller,
    concurrency: usize,
    settings: &Settings,
    duration_s: f64,
    server: &ServerInfo,
    server_tids: &[u32],
) -> Sample {
    let (server_ns, served) = (thread_ns(server.tid), (server.requests)());
    let connections = server.connections.load(Ordering::Relaxed);
    runtime.block_on(drive(
        caller,
        concurrency,
        Duration::from_secs_f64(settings.warmup_secs),
    ));
    let before = all_threads_ns();
    let started = Instant::now();
    let mut driven = runtime.block_on(drive(caller, concurrency, Duration::from_secs_f64(duration_s)));
    let elapsed_s = started.elapsed().as_secs_f64();
    let after = all_threads_ns();
    if let Some(e) = &driven.first_error {
        println!("    !! {} errors, the first: {e}", driven.errors);
    }
    driven.latencies_ns.sort_unstable();
    Sample {
        calls: driven.calls,
        errors: driven.errors,
        elapsed_s,
        p50_us: percentile_us(&driven.latencies_ns, 0.50),
        p99_us: percentile_us(&driven.latencies_ns, 0.99),
        client_cpu_s: cpu_between(&before, &after, server_tids),
        server_cpu_s: thread_ns(server.tid).saturating_sub(server_ns) as f64 / 1e9,
        server_requests: (server.requests)() - served,
        connections: server.connections.load(Ordering::Relaxed) - connections,
    }
}

/// Why the JavaScript client cannot run, or `None` when it can.
fn js_unavailable(settings: &Settings) -> Option<String> {
    if !settings.js {
        return Some("LOAD_JS=0".into());
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not installed (or not on PATH)".into());
    }
    if !js_dir().join("node_modules/killbill/package.json").exists() {
        return Some(format!(
            "the npm package `killbill` is not installed in {}; enable with: cd benches/js && npm install",
            js_dir().display()
        ));
    }
    None
}

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/js")
}

/// One measurement by `node benches/js/client.js`.
fn measure_js(
    op: Op,
    concurrency: usize,
    settings: &Settings,
    server: &ServerInfo,
    record_json: &serde_json::Value,
) -> Result<Sample, String> {
    let args = serde_json::json!({
        "url": server.url(),
        "op": op.name(),
        "concurrency": concurrency,
        "secs": settings.secs,
        "warmup_secs": settings.warmup_secs,
        "subscription_id": if op == Op::Get { GET_SUBSCRIPTION } else { POST_SUBSCRIPTION },
        "unit_type": UNIT,
        "start_date": START,
        "end_date": END,
        "record": record_json,
    });
    let (server_ns, served) = (thread_ns(server.tid), (server.requests)());
    let connections = server.connections.load(Ordering::Relaxed);
    let output = std::process::Command::new("node")
        .arg(js_dir().join("client.js"))
        .arg(args.to_string())
        .current_dir(js_dir())
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let server_cpu_s = thread_ns(server.tid).saturating_sub(server_ns) as f64 / 1e9;
    let server_requests = (server.requests)() - served;
    if !output.status.success() {
        return Err(format!(
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|e| format!("{e}: {line}"))?;
    if let Some(skipped) = v.get("skipped") {
        return Err(skipped.to_string());
    }
    if let Some(e) = v["first_error"].as_str() {
        println!("    !! {} errors, the first: {e}", v["errors"]);
    }
    let number = |name: &str| v[name].as_f64().unwrap_or(0.0);
    Ok(Sample {
        calls: number("calls") as u64,
        errors: number("errors") as u64,
        elapsed_s: number("elapsed_s"),
        p50_us: number("p50_us"),
        p99_us: number("p99_us"),
        client_cpu_s: number("cpu_s"),
        server_cpu_s,
        server_requests,
        connections: server.connections.load(Ordering::Relaxed) - connections,
    })
}

// ----------------------------------------------------------------------------------------
// Statistics and tables
// ----------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Get,
    Post,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Post => "post",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Post => "POST",
        }
    }
}

/// Median, min, max.
fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// `median (min–max)` with `decimals` digits.
fn cell(values: &[f64], decimals: usize) -> String {
    let (median, min, max) = stats(values);
    if median.is_nan() {
        return "–".into();
    }
    format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
}

/// Per round `a[i] / b[i]`: the ratios of measurements taken side by side.
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

type Key = (Op, usize, &'static str);

#[derive(Default)]
struct Results {
    samples: HashMap<Key, Vec<Sample>>,
}

impl Results {
    fn push(&mut self, key: Key, sample: Sample) {
        self.samples.entry(key).or_default().push(sample);
    }

    fn values(&self, key: Key, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples
            .get(&key)
            .map(|samples| samples.iter().map(f).collect())
            .unwrap_or_default()
    }
}

fn compare_tables(results: &Results, settings: &Settings, clients: &[&'static str]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| op | conc. | client | req/s | p50 µs | p99 µs | client CPU s/10k calls | server CPU s/10k req. | req/s ÷ floor | client CPU ÷ floor |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            for &client in clients {
                let key = (op, c, client);
                if !results.samples.contains_key(&key) {
                    continue;
                }
                let floor_key = (op, c, "floor");
                let rps = results.values(key, Sample::rps);
                let cpu = results.values(key, Sample::client_cpu);
                let (rps_ratio, cpu_ratio) = if client == "floor" {
                    ("1".to_string(), "1".to_string())
                } else {
                    (
                        cell(&ratios(&rps, &results.values(floor_key, Sample::rps)), 2),
                        cell(&ratios(&cpu, &results.values(floor_key, Sample::client_cpu)), 2),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {} | {c} | {client} | {} | {} | {} | {} | {} | {rps_ratio} | {cpu_ratio} |",
                    op.label(),
                    cell(&rps, 0),
                    cell(&results.values(key, |s| s.p50_us), 0),
                    cell(&results.values(key, |s| s.p99_us), 0),
                    cell(&cpu, 3),
                    cell(&results.values(key, Sample::server_cpu), 3),
                );
            }
        }
    }
    out
}

fn emulator_table(results: &Results, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| op | conc. | client | req/s canned | req/s emulator | emulator ÷ canned | server CPU s/10k canned | server CPU s/10k emulator |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|");
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            for (canned, emulated) in [("ours", "ours@emulator"), ("floor", "floor@emulator")] {
                let (a, b) = ((op, c, canned), (op, c, emulated));
                if !results.samples.contains_key(&b) {
                    continue;
                }
                let (ra, rb) = (results.values(a, Sample::rps), results.values(b, Sample::rps));
                let _ = writeln!(
                    out,
                    "| {} | {c} | {canned} | {} | {} | {} | {} | {} |",
                    op.label(),
                    cell(&ra, 0),
                    cell(&rb, 0),
                    cell(&ratios(&rb, &ra), 2),
                    cell(&results.values(a, Sample::server_cpu), 3),
                    cell(&results.values(b, Sample::server_cpu), 3),
                );
            }
        }
    }
    out
}

fn targets(results: &Results, settings: &Settings) -> String {
    let mut out = String::new();
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            let rps = ratios(
                &results.values((op, c, "ours"), Sample::rps),
                &results.values((op, c, "floor"), Sample::rps),
            );
            let cpu = ratios(
                &results.values((op, c, "ours"), Sample::client_cpu),
                &results.values((op, c, "floor"), Sample::client_cpu),
            );
            let (rps, cpu) = (stats(&rps).0, stats(&cpu).0);
            let _ = writeln!(
                out,
                "- {} c={c}: throughput {rps:.2}x the floor ({}), client CPU {cpu:.2}x the floor ({})",
                op.label(),
                if rps >= 0.9 { "met, >= 0.9x" } else { "MISSED, < 0.9x" },
                if cpu <= 1.2 { "met, <= 1.2x" } else { "MISSED, > 1.2x" },
            );
        }
    }
    out
}

fn line(label: &str, sample: &Sample) {
    println!(
        "    {label:<26} {:>8.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  client CPU {:.3} s/10k  server CPU {:.3} s/10k  ({} calls, {} errors, {} new connections)",
        sample.rps(),
        sample.p50_us,
        sample.p99_us,
        sample.client_cpu(),
        sample.server_cpu(),
        sample.calls,
        sample.errors,
        sample.connections
    );
}

// ----------------------------------------------------------------------------------------
// Phases
// ----------------------------------------------------------------------------------------

fn memory_phase(runtime: &Runtime, settings: &Settings, canned: &ServerInfo) -> String {
    let client = ours(&canned.url());
    let record = Arc::new(record(subscription(POST_SUBSCRIPTION), POST_ROWS, 2));
    let duration = Duration::from_secs_f64(settings.memory_secs);
    println!(
        "== memory: ours against the canned server, {MEMORY_CONCURRENCY} workers (half GET, half POST) for {:.0} s, VmRSS sampled 10 times",
        settings.memory_secs
    );
    let calls = Arc::new(AtomicU64::new(0));
    let (samples, hwm) = runtime.block_on(async {
        let get = ours_get(&client);
        let post = Caller::OursPost(client.clone(), record);
        // Warm-up: pool and allocator in their steady state.
        let warmup = Duration::from_secs_f64((settings.memory_secs / 10.0).min(1.0));
        let _ = drive(&get, MEMORY_CONCURRENCY / 2, warmup).await;
        let _ = drive(&post, MEMORY_CONCURRENCY / 2, warmup).await;
        let end = Instant::now() + duration;
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..MEMORY_CONCURRENCY {
            let caller = if i % 2 == 0 { get.clone() } else { post.clone() };
            let calls = calls.clone();
            workers.spawn(async move {
                while Instant::now() < end {
                    caller.call().await.expect("a call failed in the memory phase");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let started = Instant::now();
        let mut samples = Vec::new();
        for i in 0..=10 {
            let at = started + duration.mul_f64(i as f64 / 10.0);
            tokio::time::sleep_until(at.into()).await;
            let (rss, _) = rss_kib();
            samples.push((started.elapsed().as_secs_f64(), calls.load(Ordering::Relaxed), rss));
        }
        while workers.join_next().await.is_some() {}
        (samples, rss_kib().1)
    });
    let mut out = String::new();
    let _ = writeln!(out, "| t (s) | calls so far | VmRSS (KiB) |");
    let _ = writeln!(out, "|---:|---:|---:|");
    for (t, calls, rss) in &samples {
        let _ = writeln!(out, "| {t:.1} | {calls} | {rss} |");
        println!("    t={t:>5.1}s  calls={calls:>9}  VmRSS={rss} KiB");
    }
    let (first, mid, last) = (samples[0], samples[samples.len() / 2], samples[samples.len() - 1]);
    let per_1k = |a: (f64, u64, u64), b: (f64, u64, u64)| {
        (b.2 as f64 - a.2 as f64) * 1024.0 / ((b.1 - a.1).max(1) as f64 / 1000.0)
    };
    let _ = writeln!(
        out,
        "\nstart {} KiB, middle {} KiB, end {} KiB; peak (VmHWM) {hwm} KiB; {} calls; growth start→end {:+.1} bytes per 1,000 calls, middle→end {:+.1} bytes per 1,000 calls",
        first.2,
        mid.2,
        last.2,
        last.1,
        per_1k(first, last),
        per_1k(mid, last),
    );
    print!("    {}", out.lines().last().unwrap_or_default());
    println!();
    out
}

fn compare_phase(
    runtime: &Runtime,
    settings: &Settings,
    canned: &ServerInfo,
    (emulator, emulator_state): (&ServerInfo, &InMemoryKillBill),
    server_tids: &[u32],
) -> String {
    let post_record = record(subscription(POST_SUBSCRIPTION), POST_ROWS, 2);
    let record_json = {
        let mut v = serde_json::to_value(&post_record).unwrap();
        if let Some(map) = v.as_object_mut() {
            map.remove("trackingId");
        }
        v
    };
    let post_record = Arc::new(post_record);
    let js = js_unavailable(settings);
    if let Some(why) = &js {
        println!("== js: skipped: {why}");
    }
    let (ours_canned, ours_emulator) = (ours(&canned.url()), ours(&emulator.url()));
    let (raw_canned, raw_emulator) = (raw_client(), raw_client());
    let callers = |op: Op| -> Vec<(&'static str, Option<Caller>, &ServerInfo)> {
        let (url_c, url_e) = (canned.url(), emulator.url());
        match op {
            Op::Get => vec![
                ("ours", Some(ours_get(&ours_canned)), canned),
                (
                    "floor",
                    Some(floor(&raw_canned, get_template(&url_c), StatusCode::OK)),
                    canned,
                ),
                ("js", None, canned),
                ("ours@emulator", Some(ours_get(&ours_emulator)), emulator),
                (
                    "floor@emulator",
                    Some(floor(&raw_emulator, get_template(&url_e), StatusCode::OK)),
                    emulator,
                ),
            ],
            Op::Post => vec![
                (
                    "ours",
                    Some(Caller::OursPost(ours_canned.clone(), post_record.clone())),
                    canned,
                ),
                (
                    "floor",
                    Some(floor(
                        &raw_canned,
                        post_template(&url_c, &post_record),
                        StatusCode::CREATED,
                    )),
                    canned,
                ),
                ("js", None, canned),
                (
                    "ours@emulator",
                    Some(Caller::OursPost(ours_emulator.clone(), post_record.clone())),
                    emulator,
                ),
            ],
        }
    };
    println!(
        "== compare: GET and POST ({POST_ROWS}-row records) at concurrency {:?}; {} rounds of {:.1} s per measurement after {:.1} s warm-up; clients in turn: ours, floor, js, ours@emulator, floor@emulator (GET only)",
        settings.concurrency, settings.rounds, settings.secs, settings.warmup_secs
    );
    let mut results = Results::default();
    for round in 1..=settings.rounds {
        println!("-- round {round}/{}", settings.rounds);
        for op in [Op::Get, Op::Post] {
            if !settings.ops.iter().any(|o| o == op.name()) {
                continue;
            }
            for &c in &settings.concurrency {
                println!("  {} concurrency {c}", op.label());
                for (label, caller, server) in callers(op) {
                    if !settings.clients.iter().any(|c| c == label) {
                        continue;
                    }
                    let sample = match caller {
                        Some(caller) => measure(runtime, &caller, c, settings, settings.secs, server, server_tids),
                        None if js.is_none() => match measure_js(op, c, settings, server, &record_json) {
                            Ok(sample) => sample,
                            Err(e) => {
                                println!("    js: skipped: {e}");
                                continue;
                            }
                        },
                        None => continue,
                    };
                    line(label, &sample);
                    results.push((op, c, label), sample);
                    if label == "ours@emulator" && op == Op::Post {
                        // What the POSTs stored goes, so that memory and the emulator's
                        // tables stay the same size from round to round.
                        emulator_state.reset();
                        for id in [GET_SUBSCRIPTION, POST_SUBSCRIPTION] {
                            let new = NewSubscription::new().id(subscription(id));
                            emulator_state.add_subscription(new).unwrap();
                        }
                        seed(runtime, emulator);
                    }
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "Against the canned server (median (min–max) over {} rounds; ratios are per round, ours ÷ floor measured side by side, then their median (min–max)):\n", settings.rounds);
    out.push_str(&compare_tables(&results, settings, &["ours", "floor", "js"]));
    if let Some(why) = &js {
        let _ = writeln!(out, "\njs: skipped: {why}");
    }
    let _ = writeln!(
        out,
        "\nTargets (ours ≥ 0.9x the floor's throughput, client CPU per call ≤ 1.2x the floor's):\n"
    );
    out.push_str(&targets(&results, settings));
    let _ = writeln!(
        out,
        "\nAgainst `kb-usage serve`'s emulator, next to the canned server (same rounds):\n"
    );
    out.push_str(&emulator_table(&results, settings));
    out
}

fn bulk_phase(
    runtime: &Runtime,
    settings: &Settings,
    server: &ServerInfo,
    emulator: &InMemoryKillBill,
    server_tids: &[u32],
) -> String {
    let client = ours(&server.url());
    let bulk_subscription = SubscriptionId::random();
    println!(
        "== bulk: record_usage to the emulator, {BULK_CONCURRENCY} workers, {:?} rows per request, {} rounds of {:.1} s (the emulator is reset after each)",
        BULK_ROWS, settings.rounds, settings.bulk_secs
    );
    let callers: Vec<(usize, Caller)> = BULK_ROWS
        .iter()
        .map(|&rows| {
            let record = Arc::new(record(bulk_subscription, rows, 4));
            (rows, Caller::OursPost(client.clone(), record))
        })
        .collect();
    let mut samples: HashMap<usize, Vec<Sample>> = HashMap::new();
    for round in 1..=settings.rounds {
        println!("-- round {round}/{}", settings.rounds);
        for (rows, caller) in &callers {
            let sample = measure(
                runtime,
                caller,
                BULK_CONCURRENCY,
                settings,
                settings.bulk_secs,
                server,
                server_tids,
            );
            emulator.reset();
            println!(
                "    {rows:>5} rows/request  {:>9.0} rows/s  {:>7.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  client CPU {:.3} s per 1M rows  ({} errors)",
                sample.rps() * *rows as f64,
                sample.rps(),
                sample.p50_us,
                sample.p99_us,
                sample.client_cpu_s / (sample.calls.max(1) as f64 * *rows as f64) * 1e6,
                sample.errors
            );
            samples.entry(*rows).or_default().push(sample);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "| rows/request | concurrency | rows/s | requests/s | p50 µs | p99 µs | client CPU s per 1M rows | emulator CPU s per 1M rows |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (rows, _) in &callers {
        let s = &samples[rows];
        let v = |f: &dyn Fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<_>>();
        let r = *rows as f64;
        let _ = writeln!(
            out,
            "| {rows} | {BULK_CONCURRENCY} | {} | {} | {} | {} | {} | {} |",
            cell(&v(&|s| s.rps() * r), 0),
            cell(&v(&|s| s.rps()), 0),
            cell(&v(&|s| s.p50_us), 0),
            cell(&v(&|s| s.p99_us), 0),
            cell(&v(&|s| s.client_cpu_s / (s.calls.max(1) as f64 * r) * 1e6), 3),
            cell(&v(&|s| s.server_cpu_s / (s.server_requests.max(1) as f64 * r) * 1e6), 3),
        );
    }
    out
}

// ----------------------------------------------------------------------------------------
// Main
// ----------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then one quick
    // pass checks that everything runs (no node, a few tenths of a second per phase).
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        println!("load harness: test mode (no --bench): one quick pass, numbers meaningless");
    }
    let settings = Settings::from_env(bench);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "load harness: {} CPUs ({cpu}); phases {:?}; LOAD_SECS={} LOAD_WARMUP_SECS={} LOAD_ROUNDS={} LOAD_CONCURRENCY={:?} LOAD_MEMORY_SECS={} LOAD_BULK_SECS={}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        settings.phases,
        settings.secs,
        settings.warmup_secs,
        settings.rounds,
        settings.concurrency,
        settings.memory_secs,
        settings.bulk_secs
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The emulator first: it writes the roll-up the canned server gives back.
    let (emulator, emulator_state) = start_emulator(
        vec![subscription(GET_SUBSCRIPTION), subscription(POST_SUBSCRIPTION)],
        false,
    );
    seed(&runtime, &emulator);
    let get_body = runtime.block_on(async {
        let response = raw_client()
            .request(copy(&get_template(&emulator.url())))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap().to_bytes()
    });
    println!(
        "servers: the emulator, and the canned server answering GETs with the emulator's roll-up ({} bytes): {}",
        get_body.len(),
        String::from_utf8_lossy(&get_body)
    );
    let canned = start_canned(get_body);
    let (bulk, bulk_emulator) = start_emulator(Vec::new(), true);
    let server_tids = [canned.tid, emulator.tid, bulk.tid];
    println!(
        "canned server {} (thread {}), emulator {} (thread {}), bulk emulator {} (thread {})",
        canned.addr, canned.tid, emulator.addr, emulator.tid, bulk.addr, bulk.tid
    );

    let mut report = String::new();
    if settings.phase("memory") {
        let _ = writeln!(report, "\n### Memory (ours, canned server)\n");
        report.push_str(&memory_phase(&runtime, &settings, &canned));
    }
    if settings.phase("compare") {
        let _ = writeln!(report, "\n### Throughput, latency, CPU\n");
        report.push_str(&compare_phase(
            &runtime,
            &settings,
            &canned,
            (&emulator, &emulator_state),
            &server_tids,
        ));
    }
    if settings.phase("bulk") {
        let _ = writeln!(report, "\n### Bulk recording\n");
        report.push_str(&bulk_phase(&runtime, &settings, &bulk, &bulk_emulator, &server_tids));
    }
    let (rss, hwm) = rss_kib();
    let _ = writeln!(
        report,
        "\nProcess at the end: VmRSS {rss} KiB, VmHWM {hwm} KiB (servers and emulator state included)."
    );
    println!("\n==================== Markdown ====================");
    println!("{report}");
}
