//! `kb-usage record`: one usage record, always under a tracking id.

use clap::Args;
use serde::Serialize;
use usage_meter::Outcome;
use usage_models::{Amount, SubscriptionUsageRecord, TrackingId, UsageDate};

use super::options::{
    client, date_arg, options, subscription_arg, unit_arg, Audit, Connection, TextOrJson, TextOutput,
};
use super::{input, json_line, out, Failure};
use crate::render;

/// The help after the options.
pub(super) const HELP: &str = "\
Examples:
  kb-usage record --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons --amount 10
  kb-usage record --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons --amount 2.5 \\
      --date 2013-08-01T06:30:00Z --tracking-id meter-7-2013-08-01

The tracking id used is printed. Running the same command again with the same --tracking-id
records nothing twice: the server refuses the duplicate and kb-usage says \"already recorded\".

--output json prints {\"tracking_id\": string, \"already_recorded\": bool, \"attempts\": number}.";

/// `kb-usage record`.
#[derive(Debug, Args)]
pub(super) struct RecordArgs {
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
    #[command(flatten)]
    output: TextOutput,
    #[command(flatten)]
    audit: Audit,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Serialize)]
struct RecordJson<'a> {
    tracking_id: &'a str,
    already_recorded: bool,
    attempts: u32,
}

/// Records one usage record.
pub(super) async fn run(args: RecordArgs) -> Result<(), Failure> {
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
    let options = options(&args.connection, Some(&args.audit), None)?;
    let (already, attempts) = match Outcome::of(client.record_usage(&record).options(options).await) {
        Outcome::Recorded { attempts } => (false, attempts),
        Outcome::AlreadyRecorded { attempts } => (true, attempts),
        Outcome::Failed(e) => return Err(Failure::from_client(&e)),
        other => unreachable!("a single call is sent and answered: {other:?}"),
    };
    match args.output.output {
        TextOrJson::Json => {
            let json = RecordJson {
                tracking_id: tracking_id.as_str(),
                already_recorded: already,
                attempts,
            };
            out(&json_line(&json));
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
