//! What the parsers give for each answer the real server sends (docs/contract.md §3, §4, §5).

use bytes::Bytes;
use http::{Response, StatusCode};
use usage_core::{Error, GetAllUsage, Operation, RecordOutcome, RecordUsage, UsageWindow};
use usage_models::{RolledUpUsage, SubscriptionId, SubscriptionUsageRecord, UsageDate};

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

fn response(status: u16, content_type: Option<&str>, body: &str) -> Response<Bytes> {
    let mut builder = Response::builder().status(status);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Bytes::copy_from_slice(body.as_bytes())).unwrap()
}

fn json(status: u16, body: &str) -> Response<Bytes> {
    response(status, Some("application/json"), body)
}

fn kb_error(class: &str, code: Option<i64>, message: &str) -> String {
    serde_json::json!({"className": class, "code": code, "message": message,
        "causeClassName": null, "causeMessage": null, "stackTrace": []})
    .to_string()
}

/// Parses the answer of a GET, as `GetAllUsage` does.
fn parse_rolled_up_usage(response: Response<Bytes>) -> Result<RolledUpUsage, Error> {
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    GetAllUsage::new(SUB.parse().unwrap(), window).parse(response)
}

fn record_parse(response: Response<Bytes>) -> Result<RecordOutcome, Error> {
    let record = SubscriptionUsageRecord::builder(SUB.parse::<SubscriptionId>().unwrap())
        .record("u", "2013-08-01".parse::<UsageDate>().unwrap(), 1)
        .build()
        .unwrap();
    RecordUsage::new(&record).parse(response)
}

#[test]
fn rolled_up_usage_success() {
    let body = format!(
        r#"{{"subscriptionId":"{SUB}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-08-31T00:00:00.000Z",
        "rolledUpUnits":[{{"unitType":"gallons","amount":10.000000000}}]}}"#
    );
    let usage = parse_rolled_up_usage(json(200, &body)).unwrap();
    assert_eq!(usage.subscription_id().to_string(), SUB);
    assert_eq!(usage.start_date().to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.end_date().to_string(), "2013-08-31T00:00:00.000Z");
    assert_eq!(usage.amount_of("gallons").unwrap().to_string(), "10.000000000");
}

#[test]
fn section_3_reading_errors() {
    // 3.1: a missing date is a 400 with an empty body.
    let err = parse_rolled_up_usage(json(400, "")).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert!(err.kill_bill_error().is_none());
    assert_eq!(err.to_string(), "Kill Bill answered 400 Bad Request with an empty body");

    // 3.2: a malformed date.
    let body = kb_error(
        "java.lang.IllegalArgumentException",
        None,
        r#"Invalid format: "2013-08-01x" is malformed at "x""#,
    );
    let err = parse_rolled_up_usage(json(400, &body)).unwrap_err();
    let kb = err.kill_bill_error().unwrap();
    assert_eq!(kb.class_name(), "java.lang.IllegalArgumentException");
    assert_eq!(
        kb.message(),
        Some(r#"Invalid format: "2013-08-01x" is malformed at "x""#)
    );
    assert_eq!(err.kill_bill_code(), None);

    // 3.5: unknown subscription, and another tenant's.
    let body = kb_error(
        "org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist",
        None,
        &format!("Object id={SUB} type=SUBSCRIPTION doesn't exist!"),
    );
    let err = parse_rolled_up_usage(json(404, &body)).unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        format!(
            "Kill Bill answered 404 Not Found: ObjectDoesNotExist: Object id={SUB} type=SUBSCRIPTION doesn't exist!"
        )
    );
    // 404 with an empty body (a subscription id that is not a UUID) is still not found.
    assert!(parse_rolled_up_usage(json(404, "")).unwrap_err().is_not_found());

    let body = kb_error(
        "java.lang.IllegalStateException",
        None,
        &format!("Object id={SUB} type=SUBSCRIPTION doesn't belong to tenant id=6e2a8d6c-0b1f-4b0e-9f7e-0d7c2a9b8f11"),
    );
    let err = parse_rolled_up_usage(json(500, &body)).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(
        err.kill_bill_error().unwrap().short_class_name(),
        "IllegalStateException"
    );
}

