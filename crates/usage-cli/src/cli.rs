//! The `kb-usage` command line: arguments, the subcommands and their exit codes.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use usage_core::{Error as ClientError, InputField, RequestOptions, RetryPolicy, UsageClient, UsageWindow};
use usage_meter::bulk::bounded;
use usage_meter::{Bulk, DurableError, Meter, Outcome, StopSignal, Usage, WhenFull};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UsageDate};
use usage_transport_hyper::{HyperTransport, TokioTimer};
use usage_transport_memory::DuplicateCheck;

use crate::import::{self, Format, Tail, MAX_ROWS_PER_REQUEST};
use crate::render;
use crate::series::{self, Every, Point, Series};
use usage_transport_memory::serve::{Faults, ServeConfig, Server, SlowCommits};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: another failure (cannot listen, cannot write a file).
pub const EXIT_OTHER: u8 = 1;
/// Exit code: invalid input (bad arguments, bad rows); nothing was sent. Clap's usage errors
/// exit with 2 too.
pub const EXIT_INVALID_INPUT: u8 = 2;
/// Exit code: the server answered with an error.
pub const EXIT_SERVER: u8 = 3;
/// Exit code: the server could not be reached, or did not answer in time.
pub const EXIT_TRANSPORT: u8 = 4;
/// Exit code: an import stopped by Ctrl-C or SIGTERM (after the requests in flight finished).
pub const EXIT_INTERRUPTED: u8 = 130;

const ABOUT: &str = "Record, import, read and chart Kill Bill usage; serve an in-memory Kill Bill";

