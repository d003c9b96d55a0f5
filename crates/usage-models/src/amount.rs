//! Exact decimal amounts, read from and written to JSON without ever going through `f64`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::ValidationError;

/// The largest number of integer digits Kill Bill stores (`decimal(18,9)`).
pub const MAX_INTEGER_DIGITS: u32 = 9;
/// The largest number of fraction digits Kill Bill stores (`decimal(18,9)`).
pub const MAX_FRACTION_DIGITS: u32 = 9;

/// An amount of usage, as Kill Bill stores it: an exact decimal with at most 9 integer and
/// 9 fraction digits (`decimal(18,9)`, so `-999999999.999999999 ..= 999999999.999999999`).
///
/// Zero and negative amounts are valid (Kill Bill accepts them). Nothing is ever rounded:
/// a value that does not fit is refused with a [`ValidationError`].
///
/// Equality is numeric: `15` equals `15.000000000`.
///
/// ```
/// use usage_models::Amount;
///
/// let a: Amount = "333333333.333333333".parse().unwrap();
/// assert_eq!(a.to_string(), "333333333.333333333");
/// assert_eq!(Amount::from(10).to_string(), "10");
/// assert!("1234567890".parse::<Amount>().is_err()); // 10 integer digits
/// assert!("0.0000000001".parse::<Amount>().is_err()); // 10 fraction digits
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Amount(Decimal);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    /// Checks that `value` fits Kill Bill's `decimal(18,9)` column.
    pub fn new(value: Decimal) -> Result<Self, ValidationError> {
        let normalized = value.normalize();
        if normalized.scale() > MAX_FRACTION_DIGITS {
            return Err(ValidationError::new(
                "amount",
                format!(
                    "{value} has {} fraction digits; Kill Bill stores amounts as decimal(18,9): \
                     at most {MAX_FRACTION_DIGITS} fraction digits",
                    normalized.scale()
                ),
            ));
        }
        let integer_digits = integer_digits(normalized);
        if integer_digits > MAX_INTEGER_DIGITS {
            return Err(ValidationError::new(
                "amount",
                format!(
                    "{value} has {integer_digits} integer digits; Kill Bill stores amounts as \
                     decimal(18,9): at most {MAX_INTEGER_DIGITS} integer digits"
                ),
            ));
        }
        Ok(Amount(value))
    }

    /// The exact decimal value.
    pub fn value(self) -> Decimal {
        self.0
    }
}

fn integer_digits(value: Decimal) -> u32 {
    let mut integer = value.trunc().abs();
    let mut digits = 0;
    while !integer.is_zero() {
        integer /= Decimal::TEN;
        integer = integer.trunc();
        digits += 1;
    }
    digits
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = ValidationError;

    /// Parses plain (`12.5`, `-3`) or exponent (`1.00E-7`, `1e3`) notation exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value =
            parse_decimal(s.trim()).map_err(|reason| ValidationError::new("amount", format!("{s:?} {reason}")))?;
        Amount::new(value)
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = ValidationError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Amount::new(value)
    }
}

impl TryFrom<&str> for Amount {
    type Error = ValidationError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl TryFrom<i64> for Amount {
    type Error = ValidationError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Amount::new(Decimal::from(value))
    }
}

impl TryFrom<u64> for Amount {
    type Error = ValidationError;
    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Amount::new(Decimal::from(value))
    }
}

macro_rules! amount_from_small_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Amount {
            /// Every value of this type fits `decimal(18,9)`.
            fn from(value: $t) -> Self {
                Amount(Decimal::from(value))
            }
        }
    )*};
}
amount_from_small_int!(i8, i16, i32, u8, u16, u32);

