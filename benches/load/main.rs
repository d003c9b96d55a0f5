//! Load harness over loopback: the client under load against real HTTP servers on 127.0.0.1,
//! next to its FLOOR, a bare hyper-util client sending the same bytes.
//!
//! `cargo bench --bench load` runs, in one process:
//!
//! 1. `memory`: `UsageClient` + `HyperTransport` against the canned server for
//!    `LOAD_MEMORY_SECS`, GET and POST mixed at concurrency 16; VmRSS sampled ten times,
//!    VmHWM at the end (is there growth per call?).
//! 2. `compare`: for GET and POST, at each concurrency, in alternation (A B C ... A B C ...,
//!    `LOAD_ROUNDS` rounds):
//!    - `ours`: `UsageClient` + `HyperTransport` + `TokioTimer`, default retry policy;
//!    - `floor`: a hyper-util legacy client with the same pool settings, sending a request
//!      prebuilt once (byte for byte what `ours` sends: method, URI, headers, body) and
//!      reading the whole body, nothing else;
//!    - `floor+serde`: the floor doing, besides, the work any client that takes and gives
//!      typed values must do: serializing the record on each POST, parsing each GET's answer
//!      into the model's `RolledUpUsage` (`usage-models`' serde impls, `serde_json`); what is
//!      left between it and `ours` is the client's own overhead;
//!    - `bounded`: `floor+serde` doing, besides, what any client whose calls take typed
//!      values and end in a finite time does on this stack: it makes the request's URI from
//!      its text on each call (`http`'s `PathAndQuery`) and bounds the exchange with
//!      `tokio::time::timeout`; a lower bound for such a client;
//!    - `js`: Kill Bill's official JavaScript client (npm `killbill`) run by `node`, when both
//!      are installed (`cd benches/js && npm install`; the harness never installs anything);
//!    - `ours` and `floor` (GET only: the emulator refuses a repeated tracking id) against
//!      `kb-usage serve`'s emulator, to show what the emulator's own work costs (the emulator
//!      is emptied and seeded again after each POST measurement, so that it does not grow).
//! 3. `bulk`: rows per second through `record_usage` to the emulator, 100 and 1,000 rows per
//!    request, concurrency 4.
//!
//! Threads: each server runs a current-thread tokio runtime on its own thread, and the Rust
//! clients a current-thread runtime on the main thread: on two cores, one core each.
//!
//! CPU: the kernel's per-thread run time (`/proc/self/task/*/schedstat`, nanoseconds, the
//! figure `getrusage` sums): client = every thread of the process but the servers', over the
//! measured period; server = the server's thread over warm-up and measurement, divided by the
//! requests it served then. The JavaScript client reports `process.cpuUsage()` of node.
//!
//! Settings (environment): `LOAD_SECS` (1.0, per measurement), `LOAD_WARMUP_SECS` (0.2),
//! `LOAD_ROUNDS` (3), `LOAD_CONCURRENCY` (`1,16,64`), `LOAD_PHASES` (`memory,compare,bulk`),
//! `LOAD_MEMORY_SECS` (20), `LOAD_BULK_SECS` (1.5), `LOAD_JS` (`0` skips node),
//! `LOAD_CLIENTS` (`ours,floor,floor+serde,bounded,js,ours@emulator,floor@emulator`) and `LOAD_OPS` (`get,post`):
//! which to run, for profiling. It prints what it does, one line per measurement, then
//! Markdown tables (BENCHMARKS.md, "Load harness over loopback"). Without `--bench`
//! (`cargo test --benches`) it makes one quick pass, without node, to check that all runs.

mod clients;
#[path = "../common/mod.rs"]
mod common;
mod measure;
mod phases;
mod report;
mod servers;

use std::fmt::Write as _;

use http::StatusCode;
use http_body_util::BodyExt as _;

use crate::clients::{copy, get_template, raw_client, seed, subscription};
use crate::measure::rss_kib;
use crate::phases::{bulk_phase, compare_phase, memory_phase};
use crate::servers::{start_canned, start_emulator};

/// The subscription the GETs read (it has [`SEED_RECORDS`] records of [`POST_ROWS`] rows).
pub(crate) const GET_SUBSCRIPTION: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
/// The subscription the POSTs write to.
pub(crate) const POST_SUBSCRIPTION: &str = "3f2a4d1c-7b6e-4c5d-9e8f-0a1b2c3d4e5f";
pub(crate) const UNIT: &str = "api-calls";
pub(crate) const START: &str = "2013-08-01T00:00:00.000Z";
pub(crate) const END: &str = "2013-09-01T00:00:00.000Z";
/// Rows in the record of each POST: a meter's flush, 2 unit types x 5 readings.
pub(crate) const POST_ROWS: usize = 10;
pub(crate) const SEED_RECORDS: usize = 20;
pub(crate) const MEMORY_CONCURRENCY: usize = 16;
pub(crate) const BULK_CONCURRENCY: usize = 4;
pub(crate) const BULK_ROWS: [usize; 2] = [100, 1000];

