//! The three operations, sans-IO: each turns into an `http::Request<Bytes>` and parses an
//! `http::Response<Bytes>`, with no client and no transport.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use usage_models::{
    KillBillError, RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, TrackingId, UnitType, UnitUsageRecord,
};

use crate::encode::push_component;
use crate::{ClientConfig, Error, InputField, InvalidInput, RequestOptions, UsageWindow};

/// `X-Killbill-ApiKey`.
pub(crate) const API_KEY: HeaderName = HeaderName::from_static("x-killbill-apikey");
/// `X-Killbill-ApiSecret`.
pub(crate) const API_SECRET: HeaderName = HeaderName::from_static("x-killbill-apisecret");
/// `X-Killbill-CreatedBy`.
pub(crate) const CREATED_BY: HeaderName = HeaderName::from_static("x-killbill-createdby");
/// `X-Killbill-Reason`.
pub(crate) const REASON: HeaderName = HeaderName::from_static("x-killbill-reason");
/// `X-Killbill-Comment`.
pub(crate) const COMMENT: HeaderName = HeaderName::from_static("x-killbill-comment");
/// `X-Killbill-Encoding`.
pub(crate) const ENCODING: HeaderName = HeaderName::from_static("x-killbill-encoding");
/// `X-Request-Id`.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `User-Agent` of every request.
pub(crate) const USER_AGENT_VALUE: &str = concat!("usage-core/", env!("CARGO_PKG_VERSION"));

mod sealed {
    /// Keeps [`Operation`](super::Operation) to this crate's operations.
    pub trait Sealed {}

    impl Sealed for super::RecordUsage<'_> {}
    impl Sealed for super::GetUsage {}
    impl Sealed for super::GetAllUsage {}
}

pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// One Usage API operation, sans-IO: [`RecordUsage`], [`GetUsage`] and [`GetAllUsage`].
///
/// The trait is sealed: only this crate's operations implement it (the client's retry rules
/// depend on what each operation is).
pub trait Operation: sealed::Sealed + Send + Sync {
    /// What a successful response gives.
    type Output: Send;

    /// The output to give when a retry is refused as a duplicate (Kill Bill error code 50000)
    /// after an attempt that may have reached the server: for a POST under a tracking id, that
    /// attempt recorded the usage. `None` (the default) keeps the error.
    fn landed_earlier(&self) -> Option<Self::Output> {
        None
    }

    /// The request, or why the input cannot be sent.
    fn to_request(&self, config: &ClientConfig, options: &RequestOptions) -> Result<Request<Bytes>, Error>;

    /// The typed result of a response, or the typed error.
    fn parse(&self, response: Response<Bytes>) -> Result<Self::Output, Error>;
}

/// About the size of a record's JSON: a record with an instant and a fractional amount
/// (`{"recordDate":"2013-08-01T06:30:00.000Z","amount":12.375},`) takes 58 bytes.
fn body_capacity(record: &SubscriptionUsageRecord) -> usize {
    let units: usize = record
        .unit_usage_records()
        .iter()
        .map(|unit| unit.unit_type().as_str().len() + 32)
        .sum();
    256 + units + record.record_count() * 60
}

/// `POST /1.0/kb/usages`: records usage. Success is any 2xx (Kill Bill answers 201 with an
/// empty body; its OpenAPI file wrongly says 200: `docs/contract.md` §1).
///
/// ```
/// use usage_core::{ClientConfig, Operation, RecordUsage, RequestOptions, TenantCredentials, UserCredentials};
/// use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
///
/// let config = ClientConfig::new(
///     "https://billing.example.com/killbill/",
///     UserCredentials::new("admin", "password"),
///     TenantCredentials::new("bob", "lazar"),
/// ).unwrap();
/// let day: UsageDate = "2013-08-01".parse().unwrap();
/// let record = SubscriptionUsageRecord::builder(SubscriptionId::random())
///     .tracking_id("t-1")
///     .record("gallons", day, 10)
///     .build()
///     .unwrap();
/// let request = RecordUsage::new(&record).to_request(&config, &RequestOptions::new()).unwrap();
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.uri(), "https://billing.example.com/killbill/1.0/kb/usages");
/// assert_eq!(request.headers()["x-killbill-createdby"], "killbill-usage");
/// ```
#[derive(Clone, Debug)]
pub struct RecordUsage<'a> {
    record: &'a SubscriptionUsageRecord,
    tracking_id: Cow<'a, TrackingId>,
}

