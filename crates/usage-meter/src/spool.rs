//! The durable spool: SQLite (through `rusqlite`, bundled) in WAL mode with
//! `synchronous=FULL`, so a commit survives a crash of the process and a power cut.
//!
//! Three tables:
//! - `events`: accepted events not yet in a batch;
//! - `batches`: sealed batches, each with its exact request body (tracking id included),
//!   written in the same transaction that removes its members from `events`, before its first
//!   attempt; a delivered batch is deleted, a refused one keeps its reason (a dead letter);
//! - `checkpoints`: a source's position (a file offset), committed with the events it covers;
//! - `given_tracking_ids`: the (subscription, tracking id) of the requests sealed as a caller
//!   gave them ([`Meter::record_requests_from_source`](crate::Meter::record_requests_from_source)),
//!   kept after delivery so that a tracking id names one request of a subscription only;
//! - `sequence`: the next batch id, so that batch ids (and the request ids made of them) are
//!   never reused within a spool.
//!
//! Every change the meter makes between two network events goes in one transaction (group
//! commit).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{params, Connection};
use usage_models::{Amount, SubscriptionId, SubscriptionUsageRecord, UnitType, UsageDate};

/// A spool that cannot be opened, read or written. The meter stops on it: what was committed
/// stays in the spool for the next start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// SQLite failed.
    #[error("spool: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value does not read back (the file was changed by something else).
    #[error("spool: corrupt {what}: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// An event as stored.
pub(crate) struct StoredEvent {
    pub id: i64,
    pub subscription: SubscriptionId,
    pub unit: UnitType,
    pub date: UsageDate,
    pub amount: Amount,
}

/// A sealed batch as stored.
pub(crate) struct StoredBatch {
    pub id: u64,
    pub record: SubscriptionUsageRecord,
    pub events: u64,
    pub dead_reason: Option<String>,
}

/// What a start finds in the spool.
pub(crate) struct Recovered {
    pub events: Vec<StoredEvent>,
    pub batches: Vec<StoredBatch>,
    pub checkpoints: HashMap<String, u64>,
    /// The first batch id never used.
    pub next_batch: u64,
}

/// One group commit.
#[derive(Default)]
pub(crate) struct Commit {
    /// New events: (id, subscription, unit, date, amount), written as text (only those not
    /// sealed in this commit).
    pub events: Vec<(i64, SubscriptionId, UnitType, UsageDate, Amount)>,
    /// New batches: (id, tracking id, events, body, member event ids written before).
    seals: Vec<(u64, String, u64, String, Vec<i64>)>,
    /// The (subscription, tracking id) of new batches sealed as a caller gave them.
    given: Vec<(String, String)>,
    /// Delivered batches.
    pub delivered: Vec<u64>,
    /// Refused batches and why.
    pub dead: Vec<(u64, String)>,
    /// A source's new position.
    pub checkpoint: Option<(String, u64)>,
    /// New events sealed before being written: their batch holds them, they are not written.
    sealed_new: HashSet<i64>,
}

impl Commit {
    /// Adds a sealed batch: its members written earlier are deleted from `events`, those of
    /// this commit are never written there.
    pub fn seal(&mut self, id: u64, tracking_id: String, events: u64, body: String, members: Vec<i64>) {
        // Event ids grow: every id from the first one of this commit on is in this commit.
        let first_new = self.events.first().map_or(i64::MAX, |event| event.0);
        let (new, written): (Vec<i64>, Vec<i64>) = members.into_iter().partition(|member| *member >= first_new);
        self.sealed_new.extend(new);
        self.seals.push((id, tracking_id, events, body, written));
    }

    /// Adds a batch sealed as a caller gave it, under its own tracking id (no members in
    /// `events`).
    pub fn seal_given(
        &mut self,
        id: u64,
        subscription: SubscriptionId,
        tracking_id: String,
        events: u64,
        body: String,
    ) {
        self.given.push((subscription.to_string(), tracking_id.clone()));
        self.seals.push((id, tracking_id, events, body, Vec::new()));
    }

    /// Whether it holds delivered marks and nothing else.
    pub fn holds_delivered_marks_only(&self) -> bool {
        !self.delivered.is_empty()
            && self.events.is_empty()
            && self.seals.is_empty()
            && self.dead.is_empty()
            && self.checkpoint.is_none()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.seals.is_empty()
            && self.delivered.is_empty()
            && self.dead.is_empty()
            && self.checkpoint.is_none()
    }
}

pub(crate) struct Spool {
    connection: Connection,
}

