//! Exact decimal amounts, read from and written to JSON without ever going through `f64`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{Field, ValidationError};

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
/// # Serde
///
/// - **JSON** (serde_json): a JSON number, exact both ways (written with its significant digits
///   only, through serde_json's public `RawValue`; read from the number's text, or from a string
///   holding a number). This is the wire format.
/// - **`serde_json::Value`**: integral amounts stay exact; a fractional one becomes an `f64`
///   number (unless your serde_json has its `arbitrary_precision` feature), so it comes back
///   exact when it has at most 15 significant digits and may lose its last digits beyond.
///   Serialize to a string or bytes, not to a `Value`, to keep every digit.
/// - **Binary formats** (CBOR, bincode, postcard, ...: not human-readable): the exact decimal
///   text as a string (`"19.500000000"`, scale kept), read back exactly.
/// - Other text formats (YAML, TOML, ...) are not supported: serde gives no way to write a raw
///   number to them, and reading an amount needs serde_json's raw values.
///
/// ```
/// use usage_models::Amount;
///
/// let exact: Amount = "333333333.333333333".parse().unwrap();
/// assert_eq!(serde_json::to_string(&exact).unwrap(), "333333333.333333333");
/// let through_value: Amount = serde_json::from_value(serde_json::to_value(exact).unwrap()).unwrap();
/// assert_ne!(through_value, exact); // 18 significant digits do not fit an f64
/// let short: Amount = "12.375".parse().unwrap();
/// let through_value: Amount = serde_json::from_value(serde_json::to_value(short).unwrap()).unwrap();
/// assert_eq!(through_value, short);
/// ```
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
                Field::Amount,
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
                Field::Amount,
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
            parse_decimal(s.trim()).map_err(|reason| ValidationError::new(Field::Amount, format!("{s:?} {reason}")))?;
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

/// A [`Decimal`] as an exact JSON number, the one way this workspace writes and reads amounts
/// and sums: `#[serde(with = "usage_models::json_decimal")]` on a `Decimal` field.
///
/// ```
/// use usage_models::Decimal;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Total {
///     #[serde(with = "usage_models::json_decimal")]
///     sum: Decimal,
/// }
///
/// let total: Total = serde_json::from_str(r#"{"sum":15.000000000}"#).unwrap();
/// assert_eq!(total.sum.to_string(), "15.000000000");
/// assert_eq!(serde_json::to_string(&total).unwrap(), r#"{"sum":15}"#);
/// let total = Total { sum: "333333333.333333333".parse().unwrap() };
/// assert_eq!(serde_json::to_string(&total).unwrap(), r#"{"sum":333333333.333333333}"#);
/// ```
pub mod json_decimal {
    pub use super::deserialize_decimal as deserialize;
    pub use super::serialize_decimal as serialize;
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
/// their significant digits only (`19.5`). Never a string, never through `f64`: the digits go
/// out through serde_json's public [`RawValue`].
///
/// A binary (not human-readable) format gets the decimal's exact text as a string instead
/// (`"19.500000000"`, scale kept), which [`deserialize_decimal`] reads back.
pub fn serialize_decimal<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    if !serializer.is_human_readable() {
        return serializer.collect_str(value);
    }
    if let Ok(mantissa) = u64::try_from(value.mantissa().unsigned_abs()) {
        return serialize_small_decimal(mantissa, value.scale(), value.is_sign_negative(), serializer);
    }
    if value.is_integer() {
        if let Ok(integer) = i64::try_from(value.trunc()) {
            return serializer.serialize_i64(integer);
        }
    }
    let raw = RawValue::from_string(value.normalize().to_string()).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// [`serialize_decimal`] for a mantissa that fits a `u64` (every [`Amount`]): strips the
/// trailing zeros and writes the digits on the stack, with no allocation.
fn serialize_small_decimal<S: Serializer>(
    mut mantissa: u64,
    mut scale: u32,
    negative: bool,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    while scale > 0 {
        let tenth = mantissa / 10;
        if tenth * 10 != mantissa {
            break;
        }
        mantissa = tenth;
        scale -= 1;
    }
    if scale == 0 {
        let integer = if negative {
            0i64.checked_sub_unsigned(mantissa)
        } else {
            i64::try_from(mantissa).ok()
        };
        if let Some(integer) = integer {
            return serializer.serialize_i64(integer);
        }
    }
    // Sign, "0.", up to 28 zeros, up to 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (mantissa % 10) as u8;
        mantissa /= 10;
        if mantissa == 0 {
            break;
        }
    }
    let digits = &digits[start..];
    let mut text = [0u8; 64];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        text[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    if negative {
        push(b"-");
    }
    let scale = scale as usize;
    if scale >= digits.len() {
        push(b"0.");
        for _ in digits.len()..scale {
            push(b"0");
        }
        push(digits);
    } else if scale > 0 {
        push(&digits[..digits.len() - scale]);
        push(b".");
        push(&digits[digits.len() - scale..]);
    } else {
        push(digits);
    }
    let text = std::str::from_utf8(&text[..len]).map_err(serde::ser::Error::custom)?;
    serialize_raw_number(text, serializer)
}

/// Writes `text`, a valid JSON number, as it is, through serde_json's public [`RawValue`]
/// (borrowed: checked, not copied).
fn serialize_raw_number<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let raw: &RawValue = serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

/// Reads a JSON number from its text (exactly), or a string holding a decimal number; in a
/// binary format, the decimal's text (see [`serialize_decimal`]).
pub fn deserialize_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
    if !deserializer.is_human_readable() {
        return deserializer.deserialize_str(DecimalText);
    }
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    decimal_of_raw_text(raw.get())
}

