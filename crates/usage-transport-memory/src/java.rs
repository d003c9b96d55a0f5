//! How Java writes what the emulator answers: `BigDecimal.toString()` and Joda's parse errors.

use rust_decimal::Decimal;

/// The scale of Kill Bill's `amount` column (`decimal(18,9)`) and so of every sum it returns.
const SUM_SCALE: u32 = 9;

/// Writes a decimal exactly as Java's `BigDecimal.toString()` writes it, at the decimal's own
/// scale: plain notation (`15.000000000`), or scientific notation when the scale is negative or
/// the adjusted exponent is below -6 (`0E-9`, `1.00E-7`).
fn java_big_decimal_string(value: Decimal) -> String {
    let negative = value.is_sign_negative() && !value.is_zero();
    let digits = value.mantissa().unsigned_abs().to_string();
    let scale = i64::from(value.scale());
    // BigDecimal: adjusted exponent = -scale + (number of digits - 1).
    let adjusted = -scale + (digits.len() as i64 - 1);
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if scale >= 0 && adjusted >= -6 {
        let scale = scale as usize;
        if scale == 0 {
            out.push_str(&digits);
        } else if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat(scale - digits.len()));
            out.push_str(&digits);
        }
        return out;
    }
    let (first, rest) = digits.split_at(1);
    out.push_str(first);
    if !rest.is_empty() {
        out.push('.');
        out.push_str(rest);
    }
    out.push('E');
    if adjusted > 0 {
        out.push('+');
    }
    out.push_str(&adjusted.to_string());
    out
}

/// Writes a sum as Kill Bill does: rescaled to the column's scale of 9 (exact: stored amounts
/// never have more than 9 fraction digits), then [`java_big_decimal_string`]. `None` when the
/// sum is too large to carry 9 fraction digits.
pub(crate) fn kill_bill_sum_string(sum: Decimal) -> Option<String> {
    let mut scaled = sum;
    scaled.rescale(SUM_SCALE);
    // `rescale` silently keeps a smaller scale when the mantissa would overflow.
    (scaled.scale() == SUM_SCALE && scaled == sum).then(|| java_big_decimal_string(scaled))
}

/// Joda-Time's message for text it cannot parse (`FormatUtils.createErrorMessage`):
/// `Invalid format: "x"`, `... is too short`, or `... is malformed at "rest"`.
pub(crate) fn joda_invalid_format(text: &str, error_pos: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let sample_len = error_pos + 32;
    let sample: String = if chars.len() <= sample_len + 3 {
        text.to_string()
    } else {
        let mut s: String = chars[..sample_len].iter().collect();
        s.push_str("...");
        s
    };
    if error_pos == 0 {
        return format!("Invalid format: \"{sample}\"");
    }
    if error_pos >= chars.len() {
        return format!("Invalid format: \"{sample}\" is too short");
    }
    let rest: String = sample.chars().skip(error_pos).collect();
    format!("Invalid format: \"{sample}\" is malformed at \"{rest}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn plain_and_scientific_like_java() {
        for (value, expected) in [
            ("15.000000000", "15.000000000"),
            ("19.500000000", "19.500000000"),
            ("0.000000000", "0E-9"),
            ("0.000000100", "1.00E-7"),
            ("0.000001000", "0.000001000"),
            ("0.000000123", "1.23E-7"),
            ("-0.000000100", "-1.00E-7"),
            ("333333333.333333333", "333333333.333333333"),
            ("-4.750000000", "-4.750000000"),
            ("0.5", "0.5"),
            ("12", "12"),
            ("0", "0"),
            ("0.0000001", "1E-7"),
        ] {
            assert_eq!(java_big_decimal_string(d(value)), expected, "{value}");
        }
    }

    #[test]
    fn sums_are_written_at_scale_nine() {
        assert_eq!(kill_bill_sum_string(d("15")).unwrap(), "15.000000000");
        assert_eq!(kill_bill_sum_string(d("11.00")).unwrap(), "11.000000000");
        assert_eq!(kill_bill_sum_string(d("0.0")).unwrap(), "0E-9");
        assert_eq!(kill_bill_sum_string(d("1E-7")).unwrap(), "1.00E-7");
        assert_eq!(
            kill_bill_sum_string(d("666666666.666666666")).unwrap(),
            "666666666.666666666"
        );
        assert_eq!(
            kill_bill_sum_string(d("9999999999999999999")).unwrap(),
            "9999999999999999999.000000000"
        );
        // Too large to carry 9 fraction digits in 96 bits.
        assert_eq!(kill_bill_sum_string(Decimal::MAX), None);
    }

    #[test]
    fn joda_messages() {
        assert_eq!(
            joda_invalid_format("2013-08-01x", 10),
            r#"Invalid format: "2013-08-01x" is malformed at "x""#
        );
        assert_eq!(joda_invalid_format("", 0), r#"Invalid format: """#);
        assert_eq!(joda_invalid_format("abc", 0), r#"Invalid format: "abc""#);
        assert_eq!(
            joda_invalid_format("2013-", 5),
            r#"Invalid format: "2013-" is too short"#
        );
        let long = format!("2013-08-01{}", "x".repeat(60));
        let message = joda_invalid_format(&long, 10);
        assert!(message.ends_with(&format!("\" is malformed at \"{}...\"", "x".repeat(32))));
    }

    proptest! {
        /// The text reads back as the same number, and the plain form keeps the scale.
        #[test]
        fn round_trips(mantissa in -10i64.pow(15)..10i64.pow(15), scale in 0u32..=12) {
            let value = Decimal::new(mantissa, scale);
            let text = java_big_decimal_string(value);
            let back: Decimal = if let Some((m, e)) = text.split_once('E') {
                let m: Decimal = m.parse().unwrap();
                let e: i32 = e.parse().unwrap();
                prop_assert!(e < -6);
                m / Decimal::from(10i64.pow((-e) as u32))
            } else {
                let back: Decimal = text.parse().unwrap();
                prop_assert_eq!(back.scale(), scale);
                back
            };
            prop_assert_eq!(back, value);
        }
    }
}
