//! The emulator over HTTP (`usage_transport_memory::serve`): robustness, and answers that are
//! exactly the emulator's (`handle`).

mod served;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use served::{get_request, raw_http, status_of, tracked_post, TestServer, BASIC};
use usage_transport_memory::serve::{build_emulator, ServeConfig};
use usage_transport_memory::Fault;

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const SUB2: &str = "0e1a4c7a-2222-4d47-9a7e-1f3c2c8f4a11";

#[test]
fn bodies_over_the_limit_and_slow_clients_are_cut_off() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_max_body_bytes(1024);
    config = config.with_header_read_timeout(Duration::from_millis(300));
    let server = TestServer::start(config);

    // A chunked body that grows past the limit: 413 once it does.
    let mut request = format!(
        "POST /1.0/kb/usages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        request.extend_from_slice(format!("{:x}\r\n{}\r\n", 512, "x".repeat(512)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw_http(server.addr, &request);
    assert_eq!(status_of(&response), 413, "{response}");

    // Headers that never end: the connection is closed without an answer.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    slow.write_all(b"GET /1.0/kb/usages HTTP/1.1\r\nHost: local").unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer, "", "closed without an answer");

    // Still serving.
    let response = raw_http(
        server.addr,
        get_request(
            &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            true,
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&response), 200, "{response}");
}

/// A request: method, path and query, headers, body.
type Case = (&'static str, String, Vec<(&'static str, &'static str)>, String);

/// A raw request and the same request as `handle()` takes it.
fn twin_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (Vec<u8>, http::Request<Bytes>) {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
        request = request.header(*name, *value);
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        request = request.header("content-length", body.len().to_string());
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    (raw.into_bytes(), request.body(Bytes::from(body.to_string())).unwrap())
}

/// Status, a header's value and body of a raw response.
fn parse_response(raw: &str, header: &str) -> (u16, Option<String>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let value = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case(header).then(|| value.trim().to_string())
    });
    (status_of(raw), value, body.to_string())
}

#[test]
fn serve_answers_exactly_what_handle_answers() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    let server = TestServer::start(config.clone());
    let twin = build_emulator(&config).unwrap();

    let auth = [
        ("Authorization", BASIC),
        ("X-Killbill-ApiKey", "bob"),
        ("X-Killbill-ApiSecret", "lazar"),
        ("Accept", "application/json"),
    ];
    let post = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut headers = auth.to_vec();
        headers.push(("Content-Type", "application/json"));
        headers.extend_from_slice(extra);
        headers
    };
    let record = format!(
        "{{\"subscriptionId\":\"{SUB}\",\"trackingId\":\"t-1\",\"unitUsageRecords\":[{{\"unitType\":\"api calls\",\
         \"usageRecords\":[{{\"recordDate\":\"2013-08-01T06:30:00Z\",\"amount\":333333333.333333333}}]}}]}}"
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/1.0/kb/usages".into(),
            post(&[("X-Killbill-CreatedBy", "test")]),
            record.clone(),
        ),
        (
            "POST",
            "/1.0/kb/usages".into(),
            post(&[("X-Killbill-CreatedBy", "test")]),
            record.clone(),
        ),
        ("POST", "/1.0/kb/usages".into(), post(&[]), record.replace("t-1", "t-2")),
        (
            "POST",
            "/1.0/kb/usages".into(),
            post(&[("X-Killbill-CreatedBy", "x")]),
            "{\"subscriptionId\":".into(),
        ),
        (
            "POST",
            "/1.0/kb/usages".into(),
            post(&[("X-Killbill-CreatedBy", "x")]),
            "{\"nope\":1}".into(),
        ),
        (
            "POST",
            "/1.0/kb/usages".into(),
            post(&[("X-Killbill-CreatedBy", "x")]),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}/api%20calls?startDate=2013-08-01&endDate=2013-08-01T06:30:00Z"),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01"),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01x&endDate=2013-09-01"),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB2}?startDate=2013-08-01&endDate=2013-09-01"),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            "/1.0/kb/usages/not-a-uuid?startDate=2013-08-01&endDate=2013-09-01".into(),
            auth.to_vec(),
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            vec![],
            String::new(),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            vec![("Authorization", BASIC)],
            String::new(),
        ),
        (
            "POST",
            "/emulator/subscriptions".into(),
            post(&[]),
            format!("{{\"subscriptionId\":\"{SUB2}\"}}"),
        ),
        (
            "GET",
            format!("/1.0/kb/usages/{SUB2}?startDate=2013-08-01&endDate=2013-09-01"),
            auth.to_vec(),
            String::new(),
        ),
    ];
    let mut statuses = Vec::new();
    for (method, path, headers, body) in &cases {
        let (raw, request) = twin_request(method, path, headers, body);
        let served = raw_http(server.addr, &raw);
        let expected = twin.handle(request);
        let (status, content_type, served_body) = parse_response(&served, "content-type");
        let what = format!("{method} {path}");
        assert_eq!(status, expected.status().as_u16(), "{what}: {served}");
        assert_eq!(
            content_type.as_deref(),
            expected.headers().get("content-type").map(|v| v.to_str().unwrap()),
            "{what}"
        );
        assert_eq!(served_body.as_bytes(), &expected.body()[..], "{what}");
        let (_, challenge, _) = parse_response(&served, "www-authenticate");
        assert_eq!(
            challenge.as_deref(),
            expected.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
            "{what}"
        );
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [201, 400, 400, 400, 400, 400, 200, 200, 400, 400, 404, 404, 401, 401, 201, 200]
    );
}

