//! The overlap soak: over HTTP, against `kb-usage serve` with Kill Bill's non-atomic duplicate
//! check and slow commits, how often a client's retry overlaps an attempt still being processed
//! on the server and counts the usage twice, with the retry policy before and after
//! `RetryPolicy::with_timed_out_post_wait`, and with a wait too short for the slow commits.
//!
//! ```text
//! cargo test -p usage-transport-memory --features serve --test overlap -- --nocapture
//! ```
//!
//! The server: `DuplicateCheck::KillBill` with 20 ms of processing, and a quarter of the POSTs
//! (seeded) slow commits taking 1 s more; the client: `HyperTransport` with a 250 ms attempt
//! (request) timeout, 8 workers, 120 calls under fresh tracking ids. "Before" is the default
//! policy with `with_timed_out_post_wait(Duration::ZERO)`, which is the default policy as it was
//! before that setting (a timed-out POST retried after the plain jittered backoff); "after" is
//! the default policy (5 s).

mod served;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use served::TestServer;
use usage_core::{RetryPolicy, UsageClient};
use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_hyper::{HyperTransport, TokioTimer};
use usage_transport_memory::serve::{ServeConfig, SlowCommits};
use usage_transport_memory::DuplicateCheck;

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const CALLS: usize = 120;
const WORKERS: usize = 8;
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
const PROCESSING: Duration = Duration::from_millis(20);
const SLOW_COMMIT: Duration = Duration::from_secs(1);
const SLOW_RATE: f64 = 0.25;

/// What one run of the soak saw.
#[derive(Debug, Default)]
struct Overlap {
    calls: usize,
    slow_commits: u64,
    /// Calls whose usage was stored more than once.
    counted_twice: usize,
    /// Rows beyond one per call.
    extra_rows: usize,
    /// Calls that succeeded as "already recorded" (their retry was refused as a duplicate).
    already_recorded: usize,
    failed: usize,
    seconds: f64,
}

/// A call's tracking id and whether it was already recorded, or its error.
type CallOutcome = (String, Result<bool, String>);

fn run(policy: RetryPolicy, seed: u64) -> Overlap {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_duplicate_check(DuplicateCheck::KillBill { processing: PROCESSING });
    config = config.with_slow_commits(Some(SlowCommits::new(SLOW_RATE, SLOW_COMMIT, seed)));
    let server = TestServer::start(config);
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let outcomes: Arc<Mutex<Vec<CallOutcome>>> = Arc::default();
    runtime.block_on(async {
        let transport = HyperTransport::builder()
            .request_timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap();
        let client = UsageClient::builder(url)
            .user("admin", "password")
            .tenant("bob", "lazar")
            .transport(transport)
            .timer(TokioTimer)
            .retry_policy(policy)
            .build()
            .unwrap();
        let subscription: SubscriptionId = SUB.parse().unwrap();
        let day: UsageDate = "2013-08-01".parse().unwrap();
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let (client, outcomes) = (client.clone(), outcomes.clone());
                tokio::spawn(async move {
                    for _ in (worker..CALLS).step_by(WORKERS) {
                        let record = SubscriptionUsageRecord::builder(subscription)
                            .record("gallons", day, 1)
                            .build()
                            .unwrap();
                        let call = client.record_usage(&record);
                        let tracking_id = call.tracking_id().to_string();
                        let outcome = call.await.map(|o| o.already_recorded()).map_err(|e| e.to_string());
                        outcomes.lock().unwrap().push((tracking_id, outcome));
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    });
    // Let the slow commits still in flight land.
    std::thread::sleep(SLOW_COMMIT + ATTEMPT_TIMEOUT * 2);
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    for row in server.emulator.rows(SUB.parse().unwrap()) {
        *rows.entry(row.tracking_id().to_string()).or_default() += 1;
    }
    let outcomes = outcomes.lock().unwrap();
    let mut overlap = Overlap {
        calls: outcomes.len(),
        slow_commits: server.stats.slow_commits(),
        seconds: started.elapsed().as_secs_f64(),
        ..Overlap::default()
    };
    for (tracking_id, outcome) in outcomes.iter() {
        let stored = rows.get(tracking_id).copied().unwrap_or(0);
        match outcome {
            Ok(already_recorded) => {
                assert!(stored >= 1, "{tracking_id}: recorded yet not stored");
                overlap.already_recorded += usize::from(*already_recorded);
            }
            Err(e) => {
                println!("  call {tracking_id} failed ({stored} rows stored): {e}");
                overlap.failed += 1;
            }
        }
        if stored > 1 {
            overlap.counted_twice += 1;
            overlap.extra_rows += stored - 1;
        }
    }
    assert_eq!(rows.values().sum::<usize>(), server.emulator.row_count());
    overlap
}

fn report(name: &str, overlap: &Overlap) {
    println!(
        "{name}: {} calls, {} slow commits, {} calls counted twice ({} extra rows), {} already recorded, \
         {} failed, {:.1} s",
        overlap.calls,
        overlap.slow_commits,
        overlap.counted_twice,
        overlap.extra_rows,
        overlap.already_recorded,
        overlap.failed,
        overlap.seconds
    );
}

#[test]
fn a_retry_overlaps_a_slow_commit_before_and_not_after() {
    let before = run(RetryPolicy::default().with_timed_out_post_wait(Duration::ZERO), 13);
    report("before (timed_out_post_wait 0 s)", &before);
    let after = run(RetryPolicy::default(), 13);
    report("after (timed_out_post_wait 5 s, the default)", &after);
    // The residual: a wait shorter than what is left of the processing (1 s - 250 ms).
    let short = run(
        RetryPolicy::default().with_timed_out_post_wait(Duration::from_millis(250)),
        13,
    );
    report("short (timed_out_post_wait 250 ms)", &short);

    assert_eq!((before.calls, after.calls), (CALLS, CALLS));
    // Kill Bill's check lets a retry that overlaps a slow commit count the usage again.
    assert!(before.counted_twice > 0, "{before:?}");
    // Waiting 5 s after a timed-out POST outlasts the 1 s slow commit: never twice.
    assert_eq!(after.counted_twice, 0, "{after:?}");
    assert_eq!(after.failed, 0, "{after:?}");
    assert!(
        after.already_recorded > 0,
        "the retries were refused as duplicates: {after:?}"
    );
    // A wait shorter than the processing left after the timeout does not protect.
    assert!(short.counted_twice > 0, "{short:?}");
}
