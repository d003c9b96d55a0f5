//! JSON-lines import files: one object per line with the column names as fields.

use serde::Deserialize;
use serde_json::value::RawValue;
use usage_models::{Amount, UsageDate};

use super::{Parsed, RawRow, RowError};

/// A JSON line, each field kept as its raw JSON text.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow<'a> {
    #[serde(borrow, default)]
    subscription_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unit_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    record_date: Option<&'a RawValue>,
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tracking_id: Option<&'a RawValue>,
}

/// The text of a JSON string or number (`None` for `null`), or why it is neither.
fn json_text(name: &str, value: Option<&RawValue>, numbers: bool) -> Result<Option<String>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = value.get();
    if text == "null" {
        return Ok(None);
    }
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text)
            .map(Some)
            .map_err(|_| format!("{name} is not a valid JSON string"));
    }
    if numbers && text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(Some(text.to_string()));
    }
    Err(format!(
        "{name} must be a {}, not {}",
        if numbers { "number or a string" } else { "string" },
        text.chars().take(40).collect::<String>()
    ))
}

/// Checks every line of a JSON-lines file.
pub(super) fn parse(text: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    for (at, line) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = at as u64 + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            parsed.errors.push(RowError {
                line: line_no,
                reason: "is not valid UTF-8".to_string(),
            });
            continue;
        };
        let json: JsonRow<'_> = match serde_json::from_str(line) {
            Ok(json) => json,
            Err(e) => {
                let reason = e.to_string();
                // serde_json appends "at line 1 column N"; the column is useful, the line is not.
                let reason = reason.replace(" at line 1 column", " at column");
                parsed.errors.push(RowError {
                    line: line_no,
                    reason: format!("is not a JSON object with the import fields: {reason}"),
                });
                continue;
            }
        };
        let mut problems = Vec::new();
        let text_of = |problems: &mut Vec<String>, name: &str, value: Option<&RawValue>, numbers: bool| match json_text(
            name, value, numbers,
        ) {
            Ok(Some(text)) => Some(text),
            Ok(None) if name == "tracking_id" => None,
            Ok(None) => {
                problems.push(format!("{name} is missing"));
                None
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        let subscription_id = text_of(&mut problems, "subscription_id", json.subscription_id, false);
        let unit_type = text_of(&mut problems, "unit_type", json.unit_type, false);
        let record_date = text_of(&mut problems, "record_date", json.record_date, true);
        let amount = json.amount.filter(|raw| raw.get() != "null");
        if amount.is_none() {
            problems.push("amount is missing".to_string());
        }
        let tracking_id = text_of(&mut problems, "tracking_id", json.tracking_id, false);
        if !problems.is_empty() {
            parsed.errors.push(RowError {
                line: line_no,
                reason: problems.join("; "),
            });
            continue;
        }
        let record_date = record_date.unwrap_or_default();
        // Epoch milliseconds, as Kill Bill accepts them.
        let record_date = match record_date.parse::<i64>() {
            Ok(millis) => match chrono::DateTime::from_timestamp_millis(millis) {
                Some(at) => UsageDate::Instant(at).to_string(),
                None => record_date,
            },
            Err(_) => record_date,
        };
        let raw = RawRow {
            subscription_id: subscription_id.as_deref().unwrap_or(""),
            unit_type: unit_type.as_deref().unwrap_or(""),
            record_date: &record_date,
            amount: amount.map_or_else(|| Err("amount is missing".to_string()), amount_of_json),
            tracking_id: tracking_id.as_deref(),
        };
        match raw.check(line_no) {
            Ok(row) => parsed.rows.push(row),
            Err(e) => parsed.errors.push(e),
        }
    }
    parsed
}

/// The amount of a JSON line, read by `usage-models`' own reader of amounts (a JSON number,
/// exactly from its text, or a string holding one), as every amount on the wire is.
fn amount_of_json(raw: &RawValue) -> Result<Amount, String> {
    serde_json::from_str::<Amount>(raw.get()).map_err(|e| {
        let message = e.to_string();
        // The reader names the amount, except when the value is not a number or a string.
        if message.starts_with("amount") {
            message
        } else {
            format!("amount: {message}")
        }
    })
}
