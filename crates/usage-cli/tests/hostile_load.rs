//! The emulator over HTTP survives hostile input and load (issue 5, "Reliability", part 3): malformed
//! HTTP, bodies over the limit, deeply nested JSON, slow clients and thousands of connections
//! held open, with a well-behaved `UsageClient` getting exact answers throughout.
//!
//! ```text
//! cargo test -p usage-cli --test hostile_load -- --nocapture              # the default suite (< 60 s in debug)
//! cargo test --release -p usage-cli --test hostile_load -- --ignored --nocapture   # the bigger versions
//! ```
//!
//! Everything is loopback-only, bounded and self-stopping. The server runs in this process, so
//! its memory is this process's: the live heap (every allocation counted by `stats_alloc`) and,
//! on Linux, the RSS (`VmRSS` of `/proc/self/status`). The tests of this file run one at a time
//! (see [`one_at_a_time`]), so that the memory figures are the server's and the asserted time
//! bounds are not shared with another test. The server counts its open connections itself
//! ([`usage_transport_memory::serve::Stats::open_connections`]); on Linux the tests also check the kernel's
//! socket tables (`/proc/net/tcp` and `/proc/net/tcp6`).

mod common;

use std::alloc::System;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{status_of, TestServer};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use usage_core::UsageClient;
use usage_models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_memory::serve::{build_emulator, ServeConfig};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// `admin:password`.
const BASIC: &str = "Basic YWRtaW46cGFzc3dvcmQ=";
/// The headers of an authenticated POST, each line ending with CRLF.
const POST_HEADERS: &str = "Host: localhost\r\nAuthorization: Basic YWRtaW46cGFzc3dvcmQ=\r\nX-Killbill-ApiKey: bob\r\n\
                            X-Killbill-ApiSecret: lazar\r\nX-Killbill-CreatedBy: hostile\r\nContent-Type: application/json\r\n";
/// How long any raw exchange may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(15);
/// The generous bound on cutting a slow client off.
const CUT_OFF_BOUND: Duration = Duration::from_secs(10);
/// The bound on a 413 for a body over the limit (measured: under 1 ms in a debug build).
const TOO_LARGE_BOUND: Duration = Duration::from_secs(1);
/// The bound on the 400 for deeply nested JSON (measured: under 250 ms for the 2 MB
/// 1,000,000-deep array in a debug build).
const DEEP_JSON_BOUND: Duration = Duration::from_secs(3);
/// The bound on the server letting go of every held connection once their clients closed them
/// (measured: under 300 ms for 2,000 in a debug build).
const LET_GO_BOUND: Duration = Duration::from_secs(3);
/// How much more live heap there may be once the held connections are let go of than before
/// they were opened, what the records made meanwhile added aside.
const HEAP_GROWTH_TOLERANCE: usize = 256 * 1024;
/// The bound on the live heap one held connection takes at the server.
const HEAP_PER_CONNECTION_BOUND: usize = 64 * 1024;

/// Every allocation of this process counted, so that the server's live heap can be measured.
#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed in this process (where the server runs).
fn live_heap() -> usize {
    let stats = HEAP.stats();
    stats.bytes_allocated - stats.bytes_deallocated
}

