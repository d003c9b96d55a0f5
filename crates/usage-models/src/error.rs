//! The one validation error of the models.

use std::fmt;

/// A field of the usage body (and the values that go in it), by its JSON name.
///
/// ```
/// use usage_models::{Field, UnitType};
///
/// let err = UnitType::new("").unwrap_err();
/// assert_eq!(err.field(), Field::UnitType);
/// assert_eq!(Field::UnitType.as_str(), "unitType");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `subscriptionId`.
    SubscriptionId,
    /// `trackingId`.
    TrackingId,
    /// `unitUsageRecords`.
    UnitUsageRecords,
    /// `unitType`.
    UnitType,
    /// `usageRecords`.
    UsageRecords,
    /// A date or date-time (`recordDate`, the ends of a window), parsed from text.
    Date,
    /// `amount`.
    Amount,
}

impl Field {
    /// The JSON name (`unitType`), or `date` for a date parsed from text.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::SubscriptionId => "subscriptionId",
            Field::TrackingId => "trackingId",
            Field::UnitUsageRecords => "unitUsageRecords",
            Field::UnitType => "unitType",
            Field::UsageRecords => "usageRecords",
            Field::Date => "date",
            Field::Amount => "amount",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Field {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Field {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A value that breaks one of Kill Bill's rules, with where it is.
///
/// The [`field`](ValidationError::field) and its indices say where, as data; the
/// [`path`](ValidationError::path) writes them as in the request body:
/// `unitUsageRecords[1].usageRecords[0].amount`.
///
/// ```
/// use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
///
/// let date: UsageDate = "2013-08-01".parse().unwrap();
/// let err = SubscriptionUsageRecord::builder(SubscriptionId::random())
///     .record("gallons", date, 1)
///     .record("liters", date, "1234567890")
///     .build()
///     .unwrap_err();
/// assert_eq!(err.path(), "unitUsageRecords[1].usageRecords[0].amount");
/// assert_eq!(err.field(), usage_models::Field::Amount);
/// assert_eq!(err.unit_index(), Some(1));
/// assert_eq!(err.record_index(), Some(0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    field: Field,
    unit_index: Option<usize>,
    record_index: Option<usize>,
    reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: Field, reason: String) -> Self {
        ValidationError {
            field,
            unit_index: None,
            record_index: None,
            reason,
        }
    }

    pub(crate) fn at_unit(mut self, index: usize) -> Self {
        self.unit_index = Some(index);
        self
    }

    pub(crate) fn at_record(mut self, index: usize) -> Self {
        self.record_index = Some(index);
        self
    }

    /// The field at fault (`amount`, `unitType`, `unitUsageRecords`, ...).
    pub fn field(&self) -> Field {
        self.field
    }

    /// The index of the unit at fault in `unitUsageRecords`, if any.
    pub fn unit_index(&self) -> Option<usize> {
        self.unit_index
    }

    /// The index of the record at fault in that unit's `usageRecords`, if any.
    pub fn record_index(&self) -> Option<usize> {
        self.record_index
    }

    /// Why the value is refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The path of the field in the request body.
    pub fn path(&self) -> String {
        let mut path = String::new();
        if let Some(unit) = self.unit_index {
            path.push_str(&format!("unitUsageRecords[{unit}]."));
        }
        if let Some(record) = self.record_index {
            path.push_str(&format!("usageRecords[{record}]."));
        }
        path.push_str(self.field.as_str());
        path
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.reason)
    }
}

impl std::error::Error for ValidationError {}
