//! The stateful emulator of Kill Bill's usage endpoints.

// The error side of the internal helpers is the response to send: built once per request.
#![allow(clippy::result_large_err)]

mod auth;
mod bind;
pub(crate) mod contract;
mod dates;
mod faults;
mod respond;
mod store;
mod syntax;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::value::RawValue;
use usage_core::{Secret, Transport, TransportError};
use usage_models::{KillBillError, SubscriptionId};
use uuid::Uuid;

use crate::java::kill_bill_sum_string;
use auth::{Credentials, Tenant};
use bind::{BoundAmount, BoundRecord};
pub use faults::Fault;
use respond::{class, empty, illegal_argument, simple_error, ErrorStyle};
use store::{Row, Store, Subscription};

use contract::{
    COMMENT, CREATED_BY, DUPLICATE_TRACKING_ID_CODE, ENCODING, MAX_CREATED_BY_CHARS, MAX_TRACKING_ID_CHARS,
    MAX_UNIT_TYPE_CHARS, REASON,
};

const USAGES: &str = "/1.0/kb/usages";
const ADMIN_SUBSCRIPTIONS: &str = "/emulator/subscriptions";

/// The wire format the emulator speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireFormat {
    /// Kill Bill 0.24 and later: date-times (`2013-08-01T00:00:00.000Z`) and decimal amounts
    /// written as Java's `BigDecimal` at scale 9 (`15.000000000`).
    #[default]
    V024,
    /// Kill Bill 0.22 and earlier: `yyyy-MM-dd` dates in and out (query dates strictly so),
    /// and 64-bit integer amounts (a fraction sent is truncated, as Jackson's
    /// `ACCEPT_FLOAT_AS_INT` does).
    Legacy022,
}

/// How the emulator checks a POST's tracking id against the stored rows (docs/contract.md §4 row 14).
///
/// ```
/// use std::time::Duration;
/// use usage_transport_memory::{DuplicateCheck, InMemoryKillBill};
///
/// // Kill Bill: check, 50 ms of processing, insert; two overlapping POSTs with the same
/// // tracking id can both be stored.
/// let kb = InMemoryKillBill::builder()
///     .duplicate_check(DuplicateCheck::KillBill { processing: Duration::from_millis(50) })
///     .build();
/// assert_ne!(kb.duplicate_check(), DuplicateCheck::Atomic);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DuplicateCheck {
    /// The check and the insert are one step (under one lock): of two POSTs with the same
    /// tracking id, however they overlap, exactly one is stored. Stricter than Kill Bill; the
    /// default, so that a test of a client's retries isolates the client.
    #[default]
    Atomic,
    /// As Kill Bill does (`DefaultUsageUserApi.recordUsage`: `recordsWithTrackingIdExist`, a
    /// `SELECT`, then `DefaultRolledUpUsageDao.record`, the `INSERT`s; no transaction around
    /// both, no unique index): the check, then `processing` (the time
    /// Kill Bill spends between them, waited by [`InMemoryKillBill::process`] and the
    /// [`Transport`] implementation), then the insert without checking again. Two POSTs with
    /// the same tracking id whose processing overlaps are both stored.
    KillBill {
        /// The time between the check and the insert.
        processing: Duration,
    },
}

/// What went wrong with a call of the emulator's Rust API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmulatorError {
    /// No tenant has this API key.
    #[error("no tenant has the API key {0:?}")]
    UnknownTenant(String),
    /// The subscription does not exist.
    #[error("subscription {0} does not exist")]
    UnknownSubscription(SubscriptionId),
    /// The subscription exists in another tenant.
    #[error("subscription {0} belongs to another tenant")]
    OtherTenant(SubscriptionId),
}

/// A subscription to create with [`InMemoryKillBill::add_subscription`].
///
/// ```
/// use usage_transport_memory::{InMemoryKillBill, NewSubscription};
///
/// let kb = InMemoryKillBill::new();
/// let id = kb
///     .add_subscription(
///         NewSubscription::new().effective_end_date("2013-09-01T00:00:00Z".parse().unwrap()),
///     )
///     .unwrap();
/// assert!(kb.has_subscription(id));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct NewSubscription {
    id: Option<SubscriptionId>,
    tenant: Option<String>,
    effective_end_date: Option<DateTime<Utc>>,
}

impl NewSubscription {
    /// A subscription with a random id in the first tenant, never ending.
    pub fn new() -> Self {
        NewSubscription::default()
    }

    /// Its id (random by default).
    pub fn id(mut self, id: SubscriptionId) -> Self {
        self.id = Some(id);
        self
    }

    /// The API key of its tenant (the first tenant by default).
    pub fn tenant(mut self, api_key: impl Into<String>) -> Self {
        self.tenant = Some(api_key.into());
        self
    }

    /// Its effective end date: usage dated strictly after it is refused with 400.
    pub fn effective_end_date(mut self, at: DateTime<Utc>) -> Self {
        self.effective_end_date = Some(at);
        self
    }
}

/// One stored usage row, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredRow {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The unit type.
    pub unit_type: String,
    /// The record date (a bare date is midnight UTC).
    pub record_date: DateTime<Utc>,
    /// The amount, as the `decimal(18,9)` column keeps it.
    pub amount: Decimal,
    /// The tracking id (generated by the emulator when the request had none).
    pub tracking_id: String,
    /// `X-Killbill-CreatedBy`, decoded.
    pub created_by: String,
    /// `X-Killbill-Reason`, decoded.
    pub reason: Option<String>,
    /// `X-Killbill-Comment`, decoded.
    pub comment: Option<String>,
}

