//! The client: a transport, a config, a retry policy and a timer.

use std::future::{Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use usage_models::{RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType};

use crate::operation::{GetAllUsage, GetUsage, Operation, RecordStatus, RecordUsage};
use crate::retry::{ambiguous_status, retry_after, retryable_status};
use crate::trace::{event, instrument, span};
use crate::{
    ClientConfig, Error, InvalidInput, RequestOptions, RetryPolicy, TenantCredentials, Timer, Transport,
    TransportErrorKind, UsageWindow, UserCredentials,
};
#[cfg(feature = "tracing")]
use tracing::Level;

/// A `Send` boxed future, as returned by the calls.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Kill Bill Usage client. Cheap to clone (it is an `Arc`); share one per process.
///
/// Build it with [`UsageClient::builder`], give it any [`Transport`], and `.await` the calls:
/// [`record_usage`](Self::record_usage), [`get_usage`](Self::get_usage),
/// [`get_all_usage`](Self::get_all_usage). Each call takes per-call
/// [`RequestOptions`] with `.options(...)`.
///
/// Retries and deadlines need a [`Timer`] (the hyper and in-memory transport crates each
/// provide one): without a timer, each call makes exactly one attempt and has no deadline
/// beyond the transport's own timeouts.
///
/// ```
/// use bytes::Bytes;
/// use usage_core::{Transport, TransportError, UsageClient, UsageWindow};
/// use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
///
/// /// A transport written by hand: 201 to POSTs, an empty roll-up to GETs.
/// #[derive(Debug)]
/// struct Canned;
///
/// #[async_trait::async_trait]
/// impl Transport for Canned {
///     async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
///         let response = if request.method() == "POST" {
///             http::Response::builder().status(201).body(Bytes::new())
///         } else {
///             let id = request.uri().path().rsplit('/').next().unwrap().to_string();
///             let body = format!(r#"{{"subscriptionId":"{id}","startDate":"2013-08-01",
///                 "endDate":"2013-09-01","rolledUpUnits":[]}}"#);
///             http::Response::builder().status(200).body(Bytes::from(body))
///         };
///         Ok(response.unwrap())
///     }
/// }
///
/// # tokio_test_block_on(async {
/// let client = UsageClient::builder("http://127.0.0.1:8080")
///     .user("admin", "password")
///     .tenant("bob", "lazar")
///     .transport(Canned)
///     .build()
///     .unwrap();
/// let subscription = SubscriptionId::random();
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// let record = SubscriptionUsageRecord::builder(subscription)
///     .record("gallons", day, 10)
///     .build()
///     .unwrap();
/// let outcome = client.record_usage(&record).await.unwrap();
/// assert_eq!(outcome.attempts, 1);
/// let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
/// let usage = client.get_all_usage(subscription, window).await.unwrap();
/// assert_eq!(usage.subscription_id, subscription);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct UsageClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Arc<dyn Transport>,
    config: ClientConfig,
    retry: RetryPolicy,
    timer: Option<Arc<dyn Timer>>,
}

/// What recording usage did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOutcome {
    /// The tracking id the usage is recorded under: the record's, or the one the client
    /// generated for it.
    pub tracking_id: TrackingId,
    /// How many attempts the call took.
    pub attempts: u32,
    /// `true` when a retry was refused as a duplicate (code 50000) after an attempt whose
    /// answer was lost: that earlier attempt recorded the usage.
    pub already_recorded: bool,
}

impl UsageClient {
    /// Starts building a client for the Kill Bill server at `base_url`
    /// (`https://billing.example.com`, or with a path prefix such as `.../killbill`).
    pub fn builder(base_url: impl Into<String>) -> UsageClientBuilder {
        UsageClientBuilder {
            base_url: base_url.into(),
            user: None,
            tenant: None,
            created_by: None,
            transport: None,
            timer: None,
            retry: RetryPolicy::default(),
        }
    }

    /// The config (base URL, default created-by).
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Records usage (`POST /1.0/kb/usages`). The client always sends a tracking id: the
    /// record's, or a random one it generates, which changes nothing on the server (it would
    /// generate one) but makes retries safe.
    pub fn record_usage<'a>(&'a self, record: &'a SubscriptionUsageRecord) -> RecordUsageCall<'a> {
        RecordUsageCall {
            client: self,
            operation: RecordUsage::new(record),
            options: RequestOptions::default(),
        }
    }

