//! Micro benchmarks of the hot paths, each next to its FLOOR: the same work done by serde_json
//! on plain `#[derive(Serialize, Deserialize)]` structs of the same shape (`String` ids and
//! dates, `f64` amounts), or by hand-built `http::Request`s. Each group prints ours and the
//! floor side by side, measured in the same run.
//!
//! `cargo bench --bench micro` runs everything (about two minutes on two cores); see
//! `BENCHMARKS.md` for the numbers and how they were taken.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::future::{Future, IntoFuture};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, Response};
use killbill_usage::client::{
    ClientConfig, GetAllUsage, GetUsage, Operation, RecordOutcome, RecordUsage, RequestOptions, Sleep,
    TenantCredentials, Timer, UserCredentials,
};
use killbill_usage::models::{KillBillError, RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, UnitType};
use killbill_usage::{RetryPolicy, Transport, TransportError, UsageClient, UsageWindow};
use serde::{Deserialize, Serialize};

const BASE_URL: &str = "http://127.0.0.1:8080";
const SUBSCRIPTION: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const TRACKING_ID: &str = "meter-2013-08-01-host-17";

// The headers the floor writes, as the contract names them.
const API_KEY: HeaderName = HeaderName::from_static("x-killbill-apikey");
const API_SECRET: HeaderName = HeaderName::from_static("x-killbill-apisecret");
const CREATED_BY: HeaderName = HeaderName::from_static("x-killbill-createdby");
const USER_AGENT_VALUE: &str = concat!("usage-core/", env!("CARGO_PKG_VERSION"));

// ----------------------------------------------------------------------------------------
// Fixtures
// ----------------------------------------------------------------------------------------

fn subscription() -> SubscriptionId {
    SUBSCRIPTION.parse().unwrap()
}

fn config() -> ClientConfig {
    ClientConfig::new(
        BASE_URL,
        UserCredentials::new("admin", "password"),
        TenantCredentials::new("bob", "lazar"),
    )
    .unwrap()
}

fn window() -> UsageWindow {
    UsageWindow::parse("2013-08-01T00:00:00.000Z", "2013-09-01T00:00:00.000Z").unwrap()
}

/// A meter's record: `n` readings spread over four unit types, at instants with milliseconds
/// (the 0.24 wire form); half of the amounts integral (`42`), half with decimals (`12.375`).
fn record(n: usize) -> SubscriptionUsageRecord {
    common::meter_readings(
        SubscriptionUsageRecord::builder(subscription()).tracking_id(TRACKING_ID),
        n,
        4,
    )
}

