//! Users, tenants and the two authentication filters of docs/contract.md §5, in constant time.

use base64::Engine as _;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Response, StatusCode};
use subtle::{Choice, ConstantTimeEq};
use usage_core::Secret;

use super::contract::{API_KEY, API_SECRET};
use uuid::Uuid;

use super::respond;

/// The message of Kill Bill's tenant filter when a tenant header is missing.
pub(crate) const MISSING_TENANT_HEADERS: &str =
    "Make sure to set the X-Killbill-ApiKey and X-Killbill-ApiSecret headers";
const WRONG_TENANT: &str = "Unable to authenticate the tenant: unknown X-Killbill-ApiKey or wrong X-Killbill-ApiSecret";

/// A Kill Bill user.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) password: Secret,
}

/// A tenant: its id, API key and secret.
#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    pub(crate) id: Uuid,
    pub(crate) api_key: String,
    pub(crate) api_secret: Secret,
}

fn same(a: &[u8], b: &[u8]) -> Choice {
    a.ct_eq(b)
}

/// The users and tenants the emulator knows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    pub(crate) users: Vec<User>,
    pub(crate) tenants: Vec<Tenant>,
}

impl Credentials {
    /// The tenant of a request, or the 401 Kill Bill answers. Basic auth first, then the
    /// tenant headers. Every known credential is compared, each in constant time.
    pub(crate) fn authenticate(&self, headers: &HeaderMap, path: &str) -> Result<Tenant, Response<Bytes>> {
        if !self.basic_auth_ok(headers) {
            return Err(respond::basic_challenge());
        }
        let (Some(key), Some(secret)) = (headers.get(API_KEY), headers.get(API_SECRET)) else {
            return Err(respond::servlet_page(
                StatusCode::UNAUTHORIZED,
                path,
                MISSING_TENANT_HEADERS,
            ));
        };
        let mut found: Option<&Tenant> = None;
        for tenant in &self.tenants {
            let ok = same(tenant.api_key.as_bytes(), key.as_bytes())
                & same(tenant.api_secret.expose().as_bytes(), secret.as_bytes());
            if bool::from(ok) {
                found = Some(tenant);
            }
        }
        found
            .cloned()
            .ok_or_else(|| respond::servlet_page(StatusCode::UNAUTHORIZED, path, WRONG_TENANT))
    }

    fn basic_auth_ok(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return false;
        };
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let mut ok = Choice::from(0);
        for user in &self.users {
            ok |= same(user.name.as_bytes(), name) & same(user.password.expose().as_bytes(), password);
        }
        ok.into()
    }

    /// Adds a user, or sets the password of the user with that name.
    pub(crate) fn set_user(&mut self, name: String, password: Secret) {
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(user) => user.password = password,
            None => self.users.push(User { name, password }),
        }
    }

    /// Adds a tenant, or sets the secret of the tenant with that key (keeping its id and so its
    /// subscriptions); returns the tenant id.
    pub(crate) fn set_tenant(&mut self, api_key: String, api_secret: Secret) -> Uuid {
        match self.tenants.iter_mut().find(|t| t.api_key == api_key) {
            Some(tenant) => {
                tenant.api_secret = api_secret;
                tenant.id
            }
            None => {
                let id = Uuid::new_v4();
                self.tenants.push(Tenant {
                    id,
                    api_key,
                    api_secret,
                });
                id
            }
        }
    }

    /// The tenant with `api_key`.
    pub(crate) fn tenant(&self, api_key: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.api_key == api_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn credentials() -> Credentials {
        Credentials {
            users: vec![User {
                name: "admin".into(),
                password: Secret::new("password"),
            }],
            tenants: vec![Tenant {
                id: Uuid::new_v4(),
                api_key: "bob".into(),
                api_secret: Secret::new("lazar"),
            }],
        }
    }

    fn headers(basic: Option<&str>, key: Option<&str>, secret: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(basic) = basic {
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(basic));
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        }
        if let Some(key) = key {
            headers.insert(API_KEY, HeaderValue::from_str(key).unwrap());
        }
        if let Some(secret) = secret {
            headers.insert(API_SECRET, HeaderValue::from_str(secret).unwrap());
        }
        headers
    }

    #[test]
    fn basic_then_tenant() {
        let c = credentials();
        let ok = c
            .authenticate(&headers(Some("admin:password"), Some("bob"), Some("lazar")), "/")
            .unwrap();
        assert_eq!(ok.api_key, "bob");
        for basic in [
            None,
            Some("admin:wrong"),
            Some("nobody:password"),
            Some("adminpassword"),
        ] {
            let denied = c
                .authenticate(&headers(basic, Some("bob"), Some("lazar")), "/")
                .unwrap_err();
            assert_eq!(denied.status(), 401);
            assert_eq!(denied.headers()["www-authenticate"], "BASIC realm=\"application\"");
            assert!(denied.body().is_empty());
        }
        let missing = c
            .authenticate(&headers(Some("admin:password"), Some("bob"), None), "/x")
            .unwrap_err();
        assert!(String::from_utf8_lossy(missing.body()).contains(MISSING_TENANT_HEADERS));
        let wrong = c
            .authenticate(&headers(Some("admin:password"), Some("bob"), Some("nope")), "/x")
            .unwrap_err();
        assert_eq!(wrong.status(), 401);
        let body = String::from_utf8_lossy(wrong.body()).to_string();
        assert!(!body.contains("nope") && !body.contains("lazar") && body.contains(WRONG_TENANT));
    }
}
