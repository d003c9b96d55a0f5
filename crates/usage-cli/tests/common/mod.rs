//! Shared helpers of the integration tests: the binary, temp files, and (from
//! usage-transport-memory's tests) the in-process server.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use usage_models::Decimal;
use wait_timeout::ChildExt;

// The in-process server and the raw-HTTP helpers, shared with usage-transport-memory's tests of
// the server library (one copy).
#[path = "../../../usage-transport-memory/tests/served/mod.rs"]
mod served;
pub use served::*;

/// How long a run of the binary may take before the test kills it and fails: far more than any
/// run in these tests needs, so that a hung binary fails the test instead of hanging CI.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kb-usage` against `url` with `args`.
pub fn kb(url: &str, args: &[&str]) -> Run {
    kb_with_stdin(url, args, None)
}

/// Runs `kb-usage` with the whitespace-separated arguments of `line`.
pub fn kbs(url: &str, line: &str) -> Run {
    kb(url, &line.split_whitespace().collect::<Vec<_>>())
}

pub fn kb_with_stdin(url: &str, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kb-usage"));
    command
        .args(args)
        .env("KILLBILL_URL", url)
        .env_remove("KILLBILL_USER")
        .env_remove("KILLBILL_PASSWORD")
        .env_remove("KILLBILL_API_KEY")
        .env_remove("KILLBILL_API_SECRET")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn kb-usage");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).expect("write stdin");
    }
    let output = wait_bounded(child, CHILD_TIMEOUT);
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Waits for `child` for at most `limit`, reading its stdout and stderr pipes meanwhile (those
/// not taken yet); past `limit`, kills it and fails with what it wrote.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    // A pipe the caller took (to read it as it comes) is theirs to read: empty here.
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = child.wait_timeout(limit).expect("wait for kb-usage");
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    match status {
        Some(status) => Output { status, stdout, stderr },
        None => panic!(
            "kb-usage still running after {limit:?}, killed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// A file in the temp dir, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, content: &[u8]) -> TempFile {
        let unique = format!("kb-usage-test-{}-{}-{name}", std::process::id(), fastrand::u64(..));
        let path = std::env::temp_dir().join(unique);
        std::fs::write(&path, content).expect("write temp file");
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Deserialize)]
struct RollupUnit {
    unit_type: String,
    amount: Box<RawValue>,
}

#[derive(Deserialize)]
struct Rollup {
    units: Vec<RollupUnit>,
}

/// The server's roll-up through `kb-usage get --output json`: exact sums by unit type.
pub fn rollup(url: &str, subscription: &str, from: &str, to: &str) -> Vec<(String, Decimal)> {
    let args = [
        "get",
        "--subscription",
        subscription,
        "--from",
        from,
        "--to",
        to,
        "--output",
        "json",
        // Enough retries to read through a server that injects faults.
        "--retries",
        "20",
    ];
    let run = kb(url, &args);
    assert_eq!(run.code, 0, "get failed: {run:?}");
    let rollup: Rollup = serde_json::from_str(&run.stdout).expect("get json");
    rollup
        .units
        .into_iter()
        .map(|u| (u.unit_type, Decimal::from_str(u.amount.get()).expect("decimal")))
        .collect()
}

/// The sum of one unit in a roll-up (zero when absent).
pub fn amount_of(rollup: &[(String, Decimal)], unit: &str) -> Decimal {
    rollup
        .iter()
        .find(|(u, _)| u == unit)
        .map(|(_, a)| *a)
        .unwrap_or_default()
}

/// `kb-usage get` over August 2013, with `extra` arguments.
pub fn get_august(url: &str, subscription: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "get",
        "--subscription",
        subscription,
        "--from",
        "2013-08-01",
        "--to",
        "2013-09-01",
    ];
    args.extend_from_slice(extra);
    kb(url, &args)
}

/// The server's sum of `unit` for `subscription` over August 2013.
pub fn august(url: &str, subscription: &str, unit: &str) -> Decimal {
    amount_of(&rollup(url, subscription, "2013-08-01", "2013-09-01"), unit)
}
