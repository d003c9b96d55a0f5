//! The exact requests each operation produces.

use bytes::Bytes;
use http::{Method, Request};
use proptest::prelude::*;
use usage_core::{
    ClientConfig, GetAllUsage, GetUsage, Operation, RecordUsage, RequestOptions, TenantCredentials, UsageWindow,
    UserCredentials,
};
use usage_models::{SubscriptionId, SubscriptionUsageRecord, UnitType, UsageDate};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

fn config(base: &str) -> ClientConfig {
    ClientConfig::new(
        base,
        UserCredentials::new("admin", "password"),
        TenantCredentials::new("bob", "lazar"),
    )
    .unwrap()
}

fn sub() -> SubscriptionId {
    SUB.parse().unwrap()
}

fn header<'a>(request: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    request.headers().get(name).map(|v| v.to_str().unwrap())
}

fn get(unit: &str, window: UsageWindow, options: &RequestOptions) -> Request<Bytes> {
    let unit = UnitType::new(unit).unwrap();
    GetUsage::new(sub(), &unit, window)
        .unwrap()
        .to_request(&config("http://127.0.0.1:8080"), options)
        .unwrap()
}

fn august() -> UsageWindow {
    UsageWindow::parse("2013-08-01", "2013-09-01").unwrap()
}

#[test]
fn base_urls_with_and_without_prefix_and_slash() {
    let window = august();
    for (base, expected) in [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/1.0/kb/usages/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/1.0/kb/usages/"),
        (
            "https://billing.example.com/killbill",
            "https://billing.example.com/killbill/1.0/kb/usages/",
        ),
        (
            "https://billing.example.com/killbill/",
            "https://billing.example.com/killbill/1.0/kb/usages/",
        ),
        (
            "https://billing.example.com/a/b//",
            "https://billing.example.com/a/b/1.0/kb/usages/",
        ),
    ] {
        let request = GetAllUsage::new(sub(), window)
            .to_request(&config(base), &RequestOptions::new())
            .unwrap();
        assert_eq!(
            request.uri().to_string(),
            format!("{expected}{SUB}?startDate=2013-08-01&endDate=2013-09-01"),
            "{base}"
        );
    }
    for bad in [
        "",
        "127.0.0.1:8080",
        "ftp://x",
        "http://user:pw@host",
        "http://host/?q=1",
    ] {
        assert!(
            ClientConfig::new(bad, UserCredentials::new("a", "b"), TenantCredentials::new("c", "d")).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn get_usage_headers_are_exact() {
    let request = get("gallons", august(), &RequestOptions::new());
    assert_eq!(request.method(), Method::GET);
    assert!(request.body().is_empty());
    assert_eq!(header(&request, "authorization"), Some("Basic YWRtaW46cGFzc3dvcmQ="));
    assert!(request.headers()["authorization"].is_sensitive());
    assert_eq!(header(&request, "x-killbill-apikey"), Some("bob"));
    assert_eq!(header(&request, "x-killbill-apisecret"), Some("lazar"));
    assert!(request.headers()["x-killbill-apisecret"].is_sensitive());
    assert_eq!(header(&request, "accept"), Some("application/json"));
    assert_eq!(
        header(&request, "user-agent"),
        Some(concat!("usage-core/", env!("CARGO_PKG_VERSION")))
    );
    // Audit headers are for the POST only.
    assert_eq!(header(&request, "x-killbill-createdby"), None);
    assert_eq!(header(&request, "content-type"), None);
    assert_eq!(request.headers().len(), 5);
}

#[test]
fn tricky_unit_types_are_one_segment() {
    for (unit, encoded) in [
        ("gallons", "gallons"),
        ("api calls", "api%20calls"),
        ("liters/day", "liters%2Fday"),
        ("a?b#c", "a%3Fb%23c"),
        ("100%", "100%25"),
        ("über", "%C3%BCber"),
        ("...", "..."),
        ("a+b=c&d", "a%2Bb%3Dc%26d"),
        ("%2e%2e", "%252e%252e"),
        ("ratio:1", "ratio:1"),
    ] {
        let request = get(unit, august(), &RequestOptions::new());
        assert_eq!(
            request.uri().path(),
            format!("/1.0/kb/usages/{SUB}/{encoded}"),
            "{unit}"
        );
    }
    for walker in [".", ".."] {
        let unit = UnitType::new(walker).unwrap();
        let err = GetUsage::new(sub(), &unit, august()).unwrap_err();
        assert_eq!(err.invalid_input().unwrap().field(), "unitType");
    }
}

#[test]
fn windows_go_out_as_dates_or_utc_instants_with_millis() {
    let window = UsageWindow::new(
        "2013-08-01T10:00:00+02:00".parse::<UsageDate>().unwrap(),
        "2013-08-02".parse::<UsageDate>().unwrap(),
    )
    .unwrap();
    let request = get("u", window, &RequestOptions::new());
    assert_eq!(
        request.uri().query(),
        Some("startDate=2013-08-01T08:00:00.000Z&endDate=2013-08-02")
    );
    assert!(UsageWindow::parse("2013-08-02", "2013-08-01").is_err());
    // An empty window is the server's business (it answers an empty roll-up).
    assert!(UsageWindow::parse("2013-08-01", "2013-08-01").is_ok());
    let err = UsageWindow::parse("2013-08-01x", "2013-08-02").unwrap_err();
    assert_eq!(err.invalid_input().unwrap().field(), "window start");
}

#[test]
fn plugin_properties_request_id_and_overrides() {
    let options = RequestOptions::builder()
        .plugin_property("source", "meter 7")
        .plugin_property("k", "a=b&c")
        .request_id("req-42")
        .tenant(TenantCredentials::new("acme", "acme-secret"))
        .user(UserCredentials::new("metering", "s3cret"))
        .build()
        .unwrap();
    let request = get("u", august(), &options);
    assert_eq!(
        request.uri().query(),
        Some("startDate=2013-08-01&endDate=2013-09-01&pluginProperty=source%3Dmeter%207&pluginProperty=k%3Da%3Db%26c")
    );
    assert_eq!(header(&request, "x-request-id"), Some("req-42"));
    assert_eq!(header(&request, "x-killbill-apikey"), Some("acme"));
    assert_eq!(header(&request, "x-killbill-apisecret"), Some("acme-secret"));
    assert_eq!(header(&request, "authorization"), Some("Basic bWV0ZXJpbmc6czNjcmV0"));

    for (options, field) in [
        (RequestOptions::builder().plugin_property("a=b", "c"), "pluginProperty"),
        (RequestOptions::builder().plugin_property("", "c"), "pluginProperty"),
        (RequestOptions::builder().request_id("a\r\nX-Evil: 1"), "X-Request-Id"),
        (RequestOptions::builder().request_id("réq"), "X-Request-Id"),
        (
            RequestOptions::builder().tenant(TenantCredentials::new("bo\nb", "x")),
            "X-Killbill-ApiKey",
        ),
        (RequestOptions::builder().user(UserCredentials::new("a:b", "x")), "user"),
    ] {
        // Refused when built: no request can carry them.
        let err = options.build().unwrap_err();
        assert_eq!(err.invalid_input().unwrap().field(), field, "{err}");
    }
}

fn record(tracking: Option<&str>) -> SubscriptionUsageRecord {
    let mut builder = SubscriptionUsageRecord::builder(sub());
    if let Some(t) = tracking {
        builder = builder.tracking_id(t);
    }
    builder
        .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 10)
        .record("gallons", "2013-08-01T06:30:00Z".parse::<UsageDate>().unwrap(), "0.5")
        .build()
        .unwrap()
}

#[test]
fn record_usage_request_is_exact() {
    let record = record(Some("t-1"));
    let options = RequestOptions::builder()
        .reason("nightly")
        .comment("from meter 7")
        .build()
        .unwrap();
    let request = RecordUsage::new(&record)
        .to_request(&config("http://127.0.0.1:8080/"), &options)
        .unwrap();
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "http://127.0.0.1:8080/1.0/kb/usages");
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "x-killbill-createdby"), Some("killbill-usage"));
    assert_eq!(header(&request, "x-killbill-reason"), Some("nightly"));
    assert_eq!(header(&request, "x-killbill-comment"), Some("from meter 7"));
    assert_eq!(header(&request, "x-killbill-encoding"), None);
    assert_eq!(
        std::str::from_utf8(request.body()).unwrap(),
        format!(
            r#"{{"subscriptionId":"{SUB}","trackingId":"t-1","unitUsageRecords":[{{"unitType":"gallons","usageRecords":[{{"recordDate":"2013-08-01","amount":10}},{{"recordDate":"2013-08-01T06:30:00.000Z","amount":0.5}}]}}]}}"#
        )
    );
}