const EXIT_CODES: &str = "\
Exit codes:
    0  success
    1  other failure (cannot listen, cannot write a file)
    2  invalid input (bad arguments or rows); nothing was sent
    3  the server answered with an error (Kill Bill's message and code are shown)
    4  the server could not be reached or did not answer in time
  130  an import interrupted by Ctrl-C (run it again to finish it)

Connection settings come from the options or the environment: KILLBILL_URL, KILLBILL_USER,
KILLBILL_PASSWORD, KILLBILL_API_KEY, KILLBILL_API_SECRET (prefer the environment for secrets:
command lines are visible to other users).";

/// `kb-usage`.
#[derive(Debug, Parser)]
#[command(name = "kb-usage", version, about = ABOUT, after_help = EXIT_CODES)]
pub struct Cli {
    /// Show each attempt, retry and wait of the client on stderr (-vv: more); never credentials
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record one usage record (safe to retry: it always carries a tracking id)
    #[command(after_help = RECORD_HELP)]
    Record(RecordArgs),
    /// Import usage from a CSV or JSON-lines file, safely re-runnable
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Show the usage of a subscription over a window, rolled up by unit type
    #[command(after_help = GET_HELP)]
    Get(GetArgs),
    /// Show usage per day, week or month as a table with bars, JSON, CSV or an SVG chart
    #[command(after_help = SERIES_HELP)]
    Series(SeriesArgs),
    /// Serve an in-memory Kill Bill (usage API) over HTTP, for tests and demos
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
}

const RECORD_HELP: &str = "\
Examples:
  kb-usage record --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons --amount 10
  kb-usage record --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons --amount 2.5 \\
      --date 2013-08-01T06:30:00Z --tracking-id meter-7-2013-08-01

The tracking id used is printed. Running the same command again with the same --tracking-id
records nothing twice: the server refuses the duplicate and kb-usage says \"already recorded\".

--output json prints {\"tracking_id\": string, \"already_recorded\": bool, \"attempts\": number}.";

const IMPORT_HELP: &str = "\
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
appended since; nothing counts twice. Bad rows
(invalid, carrying their own tracking_id, or refused by Kill Bill) go to DIR/rejects.txt with
their line and reason, and the rest goes on (after a crash, a line can be listed there twice;
its usage is never counted twice). It exits 0 when every row taken is delivered, 2
when some rows were rejected, 4 when rows are still undelivered after --drain-timeout (they stay
in DIR for the next run). Without --follow, a last line without its newline is taken as it is.
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

const GET_HELP: &str = "\
The window is half-open: [--from, --to). Usage recorded exactly at --to is NOT counted.
Dates (2013-08-01) mean midnight UTC; date-times may carry an offset (2013-08-01T10:00:00+02:00).

Examples:
  kb-usage get --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --from 2013-08-01 --to 2013-09-01
  kb-usage get --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons \\
      --from 2013-08-01T00:00:00Z --to 2013-08-01T12:00:00Z --output json

--output json prints {\"subscription_id\": string, \"start\": string, \"end\": string,
\"units\": [{\"unit_type\": string, \"amount\": exact decimal number}]} (units sorted by name).";

const SERIES_HELP: &str = "\
Each period is half-open, [start, next start); the last one ends at --to (excluded).
One query per period, run concurrently (--concurrency).

Examples:
  kb-usage series --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons \\
      --from 2013-08-01 --to 2013-09-01
  kb-usage series --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --from 2013-01-01 \\
      --to 2014-01-01 --every month --svg usage-2013.svg

--output json prints {\"subscription_id\": string, \"unit_type\": string or null, \"every\": string,
\"periods\": [{\"start\": string, \"end\": string, \"units\": [{\"unit_type\": string, \"amount\": number}],
\"total\": number}]}. --output csv prints period_start,period_end,unit_type,amount lines.";

const SERVE_HELP: &str = "\
The first line on stdout is exactly `listening on http://IP:PORT`, once the socket accepts.
Without --user or --tenant, the user is admin:password and the tenant bob:lazar.
`POST /emulator/subscriptions` with {\"subscriptionId\": \"<uuid>\"} (authenticated like the usage
API) creates a subscription in the caller's tenant.

--faults RATE injects, with probability RATE per request (seeded by --seed): 503 with
Retry-After: 0, 429, a connection closed before handling, or a request handled (usage stored!)
and then its connection closed without an answer. Admin routes are never faulted.

--kill-bill-duplicates MILLIS checks a POST's tracking id, waits MILLIS (the time Kill Bill spends
processing), then inserts, as Kill Bill does: two POSTs with the same tracking id that overlap are
both stored. Without it, the check and the insert are one atomic step.
--slow-commits RATE processes that fraction of POSTs (seeded by --seed) --slow-commit-ms longer
before their insert: a client whose attempt timeout is shorter gives up while the attempt is still
being processed, and its retry overlaps it.

Examples:
  kb-usage serve --listen 127.0.0.1:0 --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11
  kb-usage serve --auto-provision --log --faults 0.2 --seed 7
  kb-usage serve --auto-provision --kill-bill-duplicates 20 --slow-commits 0.1 --slow-commit-ms 1000";

/// Where the server is and who we are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
struct Connection {
    /// Kill Bill's base URL
    #[arg(long, env = "KILLBILL_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// User name (HTTP Basic auth)
    #[arg(long, env = "KILLBILL_USER", default_value = "admin")]
    user: String,
    /// Password [default: the Kill Bill demo password]
    #[arg(
        long,
        env = "KILLBILL_PASSWORD",
        default_value = "password",
        hide_env_values = true,
        hide_default_value = true
    )]
    password: String,
    /// Tenant API key
    #[arg(long, env = "KILLBILL_API_KEY", default_value = "bob")]
    api_key: String,
    /// Tenant API secret [default: the Kill Bill demo secret]
    #[arg(
        long,
        env = "KILLBILL_API_SECRET",
        default_value = "lazar",
        hide_env_values = true,
        hide_default_value = true
    )]
    api_secret: String,
    /// Give up on a call after this many seconds (all retries included)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_timeout)]
    timeout: Duration,
    /// Retries of a failed call (connection failures, 429, 502, 503, 504), each safe
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    retries: u32,
    /// X-Request-Id sent with each request (imports append -<request number>)
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
}