    /// The roll-up of one unit type over `window`
    /// (`GET /1.0/kb/usages/{subscriptionId}/{unitType}`). `unit_type` is checked (non-empty,
    /// at most 255 characters, not `.` or `..`) when the call is awaited.
    pub fn get_usage(
        &self,
        subscription_id: SubscriptionId,
        unit_type: impl AsRef<str>,
        window: UsageWindow,
    ) -> GetUsageCall<'_> {
        GetUsageCall {
            client: self,
            subscription_id,
            unit_type: Some(UnitType::new(unit_type.as_ref()).map_err(InvalidInput::from)),
            window,
            options: RequestOptions::default(),
        }
    }

    /// The roll-up of every unit type over `window` (`GET /1.0/kb/usages/{subscriptionId}`).
    pub fn get_all_usage(&self, subscription_id: SubscriptionId, window: UsageWindow) -> GetUsageCall<'_> {
        GetUsageCall {
            client: self,
            subscription_id,
            unit_type: None,
            window,
            options: RequestOptions::default(),
        }
    }

    /// Runs `operation` with retries and the deadline; returns its output and the attempts.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    async fn execute<O: Operation>(&self, operation: &O, options: &RequestOptions) -> Result<(O::Output, u32), Error> {
        let inner = &*self.inner;
        let template = operation.to_request(&inner.config, options).inspect_err(|e| {
            event!(Level::DEBUG, error = %e, "invalid input, nothing sent");
        })?;
        let Some(timer) = inner.timer.as_deref() else {
            let response = inner.transport.send(template).await.inspect_err(|e| {
                event!(Level::DEBUG, attempt = 1, error = %e, "transport failed");
            })?;
            event!(
                Level::DEBUG,
                attempt = 1,
                status = response.status().as_u16(),
                "answered"
            );
            return operation.parse(response).map(|output| (output, 1));
        };
        let deadline = options.deadline.unwrap_or(inner.retry.default_deadline());
        let started = timer.now();
        let mut may_have_landed = false;
        let mut attempts = 0;
        // The first attempt sends the request built above, without a copy; a retry builds it
        // again, byte for byte the same (an operation's request depends only on the
        // operation, the config and the options: a record keeps its tracking id).
        let mut first = Some(template);
        loop {
            attempts += 1;
            let remaining = deadline.saturating_sub(timer.now().saturating_duration_since(started));
            if remaining.is_zero() {
                return Err(Error::DeadlineExceeded { deadline, attempts });
            }
            let request = match first.take() {
                Some(request) => request,
                None => operation.to_request(&inner.config, options)?,
            };
            let is_post = request.method() == http::Method::POST;
            // A transport that bounds its own exchange within the time left needs no timer here.
            let sent = match inner.transport.timeout() {
                Some(bound) if bound < remaining => Some(inner.transport.send(request).await),
                _ => race(inner.transport.send(request), timer, remaining).await,
            };
            let Some(sent) = sent else {
                event!(
                    Level::DEBUG,
                    attempt = attempts,
                    deadline_ms = deadline.as_millis() as u64,
                    "deadline exceeded"
                );
                return Err(Error::DeadlineExceeded { deadline, attempts });
            };
            // `timed_out`: this attempt timed out (here or at a gateway), so the server may still
            // be processing it, and a POST's retry must not overlap it (see `RetryPolicy`).
            let (failure, wait_hint, timed_out) = match sent {
                Ok(response) => {
                    let status = response.status();
                    event!(Level::DEBUG, attempt = attempts, status = status.as_u16(), "answered");
                    let wait_hint = retry_after(status, response.headers());
                    match operation.parse(response) {
                        Ok(output) => return Ok((output, attempts)),
                        Err(e) if may_have_landed && e.is_duplicate_tracking_id() => match operation.landed_earlier() {
                            Some(output) => return Ok((output, attempts)),
                            None => return Err(e),
                        },
                        Err(e) if retryable_status(status) => {
                            may_have_landed |= ambiguous_status(status);
                            (e, wait_hint, status == http::StatusCode::GATEWAY_TIMEOUT)
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => {
                    event!(Level::DEBUG, attempt = attempts, error = %e, "transport failed");
                    let retryable = matches!(
                        e.kind(),
                        TransportErrorKind::Connect
                            | TransportErrorKind::Timeout
                            | TransportErrorKind::Io
                            | TransportErrorKind::Incomplete
                    );
                    if !retryable {
                        return Err(e.into());
                    }
                    may_have_landed |= e.may_have_reached_server();
                    let timed_out = e.kind() == TransportErrorKind::Timeout;
                    (Error::from(e), None, timed_out)
                }
            };
            if attempts >= inner.retry.attempts() {
                return Err(failure);
            }
            let Some(wait) = inner.retry.post_wait(attempts, wait_hint, is_post && timed_out) else {
                return Err(failure);
            };
            let elapsed = timer.now().saturating_duration_since(started);
            if elapsed.saturating_add(wait) >= deadline {
                return Err(failure);
            }
            event!(Level::INFO, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %failure, "retrying");
            timer.sleep(wait).await;
        }
    }
}

/// The end of a call, for the trace.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn finished<T>(result: &Result<(T, u32), Error>) {
    match result {
        Ok((_, attempts)) => event!(Level::DEBUG, attempts, "call succeeded"),
        Err(e) => event!(Level::DEBUG, error = %e, "call failed"),
    }
}

