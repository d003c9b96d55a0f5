//! The emulator over HTTP survives hostile input (issue 5, "Reliability", part 3): malformed
//! HTTP, bodies over the limit, deeply nested JSON, slow clients and clients that do not read
//! their answers, with a well-behaved `UsageClient` getting exact answers throughout.
//!
//! ```text
//! cargo test -p usage-transport-memory --features serve --test hostile_input -- --nocapture
//! ```
//!
//! Everything is loopback-only, bounded and self-stopping. The server runs in this process, so
//! its memory is this process's: the live heap (every allocation counted by `stats_alloc`) and,
//! on Linux, the RSS (`VmRSS` of `/proc/self/status`). The tests of this file run one at a time
//! (see `hostile::one_at_a_time`), so that the memory figures are the server's and the asserted time
//! bounds are not shared with another test. The server counts its open connections itself
//! ([`usage_transport_memory::serve::Stats::open_connections`]); on Linux the tests also check the kernel's
//! socket tables (`/proc/net/tcp` and `/proc/net/tcp6`).

mod hostile;
mod served;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hostile::*;
use served::{TestServer, BASIC};
use usage_models::{SubscriptionId, SubscriptionUsageRecord};
use usage_transport_memory::serve::build_emulator;

// ---------------------------------------------------------------------------------------------
// 1. Malformed HTTP
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_http_gets_400_or_a_closed_connection_and_the_server_keeps_serving() {
    let _serial = one_at_a_time();
    let server = TestServer::start(config());
    let rt = runtime();
    let mut probe = Probe::new(server.addr);
    rt.block_on(probe.check("start"));

    let mut garbage: Vec<u8> = {
        let mut rng = fastrand::Rng::with_seed(3);
        (0..8 * 1024).map(|_| rng.u8(..)).collect()
    };
    garbage.extend_from_slice(b"\r\n\r\n");
    let huge_headers = {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
        for i in 0..20_000 {
            head.push_str(&format!("X-Filler-{i}: {}\r\n", "v".repeat(40)));
        }
        head.push_str("\r\n");
        head.into_bytes()
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "p".repeat(1 << 20)).into_bytes();
    let many_headers = {
        let headers: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET / HTTP/1.1\r\n{headers}\r\n").into_bytes()
    };
    let one_big_header = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2 << 20)
    )
    .into_bytes();
    let record = valid_body("malformed-never-stored", 1);
    let with_body = |headers: &str, body: &[u8]| {
        let mut request = format!("POST /1.0/kb/usages HTTP/1.1\r\n{POST_HEADERS}{headers}\r\n").into_bytes();
        request.extend_from_slice(body);
        request
    };

    // (what, request, half-close after writing, the statuses allowed; 0 = closed without an answer)
    let cases: Vec<(&str, Vec<u8>, bool, &[u16])> = vec![
        ("8 KiB of random bytes", garbage, false, &[400, 0]),
        ("a request line of one word", b"GET\r\n\r\n".to_vec(), false, &[400]),
        (
            "spaces in the request target",
            b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a request line without a version",
            b"GET / \r\nHost: x\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a NUL in the method",
            b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a header without a colon",
            b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a space in a header name",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a control byte in a header value",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n".to_vec(),
            false,
            &[400],
        ),
        (
            "a header section of 20,000 headers (1.2 MB)",
            huge_headers,
            false,
            &[431, 0],
        ),
        ("one 2 MiB header", one_big_header, false, &[431, 0]),
        ("a 1 MiB request target", long_target, false, &[414, 431, 0]),
        ("101 headers (the limit is 100)", many_headers, false, &[431]),
        (
            "a chunk size that is not hex",
            with_body("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
            true,
            &[400],
        ),
        (
            "a chunk longer than its size",
            with_body("Transfer-Encoding: chunked\r\n", b"2\r\n{}}}}}\r\n0\r\n\r\n"),
            true,
            &[400],
        ),
        (
            "a chunked body cut short",
            with_body("Transfer-Encoding: chunked\r\n", b"100\r\n{\"subscriptionId\""),
            true,
            &[400, 0],
        ),
        (
            "Content-Length larger than the body",
            with_body(
                &format!("Content-Length: {}\r\n", record.len() + 100),
                record.as_bytes(),
            ),
            true,
            &[400, 0],
        ),
        (
            "Content-Length smaller than the body",
            with_body(&format!("Content-Length: {}\r\n", record.len() / 2), record.as_bytes()),
            true,
            &[400],
        ),
        (
            "two different Content-Lengths",
            with_body("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}}"),
            true,
            &[400],
        ),
        (
            "a Content-Length that is not a number",
            with_body("Content-Length: abc\r\n", b"{}"),
            true,
            &[400],
        ),
        (
            "Content-Length and Transfer-Encoding: chunked together",
            with_body("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
            true,
            &[400, 0],
        ),
        ("an HTTP/0.9 request", b"GET /\r\n".to_vec(), true, &[400, 0]),
        (
            "an HTTP/0.9 request, CRLF twice",
            b"GET /\r\n\r\n".to_vec(),
            false,
            &[400, 0],
        ),
        (
            "HTTP/2 prior knowledge on an HTTP/1.1 server",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            true,
            &[400, 0],
        ),
    ];
    let kinds = cases.len();
    let rows_before = server.emulator.row_count();
    for (what, request, half_close, allowed) in cases {
        let answer = exchange(server.addr, request, half_close);
        let status = answer.status();
        println!(
            "malformed: {what:<55} -> {} ({:?} after {} ms)",
            if answer.text.is_empty() {
                "no answer".to_string()
            } else {
                status.to_string()
            },
            answer.end,
            answer.elapsed.as_millis()
        );
        assert!(
            allowed.contains(&status),
            "{what}: status {status}, allowed {allowed:?}: {:?}",
            answer.text
        );
        // Nothing but the status line and headers of one answer (no 2xx smuggled after it).
        assert_eq!(answer.text.matches("HTTP/1.1 2").count(), 0, "{what}: {}", answer.text);
        if what.starts_with("a chunk ") {
            // A body hyper cannot decode is a 400 of serve's, not a silent close.
            assert!(
                answer.text.ends_with("\r\n\r\nmalformed request body\n"),
                "{what}: {}",
                answer.text
            );
        }
        rt.block_on(probe.check(what));
    }
    // None of the malformed requests stored anything: only the probe's rows are there.
    assert_eq!(server.emulator.row_count(), rows_before + probe.calls - 1);
    println!(
        "malformed HTTP: {kinds} kinds; the server answered {} well-behaved calls in between, sum {}",
        probe.calls, probe.expected
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Bodies over the limit
// ---------------------------------------------------------------------------------------------

#[test]
fn bodies_over_the_limit_get_413_and_store_nothing() {
    let _serial = one_at_a_time();
    const LIMIT: usize = 64 * 1024;
    let mut config = config();
    config = config.with_max_body_bytes(LIMIT);
    let server = TestServer::start(config.clone());
    let rt = runtime();
    let mut probe = Probe::new(server.addr);
    rt.block_on(probe.check("start"));

    // A valid record of about 1 MiB: what stops it is its size alone, as its twin shows.
    let body = valid_body("one-mebibyte", 17_600);
    assert!(
        body.len() > 1024 * 1024 && body.len() < 1024 * 1024 + 128 * 1024,
        "{}",
        body.len()
    );
    let twin = build_emulator(&config).unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri("/1.0/kb/usages")
        .header("authorization", BASIC)
        .header("x-killbill-apikey", "bob")
        .header("x-killbill-apisecret", "lazar")
        .header("x-killbill-createdby", "hostile")
        .header("content-type", "application/json")
        .body(Bytes::from(body.clone()))
        .unwrap();
    assert_eq!(twin.handle(request).status(), 201, "the body is a valid record");
    assert_eq!(twin.row_count(), 17_600);

    let rows_before = server.emulator.row_count();
    // With Content-Length: refused from the header, before reading the body.
    let answer = exchange(server.addr, post(&body), false);
    println!(
        "1 MiB body with Content-Length, limit 64 KiB: {} after {} ms",
        answer.status(),
        answer.elapsed.as_millis()
    );
    assert_eq!(answer.status(), 413, "{:?}", answer.text);
    assert!(answer.text.contains(&format!("request body larger than {LIMIT} bytes")));
    assert!(answer.elapsed < TOO_LARGE_BOUND, "{:?}", answer.elapsed);
    rt.block_on(probe.check("1 MiB with Content-Length"));

    // Chunked, 16 KiB chunks: refused once the limit is passed.
    let mut chunked =
        format!("POST /1.0/kb/usages HTTP/1.1\r\n{POST_HEADERS}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
    for chunk in body.as_bytes().chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(server.addr, chunked, false);
    println!(
        "1 MiB chunked body, limit 64 KiB: {} after {} ms",
        answer.status(),
        answer.elapsed.as_millis()
    );
    assert_eq!(answer.status(), 413, "{:?}", answer.text);
    assert!(answer.elapsed < TOO_LARGE_BOUND, "{:?}", answer.elapsed);
    rt.block_on(probe.check("1 MiB chunked"));

    // A body of exactly the limit is read (and, being a valid record, stored).
    let mut at_limit = valid_body("at-the-limit", 1);
    let padding = LIMIT - at_limit.len();
    at_limit.insert_str(at_limit.len() - 1, &" ".repeat(padding));
    assert_eq!(at_limit.len(), LIMIT);
    let answer = exchange(server.addr, post(&at_limit), false);
    assert_eq!(answer.status(), 201, "{:?}", answer.text);
    probe.expected += dec(&amount(0));
    // One byte more is not.
    at_limit.insert(at_limit.len() - 1, ' ');
    let answer = exchange(server.addr, post(&at_limit), false);
    assert_eq!(answer.status(), 413, "{:?}", answer.text);

    // Nothing of the refused bodies was stored: only the probe's rows and the one at the limit.
    assert_eq!(server.emulator.row_count(), rows_before + probe.calls - 1 + 1);
    let subscription: SubscriptionId = SUB.parse().unwrap();
    let tracking_ids: Vec<String> = server
        .emulator
        .rows(subscription)
        .into_iter()
        .map(|row| row.tracking_id().to_string())
        .collect();
    assert!(!tracking_ids.iter().any(|t| t == "one-mebibyte"), "{tracking_ids:?}");
    rt.block_on(probe.check("the limit"));
}

// ---------------------------------------------------------------------------------------------
// 3. Deeply nested JSON
// ---------------------------------------------------------------------------------------------

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

#[test]
fn deeply_nested_json_gets_a_400_json_error_and_no_stack_overflow() {
    let _serial = one_at_a_time();
    const DEPTH: usize = 10_000;
    let server = TestServer::start(config());
    let rt = runtime();
    let mut probe = Probe::new(server.addr);
    rt.block_on(probe.check("start"));
    let unit = |usage_records: &str| {
        format!("{{\"subscriptionId\":\"{SUB}\",\"unitUsageRecords\":[{{\"unitType\":\"a\",\"usageRecords\":{usage_records}}}]}}")
    };
    let record_with = |field: &str| unit(&format!("[{{\"recordDate\":\"2013-08-01\",\"amount\":{field}}}]"));
    let cases: Vec<(&str, String)> = vec![
        ("10,000-deep arrays as the body", nested_arrays(DEPTH)),
        ("10,000-deep objects as the body", nested_objects(DEPTH)),
        (
            "10,000-deep arrays as unitUsageRecords",
            format!(
                "{{\"subscriptionId\":\"{SUB}\",\"unitUsageRecords\":{}}}",
                nested_arrays(DEPTH)
            ),
        ),
        (
            "10,000-deep objects in unitUsageRecords",
            format!(
                "{{\"subscriptionId\":\"{SUB}\",\"unitUsageRecords\":[{}]}}",
                nested_objects(DEPTH)
            ),
        ),
        ("10,000-deep arrays as usageRecords", unit(&nested_arrays(DEPTH))),
        ("10,000-deep objects as an amount", record_with(&nested_objects(DEPTH))),
        ("10,000-deep arrays as an amount", record_with(&nested_arrays(DEPTH))),
        (
            "10,000-deep objects under an unknown property",
            format!("{{\"subscriptionId\":\"{SUB}\",\"nope\":{}}}", nested_objects(DEPTH)),
        ),
        ("10,000 unclosed arrays", "[".repeat(DEPTH)),
        ("1,000,000-deep arrays as the body (2 MB)", nested_arrays(100 * DEPTH)),
    ];
    let rows_before = server.emulator.row_count();
    for (what, body) in cases {
        let answer = exchange(server.addr, post(&body), false);
        let (_, json) = answer.text.split_once("\r\n\r\n").unwrap_or(("", ""));
        let error: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: not a JSON error ({e}): {:?}", answer.text));
        let class = error["className"].as_str().unwrap_or_default().to_string();
        println!(
            "deep JSON: {what:<48} -> {} {class} in {} ms",
            answer.status(),
            answer.elapsed.as_millis()
        );
        assert_eq!(answer.status(), 400, "{what}: {:?}", answer.text);
        assert!(answer.elapsed < DEEP_JSON_BOUND, "{what}: {:?}", answer.elapsed);
        assert!(class.starts_with("com.fasterxml.jackson."), "{what}: {class}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {error}"
        );
        assert_eq!(error["stackTrace"], serde_json::json!([]), "{what}");
        rt.block_on(probe.check(what));
    }
    assert_eq!(server.emulator.row_count(), rows_before + probe.calls - 1);
}

// ---------------------------------------------------------------------------------------------
// 4. Slow clients
// ---------------------------------------------------------------------------------------------

/// What happened to one slow client.
#[derive(Debug)]
struct Slow {
    /// Bytes written before the server cut it off.
    sent: usize,
    /// Of how many it wanted to send.
    total: usize,
    answer: Answer,
}

/// Writes `request` one byte every `pace` (the first `fast` bytes at once) until the server
/// answers or closes the connection; never longer than [`HUNG`].
fn trickle(addr: SocketAddr, request: Vec<u8>, fast: usize, pace: Duration) -> Slow {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let reader = stream.try_clone().expect("clone");
    let started = Instant::now();
    let over = Arc::new(AtomicBool::new(false));
    let flag = over.clone();
    let read = std::thread::spawn(move || {
        let answer = read_answer(reader, started);
        flag.store(true, Ordering::SeqCst);
        answer
    });
    let total = request.len();
    let mut sent = 0;
    if stream.write_all(&request[..fast]).is_ok() {
        sent = fast;
        while sent < total && !over.load(Ordering::SeqCst) && started.elapsed() < HUNG {
            std::thread::sleep(pace);
            if over.load(Ordering::SeqCst) || stream.write_all(&request[sent..sent + 1]).is_err() {
                break;
            }
            sent += 1;
        }
    }
    let answer = read.join().expect("reader");
    Slow { sent, total, answer }
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let _serial = one_at_a_time();
    const SLOWLORIS: usize = 6;
    const SLOW_BODIES: usize = 4;
    const SILENT: usize = 2;
    let pace = Duration::from_millis(200);
    let mut config = config();
    config = config.with_header_read_timeout(Duration::from_secs(1));
    config = config.with_body_read_timeout(Duration::from_secs(1));
    let server = TestServer::start(config);
    let addr = server.addr;
    let rt = runtime();
    let mut probe = Probe::new(addr);
    rt.block_on(probe.check("start"));
    let rows_before = server.emulator.row_count();

    let head = format!(
        "GET /1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\nX-Killbill-ApiSecret: lazar\r\n\r\n"
    );
    let mut slow = Vec::new();
    for _ in 0..SLOWLORIS {
        let request = head.clone().into_bytes();
        slow.push(("headers", std::thread::spawn(move || trickle(addr, request, 0, pace))));
    }
    for i in 0..SLOW_BODIES {
        let request = post(&valid_body(&format!("slow-body-{i}"), 3));
        let fast = request.len() - valid_body("", 3).len() + 20;
        slow.push(("body", std::thread::spawn(move || trickle(addr, request, fast, pace))));
    }
    for _ in 0..SILENT {
        // Connects and sends nothing at all.
        slow.push(("silent", std::thread::spawn(move || trickle(addr, Vec::new(), 0, pace))));
        // Sends one whole request at once, then keeps the connection without a second one.
        let request = head.clone().into_bytes();
        let whole = request.len();
        slow.push((
            "idle after a request",
            std::thread::spawn(move || trickle(addr, request, whole, pace)),
        ));
    }

    // Meanwhile, a well-behaved client records and reads, until every slow client is gone.
    let started = Instant::now();
    let mut served_meanwhile = 0;
    while slow.iter().any(|(_, t)| !t.is_finished()) && started.elapsed() < HUNG {
        rt.block_on(probe.check("a call during the slow clients"));
        served_meanwhile += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut slowest = Duration::ZERO;
    for (kind, thread) in slow {
        let Slow { sent, total, answer } = thread.join().expect("slow client");
        println!(
            "slow {kind}: cut off after {} ms, {sent} of {total} bytes sent, answer: {}",
            answer.elapsed.as_millis(),
            if answer.text.is_empty() {
                "none".to_string()
            } else {
                answer.status().to_string()
            }
        );
        slowest = slowest.max(answer.elapsed);
        assert!(answer.elapsed < CUT_OFF_BOUND, "{kind}: {answer:?}");
        match kind {
            // The head never completed: closed, with no answer or a 408.
            "headers" => {
                assert!(sent < total, "{kind}: the slow client sent everything ({sent} bytes)");
                assert!(answer.text.is_empty() || answer.status() == 408, "{answer:?}");
            }
            "body" => {
                assert!(sent < total, "{kind}: the slow client sent everything ({sent} bytes)");
                assert_eq!(answer.status(), 408, "{answer:?}");
                assert!(answer.text.ends_with("request body too slow\n"), "{answer:?}");
            }
            "silent" => assert_eq!((sent, answer.text.as_str()), (0, ""), "{answer:?}"),
            _ => {
                // Its one request was answered, then the idle connection was closed.
                assert_eq!(sent, total);
                assert_eq!(answer.status(), 200, "{answer:?}");
                assert_eq!(answer.text.matches("HTTP/1.1").count(), 1, "{answer:?}");
            }
        }
    }
    println!(
        "slow clients: {} cut off within {} ms; {served_meanwhile} record+read rounds served meanwhile",
        SLOWLORIS + SLOW_BODIES + 2 * SILENT,
        slowest.as_millis()
    );
    assert!(
        served_meanwhile >= 1,
        "no well-behaved call completed while slow clients were connected"
    );
    // Nothing of the slow bodies was stored.
    assert_eq!(server.emulator.row_count(), rows_before + served_meanwhile);
    rt.block_on(probe.check("the slow clients"));
}

#[test]
fn a_client_that_does_not_read_its_answers_is_cut_off() {
    let _serial = one_at_a_time();
    const UNITS: usize = 2_000;
    const PIPELINED: usize = 200;
    let mut config = config();
    config = config.with_write_timeout(Duration::from_secs(1));
    let server = TestServer::start(config);
    let addr = server.addr;
    let rt = runtime();
    let mut probe = Probe::new(addr);
    rt.block_on(probe.check("start"));
    // 2,000 more unit types: each roll-up of all units is then about 100 KB.
    let mut units = SubscriptionUsageRecord::builder(probe.subscription).tracking_id("many-units");
    for u in 0..UNITS {
        units = units.record(format!("unit-{u:05}-of-a-long-name"), august_day(u), 1);
    }
    let units = units.build().unwrap();
    rt.block_on(async { probe.client.record_usage(&units).await.expect("units") });

    // 200 pipelined GETs of every unit (20 MB of answers), and not one byte read.
    let head = format!(
        "GET /1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\nX-Killbill-ApiSecret: lazar\r\n\r\n"
    );
    // The server's gauge counts the probe's pooled connections too (one or two: hyper-util may
    // race a new connection against a busy one): a new client drops them.
    let open = || server.stats.open_connections();
    probe.client = hyper_client(addr);
    assert!(wait_until(HUNG, || open() == 0), "{} open", open());
    let mut stream = TcpStream::connect(addr).expect("connect");
    #[cfg(target_os = "linux")]
    let client_port = stream.local_addr().unwrap().port();
    assert!(wait_until(HUNG, || open() == 1), "not accepted");
    let requests_before = server.stats.requests();
    stream.set_write_timeout(Some(HUNG)).unwrap();
    stream
        .write_all(head.repeat(PIPELINED).as_bytes())
        .expect("the requests fit the buffers");
    let written = Instant::now();

    // Others are served while that connection is stuck.
    rt.block_on(probe.check("a client that does not read"));
    probe.client = hyper_client(addr);
    let cut = wait_until(HUNG, || open() == 0);
    let elapsed = written.elapsed();
    let answered = server.stats.requests() - requests_before - 2;
    println!(
        "a client that does not read: cut off {} ms after sending {PIPELINED} pipelined requests, {answered} of them answered before the writes stalled",
        elapsed.as_millis()
    );
    assert!(
        cut,
        "the server still holds the connection of a client that does not read"
    );
    assert!(elapsed < CUT_OFF_BOUND, "{elapsed:?}");
    #[cfg(target_os = "linux")]
    assert!(
        kernel::settled(HUNG, || !kernel::server_end_open(addr.port(), client_port)),
        "the kernel still shows the server's end"
    );
    assert!(answered < PIPELINED as u64, "{answered}: the writes never stalled");
    // What it can still read is whole answers, then the end.
    let answer = read_answer(stream, written);
    let received = answer.text.matches("HTTP/1.1 200 OK").count() as u64;
    assert!(received >= 1 && received <= answered, "{received} of {answered}");
    rt.block_on(probe.check("the client that does not read"));
}