/// Audit headers of the POSTs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
struct Audit {
    /// X-Killbill-CreatedBy (at most 50 characters) [default: killbill-usage]
    #[arg(long, value_name = "NAME")]
    created_by: Option<String>,
    /// X-Killbill-Reason
    #[arg(long)]
    reason: Option<String>,
    /// X-Killbill-Comment
    #[arg(long)]
    comment: Option<String>,
}

#[derive(Debug, Args)]
struct RecordArgs {
    /// The subscription (a UUID)
    #[arg(long, value_name = "ID")]
    subscription: String,
    /// The unit type (e.g. gallons)
    #[arg(long, value_name = "TYPE")]
    unit: String,
    /// The amount: an exact decimal (at most 9 integer and 9 fraction digits)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    amount: String,
    /// When the usage happened: 2013-08-01 or an ISO-8601 date-time [default: now]
    #[arg(long, value_name = "D")]
    date: Option<String>,
    /// The tracking id (at most 128 characters) [default: a random one, printed]
    #[arg(long, value_name = "T")]
    tracking_id: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    output: TextOrJson,
    #[command(flatten)]
    audit: Audit,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The file to import, or - for stdin
    #[arg(value_name = "FILE")]
    file: String,
    /// The file's format [default: by extension: .csv, .jsonl/.ndjson/.json]
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// Import the valid rows even if some are invalid (they are still reported; import the
    /// fixed rows later as a file of their own)
    #[arg(long)]
    skip_invalid: bool,
    /// Check the file and plan the requests; send nothing
    #[arg(long)]
    dry_run: bool,
    /// Requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Rows per request, at most 1000 (keep it the same when running an import again: the
    /// derived tracking ids depend on it)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    rows_per_request: u16,
    /// The namespace of the derived tracking ids: imports under another prefix never
    /// collide with this one
    #[arg(long, value_name = "TEXT", default_value = "kbu")]
    id_prefix: String,
    /// Output format of the summary
    #[arg(long, value_enum, default_value = "text")]
    output: TextOrJson,
    /// Keep progress in DIR (created if missing): re-runs ship only what was not shipped, and
    /// the rows appended since
    /// (rows are grouped and given tracking ids as they come: --id-prefix does not apply, and
    /// bad rows always go to DIR/rejects.txt)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dry_run", "id_prefix", "skip_invalid"])]
    state: Option<PathBuf>,
    /// With --state: keep reading FILE as it grows (like tail -f) until Ctrl-C or SIGTERM
    #[arg(long, requires = "state")]
    follow: bool,
    /// With --state: how long to wait at the end for the rows taken to be delivered
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_timeout)]
    drain_timeout: Duration,
    #[command(flatten)]
    audit: Audit,
    #[command(flatten)]
    connection: Connection,
}

/// What to read: a subscription, maybe one unit type, and a half-open window.
#[derive(Debug, Args)]
struct Query {
    /// The subscription (a UUID)
    #[arg(long, value_name = "ID")]
    subscription: String,
    /// Only this unit type [default: every unit type]
    #[arg(long, value_name = "TYPE")]
    unit: Option<String>,
    /// Start of the window, included (a date or a date-time)
    #[arg(long, value_name = "D")]
    from: String,
    /// End of the window, EXCLUDED: the window is half-open [from, to)
    #[arg(long, value_name = "D")]
    to: String,
}

/// A checked [`Query`].
struct Checked {
    subscription: SubscriptionId,
    unit: Option<UnitType>,
    from: UsageDate,
    to: UsageDate,
}

impl Query {
    fn check(&self) -> Result<Checked, Failure> {
        Ok(Checked {
            subscription: subscription_arg(&self.subscription)?,
            unit: self.unit.as_deref().map(unit_arg).transpose()?,
            from: date_arg("--from", &self.from)?,
            to: date_arg("--to", &self.to)?,
        })
    }
}

