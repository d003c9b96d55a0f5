//! The body of `POST /1.0/kb/usages`.

use serde::{Deserialize, Serialize};

use crate::{Amount, Field, SubscriptionId, TrackingId, UnitType, UsageDate, ValidationError};

/// One dated amount of one unit.
///
/// ```
/// use usage_models::{Amount, UsageRecord};
///
/// let record = UsageRecord::new("2013-08-01".parse().unwrap(), Amount::from(10));
/// assert_eq!(
///     serde_json::to_string(&record).unwrap(),
///     r#"{"recordDate":"2013-08-01","amount":10}"#
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct UsageRecord {
    record_date: UsageDate,
    amount: Amount,
}

impl UsageRecord {
    /// A record of `amount` at `record_date`.
    pub fn new(record_date: UsageDate, amount: Amount) -> Self {
        UsageRecord { record_date, amount }
    }

    /// When the usage happened.
    pub fn record_date(&self) -> UsageDate {
        self.record_date
    }

    /// How much was used (zero and negative amounts are valid).
    pub fn amount(&self) -> Amount {
        self.amount
    }
}

/// The records of one unit type: at least one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, try_from = "RawUnitUsageRecord")]
pub struct UnitUsageRecord {
    unit_type: UnitType,
    usage_records: Vec<UsageRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawUnitUsageRecord {
    unit_type: UnitType,
    usage_records: Vec<UsageRecord>,
}

impl TryFrom<RawUnitUsageRecord> for UnitUsageRecord {
    type Error = ValidationError;
    fn try_from(raw: RawUnitUsageRecord) -> Result<Self, Self::Error> {
        UnitUsageRecord::new(raw.unit_type, raw.usage_records)
    }
}

impl UnitUsageRecord {
    /// The records of `unit_type`; refuses an empty list (Kill Bill answers 400 to it).
    pub fn new(unit_type: UnitType, usage_records: Vec<UsageRecord>) -> Result<Self, ValidationError> {
        if usage_records.is_empty() {
            return Err(ValidationError::new(
                Field::UsageRecords,
                format!("unit {unit_type:?} needs at least one usage record"),
            ));
        }
        Ok(UnitUsageRecord {
            unit_type,
            usage_records,
        })
    }

    /// The unit type.
    pub fn unit_type(&self) -> &UnitType {
        &self.unit_type
    }

    /// The records (never empty).
    pub fn usage_records(&self) -> &[UsageRecord] {
        &self.usage_records
    }
}

/// What `POST /1.0/kb/usages` records: usage of one subscription, by unit type, with an
/// optional tracking id. Valid by construction: at least one unit, each with at least one
/// record, every name and amount within Kill Bill's limits.
///
/// ```
/// use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
///
/// let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
/// let day = |s: &str| s.parse::<UsageDate>().unwrap();
/// let record = SubscriptionUsageRecord::builder(subscription)
///     .tracking_id("meter-2013-08-01")
///     .record("gallons", day("2013-08-01"), 10)
///     .record("gallons", day("2013-08-02T06:30:00Z"), "2.5")
///     .record("liters", day("2013-08-01"), 3)
///     .build()
///     .unwrap();
/// assert_eq!(record.unit_usage_records().len(), 2);
/// assert_eq!(
///     serde_json::to_string(&record).unwrap(),
///     concat!(
///         r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","trackingId":"meter-2013-08-01","#,
///         r#""unitUsageRecords":[{"unitType":"gallons","usageRecords":["#,
///         r#"{"recordDate":"2013-08-01","amount":10},"#,
///         r#"{"recordDate":"2013-08-02T06:30:00.000Z","amount":2.5}]},"#,
///         r#"{"unitType":"liters","usageRecords":[{"recordDate":"2013-08-01","amount":3}]}]}"#
///     )
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "RawSubscriptionUsageRecord"
)]
pub struct SubscriptionUsageRecord {
    subscription_id: SubscriptionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracking_id: Option<TrackingId>,
    unit_usage_records: Vec<UnitUsageRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSubscriptionUsageRecord {
    subscription_id: SubscriptionId,
    #[serde(default)]
    tracking_id: Option<String>,
    unit_usage_records: Vec<UnitUsageRecord>,
}

impl TryFrom<RawSubscriptionUsageRecord> for SubscriptionUsageRecord {
    type Error = ValidationError;
    fn try_from(raw: RawSubscriptionUsageRecord) -> Result<Self, Self::Error> {
        // The server treats an empty tracking id as an absent one.
        let tracking_id = match raw.tracking_id {
            Some(id) if !id.is_empty() => Some(TrackingId::new(id)?),
            _ => None,
        };
        SubscriptionUsageRecord::new(raw.subscription_id, tracking_id, raw.unit_usage_records)
    }
}

impl SubscriptionUsageRecord {
    /// A record of `units`; refuses an empty list (Kill Bill answers 400 to it).
    pub fn new(
        subscription_id: SubscriptionId,
        tracking_id: Option<TrackingId>,
        unit_usage_records: Vec<UnitUsageRecord>,
    ) -> Result<Self, ValidationError> {
        if unit_usage_records.is_empty() {
            return Err(ValidationError::new(
                Field::UnitUsageRecords,
                "needs at least one unit".to_string(),
            ));
        }
        Ok(SubscriptionUsageRecord {
            subscription_id,
            tracking_id,
            unit_usage_records,
        })
    }

    /// Starts a builder that groups records by unit type and reports the first invalid value
    /// with its position.
    pub fn builder(subscription_id: SubscriptionId) -> SubscriptionUsageRecordBuilder {
        SubscriptionUsageRecordBuilder {
            subscription_id,
            tracking_id: None,
            units: Vec::new(),
            error: None,
        }
    }

