//! Dates as Kill Bill's Joda-Time parsers read them, with Joda's error messages.
//!
//! `ISODateTimeFormat.dateTimeParser()` (0.24+ query dates and record dates):
//!
//! ```text
//! datetime      = time | date-opt-time
//! time          = 'T' time-element [offset]
//! date-opt-time = date-element ['T' [time-element] [offset]]
//! date-element  = yyyy ['-' MM ['-' dd]] | xxxx '-W' ww ['-' e] | yyyy '-' DDD
//! time-element  = HH [':' mm [':' ss [fraction]] | fraction] | fraction
//! offset        = 'Z' | ('+' | '-') HH [[':'] mm [[':'] ss]]
//! ```
//!
//! `T` and `Z` may be lowercase. Numbers take 1 or 2 digits (the year up to 9, with a sign), so `2013-08-1` is read. A week
//! date without its day (`2013-W31`) is the Thursday of that week, as Joda resolves it from
//! 1970-01-01 (a Thursday). Values out of range give Joda's
//! `Cannot parse "...": Value 13 for monthOfYear must be in the range [1,12]`.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::java::joda_invalid_format;

/// What went wrong, as Joda's exception message (see [`joda_class`] for its class).
pub(crate) type DateError = String;

/// The class of the Joda exception behind `message`: a field out of its range
/// (`Cannot parse "2013-13-01": Value 13 for monthOfYear ...`) is an
/// `org.joda.time.IllegalFieldValueException` (a subclass of `IllegalArgumentException`),
/// anything else a plain `java.lang.IllegalArgumentException`.
pub(crate) fn joda_class(message: &str) -> &'static str {
    if message.starts_with("Cannot parse \"") {
        "org.joda.time.IllegalFieldValueException"
    } else {
        "java.lang.IllegalArgumentException"
    }
}

struct Cursor<'a> {
    chars: &'a [char],
}

impl Cursor<'_> {
    fn at(&self, pos: usize) -> Option<char> {
        self.chars.get(pos).copied()
    }

    /// Up to `max` ASCII digits from `pos`: (value, end).
    fn digits(&self, pos: usize, max: usize) -> Option<(i64, usize)> {
        let mut end = pos;
        let mut value: i64 = 0;
        while end < self.chars.len() && end - pos < max {
            match self.chars[end].to_digit(10) {
                Some(d) => value = value * 10 + i64::from(d),
                None => break,
            }
            end += 1;
        }
        (end > pos).then_some((value, end))
    }

    /// `('.' | ',') digit+`: (numerator, denominator, end); at most 9 digits are significant.
    fn fraction(&self, pos: usize) -> Option<(i64, i64, usize)> {
        if !matches!(self.at(pos), Some('.') | Some(',')) {
            return None;
        }
        let mut end = pos + 1;
        let (mut numerator, mut denominator) = (0i64, 1i64);
        while let Some(d) = self.at(end).and_then(|c| c.to_digit(10)) {
            if denominator < 1_000_000_000 {
                numerator = numerator * 10 + i64::from(d);
                denominator *= 10;
            }
            end += 1;
        }
        (end > pos + 1).then_some((numerator, denominator, end))
    }
}

#[derive(Default)]
struct Fields {
    year: i64,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    /// ISO week of the week-based year `year` (a week date).
    week: Option<i64>,
    day_of_week: Option<i64>,
    hour: i64,
    minute: i64,
    second: i64,
    /// Milliseconds from fractions.
    extra_millis: i64,
    offset_seconds: i64,
}

