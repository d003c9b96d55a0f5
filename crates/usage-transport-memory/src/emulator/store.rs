//! The emulator's rows: per subscription, per unit type, a `BTreeMap` keyed by (instant, seq),
//! so that a window query costs in proportion to the rows in the window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// One stored row's payload (the unit type and date are its keys).
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) amount: Decimal,
    /// The tracking id and audit of the POST that stored it, shared by all of its rows.
    pub(crate) origin: Arc<Origin>,
}

/// What every row of one POST has in common: its tracking id and its audit headers.
#[derive(Debug)]
pub(crate) struct Origin {
    pub(crate) tracking_id: String,
    pub(crate) created_by: String,
    pub(crate) reason: Option<String>,
    pub(crate) comment: Option<String>,
}

/// A subscription: its tenant, its end, its rows and its tracking ids.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) tenant: Uuid,
    pub(crate) effective_end: Option<DateTime<Utc>>,
    pub(crate) units: HashMap<String, BTreeMap<(DateTime<Utc>, u64), Row>>,
    pub(crate) tracking_ids: HashSet<String>,
}

impl Subscription {
    pub(crate) fn new(tenant: Uuid, effective_end: Option<DateTime<Utc>>) -> Self {
        Subscription {
            tenant,
            effective_end,
            units: HashMap::new(),
            tracking_ids: HashSet::new(),
        }
    }

    /// The exact sum of each unit type (or of `only`) over `[start, end)`, by unit type.
    /// `None` when a sum overflows.
    pub(crate) fn roll_up(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        only: Option<&str>,
    ) -> Option<BTreeMap<&str, Decimal>> {
        let mut sums = BTreeMap::new();
        if end <= start {
            return Some(sums);
        }
        let units: Vec<(&String, &BTreeMap<_, Row>)> = match only {
            Some(unit) => self.units.get_key_value(unit).into_iter().collect(),
            None => self.units.iter().collect(),
        };
        for (unit, rows) in units {
            let window = (Bound::Included((start, 0)), Bound::Excluded((end, 0)));
            let mut sum: Option<Decimal> = None;
            for row in rows.range(window).map(|(_, row)| row) {
                sum = Some(match sum {
                    Some(total) => total.checked_add(row.amount)?,
                    None => row.amount,
                });
            }
            if let Some(sum) = sum {
                sums.insert(unit.as_str(), sum);
            }
        }
        Some(sums)
    }
}

/// Every subscription of every tenant.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) subscriptions: HashMap<Uuid, Subscription>,
    pub(crate) next_seq: u64,
    pub(crate) rows: usize,
}

impl Store {
    /// Inserts the rows of one POST, (unit type, date, amount), in order, all under `origin`
    /// (the caller holds the write lock and has checked everything).
    pub(crate) fn insert<'r>(
        &mut self,
        subscription: Uuid,
        origin: Origin,
        rows: impl IntoIterator<Item = (&'r str, DateTime<Utc>, Decimal)>,
    ) {
        let Some(target) = self.subscriptions.get_mut(&subscription) else {
            return;
        };
        target.tracking_ids.insert(origin.tracking_id.clone());
        let origin = Arc::new(origin);
        for (unit, at, amount) in rows {
            self.next_seq += 1;
            let units = match target.units.get_mut(unit) {
                Some(units) => units,
                None => target.units.entry(unit.to_string()).or_default(),
            };
            let row = Row {
                amount,
                origin: origin.clone(),
            };
            units.insert((at, self.next_seq), row);
            self.rows += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn insert(store: &mut Store, id: Uuid, unit: &str, at_text: &str, amount: &str) {
        let origin = Origin {
            tracking_id: "t".into(),
            created_by: "me".into(),
            reason: None,
            comment: None,
        };
        store.insert(id, origin, [(unit, at(at_text), amount.parse().unwrap())]);
    }

    #[test]
    fn half_open_windows_and_exact_sums() {
        let mut store = Store::default();
        let id = Uuid::new_v4();
        store.subscriptions.insert(id, Subscription::new(Uuid::new_v4(), None));
        insert(&mut store, id, "a", "2013-08-01T00:00:00Z", "1.5");
        insert(&mut store, id, "a", "2013-08-01T00:00:00Z", "2.5");
        insert(&mut store, id, "a", "2013-08-02T00:00:00Z", "10");
        insert(&mut store, id, "b", "2013-08-01T12:00:00Z", "0.000000001");
        let sub = &store.subscriptions[&id];
        let sums = sub
            .roll_up(at("2013-08-01T00:00:00Z"), at("2013-08-02T00:00:00Z"), None)
            .unwrap();
        assert_eq!(sums.len(), 2);
        assert_eq!(sums["a"].to_string(), "4.0");
        assert_eq!(sums["b"].to_string(), "0.000000001");
        let only = sub
            .roll_up(at("2013-08-01T00:00:00Z"), at("2013-08-03T00:00:00Z"), Some("a"))
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only["a"].to_string(), "14.0");
        let empty = sub
            .roll_up(at("2013-08-03T00:00:00Z"), at("2013-08-01T00:00:00Z"), None)
            .unwrap();
        assert!(empty.is_empty());
        assert_eq!(store.rows, 4);
    }
}
