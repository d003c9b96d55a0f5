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
pub struct UserCredentials {
    /// The user name (it must not contain `:`).
    pub user: String,
    /// The password.
    pub password: Secret,
}

impl UserCredentials {
    /// `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        UserCredentials {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// The credentials of a Kill Bill tenant (`X-Killbill-ApiKey` and `X-Killbill-ApiSecret`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantCredentials {
    /// The API key (not secret: it names the tenant).
    pub api_key: String,
    /// The API secret.
    pub api_secret: Secret,
}

impl TenantCredentials {
    /// `api_key` with `api_secret`.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<Secret>) -> Self {
        TenantCredentials {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }
}
