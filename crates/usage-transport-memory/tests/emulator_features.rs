//! The emulator beyond the rows of docs/contract.md: faults, the admin route, the legacy wire format,
//! auto-provisioning, inspection and concurrency.

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use usage_core::{RequestOptions, RetryPolicy, TenantCredentials, Transport, TransportErrorKind};
use usage_models::{SubscriptionId, SubscriptionUsageRecord};
use usage_transport_memory::{DuplicateCheck, EmulatorError, Fault, InMemoryKillBill, InstantTimer, WireFormat};

const GOOD_RECORD: &str = r#"{"recordDate":"2013-08-01","amount":1}"#;

/// A POST of one record under the tracking id `t-1`.
fn tracked_post(sub: SubscriptionId) -> http::Request<bytes::Bytes> {
    let body = body_with(sub, GOOD_RECORD).replace(r#""unitUsageRecords""#, r#""trackingId":"t-1","unitUsageRecords""#);
    Raw::post(body).build()
}

fn get_request(sub: SubscriptionId) -> http::Request<bytes::Bytes> {
    Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01")).build()
}

#[tokio::test]
async fn retries_through_503_503_201_with_an_instant_timer() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    kb.fail_next_with_503(2, 1);
    let timer = InstantTimer::new();
    let outcome = retrying_client(&kb, &timer)
        .record_usage(&one(sub, "gallons", "2013-08-01", "10"))
        .await
        .unwrap();
    assert_eq!(outcome.attempts(), 3);
    assert_eq!(timer.sleeps(), [Duration::from_secs(1), Duration::from_secs(1)]);
    assert_eq!(kb.row_count(), 1);
    assert_eq!(kb.pending_faults(), 0);
}

#[tokio::test]
async fn status_faults_answer_without_reaching_kill_bill() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    kb.inject(Fault::unavailable(7), 1);
    kb.inject(Fault::proxy_page(StatusCode::GATEWAY_TIMEOUT), 1);
    let post = || Raw::post(body_with(sub, r#"{"recordDate":"2013-08-01","amount":1}"#)).build();
    let first = kb.serve(post()).await.unwrap();
    assert_eq!(first.status(), 503);
    assert_eq!(first.headers()["retry-after"], "7");
    assert!(first.body().is_empty());
    let second = kb.serve(post()).await.unwrap();
    assert_eq!(second.status(), 504);
    assert!(
        text(&second).contains("<h1>504 Gateway Timeout</h1>"),
        "{}",
        text(&second)
    );
    assert_eq!(kb.row_count(), 0);
    assert_eq!(kb.serve(post()).await.unwrap().status(), 201);
    assert_eq!(kb.row_count(), 1);
}

#[tokio::test]
async fn transport_faults_fail_without_reaching_kill_bill() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    for kind in [
        TransportErrorKind::Connect,
        TransportErrorKind::Timeout,
        TransportErrorKind::Io,
    ] {
        kb.inject(Fault::transport(kind), 1);
        let error = client
            .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
            .await
            .unwrap_err();
        assert_eq!(error.transport_error().unwrap().kind(), kind);
    }
    assert_eq!(kb.row_count(), 0);
}