/// `yyyy ['-' MM ['-' dd]] | xxxx '-W' ww ['-' e] | yyyy '-' DDD` from `pos`: the longest match.
fn date_element(c: &Cursor<'_>, pos: usize, f: &mut Fields) -> Result<usize, usize> {
    let mut year_start = pos;
    let negative = match c.at(pos) {
        Some('-') => {
            year_start += 1;
            true
        }
        Some('+') => {
            year_start += 1;
            false
        }
        _ => false,
    };
    let (year, mut end) = c.digits(year_start, 9).ok_or(year_start)?;
    f.year = if negative { -year } else { year };
    if c.at(end) != Some('-') {
        return Ok(end);
    }
    // Only the week alternative reads a `W`: when it matches, it is the longest.
    if c.at(end + 1) == Some('W') {
        if let Some((week, week_end)) = c.digits(end + 2, 2) {
            f.week = Some(week);
            end = week_end;
            if c.at(end) == Some('-') {
                if let Some((day, day_end)) = c.digits(end + 1, 1) {
                    f.day_of_week = Some(day);
                    end = day_end;
                }
            }
        }
        return Ok(end);
    }
    // The ordinal alternative wins when it reads further.
    let ordinal = c.digits(end + 1, 3).filter(|(_, e)| e - (end + 1) == 3);
    let standard_end = match c.digits(end + 1, 2) {
        Some((month, month_end)) => {
            f.month = Some(month);
            let mut std_end = month_end;
            if c.at(month_end) == Some('-') {
                if let Some((day, day_end)) = c.digits(month_end + 1, 2) {
                    f.day = Some(day);
                    std_end = day_end;
                }
            }
            Some(std_end)
        }
        None => None,
    };
    match (standard_end, ordinal) {
        (Some(std_end), Some((day_of_year, ord_end))) if ord_end > std_end => {
            f.month = None;
            f.day = None;
            f.day_of_year = Some(day_of_year);
            end = ord_end;
        }
        (Some(std_end), _) => end = std_end,
        // "2013-": the optional part does not match; the date ends at the year.
        (None, _) => {}
    }
    Ok(end)
}

/// `HH [':' mm [':' ss [fraction]] | fraction] | fraction` from `pos` (optional as a whole).
fn time_element(c: &Cursor<'_>, pos: usize, f: &mut Fields) -> usize {
    const UNIT_MILLIS: [i64; 3] = [3_600_000, 60_000, 1000];
    let Some((hour, mut end)) = c.digits(pos, 2) else {
        return pos;
    };
    let mut values = [hour, 0, 0];
    let mut level = 0;
    loop {
        if let Some((numerator, denominator, fraction_end)) = c.fraction(end) {
            f.extra_millis = numerator * UNIT_MILLIS[level] / denominator;
            end = fraction_end;
            break;
        }
        if level == 2 || c.at(end) != Some(':') {
            break;
        }
        let Some((value, value_end)) = c.digits(end + 1, 2) else {
            break;
        };
        level += 1;
        values[level] = value;
        end = value_end;
    }
    [f.hour, f.minute, f.second] = values;
    end
}

/// `'Z' | ('+' | '-') HH [[':'] mm [[':'] ss]]` from `pos` (optional).
fn offset(c: &Cursor<'_>, pos: usize, f: &mut Fields) -> usize {
    let sign = match c.at(pos) {
        Some('Z' | 'z') => return pos + 1,
        Some('+') => 1,
        Some('-') => -1,
        _ => return pos,
    };
    let two = |at: usize| c.digits(at, 2).filter(|(_, e)| e - at == 2);
    let Some((hours, mut end)) = two(pos + 1) else {
        return pos;
    };
    let mut seconds = hours * 3600;
    for unit in [60, 1] {
        let start = if c.at(end) == Some(':') { end + 1 } else { end };
        match two(start) {
            Some((value, e)) => {
                seconds += value * unit;
                end = e;
            }
            None => break,
        }
    }
    f.offset_seconds = sign * seconds;
    end
}

fn field_error(text: &str, value: i64, field: &str, min: i64, max: i64) -> DateError {
    format!("Cannot parse \"{text}\": Value {value} for {field} must be in the range [{min},{max}]")
}

/// Checks the fields in Joda's order (largest first) and builds the local date-time.
fn resolve(text: &str, f: &Fields) -> Result<NaiveDateTime, DateError> {
    let year = i32::try_from(f.year)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
        .ok_or_else(|| field_error(text, f.year, "year", -262_143, 262_142))?;
    let date = if let Some(week) = f.week {
        week_date(text, year.year(), week, f.day_of_week.unwrap_or(4))?
    } else if let Some(day_of_year) = f.day_of_year {
        let days = if year.leap_year() { 366 } else { 365 };
        if !(1..=days).contains(&day_of_year) {
            return Err(field_error(text, day_of_year, "dayOfYear", 1, days));
        }
        year.with_ordinal(day_of_year as u32).unwrap_or(year)
    } else {
        let month = f.month.unwrap_or(1);
        if !(1..=12).contains(&month) {
            return Err(field_error(text, month, "monthOfYear", 1, 12));
        }
        let first = year.with_month(month as u32).unwrap_or(year);
        let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
        let days = next.signed_duration_since(first).num_days().max(28);
        let day = f.day.unwrap_or(1);
        if !(1..=days).contains(&day) {
            return Err(field_error(text, day, "dayOfMonth", 1, days));
        }
        first.with_day(day as u32).unwrap_or(first)
    };
    for (value, field, max) in [
        (f.hour, "hourOfDay", 23),
        (f.minute, "minuteOfHour", 59),
        (f.second, "secondOfMinute", 59),
    ] {
        if !(0..=max).contains(&value) {
            return Err(field_error(text, value, field, 0, max));
        }
    }
    let time = NaiveTime::from_hms_opt(f.hour as u32, f.minute as u32, f.second as u32).unwrap_or(NaiveTime::MIN);
    date.and_time(time)
        .checked_add_signed(Duration::milliseconds(f.extra_millis))
        .ok_or_else(|| field_error(text, f.year, "year", -262_143, 262_142))
}

