//! CPU and memory from /proc, and driving a client at a concurrency for a duration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::clients::Caller;
use crate::report::Op;
use crate::servers::ServerInfo;
use crate::{Settings, END, GET_SUBSCRIPTION, POST_SUBSCRIPTION, START, UNIT};

/// This thread's id.
pub(crate) fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok());
    tid.expect("a thread id")
}

/// A thread's run time in nanoseconds (first field of its schedstat).
pub(crate) fn thread_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Every live thread's run time.
pub(crate) fn all_threads_ns() -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        if let Some(tid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.insert(tid, thread_ns(tid));
        }
    }
    out
}

/// Run time of every thread but `excluded` between two snapshots, in seconds.
pub(crate) fn cpu_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>, excluded: &[u32]) -> f64 {
    let ns: u64 = after
        .iter()
        .filter(|(tid, _)| !excluded.contains(tid))
        .map(|(tid, end)| end.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1e9
}

/// `(VmRSS, VmHWM)` in KiB.
pub(crate) fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One measurement.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sample {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) client_cpu_s: f64,
    pub(crate) server_cpu_s: f64,
    pub(crate) server_requests: u64,
    /// Connections the server accepted over warm-up and measurement.
    pub(crate) connections: u64,
}

impl Sample {
    pub(crate) fn rps(&self) -> f64 {
        self.calls as f64 / self.elapsed_s
    }

    /// Client CPU seconds per 10,000 calls.
    pub(crate) fn client_cpu(&self) -> f64 {
        self.client_cpu_s / self.calls.max(1) as f64 * 1e4
    }

    /// Server CPU seconds per 10,000 requests served.
    pub(crate) fn server_cpu(&self) -> f64 {
        self.server_cpu_s / self.server_requests.max(1) as f64 * 1e4
    }
}

pub(crate) struct Driven {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) latencies_ns: Vec<u64>,
}

/// `concurrency` workers calling `caller` in a loop until `duration` has passed.
pub(crate) async fn drive(caller: &Caller, concurrency: usize, duration: Duration) -> Driven {
    let end = Instant::now() + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let caller = caller.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(16 * 1024);
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < end {
                let started = Instant::now();
                match caller.call().await {
                    Ok(()) => latencies.push(started.elapsed().as_nanos() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        });
    }
    let mut driven = Driven {
        calls: 0,
        errors: 0,
        first_error: None,
        latencies_ns: Vec::new(),
    };
    while let Some(joined) = workers.join_next().await {
        let (latencies, errors, first_error) = joined.expect("a worker panicked");
        driven.calls += latencies.len() as u64;
        driven.errors += errors;
        driven.latencies_ns.extend(latencies);
        if driven.first_error.is_none() {
            driven.first_error = first_error;
        }
    }
    driven
}

pub(crate) fn percentile_us(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let index = ((sorted_ns.len() as f64 * q) as usize).min(sorted_ns.len() - 1);
    sorted_ns[index] as f64 / 1e3
}

/// Warm-up, then one measurement of `caller` from the main thread's runtime.
pub(crate) fn measure(
    runtime: &Runtime,
    caller: &Caller,
    concurrency: usize,
    settings: &Settings,
    duration_s: f64,
    server: &ServerInfo,
    server_tids: &[u32],
) -> Sample {
    let (server_ns, served) = (thread_ns(server.tid), (server.requests)());
    let connections = server.connections.load(Ordering::Relaxed);
    runtime.block_on(drive(
        caller,
        concurrency,
        Duration::from_secs_f64(settings.warmup_secs),
    ));
    let before = all_threads_ns();
    let started = Instant::now();
    let mut driven = runtime.block_on(drive(caller, concurrency, Duration::from_secs_f64(duration_s)));
    let elapsed_s = started.elapsed().as_secs_f64();
    let after = all_threads_ns();
    if let Some(e) = &driven.first_error {
        println!("    !! {} errors, the first: {e}", driven.errors);
    }
    driven.latencies_ns.sort_unstable();
    Sample {
        calls: driven.calls,
        errors: driven.errors,
        elapsed_s,
        p50_us: percentile_us(&driven.latencies_ns, 0.50),
        p99_us: percentile_us(&driven.latencies_ns, 0.99),
        client_cpu_s: cpu_between(&before, &after, server_tids),
        server_cpu_s: thread_ns(server.tid).saturating_sub(server_ns) as f64 / 1e9,
        server_requests: (server.requests)() - served,
        connections: server.connections.load(Ordering::Relaxed) - connections,
    }
}

/// Why the JavaScript client cannot run, or `None` when it can.
pub(crate) fn js_unavailable(settings: &Settings) -> Option<String> {
    if !settings.js {
        return Some("LOAD_JS=0".into());
    }
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("`node` is not installed (or not on PATH)".into());
    }
    if !js_dir().join("node_modules/killbill/package.json").exists() {
        return Some(format!(
            "the npm package `killbill` is not installed in {}; enable with: cd benches/js && npm install",
            js_dir().display()
        ));
    }
    None
}

pub(crate) fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/js")
}

/// One measurement by `node benches/js/client.js`.
pub(crate) fn measure_js(
    op: Op,
    concurrency: usize,
    settings: &Settings,
    server: &ServerInfo,
    record_json: &serde_json::Value,
) -> Result<Sample, String> {
    let args = serde_json::json!({
        "url": server.url(),
        "op": op.name(),
        "concurrency": concurrency,
        "secs": settings.secs,
        "warmup_secs": settings.warmup_secs,
        "subscription_id": if op == Op::Get { GET_SUBSCRIPTION } else { POST_SUBSCRIPTION },
        "unit_type": UNIT,
        "start_date": START,
        "end_date": END,
        "record": record_json,
    });
    let (server_ns, served) = (thread_ns(server.tid), (server.requests)());
    let connections = server.connections.load(Ordering::Relaxed);
    let output = std::process::Command::new("node")
        .arg(js_dir().join("client.js"))
        .arg(args.to_string())
        .current_dir(js_dir())
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let server_cpu_s = thread_ns(server.tid).saturating_sub(server_ns) as f64 / 1e9;
    let server_requests = (server.requests)() - served;
    if !output.status.success() {
        return Err(format!(
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|e| format!("{e}: {line}"))?;
    if let Some(skipped) = v.get("skipped") {
        return Err(skipped.to_string());
    }
    if let Some(e) = v["first_error"].as_str() {
        println!("    !! {} errors, the first: {e}", v["errors"]);
    }
    let number = |name: &str| v[name].as_f64().unwrap_or(0.0);
    Ok(Sample {
        calls: number("calls") as u64,
        errors: number("errors") as u64,
        elapsed_s: number("elapsed_s"),
        p50_us: number("p50_us"),
        p99_us: number("p99_us"),
        client_cpu_s: number("cpu_s"),
        server_cpu_s,
        server_requests,
        connections: server.connections.load(Ordering::Relaxed) - connections,
    })
}