#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    query: Query,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    output: TableOrJson,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
struct SeriesArgs {
    #[command(flatten)]
    query: Query,
    /// Length of a period
    #[arg(long, value_enum, default_value = "day")]
    every: Every,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    output: SeriesOutput,
    /// Also write a bar chart to this SVG file
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Queries in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("faulty").args(["faults", "slow_commits"]).multiple(true)))]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A user, NAME:PASSWORD (repeatable) [default: admin:password]
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// A tenant, KEY:SECRET (repeatable) [default: bob:lazar]
    #[arg(long = "tenant", value_name = "KEY:SECRET")]
    tenants: Vec<String>,
    /// Create this subscription in the first tenant (repeatable)
    #[arg(long = "subscription", value_name = "UUID")]
    subscriptions: Vec<uuid::Uuid>,
    /// Create unknown subscriptions on first use instead of answering 404
    #[arg(long)]
    auto_provision: bool,
    /// Speak Kill Bill 0.22: dates without time, integer amounts
    #[arg(long = "legacy-0-22")]
    legacy_0_22: bool,
    /// Log each request on stderr: method, path, status, duration (never credentials)
    #[arg(long)]
    log: bool,
    /// Inject a fault into this fraction of requests (0 to 1)
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    faults: Option<f64>,
    /// Seed of the fault RNG (and of the slow-commit RNG)
    #[arg(long, value_name = "N", requires = "faulty", default_value_t = 0)]
    seed: u64,
    /// Check a POST's tracking id, wait MILLIS, then insert, as Kill Bill does (not atomic)
    #[arg(long, value_name = "MILLIS")]
    kill_bill_duplicates: Option<u64>,
    /// Process this fraction of POSTs (0 to 1) --slow-commit-ms longer before their insert
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    slow_commits: Option<f64>,
    /// The extra processing time of a slow commit
    #[arg(long, value_name = "MILLIS", requires = "slow_commits", default_value_t = 1000)]
    slow_commit_ms: u64,
    /// Largest request body accepted, in bytes (413 past it)
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds a client may take to send a request's headers, and to start its next request on a
    /// kept-alive connection (20, as Tomcat's default: longer than clients' pools keep idle
    /// connections, so that they never reuse one the server is closing)
    #[arg(long, value_name = "SECONDS", default_value = "20", value_parser = parse_timeout)]
    header_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TableOrJson {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SeriesOutput {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FileFormat {
    Csv,
    Jsonl,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err("must be more than 0 and at most 86400 seconds".to_string());
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err("must be between 0 and 1".to_string());
    }
    Ok(rate)
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, secret)) if !name.is_empty() => Ok((name.to_string(), secret.to_string())),
        // Never echo the value: it holds a secret.
        _ => Err("expected NAME:SECRET with a non-empty name".to_string()),
    }
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Invalid input; nothing was sent (exit 2).
    Input(String),
    /// The server answered with an error (exit 3).
    Server(String),
    /// The server could not be reached or did not answer in time (exit 4).
    Transport(String),
    /// Anything else (exit 1).
    Other(String),
    /// Stopped by Ctrl-C or SIGTERM (exit 130).
    Interrupted(String),
}

impl Failure {
    /// The exit code.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Input(_) => EXIT_INVALID_INPUT,
            Failure::Server(_) => EXIT_SERVER,
            Failure::Transport(_) => EXIT_TRANSPORT,
            Failure::Other(_) => EXIT_OTHER,
            Failure::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        match self {
            Failure::Input(m)
            | Failure::Server(m)
            | Failure::Transport(m)
            | Failure::Other(m)
            | Failure::Interrupted(m) => m,
        }
    }

    /// Classifies a client error.
    pub fn from_client(error: &ClientError) -> Failure {
        match error {
            ClientError::InvalidInput(e) => Failure::Input(format!("invalid input, nothing was sent: {e}")),
            ClientError::Transport(e) => Failure::Transport(format!("cannot reach the server: {e}")),
            ClientError::DeadlineExceeded { deadline, attempts, .. } => Failure::Transport(format!(
                "no answer within {:.1} s ({attempts} attempt{})",
                deadline.as_secs_f64(),
                if *attempts == 1 { "" } else { "s" }
            )),
            ClientError::Api(e) if e.status().as_u16() == 401 && e.kill_bill().is_none() => Failure::Server(format!(
                "Kill Bill answered {}: wrong or missing credentials (check --user/--password and \
                 --api-key/--api-secret)",
                e.status()
            )),
            ClientError::Api(e) => Failure::Server(e.to_string()),
            other => Failure::Server(other.to_string()),
        }
    }
}