impl<'a> RecordUsage<'a> {
    /// Records `record` under its tracking id, or under a new random one when it has none
    /// (without copying the record). The request is then idempotent: a second delivery is
    /// refused with code 50000.
    pub fn new(record: &'a SubscriptionUsageRecord) -> Self {
        let tracking_id = match record.tracking_id() {
            Some(id) => Cow::Borrowed(id),
            None => Cow::Owned(TrackingId::random()),
        };
        RecordUsage { record, tracking_id }
    }

    /// The tracking id the request carries.
    pub fn tracking_id(&self) -> &TrackingId {
        &self.tracking_id
    }

    /// The record.
    pub fn record(&self) -> &'a SubscriptionUsageRecord {
        self.record
    }
}

/// The wire body: the record with its tracking id possibly filled in.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordBody<'a> {
    subscription_id: SubscriptionId,
    tracking_id: &'a TrackingId,
    unit_usage_records: &'a [UnitUsageRecord],
}

/// What recording usage did: the outcome of [`RecordUsage`] and of
/// [`UsageClient::record_usage`](crate::UsageClient::record_usage).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOutcome {
    pub(crate) tracking_id: TrackingId,
    pub(crate) attempts: u32,
    pub(crate) already_recorded: bool,
    pub(crate) status: Option<StatusCode>,
}

impl RecordOutcome {
    /// The tracking id the usage is recorded under: the record's, or the one the client
    /// generated for it.
    pub fn tracking_id(&self) -> &TrackingId {
        &self.tracking_id
    }

    /// How many attempts the call took (1 for a response parsed on its own).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// `true` when a retry was refused as a duplicate (code 50000) after an attempt whose
    /// answer was lost: that earlier attempt recorded the usage.
    pub fn already_recorded(&self) -> bool {
        self.already_recorded
    }

    /// The (2xx) status of the answer that recorded the usage; `None` when it was
    /// [already recorded](Self::already_recorded).
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }
}

impl Operation for RecordUsage<'_> {
    type Output = RecordOutcome;

    fn landed_earlier(&self) -> Option<RecordOutcome> {
        Some(RecordOutcome {
            tracking_id: self.tracking_id().clone(),
            attempts: 1,
            already_recorded: true,
            status: None,
        })
    }

    fn to_request(&self, config: &ClientConfig, options: &RequestOptions) -> Result<Request<Bytes>, Error> {
        let body = RecordBody {
            subscription_id: self.record.subscription_id(),
            tracking_id: self.tracking_id(),
            unit_usage_records: self.record.unit_usage_records(),
        };
        // Sized up front: one allocation instead of a dozen regrowths for a large record.
        let mut bytes = Vec::with_capacity(body_capacity(self.record));
        serde_json::to_writer(&mut bytes, &body).map_err(|e| InvalidInput::new(InputField::Body, e.to_string()))?;
        let body = bytes;
        let mut uri = String::with_capacity(config.base_url.path().len() + 16);
        uri.push_str(config.base_url.path());
        uri.push_str("/1.0/kb/usages");
        let mut request = new_request(Method::POST, uri, Bytes::from(body), config, options)?;
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, APPLICATION_JSON);
        audit_headers(headers, config, options);
        Ok(request)
    }

    fn parse(&self, response: Response<Bytes>) -> Result<RecordOutcome, Error> {
        let status = response.status();
        if status.is_success() {
            Ok(RecordOutcome {
                tracking_id: self.tracking_id().clone(),
                attempts: 1,
                already_recorded: false,
                status: Some(status),
            })
        } else {
            Err(api_error(response))
        }
    }
}

