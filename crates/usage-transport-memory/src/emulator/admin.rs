//! Subscriptions, from the Rust API and from `POST /emulator/subscriptions` (the emulator's own
//! admin route, not Kill Bill's).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use usage_models::SubscriptionId;
use uuid::Uuid;

use super::auth::Tenant;
use super::respond::{self, illegal_argument, ErrorStyle};
use super::store::Subscription;
use super::{dates, write, EmulatorError, InMemoryKillBill, NewSubscription, StoredRow};

/// The subscription exists in another tenant.
struct OtherTenant;

impl InMemoryKillBill {
    /// Creates a subscription with a random id in the first tenant (`bob` by default).
    ///
    /// # Panics
    ///
    /// When the emulator has no tenant at all (built
    /// [`without_default_credentials`](crate::InMemoryKillBillBuilder::without_default_credentials)
    /// and given none): a test set up wrong, which must fail where it is wrong rather than
    /// later, on an id that exists nowhere. It panics instead of returning a `Result` because it
    /// is the convenience every test calls; [`add_subscription`](Self::add_subscription) and
    /// [`create_subscription_in`](Self::create_subscription_in) are the fallible forms.
    pub fn create_subscription(&self) -> SubscriptionId {
        match self.add_subscription(NewSubscription::new()) {
            Ok(id) => id,
            Err(e) => panic!("InMemoryKillBill::create_subscription: {e} (the emulator has no tenant: add one)"),
        }
    }

    /// Creates a subscription with a random id in the tenant with `api_key`.
    pub fn create_subscription_in(&self, api_key: &str) -> Result<SubscriptionId, EmulatorError> {
        self.add_subscription(NewSubscription::new().tenant(api_key))
    }

    /// Creates a subscription. Adding an id that exists in the same tenant updates its
    /// effective end date when one is given; in another tenant it is refused.
    pub fn add_subscription(&self, new: NewSubscription) -> Result<SubscriptionId, EmulatorError> {
        let tenant = {
            let credentials = self.credentials();
            let tenant = match &new.tenant {
                Some(key) => credentials.tenant(key),
                None => credentials.tenants.first(),
            };
            let Some(tenant) = tenant else {
                return Err(EmulatorError::UnknownTenant(new.tenant.unwrap_or_default()));
            };
            tenant.id
        };
        let id = new.id.unwrap_or_else(SubscriptionId::random);
        self.put_subscription(tenant, id.uuid(), new.effective_end_date)
            .map_err(|OtherTenant| EmulatorError::OtherTenant(id))?;
        Ok(id)
    }

    /// Creates subscription `id` in `tenant`; when it exists in that tenant, sets its effective
    /// end date if `end` is given; when it exists in another tenant, refuses. The one way both
    /// [`add_subscription`](Self::add_subscription) and `POST /emulator/subscriptions` create.
    fn put_subscription(&self, tenant: Uuid, id: Uuid, end: Option<DateTime<Utc>>) -> Result<(), OtherTenant> {
        let mut store = write(&self.inner.store);
        match store.subscriptions.get_mut(&id) {
            Some(existing) if existing.tenant != tenant => return Err(OtherTenant),
            Some(existing) => {
                if end.is_some() {
                    existing.effective_end = end;
                }
            }
            None => {
                store.subscriptions.insert(id, Subscription::new(tenant, end));
            }
        }
        Ok(())
    }

    /// Cancels a subscription: usage dated strictly after `effective_end_date` is then refused
    /// with 400 and an empty body.
    pub fn cancel_subscription(
        &self,
        id: SubscriptionId,
        effective_end_date: DateTime<Utc>,
    ) -> Result<(), EmulatorError> {
        let mut store = write(&self.inner.store);
        let subscription = store
            .subscriptions
            .get_mut(&id.uuid())
            .ok_or(EmulatorError::UnknownSubscription(id))?;
        subscription.effective_end = Some(effective_end_date);
        Ok(())
    }

    /// Whether the subscription exists (in any tenant).
    pub fn has_subscription(&self, id: SubscriptionId) -> bool {
        self.store().subscriptions.contains_key(&id.uuid())
    }

    /// How many subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.store().subscriptions.len()
    }

    /// How many usage rows are stored, across all subscriptions.
    pub fn row_count(&self) -> usize {
        self.store().rows
    }

    /// The stored rows of a subscription, by record date then insertion order.
    pub fn rows(&self, id: SubscriptionId) -> Vec<StoredRow> {
        let store = self.store();
        let Some(subscription) = store.subscriptions.get(&id.uuid()) else {
            return Vec::new();
        };
        let mut rows: Vec<(DateTime<Utc>, u64, StoredRow)> = subscription
            .units
            .iter()
            .flat_map(|(unit, rows)| {
                rows.iter().map(move |((at, seq), row)| {
                    let stored = StoredRow {
                        subscription_id: id,
                        unit_type: unit.clone(),
                        record_date: *at,
                        amount: row.amount,
                        tracking_id: row.origin.tracking_id.clone(),
                        created_by: row.origin.created_by.clone(),
                        reason: row.origin.reason.clone(),
                        comment: row.origin.comment.clone(),
                    };
                    (*at, *seq, stored)
                })
            })
            .collect();
        rows.sort_by_key(|(at, seq, _)| (*at, *seq));
        rows.into_iter().map(|(_, _, row)| row).collect()
    }

    /// `POST /emulator/subscriptions`: creates (or cancels) a subscription in the caller's
    /// tenant.
    pub(super) fn admin_subscription(&self, tenant: &Tenant, body: &Bytes, style: ErrorStyle) -> Response<Bytes> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Body {
            subscription_id: Option<String>,
            effective_end_date: Option<String>,
        }
        let parsed: Body = if body.iter().all(u8::is_ascii_whitespace) {
            Body {
                subscription_id: None,
                effective_end_date: None,
            }
        } else {
            match serde_json::from_slice(body) {
                Ok(parsed) => parsed,
                Err(e) => return illegal_argument(style, format!("Invalid body: {e}")),
            }
        };
        let id = match parsed.subscription_id.as_deref().filter(|s| !s.is_empty()) {
            None => Uuid::new_v4(),
            Some(text) => match Uuid::parse_str(text) {
                Ok(id) => id,
                Err(_) => return illegal_argument(style, format!("Invalid UUID string: {text}")),
            },
        };
        let end = match parsed.effective_end_date.as_deref() {
            None => None,
            Some(text) => match dates::parse_date_time(text) {
                Ok(end) => Some(end),
                Err(message) => return illegal_argument(style, message),
            },
        };
        if let Err(OtherTenant) = self.put_subscription(tenant.id, id, end) {
            return respond::other_tenant(style, &id, &tenant.id);
        }
        let json = serde_json::json!({ "subscriptionId": id.to_string() }).to_string();
        respond::with_body(StatusCode::CREATED, Bytes::from(json))
    }
}
