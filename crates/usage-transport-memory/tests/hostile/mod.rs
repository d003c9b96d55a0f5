//! Shared by `hostile_input` and `hostile_load`: the in-process server's heap and sockets,
//! raw exchanges, bounds.

#![allow(dead_code)]

use std::alloc::System;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::served::status_of;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use usage_core::UsageClient;
use usage_models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_memory::serve::ServeConfig;

pub const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// The headers of an authenticated POST, each line ending with CRLF.
pub const POST_HEADERS: &str = "Host: localhost\r\nAuthorization: Basic YWRtaW46cGFzc3dvcmQ=\r\nX-Killbill-ApiKey: bob\r\n\
                            X-Killbill-ApiSecret: lazar\r\nX-Killbill-CreatedBy: hostile\r\nContent-Type: application/json\r\n";
/// How long any raw exchange may take before the test calls it hung.
pub const HUNG: Duration = Duration::from_secs(15);
/// The generous bound on cutting a slow client off.
pub const CUT_OFF_BOUND: Duration = Duration::from_secs(10);
/// The bound on a 413 for a body over the limit (measured: under 1 ms in a debug build).
pub const TOO_LARGE_BOUND: Duration = Duration::from_secs(1);
/// The bound on the 400 for deeply nested JSON (measured: under 250 ms for the 2 MB
/// 1,000,000-deep array in a debug build).
pub const DEEP_JSON_BOUND: Duration = Duration::from_secs(3);
/// The bound on the server letting go of every held connection once their clients closed them
/// (measured: under 300 ms for 2,000 in a debug build).
pub const LET_GO_BOUND: Duration = Duration::from_secs(3);
/// How much more live heap there may be once the held connections are let go of than before
/// they were opened, what the records made meanwhile added aside.
pub const HEAP_GROWTH_TOLERANCE: usize = 256 * 1024;
/// The bound on the live heap one held connection takes at the server.
pub const HEAP_PER_CONNECTION_BOUND: usize = 64 * 1024;

/// Every allocation of this process counted, so that the server's live heap can be measured.
#[global_allocator]
pub static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed in this process (where the server runs).
pub fn live_heap() -> usize {
    let stats = HEAP.stats();
    stats.bytes_allocated - stats.bytes_deallocated
}

/// Serializes the tests of this file: the memory figures are this process's, and the time
/// bounds are asserted.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs.
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn config() -> ServeConfig {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn hyper_client(addr: SocketAddr) -> UsageClient {
    usage_transport_hyper::client_builder(format!("http://{addr}"))
        .expect("client builder")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .build()
        .expect("client")
}

pub fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).expect("decimal")
}

pub fn august_day(i: usize) -> UsageDate {
    format!("2013-08-{:02}T{:02}:{:02}:00Z", 1 + i % 28, i % 24, i % 60)
        .parse()
        .expect("date")
}

/// An exact amount with nine fraction digits, different for each `i`.
pub fn amount(i: usize) -> String {
    format!("{}.{:09}", i % 1000, (i * 7_919 + 13) % 1_000_000_000)
}

/// Records one amount under a tracking id of its own.
pub async fn record(client: &UsageClient, subscription: SubscriptionId, tracking_id: &str, i: usize) -> u32 {
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id(tracking_id)
        .record("api-calls", august_day(i), amount(i).as_str())
        .build()
        .expect("record");
    let outcome = client.record_usage(&record).await.expect("record_usage");
    assert!(!outcome.already_recorded(), "{tracking_id}");
    outcome.attempts()
}

/// The server's August sum of `api-calls` (zero when absent).
pub async fn august_sum(client: &UsageClient, subscription: SubscriptionId) -> Decimal {
    let window = usage_core::UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let usage = client
        .get_usage(subscription, "api-calls", window)
        .unwrap()
        .await
        .expect("get_usage");
    assert_eq!(usage.subscription_id(), subscription);
    usage.amount_of("api-calls").unwrap_or_default()
}

/// A well-behaved client and what the server must say it recorded.
pub struct Probe {
    pub client: UsageClient,
    pub subscription: SubscriptionId,
    pub expected: Decimal,
    pub calls: usize,
}

impl Probe {
    pub fn new(addr: SocketAddr) -> Probe {
        Probe {
            client: hyper_client(addr),
            subscription: SUB.parse().unwrap(),
            expected: Decimal::ZERO,
            calls: 0,
        }
    }

    /// Records one more amount and reads the roll-up back: exactly the running sum.
    pub async fn check(&mut self, after: &str) {
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
pub enum End {
    /// The server closed the connection (FIN).
    Closed,
    /// The server reset the connection.
    Reset,
}

/// What the server answered on a raw connection, and how it ended.
#[derive(Debug)]
pub struct Answer {
    pub text: String,
    pub end: End,
    /// From the first byte written to the end of the connection.
    pub elapsed: Duration,
}

impl Answer {
    pub fn status(&self) -> u16 {
        status_of(&self.text)
    }
}

/// Reads until the server ends the connection; panics if it does not within [`HUNG`].
pub fn read_answer(mut stream: TcpStream, started: Instant) -> Answer {
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
pub fn exchange(addr: SocketAddr, request: Vec<u8>, half_close: bool) -> Answer {
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

pub fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /1.0/kb/usages HTTP/1.1\r\n{POST_HEADERS}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn valid_body(tracking_id: &str, records: usize) -> String {
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
pub mod kernel {
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
    pub fn tcp_sockets() -> Vec<(u16, u16, String)> {
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
pub fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
