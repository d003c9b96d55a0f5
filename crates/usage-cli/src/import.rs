//! Reading an import file, validating every row, and cutting it into requests with
//! deterministic tracking ids.
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

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue;
use usage_meter::derive_tracking_id;
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UsageDate};

/// The most rows in one request.
pub const MAX_ROWS_PER_REQUEST: usize = usage_meter::MAX_RECORDS_PER_REQUEST;

/// The longest namespace (`--id-prefix`) of derived tracking ids.
pub const MAX_ID_PREFIX_CHARS: usize = 48;

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

/// One valid row of an import file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line of the file the row starts on (from 1, the header being line 1 of a CSV file).
    pub line: u64,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The unit type.
    pub unit_type: UnitType,
    /// When the usage happened.
    pub record_date: UsageDate,
    /// How much.
    pub amount: Amount,
    /// The row's own tracking id, when the file has one for it.
    pub tracking_id: Option<TrackingId>,
}

/// A row that cannot be imported: its line and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The line (from 1); 0 for a problem with the whole file.
    pub line: u64,
    /// Why.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
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
        Format::Csv => parse_csv(&text),
        Format::JsonLines => parse_json_lines(&text),
    }
}

fn parse_csv(text: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
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
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (at, name) in header.iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}');
        if !COLUMNS.contains(&name) {
            parsed.errors.push(RowError {
                line: 1,
                reason: format!("unknown column {name:?} in the header (expected {})", COLUMNS.join(",")),
            });
            continue;
        }
        if index
            .insert(COLUMNS[COLUMNS.iter().position(|c| *c == name).unwrap_or(0)], at)
            .is_some()
        {
            parsed.errors.push(RowError {
                line: 1,
                reason: format!("column {name:?} appears twice in the header"),
            });
        }
    }
    let missing: Vec<&str> = COLUMNS[..4]
        .iter()
        .copied()
        .filter(|c| !index.contains_key(c))
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
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = line_of(e.position());
                parsed.errors.push(RowError {
                    line,
                    reason: csv_reason(&e),
                });
                continue;
            }
        };
        let line = line_of(record.position());
        if record.len() != width {
            parsed.errors.push(RowError {
                line,
                reason: format!("has {} fields, the header has {width}", record.len()),
            });
            continue;
        }
        let field = |name: &str| index.get(name).and_then(|at| record.get(*at));
        let raw = RawRow {
            subscription_id: field("subscription_id").unwrap_or(""),
            unit_type: field("unit_type").unwrap_or(""),
            record_date: field("record_date").unwrap_or(""),
            amount: field("amount").unwrap_or(""),
            tracking_id: field("tracking_id"),
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

/// A row as read, before any check.
struct RawRow<'a> {
    subscription_id: &'a str,
    unit_type: &'a str,
    record_date: &'a str,
    amount: &'a str,
    tracking_id: Option<&'a str>,
}

impl RawRow<'_> {
    /// Checks every field; reports all the bad fields of the row at once.
    fn check(&self, line: u64) -> Result<Row, RowError> {
        let mut problems = Vec::new();
        let subscription_id = if self.subscription_id.is_empty() {
            problems.push("subscription_id is empty".to_string());
            None
        } else {
            self.subscription_id
                .parse::<SubscriptionId>()
                .map_err(|_| problems.push(format!("subscription_id {:?} is not a UUID", self.subscription_id)))
                .ok()
        };
        let unit_type = UnitType::new(self.unit_type)
            .map_err(|e| problems.push(format!("unit_type {}", e.reason())))
            .ok();
        let record_date = if self.record_date.is_empty() {
            problems.push("record_date is empty".to_string());
            None
        } else {
            self.record_date
                .parse::<UsageDate>()
                .map_err(|_| {
                    problems.push(format!(
                        "record_date {:?} is neither a date (2013-08-01) nor an ISO-8601 date-time (2013-08-01T06:30:00Z)",
                        self.record_date
                    ))
                })
                .ok()
        };
        let amount = if self.amount.is_empty() {
            problems.push("amount is empty".to_string());
            None
        } else {
            self.amount
                .parse::<Amount>()
                .map_err(|e| problems.push(format!("amount {}", e.reason())))
                .ok()
        };
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

/// A JSON line, with the amount kept as its exact text.
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

fn parse_json_lines(text: &[u8]) -> Parsed {
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
        let mut text_of = |name: &str, value: Option<&RawValue>, numbers: bool| -> Option<String> {
            match json_text(name, value, numbers) {
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
            }
        };
        let subscription_id = text_of("subscription_id", json.subscription_id, false);
        let unit_type = text_of("unit_type", json.unit_type, false);
        let record_date = text_of("record_date", json.record_date, true);
        let amount = text_of("amount", json.amount, true);
        let tracking_id = text_of("tracking_id", json.tracking_id, false);
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
            amount: amount.as_deref().unwrap_or(""),
            tracking_id: tracking_id.as_deref(),
        };
        match raw.check(line_no) {
            Ok(row) => parsed.rows.push(row),
            Err(e) => parsed.errors.push(e),
        }
    }
    parsed
}