/// The output of `work`, or `None` if `timeout` passes first. The timer's sleep is only made
/// if `work` is not ready at once.
async fn race<F: Future>(work: F, timer: &dyn Timer, timeout: Duration) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut sleep: Option<crate::Sleep> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        let sleep = sleep.get_or_insert_with(|| timer.sleep(timeout));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A pending [`UsageClient::record_usage`] call: set options, then `.await` it.
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct RecordUsageCall<'a> {
    client: &'a UsageClient,
    operation: RecordUsage<'a>,
    options: RequestOptions,
}

impl RecordUsageCall<'_> {
    /// The tracking id this call records under (the record's, or the one generated for it),
    /// known before the call is awaited: if the call fails in a way that leaves its outcome
    /// unknown, recording the same record again under this id counts it once, provided no
    /// earlier attempt is still being processed by Kill Bill (its duplicate check is not atomic:
    /// see [`RetryPolicy`] and docs/RELIABILITY.md).
    ///
    /// ```
    /// # use usage_core::{UsageClient, Transport, TransportError};
    /// # use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
    /// # #[derive(Debug)] struct Down;
    /// # #[async_trait::async_trait]
    /// # impl Transport for Down {
    /// #     async fn send(&self, _: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, TransportError> {
    /// #         Err(TransportError::new(usage_core::TransportErrorKind::Io, "reset"))
    /// #     }
    /// # }
    /// # let client = UsageClient::builder("http://h").user("a", "b").tenant("c", "d").transport(Down).build().unwrap();
    /// let record = SubscriptionUsageRecord::builder(SubscriptionId::random())
    ///     .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 10)
    ///     .build()
    ///     .unwrap();
    /// let call = client.record_usage(&record);
    /// let tracking_id = call.tracking_id().clone();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// if call.await.is_err() {
    ///     // Later, when the server is back: the same usage, the same id, counted once.
    ///     let again = record.clone().with_tracking_id(tracking_id);
    ///     let _ = client.record_usage(&again).await;
    /// }
    /// # });
    /// ```
    pub fn tracking_id(&self) -> &TrackingId {
        self.operation.tracking_id()
    }

    /// Per-call options (audit headers, request id, tenant, deadline, ...).
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl<'a> IntoFuture for RecordUsageCall<'a> {
    type Output = Result<RecordOutcome, Error>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let operation = self.operation;
        let span = span!(
            "record_usage",
            subscription_id = %operation.record().subscription_id(),
            tracking_id = %operation.tracking_id(),
            units = operation.record().unit_usage_records().len(),
            records = operation.record().record_count(),
        );
        let call = async move {
            let result = self.client.execute(&operation, &self.options).await;
            finished(&result);
            let (status, attempts) = result?;
            Ok(RecordOutcome {
                tracking_id: operation.tracking_id().clone(),
                attempts,
                already_recorded: status == RecordStatus::AlreadyRecorded,
            })
        };
        Box::pin(instrument!(call, span))
    }
}

