//! The one validation error of the models.

use std::fmt;

/// A value that breaks one of Kill Bill's rules, with where it is.
///
/// The [`path`](ValidationError::path) names the field in the request body, with indices:
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
/// assert_eq!(err.unit_index(), Some(1));
/// assert_eq!(err.record_index(), Some(0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    field: &'static str,
    unit_index: Option<usize>,
    record_index: Option<usize>,
    reason: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, reason: String) -> Self {
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

    /// The JSON name of the field at fault (`amount`, `unitType`, `unitUsageRecords`, ...).
    pub fn field(&self) -> &'static str {
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
        path.push_str(self.field);
        path
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.reason)
    }
}

impl std::error::Error for ValidationError {}
