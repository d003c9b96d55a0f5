//! Dates as Kill Bill writes them: calendar dates (0.22 and earlier) or instants (0.24 and later).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Field, ValidationError};

/// A point in time as the Usage API carries it: a calendar date or an instant.
///
/// - Written: a date as `yyyy-MM-dd`, an instant as UTC with milliseconds
///   (`2013-08-01T06:30:00.000Z`). A date is what 0.22 servers need and 0.24+ servers read as
///   midnight UTC.
/// - Read: `"2013-08-01"`, any RFC 3339 date-time with `Z` or an offset (converted to UTC), a
///   date-time without a zone (taken as UTC), or epoch milliseconds (a JSON integer), so the
///   responses of every Kill Bill version parse.
///
/// ```
/// use usage_models::UsageDate;
///
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// assert_eq!(day.to_string(), "2013-08-01");
/// let at: UsageDate = "2013-08-01T10:00:00+02:00".parse().unwrap();
/// assert_eq!(at.to_string(), "2013-08-01T08:00:00.000Z");
/// assert!(day < at);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UsageDate {
    /// A calendar date, meaning midnight UTC of that day.
    Date(NaiveDate),
    /// An instant.
    Instant(DateTime<Utc>),
}

impl UsageDate {
    /// The instant this stands for (a date is midnight UTC).
    pub fn instant(self) -> DateTime<Utc> {
        match self {
            UsageDate::Date(date) => Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)),
            UsageDate::Instant(instant) => instant,
        }
    }

    /// The current instant, truncated to milliseconds (what Kill Bill stores).
    pub fn now() -> Self {
        let now = Utc::now();
        let millis = now.timestamp_millis();
        UsageDate::Instant(DateTime::from_timestamp_millis(millis).unwrap_or(now))
    }

    /// Writes the wire form into `buf` and returns it: `yyyy-MM-dd` or
    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`; `None` for years outside `0..=9999`, which use chrono's
    /// extended form.
    fn write_wire<'b>(&self, buf: &'b mut WireBuf) -> Option<&'b str> {
        match self {
            UsageDate::Date(date) => {
                let year = date.year();
                if !(0..=9999).contains(&year) {
                    return None;
                }
                buf.set_date(year as u32, date.month(), date.day());
                buf.as_str(10)
            }
            UsageDate::Instant(at) => {
                // The UTC fields, read once (each accessor of `DateTime` re-applies the offset).
                let at = at.naive_utc();
                let (date, time) = (at.date(), at.time());
                let year = date.year();
                if !(0..=9999).contains(&year) {
                    return None;
                }
                buf.set_date(year as u32, date.month(), date.day());
                buf.set_two(11, time.hour());
                buf.set_two(14, time.minute());
                buf.set_two(17, time.second());
                // A leap second's nanoseconds run past 999 ms; the millis stay within 999.
                let millis = (time.nanosecond() / 1_000_000).min(999);
                buf.set_two(20, millis / 10);
                buf.set_two(22, (millis % 10) * 10);
                buf.bytes[23] = b'Z';
                buf.as_str(24)
            }
        }
    }
}

/// A fixed buffer for the wire form of a date, laid out as `yyyy-MM-ddTHH:mm:ss.SSSZ`.
struct WireBuf {
    bytes: [u8; 24],
}

impl WireBuf {
    fn new() -> Self {
        WireBuf {
            bytes: *b"0000-00-00T00:00:00.000Z",
        }
    }

    /// Writes `value` (below 100) as two digits at `at`.
    fn set_two(&mut self, at: usize, value: u32) {
        self.bytes[at] = b'0' + (value / 10 % 10) as u8;
        self.bytes[at + 1] = b'0' + (value % 10) as u8;
    }

    /// Writes `yyyy-MM-dd` (a year in `0..=9999`) at the start.
    fn set_date(&mut self, year: u32, month: u32, day: u32) {
        self.set_two(0, year / 100);
        self.set_two(2, year % 100);
        self.set_two(5, month);
        self.set_two(8, day);
    }

    fn as_str(&self, len: usize) -> Option<&str> {
        std::str::from_utf8(&self.bytes[..len]).ok()
    }
}

impl From<NaiveDate> for UsageDate {
    fn from(date: NaiveDate) -> Self {
        UsageDate::Date(date)
    }
}

impl From<DateTime<Utc>> for UsageDate {
    fn from(instant: DateTime<Utc>) -> Self {
        UsageDate::Instant(instant)
    }
}

impl PartialOrd for UsageDate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UsageDate {
    /// Orders by instant (a date is midnight UTC); a date sorts before the equal instant.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |d: &UsageDate| matches!(d, UsageDate::Instant(_));
        self.instant()
            .cmp(&other.instant())
            .then_with(|| rank(self).cmp(&rank(other)))
    }
}

impl fmt::Display for UsageDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(wire) = self.write_wire(&mut WireBuf::new()) {
            return f.write_str(wire);
        }
        match self {
            UsageDate::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            UsageDate::Instant(i) => write!(f, "{}", i.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
        }
    }
}

impl FromStr for UsageDate {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_usage_date(s).ok_or_else(|| {
            ValidationError::new(
                Field::Date,
                format!(
                    "{s:?} is neither a date (2013-08-01) nor an ISO-8601 date-time \
                     (2013-08-01T06:30:00Z, 2013-08-01T08:30:00+02:00)"
                ),
            )
        })
    }
}

fn parse_usage_date(s: &str) -> Option<UsageDate> {
    let s = s.trim();
    if let Some(date) = parse_wire_form(s) {
        return Some(date);
    }
    if !s.contains('T') && !s.contains(' ') {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(UsageDate::Date);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Some(UsageDate::Instant(at.with_timezone(&Utc)));
    }
    // ISO-8601 forms RFC 3339 leaves out, which Kill Bill reads too: offsets without a colon
    // (`+0200`) and date-times without seconds (`2013-08-01T06:30Z`).
    let zoned = match s.strip_suffix(['Z', 'z']) {
        Some(local) => std::borrow::Cow::Owned(format!("{local}+0000")),
        None => std::borrow::Cow::Borrowed(s),
    };
    if let Some(at) = ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"]
        .iter()
        .find_map(|format| DateTime::parse_from_str(&zoned, format).ok())
    {
        return Some(UsageDate::Instant(at.with_timezone(&Utc)));
    }
    // Zone-less date-times (with or without seconds and fraction) are UTC, as on the server.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .map(|naive| UsageDate::Instant(Utc.from_utc_datetime(&naive)))
}

/// The fast path of [`parse_usage_date`]: exactly the two forms this crate writes and
/// servers answer with (`2013-08-01`, `2013-08-01T06:30:00.000Z`), with a valid date and time.
/// `None` sends anything else (other forms, leap seconds, invalid dates) to the general path,
/// which reads these two forms to the same value.
fn parse_wire_form(s: &str) -> Option<UsageDate> {
    let b = s.as_bytes();
    let date = match b.len() {
        10 | 24 if b[4] == b'-' && b[7] == b'-' => {
            NaiveDate::from_ymd_opt(digits(&b[0..4])? as i32, digits(&b[5..7])?, digits(&b[8..10])?)?
        }
        _ => return None,
    };
    if b.len() == 10 {
        return Some(UsageDate::Date(date));
    }
    if b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let time = chrono::NaiveTime::from_hms_milli_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
        digits(&b[20..23])?,
    )?;
    if time.second() > 59 || time.nanosecond() >= 1_000_000_000 {
        return None;
    }
    Some(UsageDate::Instant(Utc.from_utc_datetime(&date.and_time(time))))
}

/// The value of a run of ASCII digits.
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |value, &byte| {
        let digit = byte.wrapping_sub(b'0');
        (digit <= 9).then(|| value * 10 + u32::from(digit))
    })
}

impl Serialize for UsageDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.write_wire(&mut WireBuf::new()) {
            Some(wire) => serializer.serialize_str(wire),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for UsageDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UsageDateVisitor;

        impl Visitor<'_> for UsageDateVisitor {
            type Value = UsageDate;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date (yyyy-MM-dd), an ISO-8601 date-time or epoch milliseconds")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<UsageDate, E> {
                parse_usage_date(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<UsageDate, E> {
                DateTime::from_timestamp_millis(v)
                    .map(UsageDate::Instant)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<UsageDate, E> {
                i64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
                    .and_then(|v| self.visit_i64(v))
            }
        }

        deserializer.deserialize_any(UsageDateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> UsageDate {
        s.parse().unwrap()
    }

    #[test]
    fn reads_every_server_form() {
        assert_eq!(parse("2013-08-01").to_string(), "2013-08-01");
        assert_eq!(parse("2013-08-1").to_string(), "2013-08-01");
        assert_eq!(
            parse("2013-08-01T06:30:00.000Z").to_string(),
            "2013-08-01T06:30:00.000Z"
        );
        assert_eq!(
            parse("2013-08-01T10:00:00+02:00").to_string(),
            "2013-08-01T08:00:00.000Z"
        );
        assert_eq!(parse("2013-01-01T13:15:46").to_string(), "2013-01-01T13:15:46.000Z");
        assert_eq!(
            parse("2013-08-01T10:00:00+0200").to_string(),
            "2013-08-01T08:00:00.000Z"
        );
        assert_eq!(parse("2013-08-01T06:30Z").to_string(), "2013-08-01T06:30:00.000Z");
        let millis: UsageDate = serde_json::from_str("1375338600000").unwrap();
        assert_eq!(millis.to_string(), "2013-08-01T06:30:00.000Z");
        assert!("2013-08-01x".parse::<UsageDate>().is_err());
        assert!(serde_json::from_str::<UsageDate>("true").is_err());
    }

    /// What `parse_usage_date` did before its fast path: the reference.
    fn reference_parse(s: &str) -> Option<UsageDate> {
        let s = s.trim();
        if !s.contains('T') && !s.contains(' ') {
            return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(UsageDate::Date);
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(s) {
            return Some(UsageDate::Instant(at.with_timezone(&Utc)));
        }
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
            .map(|naive| UsageDate::Instant(Utc.from_utc_datetime(&naive)))
    }

    #[test]
    fn wire_form_fast_path_matches_the_general_parse() {
        for s in [
            "2013-08-01",
            "0000-01-01",
            "9999-12-31",
            "2013-02-29",
            "2012-02-29",
            "2013-13-01",
            "2013-00-10",
            "2013-08-00",
            "2013-08-1",
            "2013-08-01T06:30:00.000Z",
            "2013-08-01T23:59:59.999Z",
            "2013-08-01T24:00:00.000Z",
            "2013-08-01T23:60:00.000Z",
            "2016-12-31T23:59:60.000Z",
            "2013-08-01T06:30:00.000z",
            "2013-08-01t06:30:00.000Z",
            "2013-08-01T06:30:00,000Z",
            "2013-08-01T06:30:00.0000",
            "2013-08-01 06:30:00.000Z",
            "2013-08-01T06:30:00.00+0Z",
            "+013-08-01",
            "-013-08-01",
            "2013-08-01T06:30:00.-00Z",
            "2013/08/01",
            "  2013-08-01  ",
        ] {
            assert_eq!(s.parse::<UsageDate>().ok(), reference_parse(s), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn wire_forms_read_back(millis in -62_167_219_200_000i64..=253_402_300_799_999) {
            let at = UsageDate::Instant(DateTime::from_timestamp_millis(millis).unwrap());
            let wire = at.to_string();
            proptest::prop_assert_eq!(wire.parse::<UsageDate>().ok(), reference_parse(&wire));
            proptest::prop_assert_eq!(wire.parse::<UsageDate>().ok(), Some(at));
            let day = UsageDate::Date(DateTime::from_timestamp_millis(millis).unwrap().date_naive());
            let wire = day.to_string();
            proptest::prop_assert_eq!(wire.parse::<UsageDate>().ok(), reference_parse(&wire));
        }

        #[test]
        fn any_24_bytes_parse_as_before(s in "[0-9T:.Z+-]{10}|[0-9T:.Z+-]{24}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z") {
            proptest::prop_assert_eq!(s.parse::<UsageDate>().ok(), reference_parse(&s));
        }
    }

    #[test]
    fn date_is_midnight_utc() {
        assert_eq!(parse("2013-08-01").instant(), parse("2013-08-01T00:00:00Z").instant());
        assert!(parse("2013-08-01") < parse("2013-08-01T00:00:00.001Z"));
    }

    proptest::proptest! {
        #[test]
        fn fixed_width_writer_matches_chrono(millis in -62_167_219_200_000i64..=253_402_300_799_999, leap in 0u32..2) {
            let mut at = DateTime::from_timestamp_millis(millis).unwrap();
            if leap == 1 && at.second() == 59 {
                // A leap second: chrono carries it as nanoseconds past one second.
                at = at.with_nanosecond(1_000_000_000 + at.nanosecond() % 1_000_000_000).unwrap_or(at);
            }
            // The writer's rules, spelled with `format!` (a leap second stays at :59.999).
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                at.year(), at.month(), at.day(), at.hour(), at.minute(), at.second(),
                at.timestamp_subsec_millis().min(999)
            );
            let instant = UsageDate::Instant(at);
            proptest::prop_assert_eq!(instant.to_string(), expected.clone());
            let json = serde_json::to_string(&instant).unwrap();
            proptest::prop_assert_eq!(json, format!("\"{expected}\""));
            let day = UsageDate::Date(at.date_naive());
            proptest::prop_assert_eq!(day.to_string(), at.date_naive().format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn writes_millis_utc_and_extended_years() {
        let json = serde_json::to_string(&parse("2013-08-01T06:30:00.123456Z")).unwrap();
        assert_eq!(json, "\"2013-08-01T06:30:00.123Z\"");
        let far = UsageDate::Date(NaiveDate::from_ymd_opt(12345, 1, 2).unwrap());
        assert_eq!(far.to_string(), "+12345-01-02");
    }
}
