//! `POST /1.0/kb/usages` (docs/contract.md §4): rows 1 to 10, then the checks of rows 11 to 14
//! and the insert.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};
use usage_models::KillBillError;
use uuid::Uuid;

use super::auth::Tenant;
use super::bind::{self, BoundAmount, BoundRecord};
use super::contract::{
    COMMENT, CREATED_BY, DUPLICATE_TRACKING_ID_CODE, ENCODING, MAX_CREATED_BY_CHARS, MAX_TRACKING_ID_CHARS,
    MAX_UNIT_TYPE_CHARS, REASON,
};
use super::respond::{self, class, empty, illegal_argument, ErrorStyle};
use super::store::{Origin, Store};
use super::{write, DuplicateCheck, InMemoryKillBill};

/// The audit headers of a POST, decoded (`X-Killbill-Encoding: base64`).
pub(super) struct Audit {
    created_by: String,
    reason: Option<String>,
    comment: Option<String>,
}

pub(super) fn header_text(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

pub(super) fn decode_audit(value: Option<String>, base64: bool, header: &str) -> Result<Option<String>, String> {
    match value {
        Some(value) if base64 => base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map(|bytes| Some(String::from_utf8_lossy(&bytes).into_owned()))
            .map_err(|_| format!("Illegal base64 value in {header}")),
        other => Ok(other),
    }
}

/// One validated usage record of a POST.
pub(super) struct NewRow {
    /// Shared by the records of one unit.
    unit_type: Arc<str>,
    at: DateTime<Utc>,
    amount: BoundAmount,
}

/// A POST that passed rows 1 to 10, to commit.
pub(super) struct Post {
    tenant: Tenant,
    subscription: Uuid,
    tracking_id: Option<String>,
    rows: Vec<NewRow>,
    audit: Audit,
    style: ErrorStyle,
}

/// The insert of a checked POST, with the limits of the database's columns (see
/// [`InMemoryKillBill`]): all rows or none. The caller holds the write lock.
pub(super) fn insert(store: &mut Store, post: Post, tracking_id: String) -> Response<Bytes> {
    let Post {
        subscription: id,
        rows,
        audit,
        style,
        ..
    } = post;
    if audit.created_by.chars().count() > MAX_CREATED_BY_CHARS {
        return respond::data_truncation(style, "created_by", true);
    }
    // Checked row by row, in the order of the row's columns, as the insert meets them.
    let tracking_id_too_long = tracking_id.chars().count() > MAX_TRACKING_ID_CHARS;
    let mut amounts = Vec::with_capacity(rows.len());
    for row in &rows {
        if row.unit_type.chars().count() > MAX_UNIT_TYPE_CHARS {
            return respond::data_truncation(style, "unit_type", true);
        }
        let BoundAmount::Fits(amount) = row.amount else {
            return respond::data_truncation(style, "amount", false);
        };
        if tracking_id_too_long {
            return respond::data_truncation(style, "tracking_id", true);
        }
        amounts.push(amount);
    }
    let origin = Origin {
        tracking_id,
        created_by: audit.created_by,
        reason: audit.reason,
        comment: audit.comment,
    };
    let rows = rows
        .iter()
        .zip(amounts)
        .map(|(row, amount)| (&*row.unit_type, row.at, amount));
    store.insert(id, origin, rows);
    empty(StatusCode::CREATED)
}

/// docs/contract.md §4 rows 3 to 9 (7' included), unit by unit as Kill Bill loops: the subscription, the tracking id
/// and the records.
pub(super) type Valid = (Uuid, Option<String>, Vec<NewRow>);

pub(super) fn validate(record: BoundRecord, style: ErrorStyle) -> Result<Valid, Response<Bytes>> {
    let npe = || {
        let body = KillBillError::new(class::NULL_POINTER, "").without_message();
        respond::error(StatusCode::BAD_REQUEST, style, body)
    };
    let Some(subscription) = record.subscription_id else {
        return Err(illegal_argument(
            style,
            "SubscriptionUsageRecordJson subscriptionId needs to be set",
        ));
    };
    let Some(units) = record.units else {
        return Err(illegal_argument(
            style,
            "SubscriptionUsageRecordJson unitUsageRecords needs to be set",
        ));
    };
    if units.is_empty() {
        return Err(illegal_argument(style, "json.getUnitUsageRecords() is empty"));
    }
    let mut rows = Vec::new();
    for unit in units {
        let Some(unit) = unit else { return Err(npe()) };
        let unit_type: Arc<str> = match unit.unit_type {
            Some(unit_type) if !unit_type.is_empty() => unit_type.into(),
            _ => return Err(illegal_argument(style, "UnitUsageRecordJson unitType need to be set")),
        };
        let Some(records) = unit.records else { return Err(npe()) };
        if records.is_empty() {
            return Err(illegal_argument(
                style,
                "UnitUsageRecordJson usageRecords must have at least one element.",
            ));
        }
        for usage in records {
            let Some(usage) = usage else { return Err(npe()) };
            let Some(amount) = usage.amount else {
                return Err(illegal_argument(style, "UsageRecordJson amount needs to be set"));
            };
            let Some(at) = usage.record_date else {
                return Err(illegal_argument(style, "UsageRecordJson recordDate needs to be set"));
            };
            rows.push(NewRow {
                unit_type: unit_type.clone(),
                at,
                amount,
            });
        }
    }
    Ok((subscription, record.tracking_id, rows))
}

/// Whether the request says its body is JSON (`application/json`, any parameters).
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

impl InMemoryKillBill {
    /// `POST /1.0/kb/usages`: docs/contract.md §4 rows 1 to 10 in order; rows 11 to 14 and the insert
    /// are [`commit`](Self::commit)'s.
    pub(super) fn record(
        &self,
        tenant: Tenant,
        headers: &HeaderMap,
        body: &Bytes,
        style: ErrorStyle,
    ) -> Result<Post, Response<Bytes>> {
        if !is_json(headers) {
            return Err(empty(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        const NO_BODY: &str = "SubscriptionUsageRecordJson body should be specified";
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(illegal_argument(style, NO_BODY));
        }
        let record = match bind::bind(body, self.inner.format) {
            Err(e) => return Err(e.into_response(style)),
            Ok(None) => return Err(illegal_argument(style, NO_BODY)),
            Ok(Some(record)) => record,
        };
        let (subscription, tracking_id, rows) = validate(record, style)?;
        let Some(created_by) = header_text(headers, &CREATED_BY) else {
            return Err(illegal_argument(style, "Header X-Killbill-CreatedBy needs to be set"));
        };
        let base64 = headers
            .get(ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"base64"));
        let audit = (|| {
            Ok::<_, String>(Audit {
                created_by: decode_audit(Some(created_by), base64, "X-Killbill-CreatedBy")?.unwrap_or_default(),
                reason: decode_audit(header_text(headers, &REASON), base64, "X-Killbill-Reason")?,
                comment: decode_audit(header_text(headers, &COMMENT), base64, "X-Killbill-Comment")?,
            })
        })()
        .map_err(|message| illegal_argument(style, message))?;
        Ok(Post {
            tenant,
            subscription,
            tracking_id,
            rows,
            audit,
            style,
        })
    }

    /// docs/contract.md §4 rows 11 to 14 and the insert, without waiting: under one write lock with the atomic
    /// duplicate check, as two steps (the lock released between them) with Kill Bill's.
    pub(super) fn commit(&self, post: Post) -> Response<Bytes> {
        let mut store = write(&self.inner.store);
        let tracking_id = match self.check(&mut store, &post) {
            Ok(tracking_id) => tracking_id,
            Err(refused) => return refused,
        };
        if matches!(self.duplicate_check(), DuplicateCheck::KillBill { .. }) {
            drop(store);
            store = write(&self.inner.store);
        }
        insert(&mut store, post, tracking_id)
    }

    /// Rows 11 to 14: the tracking id to store (a random one when the request has none), or
    /// the refusal. The caller holds the write lock.
    pub(super) fn check(&self, store: &mut Store, post: &Post) -> Result<String, Response<Bytes>> {
        let style = post.style;
        let subscription = self.owned(store, &post.tenant, post.subscription, style)?;
        let latest = post.rows.iter().map(|r| r.at).max();
        if let (Some(end), Some(latest)) = (subscription.effective_end, latest) {
            if latest > end {
                return Err(empty(StatusCode::BAD_REQUEST));
            }
        }
        match post.tracking_id.as_deref().filter(|t| !t.is_empty()) {
            Some(id) if subscription.tracking_ids.contains(id) => {
                let body = KillBillError::new(
                    class::USAGE_API,
                    format!("A usage record with tracking ID {id} already exists"),
                )
                .with_code(DUPLICATE_TRACKING_ID_CODE);
                Err(respond::error(StatusCode::BAD_REQUEST, style, body))
            }
            Some(id) => Ok(id.to_string()),
            None => Ok(Uuid::new_v4().to_string()),
        }
    }
}
