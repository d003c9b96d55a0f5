//! The emulator over HTTP survives load (issue 5, "Reliability", part 3): thousands of
//! connections held open, and the emulator under many concurrent tasks, with a well-behaved
//! `UsageClient` getting exact answers throughout.
//!
//! ```text
//! cargo test -p usage-transport-memory --features serve --test hostile_load -- --nocapture              # the default suite
//! cargo test --release -p usage-transport-memory --features serve --test hostile_load -- --ignored --nocapture   # the bigger versions
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
use std::time::{Duration, Instant};

use hostile::*;
use served::TestServer;
use usage_core::UsageClient;
use usage_models::{Decimal, SubscriptionId, SubscriptionUsageRecord};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

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
    config = config.with_header_read_timeout(Duration::from_secs(120));
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

/// The bigger version: `cargo test --release -p usage-transport-memory --features serve --test hostile_load -- --ignored --nocapture`.
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
                            assert!(!outcome.already_recorded());
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
        let stored: std::collections::BTreeMap<String, Decimal> = rows
            .iter()
            .map(|row| (row.tracking_id().to_string(), row.amount()))
            .collect();
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

/// The bigger version: `cargo test --release -p usage-transport-memory --features serve --test hostile_load -- --ignored --nocapture`.
#[test]
#[ignore = "bigger load: run with --ignored --nocapture (release recommended)"]
fn the_emulator_keeps_one_row_per_tracking_id_under_256_concurrent_tasks() {
    emulator_under_concurrent_tasks(256, 1_000);
}
