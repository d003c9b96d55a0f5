//! Usage over time: cutting a window into periods, and showing the sums as a table with bars,
//! JSON, CSV or an SVG chart.
//!
//! ```
//! use usage_cli::series::{periods, Every};
//!
//! let from = "2013-08-30".parse().unwrap();
//! let to = "2013-09-02T12:00:00Z".parse().unwrap();
//! let days = periods(from, to, Every::Day, 100).unwrap();
//! assert_eq!(days.len(), 4);
//! assert_eq!(days[3].start.to_string(), "2013-09-02");
//! assert_eq!(days[3].end.to_string(), "2013-09-02T12:00:00.000Z"); // the last one is cut at `to`
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::{DateTime, Months, NaiveTime, TimeDelta, Utc};
use serde::Serialize;
use usage_models::{Decimal, UsageDate};

use crate::render::amount_text;

/// The length of a period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Every {
    /// One day.
    Day,
    /// Seven days.
    Week,
    /// One calendar month (from the start's day of month).
    Month,
}

impl Every {
    /// `day`, `week` or `month`.
    pub fn name(self) -> &'static str {
        match self {
            Every::Day => "day",
            Every::Week => "week",
            Every::Month => "month",
        }
    }

    fn next(self, at: DateTime<Utc>, start: DateTime<Utc>, index: u32) -> Option<DateTime<Utc>> {
        match self {
            Every::Day => at.checked_add_signed(TimeDelta::days(1)),
            Every::Week => at.checked_add_signed(TimeDelta::days(7)),
            // From the start each time, so that Jan 31 + 1 month = Feb 28 does not drift.
            Every::Month => start.checked_add_months(Months::new(index + 1)),
        }
    }
}

/// One period `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    /// The start (inclusive).
    pub start: UsageDate,
    /// The end (exclusive).
    pub end: UsageDate,
}

/// A date when `at` is midnight UTC (shorter to read and to send), the instant otherwise.
fn as_usage_date(at: DateTime<Utc>) -> UsageDate {
    if at.time() == NaiveTime::MIN {
        UsageDate::Date(at.date_naive())
    } else {
        UsageDate::Instant(at)
    }
}

/// The periods of `every` from `from` to `to` (half-open); the last one ends at `to`.
/// Refuses an end before the start and more than `max_periods` periods.
pub fn periods(from: UsageDate, to: UsageDate, every: Every, max_periods: usize) -> Result<Vec<Period>, String> {
    let (start, end) = (from.instant(), to.instant());
    if end < start {
        return Err(format!("--to ({to}) is before --from ({from})"));
    }
    let mut out = Vec::new();
    let mut at = start;
    let mut index = 0u32;
    while at < end {
        if out.len() >= max_periods {
            return Err(format!(
                "the window holds more than {max_periods} periods of one {}: choose a longer period or a shorter window",
                every.name()
            ));
        }
        let next = every
            .next(at, start, index)
            .ok_or_else(|| "the window reaches past the dates this tool handles".to_string())?
            .min(end);
        out.push(Period {
            start: if index == 0 { from } else { as_usage_date(at) },
            end: if next == end { to } else { as_usage_date(next) },
        });
        at = next;
        index += 1;
    }
    Ok(out)
}

/// The sums of one period, by unit type (sorted by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// The period.
    pub period: Period,
    /// `(unit type, sum)` for each unit type with usage in the period.
    pub units: Vec<(String, Decimal)>,
}

impl Point {
    /// The sum over all unit types.
    pub fn total(&self) -> Decimal {
        self.units.iter().map(|(_, amount)| *amount).sum()
    }

    fn amount_of(&self, unit: &str) -> Decimal {
        self.units
            .iter()
            .find(|(name, _)| name == unit)
            .map(|(_, amount)| *amount)
            .unwrap_or_default()
    }
}

/// A series: what was asked and the points.
#[derive(Clone, Debug)]
pub struct Series {
    /// The subscription.
    pub subscription_id: String,
    /// The unit type asked for, or `None` for all.
    pub unit_type: Option<String>,
    /// The period length.
    pub every: Every,
    /// One point per period, in order.
    pub points: Vec<Point>,
}

