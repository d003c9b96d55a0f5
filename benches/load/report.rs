//! Statistics and the Markdown tables.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::measure::Sample;
use crate::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    Get,
    Post,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Post => "post",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::Post => "POST",
        }
    }
}

/// Median, min, max.
pub(crate) fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// `median (min–max)` with `decimals` digits.
pub(crate) fn cell(values: &[f64], decimals: usize) -> String {
    let (median, min, max) = stats(values);
    if median.is_nan() {
        return "–".into();
    }
    format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
}

/// Per round `a[i] / b[i]`: the ratios of measurements taken side by side.
pub(crate) fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

pub(crate) type Key = (Op, usize, &'static str);

#[derive(Default)]
pub(crate) struct Results {
    pub(crate) samples: HashMap<Key, Vec<Sample>>,
}

impl Results {
    pub(crate) fn push(&mut self, key: Key, sample: Sample) {
        self.samples.entry(key).or_default().push(sample);
    }

    pub(crate) fn values(&self, key: Key, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples
            .get(&key)
            .map(|samples| samples.iter().map(f).collect())
            .unwrap_or_default()
    }
}

pub(crate) fn compare_tables(results: &Results, settings: &Settings, clients: &[&'static str]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| op | conc. | client | req/s | p50 µs | p99 µs | client CPU s/10k calls | server CPU s/10k req. | req/s ÷ floor | client CPU ÷ floor |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            for &client in clients {
                let key = (op, c, client);
                if !results.samples.contains_key(&key) {
                    continue;
                }
                let floor_key = (op, c, "floor");
                let rps = results.values(key, Sample::rps);
                let cpu = results.values(key, Sample::client_cpu);
                let (rps_ratio, cpu_ratio) = if client == "floor" {
                    ("1".to_string(), "1".to_string())
                } else {
                    (
                        cell(&ratios(&rps, &results.values(floor_key, Sample::rps)), 2),
                        cell(&ratios(&cpu, &results.values(floor_key, Sample::client_cpu)), 2),
                    )
                };
                let _ = writeln!(
                    out,
                    "| {} | {c} | {client} | {} | {} | {} | {} | {} | {rps_ratio} | {cpu_ratio} |",
                    op.label(),
                    cell(&rps, 0),
                    cell(&results.values(key, |s| s.p50_us), 0),
                    cell(&results.values(key, |s| s.p99_us), 0),
                    cell(&cpu, 3),
                    cell(&results.values(key, Sample::server_cpu), 3),
                );
            }
        }
    }
    out
}

pub(crate) fn emulator_table(results: &Results, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| op | conc. | client | req/s canned | req/s emulator | emulator ÷ canned | server CPU s/10k canned | server CPU s/10k emulator |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|---:|");
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            for (canned, emulated) in [("ours", "ours@emulator"), ("floor", "floor@emulator")] {
                let (a, b) = ((op, c, canned), (op, c, emulated));
                if !results.samples.contains_key(&b) {
                    continue;
                }
                let (ra, rb) = (results.values(a, Sample::rps), results.values(b, Sample::rps));
                let _ = writeln!(
                    out,
                    "| {} | {c} | {canned} | {} | {} | {} | {} | {} |",
                    op.label(),
                    cell(&ra, 0),
                    cell(&rb, 0),
                    cell(&ratios(&rb, &ra), 2),
                    cell(&results.values(a, Sample::server_cpu), 3),
                    cell(&results.values(b, Sample::server_cpu), 3),
                );
            }
        }
    }
    out
}

/// The median over the rounds of `a ÷ b`, per round, for the sample's figure `f`.
fn median_ratio(
    results: &Results,
    op: Op,
    c: usize,
    (a, b): (&'static str, &'static str),
    f: fn(&Sample) -> f64,
) -> Option<f64> {
    let r = ratios(&results.values((op, c, a), f), &results.values((op, c, b), f));
    (!r.is_empty()).then(|| stats(&r).0)
}

pub(crate) fn targets(results: &Results, settings: &Settings) -> String {
    let mut out = String::new();
    for op in [Op::Get, Op::Post] {
        for &c in &settings.concurrency {
            let (Some(rps), Some(cpu)) = (
                median_ratio(results, op, c, ("ours", "floor"), Sample::rps),
                median_ratio(results, op, c, ("ours", "floor"), Sample::client_cpu),
            ) else {
                continue;
            };
            let _ = write!(
                out,
                "- {} c={c}: throughput {rps:.2}x the floor ({}), client CPU {cpu:.2}x the floor ({})",
                op.label(),
                if rps >= 0.9 { "met, >= 0.9x" } else { "MISSED, < 0.9x" },
                if cpu <= 1.2 { "met, <= 1.2x" } else { "MISSED, > 1.2x" },
            );
            // The floors that do part of a client's work: where each stands, and ours against it.
            for other in ["floor+serde", "bounded"] {
                if let (Some(other_rps), Some(other_cpu), Some(ours_rps), Some(ours_cpu)) = (
                    median_ratio(results, op, c, (other, "floor"), Sample::rps),
                    median_ratio(results, op, c, (other, "floor"), Sample::client_cpu),
                    median_ratio(results, op, c, ("ours", other), Sample::rps),
                    median_ratio(results, op, c, ("ours", other), Sample::client_cpu),
                ) {
                    let _ = write!(
                        out,
                        "; {other}: {other_rps:.2}x / {other_cpu:.2}x the floor, ours {ours_rps:.2}x / {ours_cpu:.2}x it"
                    );
                }
            }
            out.push('\n');
        }
    }
    out
}

pub(crate) fn line(label: &str, sample: &Sample) {
    println!(
        "    {label:<26} {:>8.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  client CPU {:.3} s/10k  server CPU {:.3} s/10k  ({} calls, {} errors, {} new connections)",
        sample.rps(),
        sample.p50_us,
        sample.p99_us,
        sample.client_cpu(),
        sample.server_cpu(),
        sample.calls,
        sample.errors,
        sample.connections
    );
}
