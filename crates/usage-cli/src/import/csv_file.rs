//! CSV import files: a header line naming the columns, in any order.

use usage_models::Amount;

use super::{Parsed, RawRow, RowError, COLUMNS};

/// Rows of at least this many bytes are read in two halves at once.
const SPLIT_FROM_BYTES: usize = 1 << 20;

/// Checks every row of a CSV file. Spaces around names and fields are ignored (`str::trim`,
/// field by field: the reader's own trimming copies every record).
pub(super) fn parse(text: &[u8]) -> Parsed {
    parse_split_from(text, SPLIT_FROM_BYTES)
}

/// [`parse`], reading the rows in two halves at once when they are at least `split_from` bytes.
fn parse_split_from(text: &[u8], split_from: usize) -> Parsed {
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
    let body = reader.position().byte() as usize;
    let rows = |from: usize, to: usize| rows(&text[from..to], width, &index);
    let (mut first, mut second) = match cut(text, body, split_from) {
        // The second half on a thread of its own, at the same time as the first.
        Some(cut) => std::thread::scope(|scope| {
            let second = scope.spawn(|| rows(cut, text.len()));
            let first = rows(body, cut);
            let second = second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (first, second)
        }),
        None => (rows(body, text.len()), (Parsed::default(), 0)),
    };
    // Lines counted from the start of each part: from the start of the file now.
    let header_lines = newlines(&text[..body]);
    first.0.shift_lines(header_lines);
    second.0.shift_lines(header_lines + first.1);
    parsed.rows = first.0.rows;
    parsed.rows.extend(second.0.rows);
    parsed.errors = first.0.errors;
    parsed.errors.extend(second.0.errors);
    parsed
}

impl Parsed {
    /// Adds `lines` to every known line number (0 means unknown).
    fn shift_lines(&mut self, lines: u64) {
        let known = |line: &mut u64| {
            if *line > 0 {
                *line += lines;
            }
        };
        self.rows.iter_mut().for_each(|row| known(&mut row.line));
        self.errors.iter_mut().for_each(|error| known(&mut error.line));
    }
}

fn newlines(text: &[u8]) -> u64 {
    text.iter().filter(|b| **b == b'\n').count() as u64
}

/// The line numbers of the records of a text, counted as it is read (the csv crate does not
/// count blank lines in its own).
struct Lines<'a> {
    text: &'a [u8],
    /// How far newlines are counted.
    counted_to: usize,
    newlines: u64,
}

impl Lines<'_> {
    /// The line (from 1) of the record the reader reports at byte `at`: where the previous
    /// record ended, so blank lines are skipped first. 0 when unknown.
    fn of(&mut self, at: Option<u64>) -> u64 {
        let Some(at) = at else {
            return 0;
        };
        let mut at = (at as usize).min(self.text.len());
        while self.text.get(at).is_some_and(|b| *b == b'\n' || *b == b'\r') {
            at += 1;
        }
        if at < self.counted_to {
            // Never seen (records come in order); counted again from the start if it were.
            (self.counted_to, self.newlines) = (0, 0);
        }
        self.newlines += newlines(&self.text[self.counted_to..at]);
        self.counted_to = at;
        self.newlines + 1
    }
}

/// Where the rows in `text[body..]` are cut in two halves read at once: at the start of a
/// line near the middle, when they are at least `split_from` bytes and no quote comes before
/// the cut (so that it cannot fall inside a quoted field). `None`: read them in one piece.
fn cut(text: &[u8], body: usize, split_from: usize) -> Option<usize> {
    let length = text.len().checked_sub(body)?;
    if length < split_from.max(2) {
        return None;
    }
    let middle = body + length / 2;
    let cut = middle + text[middle..].iter().position(|b| *b == b'\n')? + 1;
    (cut < text.len() && !text[..cut].contains(&b'"')).then_some(cut)
}

/// Checks the rows of `text` (whole lines, after the header), numbering their lines from
/// 1; also says how many lines `text` has.
fn rows(text: &[u8], width: usize, index: &[Option<usize>; COLUMNS.len()]) -> (Parsed, u64) {
    let mut parsed = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let mut lines = Lines {
        text,
        counted_to: 0,
        newlines: 0,
    };
    let mut line_at = |position: Option<&csv::Position>| lines.of(position.map(csv::Position::byte));
    // One record, read into again and again.
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                parsed.errors.push(RowError {
                    line: line_at(e.position()),
                    reason: csv_reason(&e),
                });
                continue;
            }
        }
        let line = line_at(record.position());
        if record.len() != width {
            parsed.errors.push(RowError {
                line,
                reason: format!("has {} fields, the header has {width}", record.len()),
            });
            continue;
        }
        // By position in COLUMNS: subscription_id, unit_type, record_date, amount, tracking_id.
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
    let lines = lines.newlines + newlines(&text[lines.counted_to..]);
    (parsed, lines)
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

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

    /// Rows, errors and their lines, as compared between a read in one piece and in halves.
    fn summary(parsed: &Parsed) -> (Vec<(u64, String)>, Vec<String>) {
        let rows = parsed
            .rows
            .iter()
            .map(|row| {
                (
                    row.line,
                    format!("{} {} {}", row.unit_type, row.record_date, row.amount),
                )
            })
            .collect();
        (rows, parsed.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn halves_read_at_once_give_what_one_piece_gives() {
        let mut file = String::from("subscription_id, unit_type ,record_date,amount\n");
        for i in 0..200 {
            match i % 50 {
                7 => file.push_str("not-a-uuid,a,2013-08-01,1\n"),
                13 => file.push('\n'),
                29 => file.push_str(&format!("{SUB},a,2013-08-01\r\n")),
                _ => file.push_str(&format!("{SUB}, u{i} ,2013-08-{:02},{i}\n", 1 + i % 28)),
            }
        }
        let one = parse_split_from(file.as_bytes(), usize::MAX);
        let body = file.find('\n').unwrap() + 1;
        let at = cut(file.as_bytes(), body, 0).expect("a cut");
        assert!(at > body + 100 && at < file.len() - 100, "{at}");
        let halves = parse_split_from(file.as_bytes(), 0);
        assert_eq!(summary(&halves), summary(&one));
        assert_eq!(one.rows.len(), 200 - 12);
        assert_eq!(one.errors.len(), 8, "{:?}", one.errors);
        assert_eq!(one.errors[7].line, 181);
        assert_eq!(one.rows.last().unwrap().line, 201);
        // A quote before the middle: no cut (it could fall inside a quoted field).
        let quoted = file.replacen(" u1 ", "\"u1\"", 1);
        assert_eq!(cut(quoted.as_bytes(), body, 0), None);
        assert_eq!(
            summary(&parse_split_from(quoted.as_bytes(), 0)).0[1].1,
            "u1 2013-08-02 1"
        );
    }
}
