//! The client over hand-written transports: records, reads, retries, deadlines, secrets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::IntoFuture as _;

use bytes::Bytes;
use http::{Request, Response};
use usage_core::{
    Error, RequestOptions, RetryPolicy, Sleep, TenantCredentials, Timer, Transport, TransportError, TransportErrorKind,
    UsageClient, UsageWindow,
};
use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};

type Handler = dyn Fn(&Request<Bytes>) -> Result<Response<Bytes>, TransportError> + Send + Sync;

/// A transport made of a closure, recording every request.
struct FnTransport {
    handler: Box<Handler>,
    seen: Mutex<Vec<Request<Bytes>>>,
}

impl std::fmt::Debug for FnTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTransport")
    }
}

#[async_trait::async_trait]
impl Transport for FnTransport {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let answer = (self.handler)(&request);
        self.seen.lock().unwrap().push(request);
        answer
    }
}

fn transport(
    handler: impl Fn(&Request<Bytes>) -> Result<Response<Bytes>, TransportError> + Send + Sync + 'static,
) -> Arc<FnTransport> {
    Arc::new(FnTransport {
        handler: Box::new(handler),
        seen: Mutex::new(Vec::new()),
    })
}

/// Answers from a script, one answer per request.
fn scripted(answers: Vec<Result<Response<Bytes>, TransportError>>) -> Arc<FnTransport> {
    let answers = Mutex::new(VecDeque::from(answers));
    transport(move |_| {
        answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("no answer left in the script")
    })
}

/// A timer that takes no time: `sleep` advances a virtual clock and records the wait.
#[derive(Debug, Clone)]
struct VirtualTimer {
    start: Instant,
    state: Arc<Mutex<(Duration, Vec<Duration>)>>,
}

impl VirtualTimer {
    fn new() -> Self {
        VirtualTimer {
            start: Instant::now(),
            state: Arc::new(Mutex::new((Duration::ZERO, Vec::new()))),
        }
    }
    fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap().1.clone()
    }
}

impl Timer for VirtualTimer {
    fn now(&self) -> Instant {
        self.start + self.state.lock().unwrap().0
    }
    /// Time passes when the sleep is awaited, not when it is made.
    fn sleep(&self, duration: Duration) -> Sleep {
        let state = self.state.clone();
        Box::pin(async move {
            let mut state = state.lock().unwrap();
            state.0 += duration;
            state.1.push(duration);
        })
    }
}

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

fn status(code: u16) -> Result<Response<Bytes>, TransportError> {
    Ok(Response::builder().status(code).body(Bytes::new()).unwrap())
}

fn with_header(code: u16, name: &str, value: &str) -> Result<Response<Bytes>, TransportError> {
    Ok(Response::builder()
        .status(code)
        .header(name, value)
        .body(Bytes::new())
        .unwrap())
}

fn duplicate() -> Result<Response<Bytes>, TransportError> {
    let body = r#"{"className":"org.killbill.billing.usage.api.UsageApiException","code":50000,"message":"A usage record with tracking ID t already exists","causeClassName":null,"causeMessage":null,"stackTrace":[]}"#;
    Ok(Response::builder()
        .status(400)
        .body(Bytes::from_static(body.as_bytes()))
        .unwrap())
}

fn failure(kind: TransportErrorKind) -> Result<Response<Bytes>, TransportError> {
    Err(TransportError::new(kind, "scripted"))
}

fn client(transport: Arc<FnTransport>, timer: Option<VirtualTimer>) -> UsageClient {
    let mut builder = UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .retry_policy(RetryPolicy::default().with_jitter(false));
    match timer {
        Some(timer) => builder = builder.timer(timer),
        // Without a timer: one attempt and no deadline, or the build is refused.
        None => builder = builder.retry_policy(RetryPolicy::none().without_deadline()),
    }
    builder.build().unwrap()
}

fn record(tracking: Option<&str>) -> SubscriptionUsageRecord {
    let mut builder = SubscriptionUsageRecord::builder(SUB.parse().unwrap());
    if let Some(t) = tracking {
        builder = builder.tracking_id(t);
    }
    builder
        .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 10)
        .build()
        .unwrap()
}

fn window() -> UsageWindow {
    UsageWindow::parse("2013-08-01", "2013-09-01").unwrap()
}

fn block_on<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future.into_future())
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = client(scripted(vec![]), None);
    let record = record(None);
    let call = client.record_usage(&record).into_future();
    assert_send(&call);
    let call = client
        .get_usage(SUB.parse().unwrap(), "u", window())
        .unwrap()
        .into_future();
    assert_send(&call);
    let call = client.get_all_usage(SUB.parse().unwrap(), window()).into_future();
    assert_send(&call);
}

