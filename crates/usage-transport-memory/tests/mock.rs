//! The scripted mock and the instant timer.

mod common;

use std::time::Duration;

use common::*;
use http::Method;
use usage_core::{RetryPolicy, TransportErrorKind, UsageClient};
use usage_models::SubscriptionId;
use usage_transport_memory::{InstantTimer, MockTransport, Reply, Rule};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

fn sub() -> SubscriptionId {
    SUB.parse().unwrap()
}

fn client_of(mock: &MockTransport, timer: Option<&InstantTimer>) -> UsageClient {
    let builder = UsageClient::builder(BASE)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(mock.clone());
    match timer {
        Some(timer) => builder.timer(timer.clone()).build().unwrap(),
        None => builder
            .retry_policy(RetryPolicy::none().without_deadline())
            .build()
            .unwrap(),
    }
}

fn rolled_up(amount: &str) -> Reply {
    Reply::json_text(
        200,
        format!(
            r#"{{"subscriptionId":"{SUB}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[{{"unitType":"gallons","amount":{amount}}}]}}"#
        ),
    )
}

#[tokio::test]
async fn retries_503_503_then_201_on_an_instant_timer() {
    let mock = MockTransport::new();
    mock.expect(Rule::post("/1.0/kb/usages").replies([
        Reply::status(503).header("retry-after", "1"),
        Reply::status(503).header("retry-after", "1"),
        Reply::created(),
    ]));
    let timer = InstantTimer::new();
    let client = client_of(&mock, Some(&timer));
    let outcome = client
        .record_usage(&one(sub(), "gallons", "2013-08-01", "10"))
        .await
        .unwrap();
    assert_eq!(outcome.attempts(), 3);
    assert!(!outcome.already_recorded());
    assert_eq!(timer.sleeps(), [Duration::from_secs(1), Duration::from_secs(1)]);
    assert_eq!(timer.elapsed(), Duration::from_secs(2));
    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    let tracking: Vec<_> = requests
        .iter()
        .map(|r| r.body_json().unwrap()["trackingId"].clone())
        .collect();
    assert_eq!(tracking[0], outcome.tracking_id().as_str());
    assert!(
        tracking.iter().all(|t| *t == tracking[0]),
        "every attempt under one tracking id"
    );
    mock.assert_all_consumed();
}

