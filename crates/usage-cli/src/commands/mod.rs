//! The `kb-usage` command line, one file per subcommand (cargo's layout): the clap enum, the
//! exit codes and how a failure maps to one. The option groups shared by several subcommands
//! are in `options`, the one Ctrl-C/SIGTERM handler in `signals`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use usage_core::Error as ClientError;

mod get;
mod import;
mod options;
mod record;
mod series;
mod serve;
mod signals;

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
    #[command(after_help = record::HELP)]
    Record(record::RecordArgs),
    /// Import usage from a CSV or JSON-lines file, safely re-runnable
    #[command(after_help = import::HELP)]
    Import(import::ImportArgs),
    /// Show the usage of a subscription over a window, rolled up by unit type
    #[command(after_help = get::HELP)]
    Get(get::GetArgs),
    /// Show usage per day, week or month as a table with bars, JSON, CSV or an SVG chart
    #[command(after_help = series::HELP)]
    Series(series::SeriesArgs),
    /// Serve an in-memory Kill Bill (usage API) over HTTP, for tests and demos
    #[command(after_help = serve::HELP)]
    Serve(serve::ServeArgs),
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

    /// The same kind of failure, told by another message.
    fn with_message(self, message: String) -> Failure {
        match self {
            Failure::Input(_) => Failure::Input(message),
            Failure::Server(_) => Failure::Server(message),
            Failure::Transport(_) => Failure::Transport(message),
            Failure::Other(_) => Failure::Other(message),
            Failure::Interrupted(_) => Failure::Interrupted(message),
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

/// An invalid-input failure (exit 2).
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
            Command::Record(args) => record::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Get(args) => get::run(args).await,
            Command::Series(args) => series::run(args).await,
            Command::Serve(args) => serve::run(args).await,
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

/// `value` as one line of JSON.
fn json_line(value: &impl serde::Serialize) -> String {
    format!("{}\n", serde_json::to_string(value).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
