//! The half-open window of the usage GETs.

use usage_models::UsageDate;

use crate::{Error, InputField, InvalidInput};

/// A half-open window `[start, end)` on instants: a record exactly at `end` is not counted.
/// Both ends are required by Kill Bill (its OpenAPI file wrongly calls them optional:
/// `docs/contract.md` §3.1). Dates
/// mean midnight UTC. An end before the start is refused; an equal end gives an empty result.
///
/// ```
/// use usage_core::UsageWindow;
///
/// let august = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
/// assert_eq!(august.start().to_string(), "2013-08-01");
/// assert!(UsageWindow::parse("2013-09-01", "2013-08-01").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UsageWindow {
    start: UsageDate,
    end: UsageDate,
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
        Ok(UsageWindow { start, end })
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
}
