//! `kb-usage import`: a file of usage rows, checked, cut into requests with deterministic
//! tracking ids and sent by the bulk engine; with `--state`, through a spooled meter
//! ([`state`]).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;
use usage_meter::{Bulk, Outcome, StopSignal};
use usage_models::SubscriptionUsageRecord;

use super::options::{client, options, parse_timeout, Audit, Connection, TextOrJson, TextOutput};
use super::signals::on_interrupt;
use super::{input, json_line, out, Failure};
use crate::import::{self, Format, MAX_ROWS_PER_REQUEST};

mod state;

/// The help after the options.
pub(super) const HELP: &str = "\
File format: a header line subscription_id,unit_type,record_date,amount[,tracking_id]
(columns in any order), or JSON lines with the same field names (amount a number or a string).
Dates are 2013-08-01 (midnight UTC) or ISO-8601 date-times (2013-08-01T06:30:00Z).

Every row is checked first; each bad row is reported with its line number, and nothing is
sent when any row is bad (unless --skip-invalid). Rows are grouped by subscription into
requests of at most 1000 rows. Each request's tracking id is derived from its content, so
running the same import again (after a crash, Ctrl-C or failures) records only what is
missing: requests refused as duplicates are counted as \"already recorded\". Rows with their
own tracking_id are sent together under that id.

Re-runs are safe for the SAME file with the same --rows-per-request and --id-prefix. A file
that was changed (rows appended, fixed, removed) cuts into other requests, whose new tracking
ids the server cannot recognize: import new or fixed rows as a file of their own, or use --state.

