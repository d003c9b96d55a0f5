//! `kb-usage serve`: the binary's first line, its robustness, its shutdown, and answers that are
//! exactly the emulator's.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{kbs, raw_http, status_of, TestServer};
use usage_cli::serve::{build_emulator, ServeConfig};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const SUB2: &str = "0e1a4c7a-2222-4d47-9a7e-1f3c2c8f4a11";
/// `admin:password`.
const BASIC: &str = "Basic YWRtaW46cGFzc3dvcmQ=";

/// The binary serving, killed on drop if still running.
struct Served {
    child: Child,
    addr: SocketAddr,
    first_line: String,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kb-usage"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kb-usage serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut first_line = String::new();
        BufReader::new(stdout).read_line(&mut first_line).expect("first line");
        let addr = first_line
            .trim_end()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
        Served {
            child,
            addr,
            first_line,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(mut self) -> (i32, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let code = self.child.wait().expect("wait").code().unwrap_or(-1);
        (code, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_request(path: &str, auth: bool) -> String {
    let auth = if auth {
        format!("Authorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\nX-Killbill-ApiSecret: lazar\r\n")
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
}

#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    let served = Served::start(&["--subscription", SUB, "--log"]);
    assert!(served.first_line.starts_with("listening on http://127.0.0.1:"));
    assert!(served.addr.port() > 0);
    let url = served.url();

    // 401 without credentials, with Kill Bill's challenge.
    let response = raw_http(
        served.addr,
        get_request(
            &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            false,
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&response), 401, "{response}");
    assert!(response
        .to_ascii_lowercase()
        .contains("www-authenticate: basic realm=\"application\""));

    // 413 on a body declared too large, without reading it.
    let huge = format!(
        "POST /1.0/kb/usages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        17 * 1024 * 1024
    );
    let response = raw_http(served.addr, huge.as_bytes());
    assert_eq!(status_of(&response), 413, "{response}");

    // Malformed HTTP: 400 from hyper, and the server keeps serving.
    let response = raw_http(served.addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(status_of(&response), 400, "{response}");

    // The admin route creates a subscription in the caller's tenant.
    let body = format!("{{\"subscriptionId\":\"{SUB2}\"}}");
    let admin = format!(
        "POST /emulator/subscriptions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\n\
         X-Killbill-ApiSecret: lazar\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = raw_http(served.addr, admin.as_bytes());
    assert_eq!(status_of(&response), 201, "{response}");
    assert!(
        response.ends_with(&format!("{{\"subscriptionId\":\"{SUB2}\"}}")),
        "{response}"
    );
    let run = kbs(
        &url,
        &format!("record --subscription {SUB2} --unit a --amount 3 --date 2013-08-01"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = kbs(
        &url,
        &format!("get --subscription {SUB2} --from 2013-08-01 --to 2013-08-02 --output json"),
    );
    assert!(run.stdout.contains("\"amount\": 3"), "{run:?}");

    let (code, stderr) = served.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped: "), "{stderr}");
    // One log line per request: method, path, status, duration; never credentials.
    assert!(stderr.contains("POST /emulator/subscriptions 201"), "{stderr}");
    assert!(stderr.contains(&format!("GET /1.0/kb/usages/{SUB2} 200")), "{stderr}");
    assert!(stderr.contains("POST /1.0/kb/usages 413"), "{stderr}");
    for secret in ["password", "lazar", "YWRtaW46cGFzc3dvcmQ="] {
        assert!(!stderr.contains(secret), "the log shows {secret}: {stderr}");
    }
}

#[test]
fn the_binary_refuses_bad_settings() {
    let run = kbs("http://127.0.0.1:1", "serve --user no-colon");
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("no-colon"), "{run:?}");
    let run = kbs("http://127.0.0.1:1", "serve --faults 2");
    assert_eq!(run.code, 2);
    let run = kbs("http://127.0.0.1:1", "serve --seed 3");
    assert_eq!(run.code, 2, "--seed needs --faults");
}

#[test]
fn bodies_over_the_limit_and_slow_clients_are_cut_off() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.subscriptions = vec![SUB.parse().unwrap()];
    config.max_body_bytes = 1024;
    config.header_read_timeout = Duration::from_millis(300);
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
    config.subscriptions = vec![SUB.parse().unwrap()];
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
    config.subscriptions = vec![SUB.parse().unwrap()];
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

/// A tracked POST as raw HTTP/1.1 (`Connection: close`).
fn tracked_post(tracking_id: &str) -> String {
    let body = format!(
        r#"{{"subscriptionId":"{SUB}","trackingId":"{tracking_id}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate":"2013-08-01","amount":1}}]}}]}}"#
    );
    format!(
        "POST /1.0/kb/usages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\n\
         X-Killbill-ApiSecret: lazar\r\nX-Killbill-CreatedBy: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Kill Bill's non-atomic duplicate check over HTTP: two overlapping POSTs with the same
/// tracking id are both stored; one after them is refused.
#[test]
fn serve_with_kill_bills_duplicate_check_stores_overlapping_posts_twice() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.subscriptions = vec![SUB.parse().unwrap()];
    config.duplicate_check = usage_transport_memory::DuplicateCheck::KillBill {
        processing: Duration::from_millis(300),
    };
    let server = TestServer::start(config);
    let addr = server.addr;
    let both: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || status_of(&raw_http(addr, tracked_post("t-1").as_bytes()))))
        .collect();
    let statuses: Vec<u16> = both.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses, [201, 201]);
    assert_eq!(server.emulator.row_count(), 2);
    let response = raw_http(addr, tracked_post("t-1").as_bytes());
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(response.contains("\"code\":50000"), "{response}");
    assert_eq!(server.emulator.row_count(), 2);
}

/// The binary's options: `--kill-bill-duplicates` and `--slow-commits`.
#[test]
fn the_binary_serves_slow_commits_with_kill_bills_duplicate_check() {
    let served = Served::start(&[
        "--subscription",
        SUB,
        "--kill-bill-duplicates",
        "50",
        "--slow-commits",
        "1",
        "--slow-commit-ms",
        "400",
    ]);
    let addr = served.addr;
    let started = std::time::Instant::now();
    let slow = std::thread::spawn(move || status_of(&raw_http(addr, tracked_post("t-2").as_bytes())));
    // A retry while the first POST is still processed: both pass the check.
    std::thread::sleep(Duration::from_millis(150));
    let retry = status_of(&raw_http(addr, tracked_post("t-2").as_bytes()));
    assert_eq!((slow.join().unwrap(), retry), (201, 201));
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let response = raw_http(
        addr,
        get_request(
            &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            true,
        )
        .as_bytes(),
    );
    assert!(
        response.contains(r#""amount":2.000000000"#),
        "counted twice: {response}"
    );
    let (code, stderr) = served.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("duplicate check as Kill Bill's"), "{stderr}");
    assert!(stderr.contains("slow commits: 2"), "{stderr}");
}
