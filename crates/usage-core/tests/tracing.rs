//! Every call is traced, and no trace ever carries a credential.
#![cfg(feature = "tracing")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use usage_core::{
    RequestOptions, TenantCredentials, Transport, TransportError, TransportErrorKind, UsageClient, UsageWindow,
    UserCredentials,
};
use usage_models::{SubscriptionUsageRecord, UsageDate};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 201 to POSTs; a connect error, then a 401 to GETs.
#[derive(Debug, Default)]
struct Script(Mutex<u32>);

#[async_trait::async_trait]
impl Transport for Script {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        if request.method() == "POST" {
            return Ok(Response::builder().status(201).body(Bytes::new()).unwrap());
        }
        let mut calls = self.0.lock().unwrap();
        *calls += 1;
        if *calls == 1 {
            return Err(TransportError::new(TransportErrorKind::Connect, "connection refused"));
        }
        Ok(Response::builder()
            .status(401)
            .body(Bytes::from_static(b"bad credentials"))
            .unwrap())
    }
}

#[derive(Debug)]
struct NoWait;

impl usage_core::Timer for NoWait {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }
    fn sleep(&self, _: std::time::Duration) -> usage_core::Sleep {
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn calls_are_traced_without_credentials() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let client = UsageClient::builder("http://127.0.0.1:8080")
        .user("admin", "hunter2-password")
        .tenant("bob", "lazar-secret")
        .transport(Script::default())
        .timer(NoWait)
        .build()
        .unwrap();
    let subscription = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id("trace-me")
        .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 10)
        .build()
        .unwrap();
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let options = RequestOptions::builder()
        .tenant(TenantCredentials::new("acme", "acme-secret"))
        .user(UserCredentials::new("u", "other-password"))
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            client.record_usage(&record).await.unwrap();
            let err = client
                .get_usage(subscription, "gallons", window)
                .unwrap()
                .options(options)
                .await
                .unwrap_err();
            assert!(err.is_unauthorized());
        });
    });
    let output = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "record_usage{subscription_id=8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 tracking_id=trace-me units=1 records=1}",
        "status=201",
        "call succeeded attempts=1",
        "get_usage{subscription_id=8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 unit_type=gallons}",
        "transport failed attempt=1 error=could not connect: connection refused",
        "retrying",
        "status=401",
        "call failed error=Kill Bill answered 401 Unauthorized: bad credentials",
    ] {
        assert!(output.contains(expected), "missing {expected:?} in:\n{output}");
    }
    for secret in ["hunter2", "lazar-secret", "acme-secret", "other-password", "Basic "] {
        assert!(!output.contains(secret), "{secret} leaked in:\n{output}");
    }
}