/// Week `week`, day `day` (Monday = 1) of the ISO week-based year `weekyear`, with Joda's
/// checks: the week is in `[1,52]`, or `[1,53]` in a year that has 53 weeks.
fn week_date(text: &str, weekyear: i32, week: i64, day: i64) -> Result<NaiveDate, DateError> {
    let weeks = if NaiveDate::from_isoywd_opt(weekyear, 53, chrono::Weekday::Mon).is_some() {
        53
    } else {
        52
    };
    if !(1..=weeks).contains(&week) {
        return Err(field_error(text, week, "weekOfWeekyear", 1, weeks));
    }
    let weekday = match day {
        1..=7 => chrono::Weekday::try_from((day - 1) as u8).ok(),
        _ => None,
    };
    let Some(weekday) = weekday else {
        return Err(field_error(text, day, "dayOfWeek", 1, 7));
    };
    NaiveDate::from_isoywd_opt(weekyear, week as u32, weekday)
        .ok_or_else(|| field_error(text, week, "weekOfWeekyear", 1, weeks))
}

fn invalid(text: &str, pos: usize) -> DateError {
    joda_invalid_format(text, pos)
}

/// Reads `text` as `ISODateTimeFormat.dateTimeParser().withZoneUTC()` does, truncated to
/// milliseconds.
pub(crate) fn parse_date_time(text: &str) -> Result<DateTime<Utc>, DateError> {
    match canonical(text) {
        Some(at) => Ok(at),
        None => parse_joda(text),
    }
}

/// The form clients send (`2013-08-01T06:30:00.000Z`, what `UsageDate` writes), read at once:
/// the same instant the general parser reads. `None` for any other text, and for a field out
/// of its range (the general parser then gives Joda's message).
fn canonical(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if b.len() != 24 || separators.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(number(0, 4)?).ok()?, number(5, 7)?, number(8, 10)?)?;
    let time = NaiveTime::from_hms_milli_opt(number(11, 13)?, number(14, 16)?, number(17, 19)?, number(20, 23)?)?;
    Some(date.and_time(time).and_utc())
}

/// [`parse_date_time`] for any text, character by character as Joda reads it.
fn parse_joda(text: &str) -> Result<DateTime<Utc>, DateError> {
    let chars: Vec<char> = text.chars().collect();
    let c = Cursor { chars: &chars };
    let mut f = Fields::default();
    let is_t = |at: usize| matches!(c.at(at), Some('T' | 't'));
    let end = if is_t(0) {
        f.year = 1970;
        let time_end = time_element(&c, 1, &mut f);
        if time_end == 1 {
            return Err(invalid(text, 1));
        }
        offset(&c, time_end, &mut f)
    } else {
        let date_end = date_element(&c, 0, &mut f).map_err(|pos| invalid(text, pos))?;
        if is_t(date_end) {
            let time_end = time_element(&c, date_end + 1, &mut f);
            offset(&c, time_end, &mut f)
        } else {
            date_end
        }
    };
    if end < chars.len() {
        return Err(invalid(text, end));
    }
    let local = resolve(text, &f)?;
    local
        .checked_sub_signed(Duration::seconds(f.offset_seconds))
        .map(|utc| utc.and_utc())
        .ok_or_else(|| field_error(text, f.year, "year", -262_143, 262_142))
}

