//! How the server is set up: [`ServeConfig`], with its [`Faults`] and [`SlowCommits`], and the
//! emulator it describes ([`build_emulator`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use usage_models::SubscriptionId;

use crate::{DuplicateCheck, EmulatorError, Fault, InMemoryKillBill, NewSubscription, WireFormat};

/// The emulator `config` describes: its users and tenants (the defaults when none are given),
/// its subscriptions (in the first tenant), auto-provisioning and wire format.
pub fn build_emulator(config: &ServeConfig) -> Result<InMemoryKillBill, EmulatorError> {
    let mut builder = InMemoryKillBill::builder()
        .without_default_credentials()
        .auto_provision(config.auto_provision)
        .duplicate_check(config.duplicate_check)
        .wire_format(if config.legacy_0_22 {
            WireFormat::Legacy022
        } else {
            WireFormat::V024
        });
    for (name, password) in config.effective_users() {
        builder = builder.user(name, password);
    }
    for (key, secret) in config.effective_tenants() {
        builder = builder.tenant(key, secret);
    }
    let emulator = builder.build();
    for id in &config.subscriptions {
        emulator.add_subscription(NewSubscription::new().id(SubscriptionId::new(*id)))?;
    }
    Ok(emulator)
}

/// Fault injection: with probability `rate` per request (admin routes excepted), one of
/// [`Faults::kinds`], drawn from an RNG seeded with `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Faults {
    pub(crate) rate: f64,
    pub(crate) seed: u64,
}

/// Slow commits: with probability `rate` per `POST /1.0/kb/usages`, the request is processed
/// `processing` longer before its insert (after its tracking-id check with
/// [`DuplicateCheck::KillBill`]), so that a client whose attempt timeout is shorter gives up
/// while it is still being processed. Drawn from an RNG seeded with `seed`, apart from
/// [`Faults`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct SlowCommits {
    pub(crate) rate: f64,
    pub(crate) processing: Duration,
    pub(crate) seed: u64,
}

impl Faults {
    /// Faults with probability `rate` per request (in `[0, 1]`), drawn from an RNG seeded with
    /// `seed`.
    pub fn new(rate: f64, seed: u64) -> Self {
        Faults { rate, seed }
    }

    /// The probability of a fault per request, in `[0, 1]`.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The seed of the RNG (the same seed gives the same draws for the same request order).
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl SlowCommits {
    /// Slow commits with probability `rate` per POST (in `[0, 1]`), each `processing` longer,
    /// drawn from an RNG seeded with `seed`.
    pub fn new(rate: f64, processing: Duration, seed: u64) -> Self {
        SlowCommits { rate, processing, seed }
    }

    /// The probability of a slow commit per POST, in `[0, 1]`.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The extra processing time of a slow commit.
    pub fn processing(&self) -> Duration {
        self.processing
    }

    /// The seed of the RNG.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

impl Faults {
    /// The faults drawn, each as likely, in the order of [`Stats`](super::Stats)' counters:
    /// - 503 with `Retry-After: 0`, before handling ([`Fault::retry_later`]);
    /// - 429 with `Retry-After: 0`, before handling;
    /// - the connection closed without an answer, before handling
    ///   ([`Fault::connection_closed`]);
    /// - the request handled (a POST is stored!), then the connection closed without an
    ///   answer ([`Fault::CommitThenLose`]): naive retries count such usage twice.
    pub fn kinds() -> [Fault; 4] {
        [
            Fault::retry_later(StatusCode::SERVICE_UNAVAILABLE),
            Fault::retry_later(StatusCode::TOO_MANY_REQUESTS),
            Fault::connection_closed(),
            Fault::CommitThenLose,
        ]
    }
}

/// How the server is set up. `Debug` shows user names and API keys, never passwords or
/// secrets.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) users: Vec<(String, String)>,
    pub(crate) tenants: Vec<(String, String)>,
    pub(crate) subscriptions: Vec<uuid::Uuid>,
    pub(crate) auto_provision: bool,
    pub(crate) legacy_0_22: bool,
    pub(crate) log: bool,
    pub(crate) faults: Option<Faults>,
    pub(crate) duplicate_check: DuplicateCheck,
    pub(crate) slow_commits: Option<SlowCommits>,
    pub(crate) max_body_bytes: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(name, _)| format!("{name}:[redacted]"))
                .collect::<Vec<_>>()
        };
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("users", &names(&self.users))
            .field("tenants", &names(&self.tenants))
            .field("subscriptions", &self.subscriptions)
            .field("auto_provision", &self.auto_provision)
            .field("legacy_0_22", &self.legacy_0_22)
            .field("log", &self.log)
            .field("faults", &self.faults)
            .field("duplicate_check", &self.duplicate_check)
            .field("slow_commits", &self.slow_commits)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