/// Issue 13's two answers, over HTTP through `serve`: a syntax error inside a nested value is
/// Jackson's `JsonMappingException` with the reference chain, and a path id that matches the
/// template but that `UUID.fromString` refuses is a 404 with an empty body.
#[test]
fn serve_matches_kill_bill_at_its_edges() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    let server = TestServer::start(config);
    let auth = [
        ("Authorization", BASIC),
        ("X-Killbill-ApiKey", "bob"),
        ("X-Killbill-ApiSecret", "lazar"),
        ("Accept", "application/json"),
    ];
    let send = |method: &str, path: &str, body: &str| {
        let mut headers = auth.to_vec();
        if method == "POST" {
            headers.extend([("Content-Type", "application/json"), ("X-Killbill-CreatedBy", "t")]);
        }
        let (raw, _) = twin_request(method, path, &headers, body);
        parse_response(&raw_http(server.addr, &raw), "content-type")
    };

    let body = format!(
        r#"{{"subscriptionId":"{SUB}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate": 2019-10-19","amount":1}}]}}]}}"#
    );
    let (status, content_type, answer) = send("POST", "/1.0/kb/usages", &body);
    assert_eq!((status, content_type.as_deref()), (400, Some("application/json")));
    let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        error["className"],
        "com.fasterxml.jackson.databind.JsonMappingException"
    );
    assert_eq!(error["causeClassName"], "com.fasterxml.jackson.core.JsonParseException");
    let record = "org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson";
    let cause = format!(
        "Unexpected character ('-' (code 45)): was expecting comma to separate Object entries\n at \
         [Source: (org.glassfish.jersey.message.internal.ReaderInterceptorExecutor$UnCloseableInputStream); \
         line: 1, column: {}]",
        body.find("-10-19").unwrap() + 2
    );
    assert_eq!(error["causeMessage"], cause);
    assert_eq!(
        error["message"],
        format!(
            "{cause} (through reference chain: {record}[\"unitUsageRecords\"]->java.util.ArrayList[0]->\
             {record}$UnitUsageRecordJson[\"usageRecords\"]->java.util.ArrayList[0])"
        )
    );
    // At the top level nothing wraps the parser's exception.
    let (status, _, answer) = send("POST", "/1.0/kb/usages", "xyz");
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(error["className"], "com.fasterxml.jackson.core.JsonParseException");
    assert_eq!(error["causeClassName"], serde_json::Value::Null);

    let window = "startDate=2013-08-01&endDate=2013-09-01";
    for path in [
        format!("/1.0/kb/usages/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz?{window}"),
        format!("/1.0/kb/usages/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/gallons?{window}"),
    ] {
        let (status, _, answer) = send("GET", &path, "");
        assert_eq!((status, answer.as_str()), (404, ""), "{path}");
    }
    // Lenient where Java is: 1-2-3-4-5 is a UUID (unknown here: the JSON 404).
    let (status, _, answer) = send("GET", &format!("/1.0/kb/usages/1-2-3-4-5?{window}"), "");
    assert_eq!(status, 404);
    assert!(
        answer.contains("Object id=00000001-0002-0003-0004-000000000005 type=SUBSCRIPTION doesn't exist!"),
        "{answer}"
    );
    // ISO week dates, as Joda reads them: week 31 of 2013 starts on 2013-07-29.
    let (status, _, answer) = send(
        "GET",
        &format!("/1.0/kb/usages/{SUB}?startDate=2013-W31-1&endDate=2013-W32"),
        "",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(r#""startDate":"2013-07-29T00:00:00.000Z","endDate":"2013-08-08T00:00:00.000Z""#),
        "{answer}"
    );
}

/// Kill Bill's non-atomic duplicate check over HTTP: two overlapping POSTs with the same
/// tracking id are both stored; one after them is refused.
#[test]
fn serve_with_kill_bills_duplicate_check_stores_overlapping_posts_twice() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_duplicate_check(usage_transport_memory::DuplicateCheck::KillBill {
        processing: Duration::from_millis(300),
    });
    let server = TestServer::start(config);
    let addr = server.addr;
    let both: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || status_of(&raw_http(addr, tracked_post(SUB, "t-1").as_bytes()))))
        .collect();
    let statuses: Vec<u16> = both.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [201, 201]);
    assert_eq!(server.emulator.row_count(), 2);
    let response = raw_http(addr, tracked_post(SUB, "t-1").as_bytes());
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(response.contains("\"code\":50000"), "{response}");
    assert_eq!(server.emulator.row_count(), 2);
}

/// The emulator's queued faults (`InMemoryKillBill::inject`) apply over HTTP too, in the same
/// vocabulary as through the in-memory transport, before any random fault; then the queue is
/// empty and requests are answered.
#[test]
fn queued_faults_apply_over_http() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    let server = TestServer::start(config);
    let addr = server.addr;
    let read = get_request(
        &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
        true,
    );

    server.emulator.inject(Fault::unavailable(7), 1);
    let response = raw_http(addr, read.as_bytes());
    assert_eq!(status_of(&response), 503, "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 7"), "{response}");

    // Closed before handling: nothing stored.
    server.emulator.inject(Fault::connection_closed(), 1);
    assert_eq!(raw_http(addr, tracked_post(SUB, "q-1").as_bytes()), "");
    assert_eq!(server.emulator.row_count(), 0);

    // Stored, then closed without an answer.
    server.emulator.inject(Fault::CommitThenLose, 1);
    assert_eq!(raw_http(addr, tracked_post(SUB, "q-2").as_bytes()), "");
    assert_eq!(server.emulator.row_count(), 1);

    assert_eq!(server.emulator.pending_faults(), 0);
    assert_eq!(status_of(&raw_http(addr, tracked_post(SUB, "q-3").as_bytes())), 201);
    assert_eq!(server.emulator.row_count(), 2);
    assert_eq!(server.stats.queued_faults(), 3);
    assert_eq!(server.stats.total_faults(), 3);
}