/// Reads a date alone, as Joda's `localDateParser()` does (`yyyy ['-' MM ['-' dd]]` or
/// `yyyy-DDD`).
pub(crate) fn parse_local_date(text: &str) -> Result<NaiveDate, DateError> {
    let chars: Vec<char> = text.chars().collect();
    let c = Cursor { chars: &chars };
    let mut f = Fields::default();
    let end = date_element(&c, 0, &mut f).map_err(|pos| invalid(text, pos))?;
    if end < chars.len() {
        return Err(invalid(text, end));
    }
    resolve(text, &f).map(|at| at.date())
}

/// Reads exactly `yyyy-MM-dd` (the 0.22 query dates).
pub(crate) fn parse_strict_date(text: &str) -> Result<NaiveDate, DateError> {
    let chars: Vec<char> = text.chars().collect();
    let c = Cursor { chars: &chars };
    let mut f = Fields::default();
    let mut pos = 0;
    for (i, width) in [4usize, 2, 2].into_iter().enumerate() {
        if i > 0 {
            if c.at(pos) != Some('-') {
                return Err(invalid(text, pos));
            }
            pos += 1;
        }
        match c.digits(pos, width) {
            Some((value, end)) if end - pos == width => {
                match i {
                    0 => f.year = value,
                    1 => f.month = Some(value),
                    _ => f.day = Some(value),
                }
                pos = end;
            }
            _ => return Err(invalid(text, pos)),
        }
    }
    if pos < chars.len() {
        return Err(invalid(text, pos));
    }
    resolve(text, &f).map(|at| at.date())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        parse_date_time(text)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    }

    #[test]
    fn lenient_iso_forms() {
        for (text, expected) in [
            ("2013-08-01", "2013-08-01T00:00:00.000Z"),
            ("2013-08-1", "2013-08-01T00:00:00.000Z"),
            ("2013-8-1", "2013-08-01T00:00:00.000Z"),
            ("2013-08", "2013-08-01T00:00:00.000Z"),
            ("2013", "2013-01-01T00:00:00.000Z"),
            ("2013-213", "2013-08-01T00:00:00.000Z"),
            ("2013-08-01T", "2013-08-01T00:00:00.000Z"),
            ("2013-08-01T10", "2013-08-01T10:00:00.000Z"),
            ("2013-08-01T10:30", "2013-08-01T10:30:00.000Z"),
            ("2013-08-01T10:00:00+02:00", "2013-08-01T08:00:00.000Z"),
            ("2013-08-01T10:00:00+0200", "2013-08-01T08:00:00.000Z"),
            ("2013-08-01T10:00:00-05", "2013-08-01T15:00:00.000Z"),
            ("2013-08-01T00:00:00.000Z", "2013-08-01T00:00:00.000Z"),
            ("2013-01-01T13:15:46Z", "2013-01-01T13:15:46.000Z"),
            ("2013-01-01T13:15:46.123456Z", "2013-01-01T13:15:46.123Z"),
            ("2013-01-01T13:15:46,5", "2013-01-01T13:15:46.500Z"),
            ("2013-01-01T10.5", "2013-01-01T10:30:00.000Z"),
            ("2013-08-01TZ", "2013-08-01T00:00:00.000Z"),
            ("2013-08-01t10:00z", "2013-08-01T10:00:00.000Z"),
            ("T10:00", "1970-01-01T10:00:00.000Z"),
            ("2012-02-29", "2012-02-29T00:00:00.000Z"),
            // ISO week dates; without a day, the Thursday (Joda resolves from 1970-01-01).
            ("2013-W31-4", "2013-08-01T00:00:00.000Z"),
            ("2013-W31", "2013-08-01T00:00:00.000Z"),
            ("2013-W1-1", "2012-12-31T00:00:00.000Z"),
            ("2015-W53-7", "2016-01-03T00:00:00.000Z"),
            ("2013-W31-4T10:00+02:00", "2013-08-01T08:00:00.000Z"),
        ] {
            assert_eq!(ok(text), expected, "{text}");
        }
    }

    #[test]
    fn joda_error_messages() {
        for (text, message) in [
            ("2013-08-01x", r#"Invalid format: "2013-08-01x" is malformed at "x""#),
            ("", r#"Invalid format: """#),
            ("abc", r#"Invalid format: "abc""#),
            ("2013-08-", r#"Invalid format: "2013-08-" is malformed at "-""#),
            (
                "2013-08-01T10:",
                r#"Invalid format: "2013-08-01T10:" is malformed at ":""#,
            ),
            (
                "2013-08-01 10:00",
                r#"Invalid format: "2013-08-01 10:00" is malformed at " 10:00""#,
            ),
            ("-", r#"Invalid format: "-" is too short"#),
            ("2013-Wx", r#"Invalid format: "2013-Wx" is malformed at "-Wx""#),
            (
                "2013-W53-1",
                r#"Cannot parse "2013-W53-1": Value 53 for weekOfWeekyear must be in the range [1,52]"#,
            ),
            (
                "2013-W31-8",
                r#"Cannot parse "2013-W31-8": Value 8 for dayOfWeek must be in the range [1,7]"#,
            ),
            ("T", r#"Invalid format: "T" is too short"#),
            (
                "2013-13-01",
                r#"Cannot parse "2013-13-01": Value 13 for monthOfYear must be in the range [1,12]"#,
            ),
            (
                "2013-02-29",
                r#"Cannot parse "2013-02-29": Value 29 for dayOfMonth must be in the range [1,28]"#,
            ),
            (
                "2013-08-01T24:00",
                r#"Cannot parse "2013-08-01T24:00": Value 24 for hourOfDay must be in the range [0,23]"#,
            ),
            (
                "2013-400",
                r#"Cannot parse "2013-400": Value 400 for dayOfYear must be in the range [1,365]"#,
            ),
        ] {
            assert_eq!(parse_date_time(text).unwrap_err(), message, "{text}");
        }
    }

    #[test]
    fn dates_alone() {
        assert_eq!(parse_local_date("2013-8-1").unwrap().to_string(), "2013-08-01");
        assert_eq!(
            parse_local_date("2013-08-01T00:00").unwrap_err(),
            r#"Invalid format: "2013-08-01T00:00" is malformed at "T00:00""#
        );
        assert_eq!(parse_strict_date("2013-08-01").unwrap().to_string(), "2013-08-01");
        assert_eq!(
            parse_strict_date("2013-08-1").unwrap_err(),
            r#"Invalid format: "2013-08-1" is malformed at "1""#
        );
        assert_eq!(
            parse_strict_date("2013-08-01T00:00:00Z").unwrap_err(),
            r#"Invalid format: "2013-08-01T00:00:00Z" is malformed at "T00:00:00Z""#
        );
        assert_eq!(
            parse_strict_date("2013-08").unwrap_err(),
            r#"Invalid format: "2013-08" is too short"#
        );
    }

    mod properties {
        use super::*;
        use chrono::{FixedOffset, TimeZone};
        use proptest::prelude::*;

        proptest! {
            /// Any text gets an instant or one of Joda's two messages, never a panic.
            #[test]
            fn any_text_is_parsed_or_refused_with_a_joda_message(text in "\\PC{0,40}") {
                match parse_date_time(&text) {
                    Ok(_) => {}
                    Err(message) => prop_assert!(
                        message.starts_with("Invalid format: \"") || message.starts_with("Cannot parse \""),
                        "{}", message
                    ),
                }
            }

            /// The canonical form's shortcut reads what the general parser reads, and leaves
            /// everything else (fields out of range included) to it.
            #[test]
            fn the_canonical_shortcut_agrees_with_joda(
                fields in (0u32..10_000, 0u32..14, 0u32..33, 0u32..25, 0u32..61, 0u32..61, 0u32..1000),
                millis in -62_167_219_200_000i64..253_402_300_800_000,
            ) {
                let (year, month, day, hour, minute, second, milli) = fields;
                let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z");
                prop_assert_eq!(canonical(&text), parse_joda(&text).ok(), "{}", text);
                let text = Utc.timestamp_millis_opt(millis).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                prop_assert_eq!(canonical(&text), Some(parse_joda(&text).unwrap()), "{}", text);
            }

            /// Every ISO-8601 date-time with an offset reads back as the same instant.
            #[test]
            fn offsets_are_converted_to_utc(millis in 0i64..4_102_444_800_000, offset_minutes in -18 * 60i32..=18 * 60) {
                let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
                let instant = Utc.timestamp_millis_opt(millis).unwrap();
                let text = instant.with_timezone(&offset).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
                prop_assert_eq!(parse_date_time(&text).unwrap(), instant, "{}", text);
            }
        }
    }
}
