//! Syntax errors of a `POST /1.0/kb/usages` body as Jackson's streaming binder meets them.
//!
//! Jackson parses while it binds, so where a syntax error sits decides what Kill Bill answers:
//!
//! - A token is read by the deserializer of the object or list that contains it (the field
//!   names, the separators and the first token of each value), outside of that container's own
//!   error wrapping; so an error there is wrapped by every *enclosing* container only: by the
//!   bean deserializer of each enclosing object (`BeanDeserializer._deserializeWithErrorWrapping`:
//!   `Class["property"]`) and by the collection deserializer of each enclosing list
//!   (`CollectionDeserializer`: `java.util.ArrayList[index]`).
//! - A string is decoded lazily, by the value's own deserializer: an error inside a string value
//!   (a bad escape, a control character, the end of input) is also wrapped by its container.
//! - With nothing to wrap it (an error in the root object itself, or before it), the
//!   `JsonParseException` reaches Kill Bill as it is.
//!
//! Wrapping (`JsonMappingException.wrapWithPath`, `WRAP_EXCEPTIONS` on by default) makes a
//! `com.fasterxml.jackson.databind.JsonMappingException` whose message is the parser's message,
//! its location, then ` (through reference chain: ...)`, and whose cause is the parser's
//! exception. A binding problem met before the syntax error (an unknown property, a wrong
//! type) wins, as with Jackson's single pass: the valid part of the body before the error is
//! bound first.

use super::bind::{Link, RECORD_CLASS, SOURCE, UNIT_CLASS, USAGE_CLASS};
use super::respond::class::JSON_PARSE;

/// An open container at the error: an object with its current property, or a list with its
/// current index.
#[derive(Clone, Debug)]
enum Frame {
    Object { key: Option<String>, start: usize },
    Array { index: usize, start: usize },
}

/// The structure of the body up to a syntax error.
#[derive(Debug)]
pub(super) struct Scan {
    frames: Vec<Frame>,
    /// The error is inside a string value (not a property name).
    in_value_string: bool,
    in_string: bool,
    /// The valid body before the error, closed, and how many of its bytes are the request's:
    /// what Jackson has bound when it meets the error.
    pub(super) repaired: Option<(String, usize)>,
}