fn input(message: impl Into<String>) -> Failure {
    Failure::Input(message.into())
}

/// Writes to stdout, ignoring a closed pipe (`kb-usage ... | head`).
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Runs `kb-usage` with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

/// Runs a parsed command line; returns the exit code (errors are printed on stderr).
pub fn run(cli: Cli) -> u8 {
    if cli.verbose > 0 {
        let filter = if cli.verbose == 1 {
            "usage_core=info"
        } else {
            "usage_core=debug,usage_transport_hyper=debug"
        };
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_OTHER;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Record(args) => record(args).await,
            Command::Import(args) => import_file(args).await,
            Command::Get(args) => get(args).await,
            Command::Series(args) => series_cmd(args).await,
            Command::Serve(args) => serve(args).await,
        }
    });
    match result {
        Ok(()) => EXIT_OK,
        Err(failure) => {
            eprintln!("error: {}", failure.message());
            failure.code()
        }
    }
}

fn client(connection: &Connection, audit: Option<&Audit>, concurrency: usize) -> Result<UsageClient, Failure> {
    let timeout = connection.timeout;
    let transport = HyperTransport::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .request_timeout(timeout)
        .pool_max_idle_per_host(concurrency.max(1))
        .build()
        .map_err(|e| Failure::Other(format!("cannot set up HTTP: {e}")))?;
    let mut builder = UsageClient::builder(connection.url.as_str())
        .user(connection.user.as_str(), connection.password.as_str())
        .tenant(connection.api_key.as_str(), connection.api_secret.as_str())
        .transport(transport)
        .timer(TokioTimer)
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(connection.retries + 1)
                .with_deadline(timeout),
        );
    if let Some(created_by) = audit.and_then(|a| a.created_by.as_deref()) {
        builder = builder.created_by(created_by);
    }
    builder.build().map_err(|e| match e {
        ClientError::InvalidInput(e) => input(format!("{}: {}", option_of(e.field()), e.reason())),
        other => Failure::from_client(&other),
    })
}

/// The command-line option behind a client field.
fn option_of(field: InputField) -> String {
    let option = match field {
        InputField::BaseUrl => "--url",
        InputField::User => "--user",
        InputField::Password => "--password",
        InputField::ApiKey => "--api-key",
        InputField::ApiSecret => "--api-secret",
        InputField::CreatedBy => "--created-by",
        InputField::Reason => "--reason",
        InputField::Comment => "--comment",
        InputField::RequestId => "--request-id",
        other => return other.to_string(),
    };
    option.to_string()
}

fn options(connection: &Connection, audit: Option<&Audit>, suffix: Option<usize>) -> RequestOptions {
    let mut options = RequestOptions::new();
    if let Some(audit) = audit {
        if let Some(created_by) = &audit.created_by {
            options = options.created_by(created_by.as_str());
        }
        if let Some(reason) = &audit.reason {
            options = options.reason(reason.as_str());
        }
        if let Some(comment) = &audit.comment {
            options = options.comment(comment.as_str());
        }
    }
    if let Some(id) = &connection.request_id {
        options = options.request_id(match suffix {
            Some(n) => format!("{id}-{n}"),
            None => id.clone(),
        });
    }
    options
}

fn subscription_arg(text: &str) -> Result<SubscriptionId, Failure> {
    text.parse().map_err(|_| {
        input(format!(
            "--subscription {text:?} is not a UUID (8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11)"
        ))
    })
}

fn date_arg(option: &str, text: &str) -> Result<UsageDate, Failure> {
    text.parse().map_err(|_| {
        input(format!(
            "{option} {text:?} is neither a date (2013-08-01) nor an ISO-8601 date-time (2013-08-01T06:30:00Z)"
        ))
    })
}

