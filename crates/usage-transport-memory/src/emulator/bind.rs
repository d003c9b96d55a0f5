//! Binding the body of `POST /1.0/kb/usages` as Jackson does, with Jackson's errors.
//!
//! The body is read leniently into a tree that keeps every number's text (amounts are exact),
//! then bound field by field in document order: the first problem is the answer, as with
//! Jackson's streaming binder. Unknown properties are refused; scalars are coerced into
//! strings (`"trackingId": 12` is `"12"`); `""` binds as `null` for UUIDs, dates and amounts.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use http::StatusCode;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use usage_models::KillBillError;

use super::respond::{class, error, simple_error, ErrorStyle};
use super::WireFormat;
use super::{dates, syntax};

pub(super) const RECORD_CLASS: &str = "org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson";
// Nested static classes of `SubscriptionUsageRecordJson`: `Class.getName()` joins them with `$`.
pub(super) const UNIT_CLASS: &str = "org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson$UnitUsageRecordJson";
pub(super) const USAGE_CLASS: &str = "org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson$UsageRecordJson";
pub(super) const SOURCE: &str =
    "(org.glassfish.jersey.message.internal.ReaderInterceptorExecutor$UnCloseableInputStream)";
/// The properties of each class, in the order of its `@JsonCreator` parameters.
const RECORD_PROPERTIES: &[&str] = &["subscriptionId", "trackingId", "unitUsageRecords"];
const UNIT_PROPERTIES: &[&str] = &["unitType", "usageRecords"];
const USAGE_PROPERTIES: &[&str] = &["recordDate", "amount"];
const JSON_MAPPING: &str = "com.fasterxml.jackson.databind.JsonMappingException";
const INPUT_COERCION: &str = "com.fasterxml.jackson.core.exc.InputCoercionException";

/// A bound `SubscriptionUsageRecordJson`; `None` is a JSON `null` or a missing property.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) struct BoundRecord {
    pub(crate) subscription_id: Option<uuid::Uuid>,
    pub(crate) tracking_id: Option<String>,
    pub(crate) units: Option<Vec<Option<BoundUnit>>>,
}

/// A bound `UnitUsageRecordJson`.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) struct BoundUnit {
    pub(crate) unit_type: Option<String>,
    pub(crate) records: Option<Vec<Option<BoundUsage>>>,
}

/// A bound `UsageRecordJson`.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) struct BoundUsage {
    pub(crate) record_date: Option<DateTime<Utc>>,
    pub(crate) amount: Option<BoundAmount>,
}

/// An amount as the database column would take it.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) enum BoundAmount {
    /// Fits the column (rounded to 9 fraction digits, as MySQL does).
    Fits(Decimal),
    /// Out of the column's range: the insert fails.
    OutOfRange,
}

/// A JSON value with every number's text and every value's offset in the body.
enum Node<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<&'a RawValue>),
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
}

/// A JSON string, borrowed from the body unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_string())))
            }
            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

struct Ordered<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Ordered<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = Ordered<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((Text(key), value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    entries.push((key, value));
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

/// One path element of Jackson's "reference chain".
#[derive(Clone, Debug)]
pub(super) enum Link {
    Property(&'static str, Cow<'static, str>),
    Index(usize),
}

/// The binder: the body (for locations) and the reference chain so far.
struct Binder<'a> {
    body: &'a [u8],
    /// How much of `body` is the request's: the rest closes a body cut at a syntax error.
    valid_until: usize,
    chain: Vec<Link>,
    format: WireFormat,
}

/// A binding failure: the Jackson class, the message and the wrapped cause (class, message).
pub(crate) struct BindError {
    class_name: &'static str,
    message: String,
    cause: Option<(&'static str, String)>,
}

impl BindError {
    /// The 400 answer.
    pub(crate) fn into_response(self, style: ErrorStyle) -> http::Response<bytes::Bytes> {
        let Some((cause_class, cause_message)) = self.cause else {
            return simple_error(StatusCode::BAD_REQUEST, style, self.class_name, self.message);
        };
        let body = KillBillError::new(self.class_name, self.message).with_cause(cause_class, cause_message);
        error(StatusCode::BAD_REQUEST, style, body)
    }
}

/// ` (through reference chain: A["x"]->java.util.ArrayList[0]->...)`, or nothing for no links.
fn reference_chain(links: &[Link]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let mut out = String::from(" (through reference chain: ");
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.push_str("->");
        }
        match link {
            Link::Property(class, name) => out.push_str(&format!("{class}[\"{name}\"]")),
            Link::Index(index) => out.push_str(&format!("java.util.ArrayList[{index}]")),
        }
    }
    out.push(')');
    out
}