    /// The subscription.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }

    /// The tracking id, if one was set.
    pub fn tracking_id(&self) -> Option<&TrackingId> {
        self.tracking_id.as_ref()
    }

    /// The same record with `tracking_id` set.
    pub fn with_tracking_id(mut self, tracking_id: TrackingId) -> Self {
        self.tracking_id = Some(tracking_id);
        self
    }

    /// The units (never empty).
    pub fn unit_usage_records(&self) -> &[UnitUsageRecord] {
        &self.unit_usage_records
    }

    /// How many usage records there are across all units.
    pub fn record_count(&self) -> usize {
        self.unit_usage_records
            .iter()
            .map(|unit| unit.usage_records.len())
            .sum()
    }
}

/// Builds a [`SubscriptionUsageRecord`]; see [`SubscriptionUsageRecord::builder`].
///
/// Records of the same unit type are grouped in the order units first appear. The first
/// invalid value is kept and returned by [`build`](Self::build) with its path.
#[derive(Debug, Clone)]
#[must_use]
pub struct SubscriptionUsageRecordBuilder {
    subscription_id: SubscriptionId,
    tracking_id: Option<TrackingId>,
    units: Vec<(UnitType, Vec<UsageRecord>)>,
    error: Option<ValidationError>,
}

impl SubscriptionUsageRecordBuilder {
    /// Sets the tracking id (non-empty, at most 128 characters).
    pub fn tracking_id(mut self, tracking_id: impl Into<String>) -> Self {
        match TrackingId::new(tracking_id) {
            Ok(id) => self.tracking_id = Some(id),
            Err(e) => self.fail(e),
        }
        self
    }

    /// Adds `amount` of `unit_type` at `record_date`. The amount may be an [`Amount`], a
    /// `rust_decimal::Decimal`, an integer or a decimal string such as `"12.5"`.
    pub fn record<A>(mut self, unit_type: impl AsRef<str>, record_date: impl Into<UsageDate>, amount: A) -> Self
    where
        A: TryInto<Amount>,
        A::Error: Into<ValidationError>,
    {
        let unit_type = unit_type.as_ref();
        let unit_index = match self.units.iter().rposition(|(unit, _)| unit.as_str() == unit_type) {
            Some(index) => index,
            None => match UnitType::new(unit_type) {
                Ok(unit) => {
                    self.units.push((unit, Vec::new()));
                    self.units.len() - 1
                }
                Err(e) => {
                    self.fail(e.at_unit(self.units.len()));
                    return self;
                }
            },
        };
        let records = &mut self.units[unit_index].1;
        let record_index = records.len();
        match amount.try_into() {
            Ok(amount) => records.push(UsageRecord::new(record_date.into(), amount)),
            Err(e) => {
                let e: ValidationError = e.into();
                self.fail(e.at_unit(unit_index).at_record(record_index));
            }
        }
        self
    }

    fn fail(&mut self, error: ValidationError) {
        self.error.get_or_insert(error);
    }

    /// The record, or the first invalid value with its path.
    pub fn build(self) -> Result<SubscriptionUsageRecord, ValidationError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let units = self
            .units
            .into_iter()
            .map(|(unit_type, usage_records)| UnitUsageRecord {
                unit_type,
                usage_records,
            })
            .collect();
        SubscriptionUsageRecord::new(self.subscription_id, self.tracking_id, units)
    }
}

impl From<std::convert::Infallible> for ValidationError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> SubscriptionId {
        "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap()
    }

    fn day(s: &str) -> UsageDate {
        s.parse().unwrap()
    }

    #[test]
    fn builder_reports_every_rule_with_its_path() {
        let err = SubscriptionUsageRecord::builder(sub()).build().unwrap_err();
        assert_eq!(err.path(), "unitUsageRecords");

        let err = SubscriptionUsageRecord::builder(sub())
            .record("", day("2013-08-01"), 1)
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "unitUsageRecords[0].unitType");

        let err = SubscriptionUsageRecord::builder(sub())
            .record("a", day("2013-08-01"), 1)
            .record("a", day("2013-08-01"), "0.0000000001")
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "unitUsageRecords[0].usageRecords[1].amount");
        assert!(err.to_string().contains("fraction digits"), "{err}");

        let err = SubscriptionUsageRecord::builder(sub())
            .tracking_id("t".repeat(129))
            .record("a", day("2013-08-01"), 1)
            .build()
            .unwrap_err();
        assert_eq!(err.path(), "trackingId");
        assert!(err.to_string().contains("129 characters"), "{err}");

        let err = UnitUsageRecord::new(UnitType::new("a").unwrap(), vec![]).unwrap_err();
        assert_eq!(err.field(), "usageRecords");
    }

    #[test]
    fn deserializing_applies_the_same_rules() {
        let ok = r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","trackingId":"",
            "unitUsageRecords":[{"unitType":"a","usageRecords":[{"recordDate":"2013-08-01","amount":1}]}]}"#;
        let record: SubscriptionUsageRecord = serde_json::from_str(ok).unwrap();
        assert_eq!(record.tracking_id(), None);
        for bad in [
            r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","unitUsageRecords":[]}"#,
            r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","unitUsageRecords":[{"unitType":"a","usageRecords":[]}]}"#,
            r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","unitUsageRecords":[{"unitType":"","usageRecords":[{"recordDate":"2013-08-01","amount":1}]}]}"#,
            r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","extra":1,"unitUsageRecords":[{"unitType":"a","usageRecords":[{"recordDate":"2013-08-01","amount":1}]}]}"#,
        ] {
            assert!(serde_json::from_str::<SubscriptionUsageRecord>(bad).is_err(), "{bad}");
        }
    }
}
