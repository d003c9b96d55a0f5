//! The errors: one story across the workspace, told in the crate docs ("Errors").

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use usage_models::{KillBillError, ValidationError};

use crate::TransportError;

/// Kill Bill's error code for a duplicate tracking id.
pub const DUPLICATE_TRACKING_ID_CODE: i64 = 50000;

/// Everything that can go wrong: building a client, a transport, options or an operation, and
/// making a call. Every fallible public function of `usage-core` and of the transport crates
/// returns it.
///
/// Match on the variant, or use the predicates ([`status`](Error::status),
/// [`is_not_found`](Error::is_not_found), [`kill_bill_code`](Error::kill_bill_code),
/// [`is_duplicate_tracking_id`](Error::is_duplicate_tracking_id),
/// [`invalid_input`](Error::invalid_input), ...), which beat matching on strings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input breaks a rule of the API: nothing was sent.
    #[error("invalid input, nothing was sent: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The call's deadline passed before a response came back.
    #[error("deadline of {deadline:?} exceeded after {attempts} attempt(s)")]
    #[non_exhaustive]
    DeadlineExceeded {
        /// The deadline of the call.
        deadline: Duration,
        /// How many attempts were started.
        attempts: u32,
    },
    /// The server answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// The server answered with a success status but a body that is not what the API
    /// promises.
    #[error(transparent)]
    Decode(Box<DecodeError>),
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Decode(e) => Some(e.status),
            _ => None,
        }
    }

    /// The server's error body, when it was a Kill Bill JSON error.
    pub fn kill_bill_error(&self) -> Option<&KillBillError> {
        match self {
            Error::Api(e) => e.kill_bill.as_ref(),
            _ => None,
        }
    }

    /// Kill Bill's error code (`50000` for a duplicate tracking id), when there is one.
    pub fn kill_bill_code(&self) -> Option<i64> {
        self.kill_bill_error().and_then(|e| e.code())
    }

    /// 404: the subscription does not exist (in this tenant).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// 401: wrong or missing user credentials or tenant key/secret.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(StatusCode::UNAUTHORIZED)
    }

    /// The tracking id was already used for this subscription (code 50000): the usage of this
    /// request was recorded before.
    pub fn is_duplicate_tracking_id(&self) -> bool {
        self.kill_bill_code() == Some(DUPLICATE_TRACKING_ID_CODE)
    }

    /// The input was refused before anything was sent.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidInput(_))
    }

    /// What was refused before anything was sent, and the [field](InvalidInput::field) at
    /// fault.
    ///
    /// ```
    /// use usage_core::{InputField, UsageWindow};
    ///
    /// let error = UsageWindow::parse("2013-09-01", "2013-08-01").unwrap_err();
    /// assert_eq!(error.invalid_input().map(|e| e.field()), Some(InputField::Window));
    /// ```
    pub fn invalid_input(&self) -> Option<&InvalidInput> {
        match self {
            Error::InvalidInput(e) => Some(e),
            _ => None,
        }
    }

    /// A transport failure.
    pub fn transport_error(&self) -> Option<&TransportError> {
        match self {
            Error::Transport(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn decode(status: StatusCode, headers: HeaderMap, body: Bytes, source: serde_json::Error) -> Self {
        Error::Decode(Box::new(DecodeError {
            status,
            headers,
            body,
            source,
        }))
    }
}

impl From<ValidationError> for Error {
    fn from(error: ValidationError) -> Self {
        Error::InvalidInput(error.into())
    }
}

impl From<std::convert::Infallible> for Error {
    /// Never called: lets a call take already-checked values where it takes `TryInto`.
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Input refused before sending: which value ([`InputField`]), why, and the underlying error
/// when there is one (its [`source`](std::error::Error::source): a TLS library's, for a
/// root certificate). It is the payload of [`Error::InvalidInput`].
///
/// ```
/// use usage_core::{InputField, UsageWindow};
/// use usage_models::Field;
///
/// let err = UsageWindow::parse("2013-09-01", "2013-08-01").unwrap_err();
/// assert_eq!(err.invalid_input().unwrap().field(), InputField::Window);
///
/// let err = usage_models::UnitType::new("").map_err(usage_core::InvalidInput::from).unwrap_err();
/// assert!(matches!(err.field(), InputField::Model { field: Field::UnitType, unit: None, record: None }));
/// assert_eq!(err.to_string(), "unitType: must not be empty");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InvalidInput {
    field: InputField,
    reason: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// Equal when the field and the reason are (the source is not compared).
impl PartialEq for InvalidInput {
    fn eq(&self, other: &Self) -> bool {
        self.field == other.field && self.reason == other.reason
    }
}

impl Eq for InvalidInput {}

/// The value at fault in an [`InvalidInput`]: match on it rather than on any text. Its
/// `Display` is the name the messages use (`X-Killbill-CreatedBy`, `baseUrl`,
/// `unitUsageRecords[0].usageRecords[2].amount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputField {
    /// A field of a record or a model value, with its place in the record body (a
    /// [`ValidationError`]'s field and indices, or the unit type of a GET).
    Model {
        /// The field.
        field: usage_models::Field,
        /// The index of the unit in `unitUsageRecords`, if any.
        unit: Option<usize>,
        /// The index of the record in that unit's `usageRecords`, if any.
        record: Option<usize>,
    },
    /// The base URL of the server.
    BaseUrl,
    /// The user name (HTTP Basic authentication).
    User,
    /// The password.
    Password,
    /// The tenant (a missing `.tenant(...)`).
    Tenant,
    /// The transport (a missing `.transport(...)`).
    Transport,
    /// The timer (a policy that needs one).
    Timer,
    /// `X-Killbill-ApiKey`.
    ApiKey,
    /// `X-Killbill-ApiSecret`.
    ApiSecret,
    /// `X-Killbill-CreatedBy`.
    CreatedBy,
    /// `X-Killbill-Reason`.
    Reason,
    /// `X-Killbill-Comment`.
    Comment,
    /// `X-Request-Id`.
    RequestId,
    /// A plugin property.
    PluginProperty,
    /// A window whose end is before its start.
    Window,
    /// The start of a window, as text.
    WindowStart,
    /// The end of a window, as text.
    WindowEnd,
    /// A per-call deadline (on a client without a timer).
    Deadline,
    /// The request URI as built.
    Uri,
    /// The request body as serialized.
    Body,
    /// A root certificate given to a transport, by its index among those added
    /// (`HyperTransportBuilder::add_root_certificate`).
    RootCertificate {
        /// The index of the certificate, in the order they were added (from 0).
        index: usize,
    },
    /// The TLS configuration of a transport.
    Tls,
    /// A transport's connect timeout.
    ConnectTimeout,
    /// A transport's request timeout.
    RequestTimeout,
    /// A transport's pool idle timeout.
    PoolIdleTimeout,
}

impl InputField {
    /// A model field with no indices.
    pub(crate) fn model(field: usage_models::Field) -> Self {
        InputField::Model {
            field,
            unit: None,
            record: None,
        }
    }
}

impl fmt::Display for InputField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            InputField::Model { field, unit, record } => {
                if let Some(unit) = unit {
                    write!(f, "unitUsageRecords[{unit}].")?;
                }
                if let Some(record) = record {
                    write!(f, "usageRecords[{record}].")?;
                }
                field.as_str()
            }
            InputField::BaseUrl => "baseUrl",
            InputField::User => "user",
            InputField::Password => "password",
            InputField::Tenant => "tenant",
            InputField::Transport => "transport",
            InputField::Timer => "timer",
            InputField::ApiKey => "X-Killbill-ApiKey",
            InputField::ApiSecret => "X-Killbill-ApiSecret",
            InputField::CreatedBy => "X-Killbill-CreatedBy",
            InputField::Reason => "X-Killbill-Reason",
            InputField::Comment => "X-Killbill-Comment",
            InputField::RequestId => "X-Request-Id",
            InputField::PluginProperty => "pluginProperty",
            InputField::Window => "window",
            InputField::WindowStart => "window start",
            InputField::WindowEnd => "window end",
            InputField::Deadline => "deadline",
            InputField::Uri => "uri",
            InputField::Body => "body",
            InputField::RootCertificate { index } => {
                return write!(f, "root certificate #{index} (add_root_certificate)");
            }
            InputField::Tls => "TLS configuration",
            InputField::ConnectTimeout => "connect_timeout",
            InputField::RequestTimeout => "request_timeout",
            InputField::PoolIdleTimeout => "pool_idle_timeout",
        };
        f.write_str(name)
    }
}