#[tokio::test]
async fn rules_match_method_path_query_header_and_body() {
    let mock = MockTransport::new();
    let path = format!("/1.0/kb/usages/{SUB}/gallons");
    mock.expect(
        Rule::get(&path)
            .query("startDate", "2013-08-01")
            .query("endDate", "2013-09-02")
            .reply(rolled_up("1")),
    );
    mock.expect(
        Rule::get(&path)
            .query("startDate", "2013-08-01")
            .header("x-killbill-apikey", "bob")
            .header("accept", "application/json")
            .reply(rolled_up("15.000000000")),
    );
    mock.expect(
        Rule::post("/1.0/kb/usages")
            .body_contains("\"unitType\":\"liters\"")
            .matching("created by the importer", |r| {
                r.header("x-killbill-createdby") == Some("importer")
            })
            .reply(Reply::created()),
    );
    let client = client_of(&mock, None);
    let usage = client
        .get_usage(sub(), "gallons", window("2013-08-01", "2013-09-01"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "15.000000000");
    client
        .record_usage(&one(sub(), "liters", "2013-08-01", "1"))
        .options(
            usage_core::RequestOptions::builder()
                .created_by("importer")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mock.unconsumed_rules().len(), 1, "the first rule never matched");
    assert!(mock.unconsumed_rules()[0].starts_with("#1 GET"));
}

#[test]
fn body_json_matches_regardless_of_key_order() {
    let mock = MockTransport::new();
    mock.expect(
        Rule::post("/x")
            .body_json(serde_json::json!({"a": 1, "b": [true]}))
            .reply(Reply::status(204)),
    );
    let response = mock
        .respond(Raw::new(Method::POST, "/x").body(r#"{ "b":[true], "a":1 }"#).build())
        .unwrap();
    assert_eq!(response.status(), 204);
    let miss = mock.respond(Raw::new(Method::POST, "/x").body(r#"{"a":2,"b":[true]}"#).build());
    assert_eq!(miss.unwrap_err().kind(), TransportErrorKind::Other);
}

#[test]
fn once_times_and_always() {
    let mock = MockTransport::new();
    mock.expect(Rule::get("/once").reply(Reply::status(200)));
    mock.expect(Rule::get("/twice").reply(Reply::status(202)).times(2));
    mock.expect(Rule::get("/always").reply(Reply::status(204)).always());
    mock.expect(
        Rule::get("/never")
            .reply(Reply::status(200))
            .always()
            .named("health check"),
    );
    let get = |path: &str| mock.respond(Raw::get(path).build()).map(|r| r.status().as_u16());
    assert_eq!(get("/once").unwrap(), 200);
    assert!(get("/once").is_err(), "used up");
    assert_eq!(get("/twice").unwrap(), 202);
    assert_eq!(get("/twice").unwrap(), 202);
    assert!(get("/twice").is_err());
    for _ in 0..5 {
        assert_eq!(get("/always").unwrap(), 204);
    }
    let unconsumed = mock.unconsumed_rules();
    assert_eq!(unconsumed.len(), 1);
    assert!(
        unconsumed[0].contains("\"health check\": GET /never"),
        "{}",
        unconsumed[0]
    );
    assert!(unconsumed[0].contains("used 0 of any number of times"));
}

#[test]
fn a_sequence_longer_than_its_replies_repeats_the_last() {
    let mock = MockTransport::new();
    mock.expect(
        Rule::get("/s")
            .replies([Reply::status(500), Reply::status(200)])
            .times(4),
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| mock.respond(Raw::get("/s").build()).unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, [500, 200, 200, 200]);
    mock.assert_all_consumed();
}

#[test]
fn every_request_is_captured_in_order() {
    let mock = MockTransport::new();
    mock.expect(Rule::get("/a").always());
    mock.expect(Rule::post("/b").reply(Reply::created()));
    mock.respond(Raw::get("/a?x=1&y=a%20b").header("x-request-id", "r1").build())
        .unwrap();
    mock.respond(Raw::new(Method::POST, "/b").body("hello").build())
        .unwrap();
    mock.respond(Raw::get("/a").build()).unwrap();
    let requests = mock.requests();
    assert_eq!(mock.request_count(), 3);
    assert_eq!(
        requests.iter().map(|r| r.method().as_str()).collect::<Vec<_>>(),
        ["GET", "POST", "GET"]
    );
    assert_eq!(requests[0].uri().to_string(), "http://kb.test/a?x=1&y=a%20b");
    assert_eq!(requests[0].path(), "/a");
    assert_eq!(requests[0].query("y").as_deref(), Some("a b"));
    assert_eq!(requests[0].header("x-request-id"), Some("r1"));
    assert_eq!(requests[1].body_text(), "hello");
    assert_eq!(mock.last_request().unwrap().path(), "/a");
}

#[test]
fn assert_all_consumed_names_the_unused_rules() {
    let mock = MockTransport::new();
    mock.expect(Rule::post("/1.0/kb/usages").reply(Reply::created()).named("first post"));
    mock.expect(Rule::get("/1.0/kb/usages/x").reply(Reply::status(404)).times(2));
    mock.respond(Raw::get("/1.0/kb/usages/x").build()).unwrap();
    let panic = std::panic::catch_unwind(|| mock.assert_all_consumed()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("2 rule(s) not used up"), "{message}");
    assert!(
        message.contains(r#"#1 "first post": POST /1.0/kb/usages -> [201] (used 0 of 1 time(s))"#),
        "{message}"
    );
    assert!(
        message.contains("#2 GET /1.0/kb/usages/x -> [404] (used 1 of 2 time(s))"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unmatched_request_is_a_transport_error_naming_the_request_and_the_rules() {
    let mock = MockTransport::new();
    mock.expect(Rule::get("/1.0/kb/usages/other").reply(Reply::status(200)));
    let client = client_of(&mock, None);
    let error = client
        .record_usage(&one(sub(), "gallons", "2013-08-01", "1"))
        .await
        .unwrap_err();
    let transport = error.transport_error().unwrap();
    assert_eq!(transport.kind(), TransportErrorKind::Other);
    let message = transport.message();
    assert!(message.contains("no rule matches the request"), "{message}");
    assert!(message.contains("POST http://kb.test/1.0/kb/usages"), "{message}");
    assert!(message.contains(&format!("\"subscriptionId\":\"{SUB}\"")), "{message}");
    assert!(
        message.contains("#1 GET /1.0/kb/usages/other -> [200] (used 0 of 1 time(s))"),
        "{message}"
    );
    assert!(message.contains("authorization: [redacted]"), "{message}");
    assert!(
        !message.contains("lazar") && !message.contains("YWRtaW46cGFzc3dvcmQ="),
        "{message}"
    );
    // With no rules at all.
    let empty = MockTransport::new();
    let error = empty.respond(Raw::get("/z").build()).unwrap_err();
    assert!(
        error
            .message()
            .ends_with("remaining rules:\n  (none)\nused-up rules:\n  (none)"),
        "{}",
        error.message()
    );
    // Used-up rules are listed apart.
    let once = MockTransport::new();
    once.expect(Rule::get("/z").reply(Reply::status(204)));
    once.respond(Raw::get("/z").build()).unwrap();
    let error = once.respond(Raw::get("/z").build()).unwrap_err();
    assert!(
        error
            .message()
            .ends_with("remaining rules:\n  (none)\nused-up rules:\n  #1 GET /z -> [204] (used 1 of 1 time(s))"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn scripted_transport_errors_and_kill_bill_errors_come_back_typed() {
    let mock = MockTransport::new();
    for kind in [
        TransportErrorKind::Connect,
        TransportErrorKind::Timeout,
        TransportErrorKind::InvalidRequest,
    ] {
        mock.expect(Rule::post("/1.0/kb/usages").reply(Reply::error(kind, "scripted")));
    }
    mock.expect(Rule::post("/1.0/kb/usages").reply(Reply::duplicate_tracking_id("t-1")));
    mock.expect(Rule::get(format!("/1.0/kb/usages/{SUB}")).reply(Reply::subscription_not_found(SUB)));
    mock.expect(Rule::get(format!("/1.0/kb/usages/{SUB}/gallons")).reply(Reply::body(
        502,
        "text/html",
        "<html>Bad Gateway</html>",
    )));
    let client = client_of(&mock, None);
    let record = one(sub(), "gallons", "2013-08-01", "1");
    for kind in [
        TransportErrorKind::Connect,
        TransportErrorKind::Timeout,
        TransportErrorKind::InvalidRequest,
    ] {
        let error = client.record_usage(&record).await.unwrap_err();
        assert_eq!(error.transport_error().unwrap().kind(), kind);
    }
    let error = client.record_usage(&record).await.unwrap_err();
    assert!(error.is_duplicate_tracking_id());
    let error = client
        .get_all_usage(sub(), window("2013-08-01", "2013-09-01"))
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    let error = client
        .get_usage(sub(), "gallons", window("2013-08-01", "2013-09-01"))
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::BAD_GATEWAY));
    assert!(error.kill_bill_error().is_none());
    mock.assert_all_consumed();
}

#[tokio::test]
async fn a_timer_records_backoffs_without_waiting() {
    let mock = MockTransport::new();
    mock.expect(Rule::get(format!("/1.0/kb/usages/{SUB}")).replies([
        Reply::error(TransportErrorKind::Io, "reset"),
        Reply::status(502),
        rolled_up("2"),
    ]));
    let timer = InstantTimer::new();
    let client = UsageClient::builder(BASE)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(mock.clone())
        .timer(timer.clone())
        .retry_policy(
            RetryPolicy::default()
                .with_jitter(false)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .build()
        .unwrap();
    let usage = client
        .get_all_usage(sub(), window("2013-08-01", "2013-09-01"))
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "2");
    assert_eq!(timer.sleeps(), [Duration::from_millis(100), Duration::from_millis(200)]);
    mock.assert_all_consumed();
}

#[tokio::test]
async fn an_http_date_retry_after_is_read_against_the_timer_clock() {
    // 20 s after the timer's wall clock: in 1994, long past for the system clock, which would
    // make the wait 0.
    let start = std::time::UNIX_EPOCH + Duration::from_secs(784_111_740); // 1994-11-06 08:49:00 UTC
    let mock = MockTransport::new();
    mock.expect(Rule::get(format!("/1.0/kb/usages/{SUB}")).replies([
        Reply::status(503).header("retry-after", "Sun, 06 Nov 1994 08:49:20 GMT"),
        Reply::status(429).header("retry-after", "Sun, 06 Nov 1994 08:49:23 GMT"),
        rolled_up("2"),
    ]));
    let timer = InstantTimer::new().with_wall_clock(start);
    let client = UsageClient::builder(BASE)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(mock.clone())
        .timer(timer.clone())
        .build()
        .unwrap();
    client
        .get_all_usage(sub(), window("2013-08-01", "2013-09-01"))
        .await
        .unwrap();
    // The second date is read after the first wait: 3 s later on the same clock.
    assert_eq!(timer.sleeps(), [Duration::from_secs(20), Duration::from_secs(3)]);
    mock.assert_all_consumed();
}

/// The mock decodes a query as the emulator does, and as Kill Bill (Jersey) does: `+` is a
/// space, `%2B` is a `+`; so a rule on a query value matches what the server would read.
#[test]
fn the_mock_decodes_a_query_as_the_emulator_does() {
    let mock = MockTransport::new();
    mock.expect(
        Rule::get("/q")
            .query("d", "2013-08-01T10:00:00 02:00")
            .reply(Reply::status(200)),
    );
    mock.respond(Raw::get("/q?d=2013-08-01T10:00:00+02:00&e=%2B1").build())
        .unwrap();
    let request = mock.last_request().unwrap();
    assert_eq!(request.query("e").as_deref(), Some("+1"));
    mock.assert_all_consumed();

    // The emulator reads the same `+` as a space: a date it cannot parse, quoted back.
    let kb = usage_transport_memory::InMemoryKillBill::new();
    let subscription = kb.create_subscription();
    let answer = Raw::get(&format!(
        "/1.0/kb/usages/{subscription}?startDate=2013-08-01T10:00:00+02:00&endDate=2013-09-01"
    ))
    .send(&kb);
    assert_eq!(answer.status(), 400);
    let body = String::from_utf8_lossy(answer.body()).into_owned();
    assert!(body.contains("2013-08-01T10:00:00 02:00"), "{body}");
}
