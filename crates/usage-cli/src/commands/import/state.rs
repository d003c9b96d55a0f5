//! `kb-usage import FILE --state DIR [--follow]`: rows go through a [`Meter`] with a spool in
//! DIR; the file offset is committed in the same transaction as the rows it covers.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use usage_meter::{DeadLetters, Meter, StopSignal, Usage, WhenFull};
use usage_models::{SubscriptionUsageRecord, TrackingId};

use super::ImportArgs;
use crate::commands::options::{client, options, TextOrJson};
use crate::commands::signals::on_interrupt;
use crate::commands::{input, json_line, out, Failure};
use crate::import::{plan, Format, Row, Tail, TailChunk, MAX_ROWS_PER_REQUEST};

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

/// `DIR/rejects.txt`, appended to.
struct Rejects {
    path: PathBuf,
    file: std::fs::File,
}

impl Rejects {
    fn open(path: PathBuf) -> Result<Rejects, Failure> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Failure::Other(format!("cannot open {}: {e}", path.display())))?;
        Ok(Rejects { path, file })
    }

    fn write(&mut self, line: &str) -> Result<(), Failure> {
        writeln!(self.file, "{line}").map_err(|e| Failure::Other(format!("cannot write {}: {e}", self.path.display())))
    }

    /// The requests Kill Bill refused for good, each with its rows.
    fn dead_letters(&mut self, dead: DeadLetters) -> Result<(), Failure> {
        for dead in dead.letters {
            let record = &dead.record;
            self.write(&format!(
                "refused by Kill Bill: subscription {}, tracking id {}, {} rows: {}",
                record.subscription_id(),
                record.tracking_id().map(TrackingId::as_str).unwrap_or_default(),
                dead.events,
                dead.reason
            ))?;
            for unit in record.unit_usage_records() {
                for usage in unit.usage_records() {
                    self.write(&format!(
                        "  {},{},{},{}",
                        record.subscription_id(),
                        unit.unit_type(),
                        usage.record_date(),
                        usage.amount()
                    ))?;
                }
            }
        }
        if dead.left_out > 0 {
            self.write(&format!(
                "refused by Kill Bill: {} more requests, not listed (they are kept in spool.sqlite, table batches)",
                dead.left_out
            ))?;
        }
        Ok(())
    }
}

/// Consecutive rows of one subscription under one tracking id of their own: one request,
/// sealed when another row comes, at the end of a finished file, or at the rows-per-request
/// limit.
struct Run {
    rows: Vec<Row>,
    /// The offset of its first line: the checkpoint cannot pass it while the run is open.
    start: u64,
}

/// What `import --state` takes from FILE and has not committed yet.
struct Taking {
    max_rows: usize,
    /// Rows without a tracking id of their own.
    group: Vec<Usage>,
    /// Sealed runs, with their lines.
    requests: Vec<(SubscriptionUsageRecord, Vec<u64>)>,
    run: Option<Run>,
    /// The offset just past the last line handled.
    position: u64,
    /// The offset last committed.
    committed: u64,
}

impl Taking {
    fn new(offset: u64, max_rows: usize) -> Taking {
        Taking {
            max_rows,
            group: Vec::with_capacity(STATE_GROUP_ROWS),
            requests: Vec::new(),
            run: None,
            position: offset,
            committed: offset,
        }
    }

    /// Rows held for the next commit.
    fn rows(&self) -> usize {
        self.group.len() + self.requests.iter().map(|(_, lines)| lines.len()).sum::<usize>()
    }

    fn take(&mut self, row: Row, rejects: &mut Rejects, summary: &mut StateSummary) -> Result<(), Failure> {
        let Some(tracking_id) = &row.tracking_id else {
            self.seal_run(rejects, summary)?;
            self.group.push(Usage {
                subscription: row.subscription_id,
                unit: row.unit_type,
                date: row.record_date,
                amount: row.amount,
            });
            return Ok(());
        };
        if let Some(run) = &mut self.run {
            let last = &run.rows[run.rows.len() - 1];
            if last.subscription_id == row.subscription_id
                && last.tracking_id.as_ref() == Some(tracking_id)
                && run.rows.len() < self.max_rows
            {
                run.rows.push(row);
                return Ok(());
            }
        }
        self.seal_run(rejects, summary)?;
        self.run = Some(Run {
            rows: vec![row],
            start: self.position,
        });
        Ok(())
    }