/// An in-memory emulator of Kill Bill's usage endpoints (the contract in `docs/contract.md`), with
/// authentication, tenants, subscriptions and fault injection.
///
/// - As a [`Transport`]: give it to a `UsageClient` (it is cheap to clone: clones share the
///   same state).
/// - As a plain function: [`handle`](Self::handle) answers one `http::Request<Bytes>`, so an
///   HTTP server can serve the very same logic ([`serve`](Self::serve) also applies the
///   injected faults).
///
/// Defaults: user `admin`/`password`, tenant `bob`/`lazar`, [`WireFormat::V024`], no path
/// prefix, no auto-provisioning (an unknown subscription is a 404).
///
/// Beyond `docs/contract.md` (§2 only says 500), where Kill Bill's answer comes from its database:
/// - a `unitType` over 255 characters, a `trackingId` over 128 or an `X-Killbill-CreatedBy`
///   over 50 characters make the insert fail: 500 with `className`
///   `org.jdbi.v3.core.statement.UnableToExecuteStatementException`, message
///   `com.mysql.cj.jdbc.exceptions.MysqlDataTruncation: Data truncation: Data too long for
///   column 'unit_type' at row 1` and that cause (what Kill Bill on MySQL answers; columns
///   `created_by`, then per record `unit_type`, `amount`, `tracking_id`);
/// - an amount with more than 9 integer digits is `Out of range value for column 'amount'`
///   (same 500); more than 9 fraction digits are rounded half away from zero, as MySQL does;
/// - the duplicate tracking-id check and the insert are atomic by default, which Kill Bill's
///   are not: [`DuplicateCheck::KillBill`] makes them two steps with a processing time
///   between them, as in Kill Bill.
///
/// Jackson's and Joda's answers, and where they still differ:
/// - a body is bound as Jackson's streaming binder does: the first problem in document order
///   wins; a syntax error inside a nested value is a `JsonMappingException` whose cause is
///   the parser's `JsonParseException` (or `JsonEOFException`) and whose message ends with
///   the reference chain (`SubscriptionUsageRecordJson["unitUsageRecords"]->java.util.ArrayList[0]->...`,
///   nested classes written `SubscriptionUsageRecordJson$UnitUsageRecordJson` as
///   `Class.getName()` does); one in the root object stays a bare `JsonParseException`;
/// - an unknown property met before every `@JsonCreator` property of its object was seen is
///   held, as Jackson buffers it, and reported once they all are or at the end of the object,
///   with the parser's location then (a problem met in between comes first); one met after
///   them is reported at once, past the first token of its value;
/// - the parser's messages and locations are Jackson's (as written in jackson-core 2.13's
///   source: not checked against a running Jackson) for the usual mistakes (a missing comma or
///   colon, an unquoted name, an unknown token, a leading zero, a bad escape, a control
///   character, the end of input); rarer ones (an invalid `\u` escape, a lone surrogate, a malformed number
///   other than a leading zero) keep serde_json's wording: the contract (§4 row 1) asks only
///   that the message describe the problem;
/// - a record date with a field out of range is wrapped with Joda's
///   `org.joda.time.IllegalFieldValueException` as the cause; a *query* date out of range
///   answers `className` `java.lang.IllegalArgumentException` (the real server names the
///   subclass, `IllegalFieldValueException`), because the contract (§3 row 2) names
///   `IllegalArgumentException` for every malformed query date;
/// - ISO week dates (`2013-W31-4`, `2013-W31` = its Thursday) are read as Joda reads them;
/// - a path subscription id that matches `\w+-\w+-\w+-\w+-\w+` but that `UUID.fromString`
///   refuses is a 404 with an empty body (JAX-RS's path-parameter conversion), checked before
///   the dates; `1-2-3-4-5` is a UUID.
///
/// ```
/// use usage_transport_memory::InMemoryKillBill;
///
/// let kb = InMemoryKillBill::new();
/// let subscription = kb.create_subscription();
/// let request = http::Request::post("http://localhost/1.0/kb/usages")
///     .header("authorization", "Basic YWRtaW46cGFzc3dvcmQ=") // admin:password
///     .header("x-killbill-apikey", "bob")
///     .header("x-killbill-apisecret", "lazar")
///     .header("x-killbill-createdby", "me")
///     .header("content-type", "application/json")
///     .body(bytes::Bytes::from(format!(
///         r#"{{"subscriptionId":"{subscription}","unitUsageRecords":[{{"unitType":"gallons",
///             "usageRecords":[{{"recordDate":"2013-08-01","amount":10}}]}}]}}"#
///     )))
///     .unwrap();
/// let response = kb.handle(request);
/// assert_eq!(response.status(), 201);
/// assert!(response.body().is_empty());
/// assert_eq!(kb.rows(subscription)[0].amount.to_string(), "10");
/// ```
#[derive(Clone)]
pub struct InMemoryKillBill {
    inner: Arc<Inner>,
}

struct Inner {
    credentials: RwLock<Credentials>,
    store: RwLock<Store>,
    faults: Mutex<VecDeque<Fault>>,
    latency: Mutex<Duration>,
    duplicate_check: Mutex<DuplicateCheck>,
    auto_provision: AtomicBool,
    format: WireFormat,
    path_prefix: String,
}

impl fmt::Debug for InMemoryKillBill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenants: Vec<String> = self.credentials().tenants.iter().map(|t| t.api_key.clone()).collect();
        let store = self.store();
        f.debug_struct("InMemoryKillBill")
            .field("format", &self.inner.format)
            .field("tenants", &tenants)
            .field("subscriptions", &store.subscriptions.len())
            .field("rows", &store.rows)
            .finish_non_exhaustive()
    }
}

