//! Showing roll-ups: an aligned table, or stable JSON.
//!
//! ```
//! use usage_cli::render::{rollup_json, rollup_table};
//! use usage_models::RolledUpUsage;
//!
//! let usage: RolledUpUsage = serde_json::from_str(r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11",
//!   "startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z",
//!   "rolledUpUnits":[{"unitType":"gallons","amount":15.000000000},{"unitType":"api calls","amount":0.5}]}"#).unwrap();
//! let table = rollup_table(&usage);
//! assert!(table.ends_with("unit type  amount\napi calls     0.5\ngallons        15\n"));
//! let json: serde_json::Value = serde_json::from_str(&rollup_json(&usage)).unwrap();
//! assert_eq!(json["units"][1]["amount"], 15);
//! ```

use std::fmt::Write as _;

use serde::Serialize;
use usage_models::{Decimal, RolledUpUsage};

/// An amount for people: exact, without trailing zeros (`15.000000000` → `15`).
pub fn amount_text(amount: Decimal) -> String {
    amount.normalize().to_string()
}

/// One unit type's sum in JSON output.
#[derive(Serialize)]
pub struct UnitJson {
    /// The unit type.
    pub unit_type: String,
    /// The exact sum, as a JSON number without trailing zeros (never through `f64`).
    #[serde(serialize_with = "usage_models::json_decimal::serialize")]
    pub amount: Decimal,
}

/// The JSON document of `get --output json`.
#[derive(Serialize)]
pub struct RollupJson {
    /// The subscription.
    pub subscription_id: String,
    /// The start of the window (inclusive), as the server echoed it.
    pub start: String,
    /// The end of the window (exclusive), as the server echoed it.
    pub end: String,
    /// One entry per unit type with usage in the window, sorted by unit type.
    pub units: Vec<UnitJson>,
}

fn sorted_units(usage: &RolledUpUsage) -> Vec<(String, Decimal)> {
    let mut units: Vec<(String, Decimal)> = usage
        .rolled_up_units()
        .iter()
        .map(|unit| (unit.unit_type().to_string(), unit.amount()))
        .collect();
    units.sort();
    units
}

/// `get --output json`: `{"subscription_id", "start", "end", "units": [{"unit_type", "amount"}]}`.
pub fn rollup_json(usage: &RolledUpUsage) -> String {
    let json = RollupJson {
        subscription_id: usage.subscription_id().to_string(),
        start: usage.start_date().to_string(),
        end: usage.end_date().to_string(),
        units: sorted_units(usage)
            .into_iter()
            .map(|(unit_type, amount)| UnitJson { unit_type, amount })
            .collect(),
    };
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// `get`'s table: the subscription and window, then one aligned line per unit type.
pub fn rollup_table(usage: &RolledUpUsage) -> String {
    let units = sorted_units(usage);
    let mut out = String::new();
    let _ = writeln!(out, "subscription  {}", usage.subscription_id());
    let _ = writeln!(out, "window        [{}, {})", usage.start_date(), usage.end_date());
    if units.is_empty() {
        let _ = writeln!(out, "no usage in this window");
        return out;
    }
    let texts: Vec<(String, String)> = units
        .into_iter()
        .map(|(unit, amount)| (unit, amount_text(amount)))
        .collect();
    let unit_width = texts
        .iter()
        .map(|(u, _)| u.chars().count())
        .chain(["unit type".len()])
        .max()
        .unwrap_or(0);
    let amount_width = texts
        .iter()
        .map(|(_, a)| a.len())
        .chain(["amount".len()])
        .max()
        .unwrap_or(0);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<unit_width$}  {:>amount_width$}", "unit type", "amount");
    for (unit, amount) in texts {
        let _ = writeln!(out, "{unit:<unit_width$}  {amount:>amount_width$}");
    }
    out
}