fn corrupt(what: &'static str, detail: impl ToString) -> SpoolError {
    SpoolError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

impl Spool {
    /// Opens (or creates) the spool at `path` and reads what it holds.
    pub fn open(path: &Path) -> Result<(Spool, Recovered), SpoolError> {
        let connection = Connection::open(path)?;
        // One meter per spool: the first one holds the file until it closes, a second one
        // fails to start (SQLITE_BUSY) instead of sending the same batches.
        connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 id INTEGER PRIMARY KEY, subscription TEXT NOT NULL, unit TEXT NOT NULL,
                 date TEXT NOT NULL, amount TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS batches (
                 id INTEGER PRIMARY KEY, tracking_id TEXT NOT NULL, events INTEGER NOT NULL,
                 body TEXT NOT NULL, dead_reason TEXT);
             CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS given_tracking_ids (
                 subscription TEXT NOT NULL, tracking_id TEXT NOT NULL, PRIMARY KEY (subscription, tracking_id));
             CREATE TABLE IF NOT EXISTS sequence (next_batch INTEGER NOT NULL);",
        )?;
        let mut events = Vec::new();
        {
            let mut query =
                connection.prepare("SELECT id, subscription, unit, date, amount FROM events ORDER BY id")?;
            let mut rows = query.query([])?;
            while let Some(row) = rows.next()? {
                let text = |at: usize| row.get::<_, String>(at);
                events.push(StoredEvent {
                    id: row.get(0)?,
                    subscription: text(1)?.parse().map_err(|e| corrupt("subscription", e))?,
                    unit: UnitType::new(text(2)?).map_err(|e| corrupt("unit type", e))?,
                    date: text(3)?.parse().map_err(|e| corrupt("date", e))?,
                    amount: text(4)?.parse().map_err(|e| corrupt("amount", e))?,
                });
            }
        }
        let mut batches = Vec::new();
        {
            let mut query = connection.prepare("SELECT id, events, body, dead_reason FROM batches ORDER BY id")?;
            let mut rows = query.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let events: i64 = row.get(1)?;
                let body: String = row.get(2)?;
                batches.push(StoredBatch {
                    id: id as u64,
                    record: serde_json::from_str(&body).map_err(|e| corrupt("batch", e))?,
                    events: events as u64,
                    dead_reason: row.get(3)?,
                });
            }
        }
        let mut checkpoints = HashMap::new();
        {
            let mut query = connection.prepare("SELECT name, position FROM checkpoints")?;
            let mut rows = query.query([])?;
            while let Some(row) = rows.next()? {
                let position: i64 = row.get(1)?;
                checkpoints.insert(row.get(0)?, position as u64);
            }
        }
        let next_batch: Option<i64> =
            connection.query_row("SELECT MAX(next_batch) FROM sequence", [], |row| row.get(0))?;
        let next_batch = (next_batch.unwrap_or(0) as u64).max(batches.last().map_or(0, |batch| batch.id + 1));
        Ok((
            Spool { connection },
            Recovered {
                events,
                batches,
                checkpoints,
                next_batch,
            },
        ))
    }

    /// Whether a batch of `subscription` was sealed under `tracking_id` as a caller gave it.
    pub fn has_tracking_id(&self, subscription: SubscriptionId, tracking_id: &str) -> Result<bool, SpoolError> {
        let mut query = self
            .connection
            .prepare_cached("SELECT 1 FROM given_tracking_ids WHERE subscription = ?1 AND tracking_id = ?2")?;
        Ok(query.exists(params![subscription.to_string(), tracking_id])?)
    }

    /// Writes `commit` in one transaction.
    pub fn write(&mut self, commit: &Commit) -> Result<(), SpoolError> {
        let transaction = self.connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO events (id, subscription, unit, date, amount) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (id, subscription, unit, date, amount) in &commit.events {
                if commit.sealed_new.contains(id) {
                    continue;
                }
                insert.execute(params![
                    id,
                    subscription.to_string(),
                    unit.as_str(),
                    date.to_string(),
                    amount.to_string()
                ])?;
            }
            let mut seal = transaction
                .prepare_cached("INSERT INTO batches (id, tracking_id, events, body) VALUES (?1, ?2, ?3, ?4)")?;
            let mut member = transaction.prepare_cached("DELETE FROM events WHERE id = ?1")?;
            for (id, tracking_id, events, body, members) in &commit.seals {
                seal.execute(params![*id as i64, tracking_id, *events as i64, body])?;
                for event in members {
                    member.execute([event])?;
                }
            }
            if let Some((last, ..)) = commit.seals.iter().max_by_key(|seal| seal.0) {
                transaction.execute("DELETE FROM sequence", [])?;
                transaction.execute("INSERT INTO sequence (next_batch) VALUES (?1)", [*last as i64 + 1])?;
            }
            let mut given = transaction
                .prepare_cached("INSERT INTO given_tracking_ids (subscription, tracking_id) VALUES (?1, ?2)")?;
            for (subscription, tracking_id) in &commit.given {
                given.execute(params![subscription, tracking_id])?;
            }
            let mut delivered = transaction.prepare_cached("DELETE FROM batches WHERE id = ?1")?;
            for id in &commit.delivered {
                delivered.execute([*id as i64])?;
            }
            let mut dead = transaction.prepare_cached("UPDATE batches SET dead_reason = ?2 WHERE id = ?1")?;
            for (id, reason) in &commit.dead {
                dead.execute(params![*id as i64, reason])?;
            }
            if let Some((name, position)) = &commit.checkpoint {
                transaction.execute(
                    "INSERT INTO checkpoints (name, position) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                    params![name, *position as i64],
                )?;
            }
        }
        transaction.commit()?;
        Ok(())
    }
}
