//! Where a request goes: the path prefix, authentication and the routes of Jersey's templates.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use uuid::Uuid;

use super::record::Post;
use super::respond::{self, empty, ErrorStyle};
use super::{InMemoryKillBill, ADMIN_SUBSCRIPTIONS, USAGES};
use crate::query::Query;

/// Where a request goes.
pub(super) enum Route<'a> {
    Usages,
    Subscription(&'a str),
    Unit(&'a str, &'a str),
    Admin,
    NotFound,
}

/// `\w+-\w+-\w+-\w+-\w+`, Jersey's template for `{subscriptionId}`.
pub(super) fn subscription_template(segment: &str) -> bool {
    let parts: Vec<&str> = segment.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

pub(super) fn route(path: &str) -> Route<'_> {
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if path == USAGES {
        return Route::Usages;
    }
    if path == ADMIN_SUBSCRIPTIONS {
        return Route::Admin;
    }
    let Some(rest) = path.strip_prefix(USAGES).and_then(|r| r.strip_prefix('/')) else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [id] if subscription_template(id) => Route::Subscription(id),
        [id, unit] if subscription_template(id) && !unit.is_empty() => Route::Unit(id, unit),
        _ => Route::NotFound,
    }
}

/// `java.util.UUID.fromString` (Java 11): five dash-separated hex fields, each masked to its
/// width, so `a-b-c-d-e` is `0000000a-000b-000c-000d-00000000000e`. `None` where Java throws
/// (`IllegalArgumentException` for more than 36 characters, `NumberFormatException` for a field
/// that is not hex or overflows a `long`).
pub(super) fn java_uuid(text: &str) -> Option<Uuid> {
    if text.len() > 36 {
        return None;
    }
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() != 5 {
        return None;
    }
    let mut values = [0u64; 5];
    for (value, part) in values.iter_mut().zip(&parts) {
        if !part.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *value = i64::from_str_radix(part, 16).ok()? as u64;
    }
    let high = ((values[0] & 0xffff_ffff) << 32) | ((values[1] & 0xffff) << 16) | (values[2] & 0xffff);
    let low = ((values[3] & 0xffff) << 48) | (values[4] & 0xffff_ffff_ffff);
    Some(Uuid::from_u64_pair(high, low))
}

/// What [`InMemoryKillBill::prepare`] makes of a request.
pub(super) enum Prepared {
    /// The answer, already known.
    Answer(Response<Bytes>),
    /// A valid POST, to commit.
    Post(Post),
}

pub(super) fn options(allow: &'static str) -> Response<Bytes> {
    let mut response = empty(StatusCode::OK);
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

impl InMemoryKillBill {
    /// Reads, authenticates and routes a request: the answer, or a valid POST to commit.
    pub(super) fn prepare(&self, request: Request<Bytes>) -> Prepared {
        let (parts, body) = request.into_parts();
        let full_path = parts.uri.path();
        let prefix = self.inner.path_prefix.as_str();
        let path = match full_path.strip_prefix(prefix) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return Prepared::Answer(empty(StatusCode::NOT_FOUND)),
        };
        let query = Query::parse(parts.uri.query());
        let style = ErrorStyle {
            with_stack_trace: query.first("withStackTrace") == Some("true"),
        };
        let tenant = match self.credentials().authenticate(&parts.headers, full_path) {
            Ok(tenant) => tenant,
            Err(denied) => return Prepared::Answer(denied),
        };
        let method = &parts.method;
        let is_read = method == Method::GET || method == Method::HEAD;
        let mut response = match route(path) {
            Route::Usages | Route::Admin if method == Method::OPTIONS => options("POST,OPTIONS"),
            Route::Usages if method == Method::POST => {
                return match self.record(tenant, &parts.headers, &body, style) {
                    Ok(post) => Prepared::Post(post),
                    Err(response) => Prepared::Answer(response),
                };
            }
            Route::Admin if method == Method::POST => self.admin_subscription(&tenant, &body, style),
            Route::Usages | Route::Admin => respond::method_not_allowed("POST,OPTIONS"),
            Route::Subscription(_) | Route::Unit(..) if method == Method::OPTIONS => options("GET,HEAD,OPTIONS"),
            Route::Subscription(id) if is_read => self.read(&tenant, id, None, &query, style),
            Route::Unit(id, unit) if is_read => {
                // A path segment is only percent-decoded: `+` stays a `+` (Jersey's `@PathParam`),
                // unlike in the query.
                let unit = percent_decode_str(unit).decode_utf8_lossy();
                self.read(&tenant, id, Some(&unit), &query, style)
            }
            Route::Subscription(_) | Route::Unit(..) => respond::method_not_allowed("GET,HEAD,OPTIONS"),
            Route::NotFound => empty(StatusCode::NOT_FOUND),
        };
        if method == Method::HEAD {
            *response.body_mut() = Bytes::new();
        }
        Prepared::Answer(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_jersey() {
        assert!(matches!(route("/1.0/kb/usages"), Route::Usages));
        assert!(matches!(route("/1.0/kb/usages/"), Route::Usages));
        assert!(matches!(
            route("/1.0/kb/usages/a-b-c-d-e"),
            Route::Subscription("a-b-c-d-e")
        ));
        assert!(matches!(
            route("/1.0/kb/usages/a-b-c-d-e/x%2Fy"),
            Route::Unit("a-b-c-d-e", "x%2Fy")
        ));
        assert!(matches!(route("/1.0/kb/usages/not-a-uuid"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usages/a-b-c-d-e/x/y"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usages/a-b-c-d-%65"), Route::NotFound));
        assert!(matches!(route("/1.0/kb/usagesx"), Route::NotFound));
        assert!(matches!(route("/emulator/subscriptions"), Route::Admin));
    }

    #[test]
    fn java_uuid_is_lenient_like_java_11() {
        assert_eq!(
            java_uuid("1-2-3-4-5").unwrap().to_string(),
            "00000001-0002-0003-0004-000000000005"
        );
        assert_eq!(
            java_uuid("a-b-c-d-e").unwrap().to_string(),
            "0000000a-000b-000c-000d-00000000000e"
        );
        assert_eq!(
            java_uuid("8B9C1E0E-5A0B-4D47-9A7E-1F3C2C8F4A11").unwrap().to_string(),
            "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11"
        );
        assert_eq!(java_uuid("g-b-c-d-e"), None);
        assert_eq!(java_uuid("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), None);
        assert_eq!(java_uuid(&format!("{}-b-c-d-e", "a".repeat(29))), None);
        assert_eq!(java_uuid("10000000000000000-b-c-d-e"), None);
    }
}