fn unit_arg(text: &str) -> Result<UnitType, Failure> {
    UnitType::new(text).map_err(|e| input(format!("--unit {}", e.reason())))
}

#[derive(Serialize)]
struct RecordJson<'a> {
    tracking_id: &'a str,
    already_recorded: bool,
    attempts: u32,
}

async fn record(args: RecordArgs) -> Result<(), Failure> {
    let subscription = subscription_arg(&args.subscription)?;
    let unit = unit_arg(&args.unit)?;
    let amount: Amount = args
        .amount
        .parse()
        .map_err(|e: usage_models::ValidationError| input(format!("--amount {}", e.reason())))?;
    let date = match &args.date {
        Some(text) => date_arg("--date", text)?,
        None => UsageDate::now(),
    };
    let tracking_id = match &args.tracking_id {
        Some(text) => TrackingId::new(text.as_str()).map_err(|e| input(format!("--tracking-id {}", e.reason())))?,
        None => TrackingId::random(),
    };
    let record = SubscriptionUsageRecord::builder(subscription)
        .tracking_id(tracking_id.as_str())
        .record(unit.as_str(), date, amount)
        .build()
        .map_err(|e| input(e.to_string()))?;
    let client = client(&args.connection, Some(&args.audit), 1)?;
    let options = options(&args.connection, Some(&args.audit), None);
    let (already, attempts) = match client.record_usage(&record).options(options).await {
        Ok(outcome) => (outcome.already_recorded, outcome.attempts),
        Err(e) if e.is_duplicate_tracking_id() => (true, 1),
        Err(e) => return Err(Failure::from_client(&e)),
    };
    match args.output {
        TextOrJson::Json => {
            let json = RecordJson {
                tracking_id: tracking_id.as_str(),
                already_recorded: already,
                attempts,
            };
            out(&format!("{}\n", serde_json::to_string(&json).unwrap_or_default()));
        }
        TextOrJson::Text if already => out(&format!(
            "already recorded: usage under tracking id {tracking_id} was recorded before; nothing was counted twice\n"
        )),
        TextOrJson::Text => out(&format!(
            "recorded {} {} for subscription {subscription} at {date} (tracking id {tracking_id}{})\n",
            render::amount_text(amount.value()),
            unit,
            if attempts > 1 {
                format!(", {attempts} attempts")
            } else {
                String::new()
            }
        )),
    }
    Ok(())
}

async fn get(args: GetArgs) -> Result<(), Failure> {
    let Checked {
        subscription,
        unit,
        from,
        to,
    } = args.query.check()?;
    let window = UsageWindow::new(from, to).map_err(|_| input(format!("--to ({to}) is before --from ({from})")))?;
    let client = client(&args.connection, None, 1)?;
    let options = options(&args.connection, None, None);
    let usage = match &unit {
        Some(unit) => match client.get_usage(subscription, unit, window) {
            Ok(call) => call.options(options).await,
            Err(invalid) => Err(invalid.into()),
        },
        None => client.get_all_usage(subscription, window).options(options).await,
    }
    .map_err(|e| Failure::from_client(&e))?;
    match args.output {
        TableOrJson::Table => out(&render::rollup_table(&usage)),
        TableOrJson::Json => out(&format!("{}\n", render::rollup_json(&usage))),
    }
    Ok(())
}

