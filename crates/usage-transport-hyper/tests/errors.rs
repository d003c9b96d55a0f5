//! HyperTransport against tiny servers on 127.0.0.1: every failure kind (refused, silent,
//! cut short, closed, connect timeouts) and the body cap.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use usage_core::{Transport, TransportError, TransportErrorKind};
use usage_transport_hyper::HyperTransport;

use common::{
    chain, client, get_request, get_with_defaults, raw_server, read_head, silent_server, subscription, timed_get,
    window,
};

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");

    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(!error.may_have_reached_server());
    let io = chain(&error)
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .expect("the io::Error is kept in the chain");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        error
            .message()
            .starts_with("client error (Connect): tcp connect error: "),
        "{}",
        error.message()
    );

    let client = client(&url, HyperTransport::new().unwrap());
    let error = client.get_all_usage(subscription(), window()).await.unwrap_err();
    assert_eq!(
        error.transport_error().map(TransportError::kind),
        Some(TransportErrorKind::Connect)
    );
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_request_timeout() {
    let (addr, held) = silent_server(true).await;
    let transport = HyperTransport::builder()
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (error, elapsed) = timed_get(&transport, &format!("http://{addr}")).await;
    assert_eq!(error.kind(), TransportErrorKind::Timeout, "{error:?}");
    assert!(error.may_have_reached_server());
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(error.to_string().contains("200ms"), "{error}");
    // The server did get the request.
    let held = held.lock().unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].0.starts_with(b"GET /1.0/kb/usages/"));
}

#[tokio::test]
async fn a_body_cut_short_is_io_or_incomplete() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"subscri")
            .await;
        let _ = stream.shutdown().await;
    })
    .await;
    let error = get_with_defaults(addr).await.unwrap_err();
    assert!(
        matches!(error.kind(), TransportErrorKind::Incomplete | TransportErrorKind::Io),
        "{error:?}"
    );
    assert_eq!(
        error.message(),
        "error reading a body from connection: end of file before message length reached"
    );
    assert!(error.may_have_reached_server());
}

#[tokio::test]
async fn a_server_closing_without_answering_is_incomplete() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        drop(stream);
    })
    .await;
    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Incomplete, "{error:?}");
    assert_eq!(
        error.message(),
        "client error (SendRequest): connection closed before message completed"
    );
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_reading_it() {
    let addr = raw_server(|mut stream| async move {
        read_head(&mut stream).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n{\"a\":")
            .await;
        // Keep the connection open: the client must not wait for the body.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let started = Instant::now();
    let error = get_with_defaults(addr).await.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    assert_eq!(
        error.message(),
        "the response declares a body of 5000000 bytes, more than the limit of 4194304 bytes"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A chunked response of `total` bytes (in 16 KiB chunks); returns how many body bytes the
/// server managed to write.
async fn chunked_server(total: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let addr = raw_server(move |mut stream| {
        let counter = counter.clone();
        async move {
            read_head(&mut stream).await;
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let chunk = vec![b'x'; 16 * 1024];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len());
                let mut frame = format!("{n:x}\r\n").into_bytes();
                frame.extend_from_slice(&chunk[..n]);
                frame.extend_from_slice(b"\r\n");
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                counter.fetch_add(n, Ordering::SeqCst);
                left -= n;
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        }
    })
    .await;
    (addr, written)
}

#[tokio::test]
async fn a_streamed_body_is_cut_at_the_cap() {
    let transport = HyperTransport::builder().max_response_bytes(100_000).build().unwrap();

    // At the cap exactly: accepted.
    let (addr, _) = chunked_server(100_000).await;
    let response = transport.send(get_request(&format!("http://{addr}"))).await.unwrap();
    assert_eq!(response.body().len(), 100_000);

    // One byte over: refused.
    let (addr, _) = chunked_server(100_001).await;
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    assert_eq!(error.message(), "the response body exceeds the limit of 100000 bytes");

    // A huge body: the client stops reading at the cap and drops the connection, so the
    // server cannot write it all.
    let huge = 256 * 1024 * 1024;
    let (addr, written) = chunked_server(huge).await;
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::ResponseTooLarge, "{error:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = written.load(Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written.load(Ordering::SeqCst);
        if now == last || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    assert!(last < huge / 4, "the server wrote {last} bytes");
}

#[tokio::test]
async fn a_tcp_connect_that_never_completes_is_a_connect_error() {
    // A listener whose accept queue is full and never drained: the kernel drops further SYNs,
    // so a new connection hangs until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let transport = HyperTransport::builder()
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = transport
        .send(get_request(&format!("http://{addr}")))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::Connect, "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // It timed out (rather than being refused).
    assert!(
        chain(&error).any(|e| e.to_string().contains("within the connect timeout of 200ms")
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)),
        "{error:?}"
    );
    drop(listener);
}
