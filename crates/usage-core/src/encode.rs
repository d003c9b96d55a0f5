//! The one encoder of path segments and query components.

use percent_encoding::{utf8_percent_encode, AsciiSet, PercentEncode, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) and `:` is encoded,
/// so a value is always exactly one path segment or one query component. `:` is a `pchar`,
/// which a segment and a query carry as it is (RFC 3986, sections 3.3 and 3.4; in an absolute
/// path it cannot be read as a scheme): the instants of a window (`2013-08-01T00:00:00.000Z`)
/// go out readable, and the encoder takes each in one piece.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encodes `value` as one path segment or one query component.
pub(crate) fn component(value: &str) -> PercentEncode<'_> {
    utf8_percent_encode(value, COMPONENT)
}

/// Appends `value` percent-encoded as one component, piece by piece (no `fmt` machinery).
pub(crate) fn push_component(out: &mut String, value: &str) {
    for piece in component(value) {
        out.push_str(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved_and_colon() {
        for (raw, encoded) in [
            ("gallons", "gallons"),
            ("a b", "a%20b"),
            ("a/b", "a%2Fb"),
            ("a?b#c%d", "a%3Fb%23c%25d"),
            ("x+y=z&w", "x%2By%3Dz%26w"),
            ("été", "%C3%A9t%C3%A9"),
            ("A-Z_a.z~0", "A-Z_a.z~0"),
            ("2013-08-01T00:00:00.000Z", "2013-08-01T00:00:00.000Z"),
            ("a:b@c", "a:b%40c"),
        ] {
            assert_eq!(component(raw).to_string(), encoded);
        }
    }
}
