//! The responses the emulator writes: Kill Bill JSON errors, empty answers, servlet pages.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use usage_models::{KillBillError, StackTraceElement};

pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Java class names of the errors the emulator writes.
pub(crate) mod class {
    pub const ILLEGAL_ARGUMENT: &str = "java.lang.IllegalArgumentException";
    pub const ILLEGAL_STATE: &str = "java.lang.IllegalStateException";
    pub const NULL_POINTER: &str = "java.lang.NullPointerException";
    pub const ARITHMETIC: &str = "java.lang.ArithmeticException";
    pub const OBJECT_DOES_NOT_EXIST: &str =
        "org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist";
    pub const USAGE_API: &str = "org.killbill.billing.usage.api.UsageApiException";
    pub const UNRECOGNIZED_PROPERTY: &str = "com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException";
    pub const INVALID_FORMAT: &str = "com.fasterxml.jackson.databind.exc.InvalidFormatException";
    pub const MISMATCHED_INPUT: &str = "com.fasterxml.jackson.databind.exc.MismatchedInputException";
    pub const JSON_PARSE: &str = "com.fasterxml.jackson.core.JsonParseException";
    pub const UNABLE_TO_EXECUTE: &str = "org.jdbi.v3.core.statement.UnableToExecuteStatementException";
    pub const DATA_TRUNCATION: &str = "com.mysql.cj.jdbc.exceptions.MysqlDataTruncation";
}

/// An answer with `Content-Type: application/json` and `body`.
pub(crate) fn with_body(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    response
}

/// An answer with an empty body (and `Content-Type: application/json`, as Kill Bill sends).
pub(crate) fn empty(status: StatusCode) -> Response<Bytes> {
    with_body(status, Bytes::new())
}

/// Whether the request asked for stack traces (`?withStackTrace=true`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ErrorStyle {
    pub(crate) with_stack_trace: bool,
}

/// A Kill Bill JSON error (`className, code, message, causeClassName, causeMessage, stackTrace`).
pub(crate) fn error(status: StatusCode, style: ErrorStyle, error: KillBillError) -> Response<Bytes> {
    let error = if style.with_stack_trace {
        let frame = StackTraceElement::default()
            .with_class_name("org.killbill.billing.jaxrs.resources.UsageResource")
            .with_file_name("UsageResource.java")
            .with_method_name("emulated");
        error.with_stack_trace(vec![frame])
    } else {
        error
    };
    match serde_json::to_vec(&error) {
        Ok(body) => with_body(status, Bytes::from(body)),
        Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// A JSON error with a class and a message, no code, no cause.
pub(crate) fn simple_error(
    status: StatusCode,
    style: ErrorStyle,
    class_name: &str,
    message: impl Into<String>,
) -> Response<Bytes> {
    error(status, style, KillBillError::new(class_name, message))
}

/// 400 `IllegalArgumentException` with `message`.
pub(crate) fn illegal_argument(style: ErrorStyle, message: impl Into<String>) -> Response<Bytes> {
    simple_error(StatusCode::BAD_REQUEST, style, class::ILLEGAL_ARGUMENT, message)
}

/// 404 `ObjectDoesNotExist` for a subscription.
pub(crate) fn subscription_not_found(style: ErrorStyle, id: &uuid::Uuid) -> Response<Bytes> {
    simple_error(
        StatusCode::NOT_FOUND,
        style,
        class::OBJECT_DOES_NOT_EXIST,
        format!("Object id={id} type=SUBSCRIPTION doesn't exist!"),
    )
}

/// 500 `IllegalStateException`: the subscription belongs to another tenant.
pub(crate) fn other_tenant(style: ErrorStyle, id: &uuid::Uuid, tenant_id: &uuid::Uuid) -> Response<Bytes> {
    simple_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        style,
        class::ILLEGAL_STATE,
        format!("Object id={id} type=SUBSCRIPTION doesn't belong to tenant id={tenant_id}"),
    )
}

/// 500 from the database: a value longer than its column (`Data too long for column ...`) or
/// out of its range (`Out of range value for column ...`); see
/// [`InMemoryKillBill`](crate::InMemoryKillBill) for the choice of class and message.
pub(crate) fn data_truncation(style: ErrorStyle, column: &str, too_long: bool) -> Response<Bytes> {
    let problem = if too_long {
        "Data too long for column"
    } else {
        "Out of range value for column"
    };
    let cause = format!("Data truncation: {problem} '{column}' at row 1");
    let body = KillBillError::new(class::UNABLE_TO_EXECUTE, format!("{}: {cause}", class::DATA_TRUNCATION))
        .with_cause(class::DATA_TRUNCATION, cause);
    error(StatusCode::INTERNAL_SERVER_ERROR, style, body)
}

/// 401 from the Basic-auth filter: empty body and the challenge.
pub(crate) fn basic_challenge() -> Response<Bytes> {
    let mut response = empty(StatusCode::UNAUTHORIZED);
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("BASIC realm=\"application\""),
    );
    response
}

/// A servlet container's HTML error page (Jetty's), as Kill Bill's tenant filter produces.
/// `reason` must not hold anything the caller sent (no credentials are ever echoed).
pub(crate) fn servlet_page(status: StatusCode, path: &str, reason: &str) -> Response<Bytes> {
    let code = status.as_u16();
    let title = status.canonical_reason().unwrap_or("Error");
    let path = html_escape(path);
    let body = format!(
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n\
         <title>Error {code} {title}</title>\n</head>\n<body><h2>HTTP ERROR {code}</h2>\n\
         <p>Problem accessing {path}. Reason:\n<pre>    {reason}</pre></p><hr>\
         <a href=\"https://eclipse.org/jetty\">Powered by Jetty://</a><hr/>\n</body>\n</html>\n"
    );
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html;charset=utf-8"));
    response
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// 405 with `Allow`, as Jersey answers a known path with another method.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Bytes> {
    let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
    response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    response
}
