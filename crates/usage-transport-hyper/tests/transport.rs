//! HyperTransport against tiny servers on 127.0.0.1: Kill Bill answers through the client,
//! error statuses, redirects, requests that cannot be sent, retries, concurrency, secrets kept
//! out of `Debug`, and use outside a tokio runtime.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use usage_core::{Error, Operation as _, RetryPolicy, Transport, TransportErrorKind};
use usage_models::{SubscriptionUsageRecord, UsageDate};
use usage_transport_hyper::{client_builder, HyperTransport};

use common::{
    client, get_request, json, kill_bill, not_found, raw_server, read_head, rolled_up, subscription, window, Server,
    BASIC_ADMIN_PASSWORD, SUBSCRIPTION,
};

#[tokio::test]
async fn records_and_reads_through_the_client() {
    let server = Server::start(kill_bill).await;
    let client = client_builder(server.url("http"))
        .unwrap()
        .user("admin", "password")
        .tenant("bob", "lazar")
        .created_by("meter-7")
        .build()
        .unwrap();

    let day: UsageDate = "2013-08-01".parse().unwrap();
    let record = SubscriptionUsageRecord::builder(subscription())
        .tracking_id("t-1")
        .record("gallons used", day, 10)
        .build()
        .unwrap();
    let outcome = client.record_usage(&record).await.unwrap();
    assert_eq!(outcome.tracking_id().as_str(), "t-1");
    assert_eq!(outcome.attempts(), 1);
    assert!(!outcome.already_recorded());

    let usage = client
        .get_usage(subscription(), "gallons used", window())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.subscription_id(), subscription());
    assert_eq!(usage.start_date().to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.amount_of("gallons used").unwrap().to_string(), "15.000000000");

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let post = &seen[0];
    assert_eq!(post.method, Method::POST);
    assert_eq!(post.uri, "/killbill/1.0/kb/usages");
    assert_eq!(post.version, Version::HTTP_11);
    assert_eq!(post.headers["authorization"], BASIC_ADMIN_PASSWORD);
    assert_eq!(post.headers["x-killbill-apikey"], "bob");
    assert_eq!(post.headers["x-killbill-apisecret"], "lazar");
    assert_eq!(post.headers["x-killbill-createdby"], "meter-7");
    assert_eq!(post.headers["content-type"], "application/json");
    assert_eq!(post.headers["accept"], "application/json");
    assert_eq!(post.headers["host"], server.addr.to_string());
    assert_eq!(post.headers["content-length"], post.body.len().to_string());
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "subscriptionId": SUBSCRIPTION,
            "trackingId": "t-1",
            "unitUsageRecords": [{"unitType": "gallons used", "usageRecords": [{"recordDate": "2013-08-01", "amount": 10}]}]
        })
    );

    let get = &seen[1];
    assert_eq!(get.method, Method::GET);
    assert_eq!(
        get.uri,
        format!("/killbill/1.0/kb/usages/{SUBSCRIPTION}/gallons%20used?startDate=2013-08-01&endDate=2013-09-01")
    );
    assert_eq!(get.headers["authorization"], BASIC_ADMIN_PASSWORD);
    assert_eq!(get.headers["x-killbill-apisecret"], "lazar");
    assert!(get.body.is_empty());
    assert!(!get.headers.contains_key("content-length"));

    // Keep-alive: more calls, still (about) one connection. hyper-util may open one extra
    // connection in the background when a request starts before the previous connection is
    // back in the pool, hence "at most 2" rather than 1.
    for _ in 0..8 {
        client
            .get_usage(subscription(), "gallons used", window())
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(server.seen().len(), 10);
    let connections = server.accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&connections), "{connections} connections for 10 calls");
}

#[tokio::test]
async fn error_statuses_come_back_as_typed_api_errors() {
    let server = Server::start(|seen| {
        if seen.uri.contains("startDate=2013-08-01x") {
            json(
                400,
                r#"{"className":"java.lang.IllegalArgumentException","code":null,
                    "message":"Invalid format: \"2013-08-01x\" is malformed at \"x\"",
                    "causeClassName":null,"causeMessage":null,"stackTrace":[]}"#,
            )
        } else {
            json(404, &not_found(SUBSCRIPTION))
        }
    })
    .await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());

    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let kill_bill = error.kill_bill_error().unwrap();
    assert_eq!(kill_bill.short_class_name(), "ObjectDoesNotExist");
    assert_eq!(
        kill_bill.message(),
        Some(format!("Object id={SUBSCRIPTION} type=SUBSCRIPTION doesn't exist!").as_str())
    );

    // A 400 JSON error, through the transport alone and then parsed by the core.
    let transport = HyperTransport::new().unwrap();
    let request = Request::builder()
        .uri(format!(
            "{}/1.0/kb/usages/{SUBSCRIPTION}?startDate=2013-08-01x&endDate=2013-09-01",
            server.url("http")
        ))
        .body(Bytes::new())
        .unwrap();
    let response = transport.send(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let error = usage_core::GetAllUsage::new(subscription(), window())
        .parse(response)
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        error.kill_bill_error().unwrap().class_name(),
        "java.lang.IllegalArgumentException"
    );
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = Server::start(|seen| {
        if seen.uri.starts_with("/elsewhere") {
            return json(200, &rolled_up(SUBSCRIPTION));
        }
        Response::builder()
            .status(302)
            .header("location", "/elsewhere/1.0/kb/usages")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FOUND));
    let Error::Api(api) = &error else {
        panic!("not an API error: {error:?}")
    };
    assert_eq!(api.headers()["location"], "/elsewhere/1.0/kb/usages");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].uri.starts_with("/killbill/1.0/kb/usages/"));
}