/// `GET /1.0/kb/usages/{subscriptionId}/{unitType}`: the roll-up of one unit type.
///
/// The unit type is percent-encoded as exactly one path segment; `.` and `..` are refused so
/// that they can never walk the path.
///
/// ```
/// use usage_core::{ClientConfig, GetUsage, Operation, RequestOptions, TenantCredentials, UsageWindow, UserCredentials};
/// use usage_models::{SubscriptionId, UnitType};
///
/// let config = ClientConfig::new(
///     "http://127.0.0.1:8080",
///     UserCredentials::new("admin", "password"),
///     TenantCredentials::new("bob", "lazar"),
/// ).unwrap();
/// let subscription: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
/// let window = UsageWindow::parse("2013-08-01", "2013-09-01T00:00:00Z").unwrap();
/// let unit = UnitType::new("liters/day").unwrap();
/// let request = GetUsage::new(subscription, &unit, window).unwrap()
///     .to_request(&config, &RequestOptions::new()).unwrap();
/// assert_eq!(
///     request.uri(),
///     "http://127.0.0.1:8080/1.0/kb/usages/8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11/liters%2Fday\
///      ?startDate=2013-08-01&endDate=2013-09-01T00:00:00.000Z"
/// );
/// ```
#[derive(Clone, Debug)]
pub struct GetUsage {
    subscription_id: SubscriptionId,
    unit_type: UnitType,
    window: UsageWindow,
}

impl GetUsage {
    /// The roll-up of `unit_type` (a [`UnitType`], or text checked as one) over `window`;
    /// refuses `.` and `..`.
    pub fn new<U>(subscription_id: SubscriptionId, unit_type: U, window: UsageWindow) -> Result<Self, Error>
    where
        U: TryInto<UnitType>,
        U::Error: Into<Error>,
    {
        let unit_type = unit_type.try_into().map_err(Into::into)?;
        if matches!(unit_type.as_str(), "." | "..") {
            return Err(InvalidInput::new(
                InputField::model(usage_models::Field::UnitType),
                format!(
                    "{:?} cannot be a path segment (it would walk the path)",
                    unit_type.as_str()
                ),
            )
            .into());
        }
        Ok(GetUsage {
            subscription_id,
            unit_type,
            window,
        })
    }

    /// The unit type.
    pub fn unit_type(&self) -> &UnitType {
        &self.unit_type
    }

    /// The subscription.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }
}

/// `GET /1.0/kb/usages/{subscriptionId}`: the roll-up of every unit type.
#[derive(Clone, Debug)]
pub struct GetAllUsage {
    subscription_id: SubscriptionId,
    window: UsageWindow,
}

impl GetAllUsage {
    /// The roll-up of every unit type over `window`.
    pub fn new(subscription_id: SubscriptionId, window: UsageWindow) -> Self {
        GetAllUsage {
            subscription_id,
            window,
        }
    }

    /// The subscription.
    pub fn subscription_id(&self) -> SubscriptionId {
        self.subscription_id
    }
}

impl Operation for GetUsage {
    type Output = RolledUpUsage;

    fn to_request(&self, config: &ClientConfig, options: &RequestOptions) -> Result<Request<Bytes>, Error> {
        get_request(
            config,
            options,
            self.subscription_id,
            Some(&self.unit_type),
            &self.window,
        )
    }

    fn parse(&self, response: Response<Bytes>) -> Result<RolledUpUsage, Error> {
        parse_rolled_up_usage(response)
    }
}

impl Operation for GetAllUsage {
    type Output = RolledUpUsage;

