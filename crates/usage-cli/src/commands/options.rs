//! The option groups shared by subcommands (connection, audit, output, query), the value
//! parsers, the client they build and the checks of arguments into model types.

use std::time::Duration;

use clap::{Args, ValueEnum};
use usage_core::{Error as ClientError, InputField, RequestOptions, RetryPolicy, UsageClient};
use usage_models::{SubscriptionId, UnitType, UsageDate};
use usage_transport_hyper::{HyperTransport, TokioTimer};

use super::{input, Failure};
use crate::import;

/// Where the server is and who we are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub(super) struct Connection {
    /// Kill Bill's base URL
    #[arg(long, env = "KILLBILL_URL", default_value = "http://127.0.0.1:8080")]
    pub(super) url: String,
    /// User name (HTTP Basic auth)
    #[arg(long, env = "KILLBILL_USER", default_value = "admin")]
    pub(super) user: String,
    /// Password [default: the Kill Bill demo password]
    #[arg(
        long,
        env = "KILLBILL_PASSWORD",
        default_value = "password",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub(super) password: String,
    /// Tenant API key
    #[arg(long, env = "KILLBILL_API_KEY", default_value = "bob")]
    pub(super) api_key: String,
    /// Tenant API secret [default: the Kill Bill demo secret]
    #[arg(
        long,
        env = "KILLBILL_API_SECRET",
        default_value = "lazar",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub(super) api_secret: String,
    /// Give up on a call after this many seconds (all retries included)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_timeout)]
    pub(super) timeout: Duration,
    /// Retries of a failed call (connection failures, 429, 502, 503, 504), each safe
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub(super) retries: u32,
    /// X-Request-Id sent with each request (imports append -<request number>)
    #[arg(long, value_name = "ID")]
    pub(super) request_id: Option<String>,
}

/// Audit headers of the POSTs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub(super) struct Audit {
    /// X-Killbill-CreatedBy (at most 50 characters) [default: killbill-usage]
    #[arg(long, value_name = "NAME")]
    pub(super) created_by: Option<String>,
    /// X-Killbill-Reason
    #[arg(long)]
    pub(super) reason: Option<String>,
    /// X-Killbill-Comment
    #[arg(long)]
    pub(super) comment: Option<String>,
}

/// What to read: a subscription, maybe one unit type, and a half-open window.
#[derive(Debug, Args)]
pub(super) struct Query {
    /// The subscription (a UUID)
    #[arg(long, value_name = "ID")]
    pub(super) subscription: String,
    /// Only this unit type [default: every unit type]
    #[arg(long, value_name = "TYPE")]
    pub(super) unit: Option<String>,
    /// Start of the window, included (a date or a date-time)
    #[arg(long, value_name = "D")]
    pub(super) from: String,
    /// End of the window, EXCLUDED: the window is half-open [from, to)
    #[arg(long, value_name = "D")]
    pub(super) to: String,
}

/// A checked [`Query`].
pub(super) struct Checked {
    pub(super) subscription: SubscriptionId,
    pub(super) unit: Option<UnitType>,
    pub(super) from: UsageDate,
    pub(super) to: UsageDate,
}

impl Query {
    /// Checks every argument.
    pub(super) fn check(&self) -> Result<Checked, Failure> {
        Ok(Checked {
            subscription: subscription_arg(&self.subscription)?,
            unit: self.unit.as_deref().map(unit_arg).transpose()?,
            from: date_arg("--from", &self.from)?,
            to: date_arg("--to", &self.to)?,
        })
    }
}

/// `--output text|json`.
#[derive(Debug, Clone, Copy, Args)]
pub(super) struct TextOutput {
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub(super) output: TextOrJson,
}

/// `--output table|json`.
#[derive(Debug, Clone, Copy, Args)]
pub(super) struct TableOutput {
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub(super) output: TableOrJson,
}

/// A result as text for people or one line of JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum TextOrJson {
    Text,
    Json,
}

/// A result as a table for people or one line of JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum TableOrJson {
    Table,
    Json,
}

/// A number of seconds, more than 0 and at most a day (`--timeout`, ...).
pub(super) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err("must be more than 0 and at most 86400 seconds".to_string());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A fraction from 0 to 1 (`--faults`, `--slow-commits`).
pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err("must be between 0 and 1".to_string());
    }
    Ok(rate)
}

/// The client of the connection (and audit) options, with its retries and deadline.
pub(super) fn client(
    connection: &Connection,
    audit: Option<&Audit>,
    concurrency: usize,
) -> Result<UsageClient, Failure> {
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
    builder.build().map_err(refused)
}

/// A client or options refused: the command-line option at fault, when there is one.
fn refused(error: ClientError) -> Failure {
    match error {
        ClientError::InvalidInput(e) => input(format!("{}: {}", option_of(e.field()), e.reason())),
        other => Failure::from_client(&other),
    }
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

/// The request options (audit headers, request id with its `-N` suffix) of the options, checked.
pub(super) fn options(
    connection: &Connection,
    audit: Option<&Audit>,
    suffix: Option<usize>,
) -> Result<RequestOptions, Failure> {
    let mut options = RequestOptions::builder();
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
    options.build().map_err(refused)
}

/// `--subscription`, checked.
pub(super) fn subscription_arg(text: &str) -> Result<SubscriptionId, Failure> {
    import::subscription_id("--subscription", text)
        .map_err(|reason| input(format!("{reason} (8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11)")))
}

/// A date option (`--date`, `--from`, `--to`), checked.
pub(super) fn date_arg(option: &str, text: &str) -> Result<UsageDate, Failure> {
    import::usage_date(option, text).map_err(input)
}

/// `--unit`, checked.
pub(super) fn unit_arg(text: &str) -> Result<UnitType, Failure> {
    UnitType::new(text).map_err(|e| input(format!("--unit {}", e.reason())))
}

/// `NAME:SECRET` (`--user`, `--tenant`); the error never echoes the value, which holds a secret.
pub(super) fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, secret)) if !name.is_empty() => Ok((name.to_string(), secret.to_string())),
        // Never echo the value: it holds a secret.
        _ => Err("expected NAME:SECRET with a non-empty name".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
