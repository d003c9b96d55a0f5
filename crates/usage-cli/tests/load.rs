//! A load check, not in the default suite: a 100,000-row CSV file (10 subscriptions) imported by
//! the `kb-usage import` binary, run as a child process, into the emulator served by this test
//! process over loopback; checked to the exact sum per subscription, with two rates printed:
//! end to end (from the child's start to its exit: reading, parsing, planning and sending), and
//! the sending alone (the rate `kb-usage import` reports itself, timed after the file is planned).
//!
//! ```text
//! bash .ci/slow import_100k
//! ```

mod common;

use std::str::FromStr;

use common::{august, kb, random_amounts, TempFile, TestServer};
use usage_models::Decimal;

const ROWS: usize = 100_000;
const SUBSCRIPTIONS: usize = 10;

#[test]
#[ignore = "load check: run in release with --ignored --nocapture"]
fn import_100k_rows_over_loopback() {
    let ids: Vec<String> = (0..SUBSCRIPTIONS)
        .map(|i| format!("8b9c1e0e-5a0b-4d47-9a7e-{:012x}", i + 1))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let server = TestServer::with_subscriptions(&refs);
    let url = server.url();
    let mut rng = fastrand::Rng::with_seed(100);
    let (amounts, _) = random_amounts(&mut rng, ROWS);
    let mut sums = vec![Decimal::ZERO; SUBSCRIPTIONS];
    let mut text = String::from("subscription_id,unit_type,record_date,amount\n");
    for (i, amount) in amounts.iter().enumerate() {
        let s = i % SUBSCRIPTIONS;
        sums[s] += Decimal::from_str(amount).unwrap();
        text.push_str(&format!(
            "{},api-calls,2013-08-{:02}T{:02}:{:02}:00Z,{amount}\n",
            ids[s],
            1 + i % 28,
            i % 24,
            i % 60
        ));
    }
    let file = TempFile::new("load.csv", text.as_bytes());
    let started = std::time::Instant::now();
    let run = kb(&url, &["import", file.path(), "--output", "json"]);
    let end_to_end = started.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{run:?}");
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(json["recorded_rows"], ROWS as u64);
    assert_eq!(json["requests"], (ROWS / 1_000) as u64);
    println!(
        "imported {ROWS} rows ({SUBSCRIPTIONS} subscriptions) in {} requests, concurrency 4: \
         end to end {end_to_end:.3} s = {:.0} rows/s; sending alone {:.3} s = {:.0} rows/s",
        json["requests"],
        ROWS as f64 / end_to_end,
        json["seconds"].as_f64().unwrap(),
        json["rows_per_second"].as_f64().unwrap()
    );
    for (id, sum) in ids.iter().zip(&sums) {
        assert_eq!(august(&url, id, "api-calls"), *sum);
    }
    assert_eq!(server.emulator.row_count(), ROWS);
    // Again: every request refused as a duplicate, nothing doubled.
    let started = std::time::Instant::now();
    let again = kb(&url, &["import", file.path(), "--output", "json"]);
    let end_to_end = started.elapsed().as_secs_f64();
    let json: serde_json::Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(json["already_recorded_rows"], ROWS as u64);
    println!(
        "the same import again, all {} requests already recorded: end to end {end_to_end:.3} s = {:.0} rows/s; \
         sending alone {:.3} s = {:.0} rows/s",
        json["already_recorded_requests"],
        ROWS as f64 / end_to_end,
        json["seconds"].as_f64().unwrap(),
        json["rows_per_second"].as_f64().unwrap()
    );
    assert_eq!(server.emulator.row_count(), ROWS);
}