impl Default for InMemoryKillBill {
    fn default() -> Self {
        InMemoryKillBill::new()
    }
}

/// Builds an [`InMemoryKillBill`]; see [`InMemoryKillBill::builder`].
#[derive(Debug)]
#[must_use]
pub struct InMemoryKillBillBuilder {
    credentials: Credentials,
    auto_provision: bool,
    format: WireFormat,
    path_prefix: String,
    duplicate_check: DuplicateCheck,
}

impl InMemoryKillBillBuilder {
    /// Adds a user (HTTP Basic auth), or sets the password of the user with that name.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.credentials.set_user(name.into(), password.into());
        self
    }

    /// Adds a tenant with a random tenant id, or sets the secret of the tenant with that key.
    pub fn tenant(mut self, api_key: impl Into<String>, api_secret: impl Into<Secret>) -> Self {
        self.credentials.set_tenant(api_key.into(), api_secret.into());
        self
    }

    /// Removes the default user (`admin`) and tenant (`bob`); add your own.
    pub fn without_default_credentials(mut self) -> Self {
        self.credentials.users.clear();
        self.credentials.tenants.clear();
        self
    }

    /// Creates unknown subscriptions in the requesting tenant on first use (off by default).
    pub fn auto_provision(mut self, on: bool) -> Self {
        self.auto_provision = on;
        self
    }

    /// The wire format (default [`WireFormat::V024`]).
    pub fn wire_format(mut self, format: WireFormat) -> Self {
        self.format = format;
        self
    }

    /// A path prefix the server is mounted under (`/killbill`), as with a client whose base
    /// URL is `http://host/killbill`. Requests outside it get 404.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = prefix.into().trim_end_matches('/').to_string();
        self
    }

    /// How a POST's tracking id is checked (default [`DuplicateCheck::Atomic`]).
    pub fn duplicate_check(mut self, check: DuplicateCheck) -> Self {
        self.duplicate_check = check;
        self
    }

    /// The emulator.
    pub fn build(self) -> InMemoryKillBill {
        InMemoryKillBill {
            inner: Arc::new(Inner {
                credentials: RwLock::new(self.credentials),
                store: RwLock::new(Store::default()),
                faults: Mutex::new(VecDeque::new()),
                latency: Mutex::new(Duration::ZERO),
                duplicate_check: Mutex::new(self.duplicate_check),
                auto_provision: AtomicBool::new(self.auto_provision),
                format: self.format,
                path_prefix: self.path_prefix,
            }),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The decoded query string: `key=value` pairs in order (`+` is a space, as Jersey reads it).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            query
                .unwrap_or("")
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(pair), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of `key` (what `@QueryParam` gives).
    fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Where a request goes.
enum Route<'a> {
    Usages,
    Subscription(&'a str),
    Unit(&'a str, &'a str),
    Admin,
    NotFound,
}

/// `\w+-\w+-\w+-\w+-\w+`, Jersey's template for `{subscriptionId}`.
fn subscription_template(segment: &str) -> bool {
    let parts: Vec<&str> = segment.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn route(path: &str) -> Route<'_> {
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if path == USAGES {
        return Route::Usages;
    }
    if path == ADMIN_SUBSCRIPTIONS {
        return Route::Admin;
    }
    let Some(rest) = path.strip_prefix(USAGES).and_then(|r| r.strip_prefix('/')) else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [id] if subscription_template(id) => Route::Subscription(id),
        [id, unit] if subscription_template(id) && !unit.is_empty() => Route::Unit(id, unit),
        _ => Route::NotFound,
    }
}

/// `java.util.UUID.fromString` (Java 11): five dash-separated hex fields, each masked to its
/// width, so `a-b-c-d-e` is `0000000a-000b-000c-000d-00000000000e`. `None` where Java throws
/// (`IllegalArgumentException` for more than 36 characters, `NumberFormatException` for a field
/// that is not hex or overflows a `long`).
fn java_uuid(text: &str) -> Option<Uuid> {
    if text.len() > 36 {
        return None;
    }
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() != 5 {
        return None;
    }
    let mut values = [0u64; 5];
    for (value, part) in values.iter_mut().zip(&parts) {
        if !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *value = i64::from_str_radix(part, 16).ok()? as u64;
    }
    let high = ((values[0] & 0xffff_ffff) << 32) | ((values[1] & 0xffff) << 16) | (values[2] & 0xffff);
    let low = ((values[3] & 0xffff) << 48) | (values[4] & 0xffff_ffff_ffff);
    Some(Uuid::from_u64_pair(high, low))
}

/// The audit headers of a POST, decoded (`X-Killbill-Encoding: base64`).
struct Audit {
    created_by: String,
    reason: Option<String>,
    comment: Option<String>,
}

fn header_text(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn decode_audit(value: Option<String>, base64: bool, header: &str) -> Result<Option<String>, String> {
    match value {
        Some(value) if base64 => base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map(|bytes| Some(String::from_utf8_lossy(&bytes).into_owned()))
            .map_err(|_| format!("Illegal base64 value in {header}")),
        other => Ok(other),
    }
}

/// One validated usage record of a POST.
struct NewRow {
    unit_type: String,
    at: DateTime<Utc>,
    amount: BoundAmount,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RolledUpJson {
    subscription_id: String,
    start_date: String,
    end_date: String,
    rolled_up_units: Vec<UnitJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UnitJson {
    unit_type: String,
    amount: Box<RawValue>,
}

impl InMemoryKillBill {
    /// An emulator with the defaults: user `admin`/`password`, tenant `bob`/`lazar`.
    pub fn new() -> Self {
        InMemoryKillBill::builder().build()
    }

    /// Starts a builder with the default user and tenant.
    pub fn builder() -> InMemoryKillBillBuilder {
        InMemoryKillBillBuilder {
            credentials: Credentials::default(),
            auto_provision: false,
            format: WireFormat::V024,
            path_prefix: String::new(),
            duplicate_check: DuplicateCheck::Atomic,
        }
        .user("admin", "password")
        .tenant("bob", "lazar")
    }

    fn credentials(&self) -> RwLockReadGuard<'_, Credentials> {
        read(&self.inner.credentials)
    }

    fn store(&self) -> RwLockReadGuard<'_, Store> {
        read(&self.inner.store)
    }

    /// The wire format this emulator speaks.
    pub fn wire_format(&self) -> WireFormat {
        self.inner.format
    }

    /// Adds a user, or sets the password of the user with that name.
    pub fn add_user(&self, name: impl Into<String>, password: impl Into<Secret>) {
        write(&self.inner.credentials).set_user(name.into(), password.into());
    }

    /// Adds a tenant, or sets the secret of the tenant with that key; returns its tenant id.
    pub fn add_tenant(&self, api_key: impl Into<String>, api_secret: impl Into<Secret>) -> Uuid {
        write(&self.inner.credentials).set_tenant(api_key.into(), api_secret.into())
    }

    /// The tenant id of the tenant with `api_key`.
    pub fn tenant_id(&self, api_key: &str) -> Option<Uuid> {
        self.credentials().tenant(api_key).map(|t| t.id)
    }

    /// Turns auto-provisioning on or off: with it, an unknown subscription id is created in
    /// the requesting tenant on first use.
    pub fn set_auto_provision(&self, on: bool) {
        self.inner.auto_provision.store(on, Ordering::SeqCst);
    }

    /// Creates a subscription with a random id in the first tenant (`bob` by default).
    /// Returns a random id that exists nowhere if there is no tenant at all.
    pub fn create_subscription(&self) -> SubscriptionId {
        self.add_subscription(NewSubscription::new())
            .unwrap_or_else(|_| SubscriptionId::random())
    }

    /// Creates a subscription with a random id in the tenant with `api_key`.
    pub fn create_subscription_in(&self, api_key: &str) -> Result<SubscriptionId, EmulatorError> {
        self.add_subscription(NewSubscription::new().tenant(api_key))
    }

    /// Creates a subscription. Adding an id that exists in the same tenant updates its
    /// effective end date when one is given; in another tenant it is refused.
    pub fn add_subscription(&self, new: NewSubscription) -> Result<SubscriptionId, EmulatorError> {
        let tenant = {
            let credentials = self.credentials();
            let tenant = match &new.tenant {
                Some(key) => credentials.tenant(key),
                None => credentials.tenants.first(),
            };
            let Some(tenant) = tenant else {
                return Err(EmulatorError::UnknownTenant(new.tenant.unwrap_or_default()));
            };
            tenant.id
        };
        let id = new.id.unwrap_or_else(SubscriptionId::random);
        let mut store = write(&self.inner.store);
        match store.subscriptions.get_mut(&id.uuid()) {
            Some(existing) if existing.tenant != tenant => Err(EmulatorError::OtherTenant(id)),
            Some(existing) => {
                if new.effective_end_date.is_some() {
                    existing.effective_end = new.effective_end_date;
                }
                Ok(id)
            }
            None => {
                store
                    .subscriptions
                    .insert(id.uuid(), Subscription::new(tenant, new.effective_end_date));
                Ok(id)
            }
        }
    }

    /// Cancels a subscription: usage dated strictly after `effective_end_date` is then refused
    /// with 400 and an empty body.
    pub fn cancel_subscription(
        &self,
        id: SubscriptionId,
        effective_end_date: DateTime<Utc>,
    ) -> Result<(), EmulatorError> {
        let mut store = write(&self.inner.store);
        let subscription = store
            .subscriptions
            .get_mut(&id.uuid())
            .ok_or(EmulatorError::UnknownSubscription(id))?;
        subscription.effective_end = Some(effective_end_date);
        Ok(())
    }

    /// Whether the subscription exists (in any tenant).
    pub fn has_subscription(&self, id: SubscriptionId) -> bool {
        self.store().subscriptions.contains_key(&id.uuid())
    }

    /// How many subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.store().subscriptions.len()
    }

    /// How many usage rows are stored, across all subscriptions.
    pub fn row_count(&self) -> usize {
        self.store().rows
    }

    /// The stored rows of a subscription, by record date then insertion order.
    pub fn rows(&self, id: SubscriptionId) -> Vec<StoredRow> {
        let store = self.store();
        let Some(subscription) = store.subscriptions.get(&id.uuid()) else {
            return Vec::new();
        };
        let mut rows: Vec<(DateTime<Utc>, u64, StoredRow)> = subscription
            .units
            .iter()
            .flat_map(|(unit, rows)| {
                rows.iter().map(move |((at, seq), row)| {
                    let stored = StoredRow {
                        subscription_id: id,
                        unit_type: unit.clone(),
                        record_date: *at,
                        amount: row.amount,
                        tracking_id: row.tracking_id.clone(),
                        created_by: row.created_by.clone(),
                        reason: row.reason.clone(),
                        comment: row.comment.clone(),
                    };
                    (*at, *seq, stored)
                })
            })
            .collect();
        rows.sort_by_key(|(at, seq, _)| (*at, *seq));
        rows.into_iter().map(|(_, _, row)| row).collect()
    }

    /// Forgets every subscription, row and pending fault, and the latency; keeps users,
    /// tenants and settings.
    pub fn reset(&self) {
        *write(&self.inner.store) = Store::default();
        lock(&self.inner.faults).clear();
        *lock(&self.inner.latency) = Duration::ZERO;
    }

    /// Queues `fault` for the next `times` requests (after those already queued).
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut faults = lock(&self.inner.faults);
        faults.extend(std::iter::repeat_n(fault, times));
    }

    /// Fails the next `times` requests with 503 and `Retry-After: <retry_after_seconds>`.
    pub fn fail_next_with_503(&self, times: usize, retry_after_seconds: u64) {
        self.inject(Fault::unavailable(retry_after_seconds), times);
    }

    /// Processes the next `times` requests and loses their answers (see
    /// [`Fault::CommitThenLose`]).
    pub fn commit_then_lose_next(&self, times: usize) {
        self.inject(Fault::CommitThenLose, times);
    }

    /// Takes the next queued fault, if any (for an HTTP server built on
    /// [`handle`](Self::handle)).
    pub fn next_fault(&self) -> Option<Fault> {
        lock(&self.inner.faults).pop_front()
    }

    /// How many faults are still queued.
    pub fn pending_faults(&self) -> usize {
        lock(&self.inner.faults).len()
    }

    /// Removes every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Adds `latency` before every answer of the [`Transport`] implementation (with
    /// `tokio::time::sleep`: it needs a Tokio runtime with time enabled when not zero).
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.inner.latency) = latency;
    }

    /// The added latency.
    pub fn latency(&self) -> Duration {
        *lock(&self.inner.latency)
    }

    /// Sets how a POST's tracking id is checked, for the requests that start from now on.
    pub fn set_duplicate_check(&self, check: DuplicateCheck) {
        *lock(&self.inner.duplicate_check) = check;
    }

    /// How a POST's tracking id is checked.
    pub fn duplicate_check(&self) -> DuplicateCheck {
        *lock(&self.inner.duplicate_check)
    }

    /// Applies the next queued fault, then answers: what the [`Transport`] implementation does
    /// after its latency. A status fault answers without reaching the emulator; a transport
    /// fault fails without reaching it; [`Fault::CommitThenLose`] handles the request then
    /// fails with [`Incomplete`](usage_core::TransportErrorKind::Incomplete);
    /// [`Fault::SlowCommit`] processes it more slowly. Without a fault, the request is
    /// [`process`](Self::process)ed (needs a Tokio runtime with time enabled when there is a
    /// processing time to wait).
    pub async fn serve(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let fault = match self.next_fault() {
            None => return Ok(self.process(request).await),
            Some(Fault::SlowCommit { processing }) => {
                return Ok(self.process_slowly(request, processing).await);
            }
            Some(fault) => fault,
        };
        if let Some(response) = fault.response() {
            return Ok(response);
        }
        if fault == Fault::CommitThenLose {
            let _lost = self.process(request).await;
        }
        Err(fault
            .transport_error()
            .unwrap_or_else(|| TransportError::new(usage_core::TransportErrorKind::Other, "fault injected")))
    }

    /// Answers one request exactly as Kill Bill would (no fault applied), at once: in the
    /// [Kill-Bill-like duplicate check](DuplicateCheck::KillBill) the check and the insert of a
    /// POST are separate steps, but nothing waits between them (use [`process`](Self::process)
    /// for the processing time). Never panics.
    pub fn handle(&self, request: Request<Bytes>) -> Response<Bytes> {
        match self.prepare(request) {
            Prepared::Answer(response) => response,
            Prepared::Post(post) => self.commit(post),
        }
    }

    /// Answers one request as [`handle`](Self::handle) does, taking the time Kill Bill takes:
    /// in the [Kill-Bill-like duplicate check](DuplicateCheck::KillBill), a POST waits its
    /// processing time between the tracking-id check and the insert (with
    /// `tokio::time::sleep`: it needs a Tokio runtime with time enabled).
    pub async fn process(&self, request: Request<Bytes>) -> Response<Bytes> {
        self.process_slowly(request, Duration::ZERO).await
    }

    /// [`process`](Self::process), with `slow` more processing time before the insert: a slow
    /// commit ([`Fault::SlowCommit`]), for an HTTP server that draws its own faults.
    pub async fn process_slowly(&self, request: Request<Bytes>, slow: Duration) -> Response<Bytes> {
        let post = match self.prepare(request) {
            Prepared::Answer(response) => return response,
            Prepared::Post(post) => post,
        };
        match self.duplicate_check() {
            DuplicateCheck::Atomic => {
                if !slow.is_zero() {
                    tokio::time::sleep(slow).await;
                }
                self.commit(post)
            }
            DuplicateCheck::KillBill { processing } => {
                let checked = self.check(&mut write(&self.inner.store), &post);
                let tracking_id = match checked {
                    Ok(tracking_id) => tracking_id,
                    Err(refused) => return refused,
                };
                let wait = processing + slow;
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                insert(&mut write(&self.inner.store), post, tracking_id)
            }
        }
    }

    /// Reads, authenticates and routes a request: the answer, or a valid POST to commit.
    fn prepare(&self, request: Request<Bytes>) -> Prepared {
        let (parts, body) = request.into_parts();
        let full_path = parts.uri.path();
        let prefix = self.inner.path_prefix.as_str();
        let path = match full_path.strip_prefix(prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return Prepared::Answer(empty(StatusCode::NOT_FOUND)),
        };
        let query = Query::parse(parts.uri.query());
        let style = ErrorStyle {
            with_stack_trace: query.first("withStackTrace") == Some("true"),
        };
        let tenant = match self.credentials().authenticate(&parts.headers, full_path) {
            Ok(tenant) => tenant,
            Err(denied) => return Prepared::Answer(denied),
        };
        let method = &parts.method;
        let is_read = method == Method::GET || method == Method::HEAD;
        let mut response = match route(path) {
            Route::Usages | Route::Admin if method == Method::OPTIONS => options("POST,OPTIONS"),
            Route::Usages if method == Method::POST => {
                return match self.record(tenant, &parts.headers, &body, style) {
                    Ok(post) => Prepared::Post(post),
                    Err(response) => Prepared::Answer(response),
                };
            }
            Route::Admin if method == Method::POST => self.admin_subscription(&tenant, &body, style),
            Route::Usages | Route::Admin => respond::method_not_allowed("POST,OPTIONS"),
            Route::Subscription(_) | Route::Unit(..) if method == Method::OPTIONS => options("GET,HEAD,OPTIONS"),
            Route::Subscription(id) if is_read => self.read(&tenant, id, None, &query, style),
            Route::Unit(id, unit) if is_read => {
                let unit = percent_decode_str(unit).decode_utf8_lossy();
                self.read(&tenant, id, Some(&unit), &query, style)
            }
            Route::Subscription(_) | Route::Unit(..) => respond::method_not_allowed("GET,HEAD,OPTIONS"),
            Route::NotFound => empty(StatusCode::NOT_FOUND),
        };
        if method == Method::HEAD {
            *response.body_mut() = Bytes::new();
        }
        Prepared::Answer(response)
    }

    /// The subscription for a request, created when auto-provisioning is on; or the 404/500
    /// Kill Bill answers. The caller holds the write lock.
    fn owned<'s>(
        &self,
        store: &'s mut Store,
        tenant: &Tenant,
        id: Uuid,
        style: ErrorStyle,
    ) -> Result<&'s mut Subscription, Response<Bytes>> {
        if let std::collections::hash_map::Entry::Vacant(entry) = store.subscriptions.entry(id) {
            if !self.inner.auto_provision.load(Ordering::SeqCst) {
                return Err(respond::subscription_not_found(style, &id));
            }
            entry.insert(Subscription::new(tenant.id, None));
        }
        match store.subscriptions.get_mut(&id) {
            Some(subscription) if subscription.tenant == tenant.id => Ok(subscription),
            Some(_) => Err(respond::other_tenant(style, &id, &tenant.id)),
            None => Err(respond::subscription_not_found(style, &id)),
        }
    }

    /// Both GETs (docs/contract.md §3).
    fn read(
        &self,
        tenant: &Tenant,
        id_segment: &str,
        unit: Option<&str>,
        query: &Query,
        style: ErrorStyle,
    ) -> Response<Bytes> {
        // JAX-RS converts the `UUID` path parameter before any resource code runs; a failed
        // conversion of a path parameter is a 404 with an empty body (docs/contract.md §1).
        let Some(id) = java_uuid(id_segment) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let (Some(start), Some(end)) = (query.first("startDate"), query.first("endDate")) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        let legacy = self.inner.format == WireFormat::Legacy022;
        let parse = |text: &str| {
            if legacy {
                dates::parse_strict_date(text).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            } else {
                dates::parse_date_time(text)
            }
        };
        let (start, end) = match (parse(start), parse(end)) {
            (Ok(start), Ok(end)) => (start, end),
            (Err(message), _) | (_, Err(message)) => return illegal_argument(style, message),
        };
        let auto = self.inner.auto_provision.load(Ordering::SeqCst);
        if auto && !self.store().subscriptions.contains_key(&id) {
            let mut store = write(&self.inner.store);
            if let Err(denied) = self.owned(&mut store, tenant, id, style) {
                return denied;
            }
        }
        let store = self.store();
        let subscription = match store.subscriptions.get(&id) {
            None => return respond::subscription_not_found(style, &id),
            Some(s) if s.tenant != tenant.id => return respond::other_tenant(style, &id, &tenant.id),
            Some(s) => s,
        };
        let Some(sums) = subscription.roll_up(start, end, unit) else {
            return overflow(style);
        };
        let format_date = |at: DateTime<Utc>| {
            if legacy {
                at.format("%Y-%m-%d").to_string()
            } else {
                at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }
        };
        let mut units = Vec::with_capacity(sums.len());
        for (unit_type, sum) in sums {
            let text = if legacy {
                Some(sum.trunc().normalize().to_string())
            } else {
                kill_bill_sum_string(sum)
            };
            let Some(amount) = text.and_then(|t| RawValue::from_string(t).ok()) else {
                return overflow(style);
            };
            units.push(UnitJson {
                unit_type: unit_type.to_string(),
                amount,
            });
        }
        let body = RolledUpJson {
            subscription_id: id.to_string(),
            start_date: format_date(start),
            end_date: format_date(end),
            rolled_up_units: units,
        };
        match serde_json::to_vec(&body) {
            Ok(json) => respond::with_body(StatusCode::OK, Bytes::from(json)),
            Err(_) => overflow(style),
        }
    }

    /// `POST /1.0/kb/usages`: docs/contract.md §4 rows 1 to 10 in order; rows 11 to 14 and the insert
    /// are [`commit`](Self::commit)'s.
    fn record(
        &self,
        tenant: Tenant,
        headers: &HeaderMap,
        body: &Bytes,
        style: ErrorStyle,
    ) -> Result<Post, Response<Bytes>> {
        if !is_json(headers) {
            return Err(empty(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        const NO_BODY: &str = "SubscriptionUsageRecordJson body should be specified";
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(illegal_argument(style, NO_BODY));
        }
        let record = match bind::bind(body, self.inner.format) {
            Err(e) => return Err(e.into_response(style)),
            Ok(None) => return Err(illegal_argument(style, NO_BODY)),
            Ok(Some(record)) => record,
        };
        let (subscription, tracking_id, rows) = validate(record, style)?;
        let Some(created_by) = header_text(headers, &CREATED_BY) else {
            return Err(illegal_argument(style, "Header X-Killbill-CreatedBy needs to be set"));
        };
        let base64 = headers
            .get(ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"base64"));
        let audit = (|| {
            Ok::<_, String>(Audit {
                created_by: decode_audit(Some(created_by), base64, "X-Killbill-CreatedBy")?.unwrap_or_default(),
                reason: decode_audit(header_text(headers, &REASON), base64, "X-Killbill-Reason")?,
                comment: decode_audit(header_text(headers, &COMMENT), base64, "X-Killbill-Comment")?,
            })
        })()
        .map_err(|message| illegal_argument(style, message))?;
        Ok(Post {
            tenant,
            subscription,
            tracking_id,
            rows,
            audit,
            style,
        })
    }

    /// docs/contract.md §4 rows 11 to 14 and the insert, without waiting: under one write lock with the atomic
    /// duplicate check, as two steps (the lock released between them) with Kill Bill's.
    fn commit(&self, post: Post) -> Response<Bytes> {
        let mut store = write(&self.inner.store);
        let tracking_id = match self.check(&mut store, &post) {
            Ok(tracking_id) => tracking_id,
            Err(refused) => return refused,
        };
        if matches!(self.duplicate_check(), DuplicateCheck::KillBill { .. }) {
            drop(store);
            store = write(&self.inner.store);
        }
        insert(&mut store, post, tracking_id)
    }

    /// Rows 11 to 14: the tracking id to store (a random one when the request has none), or
    /// the refusal. The caller holds the write lock.
    fn check(&self, store: &mut Store, post: &Post) -> Result<String, Response<Bytes>> {
        let style = post.style;
        let subscription = self.owned(store, &post.tenant, post.subscription, style)?;
        let latest = post.rows.iter().map(|r| r.at).max();
        if let (Some(end), Some(latest)) = (subscription.effective_end, latest) {
            if latest > end {
                return Err(empty(StatusCode::BAD_REQUEST));
            }
        }
        match post.tracking_id.as_deref().filter(|t| !t.is_empty()) {
            Some(id) if subscription.tracking_ids.contains(id) => {
                let mut body = KillBillError::new(
                    class::USAGE_API,
                    format!("A usage record with tracking ID {id} already exists"),
                );
                body.code = Some(DUPLICATE_TRACKING_ID_CODE);
                Err(respond::error(StatusCode::BAD_REQUEST, style, body))
            }
            Some(id) => Ok(id.to_string()),
            None => Ok(Uuid::new_v4().to_string()),
        }
    }

    /// `POST /emulator/subscriptions`: creates (or cancels) a subscription in the caller's
    /// tenant.
    fn admin_subscription(&self, tenant: &Tenant, body: &Bytes, style: ErrorStyle) -> Response<Bytes> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Body {
            subscription_id: Option<String>,
            effective_end_date: Option<String>,
        }
        let parsed: Body = if body.iter().all(u8::is_ascii_whitespace) {
            Body {
                subscription_id: None,
                effective_end_date: None,
            }
        } else {
            match serde_json::from_slice(body) {
                Ok(parsed) => parsed,
                Err(e) => return illegal_argument(style, format!("Invalid body: {e}")),
            }
        };
        let id = match parsed.subscription_id.as_deref().filter(|s| !s.is_empty()) {
            None => Uuid::new_v4(),
            Some(text) => match Uuid::parse_str(text) {
                Ok(id) => id,
                Err(_) => return illegal_argument(style, format!("Invalid UUID string: {text}")),
            },
        };
        let end = match parsed.effective_end_date.as_deref() {
            None => None,
            Some(text) => match dates::parse_date_time(text) {
                Ok(end) => Some(end),
                Err(message) => return illegal_argument(style, message),
            },
        };
        let mut store = write(&self.inner.store);
        match store.subscriptions.get_mut(&id) {
            Some(existing) if existing.tenant != tenant.id => return respond::other_tenant(style, &id, &tenant.id),
            Some(existing) => {
                if end.is_some() {
                    existing.effective_end = end;
                }
            }
            None => {
                store.subscriptions.insert(id, Subscription::new(tenant.id, end));
            }
        }
        let json = serde_json::json!({ "subscriptionId": id.to_string() }).to_string();
        respond::with_body(StatusCode::CREATED, Bytes::from(json))
    }
}

