//! The clients: ours (`UsageClient`), the floor (a bare hyper-util client), the floor doing
//! what any typed client must (`floor+serde`, `bounded`) and their requests.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer as HyperTimer};
use killbill_usage::client::{
    ClientConfig, GetUsage, Operation, RecordUsage, RequestOptions, TenantCredentials, UserCredentials,
};
use killbill_usage::hyper::{HyperTransport, TokioTimer};
use killbill_usage::models::{RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, UnitType};
use killbill_usage::{UsageClient, UsageWindow};
use tokio::runtime::Runtime;

use crate::common;
use crate::servers::ServerInfo;
use crate::{END, GET_SUBSCRIPTION, POST_ROWS, SEED_RECORDS, START, UNIT};

pub(crate) type RawClient = Client<HttpConnector, Full<Bytes>>;

/// The floor: hyper-util's legacy client with the pool settings of `HyperTransport`'s
/// defaults (15 s idle timeout with its timer, 16 idle per host, TCP_NODELAY, 10 s connect).
pub(crate) fn raw_client() -> RawClient {
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

pub(crate) fn ours(base_url: &str) -> UsageClient {
    let transport = HyperTransport::builder().build().unwrap();
    UsageClient::builder(base_url)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .timer(TokioTimer)
        .build()
        .unwrap()
}

pub(crate) fn config(base_url: &str) -> ClientConfig {
    ClientConfig::new(
        base_url,
        UserCredentials::new("admin", "password"),
        TenantCredentials::new("bob", "lazar"),
    )
    .unwrap()
}

pub(crate) fn subscription(id: &str) -> SubscriptionId {
    id.parse().unwrap()
}

pub(crate) fn window() -> UsageWindow {
    UsageWindow::parse(START, END).unwrap()
}

/// A record of `rows` readings over `units` unit types, at instants with milliseconds, half
/// the amounts with decimals; no tracking id (the client makes one per call).
pub(crate) fn record(subscription_id: SubscriptionId, rows: usize, units: usize) -> SubscriptionUsageRecord {
    common::meter_readings(SubscriptionUsageRecord::builder(subscription_id), rows, units)
}

/// One kind of call, cloned into each worker task.
#[derive(Clone)]
pub(crate) enum Caller {
    /// The client, and what a caller holds: the subscription and the window.
    OursGet(UsageClient, SubscriptionId, UsageWindow),
    OursPost(UsageClient, Arc<SubscriptionUsageRecord>),
    Raw {
        client: Box<RawClient>,
        template: Arc<Request<Bytes>>,
        expect: StatusCode,
        codec: Codec,
        /// `bounded`: the URI made on each call and the exchange bounded by this timeout.
        bound: Option<Duration>,
    },
}

/// What the floor does besides sending the prebuilt request and reading the whole answer.
#[derive(Clone)]
pub(crate) enum Codec {
    /// Nothing: the floor.
    Nothing,
    /// `floor+serde`: parses the answer into the model's `RolledUpUsage`, as a GET's caller needs.
    ParseAnswer,
    /// `floor+serde`: serializes the record into the body on each call (its tracking id is
    /// fixed, as the floor's is), as a POST's caller needs.
    Serialize(Arc<SubscriptionUsageRecord>),
}

impl Caller {
    /// One call.
    pub(crate) async fn call(&self) -> Result<(), String> {
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
                codec,
                bound,
            } => {
                let mut request = copy(template);
                if let Codec::Serialize(record) = codec {
                    let body = serde_json::to_vec(&**record).map_err(|e| e.to_string())?;
                    *request.body_mut() = Full::new(Bytes::from(body));
                }
                let (status, body) = match bound {
                    Some(bound) => {
                        *request.uri_mut() = remade(request.uri());
                        tokio::time::timeout(*bound, exchange(client, request))
                            .await
                            .map_err(|e| e.to_string())??
                    }
                    None => exchange(client, request).await?,
                };
                if let Codec::ParseAnswer = codec {
                    let usage: RolledUpUsage = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                    black_box(usage);
                }
                black_box(body);
                if status != *expect {
                    return Err(format!("status {status}"));
                }
            }
        }
        Ok(())
    }
}

