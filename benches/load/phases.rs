//! The phases: memory, compare, bulk.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use killbill_usage::models::SubscriptionId;
use tokio::runtime::Runtime;
use usage_transport_memory::{InMemoryKillBill, NewSubscription};

use crate::clients::{
    bounded, floor, get_template, ours, ours_get, post_template, raw_client, record, seed, subscription, Caller, Codec,
};
use crate::measure::{drive, js_unavailable, measure, measure_js, rss_kib, Sample};
use crate::report::{cell, compare_tables, emulator_table, line, targets, Op, Results};
use crate::servers::ServerInfo;
use crate::{
    Settings, BULK_CONCURRENCY, BULK_ROWS, GET_SUBSCRIPTION, MEMORY_CONCURRENCY, POST_ROWS, POST_SUBSCRIPTION,
};

pub(crate) fn memory_phase(runtime: &Runtime, settings: &Settings, canned: &ServerInfo) -> String {
    let client = ours(&canned.url());
    let record = Arc::new(record(subscription(POST_SUBSCRIPTION), POST_ROWS, 2));
    let duration = Duration::from_secs_f64(settings.memory_secs);
    println!(
        "== memory: ours against the canned server, {MEMORY_CONCURRENCY} workers (half GET, half POST) for {:.0} s, VmRSS sampled 10 times",
        settings.memory_secs
    );
    let calls = Arc::new(AtomicU64::new(0));
    let (samples, hwm) = runtime.block_on(async {
        let get = ours_get(&client);
        let post = Caller::OursPost(client.clone(), record);
        // Warm-up: pool and allocator in their steady state.
        let warmup = Duration::from_secs_f64((settings.memory_secs / 10.0).min(1.0));
        let _ = drive(&get, MEMORY_CONCURRENCY / 2, warmup).await;
        let _ = drive(&post, MEMORY_CONCURRENCY / 2, warmup).await;
        let end = Instant::now() + duration;
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..MEMORY_CONCURRENCY {
            let caller = if i % 2 == 0 { get.clone() } else { post.clone() };
            let calls = calls.clone();
            workers.spawn(async move {
                while Instant::now() < end {
                    caller.call().await.expect("a call failed in the memory phase");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let started = Instant::now();
        let mut samples = Vec::new();
        for i in 0..=10 {
            let at = started + duration.mul_f64(i as f64 / 10.0);
            tokio::time::sleep_until(at.into()).await;
            let (rss, _) = rss_kib();
            samples.push((started.elapsed().as_secs_f64(), calls.load(Ordering::Relaxed), rss));
        }
        while workers.join_next().await.is_some() {}
        (samples, rss_kib().1)
    });
    let mut out = String::new();
    let _ = writeln!(out, "| t (s) | calls so far | VmRSS (KiB) |");
    let _ = writeln!(out, "|---:|---:|---:|");
    for (t, calls, rss) in &samples {
        let _ = writeln!(out, "| {t:.1} | {calls} | {rss} |");
        println!("    t={t:>5.1}s  calls={calls:>9}  VmRSS={rss} KiB");
    }
    let (first, mid, last) = (samples[0], samples[samples.len() / 2], samples[samples.len() - 1]);
    let per_1k = |a: (f64, u64, u64), b: (f64, u64, u64)| {
        (b.2 as f64 - a.2 as f64) * 1024.0 / ((b.1 - a.1).max(1) as f64 / 1000.0)
    };
    let _ = writeln!(
        out,
        "\nstart {} KiB, middle {} KiB, end {} KiB; peak (VmHWM) {hwm} KiB; {} calls; growth start→end {:+.1} bytes per 1,000 calls, middle→end {:+.1} bytes per 1,000 calls",
        first.2,
        mid.2,
        last.2,
        last.1,
        per_1k(first, last),
        per_1k(mid, last),
    );
    print!("    {}", out.lines().last().unwrap_or_default());
    println!();
    out
}

pub(crate) fn compare_phase(
    runtime: &Runtime,
    settings: &Settings,
    canned: &ServerInfo,
    (emulator, emulator_state): (&ServerInfo, &InMemoryKillBill),
    server_tids: &[u32],
) -> String {
    let post_record = record(subscription(POST_SUBSCRIPTION), POST_ROWS, 2);
    let record_json = {
        let mut v = serde_json::to_value(&post_record).unwrap();
        if let Some(map) = v.as_object_mut() {
            map.remove("trackingId");
        }
        v
    };
    let post_record = Arc::new(post_record);
    let js = js_unavailable(settings);
    if let Some(why) = &js {
        println!("== js: skipped: {why}");
    }
    let (ours_canned, ours_emulator) = (ours(&canned.url()), ours(&emulator.url()));
    let (raw_canned, raw_emulator) = (raw_client(), raw_client());
    // The floors' POST, built once: the request `ours` sends and the record with its tracking id.
    let post_floor = post_template(&canned.url(), &post_record);
    let callers = |op: Op| -> Vec<(&'static str, Option<Caller>, &ServerInfo)> {
        let (url_c, url_e) = (canned.url(), emulator.url());
        match op {
            Op::Get => vec![
                ("ours", Some(ours_get(&ours_canned)), canned),
                (
                    "floor",
                    Some(floor(&raw_canned, get_template(&url_c), StatusCode::OK, Codec::Nothing)),
                    canned,
                ),
                (
                    "floor+serde",
                    Some(floor(
                        &raw_canned,
                        get_template(&url_c),
                        StatusCode::OK,
                        Codec::ParseAnswer,
                    )),
                    canned,
                ),
                (
                    "bounded",
                    Some(bounded(
                        &raw_canned,
                        get_template(&url_c),
                        StatusCode::OK,
                        Codec::ParseAnswer,
                    )),
                    canned,
                ),
                ("js", None, canned),
                ("ours@emulator", Some(ours_get(&ours_emulator)), emulator),
                (
                    "floor@emulator",
                    Some(floor(
                        &raw_emulator,
                        get_template(&url_e),
                        StatusCode::OK,
                        Codec::Nothing,
                    )),
                    emulator,
                ),
            ],
            Op::Post => vec![
                (
                    "ours",
                    Some(Caller::OursPost(ours_canned.clone(), post_record.clone())),
                    canned,
                ),
                (
                    "floor",
                    Some(floor(
                        &raw_canned,
                        post_floor.0.clone(),
                        StatusCode::CREATED,
                        Codec::Nothing,
                    )),
                    canned,
                ),
                (
                    "floor+serde",
                    Some(floor(
                        &raw_canned,
                        post_floor.0.clone(),
                        StatusCode::CREATED,
                        Codec::Serialize(post_floor.1.clone()),
                    )),
                    canned,
                ),
                (
                    "bounded",
                    Some(bounded(
                        &raw_canned,
                        post_floor.0.clone(),
                        StatusCode::CREATED,
                        Codec::Serialize(post_floor.1.clone()),
                    )),
                    canned,
                ),
                ("js", None, canned),
                (
                    "ours@emulator",
                    Some(Caller::OursPost(ours_emulator.clone(), post_record.clone())),
                    emulator,
                ),
            ],
        }
    };
    println!(
        "== compare: GET and POST ({POST_ROWS}-row records) at concurrency {:?}; {} rounds of {:.1} s per measurement after {:.1} s warm-up; clients in turn: ours, floor, floor+serde, bounded, js, ours@emulator, floor@emulator (GET only)",
        settings.concurrency, settings.rounds, settings.secs, settings.warmup_secs
    );
    let mut results = Results::default();
    for round in 1..=settings.rounds {
        println!("-- round {round}/{}", settings.rounds);
        for op in [Op::Get, Op::Post] {
            if !settings.ops.iter().any(|o| o == op.name()) {
                continue;
            }
            for &c in &settings.concurrency {
                println!("  {} concurrency {c}", op.label());
                for (label, caller, server) in callers(op) {
                    if !settings.clients.iter().any(|c| c == label) {
                        continue;
                    }
                    let sample = match caller {
                        Some(caller) => measure(runtime, &caller, c, settings, settings.secs, server, server_tids),
                        None if js.is_none() => match measure_js(op, c, settings, server, &record_json) {
                            Ok(sample) => sample,
                            Err(e) => {
                                println!("    js: skipped: {e}");
                                continue;
                            }
                        },
                        None => continue,
                    };
                    line(label, &sample);
                    results.push((op, c, label), sample);
                    if label == "ours@emulator" && op == Op::Post {
                        // What the POSTs stored goes, so that memory and the emulator's
                        // tables stay the same size from round to round.
                        emulator_state.reset();
                        for id in [GET_SUBSCRIPTION, POST_SUBSCRIPTION] {
                            let new = NewSubscription::new().id(subscription(id));
                            emulator_state.add_subscription(new).unwrap();
                        }
                        seed(runtime, emulator);
                    }
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "Against the canned server (median (min–max) over {} rounds; ratios are per round, ours ÷ floor measured side by side, then their median (min–max)):\n", settings.rounds);
    out.push_str(&compare_tables(
        &results,
        settings,
        &["ours", "floor", "floor+serde", "bounded", "js"],
    ));
    if let Some(why) = &js {
        let _ = writeln!(out, "\njs: skipped: {why}");
    }
    let _ = writeln!(
        out,
        "\nTargets (ours ≥ 0.9x the floor's throughput, client CPU per call ≤ 1.2x the floor's):\n"
    );
    out.push_str(&targets(&results, settings));
    let _ = writeln!(
        out,
        "\nAgainst `kb-usage serve`'s emulator, next to the canned server (same rounds):\n"
    );
    out.push_str(&emulator_table(&results, settings));
    out
}

pub(crate) fn bulk_phase(
    runtime: &Runtime,
    settings: &Settings,
    server: &ServerInfo,
    emulator: &InMemoryKillBill,
    server_tids: &[u32],
) -> String {
    let client = ours(&server.url());
    let bulk_subscription = SubscriptionId::random();
    println!(
        "== bulk: record_usage to the emulator, {BULK_CONCURRENCY} workers, {:?} rows per request, {} rounds of {:.1} s (the emulator is reset after each)",
        BULK_ROWS, settings.rounds, settings.bulk_secs
    );
    let callers: Vec<(usize, Caller)> = BULK_ROWS
        .iter()
        .map(|&rows| {
            let record = Arc::new(record(bulk_subscription, rows, 4));
            (rows, Caller::OursPost(client.clone(), record))
        })
        .collect();
    let mut samples: HashMap<usize, Vec<Sample>> = HashMap::new();
    for round in 1..=settings.rounds {
        println!("-- round {round}/{}", settings.rounds);
        for (rows, caller) in &callers {
            let sample = measure(
                runtime,
                caller,
                BULK_CONCURRENCY,
                settings,
                settings.bulk_secs,
                server,
                server_tids,
            );
            emulator.reset();
            println!(
                "    {rows:>5} rows/request  {:>9.0} rows/s  {:>7.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  client CPU {:.3} s per 1M rows  ({} errors)",
                sample.rps() * *rows as f64,
                sample.rps(),
                sample.p50_us,
                sample.p99_us,
                sample.client_cpu_s / (sample.calls.max(1) as f64 * *rows as f64) * 1e6,
                sample.errors
            );
            samples.entry(*rows).or_default().push(sample);
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "| rows/request | concurrency | rows/s | requests/s | p50 µs | p99 µs | client CPU s per 1M rows | emulator CPU s per 1M rows |");
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (rows, _) in &callers {
        let s = &samples[rows];
        let v = |f: &dyn Fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<_>>();
        let r = *rows as f64;
        let _ = writeln!(
            out,
            "| {rows} | {BULK_CONCURRENCY} | {} | {} | {} | {} | {} | {} |",
            cell(&v(&|s| s.rps() * r), 0),
            cell(&v(&|s| s.rps()), 0),
            cell(&v(&|s| s.p50_us), 0),
            cell(&v(&|s| s.p99_us), 0),
            cell(&v(&|s| s.client_cpu_s / (s.calls.max(1) as f64 * r) * 1e6), 3),
            cell(&v(&|s| s.server_cpu_s / (s.server_requests.max(1) as f64 * r) * 1e6), 3),
        );
    }
    out
}
