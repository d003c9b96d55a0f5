//! Helpers shared by the integration tests.
#![allow(dead_code)]

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response};
use usage_core::{RetryPolicy, Timer, Transport, UsageClient, UsageWindow};
use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

pub const BASE: &str = "http://kb.test";

/// A client of `kb` as admin/bob, one attempt per call.
pub fn client(kb: &InMemoryKillBill) -> UsageClient {
    UsageClient::builder(BASE)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kb.clone())
        .retry_policy(usage_core::RetryPolicy::none().without_deadline())
        .build()
        .unwrap()
}

/// A client of `kb` with retries on an [`InstantTimer`].
pub fn retrying_client(kb: &InMemoryKillBill, timer: &InstantTimer) -> UsageClient {
    client_with(kb.clone(), timer.clone(), RetryPolicy::default())
}

/// A client of `transport` as admin/bob with `timer` and `policy`.
pub fn client_with(transport: impl Transport, timer: impl Timer, policy: RetryPolicy) -> UsageClient {
    UsageClient::builder(BASE)
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(transport)
        .timer(timer)
        .retry_policy(policy)
        .build()
        .unwrap()
}

pub fn day(text: &str) -> UsageDate {
    text.parse().unwrap()
}

pub fn window(start: &str, end: &str) -> UsageWindow {
    UsageWindow::parse(start, end).unwrap()
}

/// One unit, one record.
pub fn one(subscription: SubscriptionId, unit: &str, at: &str, amount: &str) -> SubscriptionUsageRecord {
    SubscriptionUsageRecord::builder(subscription)
        .record(unit, day(at), amount)
        .build()
        .unwrap()
}

/// A raw request to the emulator, with every header Kill Bill wants unless removed.
pub struct Raw {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

pub fn basic(user_password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_password)
    )
}

impl Raw {
    pub fn new(method: Method, path_and_query: &str) -> Raw {
        Raw {
            method,
            uri: format!("{BASE}{path_and_query}"),
            headers: vec![
                ("authorization".into(), basic("admin:password")),
                ("x-killbill-apikey".into(), "bob".into()),
                ("x-killbill-apisecret".into(), "lazar".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: Bytes::new(),
        }
    }

    pub fn get(path_and_query: &str) -> Raw {
        Raw::new(Method::GET, path_and_query)
    }

    /// `POST /1.0/kb/usages` with `body`, JSON content type and a created-by.
    pub fn post(body: impl Into<String>) -> Raw {
        let mut raw = Raw::new(Method::POST, "/1.0/kb/usages")
            .header("content-type", "application/json")
            .header("x-killbill-createdby", "tester");
        raw.body = Bytes::from(body.into());
        raw
    }

    pub fn body(mut self, body: impl Into<String>) -> Raw {
        self.body = Bytes::from(body.into());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Raw {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn without(mut self, name: &str) -> Raw {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    pub fn build(self) -> Request<Bytes> {
        let mut builder = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(self.body).unwrap()
    }

    pub fn send(self, kb: &InMemoryKillBill) -> Response<Bytes> {
        kb.handle(self.build())
    }
}

pub fn text(response: &Response<Bytes>) -> String {
    String::from_utf8(response.body().to_vec()).unwrap()
}

pub fn json(response: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(response.body()).unwrap()
}

/// The exact bytes of a Kill Bill error body with no code and no cause.
pub fn error_body(class_name: &str, message: &str) -> String {
    format!(
        r#"{{"className":"{class_name}","code":null,"message":{},"causeClassName":null,"causeMessage":null,"stackTrace":[]}}"#,
        serde_json::to_string(message).unwrap()
    )
}

/// A body for `subscription` with one unit of `records` (JSON fragments).
pub fn body_with(subscription: SubscriptionId, records: &str) -> String {
    format!(
        r#"{{"subscriptionId":"{subscription}","unitUsageRecords":[{{"unitType":"gallons","usageRecords":[{records}]}}]}}"#
    )
}

pub fn content_type(response: &Response<Bytes>) -> &str {
    response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}
