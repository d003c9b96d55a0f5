//! Reading an import file and validating every row; [`plan`] (from [`usage_meter::plan`]) cuts
//! the rows into requests with deterministic tracking ids.
//!
//! The tracking id of a request depends only on what the request carries (its subscription,
//! its rows in file order, its position among the requests of that subscription) and on an
//! optional namespace: running the same file again produces the same requests with the same
//! tracking ids, so Kill Bill refuses the ones it already stored (code 50000) and records the
//! ones that were missing. Nothing is counted twice, provided the earlier run's requests are no
//! longer being processed by Kill Bill (its duplicate check is not atomic; docs/RELIABILITY.md).
//!
//! ```
//! use usage_cli::import::{parse, plan, Format, MAX_ROWS_PER_REQUEST};
//!
//! let file = "subscription_id,unit_type,record_date,amount\n\
//!             8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11,gallons,2013-08-01,10\n\
//!             8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11,gallons,2013-08-02,2.5\n\
//!             not-a-uuid,gallons,2013-08-02,1\n";
//! let parsed = parse(file.as_bytes(), Format::Csv);
//! assert_eq!(parsed.rows.len(), 2);
//! assert_eq!(parsed.errors.len(), 1);
//! assert_eq!(parsed.errors[0].line, 4);
//!
//! let requests = plan(&parsed.rows, "kbu", MAX_ROWS_PER_REQUEST).unwrap();
//! assert_eq!(requests.len(), 1);
//! assert_eq!(requests[0].rows, 2);
//! // The same rows always get the same tracking id.
//! let again = plan(&parse(file.as_bytes(), Format::Csv).rows, "kbu", MAX_ROWS_PER_REQUEST).unwrap();
//! assert_eq!(requests[0].record.tracking_id(), again[0].record.tracking_id());
//! ```

use std::io::Read;

use usage_models::{Amount, SubscriptionId, TrackingId, UnitType, UsageDate};

mod csv_file;
mod json_lines;
mod tail;

pub use tail::{Tail, TailChunk};
pub use usage_meter::plan::{plan, Chunk, Row, RowError, MAX_NAMESPACE_CHARS as MAX_ID_PREFIX_CHARS};

/// The most rows in one request.
pub const MAX_ROWS_PER_REQUEST: usize = usage_meter::MAX_RECORDS_PER_REQUEST;

/// The columns of an import file, in their usual order.
pub const COLUMNS: [&str; 5] = ["subscription_id", "unit_type", "record_date", "amount", "tracking_id"];

/// The format of an import file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    /// The format of a file name by its extension (`.csv`, `.jsonl`, `.ndjson`, `.json`).
    pub fn from_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
            Some(Format::JsonLines)
        } else {
            None
        }
    }
}

/// What [`parse`] found: the valid rows and every invalid one.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// The valid rows, in file order.
    pub rows: Vec<Row>,
    /// Every problem, in file order.
    pub errors: Vec<RowError>,
}

/// Reads all of `input` and checks every row; never stops at the first bad row.
pub fn parse(mut input: impl Read, format: Format) -> Parsed {
    let mut text = Vec::new();
    if let Err(e) = input.read_to_end(&mut text) {
        return Parsed {
            rows: Vec::new(),
            errors: vec![RowError {
                line: 0,
                reason: format!("cannot read the input: {e}"),
            }],
        };
    }
    match format {
        Format::Csv => csv_file::parse(&text),
        Format::JsonLines => json_lines::parse(&text),
    }
}

/// A row as read, before any check.
pub(crate) struct RawRow<'a> {
    pub(crate) subscription_id: &'a str,
    pub(crate) unit_type: &'a str,
    pub(crate) record_date: &'a str,
    pub(crate) amount: Result<Amount, String>,
    pub(crate) tracking_id: Option<&'a str>,
}

impl RawRow<'_> {
    /// Checks every field; reports all the bad fields of the row at once.
    pub(crate) fn check(self, line: u64) -> Result<Row, RowError> {
        let mut problems = Vec::new();
        let subscription_id = if self.subscription_id.is_empty() {
            problems.push("subscription_id is empty".to_string());
            None
        } else {
            subscription_id("subscription_id", self.subscription_id)
                .map_err(|problem| problems.push(problem))
                .ok()
        };
        let unit_type = UnitType::new(self.unit_type)
            .map_err(|e| problems.push(format!("unit_type {}", e.reason())))
            .ok();
        let record_date = if self.record_date.is_empty() {
            problems.push("record_date is empty".to_string());
            None
        } else {
            usage_date("record_date", self.record_date)
                .map_err(|problem| problems.push(problem))
                .ok()
        };
        let amount = self.amount.map_err(|problem| problems.push(problem)).ok();
        let tracking_id = match self.tracking_id {
            None | Some("") => None,
            Some(id) => match TrackingId::new(id) {
                Ok(id) => Some(id),
                Err(e) => {
                    problems.push(format!("tracking_id {}", e.reason()));
                    None
                }
            },
        };
        match (subscription_id, unit_type, record_date, amount) {
            (Some(subscription_id), Some(unit_type), Some(record_date), Some(amount)) if problems.is_empty() => {
                Ok(Row {
                    line,
                    subscription_id,
                    unit_type,
                    record_date,
                    amount,
                    tracking_id,
                })
            }
            _ => Err(RowError {
                line,
                reason: problems.join("; "),
            }),
        }
    }
}