    fn to_request(&self, config: &ClientConfig, options: &RequestOptions) -> Result<Request<Bytes>, Error> {
        get_request(config, options, self.subscription_id, None, &self.window)
    }

    fn parse(&self, response: Response<Bytes>) -> Result<RolledUpUsage, Error> {
        parse_rolled_up_usage(response)
    }
}

fn get_request(
    config: &ClientConfig,
    options: &RequestOptions,
    subscription_id: SubscriptionId,
    unit_type: Option<&UnitType>,
    window: &UsageWindow,
) -> Result<Request<Bytes>, Error> {
    let mut uri = String::with_capacity(config.base_url.path().len() + 160);
    uri.push_str(config.base_url.path());
    uri.push_str("/1.0/kb/usages/");
    uri.push_str(
        subscription_id
            .uuid()
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    );
    if let Some(unit_type) = unit_type {
        uri.push('/');
        push_component(&mut uri, unit_type.as_str());
    }
    uri.push_str(window.query());
    uri.push_str(&options.plugin_query);
    Ok(new_request(Method::GET, uri, Bytes::new(), config, options)?)
}

/// A request to `path_and_query` (percent-encoded, the base URL's path prefix included)
/// with the headers every call carries.
fn new_request(
    method: Method,
    path_and_query: String,
    body: Bytes,
    config: &ClientConfig,
    options: &RequestOptions,
) -> Result<Request<Bytes>, InvalidInput> {
    let uri = config.base_url.uri(path_and_query)?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = config.headers.clone();
    let headers = request.headers_mut();
    options.auth.apply(headers);
    if let Some(request_id) = &options.request_id {
        headers.insert(REQUEST_ID, request_id.clone());
    }
    Ok(request)
}

/// `X-Killbill-CreatedBy` (required), `X-Killbill-Reason` and `X-Killbill-Comment`; all three
/// base64-encoded with `X-Killbill-Encoding: base64` when any of them is not ASCII. The values
/// were checked and prepared when the options and the config were built.
fn audit_headers(headers: &mut HeaderMap, config: &ClientConfig, options: &RequestOptions) {
    let audit = [
        (
            CREATED_BY,
            Some(options.created_by.as_ref().unwrap_or(&config.created_by_header)),
        ),
        (REASON, options.reason.as_ref()),
        (COMMENT, options.comment.as_ref()),
    ];
    let base64 = audit
        .iter()
        .any(|(_, text)| text.is_some_and(|text| text.plain.is_none()));
    for (name, text) in audit {
        let Some(text) = text else { continue };
        let value = match &text.plain {
            Some(plain) if !base64 => plain,
            _ => &text.base64,
        };
        headers.insert(name, value.clone());
    }
    if base64 {
        headers.insert(ENCODING, HeaderValue::from_static("base64"));
    }
}

/// Parses the answer of either GET: 2xx with a `RolledUpUsage`, or a typed error.
fn parse_rolled_up_usage(response: Response<Bytes>) -> Result<RolledUpUsage, Error> {
    if !response.status().is_success() {
        return Err(api_error(response));
    }
    let (parts, body) = response.into_parts();
    // Read as text when the body is UTF-8 (checked once, where reading bytes checks every
    // string again); otherwise as bytes, for serde_json's error with its position.
    let usage = match std::str::from_utf8(&body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(&body),
    };
    usage.map_err(|e| Error::decode(parts.status, parts.headers, body, e))
}

/// The typed error of a non-2xx response: status, headers, raw body, and the Kill Bill error
/// when the body is one (empty and non-JSON bodies are kept as they are).
fn api_error(response: Response<Bytes>) -> Error {
    let (parts, body) = response.into_parts();
    let kill_bill = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .filter(|b| **b == b'{')
        .and_then(|_| serde_json::from_slice::<KillBillError>(&body).ok());
    Error::Api(Box::new(crate::ApiError {
        status: parts.status,
        headers: parts.headers,
        body,
        kill_bill,
    }))
}