async fn series_cmd(args: SeriesArgs) -> Result<(), Failure> {
    let Checked {
        subscription,
        unit,
        from,
        to,
    } = args.query.check()?;
    let periods = series::periods(from, to, args.every, 2_000).map_err(input)?;
    let concurrency = usize::from(args.concurrency);
    let client = client(&args.connection, None, concurrency)?;
    let connection = Arc::new(args.connection.clone());
    let unit_for_tasks = unit.clone();
    let results = bounded(periods.clone(), concurrency, move |index, period: series::Period| {
        let client = client.clone();
        let unit = unit_for_tasks.clone();
        let connection = connection.clone();
        async move {
            let window =
                UsageWindow::new(period.start, period.end).map_err(|e| input(format!("period {index}: {e}")))?;
            let options = options(&connection, None, Some(index));
            let usage = match &unit {
                Some(unit) => match client.get_usage(subscription, unit, window) {
                    Ok(call) => call.options(options).await,
                    Err(invalid) => Err(invalid.into()),
                },
                None => client.get_all_usage(subscription, window).options(options).await,
            }
            .map_err(|e| Failure::from_client(&e))?;
            let mut units: Vec<(String, usage_models::Decimal)> = usage
                .rolled_up_units
                .iter()
                .map(|u| (u.unit_type.to_string(), u.amount))
                .collect();
            units.sort();
            Ok::<Point, Failure>(Point { period, units })
        }
    })
    .await;
    let points = results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(Failure::Other("a query did not finish".to_string()))))
        .collect::<Result<Vec<Point>, Failure>>()?;
    let series = Series {
        subscription_id: subscription.to_string(),
        unit_type: unit.map(|u| u.to_string()),
        every: args.every,
        points,
    };
    if let Some(path) = &args.svg {
        std::fs::write(path, series.to_svg())
            .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("wrote {}", path.display());
    }
    match args.output {
        SeriesOutput::Table => out(&series.to_table(40)),
        SeriesOutput::Json => out(&format!("{}\n", series.to_json())),
        SeriesOutput::Csv => out(&series.to_csv()),
    }
    Ok(())
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

