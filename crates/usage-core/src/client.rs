//! The client: a transport, a config, a retry policy and a timer.

use std::future::{Future, IntoFuture};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use usage_models::{RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType};

use crate::operation::{GetAllUsage, GetUsage, Operation, RecordOutcome, RecordUsage};
use crate::retry::{ambiguous_status, retry_after, retryable_status};
use crate::trace::{event, instrument, span};
use crate::{
    ClientConfig, Error, InputField, InvalidInput, RequestOptions, RetryPolicy, TenantCredentials, Timer, Transport,
    TransportErrorKind, UsageWindow, UserCredentials,
};
#[cfg(feature = "tracing")]
use tracing::Level;

/// A `Send` boxed future, as returned by the calls.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Kill Bill Usage client. Cheap to clone (it is an `Arc`); share one per process.
///
/// Build it with [`UsageClient::builder`], give it any [`Transport`], and `.await` the calls:
/// [`record_usage`](Self::record_usage), [`get_usage`](Self::get_usage),
/// [`get_all_usage`](Self::get_all_usage). Each call takes per-call
/// [`RequestOptions`] with `.options(...)`.
///
/// Retries and deadlines need a [`Timer`] (the hyper and in-memory transport crates each
/// provide one). A client without a timer must be given a policy of one attempt and no
/// deadline (`RetryPolicy::none().without_deadline()`): [`build`](UsageClientBuilder::build)
/// refuses any other, and a call given a deadline of its own is refused before anything is
/// sent.
///
/// ```
/// use bytes::Bytes;
/// use usage_core::{RetryPolicy, Transport, TransportError, UsageClient, UsageWindow};
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
///     // No timer: one attempt, no deadline.
///     .retry_policy(RetryPolicy::none().without_deadline())
///     .build()
///     .unwrap();
/// let subscription = SubscriptionId::random();
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// let record = SubscriptionUsageRecord::builder(subscription)
///     .record("gallons", day, 10)
///     .build()
///     .unwrap();
/// let outcome = client.record_usage(&record).await.unwrap();
/// assert_eq!(outcome.attempts(), 1);
/// let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
/// let usage = client.get_all_usage(subscription, window).await.unwrap();
/// assert_eq!(usage.subscription_id(), subscription);
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
    /// (`GET /1.0/kb/usages/{subscriptionId}/{unitType}`). `unit_type` is a [`UnitType`] (or a
    /// `&UnitType`), or text checked as one (non-empty, at most 255 characters); `.` and `..`
    /// are refused. Like a record, the input is checked here, when the call is made, never
    /// when it is awaited.
    pub fn get_usage<U>(
        &self,
        subscription_id: SubscriptionId,
        unit_type: U,
        window: UsageWindow,
    ) -> Result<GetUsageCall<'_>, Error>
    where
        U: TryInto<UnitType>,
        U::Error: Into<Error>,
    {
        Ok(GetUsageCall {
            client: self,
            read: Read::One(GetUsage::new(subscription_id, unit_type, window)?),
            options: RequestOptions::default(),
        })
    }

    /// The roll-up of every unit type over `window` (`GET /1.0/kb/usages/{subscriptionId}`).
    pub fn get_all_usage(&self, subscription_id: SubscriptionId, window: UsageWindow) -> GetUsageCall<'_> {
        GetUsageCall {
            client: self,
            read: Read::All(GetAllUsage::new(subscription_id, window)),
            options: RequestOptions::default(),
        }
    }

    /// Runs `operation` with retries and the deadline; returns its output and the attempts.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    async fn execute<O: Operation>(&self, operation: &O, options: &RequestOptions) -> Result<(O::Output, u32), Error> {
        let inner = &*self.inner;
        // The transport itself: through the `Arc`, the blanket `impl Transport for Arc<T>`
        // would box a second future around the transport's own.
        let transport: &dyn Transport = &*inner.transport;
        let template = operation.to_request(&inner.config, options).inspect_err(|e| {
            event!(Level::DEBUG, error = %e, "invalid input, nothing sent");
        })?;
        let Some(timer) = inner.timer.as_deref() else {
            // `build` made sure the policy asks for one attempt and no deadline.
            if options.deadline.is_some() {
                return Err(InvalidInput::new(InputField::Deadline, NEEDS_A_TIMER).into());
            }
            let response = transport.send(template).await.inspect_err(|e| {
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
        let deadline = options.deadline.or(inner.retry.deadline());
        let started = timer.now();
        let mut may_have_landed = false;
        let mut attempts = 0;
        // The first attempt sends the request built above, without a copy; a retry builds it
        // again, byte for byte the same (an operation's request depends only on the
        // operation, the config and the options: a record keeps its tracking id).
        let mut first = Some(template);
        loop {
            attempts += 1;
            let remaining = deadline.map(|deadline| {
                (
                    deadline,
                    deadline.saturating_sub(timer.now().saturating_duration_since(started)),
                )
            });
            if let Some((deadline, Duration::ZERO)) = remaining {
                return Err(Error::DeadlineExceeded { deadline, attempts });
            }
            let request = match first.take() {
                Some(request) => request,
                None => operation.to_request(&inner.config, options)?,
            };
            let is_post = request.method() == http::Method::POST;
            // A transport that bounds its own exchange within the time left needs no timer here.
            let sent = match (remaining, transport.timeout()) {
                (None, _) => Ok(transport.send(request).await),
                (Some((_, remaining)), Some(bound)) if bound < remaining => Ok(transport.send(request).await),
                (Some((deadline, remaining)), _) => {
                    race(transport.send(request), timer, remaining).await.ok_or(deadline)
                }
            };
            let sent = match sent {
                Ok(sent) => sent,
                Err(deadline) => {
                    event!(
                        Level::DEBUG,
                        attempt = attempts,
                        deadline_ms = deadline.as_millis() as u64,
                        "deadline exceeded"
                    );
                    return Err(Error::DeadlineExceeded { deadline, attempts });
                }
            };
            // `timed_out`: this attempt timed out (here or at a gateway), so the server may still
            // be processing it, and a POST's retry must not overlap it (see `RetryPolicy`).
            let (failure, wait_hint, timed_out) = match sent {
                Ok(response) => {
                    let status = response.status();
                    event!(Level::DEBUG, attempt = attempts, status = status.as_u16(), "answered");
                    let wait_hint = retry_after(status, response.headers(), || timer.wall_clock());
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
            if attempts >= inner.retry.max_attempts() {
                return Err(failure);
            }
            let Some(wait) = inner.retry.post_wait(attempts, wait_hint, is_post && timed_out) else {
                return Err(failure);
            };
            let elapsed = timer.now().saturating_duration_since(started);
            if deadline.is_some_and(|deadline| elapsed.saturating_add(wait) >= deadline) {
                return Err(failure);
            }
            event!(Level::INFO, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %failure, "retrying");
            timer.sleep(wait).await;
        }
    }
}

/// Why a client or a call without a timer is refused.
const NEEDS_A_TIMER: &str = "is required for retries and deadlines (call .timer(...): \
     usage_transport_hyper::TokioTimer, usage_transport_memory::InstantTimer, or your own), or \
     give a client without one .retry_policy(RetryPolicy::none().without_deadline()) and no \
     per-call deadline";

/// The end of a call, for the trace.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn finished<T>(result: &Result<(T, u32), Error>) {
    match result {
        Ok((_, attempts)) => event!(Level::DEBUG, attempts, "call succeeded"),
        Err(e) => event!(Level::DEBUG, error = %e, "call failed"),
    }
}

/// The output of `work`, or `None` if `timeout` passes first. The timer's sleep is only made
/// if `work` is not ready at once, so a timer that records its sleeps (as
/// `usage_transport_memory::InstantTimer` does) shows only the waits a call needed.
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
    /// # let client = UsageClient::builder("http://h").user("a", "b").tenant("c", "d").transport(Down)
    /// #     .retry_policy(usage_core::RetryPolicy::none().without_deadline()).build().unwrap();
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
            let (outcome, attempts) = result?;
            Ok(RecordOutcome { attempts, ..outcome })
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
    read: Read,
    options: RequestOptions,
}

/// The operation of a [`GetUsageCall`].
#[derive(Debug)]
enum Read {
    One(GetUsage),
    All(GetAllUsage),
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
            subscription_id = %match &self.read {
                Read::One(operation) => operation.subscription_id(),
                Read::All(operation) => operation.subscription_id(),
            },
            unit_type = %match &self.read {
                Read::One(operation) => operation.unit_type().as_str(),
                Read::All(_) => "(all)",
            },
        );
        let call = async move {
            let result = match &self.read {
                Read::One(operation) => self.client.execute(operation, &self.options).await,
                Read::All(operation) => self.client.execute(operation, &self.options).await,
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

    /// The retry policy (default [`RetryPolicy::default`], which needs a timer).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The client, or what is missing or invalid. A client without a [timer](Self::timer) is
    /// refused unless its retry policy asks for one attempt and no deadline: it could neither
    /// wait between attempts nor stop a call at its deadline.
    ///
    /// ```
    /// # use usage_core::{RetryPolicy, Transport, TransportError, UsageClient};
    /// # #[derive(Debug)] struct Down;
    /// # #[async_trait::async_trait]
    /// # impl Transport for Down {
    /// #     async fn send(&self, _: http::Request<bytes::Bytes>) -> Result<http::Response<bytes::Bytes>, TransportError> {
    /// #         Err(TransportError::new(usage_core::TransportErrorKind::Io, "reset"))
    /// #     }
    /// # }
    /// let builder = || UsageClient::builder("http://h").user("a", "b").tenant("c", "d").transport(Down);
    /// let error = builder().build().unwrap_err();
    /// assert!(error.to_string().contains("timer"), "{error}");
    /// assert!(builder().retry_policy(RetryPolicy::none().without_deadline()).build().is_ok());
    /// ```
    pub fn build(self) -> Result<UsageClient, Error> {
        let missing = |what: InputField, how: &str| InvalidInput::new(what, format!("is required ({how})"));
        let user = self
            .user
            .ok_or_else(|| missing(InputField::User, "call .user(name, password)"))?;
        let tenant = self
            .tenant
            .ok_or_else(|| missing(InputField::Tenant, "call .tenant(api_key, api_secret)"))?;
        let transport = self
            .transport
            .ok_or_else(|| missing(InputField::Transport, "call .transport(...)"))?;
        let mut config = ClientConfig::new(&self.base_url, user, tenant)?;
        if let Some(created_by) = self.created_by {
            config = config.with_created_by(created_by)?;
        }
        if self.timer.is_none() && (self.retry.max_attempts() > 1 || self.retry.deadline().is_some()) {
            return Err(InvalidInput::new(InputField::Timer, NEEDS_A_TIMER).into());
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