#[test]
fn records_and_reads_through_a_hand_written_transport() {
    // A tiny server of its own: remembers the POSTed total and answers it to GETs.
    let total = Arc::new(Mutex::new(0i64));
    let server_total = total.clone();
    let transport = transport(move |request| {
        if request.method() == "POST" {
            let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
            *server_total.lock().unwrap() += body["unitUsageRecords"][0]["usageRecords"][0]["amount"]
                .as_i64()
                .unwrap();
            return status(201);
        }
        let body = format!(
            r#"{{"subscriptionId":"{SUB}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[{{"unitType":"gallons","amount":{}.000000000}}]}}"#,
            server_total.lock().unwrap()
        );
        Ok(Response::builder().status(200).body(Bytes::from(body)).unwrap())
    });
    let client = client(transport.clone(), Some(VirtualTimer::new()));
    block_on(async {
        let outcome = client.record_usage(&record(Some("t-1"))).await.unwrap();
        assert_eq!(outcome.tracking_id().as_str(), "t-1");
        assert_eq!(outcome.attempts(), 1);
        assert!(!outcome.already_recorded());
        client.record_usage(&record(None)).await.unwrap();
        let usage = client
            .get_usage(SUB.parse().unwrap(), "gallons", window())
            .unwrap()
            .await
            .unwrap();
        assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "20.000000000");
    });
    assert_eq!(*total.lock().unwrap(), 20);
    let seen = transport.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].uri().path(), format!("/1.0/kb/usages/{SUB}/gallons"));
}