/// Serializes the tests of this file: the memory figures are this process's, and the time
/// bounds are asserted.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config() -> ServeConfig {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config.subscriptions = vec![SUB.parse().unwrap()];
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn hyper_client(addr: SocketAddr) -> UsageClient {
    usage_transport_hyper::client_builder(format!("http://{addr}"))
        .expect("client builder")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .build()
        .expect("client")
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

fn august_day(i: usize) -> UsageDate {
    format!("2013-08-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60)
        .parse()
        .expect("date")
}

/// An exact amount with nine fraction digits, different for each `i`.
fn amount(i: usize) -> String {
    format!("{}.{:09}", i % 1000, (i * 7_919 + 13) % 1_000_000_000)
}

/// Records one amount under a tracking id of its own.
async fn record(client: &UsageClient, subscription: SubscriptionId, tracking_id: &str, i: usize) -> u32 {
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id(tracking_id)
        .record("api-calls", august_day(i), amount(i).as_str())
        .build()
        .expect("record");
    let outcome = client.record_usage(&record).await.expect("record_usage");
    assert!(!outcome.already_recorded, "{tracking_id}");
    outcome.attempts
}

/// The server's August sum of `api-calls` (zero when absent).
async fn august_sum(client: &UsageClient, subscription: SubscriptionId) -> Decimal {
    let window = usage_core::UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let usage = client
        .get_usage(subscription, "api-calls", window)
        .unwrap()
        .await
        .expect("get_usage");
    assert_eq!(usage.subscription_id, subscription);
    usage.amount_of("api-calls").unwrap_or_default()
}

/// A well-behaved client and what the server must say it recorded.
struct Probe {
    client: UsageClient,
    subscription: SubscriptionId,
    expected: Decimal,
    calls: usize,
}

impl Probe {
    fn new(addr: SocketAddr) -> Probe {
        Probe {
            client: hyper_client(addr),
            subscription: SUB.parse().unwrap(),
            expected: Decimal::ZERO,
            calls: 0,
        }
    }

    /// Records one more amount and reads the roll-up back: exactly the running sum.
    async fn check(&mut self, after: &str) {
        let i = self.calls;
        let attempts = record(&self.client, self.subscription, &format!("probe-{i}"), i).await;
        assert_eq!(attempts, 1, "after {after}: the record call needed a retry");
        self.expected += dec(&amount(i));
        self.calls += 1;
        assert_eq!(
            august_sum(&self.client, self.subscription).await,
            self.expected,
            "after {after}"
        );
    }
}

/// How a raw exchange ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum End {
    /// The server closed the connection (FIN).
    Closed,
    /// The server reset the connection.
    Reset,
}

/// What the server answered on a raw connection, and how it ended.
#[derive(Debug)]
struct Answer {
    text: String,
    end: End,
    /// From the first byte written to the end of the connection.
    elapsed: Duration,
}

impl Answer {
    fn status(&self) -> u16 {
        status_of(&self.text)
    }
}

/// Reads until the server ends the connection; panics if it does not within [`HUNG`].
fn read_answer(mut stream: TcpStream, started: Instant) -> Answer {
    stream.set_read_timeout(Some(HUNG)).expect("read timeout");
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let end = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break End::Closed,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!(
                "the server neither answered nor closed within {HUNG:?} ({e}); got {:?}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    };
    Answer {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        end,
        elapsed: started.elapsed(),
    }
}

/// Sends `request` on a new connection (writing on a thread of its own, so that a server that
/// answers before reading everything is heard), optionally half-closes, and reads the answer.
fn exchange(addr: SocketAddr, request: Vec<u8>, half_close: bool) -> Answer {
    let stream = TcpStream::connect(addr).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let started = Instant::now();
    let written = std::thread::spawn(move || {
        // The server may answer and close before taking it all: a failed write is expected then.
        let ok = writer.write_all(&request).is_ok();
        if ok && half_close {
            let _ = writer.shutdown(Shutdown::Write);
        }
        ok
    });
    let answer = read_answer(stream, started);
    let _ = written.join();
    answer
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /1.0/kb/usages HTTP/1.1\r\n{POST_HEADERS}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn valid_body(tracking_id: &str, records: usize) -> String {
    let records: Vec<String> = (0..records)
        .map(|i| {
            format!(
                "{{\"recordDate\":\"2013-08-{:02}T06:30:00Z\",\"amount\":{}}}",
                1 + i % 28,
                amount(i)
            )
        })
        .collect();
    format!(
        "{{\"subscriptionId\":\"{SUB}\",\"trackingId\":\"{tracking_id}\",\"unitUsageRecords\":[{{\"unitType\":\"api-calls\",\
         \"usageRecords\":[{}]}}]}}",
        records.join(",")
    )
}

/// What the kernel shows of this process's memory and sockets: Linux only, an extra to the
/// server's own counters.
#[cfg(target_os = "linux")]
mod kernel {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    /// The resident set size of this process (where the server runs), in KiB.
    pub fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Open file descriptors of this process (client and server sockets alike).
    pub fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
    }

    /// This process's TCP sockets, IPv4 and IPv6, from `/proc/net/tcp{,6}` and its
    /// descriptors: local port, remote port, state (`01` established, `0A` listening, ...).
    /// The kernel writes those tables in pieces: while other sockets come and go, one read may
    /// miss an entry or repeat one (repeats are merged here; callers wait for a count rather
    /// than trust one read, and see an absence several times before believing it).
    fn tcp_sockets() -> Vec<(u16, u16, String)> {
        let mine: HashSet<String> = std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(target.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
            })
            .collect();
        let port = |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap_or(""), 16).unwrap_or(0);
        let mut by_inode: HashMap<String, (u16, u16, String)> = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let table = std::fs::read_to_string(table).unwrap_or_else(|e| panic!("{table}: {e}"));
            for line in table.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() > 9 && mine.contains(fields[9]) {
                    let socket = (port(fields[1]), port(fields[2]), fields[3].to_string());
                    by_inode.insert(fields[9].to_string(), socket);
                }
            }
        }
        by_inode.into_values().collect()
    }

    /// `done` held on three reads in a row, 30 ms apart, within `bound` (for absences in
    /// [`tcp_sockets`], which one read may fake).
    pub fn settled(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
        let mut in_a_row = 0;
        super::wait_until(bound, || {
            in_a_row = if done() { in_a_row + 1 } else { 0 };
            if in_a_row < 3 {
                std::thread::sleep(Duration::from_millis(30));
            }
            in_a_row >= 3
        })
    }

    /// How many of the connections from `clients` (local ports) to `port` the server holds its
    /// end of: accepted and not let go of (in any state but LISTEN, so one the client closed
    /// and the server has not yet still counts). One still in the listen backlog is no
    /// descriptor yet.
    pub fn accepted_from(port: u16, clients: &HashSet<u16>) -> usize {
        tcp_sockets()
            .iter()
            .filter(|(local, remote, state)| *local == port && clients.contains(remote) && state != "0A")
            .count()
    }

    /// The server's end of the connection from `client_port` to `port` is still open.
    pub fn server_end_open(port: u16, client_port: u16) -> bool {
        tcp_sockets()
            .iter()
            .any(|(local, remote, _)| *local == port && *remote == client_port)
    }
}

