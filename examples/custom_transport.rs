//! Plugging in an HTTP stack of your own: a [`Transport`] over `ureq` (a blocking client),
//! run against `kb-usage serve`'s server started in-process on 127.0.0.1.
//!
//! The contract of a transport:
//! - the request has an absolute URI, its headers and its whole body: send them as they are;
//! - any HTTP status is `Ok`: return the status, headers and whole body (never turn 4xx/5xx into
//!   errors: the client reads them);
//! - never retry and never follow redirects (the client decides what is safe to retry, and
//!   credentials must never go to another host);
//! - classify failures with [`TransportErrorKind`]: `Connect` when nothing was sent, `Timeout`,
//!   `Io`, `Incomplete`, `InvalidRequest`, `ResponseTooLarge`, `Other`;
//! - cap the response size and set finite timeouts.
//!
//! ```sh
//! cargo run --example custom_transport
//! ```

use std::time::Duration;

use bytes::Bytes;
use killbill_usage::models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{Transport, TransportError, TransportErrorKind, UsageClient, UsageWindow};
use usage_transport_memory::serve::{ServeConfig, Server};

/// The most of a response body this transport reads.
const MAX_BODY: u64 = 4 << 20;

/// A transport over ureq's blocking agent, run on tokio's blocking pool.
#[derive(Debug, Clone)]
struct UreqTransport {
    agent: ureq::Agent,
}

impl UreqTransport {
    fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false) // every status is an answer
            .max_redirects(0) // never follow redirects
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(10)))
            .build();
        UreqTransport {
            agent: config.new_agent(),
        }
    }

    fn send_blocking(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, body.to_vec());
        let mut response = self.agent.run(request).map_err(classify)?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(classify)?;
        let (parts, _) = response.into_parts();
        Ok(http::Response::from_parts(parts, Bytes::from(bytes)))
    }
}

/// ureq's errors, as the client's kinds.
fn classify(error: ureq::Error) -> TransportError {
    let kind = match &error {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => TransportErrorKind::Connect,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => TransportErrorKind::Connect,
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => TransportErrorKind::Incomplete,
        ureq::Error::Io(_) => TransportErrorKind::Io,
        ureq::Error::BodyExceedsLimit(_) => TransportErrorKind::ResponseTooLarge,
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => TransportErrorKind::InvalidRequest,
        _ => TransportErrorKind::Other,
    };
    TransportError::with_source(kind, error)
}

#[async_trait::async_trait]
impl Transport for UreqTransport {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, TransportError> {
        let transport = self.clone();
        tokio::task::spawn_blocking(move || transport.send_blocking(request))
            .await
            .map_err(|e| TransportError::with_source(TransportErrorKind::Other, e))?
    }
}

async fn scenario() -> Result<(), Box<dyn std::error::Error>> {
    // The emulator over real HTTP, on a free loopback port, with one subscription.
    let subscription = SubscriptionId::random();
    let config = ServeConfig::new("127.0.0.1:0".parse()?).with_subscriptions(vec![subscription.uuid()]);
    let server = Server::bind(config).await?;
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    let client = UsageClient::builder(&url)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(UreqTransport::new())
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()?;
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id("ureq-1")
        .record("gallons", "2013-08-01T06:30:00Z".parse::<UsageDate>()?, "10.5")
        .record("gallons", "2013-08-02".parse::<UsageDate>()?, "4.5")
        .build()?;
    client.record_usage(&record).await?;
    let august = UsageWindow::parse("2013-08-01", "2013-09-01")?;
    let usage = client.get_usage(subscription, "gallons", august)?.await?;
    println!("over ureq at {url}: {:?} gallons", usage.amount_of("gallons"));
    assert_eq!(usage.amount_of("gallons"), Some(15.into()));

    // Errors come back typed through any transport.
    let err = client
        .get_all_usage(SubscriptionId::random(), august)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let _ = stop.send(());
    serving.await??;

    // A refused connection is a Connect error: nothing was sent.
    let refused = UreqTransport::new()
        .send(http::Request::builder().uri(&url).body(Bytes::new())?)
        .await
        .unwrap_err();
    println!("after shutdown: {refused}");
    assert_eq!(refused.kind(), TransportErrorKind::Connect);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    scenario().await
}

#[test]
fn the_scenario_passes() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario())
        .unwrap();
}