/// A pending [`UsageClient::get_usage`] or [`UsageClient::get_all_usage`] call: set options,
/// then `.await` it.
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct GetUsageCall<'a> {
    client: &'a UsageClient,
    subscription_id: SubscriptionId,
    unit_type: Option<Result<UnitType, InvalidInput>>,
    window: UsageWindow,
    options: RequestOptions,
}

impl GetUsageCall<'_> {
    /// Per-call options (request id, plugin properties, tenant, deadline, ...).
    pub fn options(mut self, options: RequestOptions) -> Self {
        self.options = options;
        self
    }
}

impl<'a> IntoFuture for GetUsageCall<'a> {
    type Output = Result<RolledUpUsage, Error>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let span = span!(
            "get_usage",
            subscription_id = %self.subscription_id,
            unit_type = %(match &self.unit_type {
                Some(Ok(unit)) => unit.as_str(),
                Some(Err(_)) => "(invalid)",
                None => "(all)",
            }),
        );
        let call = async move {
            let result = match self.unit_type {
                Some(unit_type) => {
                    async {
                        let unit_type = unit_type?;
                        let operation = GetUsage::new(self.subscription_id, &unit_type, self.window)?;
                        self.client.execute(&operation, &self.options).await
                    }
                    .await
                }
                None => {
                    let operation = GetAllUsage::new(self.subscription_id, self.window);
                    self.client.execute(&operation, &self.options).await
                }
            };
            finished(&result);
            result.map(|(usage, _attempts)| usage)
        };
        Box::pin(instrument!(call, span))
    }
}

/// Builds a [`UsageClient`]; see [`UsageClient::builder`].
#[derive(Debug)]
#[must_use]
pub struct UsageClientBuilder {
    base_url: String,
    user: Option<UserCredentials>,
    tenant: Option<TenantCredentials>,
    created_by: Option<String>,
    transport: Option<Arc<dyn Transport>>,
    timer: Option<Arc<dyn Timer>>,
    retry: RetryPolicy,
}

impl UsageClientBuilder {
    /// The Kill Bill user (HTTP Basic auth). Required.
    pub fn user(mut self, user: impl Into<String>, password: impl Into<crate::Secret>) -> Self {
        self.user = Some(UserCredentials::new(user, password));
        self
    }

    /// The tenant's API key and secret. Required.
    pub fn tenant(mut self, api_key: impl Into<String>, api_secret: impl Into<crate::Secret>) -> Self {
        self.tenant = Some(TenantCredentials::new(api_key, api_secret));
        self
    }

    /// The default `X-Killbill-CreatedBy` (default [`DEFAULT_CREATED_BY`](crate::DEFAULT_CREATED_BY)).
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = Some(created_by.into());
        self
    }

    /// The transport. Required.
    pub fn transport(self, transport: impl Transport) -> Self {
        self.transport_arc(Arc::new(transport))
    }

    /// The transport, already shared.
    pub fn transport_arc(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The timer that retries and deadlines wait on.
    pub fn timer(self, timer: impl Timer) -> Self {
        self.timer_arc(Arc::new(timer))
    }

    /// The timer, already shared.
    pub fn timer_arc(mut self, timer: Arc<dyn Timer>) -> Self {
        self.timer = Some(timer);
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]; it needs a timer).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The client, or what is missing or invalid.
    pub fn build(self) -> Result<UsageClient, Error> {
        let missing = |what: &str, how: &str| InvalidInput::new(what, format!("is required ({how})"));
        let user = self.user.ok_or_else(|| missing("user", "call .user(name, password)"))?;
        let tenant = self
            .tenant
            .ok_or_else(|| missing("tenant", "call .tenant(api_key, api_secret)"))?;
        let transport = self
            .transport
            .ok_or_else(|| missing("transport", "call .transport(...)"))?;
        let mut config = ClientConfig::new(&self.base_url, user, tenant)?;
        if let Some(created_by) = self.created_by {
            config = config.with_created_by(created_by)?;
        }
        Ok(UsageClient {
            inner: Arc::new(Inner {
                transport,
                config,
                retry: self.retry,
                timer: self.timer,
            }),
        })
    }
}
