//! `kb-usage serve`: the binary's first line, its robustness, its shutdown and its options. The
//! server library itself is tested in `usage-transport-memory/tests/serve.rs`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{get_request, kbs, raw_http, status_of, tracked_post, BASIC};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
const SUB2: &str = "0e1a4c7a-2222-4d47-9a7e-1f3c2c8f4a11";

/// The binary serving, killed on drop if still running.
struct Served {
    child: Child,
    addr: SocketAddr,
    first_line: String,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kb-usage"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kb-usage serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut first_line = String::new();
        BufReader::new(stdout).read_line(&mut first_line).expect("first line");
        let addr = first_line
            .trim_end()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"));
        Served {
            child,
            addr,
            first_line,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(mut self) -> (i32, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let code = self.child.wait().expect("wait").code().unwrap_or(-1);
        (code, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    let served = Served::start(&["--subscription", SUB, "--log"]);
    assert!(served.first_line.starts_with("listening on http://127.0.0.1:"));
    assert!(served.addr.port() > 0);
    let url = served.url();

    // 401 without credentials, with Kill Bill's challenge.
    let response = raw_http(
        served.addr,
        get_request(
            &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            false,
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&response), 401, "{response}");
    assert!(response
        .to_ascii_lowercase()
        .contains("www-authenticate: basic realm=\"application\""));

    // 413 on a body declared too large, without reading it.
    let huge = format!(
        "POST /1.0/kb/usages HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{",
        17 * 1024 * 1024
    );
    let response = raw_http(served.addr, huge.as_bytes());
    assert_eq!(status_of(&response), 413, "{response}");

    // Malformed HTTP: 400 from hyper, and the server keeps serving.
    let response = raw_http(served.addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(status_of(&response), 400, "{response}");

    // The admin route creates a subscription in the caller's tenant.
    let body = format!("{{\"subscriptionId\":\"{SUB2}\"}}");
    let admin = format!(
        "POST /emulator/subscriptions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {BASIC}\r\nX-Killbill-ApiKey: bob\r\n\
         X-Killbill-ApiSecret: lazar\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = raw_http(served.addr, admin.as_bytes());
    assert_eq!(status_of(&response), 201, "{response}");
    assert!(
        response.ends_with(&format!("{{\"subscriptionId\":\"{SUB2}\"}}")),
        "{response}"
    );
    let run = kbs(
        &url,
        &format!("record --subscription {SUB2} --unit a --amount 3 --date 2013-08-01"),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = kbs(
        &url,
        &format!("get --subscription {SUB2} --from 2013-08-01 --to 2013-08-02 --output json"),
    );
    assert!(run.stdout.contains("\"amount\": 3"), "{run:?}");

    let (code, stderr) = served.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stopped: "), "{stderr}");
    // One log line per request: method, path, status, duration; never credentials.
    assert!(stderr.contains("POST /emulator/subscriptions 201"), "{stderr}");
    assert!(stderr.contains(&format!("GET /1.0/kb/usages/{SUB2} 200")), "{stderr}");
    assert!(stderr.contains("POST /1.0/kb/usages 413"), "{stderr}");
    for secret in ["password", "lazar", "YWRtaW46cGFzc3dvcmQ="] {
        assert!(!stderr.contains(secret), "the log shows {secret}: {stderr}");
    }
}

#[test]
fn the_binary_refuses_bad_settings() {
    let run = kbs("http://127.0.0.1:1", "serve --user no-colon");
    assert_eq!(run.code, 2);
    assert!(!run.stderr.contains("no-colon"), "{run:?}");
    let run = kbs("http://127.0.0.1:1", "serve --faults 2");
    assert_eq!(run.code, 2);
    let run = kbs("http://127.0.0.1:1", "serve --seed 3");
    assert_eq!(run.code, 2, "--seed needs --faults");
}

/// The binary's options: `--kill-bill-duplicates` and `--slow-commits`.
#[test]
fn the_binary_serves_slow_commits_with_kill_bills_duplicate_check() {
    let served = Served::start(&[
        "--subscription",
        SUB,
        "--kill-bill-duplicates",
        "50",
        "--slow-commits",
        "1",
        "--slow-commit-ms",
        "400",
    ]);
    let addr = served.addr;
    let started = std::time::Instant::now();
    let slow = std::thread::spawn(move || status_of(&raw_http(addr, tracked_post(SUB, "t-2").as_bytes())));
    // A retry while the first POST is still processed: both pass the check.
    std::thread::sleep(Duration::from_millis(150));
    let retry = status_of(&raw_http(addr, tracked_post(SUB, "t-2").as_bytes()));
    assert_eq!((slow.join().unwrap(), retry), (201, 201));
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let response = raw_http(
        addr,
        get_request(
            &format!("/1.0/kb/usages/{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            true,
        )
        .as_bytes(),
    );
    assert!(
        response.contains(r#""amount":2.000000000"#),
        "counted twice: {response}"
    );
    let (code, stderr) = served.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("duplicate check as Kill Bill's"), "{stderr}");
    assert!(stderr.contains("slow commits: 2"), "{stderr}");
}