impl Series {
    /// The unit types of the columns: the one asked for, or every one seen, sorted.
    pub fn columns(&self) -> Vec<String> {
        if let Some(unit) = &self.unit_type {
            return vec![unit.clone()];
        }
        let names: BTreeSet<&str> = self
            .points
            .iter()
            .flat_map(|p| p.units.iter().map(|(name, _)| name.as_str()))
            .collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// What the bars show: the unit asked for, or the total of all units.
    fn bar_label(&self) -> String {
        match &self.unit_type {
            Some(unit) => unit.clone(),
            None => "total of all unit types".to_string(),
        }
    }

    /// A table: period start, one column per unit type (plus `total` when there are
    /// several), and a bar of the total scaled to `bar_width` characters.
    pub fn to_table(&self, bar_width: usize) -> String {
        let columns = self.columns();
        let with_total = columns.len() > 1;
        let mut header: Vec<String> = vec!["period".to_string()];
        header.extend(columns.iter().cloned());
        if with_total {
            header.push("total".to_string());
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        for point in &self.points {
            let mut row = vec![point.period.start.to_string()];
            row.extend(columns.iter().map(|unit| amount_text(point.amount_of(unit))));
            if with_total {
                row.push(amount_text(point.total()));
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let max = self.points.iter().map(Point::total).fold(Decimal::ZERO, Decimal::max);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "subscription {}, {} per {} (bars: {})",
            self.subscription_id,
            match &self.unit_type {
                Some(unit) => format!("{unit:?}"),
                None => "every unit type".to_string(),
            },
            self.every.name(),
            self.bar_label()
        );
        let line = |cells: &[String], bar: &str| -> String {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == 0 {
                    let _ = write!(text, "{cell:<width$}", width = widths[i]);
                } else {
                    let _ = write!(text, "  {cell:>width$}", width = widths[i]);
                }
            }
            if !bar.is_empty() {
                let _ = write!(text, "  {bar}");
            }
            text.trim_end().to_string()
        };
        let _ = writeln!(out, "{}", line(&header, ""));
        for (point, row) in self.points.iter().zip(&rows) {
            let _ = writeln!(out, "{}", line(row, &bar(point.total(), max, bar_width)));
        }
        if self.points.is_empty() {
            let _ = writeln!(out, "(the window is empty)");
        }
        out
    }

    /// Comma-separated values, one line per period and unit type (zero when the unit had no
    /// usage in the period): `period_start,period_end,unit_type,amount`.
    pub fn to_csv(&self) -> String {
        let columns = self.columns();
        let mut out = String::from("period_start,period_end,unit_type,amount\n");
        for point in &self.points {
            for unit in &columns {
                let _ = writeln!(
                    out,
                    "{},{},{},{}",
                    point.period.start,
                    point.period.end,
                    csv_field(unit),
                    amount_text(point.amount_of(unit))
                );
            }
        }
        out
    }

    /// The JSON document of `--output json` (see [`SeriesJson`]).
    pub fn to_json(&self) -> String {
        let json = SeriesJson {
            subscription_id: &self.subscription_id,
            unit_type: self.unit_type.as_deref(),
            every: self.every.name(),
            periods: self
                .points
                .iter()
                .map(|point| PeriodJson {
                    start: point.period.start.to_string(),
                    end: point.period.end.to_string(),
                    units: point
                        .units
                        .iter()
                        .map(|(unit, amount)| crate::render::UnitJson {
                            unit_type: unit.clone(),
                            amount: *amount,
                        })
                        .collect(),
                    total: point.total(),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&json).unwrap_or_default()
    }

    /// A bar chart as a standalone SVG document: a title, a y axis on round ticks, one bar
    /// per period and unit type (grouped side by side, with a legend when there are several
    /// unit types), each labelled with its amount where it fits, and the period starts below.
    pub fn to_svg(&self) -> String {
        const PALETTE: [&str; 8] = [
            "#4a78c2", "#e07b39", "#3f9e5a", "#c2463e", "#8c62b3", "#8a6d3b", "#d46aa8", "#6b7b8c",
        ];
        let columns = self.columns();
        let k = columns.len().max(1);
        let n = self.points.len().max(1);
        let (left, right, top, bottom) = (80.0, 20.0, 70.0, 90.0);
        let plot_w = (n as f64 * 16.0 * k as f64 + n as f64 * 24.0).clamp(560.0, 1600.0);
        let plot_h = 300.0;
        let width = left + plot_w + right;
        let height = top + plot_h + bottom;
        let to_f = |d: Decimal| d.to_string().parse::<f64>().unwrap_or(0.0);
        let values: Vec<Vec<Decimal>> = self
            .points
            .iter()
            .map(|point| columns.iter().map(|unit| point.amount_of(unit)).collect())
            .collect();
        let all = values.iter().flatten().copied();
        let (min, max) = all.fold((Decimal::ZERO, Decimal::ZERO), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let ticks = nice_ticks(to_f(min), to_f(max));
        let (min_f, max_f) = (ticks[0], ticks[ticks.len() - 1]);
        let span = max_f - min_f;
        let y_of = |v: f64| top + plot_h * (max_f - v) / span;
        let zero_y = y_of(0.0);
        let axis_label = match columns.as_slice() {
            [unit] => unit.clone(),
            [] => "amount (no usage in the window)".to_string(),
            _ => "amount".to_string(),
        };
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let title = match columns.as_slice() {
            [unit] => format!("Usage per {}: {unit}", self.every.name()),
            _ => format!("Usage per {}, by unit type", self.every.name()),
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
            width / 2.0,
            escape(&title)
        );
        let subtitle = match (self.points.first(), self.points.last()) {
            (Some(first), Some(last)) => format!(
                "subscription {}, from {} to {} (excluded)",
                self.subscription_id, first.period.start, last.period.end
            ),
            _ => format!("subscription {}", self.subscription_id),
        };
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="44" font-size="12" fill="#555" text-anchor="middle">{}</text>"##,
            width / 2.0,
            escape(&subtitle)
        );
        // Y axis with round ticks.
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#333"/>"##,
            top + plot_h
        );
        for value in ticks.iter().copied() {
            let y = y_of(value);
            let _ = writeln!(
                svg,
                r##"<line x1="{}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
                left,
                left + plot_w
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                left - 6.0,
                y + 4.0,
                escape(&tick_label(value))
            );
        }
        // X axis at zero.
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{zero_y:.1}" x2="{}" y2="{zero_y:.1}" stroke="#333"/>"##,
            left + plot_w
        );
        let slot = plot_w / n as f64;
        let bar_w = slot * 0.8 / k as f64;
        let label_every = (n as f64 / 25.0).ceil().max(1.0) as usize;
        // Amounts above the bars only if every one of them fits (the tooltips have them all).
        let widest = values
            .iter()
            .flatten()
            .map(|a| amount_text(*a).len())
            .max()
            .unwrap_or(0);
        let show_amounts = widest as f64 * 6.0 <= bar_w;
        for (i, (point, amounts)) in self.points.iter().zip(&values).enumerate() {
            let group_x = left + slot * i as f64 + slot * 0.1;
            for (j, (unit, amount)) in columns.iter().zip(amounts).enumerate() {
                let x = group_x + bar_w * j as f64;
                let value = to_f(*amount);
                let (y, h) = if value >= 0.0 {
                    (y_of(value), zero_y - y_of(value))
                } else {
                    (zero_y, y_of(value) - zero_y)
                };
                if !amount.is_zero() {
                    let _ = writeln!(
                        svg,
                        r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                        (bar_w * 0.9).max(1.0),
                        PALETTE[j % PALETTE.len()],
                        escape(&point.period.start.to_string()),
                        escape(unit),
                        escape(&amount_text(*amount))
                    );
                }
                let label = amount_text(*amount);
                if show_amounts && (k == 1 || !amount.is_zero()) {
                    let label_y = if value >= 0.0 { y - 4.0 } else { y + h + 12.0 };
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{label_y:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                        x + bar_w * 0.45,
                        escape(&label)
                    );
                }
            }
            if i % label_every == 0 {
                let lx = left + slot * i as f64 + slot / 2.0;
                let ly = top + plot_h + 14.0;
                let _ = writeln!(
                    svg,
                    r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" font-size="10" transform="rotate(-45 {lx:.1} {ly:.1})">{}</text>"#,
                    escape(&short_label(point.period.start))
                );
            }
        }
        // A legend when there are several unit types.
        if columns.len() > 1 {
            for (j, unit) in columns.iter().enumerate() {
                let y = top + 4.0 + 16.0 * j as f64;
                let x = left + plot_w - 150.0;
                let _ = writeln!(
                    svg,
                    r#"<rect class="legend" x="{x:.1}" y="{y:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                    PALETTE[j % PALETTE.len()],
                    x + 14.0,
                    y + 9.0,
                    escape(unit)
                );
            }
        }
        if self.points.is_empty() {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="middle">no periods in the window</text>"#,
                left + plot_w / 2.0,
                top + plot_h / 2.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">period start ({} periods, window half-open)</text>"#,
            left + plot_w / 2.0,
            height - 8.0,
            self.every.name()
        );
        let _ = writeln!(
            svg,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            top + plot_h / 2.0,
            top + plot_h / 2.0,
            escape(&axis_label)
        );
        svg.push_str("</svg>\n");
        svg
    }
}

/// The JSON document of `series --output json`.
#[derive(Serialize)]
pub struct SeriesJson<'a> {
    /// The subscription.
    pub subscription_id: &'a str,
    /// The unit type asked for, or `null` for all.
    pub unit_type: Option<&'a str>,
    /// `day`, `week` or `month`.
    pub every: &'a str,
    /// One entry per period.
    pub periods: Vec<PeriodJson>,
}

/// One period of [`SeriesJson`].
#[derive(Serialize)]
pub struct PeriodJson {
    /// The start (inclusive).
    pub start: String,
    /// The end (exclusive).
    pub end: String,
    /// The sum of each unit type with usage in the period.
    pub units: Vec<crate::render::UnitJson>,
    /// The sum over all unit types, as a JSON number without trailing zeros.
    #[serde(serialize_with = "usage_models::json_decimal::serialize")]
    pub total: Decimal,
}

/// A bar of `value` out of `max` in `width` characters (eighth blocks for the remainder).
pub fn bar(value: Decimal, max: Decimal, width: usize) -> String {
    if value <= Decimal::ZERO || max <= Decimal::ZERO || width == 0 {
        return String::new();
    }
    let eighths = (value * Decimal::from(width as u64 * 8) / max)
        .round()
        .to_string()
        .parse::<usize>()
        .unwrap_or(0)
        .max(1);
    let mut out = "█".repeat(eighths / 8);
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    out.push_str(PARTS[eighths % 8]);
    out
}

/// Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) from at most `min` to at
/// least `max`, zero included, at least two of them.
fn nice_ticks(min: f64, max: f64) -> Vec<f64> {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let range = if max - min > 0.0 { max - min } else { 1.0 };
    let raw = range / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (min / step).floor() as i64;
    let last = ((max / step).ceil() as i64).max(first + 1);
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick value, short: `2.5M`, `750k`, `12`, `0.25`.
fn tick_label(value: f64) -> String {
    let trim = |text: String| {
        if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    };
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{}G", trim(format!("{:.2}", value / 1e9)))
    } else if abs >= 1e6 {
        format!("{}M", trim(format!("{:.2}", value / 1e6)))
    } else if abs >= 1e4 {
        format!("{}k", trim(format!("{:.2}", value / 1e3)))
    } else {
        trim(format!("{value:.3}"))
    }
}

fn short_label(date: UsageDate) -> String {
    match date {
        UsageDate::Date(day) => day.format("%Y-%m-%d").to_string(),
        UsageDate::Instant(at) => at.format("%Y-%m-%d %H:%M").to_string(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> UsageDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_of_each_length() {
        let weeks = periods(date("2013-08-01"), date("2013-08-20"), Every::Week, 10).unwrap();
        let starts: Vec<String> = weeks.iter().map(|p| p.start.to_string()).collect();
        assert_eq!(starts, ["2013-08-01", "2013-08-08", "2013-08-15"]);
        assert_eq!(weeks[2].end.to_string(), "2013-08-20");
        let months = periods(date("2013-01-31"), date("2013-04-01"), Every::Month, 10).unwrap();
        let ends: Vec<String> = months.iter().map(|p| p.end.to_string()).collect();
        assert_eq!(ends, ["2013-02-28", "2013-03-31", "2013-04-01"]);
        assert!(periods(date("2013-08-02"), date("2013-08-01"), Every::Day, 10).is_err());
        assert!(periods(date("2013-08-01"), date("2013-08-01"), Every::Day, 10)
            .unwrap()
            .is_empty());
        assert!(periods(date("2013-01-01"), date("2014-01-01"), Every::Day, 100).is_err());
    }

    fn series() -> Series {
        let days = periods(date("2013-08-01"), date("2013-08-04"), Every::Day, 10).unwrap();
        let amounts = [("10", "2"), ("5", "0"), ("0", "0")];
        Series {
            subscription_id: "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".into(),
            unit_type: None,
            every: Every::Day,
            points: days
                .into_iter()
                .zip(amounts)
                .map(|(period, (a, b))| Point {
                    period,
                    units: [("gallons", a), ("liters", b)]
                        .iter()
                        .filter(|(_, v)| *v != "0")
                        .map(|(u, v)| (u.to_string(), v.parse().unwrap()))
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn table_csv_json_and_svg() {
        let s = series();
        let table = s.to_table(8);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[1], "period      gallons  liters  total");
        assert_eq!(lines[2], "2013-08-01       10       2     12  ████████");
        assert_eq!(lines[3], "2013-08-02        5       0      5  ███▍");
        assert_eq!(lines[4], "2013-08-03        0       0      0");
        let csv = s.to_csv();
        assert_eq!(csv.lines().count(), 7);
        assert_eq!(csv.lines().nth(1), Some("2013-08-01,2013-08-02,gallons,10"));
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["every"], "day");
        assert_eq!(json["periods"][0]["total"], 12);
        assert_eq!(json["periods"][0]["units"][1]["unit_type"], "liters");
        assert_eq!(json["periods"][2]["units"].as_array().unwrap().len(), 0);
        let svg = s.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // Day 1: gallons 10 and liters 2; day 2: gallons 5; day 3: nothing.
        assert_eq!(svg.matches(r#"class="bar""#).count(), 3);
        assert_eq!(svg.matches(r#"class="legend""#).count(), 2);
        assert!(svg.contains(">2013-08-02<"));
        assert!(svg.contains(">liters<"));
        assert!(svg.contains("<title>2013-08-01 liters: 2</title>"));
        assert!(svg.contains("Usage per day, by unit type"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_ticks(0.0, 4_074_033.689), [0.0, 1e6, 2e6, 3e6, 4e6, 5e6]);
        assert_eq!(nice_ticks(0.0, 12.0), [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]);
        assert_eq!(nice_ticks(-3.0, 10.0), [-5.0, 0.0, 5.0, 10.0]);
        assert_eq!(nice_ticks(0.0, 0.0), [0.0, 0.2]);
        let labels: Vec<String> = [0.0, 2.5e6, 75_000.0, 12.0, 0.25]
            .iter()
            .map(|v| tick_label(*v))
            .collect();
        assert_eq!(labels, ["0", "2.5M", "75k", "12", "0.25"]);
    }

    #[test]
    fn bars_scale() {
        assert_eq!(bar(Decimal::from(5), Decimal::from(10), 4), "██");
        assert_eq!(bar(Decimal::ZERO, Decimal::from(10), 4), "");
        assert_eq!(bar(Decimal::from(-1), Decimal::from(10), 4), "");
        assert_eq!(bar(Decimal::from(1), Decimal::from(1000), 4), "▏");
    }
}
