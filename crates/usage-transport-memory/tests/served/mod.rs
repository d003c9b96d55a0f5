//! The emulator served over loopback in this process, and raw HTTP/1.1 helpers: shared by the
//! tests of the server library (here) and of `kb-usage` (usage-cli's tests include this file).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use usage_models::Decimal;
use usage_transport_memory::serve::{build_emulator, Handler, ServeConfig, Server, Stats};
use usage_transport_memory::InMemoryKillBill;

/// `admin:password`.
pub const BASIC: &str = "Basic YWRtaW46cGFzc3dvcmQ=";

/// Builds the handler a [`TestServer`] serves from its emulator.
pub type WrapEmulator = Box<dyn FnOnce(InMemoryKillBill) -> Arc<dyn Handler> + Send>;

/// The emulator served over loopback on a runtime of its own, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub emulator: InMemoryKillBill,
    pub stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: ServeConfig) -> TestServer {
        TestServer::start_with(config, None)
    }

    /// Serves the emulator built from `config` through `wrap`, a handler that receives the
    /// emulator and answers in its place (to hold a request, say).
    pub fn start_with(config: ServeConfig, wrap: Option<WrapEmulator>) -> TestServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let (server, emulator) = match wrap {
                    None => {
                        let server = Server::bind(config).await.expect("bind");
                        let emulator = server.emulator().expect("emulator").clone();
                        (server, emulator)
                    }
                    Some(wrap) => {
                        let emulator = build_emulator(&config).expect("emulator");
                        let handler = wrap(emulator.clone());
                        (Server::bind_with(config, handler).await.expect("bind"), emulator)
                    }
                };
                ready_tx
                    .send((server.local_addr(), emulator, server.stats()))
                    .expect("ready");
                server
                    .run_until(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let (addr, emulator, stats) = ready_rx.recv_timeout(Duration::from_secs(30)).expect("server ready");
        TestServer {
            addr,
            emulator,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn with_subscriptions(subscriptions: &[&str]) -> TestServer {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
        config = config.with_subscriptions(subscriptions.iter().map(|s| s.parse().unwrap()).collect());
        TestServer::start(config)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends raw bytes on a new connection and reads until the server closes it.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.write_all(request).expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The status code of a raw HTTP response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Random amounts with up to 3 decimals, as text, and their exact sum.
pub fn random_amounts(rng: &mut fastrand::Rng, n: usize) -> (Vec<String>, Decimal) {
    let mut sum = Decimal::ZERO;
    let amounts: Vec<String> = (0..n)
        .map(|_| {
            let text = format!("{}.{:03}", rng.u32(0..10_000), rng.u32(0..1000));
            sum += Decimal::from_str(&text).expect("decimal");
            text
        })
        .collect();
    (amounts, sum)
}

/// A GET as raw HTTP/1.1 (`Connection: close`), with the default credentials when `auth`.
pub fn get_request(path: &str, auth: bool) -> String {
    let auth = if auth {
        format!("Authorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\nX-Killbill-ApiSecret: lazar\r\n")
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
}

/// A tracked POST as raw HTTP/1.1 (`Connection: close`).
pub fn tracked_post(subscription: &str, tracking_id: &str) -> String {
    let body = format!(
        r#"{{"subscriptionId":"{subscription}","trackingId":"{tracking_id}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate":"2013-08-01","amount":1}}]}}]}}"#
    );
    format!(
        "POST /1.0/kb/usages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\n\
         X-Killbill-ApiSecret: lazar\r\nX-Killbill-CreatedBy: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