/// A POST that passed rows 1 to 10, to commit.
struct Post {
    tenant: Tenant,
    subscription: Uuid,
    tracking_id: Option<String>,
    rows: Vec<NewRow>,
    audit: Audit,
    style: ErrorStyle,
}

/// What [`InMemoryKillBill::prepare`] makes of a request.
enum Prepared {
    /// The answer, already known.
    Answer(Response<Bytes>),
    /// A valid POST, to commit.
    Post(Post),
}

/// The insert of a checked POST, with the limits of the database's columns (see
/// [`InMemoryKillBill`]): all rows or none. The caller holds the write lock.
fn insert(store: &mut Store, post: Post, tracking_id: String) -> Response<Bytes> {
    let Post {
        subscription: id,
        rows,
        audit,
        style,
        ..
    } = post;
    if audit.created_by.chars().count() > MAX_CREATED_BY_CHARS {
        return respond::data_truncation(style, "created_by", true);
    }
    let mut amounts = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.unit_type.chars().count() > MAX_UNIT_TYPE_CHARS {
            return respond::data_truncation(style, "unit_type", true);
        }
        let BoundAmount::Fits(amount) = row.amount else {
            return respond::data_truncation(style, "amount", false);
        };
        if tracking_id.chars().count() > MAX_TRACKING_ID_CHARS {
            return respond::data_truncation(style, "tracking_id", true);
        }
        amounts.push(amount);
    }
    for (row, amount) in rows.into_iter().zip(amounts) {
        store.insert(
            id,
            &row.unit_type,
            row.at,
            Row {
                amount,
                tracking_id: tracking_id.clone(),
                created_by: audit.created_by.clone(),
                reason: audit.reason.clone(),
                comment: audit.comment.clone(),
            },
        );
    }
    empty(StatusCode::CREATED)
}