With --state DIR, progress lives in DIR (a SQLite spool; FILE must not be inside DIR): how
far into FILE rows are durably taken (committed with the rows themselves), which requests are
sealed under which tracking id, which were delivered. Running the same command again, after a
clean exit, Ctrl-C, SIGKILL or a power cut, ships only what was not shipped and the rows
appended since; nothing counts twice. Rows are read as a stream, so rows with their own
tracking_id are grouped as they come: CONSECUTIVE rows of one subscription with the same
tracking_id form one request, sealed (and sent under that id) when a row with another
subscription or tracking_id comes, at --rows-per-request rows, or at the end of the file
(without --follow; with --follow, a run at the end of what is written waits for the next row,
and on a stop is read again by the next run). A tracking_id that comes back for the same
subscription after its request was sealed (in this run or an earlier one on DIR) is rejected:
Kill Bill would refuse it as a duplicate (another subscription may reuse it). Bad rows (invalid, such a tracking_id, or refused by Kill Bill) go to
DIR/rejects.txt with their line and reason, and the rest goes on (after a crash, a line can be
listed there twice; its usage is never counted twice). It exits 0 when every row taken is
delivered, 2 when some rows were rejected, 4 when rows are still undelivered after
--drain-timeout (they stay in DIR for the next run). Without --follow, a last line without its
newline is taken as it is. --request-id ID sends ID-<n>, n the request's number in DIR (from 0),
the same on every attempt and after a restart.
--follow keeps reading FILE as it grows, like tail -f (a line is taken once its newline is
written); Ctrl-C or SIGTERM delivers what was taken, and exits 0. A file that shrinks (truncated,
rotated) is an error: import the new file with another --state directory.
--output json then prints {\"rows_taken\", \"rows_delivered\", \"rows_pending\", \"invalid_rows\",
\"refused_rows\", \"offset\", \"seconds\"} (numbers).

Examples:
  kb-usage import usage-2013-08.csv
  kb-usage import --dry-run usage.jsonl
  zcat usage.csv.gz | kb-usage import --format csv --concurrency 8 -
  kb-usage import --state /var/lib/kb-usage/app usage.csv --follow

--output json prints {\"rows\", \"requests\", \"recorded_requests\", \"recorded_rows\",
\"already_recorded_requests\", \"already_recorded_rows\", \"failed_requests\", \"failed_rows\",
\"not_sent_requests\", \"not_sent_rows\", \"invalid_rows\", \"seconds\", \"rows_per_second\", \"dry_run\"} (numbers, and a bool).";

/// `kb-usage import`.
#[derive(Debug, Args)]
#[command(mut_arg("output", |arg| arg.help("Output format of the summary")))]
pub(super) struct ImportArgs {
    /// The file to import, or - for stdin
    #[arg(value_name = "FILE")]
    pub(super) file: String,
    /// The file's format [default: by extension: .csv, .jsonl/.ndjson/.json]
    #[arg(long, value_enum)]
    pub(super) format: Option<FileFormat>,
    /// Import the valid rows even if some are invalid (they are still reported; import the
    /// fixed rows later as a file of their own)
    #[arg(long)]
    pub(super) skip_invalid: bool,
    /// Check the file and plan the requests; send nothing
    #[arg(long)]
    pub(super) dry_run: bool,
    /// Requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(super) concurrency: u16,
    /// Rows per request, at most 1000 (keep it the same when running an import again: the
    /// derived tracking ids depend on it)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(super) rows_per_request: u16,
    /// The namespace of the derived tracking ids: imports under another prefix never
    /// collide with this one
    #[arg(long, value_name = "TEXT", default_value = "kbu")]
    pub(super) id_prefix: String,
    #[command(flatten)]
    pub(super) output: TextOutput,
    /// Keep progress in DIR (created if missing): re-runs ship only what was not shipped, and
    /// the rows appended since
    /// (rows are grouped and given tracking ids as they come: --id-prefix does not apply;
    /// consecutive rows sharing a tracking_id form one request; bad rows go to
    /// DIR/rejects.txt)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dry_run", "id_prefix", "skip_invalid"])]
    pub(super) state: Option<PathBuf>,
    /// With --state: keep reading FILE as it grows (like tail -f) until Ctrl-C or SIGTERM
    #[arg(long, requires = "state")]
    pub(super) follow: bool,
    /// With --state: how long to wait at the end for the rows taken to be delivered
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_timeout)]
    pub(super) drain_timeout: Duration,
    #[command(flatten)]
    pub(super) audit: Audit,
    #[command(flatten)]
    pub(super) connection: Connection,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum FileFormat {
    Csv,
    Jsonl,
}

/// The summary of an import (`--output json`).
#[derive(Debug, Default, Serialize)]
struct ImportSummary {
    rows: u64,
    requests: u64,
    recorded_requests: u64,
    recorded_rows: u64,
    already_recorded_requests: u64,
    already_recorded_rows: u64,
    failed_requests: u64,
    failed_rows: u64,
    not_sent_requests: u64,
    not_sent_rows: u64,
    invalid_rows: u64,
    seconds: f64,
    rows_per_second: f64,
    dry_run: bool,
}

impl ImportSummary {
    fn text(&self, source: &str) -> String {
        let mut text = format!(
            "{}{source}: {} rows in {} requests\n",
            if self.dry_run { "dry run of " } else { "import of " },
            self.rows,
            self.requests
        );
        if self.dry_run {
            text.push_str("  nothing sent (--dry-run)\n");
        } else {
            text.push_str(&format!(
                "  recorded:          {} rows in {} requests\n",
                self.recorded_rows, self.recorded_requests
            ));
            text.push_str(&format!(
                "  already recorded:  {} rows in {} requests (refused as duplicates: recorded before)\n",
                self.already_recorded_rows, self.already_recorded_requests
            ));
            text.push_str(&format!(
                "  failed:            {} rows in {} requests\n",
                self.failed_rows, self.failed_requests
            ));
            if self.not_sent_requests > 0 {
                text.push_str(&format!(
                    "  not sent:          {} rows in {} requests\n",
                    self.not_sent_rows, self.not_sent_requests
                ));
            }
        }
        if self.invalid_rows > 0 {
            text.push_str(&format!("  invalid rows skipped: {}\n", self.invalid_rows));
        }
        if !self.dry_run {
            text.push_str(&format!(
                "  time: {:.3} s, {:.0} rows/s\n",
                self.seconds, self.rows_per_second
            ));
        }
        text
    }
}

fn read_input(file: &str) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(|e| input(format!("cannot read stdin: {e}")))?;
    } else {
        let mut opened = std::fs::File::open(file).map_err(|e| input(format!("cannot open {file}: {e}")))?;
        opened
            .read_to_end(&mut bytes)
            .map_err(|e| input(format!("cannot read {file}: {e}")))?;
    }
    Ok(bytes)
}

