//! `kb-usage series`: usage per day, week or month, one query per period.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use usage_core::UsageWindow;
use usage_meter::bulk::bounded;

use super::get::rolled_up;
use super::options::{client, options, Checked, Connection, Query};
use super::{input, out, Failure};
use crate::series::{self, Every, Point, Series};

/// The help after the options.
pub(super) const HELP: &str = "\
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

/// `kb-usage series`.
#[derive(Debug, Args)]
pub(super) struct SeriesArgs {
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

/// A table, chart or file of the usage per period.
pub(super) async fn run(args: SeriesArgs) -> Result<(), Failure> {
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
            let options = options(&connection, None, Some(index))?;
            let usage = rolled_up(&client, subscription, unit.as_ref(), window, options).await?;
            let mut units: Vec<(String, usage_models::Decimal)> = usage
                .rolled_up_units()
                .iter()
                .map(|u| (u.unit_type().to_string(), u.amount()))
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

/// `--output` of `series`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SeriesOutput {
    Table,
    Json,
    Csv,
}