#[test]
fn invalid_input_sends_nothing() {
    let transport = scripted(vec![]);
    let client = client(transport.clone(), None);
    block_on(async {
        for unit in ["", ".", ".."] {
            // Refused when the call is made, as a record is when it is built.
            let err = client.get_usage(SUB.parse().unwrap(), unit, window()).unwrap_err();
            assert!(err.is_invalid_input(), "{unit:?}: {err}");
        }
        // Options are refused when built, before any call can carry them.
        let err = RequestOptions::builder()
            .created_by("x".repeat(51))
            .build()
            .unwrap_err();
        assert!(err.is_invalid_input());
        assert!(
            err.to_string()
                .starts_with("invalid input, nothing was sent: X-Killbill-CreatedBy"),
            "{err}"
        );
    });
    assert!(transport.seen.lock().unwrap().is_empty());
    let err = UsageClient::builder("http://h")
        .tenant("a", "b")
        .transport(scripted(vec![]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("user: is required"), "{err}");
}

#[test]
fn post_retries_keep_one_tracking_id_and_a_lost_answer_is_not_double_counted() {
    let transport = scripted(vec![
        failure(TransportErrorKind::Connect),
        with_header(503, "retry-after", "2"),
        failure(TransportErrorKind::Incomplete),
        duplicate(),
    ]);
    let timer = VirtualTimer::new();
    let client = client(transport.clone(), Some(timer.clone()));
    let outcome = block_on(client.record_usage(&record(None))).unwrap();
    assert_eq!(outcome.attempts(), 4);
    assert!(outcome.already_recorded());
    assert_eq!(
        timer.sleeps(),
        [
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::from_millis(400)
        ]
    );
    let seen = transport.seen.lock().unwrap();
    let ids: Vec<String> = seen
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(r.body()).unwrap()["trackingId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(ids.iter().all(|id| *id == outcome.tracking_id().as_str()), "{ids:?}");
}

#[test]
fn a_duplicate_on_the_first_attempt_or_after_refusals_is_the_callers_own() {
    let client1 = client(scripted(vec![duplicate()]), Some(VirtualTimer::new()));
    let err = block_on(client1.record_usage(&record(Some("t")))).unwrap_err();
    assert!(err.is_duplicate_tracking_id());

    // 503 and connect errors prove nothing landed: a later duplicate is the caller's own.
    let client2 = client(
        scripted(vec![status(503), failure(TransportErrorKind::Connect), duplicate()]),
        Some(VirtualTimer::new()),
    );
    let err = block_on(client2.record_usage(&record(Some("t")))).unwrap_err();
    assert!(err.is_duplicate_tracking_id());
}

#[test]
fn every_attempt_sends_the_same_request() {
    let same = |seen: &[Request<Bytes>]| {
        assert_eq!(seen.len(), 4);
        for r in &seen[1..] {
            assert_eq!(r.method(), seen[0].method());
            assert_eq!(r.uri(), seen[0].uri());
            assert_eq!(r.version(), seen[0].version());
            assert_eq!(r.headers(), seen[0].headers());
            assert_eq!(r.body(), seen[0].body());
        }
    };
    let options = || {
        RequestOptions::builder()
            .reason("relevé d'août")
            .comment("meter 7")
            .request_id("req-1")
            .plugin_property("k", "v w")
            .build()
            .unwrap()
    };
    let answers = || vec![status(503), status(502), failure(TransportErrorKind::Io), status(201)];
    let transport = scripted(answers());
    let poster = client(transport.clone(), Some(VirtualTimer::new()));
    let outcome = block_on(poster.record_usage(&record(None)).options(options())).unwrap();
    assert_eq!(outcome.attempts(), 4);
    same(&transport.seen.lock().unwrap());

    let body = r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","startDate":"2013-08-01","endDate":"2013-09-01","rolledUpUnits":[]}"#;
    let mut script = answers();
    script[3] = Ok(Response::new(Bytes::from(body)));
    let transport = scripted(script);
    let reader = client(transport.clone(), Some(VirtualTimer::new()));
    block_on(
        reader
            .get_usage(SUB.parse().unwrap(), "liters/day", window())
            .unwrap()
            .options(options()),
    )
    .unwrap();
    same(&transport.seen.lock().unwrap());
}

#[test]
fn get_retries_on_gateway_errors_and_gives_up_after_max_attempts() {
    let transport = scripted(vec![
        status(502),
        status(504),
        failure(TransportErrorKind::Timeout),
        status(503),
    ]);
    let timer = VirtualTimer::new();
    let client = client(transport.clone(), Some(timer.clone()));
    let err = block_on(client.get_all_usage(SUB.parse().unwrap(), window())).unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(transport.seen.lock().unwrap().len(), 4);
    assert_eq!(timer.sleeps().len(), 3);
}

#[test]
fn non_retryable_answers_are_returned_at_once() {
    for answer in [
        status(400),
        status(401),
        status(404),
        status(500),
        failure(TransportErrorKind::InvalidRequest),
    ] {
        let transport = scripted(vec![answer]);
        let client = client(transport.clone(), Some(VirtualTimer::new()));
        assert!(block_on(client.get_all_usage(SUB.parse().unwrap(), window())).is_err());
        assert_eq!(transport.seen.lock().unwrap().len(), 1);
    }
}

#[test]
fn retry_after_longer_than_allowed_or_than_the_deadline_ends_the_retries() {
    let transport = scripted(vec![with_header(429, "retry-after", "3600")]);
    let client1 = client(transport.clone(), Some(VirtualTimer::new()));
    let err = block_on(client1.get_all_usage(SUB.parse().unwrap(), window())).unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));

    let transport = scripted(vec![with_header(503, "retry-after", "20")]);
    let client2 = client(transport.clone(), Some(VirtualTimer::new()));
    let err = block_on(
        client2.get_all_usage(SUB.parse().unwrap(), window()).options(
            RequestOptions::builder()
                .deadline(Duration::from_secs(10))
                .build()
                .unwrap(),
        ),
    )
    .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(transport.seen.lock().unwrap().len(), 1);
}

/// A transport that never answers: only the deadline can end the call.
#[derive(Debug)]
struct Silent;

#[async_trait::async_trait]
impl Transport for Silent {
    async fn send(&self, _: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        std::future::pending().await
    }
}

/// A timer on tokio's clock, which tests pause.
#[derive(Debug)]
struct TokioTimer;

