//! The stateful emulator of Kill Bill's usage endpoints.

// The error side of the internal helpers is the response to send: built once per request.
#![allow(clippy::result_large_err)]

mod admin;
mod auth;
mod bind;
pub(crate) mod contract;
mod dates;
mod faults;
mod read;
mod record;
mod respond;
mod routing;
mod store;
mod syntax;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Request, Response};
use rust_decimal::Decimal;
use usage_core::{Secret, Transport, TransportError};
use usage_models::SubscriptionId;
use uuid::Uuid;

use auth::{Credentials, Tenant};
pub use faults::Fault;
use record::insert;
use respond::ErrorStyle;
use routing::Prepared;
use store::{Store, Subscription};

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
    pub(crate) subscription_id: SubscriptionId,
    pub(crate) unit_type: String,
    pub(crate) record_date: DateTime<Utc>,
    pub(crate) amount: Decimal,
    pub(crate) tracking_id: String,
    pub(crate) created_by: String,
    pub(crate) reason: Option<String>,
    pub(crate) comment: Option<String>,
}

impl StoredRow {
    /// The subscription.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }

    /// The unit type.
    pub fn unit_type(&self) -> &str {
        &self.unit_type
    }

    /// The record date (a bare date is midnight UTC).
    pub fn record_date(&self) -> DateTime<Utc> {
        self.record_date
    }

    /// The amount, as the `decimal(18,9)` column keeps it.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The tracking id (generated by the emulator when the request had none).
    pub fn tracking_id(&self) -> &str {
        &self.tracking_id
    }

    /// `X-Killbill-CreatedBy`, decoded.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }

    /// `X-Killbill-Reason`, decoded.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// `X-Killbill-Comment`, decoded.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
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
///   other than a leading zero) keep serde_json's wording: docs/contract.md §4 row 1 asks only
///   that the message describe the problem;
/// - a record date with a field out of range is wrapped with Joda's
///   `org.joda.time.IllegalFieldValueException` as the cause; a *query* date out of range
///   answers `className` `java.lang.IllegalArgumentException` (the real server names the
///   subclass, `IllegalFieldValueException`), because docs/contract.md §3.2 names
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
/// assert_eq!(kb.rows(subscription)[0].amount().to_string(), "10");
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
