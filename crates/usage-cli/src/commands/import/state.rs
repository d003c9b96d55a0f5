//! `kb-usage import FILE --state DIR [--follow]`: rows go through a [`Meter`] with a spool in
//! DIR; the file offset is committed in the same transaction as the rows it covers.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use usage_meter::{DurableError, Meter, StopSignal, Usage, WhenFull};
use usage_models::TrackingId;

use super::ImportArgs;
use crate::commands::options::{client, options, TextOrJson};
use crate::commands::signals::on_interrupt;
use crate::commands::{input, json_line, out, Failure};
use crate::import::{Format, Tail, MAX_ROWS_PER_REQUEST};

/// The summary of an import with `--state` (`--output json`).
#[derive(Debug, Default, Serialize)]
struct StateSummary {
    rows_taken: u64,
    rows_delivered: u64,
    rows_pending: u64,
    invalid_rows: u64,
    refused_rows: u64,
    offset: u64,
    seconds: f64,
}

/// Progress and lag of `import --state` on stderr: a bar on a terminal, a line every two
/// seconds otherwise.
struct StateProgress {
    bar: Option<indicatif::ProgressBar>,
    last: Instant,
}

impl StateProgress {
    fn start() -> StateProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        StateProgress {
            bar,
            last: Instant::now(),
        }
    }

    fn show(&mut self, file: &std::path::Path, rows: u64, offset: u64, stats: usage_meter::MeterStats) {
        let line = format!(
            "{rows} rows taken, {} delivered, {} pending, lag {:.1} s",
            stats.delivered,
            stats.pending,
            stats.oldest_pending_ms as f64 / 1000.0
        );
        match &self.bar {
            Some(bar) => {
                let length = std::fs::metadata(file).map(|m| m.len()).unwrap_or(offset);
                bar.set_length(length.max(offset));
                bar.set_position(offset);
                bar.set_message(line);
            }
            None if self.last.elapsed() >= Duration::from_secs(2) => {
                eprintln!("progress: offset {offset} bytes, {line}");
                self.last = Instant::now();
            }
            None => {}
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Raises its signal when dropped.
struct StopOnDrop(StopSignal);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The bytes of FILE read at once by `import --state`.
const STATE_CHUNK_BYTES: usize = 4 << 20;
/// The rows of FILE committed at once, with their offset, by `import --state`.
const STATE_GROUP_ROWS: usize = 20_000;

/// `import FILE --state DIR [--follow]`: rows go through a [`Meter`] with a spool in DIR; the
/// file offset is committed in the same transaction as the rows it covers.
pub(super) async fn run(args: ImportArgs, format: Format, state: PathBuf) -> Result<(), Failure> {
    if args.file == "-" {
        return Err(input(
            "--state needs a file, not stdin: progress is an offset in the file",
        ));
    }
    let file = std::fs::canonicalize(&args.file).map_err(|e| input(format!("cannot open {}: {e}", args.file)))?;
    std::fs::create_dir_all(&state).map_err(|e| Failure::Other(format!("cannot create {}: {e}", state.display())))?;
    let state =
        std::fs::canonicalize(&state).map_err(|e| Failure::Other(format!("cannot open {}: {e}", state.display())))?;
    if file.starts_with(&state) {
        return Err(input(format!(
            "{} is inside the state directory {}: keep the state apart from the data",
            args.file,
            state.display()
        )));
    }
    let source = args.file.as_str();
    let concurrency = usize::from(args.concurrency);
    let client = client(&args.connection, Some(&args.audit), concurrency)?;
    let meter = Meter::builder(client)
        .spool(state.join("spool.sqlite"))
        .max_records_per_request(usize::from(args.rows_per_request).min(MAX_ROWS_PER_REQUEST))
        .concurrency(concurrency)
        .capacity(200_000)
        .when_full(WhenFull::Wait)
        .request_options(options(&args.connection, Some(&args.audit), None)?)
        .start()
        .map_err(|e| Failure::Other(format!("cannot open the state in {}: {e}", state.display())))?;
    let spooled = |e: DurableError| Failure::Other(format!("state in {}: {e}", state.display()));
    let checkpoint = format!("file:{}", file.display());
    let mut tail = Tail::open(&file, format, meter.checkpoint(&checkpoint).unwrap_or(0))
        .map_err(|e| input(format!("{source}: {e}")))?;
    let rejects_path = state.join("rejects.txt");
    let mut rejects = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&rejects_path)
        .map_err(|e| Failure::Other(format!("cannot open {}: {e}", rejects_path.display())))?;
    let mut reject = |line: &str| {
        writeln!(rejects, "{line}").map_err(|e| Failure::Other(format!("cannot write {}: {e}", rejects_path.display())))
    };
    let dead_before = meter.dead_letters().len();
    let stop = StopSignal::new();
    let stopped = Arc::new(tokio::sync::Notify::new());
    let watcher = {
        let stop = stop.clone();
        let stopped = stopped.clone();
        let follow = args.follow;
        on_interrupt(move || {
            stop.stop();
            stopped.notify_waiters();
            eprintln!(
                "{}: delivering the rows taken (Ctrl-C again to quit now; a re-run finishes)",
                if follow { "stopping" } else { "interrupted" }
            );
        })
    };
    let started = Instant::now();
    let mut summary = StateSummary::default();
    let mut progress = StateProgress::start();
    // FILE is read and parsed on a thread of its own, a chunk ahead of the commits.
    let (chunks, mut chunk_rx) = tokio::sync::mpsc::channel(2);
    let reading = StopSignal::new();
    // However this function returns, the reader stops (a follower would poll for ever).
    let _reading = StopOnDrop(reading.clone());
    {
        let stop = reading;
        let follow = args.follow;
        tokio::task::spawn_blocking(move || {
            while !stop.is_stopped() {
                let next = match tail.next_chunk(STATE_CHUNK_BYTES, !follow) {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) if follow => {
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    // The end of a finished file: the channel closes.
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = next.is_err();
                if chunks.blocking_send(next).is_err() || failed {
                    return;
                }
            }
        });
    }
    while !stop.is_stopped() {
        let next = tokio::select! {
            next = chunk_rx.recv() => next,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                progress.show(&file, summary.rows_taken, summary.offset, meter.stats());
                continue;
            }
            _ = stopped.notified() => break,
        };
        let Some(next) = next else {
            break;
        };
        let mut chunk = next.map_err(|e| input(format!("{source}: {e}")))?;
        // Rows go to the meter in groups, each committed in one transaction with the offset
        // just past its last line: a crash or a stop leaves no group half taken.
        let mut errors = chunk.parsed.errors.iter().peekable();
        let mut rows = std::mem::take(&mut chunk.parsed.rows).into_iter().peekable();
        let mut group: Vec<Usage> = Vec::with_capacity(STATE_GROUP_ROWS);
        while rows.peek().is_some() || errors.peek().is_some() {
            let mut last_line = 0;
            while group.len() < STATE_GROUP_ROWS {
                let next_row = rows.peek().map(|row| row.line).unwrap_or(u64::MAX);
                if let Some(error) = errors.next_if(|e| e.line <= next_row) {
                    reject(&format!("line {}: {}", error.line, error.reason))?;
                    summary.invalid_rows += 1;
                    last_line = error.line;
                    continue;
                }
                let Some(row) = rows.next() else {
                    break;
                };
                last_line = row.line;
                if row.tracking_id.is_some() {
                    reject(&format!(
                        "line {}: has its own tracking_id, which --state cannot honour (import such rows without --state)",
                        row.line
                    ))?;
                    summary.invalid_rows += 1;
                    continue;
                }
                group.push(Usage {
                    subscription: row.subscription_id,
                    unit: row.unit_type,
                    date: row.record_date,
                    amount: row.amount,
                });
            }
            let through = if rows.peek().is_none() && errors.peek().is_none() {
                chunk.end
            } else {
                chunk.end_of_line(last_line)
            };
            let taken = group.len() as u64;
            tokio::select! {
                done = meter.record_from_source(std::mem::take(&mut group), &checkpoint, through) => done.map_err(spooled)?,
                _ = stopped.notified() => break,
            }
            summary.rows_taken += taken;
            summary.offset = through;
            if stop.is_stopped() {
                break;
            }
        }
        progress.show(&file, summary.rows_taken, chunk.end, meter.stats());
    }
    progress.finish();
    let report = meter.shutdown(args.drain_timeout).await;
    watcher.abort();
    for dead in meter.dead_letters().iter().skip(dead_before) {
        summary.refused_rows += dead.events;
        let record = &dead.record;
        reject(&format!(
            "refused by Kill Bill: subscription {}, tracking id {}, {} rows: {}",
            record.subscription_id(),
            record.tracking_id().map(TrackingId::as_str).unwrap_or_default(),
            dead.events,
            dead.reason
        ))?;
        for unit in record.unit_usage_records() {
            for usage in unit.usage_records() {
                reject(&format!(
                    "  {},{},{},{}",
                    record.subscription_id(),
                    unit.unit_type(),
                    usage.record_date(),
                    usage.amount()
                ))?;
            }
        }
    }
    let stats = meter.stats();
    summary.rows_delivered = stats.delivered;
    summary.rows_pending = report.pending_events;
    summary.seconds = started.elapsed().as_secs_f64();
    match args.output.output {
        TextOrJson::Text => out(&format!(
            "import of {source} (state {}): {} rows taken, {} delivered, {} pending, {} invalid, {} refused by Kill Bill; \
             offset {} bytes; {:.3} s\n",
            state.display(),
            summary.rows_taken,
            summary.rows_delivered,
            summary.rows_pending,
            summary.invalid_rows,
            summary.refused_rows,
            summary.offset,
            summary.seconds
        )),
        TextOrJson::Json => out(&json_line(&summary)),
    }
    if summary.rows_pending > 0 {
        return Err(Failure::Transport(format!(
            "{} rows not delivered within {:.0} s; they are kept in {}: run the same command again",
            summary.rows_pending,
            args.drain_timeout.as_secs_f64(),
            state.display()
        )));
    }
    if summary.invalid_rows + summary.refused_rows > 0 {
        return Err(input(format!(
            "{} rows rejected; see {}",
            summary.invalid_rows + summary.refused_rows,
            rejects_path.display()
        )));
    }
    if stop.is_stopped() && !args.follow {
        return Err(Failure::Interrupted(
            "interrupted: what was taken is delivered; run the same command again to take the rest".to_string(),
        ));
    }
    Ok(())
}
