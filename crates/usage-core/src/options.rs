//! Per-call options.

use std::time::Duration;

use crate::{TenantCredentials, UserCredentials};

/// Options of one call: audit headers, a request id, plugin properties, another tenant or user,
/// a deadline. Everything is optional; unset values fall back to the client's.
///
/// One client can meter usage for many tenants: give each call the tenant's credentials.
///
/// ```
/// use usage_core::{RequestOptions, TenantCredentials};
///
/// let options = RequestOptions::new()
///     .created_by("billing-job")
///     .reason("nightly import")
///     .request_id("req-42")
///     .tenant(TenantCredentials::new("acme", "acme-secret"))
///     .plugin_property("source", "meter-7");
/// assert!(!format!("{options:?}").contains("acme-secret"));
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RequestOptions {
    pub(crate) created_by: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) comment: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) tenant: Option<TenantCredentials>,
    pub(crate) user: Option<UserCredentials>,
    pub(crate) plugin_properties: Vec<(String, String)>,
    pub(crate) deadline: Option<Duration>,
}

impl RequestOptions {
    /// No options.
    pub fn new() -> Self {
        RequestOptions::default()
    }

    /// `X-Killbill-CreatedBy` for this call (POST only; at most 50 characters).
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = Some(created_by.into());
        self
    }

    /// `X-Killbill-Reason` (POST only).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// `X-Killbill-Comment` (POST only).
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

    /// An overall deadline for this call, across all attempts.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}