/// Reads an import file from a byte offset, complete lines only, for imports that resume
/// (`--state`) and follow a growing file (`--follow`).
///
/// A CSV file's header is read once, from the start of the file, and applied to every chunk.
/// Line numbers count from the start of the file. A record spanning lines (a quoted field with
/// a newline) is not supported: no valid field has one.
#[derive(Debug)]
pub struct Tail {
    file: std::fs::File,
    format: Format,
    /// The CSV header line, newline included.
    header: Option<Vec<u8>>,
    offset: u64,
    /// Lines before `offset`.
    line: u64,
}

/// A chunk of complete lines that [`Tail::next_chunk`] read: its rows and errors (lines from
/// the start of the file) and the offset just past it.
#[derive(Debug)]
pub struct TailChunk {
    /// The rows and the invalid ones.
    pub parsed: Parsed,
    /// Where the next chunk starts.
    pub end: u64,
    /// The line number of the chunk's first line.
    first_line: u64,
    /// The offset just past each of its lines.
    line_ends: Vec<u64>,
}

impl TailChunk {
    /// The offset just past `line` (a line of this chunk); the chunk's end for any other.
    pub fn end_of_line(&self, line: u64) -> u64 {
        line.checked_sub(self.first_line)
            .and_then(|at| self.line_ends.get(at as usize))
            .copied()
            .unwrap_or(self.end)
    }
}

impl Tail {
    /// Opens `path` to read it from `offset` (0: the start; after the header for CSV).
    /// Fails when the file is shorter than `offset` (truncated or replaced).
    pub fn open(path: &std::path::Path, format: Format, offset: u64) -> Result<Tail, RowError> {
        let fail = |reason: String| RowError { line: 0, reason };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
        let length = file.metadata().map_err(|e| fail(format!("cannot read it: {e}")))?.len();
        if length < offset {
            return Err(fail(format!(
                "it has {length} bytes, fewer than the {offset} already taken: it was truncated or replaced \
                 (import a new file with another --state directory)"
            )));
        }
        let mut tail = Tail {
            file,
            format,
            header: None,
            offset: 0,
            line: 0,
        };
        tail.read_header()?;
        if offset > tail.offset {
            tail.skip_to(offset).map_err(fail)?;
        }
        Ok(tail)
    }

    /// Where the next chunk starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads a CSV file's header (line 1) once it is complete; checks it.
    fn read_header(&mut self) -> Result<(), RowError> {
        if self.format != Format::Csv || self.header.is_some() {
            return Ok(());
        }
        let mut header = Vec::new();
        let mut block = [0u8; 4096];
        let complete = loop {
            let read = self
                .read_at(header.len() as u64, &mut block)
                .map_err(|reason| RowError { line: 0, reason })?;
            match block[..read].iter().position(|b| *b == b'\n') {
                Some(end) => {
                    header.extend_from_slice(&block[..=end]);
                    break true;
                }
                None if read == 0 => break false,
                None => header.extend_from_slice(&block[..read]),
            }
        };
        if !complete {
            return Ok(());
        }
        let checked = parse(header.as_slice(), Format::Csv);
        if let Some(error) = checked.errors.into_iter().next() {
            return Err(error);
        }
        self.offset = header.len() as u64;
        self.line = 1;
        self.header = Some(header);
        Ok(())
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> Result<usize, String> {
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::Start(at))
            .and_then(|_| self.file.read(buf))
            .map_err(|e| format!("cannot read it: {e}"))
    }