/// Waits (at most `bound`) until `done` holds; whether it did.
fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

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
    config.max_body_bytes = LIMIT;
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
        .map(|row| row.tracking_id)
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
    config.header_read_timeout = Duration::from_secs(1);
    config.body_read_timeout = Duration::from_secs(1);
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

// ---------------------------------------------------------------------------------------------
// 5. Thousands of connections, and the emulator under many tasks
// ---------------------------------------------------------------------------------------------

/// Opens `connections` connections to `addr`, idle or half-sent: the streams, and the slowest
/// connect.
fn open_held(addr: SocketAddr, connections: usize) -> (Vec<TcpStream>, Duration) {
    let mut held = Vec::with_capacity(connections);
    let mut slowest_connect = Duration::ZERO;
    for i in 0..connections {
        let connecting = Instant::now();
        let mut stream = TcpStream::connect(addr).expect("connect");
        slowest_connect = slowest_connect.max(connecting.elapsed());
        match i % 3 {
            0 => {}                                                                // idle: nothing sent
            1 => stream.write_all(b"POST /1.0/kb/usages HTTP/1.1\r\nHo").unwrap(), // half a head
            _ => stream.write_all(&post(&valid_body("never", 1))[..150]).unwrap(), // most of a head
        }
        held.push(stream);
    }
    (held, slowest_connect)
}