async fn import_file(args: ImportArgs) -> Result<(), Failure> {
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
        return import_with_state(args, format, state).await;
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
        print_summary(&summary, args.output, source);
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
        let mut signals = Interrupts::register();
        tokio::spawn(async move {
            signals.next().await;
            interrupted.store(true, Ordering::Relaxed);
            stop.stop();
            eprintln!("interrupted: finishing the requests in flight (Ctrl-C again to quit now)");
            signals.next().await;
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        })
    };
    let connection = args.connection.clone();
    let audit = args.audit.clone();
    let places: Vec<(u64, String)> = chunks
        .iter()
        .map(|c| (c.first_line, c.tracking_id().to_string()))
        .collect();
    let requests: Vec<SubscriptionUsageRecord> = chunks.into_iter().map(|c| c.record).collect();
    let bulk = Bulk::new(client)
        .concurrency(concurrency)
        .stop_signal(stop)
        .request_options(move |index| options(&connection, Some(&audit), Some(index)));
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
                match failure {
                    Failure::Transport(_) => Failure::Transport(message),
                    Failure::Input(_) => Failure::Input(message),
                    _ => Failure::Server(message),
                }
            }
            Outcome::Unfinished => Failure::Other(format!(
                "request {}: did not finish; run the same command again",
                index + 1
            )),
            Outcome::Recorded { .. } | Outcome::AlreadyRecorded | Outcome::NotSent => continue,
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
    print_summary(&summary, args.output, source);
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
    Err(match failure {
        Failure::Transport(_) => Failure::Transport(message),
        Failure::Input(_) => Failure::Input(message),
        Failure::Server(_) => Failure::Server(message),
        Failure::Other(_) | Failure::Interrupted(_) => Failure::Other(message),
    })
}

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
async fn import_with_state(args: ImportArgs, format: Format, state: PathBuf) -> Result<(), Failure> {
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
        .request_options(options(&args.connection, Some(&args.audit), None))
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
        let mut signals = Interrupts::register();
        let follow = args.follow;
        tokio::spawn(async move {
            signals.next().await;
            stop.stop();
            stopped.notify_waiters();
            eprintln!(
                "{}: delivering the rows taken (Ctrl-C again to quit now; a re-run finishes)",
                if follow { "stopping" } else { "interrupted" }
            );
            signals.next().await;
            std::process::exit(i32::from(EXIT_INTERRUPTED));
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
                    usage.record_date,
                    usage.amount
                ))?;
            }
        }
    }
    let stats = meter.stats();
    summary.rows_delivered = stats.delivered;
    summary.rows_pending = report.pending_events;
    summary.seconds = started.elapsed().as_secs_f64();
    match args.output {
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
        TextOrJson::Json => out(&format!("{}\n", serde_json::to_string(&summary).unwrap_or_default())),
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

fn print_summary(summary: &ImportSummary, output: TextOrJson, source: &str) {
    match output {
        TextOrJson::Text => out(&summary.text(source)),
        TextOrJson::Json => out(&format!("{}\n", serde_json::to_string(summary).unwrap_or_default())),
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let mut config = ServeConfig::new(args.listen);
    // Checked here rather than by clap, whose errors echo the value (and so the secret).
    let pairs = |option: &str, values: &[String]| {
        values
            .iter()
            .map(|value| parse_pair(value).map_err(|e| input(format!("{option}: {e}"))))
            .collect::<Result<Vec<_>, Failure>>()
    };
    config.users = pairs("--user", &args.users)?;
    config.tenants = pairs("--tenant", &args.tenants)?;
    config.subscriptions = args.subscriptions;
    config.auto_provision = args.auto_provision;
    config.legacy_0_22 = args.legacy_0_22;
    config.log = args.log;
    config.faults = args.faults.map(|rate| Faults { rate, seed: args.seed });
    if let Some(millis) = args.kill_bill_duplicates {
        config.duplicate_check = DuplicateCheck::KillBill {
            processing: Duration::from_millis(millis),
        };
    }
    config.slow_commits = args.slow_commits.map(|rate| SlowCommits {
        rate,
        processing: Duration::from_millis(args.slow_commit_ms),
        seed: args.seed,
    });
    config.max_body_bytes = args.max_body_bytes;
    config.header_read_timeout = args.header_timeout;
    let server = Server::bind(config.clone())
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on {}: {e}", args.listen)))?;
    out(&format!("listening on http://{}\n", server.local_addr()));
    let user_names: Vec<String> = config.effective_users().into_iter().map(|(name, _)| name).collect();
    let tenant_keys: Vec<String> = config.effective_tenants().into_iter().map(|(key, _)| key).collect();
    eprintln!(
        "users: {}; tenants: {}; subscriptions: {}{}{}{}",
        user_names.join(", "),
        tenant_keys.join(", "),
        config.subscriptions.len(),
        if config.auto_provision { "; auto-provision" } else { "" },
        if config.legacy_0_22 {
            "; Kill Bill 0.22 wire format"
        } else {
            ""
        },
        match config.faults {
            Some(f) => format!("; faults {} (seed {})", f.rate, f.seed),
            None => String::new(),
        },
    );
    if let DuplicateCheck::KillBill { processing } = config.duplicate_check {
        eprintln!("duplicate check as Kill Bill's: check, {processing:?}, insert");
    }
    if let Some(slow) = config.slow_commits {
        eprintln!(
            "slow commits: {} of POSTs, {:?} longer (seed {})",
            slow.rate, slow.processing, slow.seed
        );
    }
    let stats = server.stats();
    server
        .run_until(shutdown_signal())
        .await
        .map_err(|e| Failure::Other(format!("server failed: {e}")))?;
    eprintln!("stopped: {stats}");
    Ok(())
}

/// Ctrl-C (and SIGTERM) as a stream, registered when created.
struct Interrupts {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Interrupts {
    fn register() -> Interrupts {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt())
                .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
                .ok();
            Interrupts { signals }
        }
        #[cfg(not(unix))]
        {
            Interrupts {}
        }
    }

    /// Completes on the next Ctrl-C or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn pairs_and_rates() {
        assert_eq!(parse_pair("a:b:c").unwrap(), ("a".to_string(), "b:c".to_string()));
        assert!(parse_pair("secret-without-colon").unwrap_err().contains("NAME:SECRET"));
        assert!(!parse_pair("secret-without-colon")
            .unwrap_err()
            .contains("secret-without"));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_timeout("inf").is_err());
        assert_eq!(parse_timeout("1.5").unwrap(), Duration::from_millis(1500));
    }
}