#[tokio::test]
async fn requests_that_cannot_be_sent_are_invalid() {
    let transport = HyperTransport::builder().https_only(true).build().unwrap();
    for (uri, message) in [
        (
            "/1.0/kb/usages",
            "the URI must be absolute and start with http:// or https://",
        ),
        (
            "ftp://127.0.0.1/1.0/kb/usages",
            "the URI must be absolute and start with http:// or https://",
        ),
        (
            "http://127.0.0.1:1/1.0/kb/usages",
            "this transport is https-only; refusing to send over http://",
        ),
        (
            "https://admin:password@127.0.0.1:1/x",
            "the URI must not carry credentials",
        ),
    ] {
        let request = Request::builder().uri(uri).body(Bytes::new()).unwrap();
        let error = transport.send(request).await.unwrap_err();
        assert_eq!(error.kind(), TransportErrorKind::InvalidRequest, "{uri}");
        assert_eq!(error.message(), message, "{uri}");
        assert!(!error.may_have_reached_server());
        assert!(!error.to_string().contains("password"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_a_multi_thread_runtime() {
    let server = Server::start(kill_bill).await;
    let client = client(&server.url("http"), HyperTransport::new().unwrap());
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            // tokio::spawn requires the call's future to be Send.
            tokio::spawn(async move { client.get_all_usage(subscription(), window()).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().subscription_id(), subscription());
    }
    assert_eq!(server.seen().len(), 16);
    assert!(server.accepted.load(Ordering::SeqCst) <= 16);
}

#[tokio::test]
async fn secrets_never_show_in_debug_or_errors() {
    let server = Server::start(|_| {
        Response::builder()
            .status(401)
            .header("www-authenticate", "BASIC realm=\"application\"")
            .body(Full::new(Bytes::new()))
            .unwrap()
    })
    .await;
    let password = "pa55-w0rd-xyz";
    let api_secret = "t3nant-s3cret-xyz";
    // base64("admin:pa55-w0rd-xyz")
    let basic = "YWRtaW46cGE1NS13MHJkLXh5eg==";
    let build = |url: &str| {
        client_builder(url)
            .unwrap()
            .user("admin", password)
            .tenant("bob", api_secret)
            .build()
            .unwrap()
    };
    let client = build(&server.url("http"));
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(error.is_unauthorized());
    // The server did get the secrets (so they were there to leak)...
    let seen = server.seen();
    assert_eq!(seen[0].headers["authorization"], format!("Basic {basic}"));
    assert_eq!(seen[0].headers["x-killbill-apisecret"], api_secret);

    // ... and a transport error from a refused connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let refused = build(&url).get_all_usage(subscription(), window()).await.unwrap_err();
    assert!(refused.transport_error().is_some());

    let transport = HyperTransport::new().unwrap();
    for text in [
        format!("{client:?}"),
        format!("{error:?}"),
        format!("{error}"),
        format!("{refused:?}"),
        format!("{refused}"),
        format!("{transport:?}"),
        format!("{:?}", HyperTransport::builder().add_root_certificate("x")),
    ] {
        for secret in [password, api_secret, basic] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn a_lost_answer_to_a_post_is_retried_under_the_same_tracking_id() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = attempts.clone();
    let addr = raw_server(move |mut stream| {
        let seen = seen.clone();
        async move {
            let mut request = read_head(&mut stream).await;
            // The body follows the head (a few hundred bytes); read it all.
            let length = String::from_utf8_lossy(&request)
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let head_end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let mut buf = [0u8; 1024];
            while request.len() < head_end + length {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.push(request[head_end..].to_vec());
                seen.len() == 1
            };
            if first {
                // The server got the request, the answer is lost.
                drop(stream);
            } else {
                let _ = stream
                    .write_all(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await;
    let client = client_builder(format!("http://{addr}"))
        .unwrap()
        .user("admin", "password")
        .tenant("bob", "lazar")
        .retry_policy(RetryPolicy::default().with_initial_backoff(Duration::from_millis(10)))
        .build()
        .unwrap();
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let record = SubscriptionUsageRecord::builder(subscription())
        .record("gallons", day, 10)
        .build()
        .unwrap();
    let outcome = client.record_usage(&record).await.unwrap();
    assert_eq!(outcome.attempts(), 2);
    let bodies = attempts.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the retry resends the same body");
    let body: serde_json::Value = serde_json::from_slice(&bodies[1]).unwrap();
    assert_eq!(body["trackingId"], outcome.tracking_id().as_str());
}

/// Polls a future to completion on this thread, outside any tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn outside_a_tokio_runtime_the_transport_fails_without_panicking() {
    let transport = HyperTransport::new().unwrap();
    let error = block_on(transport.send(get_request("http://127.0.0.1:1"))).unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Other);
    assert_eq!(
        error.message(),
        "HyperTransport must be used inside a tokio runtime (with I/O and time enabled)"
    );
}