// ----------------------------------------------------------------------------------------
// Settings
// ----------------------------------------------------------------------------------------

pub(crate) struct Settings {
    pub(crate) secs: f64,
    pub(crate) warmup_secs: f64,
    pub(crate) rounds: usize,
    pub(crate) concurrency: Vec<usize>,
    pub(crate) phases: Vec<String>,
    pub(crate) memory_secs: f64,
    pub(crate) bulk_secs: f64,
    pub(crate) js: bool,
    pub(crate) clients: Vec<String>,
    pub(crate) ops: Vec<String>,
}

pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    /// The settings from the environment; without `--bench` (`cargo test --benches`), a quick
    /// pass that only checks that everything runs.
    pub(crate) fn from_env(bench: bool) -> Settings {
        let quick = |full: f64, smoke: f64| if bench { full } else { smoke };
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Settings {
            secs: env_or("LOAD_SECS", quick(1.0, 0.05)),
            warmup_secs: env_or("LOAD_WARMUP_SECS", quick(0.2, 0.02)),
            rounds: env_or("LOAD_ROUNDS", if bench { 3usize } else { 1 }).max(1),
            concurrency: list("LOAD_CONCURRENCY", "1,16,64")
                .iter()
                .map(|c| c.parse().expect("LOAD_CONCURRENCY: numbers separated by commas"))
                .collect(),
            phases: list("LOAD_PHASES", "memory,compare,bulk"),
            memory_secs: env_or("LOAD_MEMORY_SECS", quick(20.0, 0.5)),
            bulk_secs: env_or("LOAD_BULK_SECS", quick(1.5, 0.05)),
            js: std::env::var("LOAD_JS").map(|v| v != "0").unwrap_or(bench),
            clients: list(
                "LOAD_CLIENTS",
                "ours,floor,floor+serde,bounded,js,ours@emulator,floor@emulator",
            ),
            ops: list("LOAD_OPS", "get,post"),
        }
    }

    pub(crate) fn phase(&self, name: &str) -> bool {
        self.phases.iter().any(|p| p == name)
    }
}

// ----------------------------------------------------------------------------------------
// Main
// ----------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then one quick
    // pass checks that everything runs (no node, a few tenths of a second per phase).
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bench = std::env::args().any(|a| a == "--bench");
    if !bench {
        println!("load harness: test mode (no --bench): one quick pass, numbers meaningless");
    }
    let settings = Settings::from_env(bench);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "load harness: {} CPUs ({cpu}); phases {:?}; LOAD_SECS={} LOAD_WARMUP_SECS={} LOAD_ROUNDS={} LOAD_CONCURRENCY={:?} LOAD_MEMORY_SECS={} LOAD_BULK_SECS={}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        settings.phases,
        settings.secs,
        settings.warmup_secs,
        settings.rounds,
        settings.concurrency,
        settings.memory_secs,
        settings.bulk_secs
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The emulator first: it writes the roll-up the canned server gives back.
    let (emulator, emulator_state) = start_emulator(
        vec![subscription(GET_SUBSCRIPTION), subscription(POST_SUBSCRIPTION)],
        false,
    );
    seed(&runtime, &emulator);
    let get_body = runtime.block_on(async {
        let response = raw_client()
            .request(copy(&get_template(&emulator.url())))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap().to_bytes()
    });
    println!(
        "servers: the emulator, and the canned server answering GETs with the emulator's roll-up ({} bytes): {}",
        get_body.len(),
        String::from_utf8_lossy(&get_body)
    );
    let canned = start_canned(get_body);
    let (bulk, bulk_emulator) = start_emulator(Vec::new(), true);
    let server_tids = [canned.tid, emulator.tid, bulk.tid];
    println!(
        "canned server {} (thread {}), emulator {} (thread {}), bulk emulator {} (thread {})",
        canned.addr, canned.tid, emulator.addr, emulator.tid, bulk.addr, bulk.tid
    );

    let mut report = String::new();
    if settings.phase("memory") {
        let _ = writeln!(report, "\n### Memory (ours, canned server)\n");
        report.push_str(&memory_phase(&runtime, &settings, &canned));
    }
    if settings.phase("compare") {
        let _ = writeln!(report, "\n### Throughput, latency, CPU\n");
        report.push_str(&compare_phase(
            &runtime,
            &settings,
            &canned,
            (&emulator, &emulator_state),
            &server_tids,
        ));
    }
    if settings.phase("bulk") {
        let _ = writeln!(report, "\n### Bulk recording\n");
        report.push_str(&bulk_phase(&runtime, &settings, &bulk, &bulk_emulator, &server_tids));
    }
    let (rss, hwm) = rss_kib();
    let _ = writeln!(
        report,
        "\nProcess at the end: VmRSS {rss} KiB, VmHWM {hwm} KiB (servers and emulator state included)."
    );
    println!("\n==================== Markdown ====================");
    println!("{report}");
}
