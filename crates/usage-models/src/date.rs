//! Dates as Kill Bill writes them: calendar dates (0.22 and earlier) or instants (0.24 and later).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

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
    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`. Years outside `0..=9999` use chrono's extended form.
    fn write_wire<'b>(&self, buf: &'b mut WireBuf) -> &'b str {
        buf.len = 0;
        match self {
            UsageDate::Date(date) => buf.push_date(date.year(), date.month(), date.day()),
            UsageDate::Instant(at) => {
                buf.push_date(at.year(), at.month(), at.day());
                buf.push(b'T');
                buf.push_digits(at.hour(), 2);
                buf.push(b':');
                buf.push_digits(at.minute(), 2);
                buf.push(b':');
                buf.push_digits(at.second(), 2);
                buf.push(b'.');
                buf.push_digits(at.timestamp_subsec_millis().min(999), 3);
                buf.push(b'Z');
            }
        }
        std::str::from_utf8(&buf.bytes[..buf.len]).unwrap_or_default()
    }
}

/// A fixed buffer for the wire form of a date (at most 24 bytes for years 0..=9999).
struct WireBuf {
    bytes: [u8; 24],
    len: usize,
}

impl WireBuf {
    fn new() -> Self {
        WireBuf { bytes: [0; 24], len: 0 }
    }

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn push_digits(&mut self, mut value: u32, width: usize) {
        for i in (0..width).rev() {
            self.bytes[self.len + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += width;
    }

    fn push_date(&mut self, year: i32, month: u32, day: u32) {
        self.push_digits(year as u32, 4);
        self.push(b'-');
        self.push_digits(month, 2);
        self.push(b'-');
        self.push_digits(day, 2);
    }
}

fn in_fixed_width_years(date: &UsageDate) -> bool {
    let year = match date {
        UsageDate::Date(d) => d.year(),
        UsageDate::Instant(i) => i.year(),
    };
    (0..=9999).contains(&year)
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
        if !in_fixed_width_years(self) {
            return match self {
                UsageDate::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
                UsageDate::Instant(i) => write!(f, "{}", i.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            };
        }
        f.write_str(self.write_wire(&mut WireBuf::new()))
    }
}

impl FromStr for UsageDate {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_usage_date(s).ok_or_else(|| {
            ValidationError::new(
                "date",
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
    if !s.contains('T') && !s.contains(' ') {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(UsageDate::Date);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Some(UsageDate::Instant(at.with_timezone(&Utc)));
    }
    // Zone-less date-times (with or without seconds and fraction) are UTC, as on the server.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .map(|naive| UsageDate::Instant(Utc.from_utc_datetime(&naive)))
}

impl Serialize for UsageDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if in_fixed_width_years(self) {
            serializer.serialize_str(self.write_wire(&mut WireBuf::new()))
        } else {
            serializer.collect_str(self)
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
        let millis: UsageDate = serde_json::from_str("1375338600000").unwrap();
        assert_eq!(millis.to_string(), "2013-08-01T06:30:00.000Z");
        assert!("2013-08-01x".parse::<UsageDate>().is_err());
        assert!(serde_json::from_str::<UsageDate>("true").is_err());
    }

    #[test]
    fn date_is_midnight_utc() {
        assert_eq!(parse("2013-08-01").instant(), parse("2013-08-01T00:00:00Z").instant());
        assert!(parse("2013-08-01") < parse("2013-08-01T00:00:00.001Z"));
    }

    #[test]
    fn writes_millis_utc_and_extended_years() {
        let json = serde_json::to_string(&parse("2013-08-01T06:30:00.123456Z")).unwrap();
        assert_eq!(json, "\"2013-08-01T06:30:00.123Z\"");
        let far = UsageDate::Date(NaiveDate::from_ymd_opt(12345, 1, 2).unwrap());
        assert_eq!(far.to_string(), "+12345-01-02");
    }
}
