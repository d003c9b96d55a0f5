//! The client: a transport, a config, a retry policy and a timer.

use std::sync::Arc;

use usage_models::{SubscriptionId, SubscriptionUsageRecord, UnitType};

use crate::operation::{GetAllUsage, GetUsage, RecordUsage};
use crate::{
    ClientConfig, Error, InputField, InvalidInput, RequestOptions, RetryPolicy, TenantCredentials, Timer, Transport,
    UsageWindow, UserCredentials,
};

mod call;

use call::Read;
pub use call::{GetUsageCall, GetUsageFuture, RecordUsageCall, RecordUsageFuture};

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
}

/// Why a client or a call without a timer is refused.
const NEEDS_A_TIMER: &str = "is required for retries and deadlines (call .timer(...): \
     usage_transport_hyper::TokioTimer, usage_transport_memory::InstantTimer, or your own), or \
     give a client without one .retry_policy(RetryPolicy::none().without_deadline()) and no \
     per-call deadline";

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
