//! tower interop both ways: layers around our transport, and tower services as transports.
#![cfg(feature = "tower")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::tower::{ServiceTransport, TransportService};
use killbill_usage::{Transport, TransportError, TransportErrorKind, UsageClient, UsageWindow};
use tower::{service_fn, ServiceBuilder, ServiceExt};

/// Counts requests and tracks the most in flight at once.
#[derive(Debug, Default)]
struct Counting {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

#[async_trait::async_trait]
impl Transport for Counting {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if request.uri().path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Ok(Response::builder().status(201).body(Bytes::new()).unwrap())
    }
}

fn record() -> SubscriptionUsageRecord {
    SubscriptionUsageRecord::builder(SubscriptionId::random())
        .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 1)
        .build()
        .unwrap()
}

fn client(transport: impl Transport) -> UsageClient {
    UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layers_around_our_transport() {
    let inner = Arc::new(Counting::default());
    let layered = ServiceBuilder::new()
        .concurrency_limit(2)
        .service(TransportService::from_arc(inner.clone()));
    let client = client(ServiceTransport::new(layered));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.record_usage(&record()).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(inner.calls.load(Ordering::SeqCst), 10);
    let max = inner.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=2).contains(&max), "{max} in flight");
}

#[tokio::test(start_paused = true)]
async fn a_tower_timeout_is_a_timeout_error() {
    let layered = ServiceBuilder::new()
        .timeout(Duration::from_secs(2))
        .service(TransportService::new(Counting::default()));
    let transport = ServiceTransport::new(layered);
    let request = Request::builder()
        .uri("http://127.0.0.1:8080/slow")
        .body(Bytes::new())
        .unwrap();
    let err = transport.send(request).await.unwrap_err();
    assert_eq!(err.kind(), TransportErrorKind::Timeout);
}

#[tokio::test]
async fn a_tower_service_is_a_transport() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let service = service_fn(move |request: Request<Bytes>| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            if request.method() == "POST" {
                return Ok::<_, TransportError>(Response::builder().status(201).body(Bytes::new()).unwrap());
            }
            let id = request.uri().path().rsplit('/').next().unwrap().to_string();
            let body = format!(
                r#"{{"subscriptionId":"{id}","startDate":"2013-08-01","endDate":"2013-09-01","rolledUpUnits":[{{"unitType":"gallons","amount":1}}]}}"#
            );
            Ok(Response::builder().status(200).body(Bytes::from(body)).unwrap())
        }
    });
    let client = client(ServiceTransport::new(service));
    let record = record();
    client.record_usage(&record).await.unwrap();
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let usage = client.get_all_usage(record.subscription_id(), window).await.unwrap();
    assert_eq!(usage.amount_of("gallons"), Some(1.into()));
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    // Errors keep their kind through the adapter; foreign errors become Other.
    let failing = service_fn(|_: Request<Bytes>| async {
        Err::<Response<Bytes>, _>(TransportError::new(TransportErrorKind::Connect, "refused"))
    });
    let request = || {
        Request::builder()
            .uri("http://127.0.0.1:8080/")
            .body(Bytes::new())
            .unwrap()
    };
    let err = ServiceTransport::new(failing).send(request()).await.unwrap_err();
    assert_eq!(err.kind(), TransportErrorKind::Connect);
    let foreign = service_fn(|_: Request<Bytes>| async { Err::<Response<Bytes>, _>(std::io::Error::other("boom")) });
    let err = ServiceTransport::new(foreign).send(request()).await.unwrap_err();
    assert_eq!(err.kind(), TransportErrorKind::Other);
    assert_eq!(err.message(), "boom");

    // And back: our transport as a tower service.
    let response = TransportService::new(Counting::default())
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}