/// The decimal of a value's raw JSON text: a number, or a string holding one.
fn decimal_of_raw_text<E: serde::de::Error>(text: &str) -> Result<Decimal, E> {
    if text.starts_with('"') {
        let number = serde_json::from_str::<String>(text).map_err(E::custom)?;
        return decimal_of_text(&number);
    }
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return parse_decimal(text).map_err(|reason| E::custom(format!("amount {text} {reason}")));
    }
    Err(E::custom(format!(
        "expected a decimal number, found {}",
        truncate(text)
    )))
}

/// The decimal of a string holding one (surrounding whitespace allowed).
fn decimal_of_text<E: serde::de::Error>(number: &str) -> Result<Decimal, E> {
    parse_decimal(number.trim()).map_err(|reason| E::custom(format!("amount {number:?} {reason}")))
}

/// A decimal written as a string, in a binary format.
struct DecimalText;

impl serde::de::Visitor<'_> for DecimalText {
    type Value = Decimal;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a decimal number as a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Decimal, E> {
        decimal_of_text(text)
    }
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

    /// What `serialize_decimal` wrote before its fast path: the reference.
    fn reference_json(value: &Decimal) -> String {
        if value.is_integer() {
            if let Ok(integer) = i64::try_from(value.trunc()) {
                return integer.to_string();
            }
        }
        value.normalize().to_string()
    }

    #[test]
    fn serialization_matches_the_reference_on_edge_cases() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.000",
            "1",
            "-1",
            "10",
            "15.000000000",
            "0.5",
            "-0.5",
            "0.000000001",
            "-0.000000001",
            "999999999.999999999",
            "-999999999.999999999",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "9999999999999999999",
            "1234567890123456789.5",
            "00012.50",
            "1.",
            ".5",
            "+5",
            "1_000",
            "1e3",
            "1.00E-7",
            "0E-9",
            "",
            "-",
            "1.2.3",
            "79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "0.0000000000000000000000000001",
            "-12345678901234567.89",
        ] {
            if let Ok(value) = parse_decimal(text) {
                let json = serde_json::to_string(&RawDecimal(value)).unwrap();
                assert_eq!(json, reference_json(&value), "{text}");
                let negated = serde_json::to_string(&RawDecimal(-value)).unwrap();
                assert_eq!(negated, reference_json(&-value), "-({text})");
            }
        }
    }

    /// Reading a boxed `RawValue` and parsing its text: the reference.
    fn reference_deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        decimal_of_raw_text(raw.get())
    }

    #[derive(Debug, Deserialize)]
    struct Ours {
        #[serde(deserialize_with = "deserialize_decimal")]
        #[allow(dead_code)]
        amount: Decimal,
    }

    #[derive(Debug, Deserialize)]
    struct Reference {
        #[serde(deserialize_with = "reference_deserialize")]
        #[allow(dead_code)]
        amount: Decimal,
    }

    #[test]
    fn reading_matches_reading_a_boxed_raw_value() {
        for amount in [
            "15.000000000",
            "-0.5",
            "0E-9",
            "1.00E-7",
            "1e400",
            "\"12.25\"",
            "\" 7 \"",
            "\"x\"",
            "true",
            "null",
            "[1]",
            "{\"a\":1}",
            "1234567890123456789012345678901",
            "0.00000000000000000000000000001",
        ] {
            for body in [
                format!(r#"{{"amount":{amount}}}"#),
                format!("{{\n  \"amount\" : {amount} }}"),
            ] {
                let ours = serde_json::from_str::<Ours>(&body).map(|o| o.amount);
                let reference = serde_json::from_str::<Reference>(&body).map(|r| r.amount);
                assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "{body}");
                // From a reader, and from a `Value`, too.
                let ours = serde_json::from_reader::<_, Ours>(body.as_bytes()).map(|o| o.amount);
                let reference = serde_json::from_reader::<_, Reference>(body.as_bytes()).map(|r| r.amount);
                assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "{body}");
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&body) {
                    let ours = serde_json::from_value::<Ours>(value.clone()).map(|o| o.amount);
                    let reference = serde_json::from_value::<Reference>(value.clone()).map(|r| r.amount);
                    assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "{body}");
                    let ours = Ours::deserialize(&value).map(|o| o.amount);
                    let reference = Reference::deserialize(&value).map(|r| r.amount);
                    assert_eq!(format!("{ours:?}"), format!("{reference:?}"), "{body}");
                }
            }
        }
        // A deserializer that knows nothing of raw values refuses both the same way.
        use serde::de::IntoDeserializer as _;
        let ours = deserialize_decimal::<serde::de::value::StrDeserializer<'_, serde::de::value::Error>>(
            "1.5".into_deserializer(),
        );
        let reference = reference_deserialize::<serde::de::value::StrDeserializer<'_, serde::de::value::Error>>(
            "1.5".into_deserializer(),
        );
        assert_eq!(format!("{ours:?}"), format!("{reference:?}"));
    }

    /// Serializes through `serialize_decimal`.
    struct RawDecimal(Decimal);

    impl Serialize for RawDecimal {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serialize_decimal(&self.0, serializer)
        }
    }

    proptest::proptest! {
        #[test]
        fn serialization_matches_the_reference(
            lo in proptest::num::u32::ANY,
            mid in proptest::num::u32::ANY,
            hi in proptest::prop_oneof![proptest::strategy::Just(0u32), proptest::num::u32::ANY],
            negative in proptest::bool::ANY,
            scale in 0u32..=28,
            zeros in 0u32..=12,
        ) {
            let mut value = Decimal::from_parts(lo, mid, hi, negative, scale);
            // Trailing zeros, as the server's scale-9 sums have them.
            for _ in 0..zeros {
                match value.checked_mul(Decimal::TEN) {
                    Some(v) if v.scale() < 28 => {
                        let mut v = v;
                        if v.set_scale(v.scale() + 1).is_ok() { value = v; }
                    }
                    _ => break,
                }
            }
            let json = serde_json::to_string(&RawDecimal(value)).unwrap();
            proptest::prop_assert_eq!(json, reference_json(&value));
        }
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

    #[test]
    fn through_a_serde_json_value() {
        // Integral amounts are exact, fractional ones go through f64.
        for (text, back) in [
            ("10", "10"),
            ("-999999999", "-999999999"),
            ("12.375", "12.375"),
            ("0.000000001", "1e-9"),
            ("123456.789012345", "123456.789012345"),
            ("333333333.333333333", "333333333.3333333"),
            ("999999999.999999999", "1000000000.0"),
        ] {
            let amount: Amount = text.parse().unwrap();
            let value = serde_json::to_value(amount).unwrap();
            assert_eq!(value.to_string(), back, "{text}");
            let decimal: Decimal = back.parse().unwrap();
            match Amount::new(decimal) {
                Ok(expected) => assert_eq!(serde_json::from_value::<Amount>(value).unwrap(), expected, "{text}"),
                Err(_) => assert!(serde_json::from_value::<Amount>(value).is_err(), "{text}"),
            }
        }
    }

    #[test]
    fn through_a_binary_format_every_digit_and_the_scale_survive() {
        for text in [
            "10",
            "-3",
            "15.000000000",
            "333333333.333333333",
            "-0.000000001",
            "0E-9",
        ] {
            let amount: Amount = text.parse().unwrap();
            let mut cbor = Vec::new();
            ciborium::into_writer(&amount, &mut cbor).unwrap();
            let back: Amount = ciborium::from_reader(cbor.as_slice()).unwrap();
            assert_eq!(back.value().to_string(), amount.value().to_string(), "{text}");
            // Written as the decimal's text.
            let as_text: String = ciborium::from_reader(cbor.as_slice()).unwrap();
            assert_eq!(as_text, amount.value().to_string(), "{text}");
        }
        let too_long = {
            let mut cbor = Vec::new();
            ciborium::into_writer("1234567890", &mut cbor).unwrap();
            cbor
        };
        assert!(ciborium::from_reader::<Amount, _>(too_long.as_slice()).is_err());
    }
}