/// docs/contract.md §4 rows 3 to 9 (7' included), unit by unit as Kill Bill loops: the subscription, the tracking id
/// and the records.
type Valid = (Uuid, Option<String>, Vec<NewRow>);

fn validate(record: BoundRecord, style: ErrorStyle) -> Result<Valid, Response<Bytes>> {
    let npe = || {
        let mut body = KillBillError::new(class::NULL_POINTER, "");
        body.message = None;
        respond::error(StatusCode::BAD_REQUEST, style, body)
    };
    let Some(subscription) = record.subscription_id else {
        return Err(illegal_argument(
            style,
            "SubscriptionUsageRecordJson subscriptionId needs to be set",
        ));
    };
    let Some(units) = record.units else {
        return Err(illegal_argument(
            style,
            "SubscriptionUsageRecordJson unitUsageRecords needs to be set",
        ));
    };
    if units.is_empty() {
        return Err(illegal_argument(style, "json.getUnitUsageRecords() is empty"));
    }
    let mut rows = Vec::new();
    for unit in units {
        let Some(unit) = unit else { return Err(npe()) };
        let unit_type = match unit.unit_type {
            Some(unit_type) if !unit_type.is_empty() => unit_type,
            _ => return Err(illegal_argument(style, "UnitUsageRecordJson unitType need to be set")),
        };
        let Some(records) = unit.records else { return Err(npe()) };
        if records.is_empty() {
            return Err(illegal_argument(
                style,
                "UnitUsageRecordJson usageRecords must have at least one element.",
            ));
        }
        for usage in records {
            let Some(usage) = usage else { return Err(npe()) };
            let Some(amount) = usage.amount else {
                return Err(illegal_argument(style, "UsageRecordJson amount needs to be set"));
            };
            let Some(at) = usage.record_date else {
                return Err(illegal_argument(style, "UsageRecordJson recordDate needs to be set"));
            };
            rows.push(NewRow {
                unit_type: unit_type.clone(),
                at,
                amount,
            });
        }
    }
    Ok((subscription, record.tracking_id, rows))
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

fn options(allow: &'static str) -> Response<Bytes> {
    let mut response = empty(StatusCode::OK);
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

fn overflow(style: ErrorStyle) -> Response<Bytes> {
    simple_error(StatusCode::INTERNAL_SERVER_ERROR, style, class::ARITHMETIC, "Overflow")
}

#[async_trait::async_trait]
impl Transport for InMemoryKillBill {
    /// Waits the [latency](InMemoryKillBill::set_latency) (if any), then
    /// [`serve`](InMemoryKillBill::serve)s the request.
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let latency = self.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.serve(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_jersey() {
        assert!(matches!(route("/1.0/kb/usages"), Route::Usages));
        assert!(matches!(route("/1.0/kb/usages/"), Route::Usages));
        assert!(matches!(
            route("/1.0/kb/usages/a-b-c-d-e"),
            Route::Subscription("a-b-c-d-e")
        ));
        assert!(matches!(
            route("/1.0/kb/usages/a-b-c-d-e/x%2Fy"),
            Route::Unit("a-b-c-d-e", "x%2Fy")
        ));
        assert!(matches!(route("/1.0/kb/usages/not-a-uuid"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usages/a-b-c-d-e/x/y"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usages/a-b-c-d-%65"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usagesx"), Route::NotFound));
        assert!(matches!(route("/emulator/subscriptions"), Route::Admin));
    }

    #[test]
    fn java_uuid_is_lenient_like_java_11() {
        assert_eq!(
            java_uuid("1-2-3-4-5").unwrap().to_string(),
            "00000001-0002-0003-0004-000000000005"
        );
        assert_eq!(
            java_uuid("a-b-c-d-e").unwrap().to_string(),
            "0000000a-000b-000c-000d-00000000000e"
        );
        assert_eq!(
            java_uuid("8B9C1E0E-5A0B-4D47-9A7E-1F3C2C8F4A11").unwrap().to_string(),
            "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11"
        );
        assert_eq!(java_uuid("g-b-c-d-e"), None);
        assert_eq!(java_uuid("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), None);
        assert_eq!(java_uuid(&format!("{}-b-c-d-e", "a".repeat(29))), None);
        assert_eq!(java_uuid("10000000000000000-b-c-d-e"), None);
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some(
            "startDate=2013-08-01T10%3A00%3A00%2B02%3A00&x&endDate=a+b&startDate=2",
        ));
        assert_eq!(q.first("startDate"), Some("2013-08-01T10:00:00+02:00"));
        assert_eq!(q.first("endDate"), Some("a b"));
        assert_eq!(q.first("x"), Some(""));
        assert_eq!(q.first("y"), None);
    }
}