/// Compares with the name the messages use.
impl PartialEq<str> for InputField {
    fn eq(&self, other: &str) -> bool {
        let name = self.to_string();
        name == other
    }
}

/// Compares with the name the messages use.
impl PartialEq<&str> for InputField {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl InvalidInput {
    /// `field` refused for `reason` (for the transport crates and test doubles: this crate's
    /// functions build their own).
    pub fn new(field: InputField, reason: impl Into<String>) -> Self {
        InvalidInput {
            field,
            reason: reason.into(),
            source: None,
        }
    }

    /// Keeps `source`, the underlying error, as this error's
    /// [`source`](std::error::Error::source).
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The value at fault.
    pub fn field(&self) -> InputField {
        self.field
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl StdError for InvalidInput {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ValidationError> for InvalidInput {
    fn from(error: ValidationError) -> Self {
        let field = InputField::Model {
            field: error.field(),
            unit: error.unit_index(),
            record: error.record_index(),
        };
        InvalidInput::new(field, error.reason())
    }
}

/// An error status from the server, with everything it sent.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) kill_bill: Option<KillBillError>,
}

impl ApiError {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw body (empty for Kill Bill's 400s on missing dates and 401s; HTML from proxies).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body parsed as a Kill Bill error, when it was one.
    pub fn kill_bill(&self) -> Option<&KillBillError> {
        self.kill_bill.as_ref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kill Bill answered {}", self.status)?;
        if let Some(error) = &self.kill_bill {
            write!(f, ": {}", error.short_class_name())?;
            if let Some(code) = error.code() {
                write!(f, " (code {code})")?;
            }
            if let Some(message) = &error.message() {
                write!(f, ": {message}")?;
            }
            return Ok(());
        }
        match body_excerpt(&self.body) {
            Some(excerpt) => write!(f, ": {excerpt}"),
            None => f.write_str(" with an empty body"),
        }
    }
}

impl std::error::Error for ApiError {}

/// The first 200 printable characters of a non-JSON body, with whitespace folded.
fn body_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let folded: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    (!folded.is_empty()).then_some(folded)
}

/// A success status with a body that could not be decoded. Why is in its `Display` and its
/// [`source`](std::error::Error::source) (the JSON parser's error, kept opaque so that no JSON
/// library's type is part of this crate's API).
#[derive(Debug)]
#[non_exhaustive]
pub struct DecodeError {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    source: serde_json::Error,
}

impl DecodeError {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not decode the {} response ({} bytes): {}",
            self.status,
            self.body.len(),
            self.source
        )
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
