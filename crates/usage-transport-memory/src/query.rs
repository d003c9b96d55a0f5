//! The one query-string decoder of the crate, for the emulator and the mock alike.

/// A decoded query string: its `key=value` pairs in order.
///
/// Decoded as Kill Bill's JAX-RS implementation (Jersey) decodes `@QueryParam`s:
/// `UriComponent.decodeQuery` → `decodeQueryParam`, which turns `+` into a space and then
/// percent-decodes (invalid UTF-8 is replaced). That is the `application/x-www-form-urlencoded`
/// rule, so the decoding is `form_urlencoded::parse`'s, not `percent-encoding`'s alone (which
/// would keep `+`). A client must therefore send a `+` (as in a `+02:00` offset) as `%2B`.
/// Empty pairs (`a=1&&b=2`) are skipped; a key without `=` has the value `""`.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes `query` (the URI's query, without `?`; `None` when there is none).
    pub(crate) fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes());
        Query(
            pairs
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key` (what a `@QueryParam` gives).
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub(crate) fn values<'q>(&'q self, key: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_jersey_does() {
        let q = Query::parse(Some(
            "startDate=2013-08-01T10%3A00%3A00%2B02%3A00&x&endDate=a+b&startDate=2&&k%20y=%E2%82%AC",
        ));
        assert_eq!(q.first("startDate"), Some("2013-08-01T10:00:00+02:00"));
        assert_eq!(
            q.values("startDate").collect::<Vec<_>>(),
            ["2013-08-01T10:00:00+02:00", "2"]
        );
        assert_eq!(q.first("endDate"), Some("a b"), "`+` is a space");
        assert_eq!(q.first("x"), Some(""));
        assert_eq!(q.first("k y"), Some("€"));
        assert_eq!(q.first("y"), None);
        assert_eq!(Query::parse(None).first("x"), None);
    }
}