#[test]
fn record_usage_always_carries_a_tracking_id() {
    let record = record(None);
    let operation = RecordUsage::new(&record);
    let generated = operation.tracking_id().clone();
    assert_eq!(generated.as_str().len(), 36, "a UUID");
    let request = operation
        .to_request(&config("http://h"), &RequestOptions::new())
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["trackingId"], generated.as_str());
    // Each operation (each call) gets its own.
    assert_ne!(RecordUsage::new(&record).tracking_id(), &generated);
}

#[test]
fn a_non_ascii_default_created_by_is_base64_unless_a_call_replaces_it() {
    let record = record(Some("t"));
    let cfg = config("http://h").with_created_by("Zoë").unwrap();
    let request = RecordUsage::new(&record)
        .to_request(&cfg, &RequestOptions::new())
        .unwrap();
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(header(&request, "x-killbill-createdby"), Some("Wm/Dqw=="));
    assert_eq!(header(&request, "x-killbill-encoding"), Some("base64"));
    assert_eq!(request.headers().len(), 8, "{:?}", request.headers());

    // A call's own ASCII created-by: nothing is base64 any more, and the encoding header goes.
    let options = RequestOptions::builder().created_by("meter").build().unwrap();
    let request = RecordUsage::new(&record).to_request(&cfg, &options).unwrap();
    assert_eq!(header(&request, "x-killbill-createdby"), Some("meter"));
    assert_eq!(header(&request, "x-killbill-encoding"), None);
    // A call that only adds a reason keeps the config's created-by, so all of them are base64.
    let options = RequestOptions::builder().reason("plain").build().unwrap();
    let request = RecordUsage::new(&record).to_request(&cfg, &options).unwrap();
    assert_eq!(header(&request, "x-killbill-createdby"), Some("Wm/Dqw=="));
    assert_eq!(header(&request, "x-killbill-reason"), Some("cGxhaW4="));
    assert_eq!(header(&request, "x-killbill-encoding"), Some("base64"));
    // A GET carries no audit headers.
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let request = GetUsage::new(SUB.parse().unwrap(), "gallons", window)
        .unwrap()
        .to_request(&cfg, &RequestOptions::new())
        .unwrap();
    assert_eq!(header(&request, "x-killbill-createdby"), None);
    assert_eq!(header(&request, "content-type"), None);
}