impl Timer for TokioTimer {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_call_that_never_answers() {
    let client = UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(Silent)
        .timer(TokioTimer)
        .build()
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = client
        .get_all_usage(SUB.parse().unwrap(), window())
        .options(
            RequestOptions::builder()
                .deadline(Duration::from_secs(3))
                .build()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded { attempts: 1, .. }), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[test]
fn secrets_never_show() {
    let transport = scripted(vec![status(401)]);
    let client = UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "hunter2-password")
        .tenant("bob", "lazar-secret")
        .transport(transport.clone())
        .retry_policy(RetryPolicy::none().without_deadline())
        .build()
        .unwrap();
    let options = RequestOptions::builder()
        .tenant(TenantCredentials::new("acme", "acme-secret"))
        .user(usage_core::UserCredentials::new("u", "other-password"))
        .build()
        .unwrap();
    let err = block_on(
        client
            .get_all_usage(SUB.parse().unwrap(), window())
            .options(options.clone()),
    )
    .unwrap_err();
    let builder = UsageClient::builder("http://h")
        .user("a", "hunter2-password")
        .tenant("b", "lazar-secret");
    let texts = [
        format!("{client:?}"),
        format!("{options:?}"),
        format!("{err:?} {err}"),
        format!("{builder:?}"),
        format!("{:?}", client.config()),
        format!("{:?}", transport.seen.lock().unwrap()[0].headers()),
    ];
    for text in texts {
        for secret in ["hunter2", "lazar-secret", "acme-secret", "other-password", "aHVudGVy"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn without_a_timer_there_is_one_attempt() {
    let transport = scripted(vec![status(503)]);
    let client = client(transport.clone(), None);
    let err = block_on(client.get_all_usage(SUB.parse::<SubscriptionId>().unwrap(), window())).unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(transport.seen.lock().unwrap().len(), 1);
}

#[test]
fn a_client_without_a_timer_that_would_retry_or_stop_at_a_deadline_is_refused() {
    let builder = || {
        UsageClient::builder("http://127.0.0.1:8080")
            .user("admin", "password")
            .tenant("bob", "lazar")
            .transport(scripted(vec![]))
    };
    for policy in [
        RetryPolicy::default(),
        RetryPolicy::none(),
        RetryPolicy::default().with_max_attempts(2).without_deadline(),
    ] {
        let err = builder().retry_policy(policy.clone()).build().unwrap_err();
        assert!(err.is_invalid_input(), "{policy:?}: {err}");
        assert!(
            err.to_string().contains("timer: is required for retries and deadlines"),
            "{err}"
        );
        // The same policy with a timer is fine.
        assert!(builder()
            .retry_policy(policy)
            .timer(VirtualTimer::new())
            .build()
            .is_ok());
    }
    assert!(builder()
        .retry_policy(RetryPolicy::none().without_deadline())
        .build()
        .is_ok());
}

#[test]
fn a_call_deadline_without_a_timer_is_refused_before_sending() {
    let transport = scripted(vec![]);
    let client = client(transport.clone(), None);
    let options = RequestOptions::builder()
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = block_on(client.get_all_usage(SUB.parse().unwrap(), window()).options(options)).unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("deadline: is required"), "{err}");
    assert!(transport.seen.lock().unwrap().is_empty());
}

#[test]
fn without_a_deadline_retries_still_wait_and_go_on() {
    let timer = VirtualTimer::new();
    let transport = scripted(vec![status(503), status(503), status(201)]);
    let client = UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport.clone())
        .timer(timer.clone())
        .retry_policy(RetryPolicy::default().with_jitter(false).without_deadline())
        .build()
        .unwrap();
    let record = record(None);
    let outcome = block_on(client.record_usage(&record)).unwrap();
    assert_eq!(outcome.attempts(), 3);
    assert_eq!(timer.sleeps(), [Duration::from_millis(100), Duration::from_millis(200)]);
}

/// Answers 201 after yielding once (so that the client's race has to wait), and declares a
/// timeout of its own.
#[derive(Debug)]
struct Bounded(Option<Duration>);

#[async_trait::async_trait]
impl Transport for Bounded {
    async fn send(&self, _: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        tokio::task::yield_now().await;
        status(201)
    }

    fn timeout(&self) -> Option<Duration> {
        self.0
    }
}

/// Counts the sleeps the client makes (awaited or not).
#[derive(Debug, Clone, Default)]
struct CountingTimer(Arc<Mutex<u32>>);

impl Timer for CountingTimer {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) -> Sleep {
        *self.0.lock().unwrap() += 1;
        Box::pin(tokio::time::sleep(duration))
    }
}

#[tokio::test]
async fn a_transport_bounded_within_the_deadline_needs_no_timer_of_the_client() {
    for (bound, deadline, sleeps) in [
        (Some(Duration::from_secs(10)), Duration::from_secs(60), 0),
        (None, Duration::from_secs(60), 1),
        (Some(Duration::from_secs(120)), Duration::from_secs(60), 1),
    ] {
        let timer = CountingTimer::default();
        let client = UsageClient::builder("http://127.0.0.1:8080")
            .user("admin", "password")
            .tenant("bob", "lazar")
            .transport(Bounded(bound))
            .timer(timer.clone())
            .build()
            .unwrap();
        let record = record(None);
        let options = RequestOptions::builder().deadline(deadline).build().unwrap();
        client.record_usage(&record).options(options).await.unwrap();
        assert_eq!(
            *timer.0.lock().unwrap(),
            sleeps,
            "bound {bound:?}, deadline {deadline:?}"
        );
    }
}
