//! `kb-usage serve`: the arguments of the in-memory Kill Bill served over HTTP
//! ([`usage_transport_memory::serve`]).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use usage_transport_memory::DuplicateCheck;

use super::options::{parse_pair, parse_rate, parse_timeout};
use super::signals::Interrupts;
use super::{input, out, Failure};
use usage_transport_memory::serve::{Faults, ServeConfig, Server, SlowCommits};

/// The help after the options.
pub(super) const HELP: &str = "\
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

/// `kb-usage serve`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("faulty").args(["faults", "slow_commits"]).multiple(true)))]
pub(super) struct ServeArgs {
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

/// Serves the emulator until Ctrl-C or SIGTERM.
pub(super) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut config = ServeConfig::new(args.listen);
    // Checked here rather than by clap, whose errors echo the value (and so the secret).
    let pairs = |option: &str, values: &[String]| {
        values
            .iter()
            .map(|value| parse_pair(value).map_err(|e| input(format!("{option}: {e}"))))
            .collect::<Result<Vec<_>, Failure>>()
    };
    config = config.with_users(pairs("--user", &args.users)?);
    config = config.with_tenants(pairs("--tenant", &args.tenants)?);
    config = config.with_subscriptions(args.subscriptions);
    config = config.with_auto_provision(args.auto_provision);
    config = config.with_legacy_0_22(args.legacy_0_22);
    config = config.with_log(args.log);
    config = config.with_faults(args.faults.map(|rate| Faults::new(rate, args.seed)));
    if let Some(millis) = args.kill_bill_duplicates {
        config = config.with_duplicate_check(DuplicateCheck::KillBill {
            processing: Duration::from_millis(millis),
        });
    }
    config = config.with_slow_commits(
        args.slow_commits
            .map(|rate| SlowCommits::new(rate, Duration::from_millis(args.slow_commit_ms), args.seed)),
    );
    config = config.with_max_body_bytes(args.max_body_bytes);
    config = config.with_header_read_timeout(args.header_timeout);
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
        config.subscriptions().len(),
        if config.auto_provision() {
            "; auto-provision"
        } else {
            ""
        },
        if config.legacy_0_22() {
            "; Kill Bill 0.22 wire format"
        } else {
            ""
        },
        match config.faults() {
            Some(f) => format!("; faults {} (seed {})", f.rate(), f.seed()),
            None => String::new(),
        },
    );
    if let DuplicateCheck::KillBill { processing } = config.duplicate_check() {
        eprintln!("duplicate check as Kill Bill's: check, {processing:?}, insert");
    }
    if let Some(slow) = config.slow_commits() {
        eprintln!(
            "slow commits: {} of POSTs, {:?} longer (seed {})",
            slow.rate(),
            slow.processing(),
            slow.seed()
        );
    }
    let stats = server.stats();
    let mut signals = Interrupts::register();
    server
        .run_until(async move { signals.next().await })
        .await
        .map_err(|e| Failure::Other(format!("server failed: {e}")))?;
    eprintln!("stopped: {stats}");
    Ok(())
}