    /// Seals the open run, if any, into one request under its tracking id (as the plain
    /// import builds it).
    fn seal_run(&mut self, rejects: &mut Rejects, summary: &mut StateSummary) -> Result<(), Failure> {
        let Some(run) = self.run.take() else {
            return Ok(());
        };
        let lines: Vec<u64> = run.rows.iter().map(|row| row.line).collect();
        match plan(&run.rows, "", self.max_rows) {
            Ok(mut chunks) if chunks.len() == 1 => self.requests.push((chunks.remove(0).record, lines)),
            Ok(chunks) => {
                return Err(Failure::Other(format!(
                    "a run of rows under one tracking id made {} requests, not one (a bug)",
                    chunks.len()
                )))
            }
            Err(errors) => {
                for error in errors {
                    rejects.write(&error.to_string())?;
                }
                summary.invalid_rows += lines.len() as u64;
            }
        }
        Ok(())
    }

    /// Commits what is held with the offset it reaches (the start of the open run, if any):
    /// one spool transaction. Rows whose subscription and tracking id already name a request
    /// taken before go to the rejects.
    async fn commit(
        &mut self,
        meter: &Meter,
        checkpoint: &str,
        rejects: &mut Rejects,
        summary: &mut StateSummary,
    ) -> Result<(), Failure> {
        let through = self.run.as_ref().map_or(self.position, |run| run.start);
        if self.group.is_empty() && self.requests.is_empty() && through == self.committed {
            return Ok(());
        }
        let rows = self.rows() as u64;
        let (records, lines): (Vec<SubscriptionUsageRecord>, Vec<Vec<u64>>) =
            std::mem::take(&mut self.requests).into_iter().unzip();
        let tracking_ids: Vec<String> = records
            .iter()
            .map(|record| {
                record
                    .tracking_id()
                    .map(TrackingId::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let refused = meter
            .record_requests_from_source(std::mem::take(&mut self.group), records, checkpoint, through)
            .await
            .map_err(|e| Failure::Other(format!("state: {e}")))?;
        let mut rejected = 0;
        for at in refused {
            for line in &lines[at] {
                rejects.write(&format!(
                    "line {line}: tracking_id {:?} already names a request of this subscription taken before (rows sharing a tracking id \
                     must be consecutive, of one subscription, at most {} of them): not sent, Kill Bill would refuse \
                     it as a duplicate",
                    tracking_ids[at], self.max_rows
                ))?;
                rejected += 1;
            }
        }
        summary.invalid_rows += rejected;
        summary.rows_taken += rows - rejected;
        summary.offset = through;
        self.committed = through;
        Ok(())
    }
}

/// Reads and parses FILE on a thread of its own, a chunk ahead, until `stop` (a follower), the
/// end of a finished file (the channel closes) or an error (sent, then the channel closes).
fn read_ahead(
    mut tail: Tail,
    follow: bool,
    stop: StopSignal,
    chunks: tokio::sync::mpsc::Sender<Result<TailChunk, crate::import::RowError>>,
) {
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
    let max_rows = usize::from(args.rows_per_request).min(MAX_ROWS_PER_REQUEST);
    let client = client(&args.connection, Some(&args.audit), concurrency)?;
    let mut builder = Meter::builder(client)
        .spool(state.join("spool.sqlite"))
        .max_records_per_request(max_rows)
        .concurrency(concurrency)
        .capacity(200_000)
        .when_full(WhenFull::Wait)
        .request_options(options(&args.connection, Some(&args.audit), None)?);
    if let Some(request_id) = &args.connection.request_id {
        // As the plain import: `{id}-{n}`, n the request's number (here, in DIR).
        builder = builder.request_id(request_id.as_str());
    }
    let meter = builder
        .start()
        .map_err(|e| Failure::Other(format!("cannot open the state in {}: {e}", state.display())))?;
    let checkpoint = format!("file:{}", file.display());
    let tail = Tail::open(&file, format, meter.checkpoint(&checkpoint).unwrap_or(0))
        .map_err(|e| input(format!("{source}: {e}")))?;
    let mut rejects = Rejects::open(state.join("rejects.txt"))?;
    // Refusals of earlier runs were written by them.
    let _ = meter.take_dead_letters();
    let dead_before = meter.stats().dead_letter_events;
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
    let mut taking = Taking::new(tail.offset(), max_rows);
    summary.offset = tail.offset();
    // FILE is read and parsed on a thread of its own, a chunk ahead of the commits.
    let (chunks, mut chunk_rx) = tokio::sync::mpsc::channel(2);
    let reading = StopSignal::new();
    // However this function returns, the reader stops (a follower would poll for ever).
    let _reading = StopOnDrop(reading.clone());
    read_ahead(tail, args.follow, reading, chunks);
    // Whether the reader reached the end of a finished file.
    let mut at_end = false;
    while !stop.is_stopped() {
        let next = tokio::select! {
            next = chunk_rx.recv() => next,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                progress.show(&file, summary.rows_taken, summary.offset, meter.stats());
                rejects.dead_letters(meter.take_dead_letters())?;
                continue;
            }
            _ = stopped.notified() => break,
        };
        let Some(next) = next else {
            at_end = true;
            break;
        };
        let mut chunk = next.map_err(|e| input(format!("{source}: {e}")))?;
        // Rows go to the meter in groups, each committed in one transaction with the offset
        // just past its last line (or the start of a run of rows under their own tracking
        // id still open): a crash or a stop leaves no group half taken.
        let mut errors = chunk.parsed.errors.iter().peekable();
        let mut rows = std::mem::take(&mut chunk.parsed.rows).into_iter().peekable();
        while rows.peek().is_some() || errors.peek().is_some() {
            while taking.rows() < STATE_GROUP_ROWS {
                let next_row = rows.peek().map(|row| row.line).unwrap_or(u64::MAX);
                if let Some(error) = errors.next_if(|e| e.line <= next_row) {
                    rejects.write(&format!("line {}: {}", error.line, error.reason))?;
                    summary.invalid_rows += 1;
                    taking.position = chunk.end_of_line(error.line);
                    continue;
                }
                let Some(row) = rows.next() else {
                    break;
                };
                let end = chunk.end_of_line(row.line);
                taking.take(row, &mut rejects, &mut summary)?;
                taking.position = end;
            }
            if rows.peek().is_none() && errors.peek().is_none() {
                taking.position = chunk.end;
            }
            tokio::select! {
                done = taking.commit(&meter, &checkpoint, &mut rejects, &mut summary) => done?,
                _ = stopped.notified() => break,
            }
            if stop.is_stopped() {
                break;
            }
        }
        progress.show(&file, summary.rows_taken, chunk.end, meter.stats());
        rejects.dead_letters(meter.take_dead_letters())?;
    }
    if at_end && !stop.is_stopped() {
        // The end of a finished file seals the last run of rows under their own tracking id.
        taking.seal_run(&mut rejects, &mut summary)?;
        taking.commit(&meter, &checkpoint, &mut rejects, &mut summary).await?;
    }
    progress.finish();
    let report = meter.shutdown(args.drain_timeout).await;
    watcher.abort();
    rejects.dead_letters(meter.take_dead_letters())?;
    summary.refused_rows = meter.stats().dead_letter_events - dead_before;
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
            rejects.path.display()
        )));
    }
    if stop.is_stopped() && !args.follow {
        return Err(Failure::Interrupted(
            "interrupted: what was taken is delivered; run the same command again to take the rest".to_string(),
        ));
    }
    Ok(())
}
