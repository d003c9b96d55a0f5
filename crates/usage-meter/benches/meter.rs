//! `Meter::record` throughput from one task: without a spool, and with the SQLite spool
//! (events counted once `Meter::durable` says they are committed). Requests go to a transport
//! that answers 201 at once, so the figures are the meter's own cost.
//!
//! `cargo bench -p usage-meter --features spool --bench meter`

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use usage_core::{Transport, TransportError, UsageClient};
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

fn client() -> UsageClient {
    UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(Accepting)
        .build()
        .unwrap()
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
                    for i in 0..EVENTS {
                        let subscription = subscriptions[(i % 16) as usize];
                        meter.record(subscription, &unit, date, Amount::from(1)).await.unwrap();
                    }
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
        let dir = std::env::temp_dir().join(format!("usage-meter-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meter = runtime.block_on(async {
            Meter::builder(client())
                .spool(dir.join("spool.sqlite"))
                .start()
                .unwrap()
        });
        group.bench_function("spool_durable", |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        for i in 0..EVENTS {
                            let subscription = subscriptions[(i % 16) as usize];
                            meter.record(subscription, &unit, date, Amount::from(1)).await.unwrap();
                        }
                        meter.durable().await.unwrap();
                    }
                    let elapsed = started.elapsed();
                    assert!(meter.flush(Duration::from_secs(60)).await.complete);
                    elapsed
                })
            })
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