impl ServeConfig {
    /// The defaults, listening on `listen`: 16 MiB bodies, 20 s for headers, 30 s for bodies,
    /// 30 s for a stalled write.
    pub fn new(listen: SocketAddr) -> Self {
        ServeConfig {
            listen,
            users: Vec::new(),
            tenants: Vec::new(),
            subscriptions: Vec::new(),
            auto_provision: false,
            legacy_0_22: false,
            log: false,
            faults: None,
            duplicate_check: DuplicateCheck::Atomic,
            slow_commits: None,
            max_body_bytes: 16 * 1024 * 1024,
            // As Tomcat's default: longer than the hyper transport keeps idle connections (15 s),
            // so that a client never reuses a kept-alive connection the server is closing.
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// The users, with the default when none was given.
    pub fn effective_users(&self) -> Vec<(String, String)> {
        if self.users.is_empty() {
            vec![("admin".to_string(), "password".to_string())]
        } else {
            self.users.clone()
        }
    }

    /// The tenants, with the default when none was given.
    pub fn effective_tenants(&self) -> Vec<(String, String)> {
        if self.tenants.is_empty() {
            vec![("bob".to_string(), "lazar".to_string())]
        } else {
            self.tenants.clone()
        }
    }
}

impl ServeConfig {
    /// Where to listen (port 0 picks a free port).
    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    /// The users, as `(name, password)`; empty means `admin:password`.
    pub fn with_users(mut self, users: Vec<(String, String)>) -> Self {
        self.users = users;
        self
    }

    /// The tenants, as `(api key, api secret)`; empty means `bob:lazar`.
    pub fn with_tenants(mut self, tenants: Vec<(String, String)>) -> Self {
        self.tenants = tenants;
        self
    }

    /// The subscriptions to create in the first tenant.
    pub fn with_subscriptions(mut self, subscriptions: Vec<uuid::Uuid>) -> Self {
        self.subscriptions = subscriptions;
        self
    }

    /// Whether to create unknown subscriptions on first use instead of answering 404.
    pub fn with_auto_provision(mut self, auto_provision: bool) -> Self {
        self.auto_provision = auto_provision;
        self
    }

    /// Whether to speak Kill Bill 0.22 (dates without time, integer amounts).
    pub fn with_legacy_0_22(mut self, legacy_0_22: bool) -> Self {
        self.legacy_0_22 = legacy_0_22;
        self
    }

    /// Whether to write a line per request on stderr (method, path, status, duration; never
    /// credentials).
    pub fn with_log(mut self, log: bool) -> Self {
        self.log = log;
        self
    }

    /// Fault injection (`None`: none).
    pub fn with_faults(mut self, faults: Option<Faults>) -> Self {
        self.faults = faults;
        self
    }

    /// How a POST's tracking id is checked: atomic (the default), or as Kill Bill does.
    pub fn with_duplicate_check(mut self, duplicate_check: DuplicateCheck) -> Self {
        self.duplicate_check = duplicate_check;
        self
    }

    /// Slow commits (`None`: none).
    pub fn with_slow_commits(mut self, slow_commits: Option<SlowCommits>) -> Self {
        self.slow_commits = slow_commits;
        self
    }

    /// The largest request body accepted (413 past it).
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// How long a client may take to send a request's headers.
    pub fn with_header_read_timeout(mut self, header_read_timeout: Duration) -> Self {
        self.header_read_timeout = header_read_timeout;
        self
    }

    /// How long a client may take to send a request's body (408 past it).
    pub fn with_body_read_timeout(mut self, body_read_timeout: Duration) -> Self {
        self.body_read_timeout = body_read_timeout;
        self
    }

    /// How long a write to a client may make no progress (a client that sends requests but
    /// does not read the answers) before its connection is closed.
    pub fn with_write_timeout(mut self, write_timeout: Duration) -> Self {
        self.write_timeout = write_timeout;
        self
    }

    /// How long shutdown waits for requests in flight.
    pub fn with_shutdown_grace(mut self, shutdown_grace: Duration) -> Self {
        self.shutdown_grace = shutdown_grace;
        self
    }

    /// Where to listen (port 0 picks a free port).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Users as `(name, password)`; empty means `admin:password`.
    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    /// Tenants as `(api key, api secret)`; empty means `bob:lazar`.
    pub fn tenants(&self) -> &[(String, String)] {
        &self.tenants
    }

    /// Subscriptions to create in the first tenant.
    pub fn subscriptions(&self) -> &[uuid::Uuid] {
        &self.subscriptions
    }

    /// Create unknown subscriptions on first use instead of answering 404.
    pub fn auto_provision(&self) -> bool {
        self.auto_provision
    }

    /// Speak Kill Bill 0.22 (dates without time, integer amounts).
    pub fn legacy_0_22(&self) -> bool {
        self.legacy_0_22
    }

    /// Write a line per request on stderr (method, path, status, duration; never credentials).
    pub fn log(&self) -> bool {
        self.log
    }

    /// Fault injection.
    pub fn faults(&self) -> Option<Faults> {
        self.faults
    }

    /// How a POST's tracking id is checked: atomic (the default), or as Kill Bill does.
    pub fn duplicate_check(&self) -> DuplicateCheck {
        self.duplicate_check
    }

    /// Slow commits.
    pub fn slow_commits(&self) -> Option<SlowCommits> {
        self.slow_commits
    }

    /// The largest request body accepted (413 past it).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// How long a client may take to send a request's headers.
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    /// How long a client may take to send a request's body (408 past it).
    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    /// How long a write to a client may make no progress (a client that sends requests but
    /// does not read the answers) before its connection is closed.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// How long shutdown waits for requests in flight.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }
}
