//! Cutting rows into requests with deterministic tracking ids: the plan of `kb-usage import`,
//! which makes a re-run of the same rows send the same requests under the same ids, so that
//! Kill Bill refuses what it already stored and nothing is counted twice.
//!
//! ```
//! use usage_meter::plan::{plan, Row};
//! use usage_models::{Amount, UnitType};
//!
//! let row = |line, amount: u32| Row {
//!     line,
//!     subscription_id: "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap(),
//!     unit_type: UnitType::new("gallons").unwrap(),
//!     record_date: "2013-08-01".parse().unwrap(),
//!     amount: Amount::from(amount),
//!     tracking_id: None,
//! };
//! let rows: Vec<Row> = (0..3).map(|i| row(i + 2, i as u32)).collect();
//! let requests = plan(&rows, "kbu", 2).unwrap();
//! assert_eq!(requests.iter().map(|r| r.rows).collect::<Vec<_>>(), [2, 1]);
//! // The same rows always get the same tracking ids.
//! assert_eq!(requests[0].tracking_id(), plan(&rows, "kbu", 2).unwrap()[0].tracking_id());
//! ```

use std::collections::HashMap;
use std::fmt;

use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UsageDate};

use crate::derive_tracking_id;

/// The longest namespace of derived tracking ids.
pub const MAX_NAMESPACE_CHARS: usize = 48;

/// [`plan`] builds its requests on two threads when there are at least twice this many.
const PARALLEL_FROM_REQUESTS: usize = 32;

/// One row to send: a usage record of a subscription, maybe with its own tracking id, and
/// where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The line of its file (from 1), for messages.
    pub line: u64,
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// The unit type.
    pub unit_type: UnitType,
    /// When the usage happened.
    pub record_date: UsageDate,
    /// How much.
    pub amount: Amount,
    /// The row's own tracking id, if any.
    pub tracking_id: Option<TrackingId>,
}

/// A row that cannot be sent: its line and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The line (from 1); 0 for a problem with all of the rows.
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

/// One request: a record with its tracking id, and where its rows come from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Chunk {
    /// The body of the request, tracking id included.
    pub record: SubscriptionUsageRecord,
    /// How many rows it carries.
    pub rows: usize,
    /// The line of its first row.
    pub first_line: u64,
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
///   ([`derive_tracking_id`]).
///
/// Requests come out in the order their first row appears in the file.
pub fn plan(rows: &[Row], prefix: &str, max_rows: usize) -> Result<Vec<Chunk>, Vec<RowError>> {
    let max_rows = max_rows.max(1);
    let mut errors = Vec::new();
    if prefix.chars().count() > MAX_NAMESPACE_CHARS || prefix.chars().any(|c| c.is_control()) {
        errors.push(RowError {
            line: 0,
            reason: format!(
                "the tracking id prefix must be at most {MAX_NAMESPACE_CHARS} characters without control characters"
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
    // Each request, in group order.
    let mut requests: Vec<Request<'_>> = Vec::new();
    for key in &order {
        let group = &groups[key];
        match &key.1 {
            Some(tracking_id) if group.len() > max_rows => requests.push(Err(RowError {
                line: group[max_rows].line,
                reason: format!(
                    "tracking_id {tracking_id:?} has {} rows for subscription {}; rows sharing a tracking id \
                     go in one request, of at most {max_rows} rows",
                    group.len(),
                    key.0
                ),
            })),
            Some(tracking_id) => requests.push(Ok((key.0, Ok(tracking_id.clone()), group))),
            None => requests.extend(
                group
                    .chunks(max_rows)
                    .enumerate()
                    .map(|(index, part)| Ok((key.0, Err(index), part))),
            ),
        }
    }
    let build = |requests: &[Request<'_>]| {
        requests
            .iter()
            .map(|request| {
                let (subscription, id, part) = request.as_ref().map_err(Clone::clone)?;
                let tracking_id = match id {
                    Ok(tracking_id) => tracking_id.clone(),
                    Err(index) => {
                        let content = part
                            .iter()
                            .map(|row| (row.unit_type.as_str(), row.record_date, row.amount));
                        derive_tracking_id(prefix, *subscription, *index, content).map_err(|e| RowError {
                            line: part[0].line,
                            reason: format!("cannot derive the tracking id: {e}"),
                        })?
                    }
                };
                build_chunk(*subscription, tracking_id, part)
            })
            .collect::<Vec<_>>()
    };
    // Hashing and building are the cost: many requests are built in two halves at once.
    let built = if requests.len() >= 2 * PARALLEL_FROM_REQUESTS {
        let (first, second) = requests.split_at(requests.len() / 2);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| build(second));
            let mut built = build(first);
            built.extend(second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
            built
        })
    } else {
        build(&requests)
    };
    let mut chunks: Vec<Chunk> = Vec::with_capacity(built.len());
    for request in built {
        match request {
            Ok(chunk) => chunks.push(chunk),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    chunks.sort_by_key(|chunk| chunk.first_line);
    Ok(chunks)
}

/// A request to build: its subscription, its own tracking id or its index among the derived
/// ones of its subscription, and its rows; or why it cannot be sent.
type Request<'r> = Result<(SubscriptionId, Result<TrackingId, usize>, &'r [&'r Row]), RowError>;

fn build_chunk(subscription: SubscriptionId, tracking_id: TrackingId, rows: &[&Row]) -> Result<Chunk, RowError> {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_RECORDS_PER_REQUEST as MAX_ROWS_PER_REQUEST;

    const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";
    const SUB2: &str = "0e1a4c7a-1111-4d47-9a7e-1f3c2c8f4a11";

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
    fn many_requests_built_in_two_halves_come_out_whole_and_in_order() {
        let all = rows(301, SUB);
        let requests = 151;
        assert!(requests >= 2 * PARALLEL_FROM_REQUESTS);
        let chunks = plan(&all, "kbu", 2).unwrap();
        assert_eq!(chunks.len(), requests);
        for (index, chunk) in chunks.iter().enumerate() {
            let part = &all[2 * index..(2 * index + 2).min(all.len())];
            assert_eq!(chunk.first_line, part[0].line);
            assert_eq!(chunk.rows, part.len());
            let content = part
                .iter()
                .map(|row| (row.unit_type.as_str(), row.record_date, row.amount));
            let id = derive_tracking_id("kbu", part[0].subscription_id, index, content).unwrap();
            assert_eq!(chunk.tracking_id(), id.as_str());
        }
        // A refusal among them is reported, and nothing is planned.
        let mut refused = rows(301, SUB);
        for row in &mut refused[250..253] {
            row.tracking_id = Some(TrackingId::new("t").unwrap());
        }
        let errors = plan(&refused, "kbu", 2).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 254);
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
