//! A call: what [`UsageClient::record_usage`], [`UsageClient::get_usage`] and
//! [`UsageClient::get_all_usage`] return, and the future that `.await` on it runs (the
//! operation with its retries and deadline).
//!
//! That future is written by hand, as a state machine, rather than as an `async` block: an
//! `async` block's type has no name on stable Rust, so `IntoFuture` could only return it boxed,
//! and the box (an allocation, and the call's state copied into it) cost about 3% of a GET's
//! instructions and of a POST's (BENCHMARKS.md, "Per-call work removed in this round"). The
//! decisions (what to retry, how long to wait, whether the deadline has passed) are plain
//! methods; `poll` only moves between the states.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use usage_models::{RolledUpUsage, TrackingId};

use super::{Inner, UsageClient, NEEDS_A_TIMER};
use crate::operation::{GetAllUsage, GetUsage, Operation, RecordOutcome, RecordUsage};
use crate::retry::{ambiguous_status, retry_after, retryable_status};
use crate::trace::{event, in_span, span, Span};
use crate::{
    Error, InputField, InvalidInput, RequestOptions, Sleep, Timer, Transport, TransportError, TransportErrorKind,
};
#[cfg(feature = "tracing")]
use tracing::Level;

/// A pending [`UsageClient::record_usage`] call: set options, then `.await` it.
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct RecordUsageCall<'a> {
    pub(super) client: &'a UsageClient,
    pub(super) operation: RecordUsage<'a>,
    pub(super) options: RequestOptions,
}

impl RecordUsageCall<'_> {
    /// The tracking id this call records under (the record's, or the one generated for it),
    /// known before the call is awaited: if the call fails in a way that leaves its outcome
    /// unknown, recording the same record again under this id counts it once, provided no
    /// earlier attempt is still being processed by Kill Bill (its duplicate check is not atomic:
    /// see [`RetryPolicy`](crate::RetryPolicy) and docs/RELIABILITY.md).
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
    type IntoFuture = RecordUsageFuture<'a>;

    fn into_future(self) -> RecordUsageFuture<'a> {
        let operation = self.operation;
        let span = span!(
            "record_usage",
            subscription_id = %operation.record().subscription_id(),
            tracking_id = %operation.tracking_id(),
            units = operation.record().unit_usage_records().len(),
            records = operation.record().record_count(),
        );
        RecordUsageFuture {
            span,
            execution: Execution::new(self.client, operation, self.options),
        }
    }
}

/// What `.await` on a [`RecordUsageCall`] runs: the POST, with its retries and deadline.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct RecordUsageFuture<'a> {
    span: Span,
    execution: Execution<'a, RecordUsage<'a>>,
}

impl Future for RecordUsageFuture<'_> {
    type Output = Result<RecordOutcome, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (outcome, attempts) = ready!(in_span!(this.span, this.execution.poll(cx)))?;
        Poll::Ready(Ok(RecordOutcome { attempts, ..outcome }))
    }
}

/// A pending [`UsageClient::get_usage`] or [`UsageClient::get_all_usage`] call: set options,
/// then `.await` it.
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct GetUsageCall<'a> {
    pub(super) client: &'a UsageClient,
    pub(super) read: Read<GetUsage, GetAllUsage>,
    pub(super) options: RequestOptions,
}

/// One unit type or all of them: a [`GetUsageCall`]'s operation, then its execution.
#[derive(Debug)]
pub(super) enum Read<One, All> {
    One(One),
    All(All),
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
    type IntoFuture = GetUsageFuture<'a>;

    fn into_future(self) -> GetUsageFuture<'a> {
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
        let execution = match self.read {
            Read::One(operation) => Read::One(Execution::new(self.client, operation, self.options)),
            Read::All(operation) => Read::All(Execution::new(self.client, operation, self.options)),
        };
        GetUsageFuture { span, execution }
    }
}

