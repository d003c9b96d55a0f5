//! The half-open window of the usage GETs.

use std::fmt::{self, Write as _};

use usage_models::UsageDate;

use crate::encode::push_component;
use crate::{Error, InputField, InvalidInput};

/// A half-open window `[start, end)` on instants: a record exactly at `end` is not counted.
/// Both ends are required by Kill Bill (its OpenAPI file wrongly calls them optional:
/// `docs/contract.md` §3.1). Dates
/// mean midnight UTC. An end before the start is refused; an equal end gives an empty result.
///
/// A window writes the query of its GETs (`?startDate=…&endDate=…`, percent-encoded) once, when
/// it is made, as options prepare their headers when built: a window kept and reused, such as a
/// month read again and again, costs a call no formatting.
///
/// ```
/// use usage_core::UsageWindow;
///
/// let august = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
/// assert_eq!(august.start().to_string(), "2013-08-01");
/// assert!(UsageWindow::parse("2013-09-01", "2013-08-01").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageWindow {
    start: UsageDate,
    end: UsageDate,
    /// Written from `start` and `end` by [`UsageWindow::new`].
    query: Query,
}

impl UsageWindow {
    /// `[start, end)`; refuses an end before the start.
    pub fn new(start: impl Into<UsageDate>, end: impl Into<UsageDate>) -> Result<Self, Error> {
        let (start, end) = (start.into(), end.into());
        if end.instant() < start.instant() {
            return Err(
                InvalidInput::new(InputField::Window, format!("ends ({end}) before it starts ({start})")).into(),
            );
        }
        let mut query = String::with_capacity(Query::CAPACITY);
        // One buffer for both dates; writing into a String cannot fail.
        let mut date = String::with_capacity(32);
        for (name, value) in [("?startDate=", start), ("&endDate=", end)] {
            date.clear();
            let _ = write!(date, "{value}");
            query.push_str(name);
            push_component(&mut query, &date);
        }
        let query = Query::new(&query)
            .ok_or_else(|| InvalidInput::new(InputField::Window, format!("{query:?} is too long for a query")))?;
        Ok(UsageWindow { start, end, query })
    }

    /// Parses both ends (`2013-08-01` or an ISO-8601 date-time) and checks them.
    pub fn parse(start: &str, end: &str) -> Result<Self, Error> {
        let parse = |which: InputField, value: &str| {
            value
                .parse::<UsageDate>()
                .map_err(|e| InvalidInput::new(which, e.reason().to_string()))
        };
        UsageWindow::new(
            parse(InputField::WindowStart, start)?,
            parse(InputField::WindowEnd, end)?,
        )
    }

    /// The start (inclusive).
    pub fn start(&self) -> UsageDate {
        self.start
    }

    /// The end (exclusive).
    pub fn end(&self) -> UsageDate {
        self.end
    }

    /// `?startDate=…&endDate=…`, each date percent-encoded as one query component.
    pub(crate) fn query(&self) -> &str {
        self.query.as_str()
    }
}

impl fmt::Debug for UsageWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageWindow")
            .field("start", &self.start)
            .field("end", &self.end)
            .finish()
    }
}

/// A window's query text in a fixed buffer, so that a window stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Query {
    len: u8,
    bytes: [u8; Query::CAPACITY],
}

impl Query {
    /// Room for the longest query: two instants of chrono's farthest years
    /// (`+262142-12-31T23:59:59.999Z`, whose `+` is encoded) take 78 bytes.
    const CAPACITY: usize = 80;

    /// `text` in a buffer, or `None` if it does not fit.
    fn new(text: &str) -> Option<Self> {
        let mut bytes = [0; Query::CAPACITY];
        bytes.get_mut(..text.len())?.copy_from_slice(text.as_bytes());
        Some(Query {
            len: text.len() as u8,
            bytes,
        })
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("percent-encoded text is ASCII")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    #[test]
    fn the_farthest_instants_fit_and_their_query_reads_back() {
        let window = UsageWindow::new(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC).unwrap();
        assert_eq!(
            window.query(),
            "?startDate=-262143-01-01T00:00:00.000Z&endDate=%2B262142-12-31T23:59:59.999Z"
        );
        let decoded = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        let (start, end) = window.query()[1..].split_once('&').unwrap();
        assert_eq!(
            decoded(start.strip_prefix("startDate=").unwrap()),
            window.start().to_string()
        );
        assert_eq!(decoded(end.strip_prefix("endDate=").unwrap()), window.end().to_string());
        // The longest query there is: both ends at the farthest instant, its `+` encoded.
        let longest = UsageWindow::new(DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC).unwrap();
        assert_eq!(longest.query().len(), 78);
    }

    #[test]
    fn debug_shows_the_two_ends_only() {
        let window = UsageWindow::parse("2013-08-01", "2013-09-01T06:30:00Z").unwrap();
        assert_eq!(
            format!("{window:?}"),
            "UsageWindow { start: Date(2013-08-01), end: Instant(2013-09-01T06:30:00Z) }"
        );
    }
}