/// Shows progress: a bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    done: Arc<AtomicU64>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(total: u64) -> Progress {
        let done = Arc::new(AtomicU64::new(0));
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} rows  {rate}  ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
            bar.set_style(style);
            return Progress {
                bar: Some(bar),
                done,
                ticker: None,
            };
        }
        let seen = done.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(2));
            interval.tick().await;
            loop {
                interval.tick().await;
                let rows = seen.load(Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "progress: {rows}/{total} rows ({:.0} rows/s, {:.1} s)",
                    rows as f64 / elapsed,
                    elapsed
                );
            }
        });
        Progress {
            bar: None,
            done,
            ticker: Some(ticker),
        }
    }

    fn add(&self, rows: u64) {
        self.done.fetch_add(rows, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(rows);
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
    }
}

/// Imports a file: all of it at once, or through a spool with `--state`.
pub(super) async fn run(args: ImportArgs) -> Result<(), Failure> {
    let format = match (args.format, Format::from_path(&args.file)) {
        (Some(FileFormat::Csv), _) => Format::Csv,
        (Some(FileFormat::Jsonl), _) => Format::JsonLines,
        (None, Some(format)) => format,
        (None, None) if args.file == "-" => return Err(input("give --format csv or --format jsonl to read stdin")),
        (None, None) => {
            return Err(input(format!(
                "cannot tell the format of {} from its extension: give --format csv or --format jsonl",
                args.file
            )))
        }
    };
    if let Some(state) = args.state.clone() {
        return state::run(args, format, state).await;
    }
    let bytes = read_input(&args.file)?;
    let parsed = import::parse(bytes.as_slice(), format);
    drop(bytes);
    let source = if args.file == "-" { "stdin" } else { args.file.as_str() };
    for error in &parsed.errors {
        eprintln!("{source}: {error}");
    }
    let invalid = parsed.errors.len() as u64;
    if invalid > 0 && (!args.skip_invalid || parsed.errors.iter().any(|e| e.line <= 1)) {
        return Err(input(format!(
            "{invalid} invalid row{} in {source}; nothing was sent (fix {}, or pass --skip-invalid)",
            if invalid == 1 { "" } else { "s" },
            if invalid == 1 { "it" } else { "them" }
        )));
    }
    let chunks = import::plan(
        &parsed.rows,
        &args.id_prefix,
        usize::from(args.rows_per_request).min(MAX_ROWS_PER_REQUEST),
    )
    .map_err(|errors| {
        for error in &errors {
            eprintln!("{source}: {error}");
        }
        input(format!("{} problem(s) in {source}; nothing was sent", errors.len()))
    })?;
    let mut summary = ImportSummary {
        rows: parsed.rows.len() as u64,
        requests: chunks.len() as u64,
        invalid_rows: invalid,
        dry_run: args.dry_run,
        ..ImportSummary::default()
    };
    drop(parsed);
    if args.dry_run {
        print_summary(&summary, args.output.output, source);
        return Ok(());
    }
    let concurrency = usize::from(args.concurrency);
    let client = client(&args.connection, Some(&args.audit), concurrency)?;
    let progress = Arc::new(Progress::start(summary.rows));
    let stop = StopSignal::new();
    // Ctrl-C: send nothing more, let the requests in flight finish, then say what is missing.
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let interrupted = interrupted.clone();
        // Registered now, before anything is sent, so that no Ctrl-C is missed.
        on_interrupt(move || {
            interrupted.store(true, Ordering::Relaxed);
            stop.stop();
            eprintln!("interrupted: finishing the requests in flight (Ctrl-C again to quit now)");
        })
    };
    let connection = args.connection.clone();
    let audit = args.audit.clone();
    // Checked once here: the options of every request differ only by the request id's `-N`
    // suffix, which keeps a valid request id valid.
    options(&connection, Some(&audit), Some(0))?;
    let places: Vec<(u64, String)> = chunks
        .iter()
        .map(|c| (c.first_line, c.tracking_id().to_string()))
        .collect();
    let requests: Vec<SubscriptionUsageRecord> = chunks.into_iter().map(|c| c.record).collect();
    let bulk = Bulk::new(client)
        .concurrency(concurrency)
        .stop_signal(stop)
        .request_options(move |index| {
            options(&connection, Some(&audit), Some(index)).expect("checked above with a suffix of the same kind")
        });
    let started = Instant::now();
    let report = {
        let progress = progress.clone();
        bulk.send(requests, move |_, rows, outcome| {
            if !matches!(outcome, Outcome::NotSent) {
                progress.add(rows);
            }
        })
        .await
        .map_err(|e| Failure::Other(e.to_string()))?
    };
    let seconds = started.elapsed().as_secs_f64();
    watcher.abort();
    if let Ok(progress) = Arc::try_unwrap(progress) {
        progress.finish();
    }
    let tally = report.tally;
    summary.recorded_requests = tally.recorded_requests;
    summary.recorded_rows = tally.recorded_rows;
    summary.already_recorded_requests = tally.already_recorded_requests;
    summary.already_recorded_rows = tally.already_recorded_rows;
    summary.failed_requests = tally.failed_requests;
    summary.failed_rows = tally.failed_rows;
    summary.not_sent_requests = tally.not_sent_requests;
    summary.not_sent_rows = tally.not_sent_rows;
    let skipped = tally.not_sent_requests;
    let mut first_failure: Option<Failure> = None;
    let mut reported = 0;
    for (index, (outcome, (first_line, tracking_id))) in report.outcomes.iter().zip(&places).enumerate() {
        let failure = match outcome {
            Outcome::Failed(e) => {
                let failure = Failure::from_client(e);
                let message = format!(
                    "request {} (line {first_line}, tracking id {tracking_id}): {}",
                    index + 1,
                    failure.message()
                );
                failure.with_message(message)
            }
            Outcome::Unfinished => Failure::Other(format!(
                "request {}: did not finish; run the same command again",
                index + 1
            )),
            Outcome::Recorded { .. } | Outcome::AlreadyRecorded { .. } | Outcome::NotSent => continue,
        };
        if reported < 20 {
            eprintln!("{source}: {}", failure.message());
            reported += 1;
        }
        first_failure.get_or_insert(failure);
    }
    summary.seconds = seconds;
    summary.rows_per_second = if seconds > 0.0 {
        (summary.recorded_rows + summary.already_recorded_rows) as f64 / seconds
    } else {
        0.0
    };
    print_summary(&summary, args.output.output, source);
    if interrupted.load(Ordering::Relaxed) {
        return Err(Failure::Interrupted(format!(
            "interrupted: {} of {} requests not sent; run the same command again to send only what is missing",
            summary.not_sent_requests + summary.failed_requests,
            summary.requests
        )));
    }
    let Some(failure) = first_failure else {
        return Ok(());
    };
    let failed = summary.failed_requests as usize;
    if reported < failed {
        eprintln!("{source}: ... and {} more failed requests", failed - reported);
    }
    if skipped > 0 {
        eprintln!("{source}: {skipped} requests not sent after a failure that would repeat");
    }
    let message = format!(
        "{} of {} requests failed; run the same command again to send only what is missing (first failure: {})",
        summary.failed_requests + summary.not_sent_requests,
        summary.requests,
        failure.message()
    );
    Err(failure.with_message(message))
}

fn print_summary(summary: &ImportSummary, output: TextOrJson, source: &str) {
    match output {
        TextOrJson::Text => out(&summary.text(source)),
        TextOrJson::Json => out(&json_line(summary)),
    }
}