/// What `.await` on a [`GetUsageCall`] runs: the GET, with its retries and deadline.
///
/// Its type has a name, so calls can be kept in a `Vec` or a struct without boxing them:
///
/// ```
/// use std::future::IntoFuture;
/// use usage_core::{GetUsageFuture, RetryPolicy, UsageClient, UsageWindow};
/// use usage_models::SubscriptionId;
/// # use bytes::Bytes;
/// # use usage_core::{Transport, TransportError};
/// # #[derive(Debug)]
/// # struct Empty;
/// # #[async_trait::async_trait]
/// # impl Transport for Empty {
/// #     async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
/// #         let id = request.uri().path().rsplit('/').next().unwrap().to_string();
/// #         let query = request.uri().query().unwrap().to_string();
/// #         let date = |name: &str| query.split('&').find_map(|p| p.strip_prefix(name)).unwrap().to_string();
/// #         let body = format!(r#"{{"subscriptionId":"{id}","startDate":"{}","endDate":"{}","rolledUpUnits":[]}}"#,
/// #             date("startDate="), date("endDate="));
/// #         Ok(http::Response::builder().status(200).body(Bytes::from(body)).unwrap())
/// #     }
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let client = UsageClient::builder("http://127.0.0.1:8080")
///     .user("admin", "password")
///     .tenant("bob", "lazar")
///     .transport(Empty)
///     .retry_policy(RetryPolicy::none().without_deadline())
///     .build()?;
/// let subscription = SubscriptionId::random();
/// let months = [("2013-08-01", "2013-09-01"), ("2013-09-01", "2013-10-01")];
/// let mut calls: Vec<GetUsageFuture<'_>> = Vec::new();
/// for (start, end) in months {
///     let window = UsageWindow::parse(start, end)?;
///     calls.push(client.get_all_usage(subscription, window).into_future());
/// }
/// for (call, (start, _)) in calls.into_iter().zip(months) {
///     let usage = call.await?;
///     assert_eq!(usage.start_date().to_string(), start);
/// }
/// # Ok::<(), usage_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct GetUsageFuture<'a> {
    span: Span,
    execution: Read<Execution<'a, GetUsage>, Execution<'a, GetAllUsage>>,
}

impl Future for GetUsageFuture<'_> {
    type Output = Result<RolledUpUsage, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (usage, _attempts) = ready!(in_span!(
            this.span,
            match &mut this.execution {
                Read::One(execution) => execution.poll(cx),
                Read::All(execution) => execution.poll(cx),
            }
        ))?;
        Poll::Ready(Ok(usage))
    }
}

/// An operation run with retries and a deadline: the state machine behind a call's future.
struct Execution<'a, O> {
    client: &'a Inner,
    operation: O,
    options: RequestOptions,
    state: State<'a>,
    /// Attempts made so far.
    attempts: u32,
    /// Whether an earlier attempt may have reached the server: if so, a POST refused as a
    /// duplicate of its own tracking id was recorded by that attempt.
    may_have_landed: bool,
    /// Set by the first poll when the call has a deadline.
    deadline: Option<Deadline<'a>>,
}

/// Where a call is.
enum State<'a> {
    /// Not polled yet: nothing built, nothing sent.
    New,
    /// An attempt is on the wire.
    Sending(Attempt<'a>),
    /// Waiting before the next attempt.
    Waiting(Sleep),
    /// The output was given.
    Done,
}

/// The transport's answer to come, as `Transport::send` returns it.
type Exchange<'a> = Pin<Box<dyn Future<Output = Result<Response<Bytes>, TransportError>> + Send + 'a>>;

/// One attempt on the wire.
struct Attempt<'a> {
    exchange: Exchange<'a>,
    /// A timed-out POST waits longer before its retry (see `RetryPolicy`).
    is_post: bool,
    /// The call's deadline, when the client must bound the exchange itself (the transport
    /// does not bound it within the time left).
    bound: Option<Bound<'a>>,
}

