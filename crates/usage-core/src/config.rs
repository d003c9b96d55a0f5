//! Where to send requests and as whom.

use std::fmt;

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Uri};

use crate::options::AuditText;
use crate::{Error, InputField, InvalidInput, Secret, TenantCredentials, UserCredentials};

/// The default `X-Killbill-CreatedBy` of a client.
pub const DEFAULT_CREATED_BY: &str = "killbill-usage";

/// The longest `X-Killbill-CreatedBy` Kill Bill stores (the server answers 500 past it).
pub const MAX_CREATED_BY_CHARS: usize = 50;

/// The base URL of a Kill Bill server: scheme, host, port and an optional path prefix
/// (`https://billing.example.com/killbill`), with or without a trailing slash.
///
/// ```
/// use usage_core::BaseUrl;
///
/// let url = BaseUrl::parse("https://billing.example.com/killbill/").unwrap();
/// assert_eq!(url.as_str(), "https://billing.example.com/killbill");
/// assert!(BaseUrl::parse("ftp://example.com").is_err());
/// assert!(BaseUrl::parse("https://admin:password@example.com").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// The normalized URL.
    text: String,
    /// Its scheme and authority, parsed once: each request's URI is made from these and
    /// its own path and query, with no URL parsed again.
    scheme: Scheme,
    authority: Authority,
    /// The path prefix (`/killbill`), without a trailing slash; empty for none.
    path: String,
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BaseUrl").field(&self.text).finish()
    }
}

impl BaseUrl {
    /// Checks and normalizes a base URL.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::from(InvalidInput::new(InputField::BaseUrl, format!("{url:?} {reason}")));
        let uri: http::Uri = url
            .trim()
            .parse()
            .map_err(|e| invalid(&format!("is not a URL ({e})")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(invalid("must start with http:// or https://")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "must not carry credentials: give them to the client, which keeps them secret",
            ));
        }
        if uri.query().is_some() {
            return Err(invalid("must not have a query"));
        }
        let path = uri.path().trim_end_matches('/').to_string();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        Ok(BaseUrl {
            text: format!("{scheme}://{authority}{path}"),
            authority: authority.clone(),
            scheme,
            path,
        })
    }

    /// The normalized URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URI of `path_and_query` (`/1.0/kb/usages?...`, already percent-encoded) under
    /// this base URL, its path prefix included.
    pub(crate) fn uri(&self, path_and_query: String) -> Result<Uri, InvalidInput> {
        let invalid = |e: &dyn fmt::Display| InvalidInput::new(InputField::Uri, e.to_string());
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).map_err(|e| invalid(&e))?);
        Uri::from_parts(parts).map_err(|e| invalid(&e))
    }

    /// The path prefix (`/killbill`), without a trailing slash; empty for none.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }
}

/// Everything a request needs besides the operation: the server, the user, the tenant and the
/// default `X-Killbill-CreatedBy`. Header values are prepared once.
///
/// This is the sans-IO entry point: with a config, each operation turns into an
/// `http::Request<Bytes>` without any client or transport.
///
/// ```
/// use usage_core::{ClientConfig, TenantCredentials, UserCredentials};
///
/// let config = ClientConfig::new(
///     "http://127.0.0.1:8080",
///     UserCredentials::new("admin", "password"),
///     TenantCredentials::new("bob", "lazar"),
/// )
/// .unwrap();
/// assert_eq!(format!("{config:?}").contains("lazar"), false);
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) base_url: BaseUrl,
    /// The headers every request starts from: authentication, `Accept`, `User-Agent`.
    pub(crate) headers: HeaderMap,
    pub(crate) created_by: String,
    /// `created_by`, ready to send.
    pub(crate) created_by_header: AuditText,
}

