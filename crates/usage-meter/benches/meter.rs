//! `Meter::record` throughput from one task: without a spool, and with the SQLite spool
//! (events counted once `Meter::durable` says they are committed). Requests go to a transport
//! that answers 201 at once, so the figures are the meter's own cost.
//!
//! `into_serve` times 1,000,000 events from the first `record` until `shutdown` has delivered
//! them all, in requests of 1,000 records, to `kb-usage serve`'s emulator over loopback (its
//! own runtime, same process).
//!
//! `cargo bench -p usage-meter --features spool --bench meter`

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use usage_core::{RetryPolicy, Transport, TransportError, UsageClient};
use usage_meter::Meter;
use usage_models::{Amount, SubscriptionId, UnitType, UsageDate};

/// Answers 201 to everything, storing nothing.
#[derive(Debug)]
struct Accepting;

#[async_trait::async_trait]
impl Transport for Accepting {
    async fn send(&self, _: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
        Ok(http::Response::builder().status(201).body(Bytes::new()).unwrap())
    }
}

/// A client of [`Accepting`]: one attempt and no deadline (its transport never fails, and a
/// client without a timer may neither retry nor keep a deadline).
fn client() -> UsageClient {
    UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(Accepting)
        .retry_policy(RetryPolicy::none().without_deadline())
        .build()
        .unwrap()
}

/// `EVENTS` events, spread over `subscriptions` in turn.
async fn record_events(meter: &Meter, subscriptions: &[SubscriptionId], unit: &UnitType, date: UsageDate) {
    for i in 0..EVENTS {
        let subscription = subscriptions[i as usize % subscriptions.len()];
        meter.record(subscription, unit, date, Amount::from(1)).await.unwrap();
    }
}

const EVENTS: u64 = 100_000;

fn record(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let subscriptions: Vec<SubscriptionId> = (0..16).map(|_| SubscriptionId::random()).collect();
    let unit = UnitType::new("api-calls").unwrap();
    let date = UsageDate::now();
    let mut group = c.benchmark_group("meter_record");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);

    let meter = runtime.block_on(async { Meter::builder(client()).start().unwrap() });
    group.bench_function("no_spool", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    record_events(&meter, &subscriptions, &unit, date).await;
                }
                let elapsed = started.elapsed();
                // Delivered before the next sample, so that samples do not pile up.
                assert!(meter.flush(Duration::from_secs(60)).await.complete);
                elapsed
            })
        })
    });

    #[cfg(feature = "spool")]
    {
        let dir = tempfile::tempdir().unwrap();
        let meter = runtime.block_on(async {
            Meter::builder(client())
                .spool(dir.path().join("spool.sqlite"))
                .start()
                .unwrap()
        });
        group.bench_function("spool_durable", |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        record_events(&meter, &subscriptions, &unit, date).await;
                        meter.durable().await.unwrap();
                    }
                    let elapsed = started.elapsed();
                    assert!(meter.flush(Duration::from_secs(60)).await.complete);
                    elapsed
                })
            })
        });
        dir.close().unwrap();
    }
    group.finish();
}

/// 1M events through the meter into `kb-usage serve` over 127.0.0.1, end to end.
fn into_serve(c: &mut Criterion) {
    const ROWS: u64 = 1_000_000;
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = usage_transport_memory::serve::ServeConfig::new("127.0.0.1:0".parse().unwrap());
    config = config.with_auto_provision(true);
    let server = server_runtime
        .block_on(usage_transport_memory::serve::Server::bind(config))
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    let emulator = server.emulator().unwrap().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server_runtime.spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Auto-provisioned on their first request.
    let subscriptions: Vec<SubscriptionId> = (0..4).map(|_| SubscriptionId::random()).collect();
    let unit = UnitType::new("api-calls").unwrap();
    let mut group = c.benchmark_group("meter_into_serve");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.bench_function("1M_events", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let client = UsageClient::builder(url.as_str())
                        .user("admin", "password")
                        .tenant("bob", "lazar")
                        .transport(usage_transport_hyper::HyperTransport::new().unwrap())
                        .timer(usage_transport_hyper::TokioTimer)
                        .build()
                        .unwrap();
                    let meter = Meter::builder(client).start().unwrap();
                    let started = Instant::now();
                    for i in 0..ROWS {
                        let date = UsageDate::Instant(
                            chrono::DateTime::from_timestamp_millis(1_375_315_200_000 + i as i64).unwrap(),
                        );
                        let subscription = subscriptions[(i % 4) as usize];
                        meter.record(subscription, &unit, date, Amount::from(1)).await.unwrap();
                    }
                    let report = meter.shutdown(Duration::from_secs(120)).await;
                    elapsed += started.elapsed();
                    assert_eq!(report.pending_events, 0);
                    assert_eq!(emulator.row_count() as u64, ROWS);
                    emulator.reset();
                }
                elapsed
            })
        })
    });
    group.finish();
    let _ = stop.send(());
    let _ = server_runtime.block_on(serving);
}

criterion_group!(benches, record, into_serve);
criterion_main!(benches);