/// The call's deadline, the time it left this attempt, and the timer's sleep over that time.
/// The sleep is made only if the exchange is not ready at its first poll, so a timer that
/// records its sleeps (as `usage_transport_memory::InstantTimer` does) shows only the waits a
/// call needed.
struct Bound<'a> {
    deadline: Deadline<'a>,
    remaining: Duration,
    sleep: Option<Sleep>,
}

/// A call's deadline: how long, from when, on which timer.
#[derive(Clone, Copy)]
struct Deadline<'a> {
    timer: &'a dyn Timer,
    limit: Duration,
    started: Instant,
}

impl Deadline<'_> {
    fn elapsed(&self) -> Duration {
        self.timer.now().saturating_duration_since(self.started)
    }
}

impl<'a, O: Operation> Execution<'a, O> {
    fn new(client: &'a UsageClient, operation: O, options: RequestOptions) -> Self {
        Execution {
            client: &client.inner,
            operation,
            options,
            state: State::New,
            attempts: 0,
            may_have_landed: false,
            deadline: None,
        }
    }

    /// Polls the call (its future has entered the call's span); when done, its output and the
    /// attempts it took.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(O::Output, u32), Error>> {
        let result = ready!(self.run(cx));
        self.state = State::Done;
        match &result {
            Ok(_) => event!(Level::DEBUG, attempts = self.attempts, "call succeeded"),
            Err(e) => event!(Level::DEBUG, error = %e, "call failed"),
        }
        Poll::Ready(result.map(|output| (output, self.attempts)))
    }

    fn run(&mut self, cx: &mut Context<'_>) -> Poll<Result<O::Output, Error>> {
        loop {
            let request = match &mut self.state {
                State::New => self.start()?,
                State::Sending(attempt) => {
                    let is_post = attempt.is_post;
                    let sent = match ready!(attempt.poll(cx)) {
                        Ok(sent) => sent,
                        Err(deadline) => {
                            event!(
                                Level::DEBUG,
                                attempt = self.attempts,
                                deadline_ms = deadline.as_millis() as u64,
                                "deadline exceeded"
                            );
                            return Poll::Ready(Err(self.deadline_exceeded(deadline)));
                        }
                    };
                    match self.after(sent, is_post) {
                        ControlFlow::Break(result) => return Poll::Ready(result),
                        ControlFlow::Continue(wait) => {
                            self.state = State::Waiting(wait);
                            continue;
                        }
                    }
                }
                State::Waiting(wait) => {
                    ready!(wait.as_mut().poll(cx));
                    // A retry builds the request again, byte for byte the same: an operation's
                    // request depends only on the operation, the config and the options (a
                    // record keeps its tracking id).
                    self.operation.to_request(&self.client.config, &self.options)?
                }
                State::Done => panic!("a call's future was polled after it completed"),
            };
            self.state = State::Sending(self.send(request)?);
        }
    }

    /// The first request, and the deadline set: nothing is sent if the input is invalid.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn start(&mut self) -> Result<Request<Bytes>, Error> {
        let request = self
            .operation
            .to_request(&self.client.config, &self.options)
            .inspect_err(|e| event!(Level::DEBUG, error = %e, "invalid input, nothing sent"))?;
        let limit = self.options.deadline.or(self.client.retry.deadline());
        self.deadline = match (limit, self.client.timer.as_deref()) {
            (None, _) => None,
            (Some(limit), Some(timer)) => Some(Deadline {
                timer,
                limit,
                started: timer.now(),
            }),
            // `build` refused a policy with a deadline without a timer: this is the call's own.
            (Some(_), None) => return Err(InvalidInput::new(InputField::Deadline, NEEDS_A_TIMER).into()),
        };
        Ok(request)
    }

    /// The next attempt, with `request` on the wire, or the deadline's error if no time is left.
    fn send(&mut self, request: Request<Bytes>) -> Result<Attempt<'a>, Error> {
        self.attempts += 1;
        let transport: &'a dyn Transport = &*self.client.transport;
        let bound = match self.deadline {
            None => None,
            Some(deadline) => {
                let remaining = deadline.limit.saturating_sub(deadline.elapsed());
                if remaining.is_zero() {
                    return Err(self.deadline_exceeded(deadline.limit));
                }
                // A transport that bounds its own exchange within the time left needs no timer here.
                match transport.timeout() {
                    Some(own) if own < remaining => None,
                    _ => Some(Bound {
                        deadline,
                        remaining,
                        sleep: None,
                    }),
                }
            }
        };
        let is_post = request.method() == http::Method::POST;
        Ok(Attempt {
            exchange: transport.send(request),
            is_post,
            bound,
        })
    }

    /// What follows an attempt's answer: the call's result, or the wait before the next attempt.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn after(
        &mut self,
        sent: Result<Response<Bytes>, TransportError>,
        is_post: bool,
    ) -> ControlFlow<Result<O::Output, Error>, Sleep> {
        let attempts = self.attempts;
        let timer = self.client.timer.as_deref();
        // `timed_out`: this attempt timed out (here or at a gateway), so the server may still
        // be processing it, and a POST's retry must not overlap it (see `RetryPolicy`).
        let (failure, wait_hint, timed_out) = match sent {
            Ok(response) => {
                let status = response.status();
                event!(Level::DEBUG, attempt = attempts, status = status.as_u16(), "answered");
                // Only a client with a timer retries, and only it reads the wall clock.
                let wait_hint = timer.and_then(|timer| retry_after(status, response.headers(), || timer.wall_clock()));
                match self.operation.parse(response) {
                    Ok(output) => return ControlFlow::Break(Ok(output)),
                    Err(e) if self.may_have_landed && e.is_duplicate_tracking_id() => {
                        return ControlFlow::Break(self.operation.landed_earlier().ok_or(e));
                    }
                    Err(e) if retryable_status(status) => {
                        self.may_have_landed |= ambiguous_status(status);
                        (e, wait_hint, status == http::StatusCode::GATEWAY_TIMEOUT)
                    }
                    Err(e) => return ControlFlow::Break(Err(e)),
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
                    return ControlFlow::Break(Err(e.into()));
                }
                self.may_have_landed |= e.may_have_reached_server();
                let timed_out = e.kind() == TransportErrorKind::Timeout;
                (Error::from(e), None, timed_out)
            }
        };
        let retry = &self.client.retry;
        if attempts >= retry.max_attempts() {
            return ControlFlow::Break(Err(failure));
        }
        // Without a timer the policy allows one attempt (`build`), so a retry always has one.
        let (Some(timer), Some(wait)) = (timer, retry.post_wait(attempts, wait_hint, is_post && timed_out)) else {
            return ControlFlow::Break(Err(failure));
        };
        if let Some(deadline) = self.deadline {
            if deadline.elapsed().saturating_add(wait) >= deadline.limit {
                return ControlFlow::Break(Err(failure));
            }
        }
        event!(Level::INFO, attempt = attempts, wait_ms = wait.as_millis() as u64, error = %failure, "retrying");
        ControlFlow::Continue(timer.sleep(wait))
    }

    fn deadline_exceeded(&self, deadline: Duration) -> Error {
        Error::DeadlineExceeded {
            deadline,
            attempts: self.attempts,
        }
    }
}

impl Attempt<'_> {
    /// The transport's answer, or `Err(deadline)` if the call's deadline passes first.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Result<Response<Bytes>, TransportError>, Duration>> {
        if let Poll::Ready(sent) = self.exchange.as_mut().poll(cx) {
            return Poll::Ready(Ok(sent));
        }
        let Some(bound) = &mut self.bound else {
            return Poll::Pending;
        };
        let sleep = bound
            .sleep
            .get_or_insert_with(|| bound.deadline.timer.sleep(bound.remaining));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(bound.deadline.limit))
    }
}

impl<O: fmt::Debug> fmt::Debug for Execution<'_, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::New => "new",
            State::Sending(_) => "sending",
            State::Waiting(_) => "waiting",
            State::Done => "done",
        };
        f.debug_struct("Call")
            .field("operation", &self.operation)
            .field("options", &self.options)
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
