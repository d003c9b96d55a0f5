//! `UsageClient` over the hyper transport through `serve --faults`: every kind of fault met and
//! survived, nothing lost, nothing doubled.

mod served;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use served::{random_amounts, TestServer};
use usage_core::{RetryPolicy, UsageWindow};
use usage_models::{Decimal, SubscriptionId, SubscriptionUsageRecord, TrackingId, UsageDate};
use usage_transport_memory::serve::{Faults, ServeConfig, Stats};
use usage_transport_memory::Fault;

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const RECORDS: usize = 1_000;

#[test]
fn the_client_survives_every_fault_without_losing_or_doubling() {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_subscriptions(vec![SUB.parse().unwrap()]);
    config = config.with_faults(Some(Faults::new(0.3, 42)));
    let server = TestServer::start(config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = server.url();
    let stats = server.stats.clone();
    let (sum, counts, during) = runtime.block_on(async move {
        let client = usage_transport_hyper::client_builder(url)
            .unwrap()
            .user("admin", "password")
            .tenant("bob", "lazar")
            .retry_policy(
                RetryPolicy::default()
                    .with_max_attempts(10)
                    .with_initial_backoff(Duration::from_millis(1))
                    .with_max_backoff(Duration::from_millis(10))
                    .with_deadline(Duration::from_secs(30)),
            )
            .build()
            .unwrap();
        let subscription: SubscriptionId = SUB.parse().unwrap();
        let mut rng = fastrand::Rng::with_seed(5);
        let (amounts, _) = random_amounts(&mut rng, RECORDS);
        let counts = Arc::new(Counts::default());
        let semaphore = Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, amount) in amounts.into_iter().enumerate() {
            let permit = semaphore.clone().acquire_owned().await.unwrap();
            let client = client.clone();
            let counts = counts.clone();
            tasks.spawn(async move {
                let day: UsageDate = format!("2013-08-{:02}T{:02}:00:00Z", 1 + i % 28, i % 24)
                    .parse()
                    .unwrap();
                let record = SubscriptionUsageRecord::builder(subscription)
                    .tracking_id(TrackingId::random().as_str())
                    .record("calls", day, amount.as_str())
                    .build()
                    .unwrap();
                // What an application does: the call, and if it still failed after its
                // retries, the same record again (same tracking id) until it is known.
                for round in 0..5 {
                    match client.record_usage(&record).await {
                        Ok(outcome) => {
                            if outcome.already_recorded() {
                                counts.already.fetch_add(1, Ordering::Relaxed);
                            }
                            drop(permit);
                            return Some(amount.parse::<Decimal>().unwrap());
                        }
                        Err(e) if round > 0 && e.is_duplicate_tracking_id() => {
                            counts.already.fetch_add(1, Ordering::Relaxed);
                            drop(permit);
                            return Some(amount.parse::<Decimal>().unwrap());
                        }
                        Err(_) => {
                            counts.gave_up.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                None
            });
        }
        let mut sum = Decimal::ZERO;
        let mut recorded = 0;
        while let Some(result) = tasks.join_next().await {
            if let Some(amount) = result.unwrap() {
                sum += amount;
                recorded += 1;
            }
        }
        assert_eq!(recorded, RECORDS, "every record reported recorded");
        // What the server saw of the records (the roll-up below draws faults too).
        let during = Seen::now(&stats);
        let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
        let mut usage = None;
        for _ in 0..20 {
            if let Ok(answer) = client.get_usage(subscription, "calls", window).unwrap().await {
                usage = Some(answer);
                break;
            }
        }
        let usage = usage.expect("the roll-up, through faults");
        assert_eq!(usage.amount_of("calls"), Some(sum), "nothing lost, nothing doubled");
        (sum, counts, during)
    });
    let already = counts.already.load(Ordering::Relaxed);
    println!(
        "{RECORDS} records, sum {sum}: {} requests received for them (every attempt of every call), \
         faults met:{}; {already} answers lost after storing and resolved as already recorded, \
         {} calls retried again by the application",
        during.requests,
        Faults::kinds()
            .iter()
            .zip(during.faults)
            .map(|(kind, n)| format!(" {kind:?} x {n}"))
            .collect::<String>(),
        counts.gave_up.load(Ordering::Relaxed),
    );
    assert_eq!(server.emulator.row_count(), RECORDS);
    // Every request met a fault or was answered, and each record was answered once: the
    // server counted every attempt and every fault it injected.
    let faulted: u64 = during.faults.iter().sum();
    assert_eq!(during.requests, faulted + RECORDS as u64);
    for (kind, n) in Faults::kinds().iter().zip(during.faults) {
        assert!(n > 0, "{kind:?} never injected");
    }
    // A lost answer is resolved only after the server stored and closed without answering.
    let closed_after = during.fault(&Fault::CommitThenLose);
    assert!(
        already > 0 && already <= closed_after,
        "{already} resolved, {closed_after} closed after storing"
    );
}

#[derive(Default)]
struct Counts {
    already: AtomicU64,
    gave_up: AtomicU64,
}

/// The server's counters at one moment.
struct Seen {
    requests: u64,
    /// Faults injected, in the order of [`Faults::kinds`].
    faults: [u64; 4],
}

impl Seen {
    fn now(stats: &Stats) -> Seen {
        Seen {
            requests: stats.requests(),
            faults: Faults::kinds().map(|kind| stats.faults(&kind)),
        }
    }

    fn fault(&self, kind: &Fault) -> u64 {
        let index = Faults::kinds().iter().position(|k| k == kind).expect("a kind");
        self.faults[index]
    }
}