/// Holds `connections` idle or half-sent connections open while a client records `calls`
/// amounts (8 at a time) and reads the exact sum back; then closes them: the server lets go of
/// them all, and its live heap is back where it was, but for the records.
fn hold_connections_while_recording(connections: usize, calls: usize) {
    let _serial = one_at_a_time();
    // Two descriptors per connection (this end and the server's), and room for the rest: the
    // soft limit is raised as far as the hard limit allows, and the test fails if that is not
    // enough rather than hold fewer.
    let needed = 2 * connections + 256;
    let limit = rlimit::increase_nofile_limit(needed as u64).expect("raise the open-file limit");
    assert!(
        limit >= needed as u64,
        "the open-file limit is {limit} at most (the hard limit): {connections} connections need {needed}"
    );
    let mut config = config();
    // Long enough that no held connection is cut off while the client works.
    config.header_read_timeout = Duration::from_secs(120);
    let server = TestServer::start(config);
    let stats = server.stats.clone();
    let open = || stats.open_connections();
    let rt = runtime();
    let subscription: SubscriptionId = SUB.parse().unwrap();
    // A first read; its client (and its pooled connection) is gone afterwards.
    rt.block_on(async {
        let client = hyper_client(server.addr);
        assert_eq!(august_sum(&client, subscription).await, Decimal::ZERO);
    });
    assert!(wait_until(HUNG, || open() == 0), "{} connections left", open());

    #[cfg(target_os = "linux")]
    let (rss_before, fds_before) = (kernel::rss_kib(), kernel::open_fds());
    let heap_before = live_heap();
    let opening = Instant::now();
    let (held, slowest_connect) = open_held(server.addr, connections);
    #[cfg(target_os = "linux")]
    let held_ports: std::collections::HashSet<u16> = held.iter().map(|s| s.local_addr().unwrap().port()).collect();
    // The server accepted them all, and nothing else.
    let all_accepted = wait_until(Duration::from_secs(30), || open() == connections as u64);
    assert!(
        all_accepted,
        "the server counts {} open connections of {connections}",
        open()
    );
    // Its end of each is a descriptor of this process too.
    #[cfg(target_os = "linux")]
    {
        let port = server.addr.port();
        let seen = wait_until(HUNG, || kernel::accepted_from(port, &held_ports) == connections);
        assert!(
            seen,
            "the kernel shows {} of {connections}",
            kernel::accepted_from(port, &held_ports)
        );
        println!(
            "the kernel shows the server's end of all {connections} ({} descriptors more)",
            kernel::open_fds() - fds_before
        );
    }
    let heap_held = live_heap();
    println!(
        "held {connections} connections, {} open at the server, opened in {} ms (slowest connect {} ms); \
         live heap {} KiB more ({} bytes each)",
        open(),
        opening.elapsed().as_millis(),
        slowest_connect.as_millis(),
        heap_held.saturating_sub(heap_before) / 1024,
        heap_held.saturating_sub(heap_before) / connections
    );
    assert!(
        heap_held.saturating_sub(heap_before) <= HEAP_PER_CONNECTION_BOUND * connections,
        "{} bytes of heap for {connections} connections",
        heap_held - heap_before
    );

    let requests_before = stats.requests();
    let recording = Instant::now();
    let (attempts, sum) = rt.block_on(async {
        let client = hyper_client(server.addr);
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let client = client.clone();
            tasks.spawn(async move {
                let (mut attempts, mut sum) = (0, Decimal::ZERO);
                for i in (worker..calls).step_by(8) {
                    attempts += record(&client, subscription, &format!("load-{i}"), i).await;
                    sum += dec(&amount(i));
                }
                (attempts, sum)
            });
        }
        let (mut attempts, mut sum) = (0, Decimal::ZERO);
        while let Some(done) = tasks.join_next().await {
            let (a, s) = done.expect("task");
            attempts += a;
            sum += s;
        }
        assert_eq!(
            august_sum(&client, subscription).await,
            sum,
            "the roll-up is the exact sum"
        );
        (attempts, sum)
    });
    let served = stats.requests() - requests_before;
    println!(
        "during the load: {calls} record calls ({attempts} attempts) and 1 read, {served} requests served in {} ms, sum {sum}",
        recording.elapsed().as_millis()
    );
    assert_eq!(
        served,
        u64::from(attempts) + 1,
        "every attempt and the read, nothing else"
    );
    assert_eq!(server.emulator.row_count(), calls);
    // The recording client is gone, and the held connections are all still there: none was
    // dropped to make room.
    let still_held = wait_until(HUNG, || open() == connections as u64);
    assert!(still_held, "{} open connections, {connections} held", open());
    let recorded_heap = live_heap() as isize - heap_held as isize;
    #[cfg(target_os = "linux")]
    let rss_during = kernel::rss_kib();

    drop(held);
    let closing = Instant::now();
    let released = wait_until(LET_GO_BOUND, || open() == 0);
    let let_go = closing.elapsed();
    assert!(
        released,
        "the server kept {} connections {LET_GO_BOUND:?} after the clients closed them",
        open()
    );
    println!(
        "after closing them: the server let go of all {connections} in {} ms",
        let_go.as_millis()
    );
    // No growth: what the connections took is freed, and only the records made meanwhile stay.
    std::thread::sleep(Duration::from_millis(500));
    let heap_growth = live_heap() as isize - heap_before as isize - recorded_heap;
    println!(
        "live heap after letting go of them: {heap_growth:+} bytes against before they were opened \
         (the {recorded_heap} bytes the records added aside)"
    );
    assert!(
        heap_growth <= HEAP_GROWTH_TOLERANCE as isize,
        "the heap grew by {heap_growth} bytes after the connections were let go of"
    );
    #[cfg(target_os = "linux")]
    {
        let port = server.addr.port();
        let gone = kernel::settled(HUNG, || kernel::accepted_from(port, &held_ports) == 0);
        assert!(
            gone,
            "the kernel shows {} of the server's ends",
            kernel::accepted_from(port, &held_ports)
        );
        let rss_after = kernel::rss_kib();
        println!(
            "RSS: before {} MiB, with {connections} connections held {} MiB, after closing them {} MiB \
             (the allocator keeps what was freed); descriptors {fds_before} -> {}",
            rss_before / 1024,
            rss_during / 1024,
            rss_after / 1024,
            kernel::open_fds()
        );
    }
    // Still serving, to the same sum.
    rt.block_on(async { assert_eq!(august_sum(&hyper_client(server.addr), subscription).await, sum) });
}

