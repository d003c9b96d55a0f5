//! The answer of both usage GETs.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{SubscriptionId, UnitType, UsageDate};

/// Usage of a subscription rolled up over a half-open window `[startDate, endDate)`.
///
/// [`rolled_up_units`](Self::rolled_up_units) has one entry per unit type with usage in the window (order unspecified);
/// it is empty, never absent, when nothing matched.
///
/// ```
/// use usage_models::RolledUpUsage;
///
/// let body = r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11",
///   "startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z",
///   "rolledUpUnits":[{"unitType":"gallons","amount":15.000000000}]}"#;
/// let usage: RolledUpUsage = serde_json::from_str(body).unwrap();
/// assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "15.000000000");
/// assert_eq!(usage.amount_of("liters"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RolledUpUsage {
    subscription_id: SubscriptionId,
    start_date: UsageDate,
    end_date: UsageDate,
    #[serde(default, deserialize_with = "null_as_empty")]
    rolled_up_units: Vec<RolledUpUnit>,
}

impl RolledUpUsage {
    /// The roll-up of `subscription_id` over `[start_date, end_date)` (for a test double's
    /// answer; a client reads it from the server).
    pub fn new(
        subscription_id: SubscriptionId,
        start_date: UsageDate,
        end_date: UsageDate,
        rolled_up_units: Vec<RolledUpUnit>,
    ) -> Self {
        RolledUpUsage {
            subscription_id,
            start_date,
            end_date,
            rolled_up_units,
        }
    }

    /// The subscription, echoed.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }

    /// The start of the window (inclusive), echoed.
    pub fn start_date(&self) -> UsageDate {
        self.start_date
    }

    /// The end of the window (exclusive), echoed.
    pub fn end_date(&self) -> UsageDate {
        self.end_date
    }

    /// The exact sum per unit type (empty, never absent, when nothing matched).
    pub fn rolled_up_units(&self) -> &[RolledUpUnit] {
        &self.rolled_up_units
    }

    /// The sum for `unit_type`, if it had usage in the window.
    pub fn amount_of(&self, unit_type: &str) -> Option<Decimal> {
        self.rolled_up_units
            .iter()
            .find(|unit| unit.unit_type == unit_type)
            .map(|unit| unit.amount)
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RolledUpUnit>, D::Error> {
    Ok(Option::<Vec<RolledUpUnit>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The exact sum of one unit type over a window. Sums are not bounded by `decimal(18,9)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RolledUpUnit {
    unit_type: UnitType,
    #[serde(with = "crate::json_decimal")]
    amount: Decimal,
}

impl RolledUpUnit {
    /// The sum `amount` of `unit_type`.
    pub fn new(unit_type: UnitType, amount: Decimal) -> Self {
        RolledUpUnit { unit_type, amount }
    }

    /// The unit type.
    pub fn unit_type(&self) -> &UnitType {
        &self.unit_type
    }

    /// The exact sum, as the server wrote it (`15.000000000` keeps its scale).
    pub fn amount(&self) -> Decimal {
        self.amount
    }
}