fn structural(b: u8) -> bool {
    matches!(b, b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"') || b.is_ascii_whitespace()
}

/// The closing brackets of `frames`, innermost first.
fn closers(frames: &[Frame]) -> String {
    frames
        .iter()
        .rev()
        .map(|f| match f {
            Frame::Object { .. } => '}',
            Frame::Array { .. } => ']',
        })
        .collect()
}

/// Scans `body[..end]`, which a JSON parser read without error.
pub(super) fn scan(body: &[u8], end: usize) -> Scan {
    let mut frames: Vec<Frame> = Vec::new();
    // Where the valid prefix can be cut (after a complete value or an opening bracket).
    let mut cut: Option<(usize, String)> = None;
    let mut in_string = false;
    let mut in_value_string = false;
    let mut i = 0;
    while i < end {
        let b = body[i];
        match b {
            b if b.is_ascii_whitespace() => i += 1,
            b'{' | b'[' => {
                frames.push(if b == b'{' {
                    Frame::Object { key: None, start: i }
                } else {
                    Frame::Array { index: 0, start: i }
                });
                i += 1;
                cut = Some((i, closers(&frames)));
            }
            b'}' | b']' => {
                frames.pop();
                i += 1;
                cut = Some((i, closers(&frames)));
            }
            b',' => {
                match frames.last_mut() {
                    Some(Frame::Array { index, .. }) => *index += 1,
                    Some(Frame::Object { key, .. }) => *key = None,
                    None => {}
                }
                i += 1;
            }
            b':' => i += 1,
            b'"' => {
                let mut j = i + 1;
                while j < end && body[j] != b'"' {
                    j += if body[j] == b'\\' { 2 } else { 1 };
                }
                let is_key = matches!(frames.last(), Some(Frame::Object { key: None, .. }));
                if j >= end {
                    in_string = true;
                    in_value_string = !is_key;
                    break;
                }
                if is_key {
                    let name = serde_json::from_slice::<String>(&body[i..=j])
                        .unwrap_or_else(|_| String::from_utf8_lossy(&body[i + 1..j]).into_owned());
                    if let Some(Frame::Object { key, .. }) = frames.last_mut() {
                        *key = Some(name);
                    }
                } else {
                    cut = Some((j + 1, closers(&frames)));
                }
                i = j + 1;
            }
            _ => {
                let mut j = i;
                while j < end && !structural(body[j]) {
                    j += 1;
                }
                if j >= end {
                    // The token runs into the error: Jackson has not finished it.
                    break;
                }
                cut = Some((j, closers(&frames)));
                i = j;
            }
        }
    }
    let repaired = cut.map(|(at, close)| (format!("{}{close}", String::from_utf8_lossy(&body[..at])), at));
    Scan {
        frames,
        in_value_string,
        in_string,
        repaired,
    }
}

impl Scan {
    /// Jackson's reference chain for the error, or `None` when nothing wraps it (the error is
    /// in the root object or before it). `None` too when the path leaves the model: binding
    /// the valid prefix has then already failed (an unknown property or a wrong type), and
    /// that error is the answer.
    pub(super) fn chain(&self) -> Option<Vec<Link>> {
        let wrapped = if self.in_value_string {
            self.frames.len()
        } else {
            self.frames.len().saturating_sub(1)
        };
        let mut links = Vec::with_capacity(wrapped);
        let mut objects = 0;
        for frame in &self.frames[..wrapped] {
            match frame {
                Frame::Object { key, .. } => {
                    let class = [RECORD_CLASS, UNIT_CLASS, USAGE_CLASS].get(objects)?;
                    links.push(Link::Property(class, key.clone()?.into()));
                    objects += 1;
                }
                Frame::Array { index, .. } => links.push(Link::Index(*index)),
            }
        }
        (!links.is_empty()).then_some(links)
    }

    /// Jackson's parser exception for the error serde_json reported at `offset` (`eof`: at the
    /// end of the input): its class and its message with its location. Jackson's wording for
    /// the usual mistakes; serde_json's for the rare ones (invalid `\u` escapes, lone surrogates).
    pub(super) fn problem(&self, body: &[u8], offset: usize, eof: bool, serde: &str) -> (&'static str, String) {
        let text = String::from_utf8_lossy(&body[offset.min(body.len())..]);
        let c = text.chars().next().unwrap_or('\0');
        let unexpected = |comment: &str| format!("Unexpected character ({}): {comment}", char_desc(c));
        // Where Jackson's parser stands when it fails: past the character it could not take.
        let mut past = (offset + c.len_utf8()).min(body.len());
        let (class_name, message) = if eof {
            past = body.len();
            let last = body.iter().rev().find(|b| !b.is_ascii_whitespace());
            let message = match self.frames.last() {
                _ if self.in_value_string => " in VALUE_STRING".to_string(),
                _ if self.in_string => " in field name".to_string(),
                // Past a separator, Jackson's parser needs more than white space.
                Some(Frame::Object { .. }) if matches!(last, Some(b',' | b':')) => {
                    " within/between Object entries".to_string()
                }
                Some(Frame::Array { .. }) if last == Some(&b',') => " within/between Array entries".to_string(),
                Some(frame) => {
                    let (kind, start) = match frame {
                        Frame::Object { start, .. } => ("Object", *start),
                        Frame::Array { start, .. } => ("Array", *start),
                    };
                    format!(
                        ": expected close marker for {kind} (start marker at {})",
                        location(body, start)
                    )
                }
                None => " within/between root entries".to_string(),
            };
            (JSON_EOF, format!("Unexpected end-of-input{message}"))
        } else if serde.starts_with("invalid escape") {
            (JSON_PARSE, format!("Unrecognized character escape {}", char_desc(c)))
        } else if serde.starts_with("control character") {
            (
                JSON_PARSE,
                format!(
                    "Illegal unquoted character ({}): has to be escaped using backslash to be included in string value",
                    char_desc(c)
                ),
            )
        } else if serde.starts_with("expected `,` or `}`") {
            (JSON_PARSE, unexpected("was expecting comma to separate Object entries"))
        } else if serde.starts_with("expected `,` or `]`") {
            (JSON_PARSE, unexpected("was expecting comma to separate Array entries"))
        } else if serde.starts_with("expected `:`") {
            (
                JSON_PARSE,
                unexpected("was expecting a colon to separate field name and value"),
            )
        } else if serde.starts_with("key must be a string") || (serde.starts_with("trailing comma") && c == '}') {
            (JSON_PARSE, unexpected("was expecting double-quote to start field name"))
        } else if serde.starts_with("invalid number") && self.leading_zero(body, offset) {
            // Jackson peeks at the digit after the `0` without taking it.
            past = offset;
            (
                JSON_PARSE,
                "Invalid numeric value: Leading zeroes not allowed".to_string(),
            )
        } else if serde.starts_with("expected") || serde.starts_with("trailing comma") {
            let start = token_start(body, offset);
            if matches!(c, '}' | ']' | ',') {
                (JSON_PARSE, unexpected("expected a value"))
            } else if body[start].is_ascii_alphabetic() || matches!(body[start], b'_' | b'$') {
                // Jackson reads on while `Character.isJavaIdentifierPart`.
                let end = body[start..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$') || *b >= 0x80))
                    .map_or(body.len(), |n| start + n);
                past = end;
                let token = String::from_utf8_lossy(&body[start..end]);
                (
                    JSON_PARSE,
                    format!("Unrecognized token '{token}': was expecting {VALUES_WITH_PARENS}"),
                )
            } else {
                (
                    JSON_PARSE,
                    unexpected(&format!("expected a valid value {VALUES_WITH_PARENS}")),
                )
            }
        } else {
            (JSON_PARSE, serde.to_string())
        };
        (class_name, format!("{message}\n at {}", location(body, past)))
    }

    /// Whether the number that fails at `offset` starts with `0` followed by a digit.
    fn leading_zero(&self, body: &[u8], offset: usize) -> bool {
        let start = token_start(body, offset);
        let digits = body[start..].strip_prefix(b"-").unwrap_or(&body[start..]);
        digits.first() == Some(&b'0') && digits.get(1).is_some_and(u8::is_ascii_digit)
    }
}

const JSON_EOF: &str = "com.fasterxml.jackson.core.io.JsonEOFException";
const VALUES_WITH_PARENS: &str = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')";

/// The start of the token that contains `offset`.
fn token_start(body: &[u8], offset: usize) -> usize {
    let offset = offset.min(body.len().saturating_sub(1));
    body[..offset]
        .iter()
        .rposition(|b| structural(*b))
        .map_or(0, |at| at + 1)
        .min(offset)
}

/// Jackson's `_getCharDesc`.
fn char_desc(c: char) -> String {
    let code = u32::from(c);
    if c.is_control() {
        format!("(CTRL-CHAR, code {code})")
    } else if code > 255 {
        format!("'{c}' (code {code} / 0x{code:x})")
    } else {
        format!("'{c}' (code {code})")
    }
}

/// `[Source: ...; line: L, column: C]` for the parser standing before byte `at` (columns count
/// characters from 1, as Jackson's do).
fn location(body: &[u8], at: usize) -> String {
    let before = &body[..at.min(body.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |n| n + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    format!("[Source: {SOURCE}; line: {line}, column: {column}]")
}