impl ClientConfig {
    /// A config for `base_url` as `user` in `tenant`, with the default created-by
    /// ([`DEFAULT_CREATED_BY`]).
    pub fn new(base_url: &str, user: UserCredentials, tenant: TenantCredentials) -> Result<Self, Error> {
        // Room for every header a request adds (content type, the three audit headers, their
        // encoding, a request id): a clone keeps the table's size, so none rehashes it.
        let mut headers = HeaderMap::with_capacity(11);
        AuthHeaders::new(Some(&user), Some(&tenant))?.apply(&mut headers);
        headers.insert(ACCEPT, crate::operation::APPLICATION_JSON);
        headers.insert(USER_AGENT, HeaderValue::from_static(crate::operation::USER_AGENT_VALUE));
        Ok(ClientConfig {
            base_url: BaseUrl::parse(base_url)?,
            headers,
            created_by: DEFAULT_CREATED_BY.to_string(),
            created_by_header: AuditText::new(InputField::CreatedBy, DEFAULT_CREATED_BY)?,
        })
    }

    /// Sets the default `X-Killbill-CreatedBy` (at most 50 characters).
    pub fn with_created_by(mut self, created_by: impl Into<String>) -> Result<Self, Error> {
        let created_by = created_by.into();
        check_created_by(&created_by)?;
        self.created_by_header = AuditText::new(InputField::CreatedBy, &created_by)?;
        self.created_by = created_by;
        Ok(self)
    }

    /// The base URL.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    /// The default `X-Killbill-CreatedBy`.
    pub fn created_by(&self) -> &str {
        &self.created_by
    }
}

pub(crate) fn check_created_by(created_by: &str) -> Result<(), InvalidInput> {
    let chars = created_by.chars().count();
    if chars > MAX_CREATED_BY_CHARS {
        return Err(InvalidInput::new(
            InputField::CreatedBy,
            format!("is {chars} characters long; Kill Bill stores at most {MAX_CREATED_BY_CHARS}"),
        ));
    }
    check_header_text(InputField::CreatedBy, created_by)
}

/// Refuses characters that cannot travel in a header, even base64-encoded: control characters
/// (CR, LF, NUL, ...) have no business in audit texts.
pub(crate) fn check_header_text(header: InputField, value: &str) -> Result<(), InvalidInput> {
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(InvalidInput::new(
            header,
            format!("contains the control character {c:?} at byte {at}; it cannot be sent in a header"),
        )),
        None => Ok(()),
    }
}

/// A header value of visible ASCII only (API keys, request ids).
pub(crate) fn ascii_header(header: InputField, value: &str) -> Result<HeaderValue, InvalidInput> {
    check_header_text(header, value)?;
    if !value.is_ascii() {
        return Err(InvalidInput::new(header, "must be ASCII"));
    }
    HeaderValue::from_str(value).map_err(|e| InvalidInput::new(header, e.to_string()))
}

/// Prepared authentication headers; the secret ones are marked sensitive.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthHeaders {
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) api_key: Option<HeaderValue>,
    pub(crate) api_secret: Option<HeaderValue>,
}

impl AuthHeaders {
    pub(crate) fn new(
        user: Option<&UserCredentials>,
        tenant: Option<&TenantCredentials>,
    ) -> Result<Self, InvalidInput> {
        let mut headers = AuthHeaders::default();
        if let Some(user) = user {
            headers.authorization = Some(basic_auth(&user.user, &user.password)?);
        }
        if let Some(tenant) = tenant {
            headers.api_key = Some(ascii_header(InputField::ApiKey, &tenant.api_key)?);
            let mut secret = ascii_header(InputField::ApiSecret, tenant.api_secret.expose())?;
            secret.set_sensitive(true);
            headers.api_secret = Some(secret);
        }
        Ok(headers)
    }

    /// Sets the headers present here, replacing those already in `headers`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            (AUTHORIZATION, &self.authorization),
            (crate::operation::API_KEY, &self.api_key),
            (crate::operation::API_SECRET, &self.api_secret),
        ] {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
    }
}

fn basic_auth(user: &str, password: &Secret) -> Result<HeaderValue, InvalidInput> {
    if user.contains(':') {
        return Err(InvalidInput::new(
            InputField::User,
            "must not contain ':' (HTTP Basic authentication)",
        ));
    }
    check_header_text(InputField::User, user)?;
    if password.expose().chars().any(char::is_control) {
        return Err(InvalidInput::new(InputField::Password, "contains a control character"));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| InvalidInput::new(InputField::User, "cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}