/// `text` as a subscription id; the error names `name` (a column or an option).
pub fn subscription_id(name: &str, text: &str) -> Result<SubscriptionId, String> {
    text.parse().map_err(|_| format!("{name} {text:?} is not a UUID"))
}

/// `text` as a usage date; the error names `name` (a column or an option).
pub fn usage_date(name: &str, text: &str) -> Result<UsageDate, String> {
    text.parse().map_err(|_| {
        format!("{name} {text:?} is neither a date (2013-08-01) nor an ISO-8601 date-time (2013-08-01T06:30:00Z)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let file = format!(
            "subscription_id,unit_type,record_date,amount\n\
             {SUB},gallons,2013-08-01,10\n\
             nope,gallons,2013-08-01,10\n\
             {SUB},,2013-08-01,10\n\
             {SUB},gallons,2013-13-01,10\n\
             {SUB},gallons,2013-08-01,ten\n\
             {SUB},gallons,2013-08-01,1000000000\n\
             {SUB},gallons,2013-08-01\n\
             \n\
             {SUB},gallons,2013-08-01T06:30:00Z,0.5\n"
        );
        let parsed = parse(file.as_bytes(), Format::Csv);
        assert_eq!(parsed.rows.len(), 2);
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
        assert!(parsed.errors[0].reason.contains("not a UUID"), "{}", parsed.errors[0]);
        assert!(parsed.errors[1].reason.contains("unit_type"), "{}", parsed.errors[1]);
        assert!(parsed.errors[2].reason.contains("record_date"), "{}", parsed.errors[2]);
        assert!(parsed.errors[3].reason.contains("amount"), "{}", parsed.errors[3]);
        assert!(
            parsed.errors[4].reason.contains("integer digits"),
            "{}",
            parsed.errors[4]
        );
        assert!(parsed.errors[5].reason.contains("fields"), "{}", parsed.errors[5]);
        assert_eq!(parsed.rows[1].line, 10);
        assert_eq!(parsed.rows[1].amount.to_string(), "0.5");
    }

    #[test]
    fn header_problems() {
        let parsed = parse("subscription,unit_type,record_date,amount\n".as_bytes(), Format::Csv);
        assert_eq!(parsed.errors.len(), 2, "{:?}", parsed.errors);
        assert!(parsed.errors[0].reason.contains("unknown column"));
        assert!(parsed.errors[1].reason.contains("lacks subscription_id"));
        let parsed = parse(
            format!("amount,record_date,unit_type,subscription_id\n3,2013-08-01,a,{SUB}\n").as_bytes(),
            Format::Csv,
        );
        assert!(parsed.errors.is_empty());
        assert_eq!(parsed.rows[0].amount.to_string(), "3");
    }

    #[test]
    fn json_lines_keep_amounts_exact() {
        let file = format!(
            "{{\"subscription_id\":\"{SUB}\",\"unit_type\":\"a\",\"record_date\":\"2013-08-01\",\"amount\":333333333.333333333}}\n\
             \n\
             {{\"subscription_id\":\"{SUB}\",\"unit_type\":\"a\",\"record_date\":1375338600000,\"amount\":\"2\",\"tracking_id\":\"t-1\"}}\n\
             {{\"subscription_id\":\"{SUB}\",\"unit_type\":\"a\",\"record_date\":\"2013-08-01\"}}\n\
             {{\"subscription_id\":\"{SUB}\",\"unit_type\":\"a\",\"record_date\":\"2013-08-01\",\"amount\":1,\"extra\":1}}\n\
             not json\n"
        );
        let parsed = parse(file.as_bytes(), Format::JsonLines);
        assert_eq!(parsed.rows.len(), 2);
        assert_eq!(parsed.rows[0].amount.to_string(), "333333333.333333333");
        assert_eq!(parsed.rows[1].record_date.to_string(), "2013-08-01T06:30:00.000Z");
        assert_eq!(parsed.rows[1].tracking_id.as_ref().unwrap().as_str(), "t-1");
        let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(parsed.errors[0].reason.contains("amount is missing"));
        assert!(parsed.errors[1].reason.contains("extra"), "{}", parsed.errors[1]);
    }

    #[test]
    fn json_amounts_are_read_by_the_models_reader() {
        let line = |amount: &str| {
            format!("{{\"subscription_id\":\"{SUB}\",\"unit_type\":\"a\",\"record_date\":\"2013-08-01\",\"amount\":{amount}}}\n")
        };
        let file: String = ["1.5e2", "\" 2.5 \"", "1000000000", "\"ten\"", "true", "null"]
            .iter()
            .map(|amount| line(amount))
            .collect();
        let parsed = parse(file.as_bytes(), Format::JsonLines);
        let amounts: Vec<String> = parsed.rows.iter().map(|row| row.amount.to_string()).collect();
        assert_eq!(amounts, ["150", "2.5"]);
        let reasons: Vec<(u64, &str)> = parsed.errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        assert_eq!(reasons[0].0, 3);
        assert!(
            reasons[0].1.starts_with("amount") && reasons[0].1.contains("integer digits"),
            "{reasons:?}"
        );
        assert!(reasons[1].1.starts_with("amount \"ten\""), "{reasons:?}");
        assert!(
            reasons[2].1.starts_with("amount: ") && reasons[2].1.contains("true"),
            "{reasons:?}"
        );
        assert_eq!(reasons[3], (6, "amount is missing"));
    }
}