/// A copy of the prebuilt request for one send (the body is shared, not copied).
pub(crate) fn copy(template: &Request<Bytes>) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(template.body().clone()));
    *request.method_mut() = template.method().clone();
    *request.uri_mut() = template.uri().clone();
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = template.headers().clone();
    request
}

/// Sends `request` and reads the whole answer. (A function of its own, not a block inside
/// `Caller::call`: benches/load-callgrind.sh counts what runs inside `Caller::call*`, and a
/// nested closure of that name would turn the count off while it runs.)
async fn exchange(client: &RawClient, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

/// `uri` made again from its text, as a client that builds its requests must on each call:
/// the path and query through `http`'s `PathAndQuery` (the only way to make one from text,
/// which checks every byte), joined to the scheme and authority.
fn remade(uri: &http::Uri) -> http::Uri {
    let mut parts = uri.clone().into_parts();
    let text = parts
        .path_and_query
        .as_ref()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(text).unwrap());
    http::Uri::from_parts(parts).unwrap()
}

/// Writes the usage the GETs read: [`SEED_RECORDS`] records of [`POST_ROWS`] rows.
pub(crate) fn seed(runtime: &Runtime, emulator: &ServerInfo) {
    runtime.block_on(async {
        let client = ours(&emulator.url());
        let seed = record(subscription(GET_SUBSCRIPTION), POST_ROWS, 2);
        for _ in 0..SEED_RECORDS {
            client.record_usage(&seed).await.unwrap();
        }
    });
}

/// `ours` reading the roll-up of [`UNIT`] of [`GET_SUBSCRIPTION`].
pub(crate) fn ours_get(client: &UsageClient) -> Caller {
    Caller::OursGet(client.clone(), subscription(GET_SUBSCRIPTION), window())
}

/// The floor sending `template`, expecting `expect`, doing `codec` besides.
pub(crate) fn floor(client: &RawClient, template: Arc<Request<Bytes>>, expect: StatusCode, codec: Codec) -> Caller {
    Caller::Raw {
        client: Box::new(client.clone()),
        template,
        expect,
        codec,
        bound: None,
    }
}

/// `bounded`: `floor+serde` (`codec`) that, besides, makes the request's URI from its text on
/// each call and bounds each exchange with `tokio::time::timeout` (`HyperTransport`'s default
/// request timeout): the least a client whose calls take typed values and end in a finite time
/// does on each call, on this stack.
pub(crate) fn bounded(client: &RawClient, template: Arc<Request<Bytes>>, expect: StatusCode, codec: Codec) -> Caller {
    Caller::Raw {
        client: Box::new(client.clone()),
        template,
        expect,
        codec,
        bound: Some(killbill_usage::hyper::DEFAULT_REQUEST_TIMEOUT),
    }
}

/// The request `ours` sends for a GET, prebuilt.
pub(crate) fn get_template(base_url: &str) -> Arc<Request<Bytes>> {
    let unit = UnitType::new(UNIT).unwrap();
    let operation = GetUsage::new(subscription(GET_SUBSCRIPTION), &unit, window()).unwrap();
    Arc::new(operation.to_request(&config(base_url), &RequestOptions::new()).unwrap())
}

/// The request `ours` sends for a POST of `record`, prebuilt (with one tracking id), and the
/// record with that tracking id.
pub(crate) fn post_template(
    base_url: &str,
    record: &SubscriptionUsageRecord,
) -> (Arc<Request<Bytes>>, Arc<SubscriptionUsageRecord>) {
    let operation = RecordUsage::new(record);
    let request = operation.to_request(&config(base_url), &RequestOptions::new()).unwrap();
    let tracked = record.clone().with_tracking_id(operation.tracking_id().clone());
    (Arc::new(request), Arc::new(tracked))
}
