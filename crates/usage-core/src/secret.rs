//! Secrets that never show in `Debug`, `Display`, errors or logs.

use std::fmt;

/// A secret (a password or an API secret). `Debug` and `Display` print `[redacted]`; the
/// value is only reachable through [`expose`](Secret::expose).
///
/// ```
/// use usage_core::Secret;
///
/// let secret = Secret::new("lazar");
/// assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
/// assert_eq!(secret.expose(), "lazar");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: use it only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// HTTP Basic-auth credentials of a Kill Bill user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserCredentials {
    pub(crate) user: String,
    pub(crate) password: Secret,
}

impl UserCredentials {
    /// `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        UserCredentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user name (it must not contain `:`).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn password(&self) -> &Secret {
        &self.password
    }
}

/// The credentials of a Kill Bill tenant (`X-Killbill-ApiKey` and `X-Killbill-ApiSecret`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantCredentials {
    pub(crate) api_key: String,
    pub(crate) api_secret: Secret,
}

impl TenantCredentials {
    /// `api_key` with `api_secret`.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<Secret>) -> Self {
        TenantCredentials {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The API key (not secret: it names the tenant).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The API secret.
    pub fn api_secret(&self) -> &Secret {
        &self.api_secret
    }
}
