//! CSV import files: a header line naming the columns, in any order.

use usage_models::Amount;

use super::{Parsed, RawRow, RowError, COLUMNS};

/// Checks every row of a CSV file. Spaces around names and fields are ignored (`str::trim`,
/// field by field: the reader's own trimming copies every record).
pub(super) fn parse(text: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text);
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(e) => {
            parsed.errors.push(RowError {
                line: 1,
                reason: format!("cannot read the header: {}", csv_reason(&e)),
            });
            return parsed;
        }
    };
    // The field of each of COLUMNS, by its position in COLUMNS.
    let mut index: [Option<usize>; COLUMNS.len()] = [None; COLUMNS.len()];
    for (at, name) in header.iter().enumerate() {
        let name = name.trim().trim_start_matches('\u{feff}');
        let Some(column) = COLUMNS.iter().position(|c| *c == name) else {
            parsed.errors.push(RowError {
                line: 1,
                reason: format!("unknown column {name:?} in the header (expected {})", COLUMNS.join(",")),
            });
            continue;
        };
        if index[column].replace(at).is_some() {
            parsed.errors.push(RowError {
                line: 1,
                reason: format!("column {name:?} appears twice in the header"),
            });
        }
    }
    let missing: Vec<&str> = COLUMNS[..4]
        .iter()
        .zip(index)
        .filter(|(_, at)| at.is_none())
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        parsed.errors.push(RowError {
            line: 1,
            reason: format!(
                "the header lacks {} (expected subscription_id,unit_type,record_date,amount[,tracking_id])",
                missing.join(", ")
            ),
        });
    }
    if !parsed.errors.is_empty() {
        return parsed;
    }
    let width = header.len();
    // The csv crate does not count blank lines in its line numbers: count them from the
    // byte offset instead.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(at, _)| at + 1),
        )
        .collect();
    let line_of = |position: Option<&csv::Position>| -> u64 {
        position
            .map(|p| {
                // A record's position is where the previous one ended: skip blank lines.
                let mut at = p.byte() as usize;
                while text.get(at).is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    at += 1;
                }
                line_starts.partition_point(|start| *start <= at) as u64
            })
            .unwrap_or(0)
    };
    // One record, read into again and again.
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = line_of(e.position());
                parsed.errors.push(RowError {
                    line,
                    reason: csv_reason(&e),
                });
                continue;
            }
        }
        let line = line_of(record.position());
        if record.len() != width {
            parsed.errors.push(RowError {
                line,
                reason: format!("has {} fields, the header has {width}", record.len()),
            });
            continue;
        }
        let field = |column: usize| index[column].and_then(|at| record.get(at)).map(str::trim);
        let raw = RawRow {
            subscription_id: field(0).unwrap_or(""),
            unit_type: field(1).unwrap_or(""),
            record_date: field(2).unwrap_or(""),
            amount: amount_of_text(field(3).unwrap_or("")),
            tracking_id: field(4),
        };
        match raw.check(line) {
            Ok(row) => parsed.rows.push(row),
            Err(e) => parsed.errors.push(e),
        }
    }
    parsed
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_string(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("has {len} fields, the header has {expected_len}")
        }
        csv::ErrorKind::Io(e) => format!("cannot be read: {e}"),
        _ => "is not valid CSV".to_string(),
    }
}

/// The amount of a CSV field, checked.
fn amount_of_text(text: &str) -> Result<Amount, String> {
    if text.is_empty() {
        return Err("amount is empty".to_string());
    }
    text.parse::<Amount>().map_err(|e| format!("amount {}", e.reason()))
}
