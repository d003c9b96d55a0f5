//! Per-call options, checked when built.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;

use crate::config::{ascii_header, check_created_by, check_header_text, AuthHeaders};
use crate::encode::component;
use crate::{Error, InputField, InvalidInput, TenantCredentials, UserCredentials};

/// Options of one call: audit headers, a request id, plugin properties, another tenant or user,
/// a deadline. Everything is optional; unset values fall back to the client's.
///
/// Built with [`RequestOptions::builder`], which checks every value when
/// [`build`](RequestOptionsBuilder::build) is called, as a record is checked when built, and
/// keeps the header values ready: a call never checks them again. [`RequestOptions::new`] is no
/// options. Cheap to clone (the header values are shared).
///
/// One client can meter usage for many tenants: give each call the tenant's credentials.
///
/// ```
/// use usage_core::{InputField, RequestOptions, TenantCredentials};
///
/// let options = RequestOptions::builder()
///     .created_by("billing-job")
///     .reason("nightly import")
///     .request_id("req-42")
///     .tenant(TenantCredentials::new("acme", "acme-secret"))
///     .plugin_property("source", "meter-7")
///     .build()?;
/// assert!(!format!("{options:?}").contains("acme-secret"));
///
/// let error = RequestOptions::builder().request_id("réq-42").build().unwrap_err();
/// assert_eq!(error.invalid_input().unwrap().field(), InputField::RequestId);
/// # Ok::<(), usage_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RequestOptions {
    pub(crate) created_by: Option<AuditText>,
    pub(crate) reason: Option<AuditText>,
    pub(crate) comment: Option<AuditText>,
    pub(crate) request_id: Option<HeaderValue>,
    /// The authentication headers of another user or tenant (the secret ones marked sensitive).
    pub(crate) auth: AuthHeaders,
    /// `&pluginProperty=key%3Dvalue` for each property, encoded.
    pub(crate) plugin_query: String,
    pub(crate) deadline: Option<Duration>,
}

impl RequestOptions {
    /// No options: every value is the client's.
    pub fn new() -> Self {
        RequestOptions::default()
    }

    /// Starts building options.
    pub fn builder() -> RequestOptionsBuilder {
        RequestOptionsBuilder::default()
    }

    /// The deadline of the call, if one was set.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// These options with `request_id` as the `X-Request-Id`, checked as
    /// [`RequestOptionsBuilder::request_id`] is: for callers that send many requests with the
    /// same options but a request id each.
    ///
    /// ```
    /// use usage_core::{InputField, RequestOptions};
    ///
    /// let options = RequestOptions::builder().reason("import").build()?;
    /// let second = options.clone().with_request_id("import-2")?;
    /// let error = options.with_request_id("import\n2").unwrap_err();
    /// assert_eq!(error.invalid_input().unwrap().field(), InputField::RequestId);
    /// # let _ = second;
    /// # Ok::<(), usage_core::Error>(())
    /// ```
    pub fn with_request_id(mut self, request_id: impl AsRef<str>) -> Result<Self, Error> {
        self.request_id = Some(ascii_header(InputField::RequestId, request_id.as_ref())?);
        Ok(self)
    }
}

/// An audit text (`X-Killbill-CreatedBy`, `-Reason`, `-Comment`) checked and ready to send:
/// as it is when it is ASCII, and base64-encoded, which is what is sent when any audit text of
/// the request is not ASCII (with `X-Killbill-Encoding: base64`).
#[derive(Clone, Debug)]
pub(crate) struct AuditText {
    /// The value as it is; `None` when it is not ASCII.
    pub(crate) plain: Option<HeaderValue>,
    /// The value base64-encoded.
    pub(crate) base64: HeaderValue,
}

impl AuditText {
    /// Refuses control characters (CR, LF, NUL, ...), which cannot travel in a header even
    /// base64-encoded.
    pub(crate) fn new(field: InputField, text: &str) -> Result<Self, InvalidInput> {
        check_header_text(field, text)?;
        let invalid = |e: http::header::InvalidHeaderValue| InvalidInput::new(field, e.to_string());
        let plain = match text.is_ascii() {
            true => Some(HeaderValue::from_str(text).map_err(invalid)?),
            false => None,
        };
        let base64 = HeaderValue::try_from(base64::engine::general_purpose::STANDARD.encode(text)).map_err(invalid)?;
        Ok(AuditText { plain, base64 })
    }
}

/// Builds [`RequestOptions`]; see [`RequestOptions::builder`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RequestOptionsBuilder {
    created_by: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
    request_id: Option<String>,
    tenant: Option<TenantCredentials>,
    user: Option<UserCredentials>,
    plugin_properties: Vec<(String, String)>,
    deadline: Option<Duration>,
}

impl RequestOptionsBuilder {
    /// `X-Killbill-CreatedBy` for this call (POST only; at most 50 characters, no control
    /// characters).
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = Some(created_by.into());
        self
    }

    /// `X-Killbill-Reason` (POST only; no control characters).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// `X-Killbill-Comment` (POST only; no control characters).
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// `X-Request-Id`, propagated to the server's logs (visible ASCII).
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Calls as another tenant.
    pub fn tenant(mut self, tenant: TenantCredentials) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Calls as another user.
    pub fn user(mut self, user: UserCredentials) -> Self {
        self.user = Some(user);
        self
    }

    /// Adds a plugin property (`pluginProperty=key=value` on GETs; read by usage plugins only).
    /// The key must not be empty nor contain `=`.
    pub fn plugin_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.plugin_properties.push((key.into(), value.into()));
        self
    }

    /// An overall deadline for this call, across all attempts (a client without a timer refuses
    /// a call given one, before anything is sent).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The options, or the first value that cannot be sent, as an [`Error::InvalidInput`] with
    /// its [field](InputField): a created-by over 50 characters or an audit text with a control
    /// character, a request id that is not visible ASCII, a plugin property key that is empty or
    /// contains `=`, credentials that cannot be sent in a header.
    pub fn build(self) -> Result<RequestOptions, Error> {
        if let Some(created_by) = &self.created_by {
            check_created_by(created_by)?;
        }
        let audit = |field: InputField, text: Option<String>| text.map(|text| AuditText::new(field, &text)).transpose();
        let mut plugin_query = String::new();
        for (key, value) in &self.plugin_properties {
            if key.is_empty() || key.contains('=') {
                return Err(InvalidInput::new(
                    InputField::PluginProperty,
                    format!("key {key:?} must be non-empty and must not contain '='"),
                )
                .into());
            }
            // Writing into a String cannot fail.
            let _ = write!(plugin_query, "&pluginProperty={}", component(&format!("{key}={value}")));
        }
        Ok(RequestOptions {
            created_by: audit(InputField::CreatedBy, self.created_by)?,
            reason: audit(InputField::Reason, self.reason)?,
            comment: audit(InputField::Comment, self.comment)?,
            request_id: self
                .request_id
                .map(|id| ascii_header(InputField::RequestId, &id))
                .transpose()?,
            auth: AuthHeaders::new(self.user.as_ref(), self.tenant.as_ref())?,
            plugin_query,
            deadline: self.deadline,
        })
    }
}
