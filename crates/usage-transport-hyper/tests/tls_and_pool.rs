//! HyperTransport against tiny servers on 127.0.0.1: TLS with a self-signed root, HTTP/2
//! negotiation, the TLS handshake timeout, and the connection pool (idle timeout, closed
//! connections).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use usage_core::{Error, InputField, Transport, TransportErrorKind};
use usage_transport_hyper::HyperTransport;

use common::{
    chain, client, get_request, kill_bill, raw_server, read_head, rolled_up, silent_server, subscription, timed_get,
    window, Server, BASIC_ADMIN_PASSWORD, SUBSCRIPTION,
};

/// A self-signed certificate for 127.0.0.1 and a TLS acceptor serving it.
fn tls_acceptor() -> (rcgen::CertifiedKey<rcgen::KeyPair>, tokio_rustls::TlsAcceptor) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = if cfg!(feature = "http2") {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    (certified, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A root certificate that cannot be read is refused by `build` as `Error::InvalidInput`, with
/// the certificate's index as the field and the TLS library's error as the source.
#[test]
fn unreadable_root_certificates_are_refused_with_their_index() {
    let (certified, _acceptor) = tls_acceptor();
    let error = HyperTransport::builder()
        .add_root_certificate(certified.cert.pem())
        .add_root_certificate("hello")
        .build()
        .unwrap_err();
    let Error::InvalidInput(invalid) = &error else {
        panic!("not invalid input: {error:?}");
    };
    assert_eq!(invalid.field(), InputField::RootCertificate { index: 1 });
    assert_eq!(invalid.reason(), "neither PEM nor DER");
    assert_eq!(
        error.to_string(),
        "invalid input, nothing was sent: root certificate #1 (add_root_certificate): neither PEM nor DER"
    );

    // A DER SEQUENCE that is no certificate: rustls refuses it, and its error is the source.
    let error = HyperTransport::builder()
        .add_root_certificate([0x30, 0x03, 0x02, 0x01, 0x01])
        .build()
        .unwrap_err();
    let invalid = error.invalid_input().unwrap();
    assert_eq!(invalid.field(), InputField::RootCertificate { index: 0 });
    assert_eq!(invalid.reason(), "cannot be a trust anchor");
    let source = std::error::Error::source(&error).unwrap();
    assert!(
        std::error::Error::source(source).is_some(),
        "rustls' error is kept: {error:?}"
    );
}

#[tokio::test]
async fn tls_with_an_added_root() {
    let (certified, acceptor) = tls_acceptor();
    let server = Server::start_with(Some(acceptor), kill_bill).await;
    let url = server.url("https");

    // Trusted through the PEM root: the call works.
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.pem())
        .https_only(true)
        .build()
        .unwrap();
    let usage = client(&url, transport)
        .get_all_usage(subscription(), window())
        .await
        .unwrap();
    assert_eq!(usage.subscription_id(), subscription());
    assert_eq!(usage.rolled_up_units().len(), 1);

    // The same root in DER.
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.der())
        .build()
        .unwrap();
    let response = transport.send(get_request(&url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["authorization"], BASIC_ADMIN_PASSWORD);

    // Without the root, the handshake fails: a connect error, nothing sent.
    let error = client(&url, HyperTransport::new().unwrap())
        .get_all_usage(subscription(), window())
        .await
        .unwrap_err();
    let transport_error = error.transport_error().expect("a transport error");
    assert_eq!(transport_error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert_eq!(
        transport_error.message(),
        "client error (Connect): invalid peer certificate: UnknownIssuer"
    );
    let rustls_error = chain(transport_error)
        .find_map(|e| e.downcast_ref::<rustls::Error>())
        .expect("the rustls error is kept in the chain");
    assert!(
        matches!(rustls_error, rustls::Error::InvalidCertificate(_)),
        "{rustls_error:?}"
    );
    assert_eq!(server.seen().len(), 2, "nothing reached the server");
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let (certified, acceptor) = tls_acceptor();
    let server = Server::start_with(Some(acceptor), kill_bill).await;
    let transport = HyperTransport::builder()
        .add_root_certificate(certified.cert.pem())
        .build()
        .unwrap();
    let usage = client(&server.url("https"), transport)
        .get_all_usage(subscription(), window())
        .await
        .unwrap();
    assert_eq!(usage.subscription_id(), subscription());
    assert_eq!(server.seen()[0].version, http::Version::HTTP_2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start(kill_bill).await;
    let transport = HyperTransport::builder()
        .pool_idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let response = transport.send(get_request(&server.url("http"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    while server.closed.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.closed.load(Ordering::SeqCst),
        1,
        "the idle connection was not closed"
    );
    // The transport (and its pool) is still alive: the client closed the connection.
    let response = transport.send(get_request(&server.url("http"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_a_connect_error() {
    // Accept TCP, never answer the ClientHello.
    let (addr, _held) = silent_server(false).await;
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_millis(200))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (error, elapsed) = timed_get(&transport, &format!("https://{addr}")).await;
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(!error.may_have_reached_server());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        chain(&error)
            .any(|e| e.to_string()
                == "no connection (TCP connect and TLS handshake) within the connect timeout of 200ms"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_not_reused() {
    // Answers one request per connection, then closes its side (FIN, 20 ms later, with no
    // `Connection: close` to warn the client) and keeps reading: bytes arriving after the
    // answer are a request sent on a connection the server closes, that is, a reuse.
    // (Counting connections alone cannot tell: hyper-util resends a request that hit a dead
    // pooled connection on a new one, so the count would be the same.)
    let accepted = Arc::new(AtomicUsize::new(0));
    let sent_after_close = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (count, late, done) = (accepted.clone(), sent_after_close.clone(), finished.clone());
    let addr = raw_server(move |mut stream| {
        count.fetch_add(1, Ordering::SeqCst);
        let (late, done) = (late.clone(), done.clone());
        async move {
            read_head(&mut stream).await;
            let body = rolled_up(SUBSCRIPTION);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = stream.shutdown().await;
            // Until the client closes its side (or 5 s pass).
            let mut buf = [0u8; 1024];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                if n > 0 {
                    late.fetch_add(1, Ordering::SeqCst);
                }
            }
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let client = client(&format!("http://{addr}"), HyperTransport::new().unwrap());
    for _ in 0..3 {
        let usage = client.get_all_usage(subscription(), window()).await.unwrap();
        assert_eq!(usage.subscription_id(), subscription());
        // Give the pool time to see the server's FIN.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Dropping the client closes what the pool holds: every connection's watch then ends.
    drop(client);
    for _ in 0..500 {
        if finished.load(Ordering::SeqCst) == accepted.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(finished.load(Ordering::SeqCst), accepted.load(Ordering::SeqCst));
    assert_eq!(
        sent_after_close.load(Ordering::SeqCst),
        0,
        "a request went out on a connection the server had closed"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