#[tokio::test]
async fn commit_then_lose_makes_naive_retries_double_count() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    let no_tracking_id = one(sub, "gallons", "2013-08-01", "10");
    kb.commit_then_lose_next(1);
    let error = client.record_usage(&no_tracking_id).await.unwrap_err();
    assert_eq!(error.transport_error().unwrap().kind(), TransportErrorKind::Incomplete);
    assert_eq!(kb.row_count(), 1, "the usage was stored");
    // A naive resubmission (a new call: a new generated tracking id) counts it twice.
    client.record_usage(&no_tracking_id).await.unwrap();
    let total = client
        .get_usage(sub, "gallons", window("2013-08-01", "2013-08-02"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(total.amount_of("gallons"), Some("20".parse().unwrap()));
    // Resubmitting under the lost call's tracking id is refused as a duplicate.
    kb.commit_then_lose_next(1);
    let call = client.record_usage(&no_tracking_id);
    let tracking_id = call.tracking_id().clone();
    assert!(call.await.is_err());
    let again = no_tracking_id.clone().with_tracking_id(tracking_id);
    assert!(client
        .record_usage(&again)
        .await
        .unwrap_err()
        .is_duplicate_tracking_id());
    assert_eq!(kb.row_count(), 3);
}

#[tokio::test]
async fn the_retrying_client_survives_a_lost_answer_without_double_counting() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    kb.commit_then_lose_next(1);
    let outcome = retrying_client(&kb, &InstantTimer::new())
        .record_usage(&one(sub, "gallons", "2013-08-01", "10"))
        .await
        .unwrap();
    assert_eq!(outcome.attempts(), 2);
    assert!(outcome.already_recorded());
    assert_eq!(kb.rows(sub).len(), 1);
    assert_eq!(kb.rows(sub)[0].tracking_id(), outcome.tracking_id().as_str());
}

#[test]
fn next_fault_hands_queued_faults_to_a_server_in_order() {
    let kb = InMemoryKillBill::new();
    kb.inject(Fault::status(StatusCode::TOO_MANY_REQUESTS), 2);
    kb.inject(Fault::commit_then_lose(), 1);
    assert_eq!(kb.pending_faults(), 3);
    assert_eq!(kb.next_fault(), Some(Fault::status(StatusCode::TOO_MANY_REQUESTS)));
    assert_eq!(kb.next_fault().unwrap().response().unwrap().status(), 429);
    let lose = kb.next_fault().unwrap();
    assert_eq!(lose.transport_error().unwrap().kind(), TransportErrorKind::Incomplete);
    assert_eq!(kb.next_fault(), None);
    kb.inject(Fault::unavailable(1), 5);
    kb.clear_faults();
    assert_eq!(kb.pending_faults(), 0);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_the_transport_answer() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    kb.set_latency(Duration::from_secs(5));
    assert_eq!(kb.latency(), Duration::from_secs(5));
    // The clock is paused: it moves only when every task waits, and then exactly to the next
    // timer, so the virtual time the call took is the latency, to the nanosecond.
    let started = tokio::time::Instant::now();
    let response = kb.send(get_request(sub)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["subscriptionId"], sub.to_string());
}

