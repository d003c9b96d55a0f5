//! `kb-usage get`: the usage of a subscription over a window, rolled up by unit type.

use clap::Args;
use usage_core::{RequestOptions, UsageClient, UsageWindow};
use usage_models::{RolledUpUsage, SubscriptionId, UnitType};

use super::options::{client, options, Checked, Connection, Query, TableOrJson, TableOutput};
use super::{input, out, Failure};
use crate::render;

/// The help after the options.
pub(super) const HELP: &str = "\
The window is half-open: [--from, --to). Usage recorded exactly at --to is NOT counted.
Dates (2013-08-01) mean midnight UTC; date-times may carry an offset (2013-08-01T10:00:00+02:00).

Examples:
  kb-usage get --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --from 2013-08-01 --to 2013-09-01
  kb-usage get --subscription 8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 --unit gallons \\
      --from 2013-08-01T00:00:00Z --to 2013-08-01T12:00:00Z --output json

--output json prints {\"subscription_id\": string, \"start\": string, \"end\": string,
\"units\": [{\"unit_type\": string, \"amount\": exact decimal number}]} (units sorted by name).";

/// `kb-usage get`.
#[derive(Debug, Args)]
pub(super) struct GetArgs {
    #[command(flatten)]
    query: Query,
    #[command(flatten)]
    output: TableOutput,
    #[command(flatten)]
    connection: Connection,
}

/// Shows the usage of a subscription over a window.
pub(super) async fn run(args: GetArgs) -> Result<(), Failure> {
    let Checked {
        subscription,
        unit,
        from,
        to,
    } = args.query.check()?;
    let window = UsageWindow::new(from, to).map_err(|_| input(format!("--to ({to}) is before --from ({from})")))?;
    let client = client(&args.connection, None, 1)?;
    let options = options(&args.connection, None, None)?;
    let usage = rolled_up(&client, subscription, unit.as_ref(), window, options).await?;
    match args.output.output {
        TableOrJson::Table => out(&render::rollup_table(&usage)),
        TableOrJson::Json => out(&format!("{}\n", render::rollup_json(&usage))),
    }
    Ok(())
}

/// The usage of `subscription` in `window`, of one unit type or of all.
pub(super) async fn rolled_up(
    client: &UsageClient,
    subscription: SubscriptionId,
    unit: Option<&UnitType>,
    window: UsageWindow,
    options: RequestOptions,
) -> Result<RolledUpUsage, Failure> {
    match unit {
        Some(unit) => match client.get_usage(subscription, unit, window) {
            Ok(call) => call.options(options).await,
            Err(invalid) => Err(invalid),
        },
        None => client.get_all_usage(subscription, window).options(options).await,
    }
    .map_err(|e| Failure::from_client(&e))
}