impl From<Amount> for Decimal {
    fn from(amount: Amount) -> Decimal {
        amount.0
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_decimal(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize_decimal(deserializer)?;
        Amount::new(value).map_err(serde::de::Error::custom)
    }
}

/// Parses the text of a JSON number (or a decimal string) exactly: plain or exponent notation,
/// refusing (never rounding) values a [`Decimal`] cannot hold exactly.
pub(crate) fn parse_decimal(text: &str) -> Result<Decimal, String> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mut value = Decimal::from_str_exact(mantissa).map_err(|e| format!("is not an exact decimal number ({e})"))?;
    let Some(exponent) = exponent else {
        return Ok(value);
    };
    let exponent: i64 = exponent.parse().map_err(|_| "has an invalid exponent".to_string())?;
    let out_of_range = || "is out of the range of an exact decimal".to_string();
    if exponent < 0 {
        let scale = i64::from(value.scale()) - exponent;
        if scale > i64::from(Decimal::MAX_SCALE) {
            return Err(out_of_range());
        }
        value.set_scale(scale as u32).map_err(|_| out_of_range())?;
    } else {
        let mut up = exponent;
        let down = up.min(i64::from(value.scale()));
        value
            .set_scale(value.scale() - down as u32)
            .map_err(|_| out_of_range())?;
        up -= down;
        if up > i64::from(Decimal::MAX_SCALE) {
            return Err(out_of_range());
        }
        for _ in 0..up {
            value = value.checked_mul(Decimal::TEN).ok_or_else(out_of_range)?;
        }
    }
    Ok(value)
}

/// Writes a decimal as a JSON number: integral values without a fraction (`10`), others with
/// their significant digits only (`19.5`). Never a string, never through `f64`.
pub(crate) fn serialize_decimal<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_integer() {
        if let Ok(integer) = i64::try_from(value.trunc()) {
            return serializer.serialize_i64(integer);
        }
    }
    let raw = RawValue::from_string(value.normalize().to_string()).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// Reads a JSON number from its text (exactly), or a string holding a decimal number.
pub(crate) fn deserialize_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    let text = raw.get();
    let number = if text.starts_with('"') {
        serde_json::from_str::<String>(text).map_err(serde::de::Error::custom)?
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return parse_decimal(text).map_err(|reason| serde::de::Error::custom(format!("amount {text} {reason}")));
    } else {
        return Err(serde::de::Error::custom(format!(
            "expected a decimal number, found {}",
            truncate(text)
        )));
    };
    parse_decimal(number.trim()).map_err(|reason| serde::de::Error::custom(format!("amount {number:?} {reason}")))
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_forms_exactly() {
        for (text, expected) in [
            ("333333333.333333333", "333333333.333333333"),
            ("15.000000000", "15.000000000"),
            ("0E-9", "0.000000000"),
            ("1.00E-7", "0.000000100"),
            ("-3", "-3"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("2.5e1", "25"),
        ] {
            assert_eq!(parse_decimal(text).unwrap().to_string(), expected, "{text}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_exact() {
        assert!(parse_decimal("1e400").is_err());
        assert!(parse_decimal("1e-40").is_err());
        assert!(parse_decimal("1.00000000000000000000000000001").is_err());
        assert!(parse_decimal("abc").is_err());
    }

    #[test]
    fn decimal_18_9_limits() {
        assert!(Amount::new("999999999.999999999".parse().unwrap()).is_ok());
        assert!(Amount::new("-999999999.999999999".parse().unwrap()).is_ok());
        let err = Amount::new("1000000000".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("10 integer digits"), "{err}");
        let err = Amount::new("0.0000000001".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("10 fraction digits"), "{err}");
        // Trailing zeros past the ninth digit are not significant.
        assert!(Amount::new("1.0000000000000".parse().unwrap()).is_ok());
    }

    #[test]
    fn json_numbers_are_exact_and_integral_values_plain() {
        let json = serde_json::to_string(&Amount::try_from("10.000").unwrap()).unwrap();
        assert_eq!(json, "10");
        let json = serde_json::to_string(&Amount::try_from("19.500000000").unwrap()).unwrap();
        assert_eq!(json, "19.5");
        assert_eq!(serde_json::to_string(&Amount::ZERO).unwrap(), "0");
        let a: Amount = serde_json::from_str("333333333.333333333").unwrap();
        assert_eq!(a.to_string(), "333333333.333333333");
        let a: Amount = serde_json::from_str("\"12.25\"").unwrap();
        assert_eq!(a.to_string(), "12.25");
        assert!(serde_json::from_str::<Amount>("true").is_err());
        assert!(serde_json::from_str::<Amount>("1234567890").is_err());
    }
}