fn token_description(node: &Node<'_>) -> &'static str {
    match node {
        Node::Null => "Null value (token `JsonToken.VALUE_NULL`)",
        Node::Bool(true) => "Boolean value (token `JsonToken.VALUE_TRUE`)",
        Node::Bool(false) => "Boolean value (token `JsonToken.VALUE_FALSE`)",
        Node::Number(text) if is_integer(text) => "Integer value (token `JsonToken.VALUE_NUMBER_INT`)",
        Node::Number(_) => "Floating-point value (token `JsonToken.VALUE_NUMBER_FLOAT`)",
        Node::String(_) => "String value (token `JsonToken.VALUE_STRING`)",
        Node::Array(_) => "Array value (token `JsonToken.START_ARRAY`)",
        Node::Object(_) => "Object value (token `JsonToken.START_OBJECT`)",
    }
}

fn is_integer(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

impl<'a> Binder<'a> {
    fn node(&self, raw: &'a RawValue) -> Result<Node<'a>, BindError> {
        let text = raw.get();
        let node = match text.as_bytes().first() {
            Some(b'{') => Node::Object(self.parse::<Ordered<'a>>(raw)?.0),
            Some(b'[') => Node::Array(self.parse::<Vec<&'a RawValue>>(raw)?),
            Some(b'"') => Node::String(self.parse::<Text<'a>>(raw)?.0),
            Some(b't') => Node::Bool(true),
            Some(b'f') => Node::Bool(false),
            Some(b'n') => Node::Null,
            _ => Node::Number(text),
        };
        Ok(node)
    }

    fn parse<T: Deserialize<'a>>(&self, raw: &'a RawValue) -> Result<T, BindError> {
        serde_json::from_str(raw.get()).map_err(|e| BindError {
            class_name: class::JSON_PARSE,
            message: format!("{e}"),
            cause: None,
        })
    }

    /// `line: L, column: C` of a value in the body (1-based, as Jackson counts).
    fn location(&self, raw: &RawValue) -> String {
        self.location_at(self.offset(raw))
    }

    /// `line: L, column: C` of the parser standing before byte `offset`.
    fn location_at(&self, offset: usize) -> String {
        let before = &self.body[..offset.min(self.body.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!("\n at [Source: {SOURCE}; line: {line}, column: {column}]")
    }

    fn chain(&self) -> String {
        reference_chain(&self.chain)
    }

    fn fail(&self, class_name: &'static str, raw: &RawValue, problem: String) -> BindError {
        BindError {
            class_name,
            message: format!("{problem}{}{}", self.location(raw), self.chain()),
            cause: None,
        }
    }

    fn mismatched(&self, java_type: &str, raw: &RawValue, node: &Node<'_>) -> BindError {
        self.fail(
            class::MISMATCHED_INPUT,
            raw,
            format!(
                "Cannot deserialize value of type `{java_type}` from {}",
                token_description(node)
            ),
        )
    }

    fn invalid_format(&self, java_type: &str, raw: &RawValue, value: &str, why: &str) -> BindError {
        self.fail(
            class::INVALID_FORMAT,
            raw,
            format!("Cannot deserialize value of type `{java_type}` from String \"{value}\": {why}"),
        )
    }

    /// Binds an object of `class_name` with `known` properties, calling `field` for each.
    ///
    /// Every known property is a parameter of the class's `@JsonCreator` constructor, so
    /// Jackson (`BeanDeserializer._deserializeUsingPropertyBased`) buffers an unknown property
    /// met before all of them were seen, and reports it once they all are (when reading the
    /// token after the last one) or at the end of the object, with the parser's location
    /// then; an unknown property met after all of them is reported at once, the parser past
    /// the first token of its value. Problems in between come first.
    fn object(
        &mut self,
        raw: &'a RawValue,
        class_name: &'static str,
        known: &[&'static str],
        mut field: impl FnMut(&mut Self, &str, &'a RawValue) -> Result<(), BindError>,
    ) -> Result<bool, BindError> {
        let node = self.node(raw)?;
        let entries = match node {
            Node::Null => return Ok(false),
            Node::Object(entries) => entries,
            other => return Err(self.mismatched(class_name, raw, &other)),
        };
        let mut seen: Vec<&str> = Vec::with_capacity(known.len());
        let mut buffered: Option<&str> = None;
        for (index, (name, value)) in entries.iter().enumerate() {
            let Some(known_name) = known.iter().find(|k| **k == name) else {
                if seen.len() == known.len() {
                    let past = self.past_first_token(value);
                    return Err(self.unrecognized(class_name, known, name, past));
                }
                buffered.get_or_insert(name);
                continue;
            };
            self.chain.push(Link::Property(class_name, Cow::Borrowed(known_name)));
            field(self, name, value)?;
            self.chain.pop();
            if !seen.contains(known_name) {
                seen.push(known_name);
                if seen.len() == known.len() {
                    if let Some(unknown) = buffered.take() {
                        // The parser reads the next name and the start of its value, or the `}`.
                        let past = match entries.get(index + 1) {
                            Some((_, next)) => self.past_first_token(next),
                            None => self.end_of(raw),
                        };
                        return self.unrecognized_unless_cut(class_name, known, unknown, past);
                    }
                }
            }
        }
        match buffered {
            Some(unknown) => {
                let past = self.end_of(raw);
                self.unrecognized_unless_cut(class_name, known, unknown, past)
            }
            None => Ok(true),
        }
    }

    /// The error for the unknown property `name`, the parser standing at `past`.
    fn unrecognized(&mut self, class_name: &'static str, known: &[&str], name: &str, past: usize) -> BindError {
        let names: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
        self.chain
            .push(Link::Property(class_name, Cow::Owned(name.to_string())));
        let error = BindError {
            class_name: class::UNRECOGNIZED_PROPERTY,
            message: format!(
                "Unrecognized field \"{name}\" (class {class_name}), not marked as ignorable ({} known \
                 properties: {}]){}{}",
                known.len(),
                names.join(", "),
                self.location_at(past),
                self.chain()
            ),
            cause: None,
        };
        self.chain.pop();
        error
    }

    /// [`unrecognized`](Self::unrecognized), unless reading up to `past` meets the syntax
    /// error that cut the body first (see [`syntax`](super::syntax)): then that error wins.
    fn unrecognized_unless_cut(
        &mut self,
        class_name: &'static str,
        known: &[&str],
        name: &str,
        past: usize,
    ) -> Result<bool, BindError> {
        if past > self.valid_until {
            return Ok(true);
        }
        Err(self.unrecognized(class_name, known, name, past))
    }

    /// The offset of `raw` in the body.
    fn offset(&self, raw: &RawValue) -> usize {
        (raw.get().as_ptr() as usize)
            .saturating_sub(self.body.as_ptr() as usize)
            .min(self.body.len())
    }

    /// Where the parser stands once it has read the first token of `raw`: past the quote of a
    /// string (Jackson decodes strings lazily), the bracket of an object or array, or the
    /// whole scalar.
    fn past_first_token(&self, raw: &RawValue) -> usize {
        let start = self.offset(raw);
        match raw.get().as_bytes().first() {
            Some(b'"' | b'{' | b'[') => start + 1,
            _ => start + raw.get().len(),
        }
    }

    /// Past the end of `raw` (the `}` of an object).
    fn end_of(&self, raw: &RawValue) -> usize {
        self.offset(raw) + raw.get().len()
    }

    /// Binds a list (`null` is `None`), each element with `element`.
    fn list<T>(
        &mut self,
        raw: &'a RawValue,
        element_class: &str,
        mut element: impl FnMut(&mut Self, &'a RawValue) -> Result<Option<T>, BindError>,
    ) -> Result<Option<Vec<Option<T>>>, BindError> {
        let items = match self.node(raw)? {
            Node::Null => return Ok(None),
            Node::Array(items) => items,
            other => {
                let java_type = format!("java.util.ArrayList<{element_class}>");
                return Err(self.mismatched(&java_type, raw, &other));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            self.chain.push(Link::Index(index));
            out.push(element(self, item)?);
            self.chain.pop();
        }
        Ok(Some(out))
    }

    /// A `String` property: scalars are coerced to text.
    fn string(&self, raw: &'a RawValue) -> Result<Option<String>, BindError> {
        match self.node(raw)? {
            Node::Null => Ok(None),
            Node::String(s) => Ok(Some(s.into_owned())),
            Node::Number(text) => Ok(Some(text.to_string())),
            Node::Bool(b) => Ok(Some(b.to_string())),
            other => Err(self.mismatched("java.lang.String", raw, &other)),
        }
    }

    fn uuid(&self, raw: &'a RawValue) -> Result<Option<uuid::Uuid>, BindError> {
        let text = match self.node(raw)? {
            Node::Null => return Ok(None),
            Node::String(s) if s.is_empty() => return Ok(None),
            Node::String(s) => s,
            other => return Err(self.mismatched("java.util.UUID", raw, &other)),
        };
        uuid_from_text(&text)
            .map(Some)
            .map_err(|why| self.invalid_format("java.util.UUID", raw, &text, &why))
    }

    fn record_date(&self, raw: &'a RawValue) -> Result<Option<DateTime<Utc>>, BindError> {
        let legacy = self.format == WireFormat::Legacy022;
        let java_type = if legacy {
            "org.joda.time.LocalDate"
        } else {
            "org.joda.time.DateTime"
        };
        match self.node(raw)? {
            Node::Null => Ok(None),
            // Joda's exception is not Jackson's: `wrapAndThrow` wraps it in a
            // `JsonMappingException` with no parser, hence no location, and keeps it as the cause.
            Node::String(s) => record_date_from_text(&s, self.format).map_err(|message| BindError {
                class_name: JSON_MAPPING,
                message: format!("{message}{}", self.chain()),
                cause: Some((dates::joda_class(&message), message)),
            }),
            Node::Number(text) if is_integer(text) => text
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .map(|at| {
                    if legacy {
                        at.date_naive().and_time(chrono::NaiveTime::MIN).and_utc()
                    } else {
                        at
                    }
                })
                .map(Some)
                .ok_or_else(|| {
                    self.fail(
                        INPUT_COERCION,
                        raw,
                        format!("Numeric value ({text}) out of range of long"),
                    )
                }),
            other => Err(self.mismatched(java_type, raw, &other)),
        }
    }

    fn amount(&self, raw: &'a RawValue) -> Result<Option<BoundAmount>, BindError> {
        let legacy = self.format == WireFormat::Legacy022;
        let java_type = if legacy {
            "java.lang.Long"
        } else {
            "java.math.BigDecimal"
        };
        let node = self.node(raw)?;
        let (text, from_string) = match &node {
            Node::Null => return Ok(None),
            Node::String(s) if s.trim().is_empty() => return Ok(None),
            Node::String(s) => (s.trim(), true),
            Node::Number(text) => (*text, false),
            other => return Err(self.mismatched(java_type, raw, other)),
        };
        match amount_from_text(text, from_string, self.format) {
            Ok(amount) => Ok(Some(amount)),
            Err(AmountProblem::Invalid(why)) => Err(self.invalid_format(java_type, raw, text, why)),
            Err(AmountProblem::OutOfLong) => Err(self.fail(
                INPUT_COERCION,
                raw,
                format!("Numeric value ({text}) out of range of long (-9223372036854775808 - 9223372036854775807)"),
            )),
        }
    }

    fn usage(&mut self, raw: &'a RawValue) -> Result<Option<BoundUsage>, BindError> {
        let mut usage = BoundUsage::default();
        let present = self.object(raw, USAGE_CLASS, USAGE_PROPERTIES, |b, name, value| {
            match name {
                "recordDate" => usage.record_date = b.record_date(value)?,
                _ => usage.amount = b.amount(value)?,
            }
            Ok(())
        })?;
        Ok(present.then_some(usage))
    }

    fn unit(&mut self, raw: &'a RawValue) -> Result<Option<BoundUnit>, BindError> {
        let mut unit = BoundUnit::default();
        let present = self.object(raw, UNIT_CLASS, UNIT_PROPERTIES, |b, name, value| {
            match name {
                "unitType" => unit.unit_type = b.string(value)?,
                _ => unit.records = b.list(value, USAGE_CLASS, |b, item| b.usage(item))?,
            }
            Ok(())
        })?;
        Ok(present.then_some(unit))
    }

    fn record(&mut self, raw: &'a RawValue) -> Result<Option<BoundRecord>, BindError> {
        let mut record = BoundRecord::default();
        let present = self.object(raw, RECORD_CLASS, RECORD_PROPERTIES, |b, name, value| {
            match name {
                "subscriptionId" => record.subscription_id = b.uuid(value)?,
                "trackingId" => record.tracking_id = b.string(value)?,
                _ => record.units = b.list(value, UNIT_CLASS, |b, item| b.unit(item))?,
            }
            Ok(())
        })?;
        Ok(present.then_some(record))
    }
}

/// A `java.util.UUID` from its text (non-empty: `""` binds as `null`), or why not, in Jackson's words.
fn uuid_from_text(text: &str) -> Result<uuid::Uuid, String> {
    let dashes_ok = text.len() == 36 && [8, 13, 18, 23].iter().all(|&i| text.as_bytes().get(i) == Some(&b'-'));
    if !dashes_ok {
        return Err("UUID has to be represented by standard 36-char representation".to_string());
    }
    match text.chars().find(|c| *c != '-' && !c.is_ascii_hexdigit()) {
        Some(c) => Err(format!(
            "Non-hex character '{c}' (value 0x{:x}), not valid for UUID String",
            u32::from(c)
        )),
        None => uuid::Uuid::parse_str(text).map_err(|e| e.to_string()),
    }
}

/// A `recordDate` string: `None` when blank (Jackson binds it as `null`), or Joda's message.
fn record_date_from_text(text: &str, format: WireFormat) -> Result<Option<DateTime<Utc>>, dates::DateError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = match format {
        WireFormat::Legacy022 => dates::parse_local_date(text).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc()),
        WireFormat::V024 => dates::parse_date_time(text),
    };
    parsed.map(Some)
}

/// Why an amount's text does not bind.
enum AmountProblem {
    /// Jackson's `InvalidFormatException`, with this reason.
    Invalid(&'static str),
    /// A JSON number outside 0.22's `Long`.
    OutOfLong,
}

/// An amount as the column takes it, from a JSON number's text or a non-blank, trimmed string.
///
/// 0.24 amounts are `BigDecimal`; 0.22 amounts are `Long`: fractions are truncated (Jackson's
/// `ACCEPT_FLOAT_AS_INT`).
fn amount_from_text(text: &str, from_string: bool, format: WireFormat) -> Result<BoundAmount, AmountProblem> {
    if format == WireFormat::Legacy022 {
        const NOT_A_LONG: &str = "not a valid `java.lang.Long` value";
        if from_string && !is_integer(text) {
            return Err(AmountProblem::Invalid(NOT_A_LONG));
        }
        let value = parse_big_decimal(text).map(|d| d.trunc());
        return match value.and_then(|d| i64::try_from(d).ok()) {
            Some(long) => Ok(BoundAmount::Fits(Decimal::from(long))),
            None if from_string => Err(AmountProblem::Invalid(NOT_A_LONG)),
            None => Err(AmountProblem::OutOfLong),
        };
    }
    match parse_big_decimal(text) {
        Some(value) => Ok(fit_column(value)),
        // A JSON number Java reads but 96 bits cannot hold: far out of the column's range.
        None if !from_string => Ok(BoundAmount::OutOfRange),
        None => Err(AmountProblem::Invalid("not a valid representation")),
    }
}

/// Reads a JSON number's text (or a decimal string) exactly; `None` when 96 bits cannot hold it.
fn parse_big_decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        return Decimal::from_scientific(text).ok();
    }
    // Too many fraction digits for 96 bits: round them (the column keeps 9 anyway).
    Decimal::from_str_exact(text)
        .ok()
        .or_else(|| text.parse::<Decimal>().ok())
}

/// What `decimal(18,9)` keeps: at most 9 integer digits, fractions rounded half away from zero
/// to 9 digits (MySQL's rounding).
fn fit_column(value: Decimal) -> BoundAmount {
    let rounded = value.round_dp_with_strategy(9, RoundingStrategy::MidpointAwayFromZero);
    if rounded.abs() >= Decimal::from(1_000_000_000) {
        BoundAmount::OutOfRange
    } else {
        BoundAmount::Fits(rounded)
    }
}

/// Binds `body` (already known to be non-blank): `Ok(None)` for the literal `null`.
///
/// A plain body is bound by the [`fast`] path; anything else (and every error) is the binder's.
pub(crate) fn bind(body: &[u8], format: WireFormat) -> Result<Option<BoundRecord>, BindError> {
    match fast::bind(body, format) {
        Some(record) => Ok(Some(record)),
        None => bind_until(body, body.len(), format),
    }
}

/// Binds `body`, of which only the first `valid_until` bytes are the request's.
fn bind_until(body: &[u8], valid_until: usize, format: WireFormat) -> Result<Option<BoundRecord>, BindError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // Like Jackson, read the first value and ignore whatever trails it.
    let raw = match <&RawValue>::deserialize(&mut deserializer) {
        Ok(raw) => raw,
        Err(e) => return Err(syntax_error(body, &e, format)),
    };
    let mut binder = Binder {
        body,
        valid_until,
        chain: Vec::new(),
        format,
    };
    binder.record(raw)
}

/// The answer to a body with a syntax error (see [`syntax`](super::syntax)): a binding error
/// met before it, or the parser's exception, wrapped when a container holds it.
fn syntax_error(body: &[u8], e: &serde_json::Error, format: WireFormat) -> BindError {
    let eof = e.classify() == serde_json::error::Category::Eof;
    let offset = if eof {
        body.len()
    } else {
        let line_start = body
            .split_inclusive(|b| *b == b'\n')
            .take(e.line().saturating_sub(1))
            .map(<[u8]>::len)
            .sum::<usize>();
        (line_start + e.column().saturating_sub(1)).min(body.len())
    };
    let scan = syntax::scan(body, offset);
    if let Some((prefix, valid_until)) = &scan.repaired {
        if let Err(first) = bind_until(prefix.as_bytes(), *valid_until, format) {
            return first;
        }
    }
    let text = e.to_string();
    let serde_problem = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(problem, _)| problem);
    let (cause_class, cause_message) = scan.problem(body, offset, eof, serde_problem);
    match scan.chain() {
        None => BindError {
            class_name: cause_class,
            message: cause_message,
            cause: None,
        },
        Some(links) => BindError {
            class_name: JSON_MAPPING,
            message: format!("{cause_message}{}", reference_chain(&links)),
            cause: Some((cause_class, cause_message)),
        },
    }
}

mod fast;

#[cfg(test)]
mod tests;