    /// Moves to `offset`, counting the lines before it.
    fn skip_to(&mut self, offset: u64) -> Result<(), String> {
        let mut buf = vec![0u8; 1 << 20];
        while self.offset < offset {
            let want = buf.len().min((offset - self.offset) as usize);
            let read = self.read_at(self.offset, &mut buf[..want])?;
            if read == 0 {
                return Err(format!("it ends before {offset} bytes"));
            }
            self.line += buf[..read].iter().filter(|b| **b == b'\n').count() as u64;
            self.offset += read as u64;
        }
        Ok(())
    }

    /// Reads the complete lines from the current offset, at most about `max_bytes` of them;
    /// `None` when there is no complete line yet. With `to_end`, a last line without its
    /// newline at the end of the file counts as complete (a finished file).
    pub fn next_chunk(&mut self, max_bytes: usize, to_end: bool) -> Result<Option<TailChunk>, RowError> {
        let fail = |reason: String| RowError { line: 0, reason };
        // A CSV header not complete when opened: try again.
        self.read_header()?;
        if self.format == Format::Csv && self.header.is_none() {
            return Ok(None);
        }
        let length = self
            .file
            .metadata()
            .map_err(|e| fail(format!("cannot read it: {e}")))?
            .len();
        if length < self.offset {
            return Err(fail(format!(
                "it shrank to {length} bytes, fewer than the {} already taken: it was truncated or replaced",
                self.offset
            )));
        }
        let mut buf = vec![0u8; max_bytes.max(1)];
        let read = self.read_at(self.offset, &mut buf).map_err(fail)?;
        buf.truncate(read);
        let take = match buf.iter().rposition(|b| *b == b'\n') {
            Some(last) => last + 1,
            None if to_end && read > 0 && read < max_bytes => read,
            None if read >= max_bytes => {
                return Err(RowError {
                    line: self.line + 1,
                    reason: format!("is longer than {max_bytes} bytes"),
                })
            }
            None => return Ok(None),
        };
        buf.truncate(take);
        let (parsed, shift) = match &self.header {
            Some(header) => {
                let mut text = header.clone();
                text.extend_from_slice(&buf);
                // Line 2 of the text is the chunk's first line.
                (parse(text.as_slice(), Format::Csv), self.line - 1)
            }
            None => (parse(buf.as_slice(), self.format), self.line),
        };
        let mut parsed = parsed;
        for row in &mut parsed.rows {
            row.line += shift;
        }
        for error in &mut parsed.errors {
            if error.line > 0 {
                error.line += shift;
            }
        }
        let start = self.offset;
        let mut line_ends: Vec<u64> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(at, _)| start + at as u64 + 1)
            .collect();
        if buf.last() != Some(&b'\n') {
            line_ends.push(start + take as u64);
        }
        let first_line = self.line + 1;
        self.line += buf.iter().filter(|b| **b == b'\n').count() as u64;
        self.offset += take as u64;
        Ok(Some(TailChunk {
            parsed,
            end: self.offset,
            first_line,
            line_ends,
        }))
    }
}

/// One request of an import: a record with its tracking id, and where its rows come from.
#[derive(Clone, Debug)]
pub struct Chunk {
    /// The body of the request, tracking id included.
    pub record: SubscriptionUsageRecord,
    /// How many rows it carries.
    pub rows: usize,
    /// The line of its first row.
    pub first_line: u64,
    /// Whether the tracking id came from the file (`false`: derived from the content).
    pub explicit_tracking_id: bool,
}

impl Chunk {
    /// The tracking id (always set).
    pub fn tracking_id(&self) -> &str {
        self.record.tracking_id().map(TrackingId::as_str).unwrap_or_default()
    }
}