#[test]
fn audit_headers_non_ascii_are_base64_and_control_characters_refused() {
    let record = record(Some("t"));
    let cfg = config("http://h");
    let options = RequestOptions::builder()
        .created_by("Zoë")
        .reason("plain")
        .build()
        .unwrap();
    let request = RecordUsage::new(&record).to_request(&cfg, &options).unwrap();
    assert_eq!(header(&request, "x-killbill-encoding"), Some("base64"));
    assert_eq!(header(&request, "x-killbill-createdby"), Some("Wm/Dqw=="));
    assert_eq!(header(&request, "x-killbill-reason"), Some("cGxhaW4="));

    for (options, field) in [
        (RequestOptions::builder().created_by("a\nb"), "X-Killbill-CreatedBy"),
        (RequestOptions::builder().reason("a\rb"), "X-Killbill-Reason"),
        (RequestOptions::builder().comment("a\0b"), "X-Killbill-Comment"),
        (
            RequestOptions::builder().created_by("x".repeat(51)),
            "X-Killbill-CreatedBy",
        ),
    ] {
        // Refused when built: no request can carry them.
        let err = options.build().unwrap_err();
        assert_eq!(err.invalid_input().unwrap().field(), field, "{err}");
    }
    assert!(cfg.clone().with_created_by("x".repeat(50)).is_ok());
    assert!(cfg.with_created_by("x".repeat(51)).is_err());
}

fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

proptest! {
    #[test]
    fn any_unit_type_is_exactly_one_segment(unit in "\\PC{1,40}|[ /?#%.:@!$&'()*+,;=\\[\\]]{1,10}") {
        prop_assume!(unit != "." && unit != "..");
        let request = get(&unit, august(), &RequestOptions::new());
        let path = request.uri().path().to_string();
        let segments: Vec<&str> = path.split('/').collect();
        // "", "1.0", "kb", "usages", subscription, unit
        prop_assert_eq!(segments.len(), 6, "{}", path);
        prop_assert_eq!(&segments[1..4], &["1.0", "kb", "usages"]);
        prop_assert_eq!(decode_segment(segments[5]), unit);
        prop_assert!(request.uri().query().unwrap().starts_with("startDate="));
    }

    #[test]
    fn any_plugin_property_value_is_one_query_component(value in "\\PC{0,30}") {
        let request = get("u", august(), &RequestOptions::builder().plugin_property("k", value.clone()).build().unwrap());
        let query = request.uri().query().unwrap().to_string();
        let parts: Vec<&str> = query.split('&').collect();
        prop_assert_eq!(parts.len(), 3);
        let property = parts[2].strip_prefix("pluginProperty=").unwrap();
        prop_assert_eq!(decode_segment(property), format!("k={value}"));
    }
}

#[test]
fn invalid_input_carries_its_field_as_data() {
    use usage_core::{InputField, InvalidInput};
    use usage_models::Field;

    // A record's validation error keeps its field and indices.
    let day: UsageDate = "2013-08-01".parse().unwrap();
    let err = SubscriptionUsageRecord::builder(sub())
        .record("gallons", day, 1)
        .record("liters", day, 2)
        .record("liters", day, "1234567890")
        .build()
        .map_err(InvalidInput::from)
        .unwrap_err();
    assert_eq!(
        err.field(),
        InputField::Model {
            field: Field::Amount,
            unit: Some(1),
            record: Some(1)
        },
        "{err}"
    );
    assert_eq!(err.field().to_string(), "unitUsageRecords[1].usageRecords[1].amount");
    // Headers, windows and the GET's unit type each have their own variant.
    let err = RequestOptions::builder().comment("a\nb").build().unwrap_err();
    assert_eq!(err.invalid_input().unwrap().field(), InputField::Comment);
    let err = UsageWindow::parse("2013-08-01", "later").unwrap_err();
    assert_eq!(err.invalid_input().unwrap().field(), InputField::WindowEnd);
    let err = GetUsage::new(sub(), "..", august()).unwrap_err();
    assert_eq!(
        err.invalid_input().unwrap().field(),
        InputField::Model {
            field: Field::UnitType,
            unit: None,
            record: None
        }
    );
}
