//! `kb-usage import FILE --state DIR [--follow]` end to end: the built binary against the
//! emulator served in-process over loopback; re-runs, appended rows, rejects, following a
//! growing file, and SIGKILL at random moments with faults injected.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{kb, TestServer};
use usage_models::{Decimal, SubscriptionId};
use usage_transport_memory::serve::{Faults, ServeConfig};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const SUB2: &str = "0e1a4c7a-2222-4d47-9a7e-1f3c2c8f4a11";
const HEADER: &str = "subscription_id,unit_type,record_date,amount\n";

/// A directory in the temp dir (the state and the data apart), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "kb-usage-state-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Row `i`: subscription SUB or SUB2 by parity, amount `i + 1` (so every total is known).
fn row(i: u64) -> String {
    let subscription = if i.is_multiple_of(2) { SUB } else { SUB2 };
    format!("{subscription},gallons,2013-08-{:02},{}\n", 1 + i % 28, i + 1)
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn rows_text(range: std::ops::Range<u64>) -> String {
    range.map(row).collect()
}

/// The exact totals of rows `0..n`: (rows, sum) per subscription.
fn expected(n: u64) -> [(usize, Decimal); 2] {
    totals(n, |i| (i % 2) as usize)
}

/// The exact totals of rows `0..n`, row `i` of amount `i + 1` and of subscription
/// `[SUB, SUB2][subscription(i)]`: (rows, sum) per subscription.
fn totals(n: u64, subscription: fn(u64) -> usize) -> [(usize, Decimal); 2] {
    let mut totals = [(0usize, Decimal::ZERO), (0, Decimal::ZERO)];
    for i in 0..n {
        let at = subscription(i);
        totals[at].0 += 1;
        totals[at].1 += Decimal::from(i + 1);
    }
    totals
}

fn stored(server: &TestServer) -> [(usize, Decimal); 2] {
    [SUB, SUB2].map(|s| {
        let rows = server.emulator.rows(s.parse::<SubscriptionId>().unwrap());
        (rows.len(), rows.iter().map(|r| r.amount()).sum())
    })
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn spawn(url: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kb-usage"))
        .args(args)
        .env("KILLBILL_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_rerun_ships_only_what_was_not_shipped_and_the_rows_appended_since() {
    let server = TestServer::with_subscriptions(&[SUB, SUB2]);
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    append(&file, &format!("{HEADER}{}", rows_text(0..2_500)));
    let args = [
        "import",
        file.to_str().unwrap(),
        "--state",
        state.path(),
        "--output",
        "json",
    ];
    let first = kb(&url, &args);
    assert_eq!(first.code, 0, "{first:?}");
    let summary = json(&first.stdout);
    assert_eq!(summary["rows_taken"], 2_500);
    assert_eq!(summary["rows_delivered"], 2_500);
    assert_eq!(summary["rows_pending"], 0);
    assert_eq!(stored(&server), expected(2_500));

    // Rows appended since, the last one in two writes: only they are shipped.
    append(&file, &rows_text(2_500..3_100));
    let again = kb(&url, &args);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(json(&again.stdout)["rows_taken"], 600);
    assert_eq!(stored(&server), expected(3_100));

    // Nothing new: nothing shipped.
    let idle = kb(&url, &args);
    assert_eq!(idle.code, 0, "{idle:?}");
    assert_eq!(json(&idle.stdout)["rows_taken"], 0);
    assert_eq!(server.emulator.row_count(), 3_100);
}

#[test]
fn bad_rows_go_to_the_rejects_file_and_the_stream_goes_on() {
    let unknown = "11111111-2222-4d47-9a7e-1f3c2c8f4a11";
    let server = TestServer::with_subscriptions(&[SUB]);
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    let text = format!(
        "{HEADER}{SUB},gallons,2013-08-01,1\n\
         {SUB},gallons,not-a-date,1\n\
         {unknown},gallons,2013-08-01,7\n\
         {SUB},gallons,2013-08-02,2\n"
    );
    append(&file, &text);
    let run = kb(&url, &["import", file.to_str().unwrap(), "--state", state.path()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("rejected"), "{run:?}");
    let rejects = std::fs::read_to_string(state.join("rejects.txt")).unwrap();
    assert!(rejects.contains("line 3: record_date"), "{rejects}");
    assert!(
        rejects.contains(&format!("refused by Kill Bill: subscription {unknown}")),
        "{rejects}"
    );
    assert!(
        rejects.contains(&format!("  {unknown},gallons,2013-08-01,7")),
        "{rejects}"
    );
    let sub: SubscriptionId = SUB.parse().unwrap();
    let total: Decimal = server.emulator.rows(sub).iter().map(|r| r.amount()).sum();
    assert_eq!(total, Decimal::from(3));
    // A rerun: nothing new, nothing rejected again.
    let rerun = kb(&url, &["import", file.to_str().unwrap(), "--state", state.path()]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(server.emulator.rows(sub).len(), 2);
}

#[test]
fn the_state_directory_must_not_hold_the_file() {
    let server = TestServer::with_subscriptions(&[SUB]);
    let state = TempDir::new("state");
    let file = state.join("usage.csv");
    append(&file, &format!("{HEADER}{}", row(0)));
    let run = kb(
        &server.url(),
        &["import", file.to_str().unwrap(), "--state", state.path()],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("inside the state directory"), "{run:?}");
    assert_eq!(server.emulator.row_count(), 0);
}

#[test]
fn follow_waits_for_whole_lines_and_stops_cleanly_on_sigterm() {
    let server = TestServer::with_subscriptions(&[SUB, SUB2]);
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    append(&file, HEADER);
    let args = ["import", file.to_str().unwrap(), "--state", state.path(), "--follow"];
    let child = spawn(&url, &args);
    append(&file, &rows_text(0..100));
    wait_until("the first 100 rows", || server.emulator.row_count() == 100);
    // Half a line: not taken until its newline is written.
    let line = row(100);
    let (head, rest) = line.split_at(30);
    append(&file, head);
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(server.emulator.row_count(), 100);
    append(&file, rest);
    wait_until("the completed line", || server.emulator.row_count() == 101);
    signal(&child, "-TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stored(&server), expected(101));
    let rerun = kb(&url, &args[..4]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(stored(&server), expected(101));
}

/// The rows stored under `tracking_id`: (subscription, amount) in order.
fn under(server: &TestServer, subscription: &str, tracking_id: &str) -> Vec<Decimal> {
    let rows = server.emulator.rows(subscription.parse::<SubscriptionId>().unwrap());
    rows.iter()
        .filter(|r| r.tracking_id() == tracking_id)
        .map(|r| r.amount())
        .collect()
}

#[test]
fn rows_with_their_own_tracking_id_are_one_request_per_run_and_never_counted_twice() {
    use std::sync::{Arc, Mutex};
    // (tracking id, X-Request-Id) of every POST.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap())
        .with_subscriptions(vec![SUB.parse().unwrap(), SUB2.parse().unwrap()]);
    let server = {
        let seen = seen.clone();
        TestServer::start_with(
            config,
            Some(Box::new(move |emulator: usage_transport_memory::InMemoryKillBill| {
                let note = move |request: http::Request<bytes::Bytes>| {
                    if request.method() == http::Method::POST {
                        let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
                        let header = request.headers().get("X-Request-Id");
                        seen.lock().unwrap().push((
                            body["trackingId"].as_str().unwrap_or_default().to_string(),
                            header.map(|v| v.to_str().unwrap().to_string()).unwrap_or_default(),
                        ));
                    }
                    emulator.handle(request)
                };
                Arc::new(note)
            })),
        )
    };
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    append(
        &file,
        &format!(
            "subscription_id,unit_type,record_date,amount,tracking_id\n\
             {SUB},gallons,2013-08-01,1,\n\
             {SUB},gallons,2013-08-02,2,order-1\n\
             {SUB},gallons,2013-08-03,3,order-1\n\
             {SUB2},gallons,2013-08-01,4,\n\
             {SUB2},gallons,2013-08-04,5,order-2\n\
             {SUB},gallons,2013-08-05,6,order-3\n"
        ),
    );
    let args = [
        "import",
        file.to_str().unwrap(),
        "--state",
        state.path(),
        "--request-id",
        "imp",
        "--output",
        "json",
    ];
    let first = kb(&url, &args);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(json(&first.stdout)["rows_taken"], 6);
    assert_eq!(under(&server, SUB, "order-1"), [Decimal::from(2), Decimal::from(3)]);
    assert_eq!(under(&server, SUB2, "order-2"), [Decimal::from(5)]);
    // The last run was sealed by the end of the file.
    assert_eq!(under(&server, SUB, "order-3"), [Decimal::from(6)]);
    assert_eq!(stored(&server), [(4, Decimal::from(12)), (2, Decimal::from(9))]);

    // Rows appended since: order-3 comes back after its request was sealed: rejected; then
    // order-1 for SUB again (rejected, whatever came between), order-1 for another subscription
    // (Kill Bill takes it), order-4 and a plain row: taken.
    append(
        &file,
        &format!(
            "{SUB},gallons,2013-08-06,7,order-3\n\
             {SUB},gallons,2013-08-07,8,order-4\n\
             {SUB},gallons,2013-08-08,9,order-4\n\
             {SUB},gallons,2013-08-09,10,\n\
             {SUB},gallons,2013-08-11,12,order-1\n\
             {SUB2},gallons,2013-08-10,11,order-1\n"
        ),
    );
    let second = kb(&url, &args);
    assert_eq!(second.code, 2, "{second:?}");
    let summary = json(&second.stdout);
    assert_eq!(
        (summary["rows_taken"].as_u64(), summary["invalid_rows"].as_u64()),
        (Some(4), Some(2))
    );
    let rejects = std::fs::read_to_string(state.join("rejects.txt")).unwrap();
    assert!(
        rejects.contains("line 8: tracking_id \"order-3\" already names a request"),
        "{rejects}"
    );
    assert!(
        rejects.contains("line 12: tracking_id \"order-1\" already names a request"),
        "{rejects}"
    );
    assert_eq!(rejects.lines().count(), 2, "{rejects}");
    assert_eq!(under(&server, SUB, "order-4"), [Decimal::from(8), Decimal::from(9)]);
    assert_eq!(under(&server, SUB, "order-3"), [Decimal::from(6)]);
    assert_eq!(under(&server, SUB2, "order-1"), [Decimal::from(11)]);
    assert_eq!(under(&server, SUB, "order-1"), [Decimal::from(2), Decimal::from(3)]);
    assert_eq!(stored(&server), [(7, Decimal::from(39)), (3, Decimal::from(20))]);

    // Again: nothing new, nothing sent.
    let idle = kb(&url, &args);
    assert_eq!(idle.code, 0, "{idle:?}");
    assert_eq!(json(&idle.stdout)["rows_taken"], 0);
    assert_eq!(server.emulator.row_count(), 10);

    // --request-id as in the plain import, `imp-{n}`: one per request, n counting the
    // requests of the state directory.
    let seen = seen.lock().unwrap().clone();
    let mut request_ids: Vec<&str> = seen.iter().map(|(_, id)| id.as_str()).collect();
    request_ids.sort_unstable();
    request_ids.dedup();
    assert_eq!(seen.len(), request_ids.len(), "one attempt each here: {seen:?}");
    let mut expected: Vec<String> = (0..seen.len()).map(|n| format!("imp-{n}")).collect();
    expected.sort_unstable();
    assert_eq!(request_ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
}

/// SIGKILL at random moments while the file grows and the server injects faults (some of
/// them after storing the usage), then a drain: every total exact.
#[test]
fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    crash_then_drain(HEADER, row, expected);
}

/// Row `i` of a file mixing rows under tracking ids of their own and plain rows: blocks of
/// three rows of one subscription (SUB, SUB2 in turn), every third block under the tracking id
/// `t-{block}`, amount `i + 1`.
fn tracked_row(i: u64) -> String {
    let block = i / 3;
    let subscription = [SUB, SUB2][(block % 2) as usize];
    let tracking_id = if block.is_multiple_of(3) {
        format!("t-{block}")
    } else {
        String::new()
    };
    format!(
        "{subscription},gallons,2013-08-{:02},{},{tracking_id}\n",
        1 + i % 28,
        i + 1
    )
}

/// The same with rows under tracking ids of their own: a run of them cut by the appends (and
/// so left open at the end of what is written) or by a kill is taken whole, once.
#[test]
fn sigkill_at_random_moments_with_rows_under_their_own_tracking_ids_loses_and_doubles_nothing() {
    crash_then_drain(
        "subscription_id,unit_type,record_date,amount,tracking_id\n",
        tracked_row,
        |n| totals(n, |i| ((i / 3) % 2) as usize),
    );
}

/// Kills a follower of FILE (`header`, then rows `line(0..)` appended in random rounds) at
/// random moments, eight times, with faults injected; drains with plain runs; checks the
/// totals against `expected`.
fn crash_then_drain(header: &str, line: fn(u64) -> String, expected: fn(u64) -> [(usize, Decimal); 2]) {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap(), SUB2.parse().unwrap()]);
    config = config.with_faults(Some(Faults::new(0.2, 11)));
    let server = TestServer::start(config);
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    append(&file, header);
    let seed = std::env::var("KB_USAGE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("crash test seed {seed} (KB_USAGE_CRASH_SEED={seed} to replay the timings)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let args = [
        "import",
        file.to_str().unwrap(),
        "--state",
        state.path(),
        "--follow",
        "--rows-per-request",
        "50",
    ];
    let mut written = 0u64;
    let mut kills = 0;
    for _ in 0..8 {
        let child = spawn(&url, &args);
        let deadline = Instant::now() + Duration::from_millis(rng.u64(100..700));
        while Instant::now() < deadline {
            let more = rng.u64(1..400);
            append(&file, &(written..written + more).map(line).collect::<String>());
            written += more;
            std::thread::sleep(Duration::from_millis(rng.u64(0..30)));
        }
        signal(&child, "-KILL");
        let _ = child.wait_with_output();
        kills += 1;
    }
    // Drain: plain runs until everything is delivered (bounded).
    let drain = ["import", file.to_str().unwrap(), "--state", state.path()];
    let mut last = kb(&url, &drain);
    for _ in 0..10 {
        if last.code == 0 {
            break;
        }
        last = kb(&url, &drain);
    }
    assert_eq!(last.code, 0, "{last:?}");
    assert_eq!(stored(&server), expected(written));
    assert!(server.stats.total_faults() > 0);
    println!(
        "{kills} SIGKILLs, {written} rows, server {}: totals exact",
        server.stats
    );
}

/// Rows written to FILE while `follow_keeps_its_memory_flat` tails it: enough that a buffer
/// growing with the rows would show (each row taken costs over 100 bytes in memory).
const FOLLOW_ROWS: u64 = 1_500_000;
/// Rows appended per round; the next round waits until the server has them all.
const FOLLOW_ROUND: u64 = 50_000;
/// Rows delivered before the first sample: the buffers, pools and caches have their size.
const FOLLOW_WARM_UP_ROWS: u64 = 300_000;
/// The most the follower's resident memory may grow from the warm-up on: about a seventh of
/// what keeping the 1.2 million rows after the warm-up in memory takes (160 MB, measured by
/// keeping them on purpose).
const FOLLOW_GROWTH_BOUND_KB: u64 = 24 * 1024;

/// The resident memory of process `pid`, in kB (VmRSS of /proc/PID/status).
fn resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Flat memory under --follow: a follower tails a file growing by 1.5 million rows in rounds;
/// its resident memory after the warm-up and at the end differ by less than
/// FOLLOW_GROWTH_BOUND_KB, and then SIGTERM delivers everything and exits 0. Ignored by
/// default (a minute in debug): `bash .ci/slow follow_keeps` runs it in release.
#[test]
#[ignore = "1.5 million rows through a follower: run in release by .ci/slow"]
fn follow_keeps_its_memory_flat_while_the_file_grows() {
    let server = TestServer::with_subscriptions(&[SUB, SUB2]);
    let url = server.url();
    let data = TempDir::new("data");
    let state = TempDir::new("state");
    let file = data.join("usage.csv");
    append(&file, HEADER);
    let child = spawn(
        &url,
        &["import", file.to_str().unwrap(), "--state", state.path(), "--follow"],
    );
    let started = Instant::now();
    let mut written = 0;
    let mut warm = None;
    let mut highest = 0;
    let mut samples_mb = Vec::new();
    while written < FOLLOW_ROWS {
        append(&file, &rows_text(written..written + FOLLOW_ROUND));
        written += FOLLOW_ROUND;
        wait_until("the round delivered", || server.emulator.row_count() as u64 == written);
        let now = resident_kb(child.id());
        samples_mb.push(now / 1024);
        if written >= FOLLOW_WARM_UP_ROWS {
            warm.get_or_insert(now);
            highest = highest.max(now);
        }
    }
    let warm = warm.unwrap();
    let end = resident_kb(child.id());
    let state_kb: u64 = std::fs::read_dir(&state.0)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len() / 1024)
        .sum();
    println!(
        "follow: {written} rows in {:.1} s; resident memory {warm} kB after {FOLLOW_WARM_UP_ROWS} rows, \
         {end} kB at the end, {highest} kB at most (growth bound {FOLLOW_GROWTH_BOUND_KB} kB); \
         MB after each round of {FOLLOW_ROUND}: {samples_mb:?}; state directory {state_kb} kB",
        started.elapsed().as_secs_f64()
    );
    signal(&child, "-TERM");
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stored(&server), expected(FOLLOW_ROWS));
    assert!(
        highest.saturating_sub(warm) < FOLLOW_GROWTH_BOUND_KB,
        "resident memory grew from {warm} kB to {highest} kB"
    );
}