/// A 0.24 server's answer with `units` rolled-up units: scale-9 sums, date-times with millis.
fn rolled_up_body(units: usize) -> String {
    let mut body = format!(
        r#"{{"subscriptionId":"{SUBSCRIPTION}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":["#
    );
    for i in 0..units {
        if i > 0 {
            body.push(',');
        }
        let amount = match i % 3 {
            0 => format!("{}.000000000", 15 + i),
            1 => format!("{}.500000000", i * 37),
            _ => format!("{}.333333333", i * 1013),
        };
        body.push_str(&format!(r#"{{"unitType":"api-calls-{i}","amount":{amount}}}"#));
    }
    body.push_str("]}");
    body
}

/// Kill Bill's answer to a duplicate tracking id.
const ERROR_BODY: &str = r#"{"className":"org.killbill.billing.usage.api.UsageApiException","code":50000,"message":"A usage record with tracking ID meter-2013-08-01-host-17 already exists","causeClassName":null,"causeMessage":null,"stackTrace":[]}"#;

// ----------------------------------------------------------------------------------------
// The floor: plain serde structs of the same shapes
// ----------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorRecordBody {
    subscription_id: String,
    tracking_id: String,
    unit_usage_records: Vec<FloorUnitUsageRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorUnitUsageRecord {
    unit_type: String,
    usage_records: Vec<FloorUsageRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorUsageRecord {
    record_date: String,
    amount: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorRolledUpUsage {
    subscription_id: String,
    start_date: String,
    end_date: String,
    rolled_up_units: Vec<FloorRolledUpUnit>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorRolledUpUnit {
    unit_type: String,
    amount: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorKillBillError {
    class_name: String,
    code: Option<i64>,
    message: Option<String>,
    cause_class_name: Option<String>,
    cause_message: Option<String>,
    stack_trace: Vec<FloorStackTraceElement>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FloorStackTraceElement {
    class_name: Option<String>,
    file_name: Option<String>,
    line_number: Option<i64>,
    method_name: Option<String>,
    native_method: bool,
}

fn floor_record(record: &SubscriptionUsageRecord) -> FloorRecordBody {
    FloorRecordBody {
        subscription_id: record.subscription_id().to_string(),
        tracking_id: record.tracking_id().unwrap().to_string(),
        unit_usage_records: record
            .unit_usage_records()
            .iter()
            .map(|unit| FloorUnitUsageRecord {
                unit_type: unit.unit_type().to_string(),
                usage_records: unit
                    .usage_records()
                    .iter()
                    .map(|r| FloorUsageRecord {
                        record_date: r.record_date().to_string(),
                        amount: r.amount().to_string().parse().unwrap(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The floor of building a request: the same URI, headers and body, with every header value
/// prepared in advance and no validation at all.
struct FloorRequests {
    authorization: HeaderValue,
    api_key: HeaderValue,
    api_secret: HeaderValue,
    created_by: HeaderValue,
}

impl FloorRequests {
    fn new(template: &Request<Bytes>) -> Self {
        let h = template.headers();
        FloorRequests {
            authorization: h[AUTHORIZATION].clone(),
            api_key: h[API_KEY].clone(),
            api_secret: h[API_SECRET].clone(),
            created_by: h[CREATED_BY].clone(),
        }
    }

    fn request(&self, method: Method, uri: String, body: Bytes) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = http::Uri::try_from(uri).unwrap();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(API_KEY, self.api_key.clone());
        headers.insert(API_SECRET, self.api_secret.clone());
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        request
    }

    fn post(&self, body: &FloorRecordBody) -> Request<Bytes> {
        let body = Bytes::from(serde_json::to_vec(body).unwrap());
        let mut request = self.request(Method::POST, format!("{BASE_URL}/1.0/kb/usages"), body);
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CREATED_BY, self.created_by.clone());
        request
    }

    fn get(&self, unit: Option<&str>) -> Request<Bytes> {
        let uri = match unit {
            Some(unit) => format!(
                "{BASE_URL}/1.0/kb/usages/{SUBSCRIPTION}/{unit}?startDate=2013-08-01T00:00:00.000Z&endDate=2013-09-01T00:00:00.000Z"
            ),
            None => format!(
                "{BASE_URL}/1.0/kb/usages/{SUBSCRIPTION}?startDate=2013-08-01T00:00:00.000Z&endDate=2013-09-01T00:00:00.000Z"
            ),
        };
        self.request(Method::GET, uri, Bytes::new())
    }
}

// ----------------------------------------------------------------------------------------
// A canned transport, a timer that is never needed, and a poll-once executor
// ----------------------------------------------------------------------------------------

/// Answers at once: 201 to POSTs, a one-unit roll-up to GETs.
#[derive(Debug)]
struct Canned {
    rolled_up: Bytes,
}

type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, TransportError>> + Send + 'a>>;

impl Transport for Canned {
    // What `#[async_trait]` expands to, written out (async-trait is not a dependency here).
    fn send<'life0, 'async_trait>(&'life0 self, request: Request<Bytes>) -> SendFuture<'async_trait>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let response = if request.method() == Method::POST {
                Response::builder().status(201).body(Bytes::new())
            } else {
                Response::builder().status(200).body(self.rolled_up.clone())
            };
            Ok(response.unwrap())
        })
    }
}

/// A timer whose sleep is never needed: the canned transport always answers first.
#[derive(Debug)]
struct UnusedTimer;

impl Timer for UnusedTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, _duration: Duration) -> Sleep {
        Box::pin(std::future::pending())
    }
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future that must be ready at once (everything here is): no runtime in the numbers.
fn run_ready<F: IntoFuture>(future: F, waker: &Waker) -> F::Output {
    let mut future = pin!(future.into_future());
    match future.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the canned transport answers at once"),
    }
}

fn client(timer: bool, rolled_up: &Bytes) -> UsageClient {
    let builder = UsageClient::builder(BASE_URL)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(Canned {
            rolled_up: rolled_up.clone(),
        });
    let builder = if timer {
        builder.timer(UnusedTimer)
    } else {
        builder.retry_policy(RetryPolicy::none().without_deadline())
    };
    builder.build().unwrap()
}

// ----------------------------------------------------------------------------------------
// The measured calls of the two target pairs, kept out of line so that a profiler can count
// each one's instructions per call (`valgrind --tool=callgrind`, see BENCHMARKS.md)
// ----------------------------------------------------------------------------------------

#[inline(never)]
fn parse_ours(body: &[u8]) -> usize {
    let usage: RolledUpUsage = serde_json::from_slice(body).unwrap();
    usage.rolled_up_units().len()
}

#[inline(never)]
fn parse_floor(body: &[u8]) -> usize {
    let usage: FloorRolledUpUsage = serde_json::from_slice(body).unwrap();
    usage.rolled_up_units.len()
}

#[inline(never)]
fn serialize_ours(record: &SubscriptionUsageRecord) -> usize {
    serde_json::to_vec(record).unwrap().len()
}

#[inline(never)]
fn serialize_floor(record: &FloorRecordBody) -> usize {
    serde_json::to_vec(record).unwrap().len()
}

/// One record call through the client; its out-of-line twins differ in what they return so
/// that the linker cannot fold them into one symbol.
#[inline(never)]
fn record_no_timer(client: &UsageClient, record: &SubscriptionUsageRecord, waker: &Waker) -> u32 {
    run_ready(client.record_usage(record), waker).unwrap().attempts()
}

#[inline(never)]
fn record_unused_timer(client: &UsageClient, record: &SubscriptionUsageRecord, waker: &Waker) -> bool {
    run_ready(client.record_usage(record), waker)
        .unwrap()
        .already_recorded()
}

#[inline(never)]
fn record_sans_io(
    record: &SubscriptionUsageRecord,
    config: &ClientConfig,
    transport: &Canned,
    waker: &Waker,
) -> RecordOutcome {
    let operation = RecordUsage::new(record);
    let request = operation.to_request(config, &RequestOptions::new()).unwrap();
    let response = run_ready(transport.send(request), waker).unwrap();
    operation.parse(response).unwrap()
}

#[inline(never)]
fn get_no_timer(client: &UsageClient, waker: &Waker) -> usize {
    let usage = run_ready(
        client.get_usage(subscription(), "api-calls-0", window()).unwrap(),
        waker,
    )
    .unwrap();
    usage.rolled_up_units().len()
}

#[inline(never)]
fn get_unused_timer(client: &UsageClient, waker: &Waker) -> SubscriptionId {
    let usage = run_ready(
        client.get_usage(subscription(), "api-calls-0", window()).unwrap(),
        waker,
    )
    .unwrap();
    usage.subscription_id()
}

#[inline(never)]
fn get_sans_io(unit: &UnitType, config: &ClientConfig, transport: &Canned, waker: &Waker) -> RolledUpUsage {
    let operation = GetUsage::new(subscription(), unit, window()).unwrap();
    let request = operation.to_request(config, &RequestOptions::new()).unwrap();
    let response = run_ready(transport.send(request), waker).unwrap();
    operation.parse(response).unwrap()
}

// ----------------------------------------------------------------------------------------
// The benchmarks
// ----------------------------------------------------------------------------------------

fn requests(c: &mut Criterion) {
    let config = config();
    let options = RequestOptions::new();
    let record = record(1);
    let unit = UnitType::new("api-calls").unwrap();
    let record_op = RecordUsage::new(&record);
    let get_op = GetUsage::new(subscription(), &unit, window()).unwrap();
    let get_all_op = GetAllUsage::new(subscription(), window());
    let floor = FloorRequests::new(&record_op.to_request(&config, &options).unwrap());
    let floor_body = floor_record(&record);

    let mut group = c.benchmark_group("request");
    group.bench_function(BenchmarkId::new("ours", "record_usage_1"), |b| {
        b.iter(|| record_op.to_request(black_box(&config), &options).unwrap())
    });
    group.bench_function(BenchmarkId::new("floor", "record_usage_1"), |b| {
        b.iter(|| floor.post(black_box(&floor_body)))
    });
    group.bench_function(BenchmarkId::new("ours", "get_usage"), |b| {
        b.iter(|| get_op.to_request(black_box(&config), &options).unwrap())
    });
    group.bench_function(BenchmarkId::new("floor", "get_usage"), |b| {
        b.iter(|| floor.get(black_box(Some("api-calls"))))
    });
    group.bench_function(BenchmarkId::new("ours", "get_all_usage"), |b| {
        b.iter(|| get_all_op.to_request(black_box(&config), &options).unwrap())
    });
    group.bench_function(BenchmarkId::new("floor", "get_all_usage"), |b| {
        b.iter(|| floor.get(black_box(None)))
    });
    group.finish();
}

fn parse_rolled_up(c: &mut Criterion) {
    let unit = UnitType::new("api-calls").unwrap();
    let get_op = GetUsage::new(subscription(), &unit, window()).unwrap();
    let mut group = c.benchmark_group("parse_rolled_up");
    for units in [1usize, 1000] {
        let body = Bytes::from(rolled_up_body(units));
        // Both sides read the same thing.
        let ours: RolledUpUsage = serde_json::from_slice(&body).unwrap();
        let floor: FloorRolledUpUsage = serde_json::from_slice(&body).unwrap();
        assert_eq!(ours.rolled_up_units().len(), floor.rolled_up_units.len());
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("ours", units), &body, |b, body| {
            b.iter(|| parse_ours(black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("floor", units), &body, |b, body| {
            b.iter(|| parse_floor(black_box(body)))
        });
        // The whole `Operation::parse`, response included.
        group.bench_with_input(BenchmarkId::new("ours_operation_parse", units), &body, |b, body| {
            b.iter(|| {
                let response = Response::builder().status(200).body(body.clone()).unwrap();
                get_op.parse(black_box(response)).unwrap()
            })
        });
    }
    group.finish();
}

fn serialize_record(c: &mut Criterion) {
    let config = config();
    let options = RequestOptions::new();
    let floor_requests = FloorRequests::new(&RecordUsage::new(&record(1)).to_request(&config, &options).unwrap());
    let mut group = c.benchmark_group("serialize_record");
    for n in [1usize, 100, 10_000] {
        let record = record(n);
        let floor = floor_record(&record);
        let ours_len = serde_json::to_vec(&record).unwrap().len();
        group.throughput(Throughput::Bytes(ours_len as u64));
        group.bench_with_input(BenchmarkId::new("ours", n), &record, |b, record| {
            b.iter(|| serialize_ours(black_box(record)))
        });
        group.bench_with_input(BenchmarkId::new("floor", n), &floor, |b, floor| {
            b.iter(|| serialize_floor(black_box(floor)))
        });
        // The whole `RecordUsage::to_request` (body, URI and headers), and its floor.
        let operation = RecordUsage::new(&record);
        group.bench_with_input(BenchmarkId::new("ours_to_request", n), &operation, |b, operation| {
            b.iter(|| operation.to_request(black_box(&config), &options).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("floor_to_request", n), &floor, |b, floor| {
            b.iter(|| floor_requests.post(black_box(floor)))
        });
    }
    group.finish();
}

fn parse_error(c: &mut Criterion) {
    let body = Bytes::from_static(ERROR_BODY.as_bytes());
    let mut group = c.benchmark_group("parse_error");
    group.bench_function("ours", |b| {
        b.iter(|| serde_json::from_slice::<KillBillError>(black_box(&body)).unwrap())
    });
    group.bench_function("floor", |b| {
        b.iter(|| serde_json::from_slice::<FloorKillBillError>(black_box(&body)).unwrap())
    });
    // The whole typed error of a 409: status, headers, raw body and the parsed Kill Bill error
    // (the operation made once, outside the loop: making its window is not the error's work).
    let operation = GetAllUsage::new(subscription(), window());
    group.bench_function("ours_api_error", |b| {
        b.iter(|| {
            let response = Response::builder().status(409).body(body.clone()).unwrap();
            operation.parse(black_box(response)).unwrap_err()
        })
    });
    group.finish();
}

fn client_calls(c: &mut Criterion) {
    let rolled_up = Bytes::from(rolled_up_body(1));
    let waker = Waker::from(Arc::new(NoopWake));
    let record = record(1);
    let config = config();
    let transport = Canned {
        rolled_up: rolled_up.clone(),
    };
    let unit = UnitType::new("api-calls-0").unwrap();

    let mut group = c.benchmark_group("client");
    // The sans-IO floor of one call: build the request, send it, parse the answer.
    group.bench_function(BenchmarkId::new("sans_io", "record_usage"), |b| {
        b.iter(|| record_sans_io(black_box(&record), &config, &transport, &waker))
    });
    let no_timer = client(false, &rolled_up);
    let unused_timer = client(true, &rolled_up);
    for client in [&no_timer, &unused_timer] {
        assert_eq!(run_ready(client.record_usage(&record), &waker).unwrap().attempts(), 1);
        assert_eq!(
            run_ready(client.get_all_usage(subscription(), window()), &waker)
                .unwrap()
                .rolled_up_units()
                .len(),
            1
        );
    }
    group.bench_function(BenchmarkId::new("no_timer", "record_usage"), |b| {
        b.iter(|| record_no_timer(&no_timer, black_box(&record), &waker))
    });
    group.bench_function(BenchmarkId::new("unused_timer", "record_usage"), |b| {
        b.iter(|| record_unused_timer(&unused_timer, black_box(&record), &waker))
    });
    group.bench_function(BenchmarkId::new("sans_io", "get_usage"), |b| {
        b.iter(|| get_sans_io(black_box(&unit), &config, &transport, &waker))
    });
    group.bench_function(BenchmarkId::new("no_timer", "get_usage"), |b| {
        b.iter(|| get_no_timer(black_box(&no_timer), &waker))
    });
    group.bench_function(BenchmarkId::new("unused_timer", "get_usage"), |b| {
        b.iter(|| get_unused_timer(black_box(&unused_timer), &waker))
    });
    // The same call driven by a current-thread tokio runtime, for scale.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let client = unused_timer;
    group.bench_function(BenchmarkId::new("unused_timer_tokio_block_on", "get_usage"), |b| {
        b.iter(|| {
            runtime
                .block_on(
                    client
                        .get_usage(black_box(subscription()), "api-calls-0", window())
                        .unwrap()
                        .into_future(),
                )
                .unwrap()
        })
    });
    group.finish();
}

fn settings() -> Criterion {
    // Short, so that the whole suite runs in about two minutes on two cores; the command line
    // (`-- --warm-up-time 1 --measurement-time 3`) overrides these.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = settings();
    targets = requests, parse_rolled_up, serialize_record, parse_error, client_calls
}
criterion_main!(benches);