#[test]
fn two_thousand_connections_held_while_a_client_records_exact_sums() {
    hold_connections_while_recording(2_000, 200);
}

/// The bigger version: `cargo test --release -p usage-cli --test hostile_load -- --ignored --nocapture`.
#[test]
#[ignore = "bigger load: run with --ignored --nocapture (release recommended)"]
fn eight_thousand_connections_held_while_a_client_records_exact_sums() {
    hold_connections_while_recording(8_000, 2_000);
}

/// What post `i` of `task` records: the subscription (an index), the tracking id and the
/// number its date and amount come from. Every 8th post uses a tracking id all tasks share on
/// subscription 0, and every 8th from the 4th the same ids on subscription 1 (a tracking id
/// may be reused on another subscription); their amounts depend on the id only, so whichever
/// task wins, the sums are the same.
fn plan(task: usize, i: usize, posts: usize) -> (usize, String, usize) {
    match i % 8 {
        0 => (0, format!("shared-{}", i / 8), 1_000_000 + i / 8),
        4 => (1, format!("shared-{}", i / 8), 2_000_000 + i / 8),
        _ => {
            let n = task * posts + i;
            (n % 4, format!("task-{task}-{i}"), n)
        }
    }
}

/// `tasks` tokio tasks each record `posts` amounts through `UsageClient` straight into the
/// emulator (see [`plan`]): exactly one row per (subscription, tracking id), exact sums.
fn emulator_under_concurrent_tasks(tasks: usize, posts: usize) {
    let _serial = one_at_a_time();
    let kill_bill = InMemoryKillBill::new();
    let subscriptions: Vec<SubscriptionId> = (0..4).map(|_| kill_bill.create_subscription()).collect();
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kill_bill.clone())
        .timer(InstantTimer::new())
        .build()
        .unwrap();
    let started = Instant::now();
    let (recorded, duplicates) = runtime().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for task in 0..tasks {
            let client = client.clone();
            let subscriptions = subscriptions.clone();
            set.spawn(async move {
                let (mut recorded, mut duplicates) = (0usize, 0usize);
                for i in 0..posts {
                    let (s, tracking_id, n) = plan(task, i, posts);
                    let record = SubscriptionUsageRecord::builder(subscriptions[s])
                        .tracking_id(tracking_id)
                        .record("api-calls", august_day(n), amount(n).as_str())
                        .build()
                        .unwrap();
                    match client.record_usage(&record).await {
                        Ok(outcome) => {
                            assert!(!outcome.already_recorded);
                            recorded += 1;
                        }
                        Err(e) if e.is_duplicate_tracking_id() => duplicates += 1,
                        Err(e) => panic!("task {task} post {i}: {e}"),
                    }
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (recorded, duplicates)
            });
        }
        let (mut recorded, mut duplicates) = (0, 0);
        while let Some(done) = set.join_next().await {
            let (r, d) = done.expect("task");
            recorded += r;
            duplicates += d;
        }
        (recorded, duplicates)
    });
    let elapsed = started.elapsed();

    // The rows there must be: one per distinct (subscription, tracking id).
    let mut wanted: Vec<std::collections::BTreeMap<String, Decimal>> = vec![Default::default(); 4];
    for task in 0..tasks {
        for i in 0..posts {
            let (s, tracking_id, n) = plan(task, i, posts);
            wanted[s].insert(tracking_id, dec(&amount(n)));
        }
    }
    let distinct: usize = wanted.iter().map(|rows| rows.len()).sum();
    let shared = wanted
        .iter()
        .flat_map(|rows| rows.keys())
        .filter(|id| id.starts_with("shared-"))
        .count();
    println!(
        "emulator: {tasks} tasks x {posts} posts in {} ms: {recorded} recorded, {duplicates} refused as duplicates ({shared} shared (subscription, tracking id) pairs, each posted by all {tasks} tasks)",
        elapsed.as_millis()
    );
    assert_eq!(recorded, distinct, "each (subscription, tracking id) recorded once");
    assert_eq!(duplicates, tasks * posts - distinct);
    assert_eq!(duplicates, shared * (tasks - 1));
    assert_eq!(kill_bill.row_count(), distinct);

    let rt = runtime();
    for (s, subscription) in subscriptions.iter().enumerate() {
        let rows = kill_bill.rows(*subscription);
        let stored: std::collections::BTreeMap<String, Decimal> =
            rows.iter().map(|row| (row.tracking_id.clone(), row.amount)).collect();
        assert_eq!(stored.len(), rows.len(), "subscription {s}: a tracking id has two rows");
        assert_eq!(stored, wanted[s], "subscription {s}: the rows");
        let sum: Decimal = wanted[s].values().sum();
        assert_eq!(
            rt.block_on(august_sum(&client, *subscription)),
            sum,
            "subscription {s}: roll-up"
        );
    }
}

#[test]
fn the_emulator_keeps_one_row_per_tracking_id_under_64_concurrent_tasks() {
    emulator_under_concurrent_tasks(64, 200);
}

/// The bigger version: `cargo test --release -p usage-cli --test hostile_load -- --ignored --nocapture`.
#[test]
#[ignore = "bigger load: run with --ignored --nocapture (release recommended)"]
fn the_emulator_keeps_one_row_per_tracking_id_under_256_concurrent_tasks() {
    emulator_under_concurrent_tasks(256, 1_000);
}

#[test]
fn a_client_that_does_not_read_its_answers_is_cut_off() {
    let _serial = one_at_a_time();
    const UNITS: usize = 2_000;
    const PIPELINED: usize = 200;
    let mut config = config();
    config.write_timeout = Duration::from_secs(1);
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