#[test]
fn section_4_recording_answers() {
    // Success is 201 with an empty body (any 2xx counts; the OpenAPI file says 200: docs/contract.md §1).
    assert_eq!(record_parse(json(201, "")).unwrap().status(), Some(StatusCode::CREATED));
    assert_eq!(record_parse(json(200, "")).unwrap().status(), Some(StatusCode::OK));

    let rows: &[(&str, Option<i64>, &str)] = &[
        (
            "com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException",
            None,
            "Unrecognized field \"foo\"",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "SubscriptionUsageRecordJson body should be specified",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "SubscriptionUsageRecordJson subscriptionId needs to be set",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "SubscriptionUsageRecordJson unitUsageRecords needs to be set",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "json.getUnitUsageRecords() is empty",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "UnitUsageRecordJson unitType need to be set",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "UnitUsageRecordJson usageRecords must have at least one element.",
        ),
        ("java.lang.NullPointerException", None, ""),
        (
            "java.lang.IllegalArgumentException",
            None,
            "UsageRecordJson amount needs to be set",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "UsageRecordJson recordDate needs to be set",
        ),
        (
            "java.lang.IllegalArgumentException",
            None,
            "Header X-Killbill-CreatedBy needs to be set",
        ),
    ];
    for (class, code, message) in rows {
        let err = record_parse(json(400, &kb_error(class, *code, message))).unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
        let kb = err.kill_bill_error().unwrap();
        assert_eq!(&kb.class_name(), class);
        assert_eq!(kb.message(), Some(*message));
        assert!(!err.is_duplicate_tracking_id());
    }

    // docs/contract.md §4 row 13: a record after the subscription's end date: 400, empty body.
    let err = record_parse(json(400, "")).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert!(err.kill_bill_error().is_none());

    // docs/contract.md §4 row 14: duplicate tracking id.
    let body = kb_error(
        "org.killbill.billing.usage.api.UsageApiException",
        Some(50000),
        "A usage record with tracking ID abc already exists",
    );
    let err = record_parse(json(400, &body)).unwrap_err();
    assert!(err.is_duplicate_tracking_id());
    assert_eq!(err.kill_bill_code(), Some(50000));
    assert_eq!(
        err.to_string(),
        "Kill Bill answered 400 Bad Request: UsageApiException (code 50000): A usage record with tracking ID abc already exists"
    );
}

#[test]
fn section_5_authentication_and_proxies() {
    let mut unauthorized = json(401, "");
    unauthorized.headers_mut().insert(
        "www-authenticate",
        http::HeaderValue::from_static("BASIC realm=\"application\""),
    );
    let err = record_parse(unauthorized).unwrap_err();
    assert!(err.is_unauthorized());
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.headers()["www-authenticate"], "BASIC realm=\"application\"");

    let page = "<html><body><h2>HTTP ERROR 401</h2><p>Make sure to set the X-Killbill-ApiKey and X-Killbill-ApiSecret headers</p></body></html>";
    let err = parse_rolled_up_usage(response(401, Some("text/html"), page)).unwrap_err();
    assert!(err.is_unauthorized());
    assert!(err.kill_bill_error().is_none());
    assert!(
        err.to_string().contains("Make sure to set the X-Killbill-ApiKey"),
        "{err}"
    );

    let html = "<html>\r\n<head><title>504 Gateway Time-out</title></head>\n<body>nginx</body></html>";
    let err = parse_rolled_up_usage(response(504, Some("text/html"), html)).unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::GATEWAY_TIMEOUT));
    let Error::Api(api) = &err else { panic!("{err:?}") };
    assert_eq!(api.body(), html.as_bytes());
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn bodies_are_read_as_utf8_text_and_other_bytes_are_decode_errors() {
    let body = |unit: &[u8]| {
        let mut body = format!(
            r#"{{"subscriptionId":"{SUB}","startDate":"2013-08-01","endDate":"2013-09-01","rolledUpUnits":[{{"unitType":""#
        )
        .into_bytes();
        body.extend_from_slice(unit);
        body.extend_from_slice(br#"","amount":1}]}"#);
        Response::builder().status(200).body(Bytes::from(body)).unwrap()
    };
    for unit in ["café".as_bytes(), br"caf\u00e9"] {
        let usage = parse_rolled_up_usage(body(unit)).unwrap();
        assert_eq!(usage.rolled_up_units()[0].unit_type().as_str(), "café");
    }
    // Latin-1 "café": not UTF-8, so a decode error that keeps the body as it came.
    let err = parse_rolled_up_usage(body(b"caf\xe9")).unwrap_err();
    let Error::Decode(decode) = &err else { panic!("{err:?}") };
    assert!(decode.body().ends_with(b"caf\xe9\",\"amount\":1}]}"), "{err:?}");
}

#[test]
fn broken_success_bodies_are_decode_errors() {
    for body in [
        "",
        "<html>oops</html>",
        r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","startDate":"2013-08-01""#,
        r#"{"subscriptionId":"nope","startDate":"2013-08-01","endDate":"2013-08-02","rolledUpUnits":[]}"#,
        r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","startDate":"2013-08-01","endDate":"2013-08-02","rolledUpUnits":[{"unitType":"u","amount":"x"}]}"#,
        r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","startDate":"2013-08-01","endDate":"2013-08-02","rolledUpUnits":[{"unitType":"u","amount":1e400}]}"#,
    ] {
        let err = parse_rolled_up_usage(json(200, body)).unwrap_err();
        let Error::Decode(decode) = &err else {
            panic!("{body}: {err:?}")
        };
        assert_eq!(decode.status(), StatusCode::OK);
        assert_eq!(decode.body(), body.as_bytes());
    }
    // 10,000-deep nesting: an error, not a stack overflow.
    let deep = "[".repeat(10_000);
    assert!(matches!(parse_rolled_up_usage(json(200, &deep)), Err(Error::Decode(_))));
    let err = parse_rolled_up_usage(json(500, &format!("{{\"className\":{deep}"))).unwrap_err();
    assert!(err.kill_bill_error().is_none());
}
