//! Both GETs (docs/contract.md §3): the window, the sums, the answer.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::Tenant;
use super::respond::{self, class, empty, illegal_argument, simple_error, ErrorStyle};
use super::routing::java_uuid;
use super::{dates, write, InMemoryKillBill, WireFormat};
use crate::java::kill_bill_sum_string;
use crate::query::Query;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RolledUpJson {
    subscription_id: String,
    start_date: String,
    end_date: String,
    rolled_up_units: Vec<UnitJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UnitJson {
    unit_type: String,
    amount: Box<RawValue>,
}

pub(super) fn overflow(style: ErrorStyle) -> Response<Bytes> {
    simple_error(StatusCode::INTERNAL_SERVER_ERROR, style, class::ARITHMETIC, "Overflow")
}

impl InMemoryKillBill {
    /// Both GETs (docs/contract.md §3).
    pub(super) fn read(
        &self,
        tenant: &Tenant,
        id_segment: &str,
        unit: Option<&str>,
        query: &Query,
        style: ErrorStyle,
    ) -> Response<Bytes> {
        // JAX-RS converts the `UUID` path parameter before any resource code runs; a failed
        // conversion of a path parameter is a 404 with an empty body (docs/contract.md §1).
        let Some(id) = java_uuid(id_segment) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let (Some(start), Some(end)) = (query.first("startDate"), query.first("endDate")) else {
            return empty(StatusCode::BAD_REQUEST);
        };
        let legacy = self.inner.format == WireFormat::Legacy022;
        let parse = |text: &str| {
            if legacy {
                dates::parse_strict_date(text).map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
            } else {
                dates::parse_date_time(text)
            }
        };
        let (start, end) = match (parse(start), parse(end)) {
            (Ok(start), Ok(end)) => (start, end),
            (Err(message), _) | (_, Err(message)) => return illegal_argument(style, message),
        };
        let auto = self.inner.auto_provision.load(Ordering::SeqCst);
        if auto && !self.store().subscriptions.contains_key(&id) {
            let mut store = write(&self.inner.store);
            if let Err(denied) = self.owned(&mut store, tenant, id, style) {
                return denied;
            }
        }
        let store = self.store();
        let subscription = match store.subscriptions.get(&id) {
            None => return respond::subscription_not_found(style, &id),
            Some(s) if s.tenant != tenant.id => return respond::other_tenant(style, &id, &tenant.id),
            Some(s) => s,
        };
        let Some(sums) = subscription.roll_up(start, end, unit) else {
            return overflow(style);
        };
        let format_date = |at: DateTime<Utc>| {
            if legacy {
                at.format("%Y-%m-%d").to_string()
            } else {
                at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }
        };
        let mut units = Vec::with_capacity(sums.len());
        for (unit_type, sum) in sums {
            let text = if legacy {
                Some(sum.trunc().normalize().to_string())
            } else {
                kill_bill_sum_string(sum)
            };
            let Some(amount) = text.and_then(|t| RawValue::from_string(t).ok()) else {
                return overflow(style);
            };
            units.push(UnitJson {
                unit_type: unit_type.to_string(),
                amount,
            });
        }
        let body = RolledUpJson {
            subscription_id: id.to_string(),
            start_date: format_date(start),
            end_date: format_date(end),
            rolled_up_units: units,
        };
        match serde_json::to_vec(&body) {
            Ok(json) => respond::with_body(StatusCode::OK, Bytes::from(json)),
            Err(_) => overflow(style),
        }
    }
}