#[test]
fn the_admin_route_creates_and_cancels_subscriptions_in_the_callers_tenant() {
    let kb = InMemoryKillBill::builder().tenant("acme", "acme-secret").build();
    let admin = |body: &str| {
        Raw::new(Method::POST, "/emulator/subscriptions")
            .header("content-type", "application/json")
            .body(body)
    };
    let response = admin("").send(&kb);
    assert_eq!(response.status(), 201);
    assert_eq!(content_type(&response), "application/json");
    let created: SubscriptionId = json(&response)["subscriptionId"].as_str().unwrap().parse().unwrap();
    assert!(kb.has_subscription(created));
    let chosen = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
    let response = admin(&format!(
        r#"{{"subscriptionId":"{chosen}","effectiveEndDate":"2013-08-15T00:00:00Z"}}"#
    ))
    .send(&kb);
    assert_eq!(response.status(), 201);
    assert_eq!(text(&response), format!(r#"{{"subscriptionId":"{chosen}"}}"#));
    let after_end = body_with(chosen.parse().unwrap(), r#"{"recordDate":"2013-08-16","amount":1}"#);
    assert_eq!(Raw::post(after_end.clone()).send(&kb).status(), 400);
    // Posting the id again with a later end date moves the end.
    let response = admin(&format!(
        r#"{{"subscriptionId":"{chosen}","effectiveEndDate":"2013-09-01"}}"#
    ))
    .send(&kb);
    assert_eq!(response.status(), 201);
    assert_eq!(Raw::post(after_end).send(&kb).status(), 201);
    // Another tenant's subscription, bad input, other methods, no credentials.
    let theirs = admin(&format!(r#"{{"subscriptionId":"{chosen}"}}"#))
        .header("x-killbill-apikey", "acme")
        .header("x-killbill-apisecret", "acme-secret")
        .send(&kb);
    assert_eq!(theirs.status(), 500);
    assert_eq!(json(&theirs)["className"], "java.lang.IllegalStateException");
    assert_eq!(admin(r#"{"subscriptionId":"nope"}"#).send(&kb).status(), 400);
    assert_eq!(admin(r#"{"effectiveEndDate":"2013-02-30"}"#).send(&kb).status(), 400);
    assert_eq!(admin(r#"{"other":1}"#).send(&kb).status(), 400);
    assert_eq!(Raw::get("/emulator/subscriptions").send(&kb).status(), 405);
    assert_eq!(admin("").without("authorization").send(&kb).status(), 401);
    assert_eq!(kb.subscription_count(), 2);
}

#[tokio::test]
async fn the_legacy_wire_format_speaks_dates_and_integers() {
    let kb = InMemoryKillBill::builder().wire_format(WireFormat::Legacy022).build();
    assert_eq!(kb.wire_format(), WireFormat::Legacy022);
    let sub = kb.create_subscription();
    let client = client(&kb);
    let record = SubscriptionUsageRecord::builder(sub)
        .record("gallons", day("2013-08-01"), 10)
        .record("gallons", day("2013-08-31"), 5)
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    let response = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01")).send(&kb);
    assert_eq!(
        text(&response),
        format!(
            r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01","endDate":"2013-09-01","rolledUpUnits":[{{"unitType":"gallons","amount":15}}]}}"#
        )
    );
    let usage = client
        .get_usage(sub, "gallons", window("2013-08-01", "2013-08-31"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some("10".parse().unwrap()));
    assert_eq!(usage.start_date().to_string(), "2013-08-01");
    // Query dates are strict.
    let response = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-08-1&endDate=2013-09-01")).send(&kb);
    assert_eq!(response.status(), 400);
    assert_eq!(
        text(&response),
        error_body(
            "java.lang.IllegalArgumentException",
            r#"Invalid format: "2013-08-1" is malformed at "1""#
        )
    );
    // Amounts are longs: a fraction is truncated; a date-time is not a date.
    assert_eq!(
        Raw::post(body_with(sub, r#"{"recordDate":"2013-08-02","amount":4.75}"#))
            .send(&kb)
            .status(),
        201
    );
    assert_eq!(kb.rows(sub)[1].amount().to_string(), "4");
    let response = Raw::post(body_with(sub, r#"{"recordDate":"2013-08-02T06:30:00Z","amount":1}"#)).send(&kb);
    assert_eq!(response.status(), 400);
    assert_eq!(
        json(&response)["className"],
        "com.fasterxml.jackson.databind.JsonMappingException"
    );
}

#[tokio::test]
async fn auto_provisioning_creates_unknown_subscriptions_in_the_requesting_tenant() {
    let kb = InMemoryKillBill::builder()
        .auto_provision(true)
        .tenant("acme", "acme-secret")
        .build();
    let client = client(&kb);
    let fresh = SubscriptionId::random();
    client
        .record_usage(&one(fresh, "gallons", "2013-08-01", "1"))
        .await
        .unwrap();
    assert!(kb.has_subscription(fresh));
    let read_first = SubscriptionId::random();
    let usage = client
        .get_all_usage(read_first, window("2013-08-01", "2013-09-01"))
        .await
        .unwrap();
    assert!(usage.rolled_up_units().is_empty());
    assert!(kb.has_subscription(read_first));
    // It now belongs to bob: acme gets the foreign-tenant error.
    let error = client
        .get_all_usage(fresh, window("2013-08-01", "2013-09-01"))
        .options(
            RequestOptions::builder()
                .tenant(TenantCredentials::new("acme", "acme-secret"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    kb.set_auto_provision(false);
    let error = client
        .record_usage(&one(SubscriptionId::random(), "gallons", "2013-08-01", "1"))
        .await
        .unwrap_err();
    assert!(error.is_not_found());
}

#[tokio::test]
async fn inspection_and_reset() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    let record = SubscriptionUsageRecord::builder(sub)
        .tracking_id("t-1")
        .record("b", day("2013-08-02"), 2)
        .record("a", day("2013-08-01"), "1.5")
        .build()
        .unwrap();
    client
        .record_usage(&record)
        .options(
            RequestOptions::builder()
                .created_by("importer")
                .reason("backfill")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let rows = kb.rows(sub);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].unit_type(), rows[0].amount().to_string()),
        ("a", "1.5".to_string())
    );
    assert_eq!(rows[0].subscription_id(), sub);
    assert_eq!(rows[0].tracking_id(), "t-1");
    assert_eq!(rows[0].created_by(), "importer");
    assert_eq!(rows[0].reason(), Some("backfill"));
    assert_eq!(rows[0].comment(), None);
    assert_eq!(rows[1].record_date().to_rfc3339(), "2013-08-02T00:00:00+00:00");
    assert_eq!(kb.row_count(), 2);
    assert_eq!(kb.subscription_count(), 1);
    assert!(kb.rows(SubscriptionId::random()).is_empty());
    kb.inject(Fault::unavailable(1), 3);
    kb.reset();
    assert_eq!(
        (kb.row_count(), kb.subscription_count(), kb.pending_faults()),
        (0, 0, 0)
    );
    assert!(kb.tenant_id("bob").is_some(), "tenants are kept");
    assert_eq!(
        kb.cancel_subscription(sub, chrono::Utc::now()),
        Err(EmulatorError::UnknownSubscription(sub))
    );
    assert_eq!(
        kb.create_subscription_in("nobody"),
        Err(EmulatorError::UnknownTenant("nobody".into()))
    );
}

#[test]
fn subscriptions_cannot_move_between_tenants() {
    let kb = InMemoryKillBill::builder().tenant("acme", "acme-secret").build();
    let sub = kb.create_subscription();
    let moved = kb.add_subscription(usage_transport_memory::NewSubscription::new().id(sub).tenant("acme"));
    assert_eq!(moved, Err(EmulatorError::OtherTenant(sub)));
    let same = kb.add_subscription(usage_transport_memory::NewSubscription::new().id(sub));
    assert_eq!(same, Ok(sub));
}

#[test]
fn the_emulator_is_send_sync_and_clones_share_state() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<InMemoryKillBill>();
    let kb = InMemoryKillBill::new();
    let clone = kb.clone();
    let sub = clone.create_subscription();
    assert!(kb.has_subscription(sub));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_are_stored_once() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let body = format!(
        r#"{{"subscriptionId":"{sub}","trackingId":"same","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate":"2013-08-01","amount":1}}]}}]}}"#
    );
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let kb = kb.clone();
        let request = Raw::post(body.clone()).build();
        tasks.push(tokio::spawn(async move {
            kb.send(request).await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 31);
    assert_eq!(kb.row_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_distinct_records_all_count() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .record_usage(&one(sub, "gallons", "2013-08-01", &i.to_string()))
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let total = client
        .get_usage(sub, "gallons", window("2013-08-01", "2013-08-02"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(total.amount_of("gallons"), Some((0..50).sum::<i64>().into()));
    assert_eq!(kb.row_count(), 50);
}

/// docs/contract.md §4: Kill Bill's duplicate check is a `SELECT` then the `INSERT`s, not atomic.
#[tokio::test(start_paused = true)]
async fn kill_bill_duplicate_check_stores_two_overlapping_posts() {
    let processing = Duration::from_millis(100);
    let kb = InMemoryKillBill::builder()
        .duplicate_check(DuplicateCheck::KillBill { processing })
        .build();
    let sub = kb.create_subscription();
    let post = || tracked_post(sub);
    let started = tokio::time::Instant::now();
    let (first, second) = tokio::join!(kb.process(post()), kb.process(post()));
    assert_eq!(started.elapsed(), processing, "both waited their processing time");
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(kb.rows(sub).len(), 2, "both passed the check before either inserted");
    // Once the insert is done, the check refuses the tracking id.
    let third = kb.process(post()).await;
    assert_eq!(third.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(&third)["code"], 50000);
    assert_eq!(kb.rows(sub).len(), 2);
    // `handle` does both steps at once.
    assert_eq!(kb.handle(post()).status(), StatusCode::BAD_REQUEST);

    // The default, atomic check: exactly one of two overlapping POSTs is stored.
    let kb = InMemoryKillBill::new();
    assert_eq!(kb.duplicate_check(), DuplicateCheck::Atomic);
    let sub2 = kb.create_subscription();
    let post2 = || tracked_post(sub2);
    let (first, second) = tokio::join!(kb.process(post2()), kb.process(post2()));
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 400]);
    assert_eq!(kb.rows(sub2).len(), 1);
}

/// A slow commit: the attempt is still being processed when a retry arrives.
#[tokio::test(start_paused = true)]
async fn a_slow_commit_overlaps_a_retry_and_counts_twice_only_with_kill_bills_check() {
    for (check, rows) in [
        (
            DuplicateCheck::KillBill {
                processing: Duration::from_millis(10),
            },
            2,
        ),
        (DuplicateCheck::Atomic, 1),
    ] {
        let kb = InMemoryKillBill::builder().duplicate_check(check).build();
        let sub = kb.create_subscription();
        let post = || tracked_post(sub);
        kb.inject(
            Fault::SlowCommit {
                processing: Duration::from_secs(1),
            },
            1,
        );
        let slow = tokio::spawn({
            let kb = kb.clone();
            let request = post();
            async move { kb.serve(request).await.unwrap().status() }
        });
        // The client gave up on the first attempt and retries while it is still processed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let retry = kb.serve(post()).await.unwrap().status();
        let slow = slow.await.unwrap();
        assert_eq!(kb.rows(sub).len(), rows, "{check:?}: retry {retry}, slow {slow}");
        assert_eq!(retry, StatusCode::CREATED, "{check:?}");
        let expected = if rows == 2 {
            StatusCode::CREATED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(slow, expected, "{check:?}");
    }
}

/// A POST whose attempt timed out (or met a 504) is retried no sooner than the policy's
/// `timed_out_post_wait` (5 s by default); other failures and GETs keep the plain backoff.
#[tokio::test]
async fn a_timed_out_post_waits_before_its_retry() {
    let policy = || RetryPolicy::default().with_jitter(false);
    for (fault, wait) in [
        (Fault::transport(TransportErrorKind::Timeout), Duration::from_secs(5)),
        (Fault::proxy_page(StatusCode::GATEWAY_TIMEOUT), Duration::from_secs(5)),
        (
            Fault::transport(TransportErrorKind::Incomplete),
            Duration::from_millis(100),
        ),
        (Fault::proxy_page(StatusCode::BAD_GATEWAY), Duration::from_millis(100)),
        (Fault::unavailable(1), Duration::from_secs(1)),
    ] {
        let kb = InMemoryKillBill::new();
        let sub = kb.create_subscription();
        let timer = InstantTimer::new();
        let client = client_with(kb.clone(), timer.clone(), policy());
        kb.inject(fault.clone(), 1);
        let outcome = client
            .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
            .await
            .unwrap();
        assert_eq!(outcome.attempts(), 2, "{fault:?}");
        assert_eq!(timer.sleeps(), [wait], "{fault:?}");
        // A GET is never counted twice: it keeps the backoff.
        kb.inject(fault.clone(), 1);
        client
            .get_all_usage(sub, window("2013-08-01", "2013-09-01"))
            .await
            .unwrap();
        assert!(
            timer.sleeps()[1] <= Duration::from_secs(1),
            "{fault:?}: {:?}",
            timer.sleeps()
        );
    }
    // Configurable; zero is the plain backoff.
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let timer = InstantTimer::new();
    let client = client_with(
        kb.clone(),
        timer.clone(),
        policy().with_timed_out_post_wait(Duration::ZERO),
    );
    kb.inject(Fault::transport(TransportErrorKind::Timeout), 1);
    client
        .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
        .await
        .unwrap();
    assert_eq!(timer.sleeps(), [Duration::from_millis(100)]);
}

/// The emulator behind an attempt timeout, as an HTTP transport has one: the attempt goes on
/// being processed after the client stopped waiting for it.
#[derive(Debug, Clone)]
struct AttemptTimeout {
    kb: InMemoryKillBill,
    timeout: Duration,
}

#[async_trait::async_trait]
impl Transport for AttemptTimeout {
    async fn send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, usage_core::TransportError> {
        let kb = self.kb.clone();
        let processing = tokio::spawn(async move { kb.send(request).await });
        match tokio::time::timeout(self.timeout, processing).await {
            Ok(answer) => answer.expect("the emulator does not panic"),
            Err(_) => Err(usage_core::TransportError::new(
                TransportErrorKind::Timeout,
                "attempt timeout",
            )),
        }
    }
}

/// Tokio's clock, paused in these tests.
#[derive(Debug)]
struct TokioClock;

impl usage_core::Timer for TokioClock {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, duration: Duration) -> usage_core::Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// With Kill Bill's duplicate check, a slow commit (3 s) outlives the attempt timeout (1 s):
/// a retry within the next 2 s overlaps it and counts twice; the default wait after a timed-out
/// POST (5 s) lets the processing end first, and the retry is refused as a duplicate.
#[tokio::test(start_paused = true)]
async fn waiting_after_a_timed_out_post_keeps_a_slow_commit_from_counting_twice() {
    for (wait, rows) in [
        (Some(Duration::ZERO), 2),         // the policy before: retried after the 100 ms backoff
        (Some(Duration::from_secs(1)), 2), // shorter than the 2 s left of processing
        (None, 1),                         // the default, 5 s
    ] {
        let kb = InMemoryKillBill::builder()
            .duplicate_check(DuplicateCheck::KillBill {
                processing: Duration::from_millis(10),
            })
            .build();
        let sub = kb.create_subscription();
        let mut policy = RetryPolicy::default().with_jitter(false);
        if let Some(wait) = wait {
            policy = policy.with_timed_out_post_wait(wait);
        }
        let transport = AttemptTimeout {
            kb: kb.clone(),
            timeout: Duration::from_secs(1),
        };
        let client = client_with(transport, TokioClock, policy);
        kb.inject(
            Fault::SlowCommit {
                processing: Duration::from_secs(3),
            },
            1,
        );
        let outcome = client
            .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
            .await
            .unwrap();
        assert_eq!(outcome.attempts(), 2, "{wait:?}");
        assert_eq!(outcome.already_recorded(), rows == 1, "{wait:?}");
        // Let the slow commit finish.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(kb.rows(sub).len(), rows, "{wait:?}");
    }
}

/// With no tenant, `create_subscription` fails loudly instead of returning an id that exists
/// nowhere.
#[test]
#[should_panic(expected = "the emulator has no tenant")]
fn create_subscription_without_a_tenant_panics() {
    let kb = InMemoryKillBill::builder().without_default_credentials().build();
    let id = kb.create_subscription();
    unreachable!("created {id} with no tenant");
}