/// Cuts `rows` into requests:
/// - rows with their own tracking id go together per (subscription, tracking id), in one
///   request with that id (more than `max_rows` rows sharing one tracking id is refused, with
///   the line of the first row past the limit);
/// - the other rows are grouped per subscription, in file order, into requests of at most
///   `max_rows` rows, each with a tracking id derived from `prefix`, the subscription, the
///   request's index within the subscription and the canonical text of its rows
///   ([`usage_meter::derive_tracking_id`]).
///
/// Requests come out in the order their first row appears in the file.
pub fn plan(rows: &[Row], prefix: &str, max_rows: usize) -> Result<Vec<Chunk>, Vec<RowError>> {
    let max_rows = max_rows.max(1);
    let mut errors = Vec::new();
    if prefix.chars().count() > MAX_ID_PREFIX_CHARS || prefix.chars().any(|c| c.is_control()) {
        errors.push(RowError {
            line: 0,
            reason: format!(
                "the tracking id prefix must be at most {MAX_ID_PREFIX_CHARS} characters without control characters"
            ),
        });
        return Err(errors);
    }
    // Groups keyed by (subscription, explicit tracking id), in order of first appearance.
    let mut order: Vec<(SubscriptionId, Option<TrackingId>)> = Vec::new();
    let mut groups: HashMap<(SubscriptionId, Option<TrackingId>), Vec<&Row>> = HashMap::new();
    for row in rows {
        let key = (row.subscription_id, row.tracking_id.clone());
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        group.push(row);
    }
    let mut chunks: Vec<Chunk> = Vec::new();
    for key in &order {
        let group = &groups[key];
        match &key.1 {
            Some(tracking_id) => {
                if group.len() > max_rows {
                    errors.push(RowError {
                        line: group[max_rows].line,
                        reason: format!(
                            "tracking_id {tracking_id:?} has {} rows for subscription {}; rows sharing a tracking id \
                             go in one request, of at most {max_rows} rows",
                            group.len(),
                            key.0
                        ),
                    });
                    continue;
                }
                match build_chunk(key.0, tracking_id.clone(), group, true) {
                    Ok(chunk) => chunks.push(chunk),
                    Err(e) => errors.push(e),
                }
            }
            None => {
                for (index, part) in group.chunks(max_rows).enumerate() {
                    let content = part
                        .iter()
                        .map(|row| (row.unit_type.as_str(), row.record_date, row.amount));
                    let built = derive_tracking_id(prefix, key.0, index, content)
                        .map_err(|e| RowError {
                            line: part[0].line,
                            reason: format!("cannot derive the tracking id: {e}"),
                        })
                        .and_then(|tracking_id| build_chunk(key.0, tracking_id, part, false));
                    match built {
                        Ok(chunk) => chunks.push(chunk),
                        Err(e) => errors.push(e),
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    chunks.sort_by_key(|chunk| chunk.first_line);
    Ok(chunks)
}

fn build_chunk(
    subscription: SubscriptionId,
    tracking_id: TrackingId,
    rows: &[&Row],
    explicit: bool,
) -> Result<Chunk, RowError> {
    let mut builder = SubscriptionUsageRecord::builder(subscription).tracking_id(tracking_id.as_str());
    for row in rows {
        builder = builder.record(row.unit_type.as_str(), row.record_date, row.amount);
    }
    let first_line = rows.first().map(|row| row.line).unwrap_or(0);
    // Every value was validated and a group is never empty, so this only fails on a bug.
    let record = builder.build().map_err(|e| RowError {
        line: first_line,
        reason: format!("cannot build the request: {e}"),
    })?;
    Ok(Chunk {
        record,
        rows: rows.len(),
        first_line,
        explicit_tracking_id: explicit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
    const SUB2: &str = "0e1a4c7a-1111-4d47-9a7e-1f3c2c8f4a11";

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

    fn rows(n: usize, sub: &str) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                line: i as u64 + 2,
                subscription_id: sub.parse().unwrap(),
                unit_type: UnitType::new("a").unwrap(),
                record_date: "2013-08-01".parse().unwrap(),
                amount: Amount::from(i as u32),
                tracking_id: None,
            })
            .collect()
    }

    #[test]
    fn chunks_are_bounded_deterministic_and_per_subscription() {
        let mut all = rows(2_500, SUB);
        let mut other = rows(10, SUB2);
        for row in &mut other {
            row.line += 10_000;
        }
        all.extend(other);
        let chunks = plan(&all, "kbu", MAX_ROWS_PER_REQUEST).unwrap();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.rows).collect();
        assert_eq!(sizes, [1000, 1000, 500, 10]);
        assert_eq!(chunks[3].record.subscription_id().to_string(), SUB2);
        let ids: Vec<&str> = chunks.iter().map(Chunk::tracking_id).collect();
        assert!(ids.iter().all(|id| id.len() <= 128 && id.starts_with("kbu-")));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4);
        // A prefix of the file whose chunks are whole keeps the same ids.
        let prefix = plan(&all[..2_000], "kbu", MAX_ROWS_PER_REQUEST).unwrap();
        assert_eq!(prefix[0].tracking_id(), ids[0]);
        assert_eq!(prefix[1].tracking_id(), ids[1]);
        // Another namespace, other ids.
        let other = plan(&all, "other", MAX_ROWS_PER_REQUEST).unwrap();
        assert_ne!(other[0].tracking_id(), ids[0]);
        // "10" and "10.0" are the same amount.
        let mut a = rows(1, SUB);
        let mut b = rows(1, SUB);
        a[0].amount = "10".parse().unwrap();
        b[0].amount = "10.0".parse().unwrap();
        assert_eq!(
            plan(&a, "", 1000).unwrap()[0].tracking_id(),
            plan(&b, "", 1000).unwrap()[0].tracking_id()
        );
    }

    #[test]
    fn a_tail_takes_whole_lines_numbers_them_from_the_start_and_resumes() {
        let path = std::env::temp_dir().join(format!(
            "kb-usage-tail-{}-{}.csv",
            std::process::id(),
            fastrand::u64(..)
        ));
        let header = "subscription_id,unit_type,record_date,amount\n";
        let good = |day: u32| format!("{SUB},gallons,2013-08-{day:02},1\n");
        std::fs::write(&path, format!("{header}{}bad\n{}{SUB},gall", good(1), good(2))).unwrap();
        let mut tail = Tail::open(&path, Format::Csv, 0).unwrap();
        let chunk = tail.next_chunk(1 << 20, false).unwrap().unwrap();
        let lines: Vec<u64> = chunk.parsed.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        assert_eq!(chunk.parsed.errors[0].line, 3);
        // The half-written line is not taken; the offset stops before it.
        let taken = header.len() + good(1).len() + "bad\n".len() + good(2).len();
        assert_eq!(chunk.end, taken as u64);
        assert_eq!(chunk.end_of_line(2), (header.len() + good(1).len()) as u64);
        assert!(tail.next_chunk(1 << 20, false).unwrap().is_none());
        // Completed, and read again from the offset by a new run: line 5.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, b"ons,2013-08-03,1\n").unwrap();
        let mut resumed = Tail::open(&path, Format::Csv, chunk.end).unwrap();
        let next = resumed.next_chunk(1 << 20, false).unwrap().unwrap();
        assert_eq!(next.parsed.rows.len(), 1);
        assert_eq!(next.parsed.rows[0].line, 5);
        // A file shorter than what was taken is refused.
        std::fs::write(&path, header).unwrap();
        assert!(Tail::open(&path, Format::Csv, chunk.end)
            .unwrap_err()
            .reason
            .contains("truncated"));
        assert!(resumed
            .next_chunk(1 << 20, false)
            .unwrap_err()
            .reason
            .contains("truncated"));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn explicit_tracking_ids_are_respected() {
        let mut all = rows(6, SUB);
        all[1].tracking_id = Some(TrackingId::new("t-1").unwrap());
        all[3].tracking_id = Some(TrackingId::new("t-1").unwrap());
        all[4].tracking_id = Some(TrackingId::new("t-2").unwrap());
        let chunks = plan(&all, "kbu", 1000).unwrap();
        let summary: Vec<(&str, usize)> = chunks.iter().map(|c| (c.tracking_id(), c.rows)).collect();
        assert_eq!(summary.len(), 3);
        assert!(summary[0].0.starts_with("kbu-0-"));
        assert_eq!(summary[0].1, 3);
        assert_eq!(summary[1], ("t-1", 2));
        assert_eq!(summary[2], ("t-2", 1));
        let mut big = rows(3, SUB);
        for row in &mut big {
            row.tracking_id = Some(TrackingId::new("t").unwrap());
        }
        let errors = plan(&big, "kbu", 2).unwrap_err();
        assert_eq!(errors[0].line, 4);
    }
}
