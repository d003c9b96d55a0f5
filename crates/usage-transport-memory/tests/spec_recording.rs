//! docs/contract.md §4: every check of `POST /1.0/kb/usages`, in order, through `UsageClient` where it can
//! send the request, raw through `handle()` where the client refuses the input first.

mod common;

use common::*;
use usage_core::{RequestOptions, TenantCredentials};
use usage_models::{SubscriptionId, SubscriptionUsageRecord};
use usage_transport_memory::{InMemoryKillBill, NewSubscription};

const IAE: &str = "java.lang.IllegalArgumentException";
const GOOD: &str = r#"{"recordDate":"2013-08-01","amount":1}"#;

fn kb_and_sub() -> (InMemoryKillBill, SubscriptionId) {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    (kb, sub)
}

/// Posts `body`, expects 400 with `class_name` and `message`, and that nothing was stored.
fn refused(kb: &InMemoryKillBill, body: &str, class_name: &str, message: &str) {
    let response = Raw::post(body).send(kb);
    assert_eq!(response.status(), 400, "{body}");
    assert_eq!(text(&response), error_body(class_name, message), "{body}");
    assert_eq!(kb.row_count(), 0, "{body}");
}

/// Posts `body`, expects 400 with a Jackson `class_name` and a message containing `problem`.
fn unbindable(kb: &InMemoryKillBill, body: &str, class_name: &str, problem: &str) {
    let response = Raw::post(body).send(kb);
    assert_eq!(response.status(), 400, "{body}");
    let error = json(&response);
    assert_eq!(error["className"], class_name, "{body}");
    assert_eq!(error["code"], serde_json::Value::Null);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(problem), "{body}: {message}");
    assert_eq!(error["stackTrace"], serde_json::json!([]));
    assert_eq!(kb.row_count(), 0);
}

#[test]
fn row1_binding_errors_are_jackson_exceptions() {
    let (kb, sub) = kb_and_sub();
    let unit = |extra: &str| {
        format!(
            r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate":"2013-08-01","amount":1{extra}}}]}}]}}"#
        )
    };
    unbindable(
        &kb,
        &unit(r#","price":3"#),
        "com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException",
        r#"Unrecognized field "price" (class org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson$UsageRecordJson), not marked as ignorable (2 known properties: "recordDate", "amount"])"#,
    );
    unbindable(
        &kb,
        &format!(r#"{{"subscriptionId":"{sub}","tenant":"x","unitUsageRecords":[]}}"#),
        "com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException",
        r#"Unrecognized field "tenant""#,
    );
    unbindable(
        &kb,
        r#"{"subscriptionId":"not-a-uuid","unitUsageRecords":[]}"#,
        "com.fasterxml.jackson.databind.exc.InvalidFormatException",
        "Cannot deserialize value of type `java.util.UUID` from String \"not-a-uuid\"",
    );
    unbindable(
        &kb,
        &format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":"gallons"}}"#),
        "com.fasterxml.jackson.databind.exc.MismatchedInputException",
        "from String value",
    );
    unbindable(
        &kb,
        &unit(r#"},{"recordDate":"2013-08-01","amount":true"#),
        "com.fasterxml.jackson.databind.exc.MismatchedInputException",
        "Cannot deserialize value of type `java.math.BigDecimal` from Boolean value",
    );
    unbindable(
        &kb,
        &unit(r#"},{"recordDate":"2013-08-01","amount":"ten""#),
        "com.fasterxml.jackson.databind.exc.InvalidFormatException",
        "`java.math.BigDecimal` from String \"ten\"",
    );
    unbindable(
        &kb,
        &unit(r#"},{"recordDate":"2013-08-01x","amount":1"#),
        "com.fasterxml.jackson.databind.JsonMappingException",
        r#"Invalid format: "2013-08-01x" is malformed at "x""#,
    );
    // Top level: nothing wraps the parser's exception.
    unbindable(
        &kb,
        "{",
        "com.fasterxml.jackson.core.io.JsonEOFException",
        "Unexpected end-of-input",
    );
    unbindable(
        &kb,
        "xyz",
        "com.fasterxml.jackson.core.JsonParseException",
        "Unrecognized token 'xyz'",
    );
    unbindable(
        &kb,
        "[1]",
        "com.fasterxml.jackson.databind.exc.MismatchedInputException",
        "from Array value",
    );
    // Binding comes before every null check: an unknown property wins over a missing id.
    unbindable(
        &kb,
        r#"{"x":1}"#,
        "com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException",
        "\"x\"",
    );
}

const RECORD: &str = "org.killbill.billing.jaxrs.json.SubscriptionUsageRecordJson";
const SOURCE: &str =
    "[Source: (org.glassfish.jersey.message.internal.ReaderInterceptorExecutor$UnCloseableInputStream)";

/// `SubscriptionUsageRecordJson["unitUsageRecords"]->...`, Jackson's reference chain through
/// the first record of the first unit (`depth` links).
fn chain(depth: usize) -> String {
    let links = [
        format!("{RECORD}[\"unitUsageRecords\"]"),
        "java.util.ArrayList[0]".to_string(),
        format!("{RECORD}$UnitUsageRecordJson[\"usageRecords\"]"),
        "java.util.ArrayList[0]".to_string(),
        format!("{RECORD}$UsageRecordJson[\"recordDate\"]"),
    ];
    format!(" (through reference chain: {})", links[..depth].join("->"))
}

/// Posts `body` and returns its JSON error after checking the 400 and that nothing was stored.
fn refused_json(kb: &InMemoryKillBill, body: &str) -> serde_json::Value {
    let response = Raw::post(body).send(kb);
    assert_eq!(response.status(), 400, "{body}");
    assert_eq!(kb.row_count(), 0);
    json(&response)
}

#[test]
fn row1_a_syntax_error_inside_a_value_is_wrapped_with_its_reference_chain() {
    let (kb, sub) = kb_and_sub();
    let records = |inner: &str| {
        format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{inner}]}}]}}"#)
    };
    // (the record list's content, Jackson's parser message, the column Jackson stands at, the
    // links of the chain): separators and value starts are read by the enclosing object, so the
    // record itself is not in the chain; a string is decoded by the value's own deserializer.
    let case = |inner: &str, problem: &str, marker: &str, past: usize, depth: usize| {
        let body = records(inner);
        let column = body.find(marker).unwrap() + past;
        (body, problem.to_string(), column, depth)
    };
    let cases = [
        case(
            r#"{"recordDate": 2019-10-19","amount":1}"#,
            "Unexpected character ('-' (code 45)): was expecting comma to separate Object entries",
            "-10-19",
            2,
            4,
        ),
        case(
            r#"{"recordDate":"2013-08-01","amount":01.5}"#,
            "Invalid numeric value: Leading zeroes not allowed",
            "01.5",
            2,
            4,
        ),
        case(
            r#"{"recordDate":"2013\q-08-01","amount":1}"#,
            "Unrecognized character escape 'q' (code 113)",
            "\\q",
            3,
            5,
        ),
        case(
            "xyz-1",
            "Unrecognized token 'xyz': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')",
            "xyz",
            4,
            3,
        ),
        case(
            r#"{"recordDate":"2013-08-01","amount":1} {"#,
            "Unexpected character ('{' (code 123)): was expecting comma to separate Array entries",
            "} {",
            4,
            3,
        ),
    ];
    for (body, problem, column, depth) in cases {
        let error = refused_json(&kb, &body);
        let cause = format!("{problem}\n at {SOURCE}; line: 1, column: {column}]");
        assert_eq!(
            error["className"], "com.fasterxml.jackson.databind.JsonMappingException",
            "{body}"
        );
        assert_eq!(error["message"], format!("{cause}{}", chain(depth)), "{body}");
        assert_eq!(
            error["causeClassName"], "com.fasterxml.jackson.core.JsonParseException",
            "{body}"
        );
        assert_eq!(error["causeMessage"], cause, "{body}");
    }
    // A truncated body inside a unit: Jackson's end-of-input exception, wrapped.
    let truncated = format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{{"unitType":"a""#);
    let error = refused_json(&kb, &truncated);
    assert_eq!(
        error["className"],
        "com.fasterxml.jackson.databind.JsonMappingException"
    );
    assert_eq!(
        error["causeClassName"],
        "com.fasterxml.jackson.core.io.JsonEOFException"
    );
    let start = truncated.rfind('{').unwrap() + 1;
    let cause = format!(
        "Unexpected end-of-input: expected close marker for Object (start marker at {SOURCE}; line: 1, column: {start}])\n at {SOURCE}; line: 1, column: {}]",
        truncated.len() + 1
    );
    assert_eq!(error["message"], format!("{cause}{}", chain(2)));
    // Past a separator, or inside a string value (decoded by the value's own deserializer).
    let unit = format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{{"unitType":"a"#);
    for (body, problem, unit_type) in [
        (format!("{unit}\","), "within/between Object entries", false),
        (unit.clone(), "in VALUE_STRING", true),
    ] {
        let error = refused_json(&kb, &body);
        let cause = format!(
            "Unexpected end-of-input {problem}\n at {SOURCE}; line: 1, column: {}]",
            body.len() + 1
        );
        assert_eq!(error["causeMessage"], cause, "{body}");
        let chain = if unit_type {
            format!(
                "{}->{RECORD}$UnitUsageRecordJson[\"unitType\"])",
                chain(2).trim_end_matches(')')
            )
        } else {
            chain(2)
        };
        assert_eq!(error["message"], format!("{cause}{chain}"), "{body}");
    }
    // A binding problem before the syntax error is met first, as in Jackson's single pass...
    let error = refused_json(&kb, &records(r#"{"amount":true,"recordDate": 2019-10-19"}"#));
    assert_eq!(
        error["className"],
        "com.fasterxml.jackson.databind.exc.MismatchedInputException"
    );
    // ... but not an unknown property, which Jackson holds until every creator property was seen.
    let error = refused_json(&kb, &records(r#"{"price":1,"recordDate": 2019-10-19"}"#));
    assert_eq!(
        error["className"],
        "com.fasterxml.jackson.databind.JsonMappingException"
    );
    assert_eq!(error["causeClassName"], "com.fasterxml.jackson.core.JsonParseException");
    // Syntax errors in the root object itself stay unwrapped.
    let error = refused_json(&kb, &format!(r#"{{"subscriptionId":"{sub}" "unitUsageRecords":[]}}"#));
    assert_eq!(error["className"], "com.fasterxml.jackson.core.JsonParseException");
    assert_eq!(error["causeClassName"], serde_json::Value::Null);
    // Joda's exception for a date out of range is the cause of Jackson's.
    let error = refused_json(&kb, &records(r#"{"recordDate":"2013-13-01","amount":1}"#));
    assert_eq!(
        error["className"],
        "com.fasterxml.jackson.databind.JsonMappingException"
    );
    let joda = r#"Cannot parse "2013-13-01": Value 13 for monthOfYear must be in the range [1,12]"#;
    assert_eq!(error["message"], format!("{joda}{}", chain(5)));
    assert_eq!(error["causeClassName"], "org.joda.time.IllegalFieldValueException");
    assert_eq!(error["causeMessage"], joda);
}

#[test]
fn row2_empty_body_or_null() {
    let (kb, _) = kb_and_sub();
    for body in ["", "   \n", "null"] {
        refused(&kb, body, IAE, "SubscriptionUsageRecordJson body should be specified");
    }
}

#[test]
fn rows3_to_5_subscription_and_units() {
    let (kb, sub) = kb_and_sub();
    let units = r#"[{"unitType":"a","usageRecords":[{"recordDate":"2013-08-01","amount":1}]}]"#;
    for body in [
        format!(r#"{{"unitUsageRecords":{units}}}"#),
        format!(r#"{{"subscriptionId":null,"unitUsageRecords":{units}}}"#),
        format!(r#"{{"subscriptionId":"","unitUsageRecords":{units}}}"#),
        "{}".to_string(),
    ] {
        refused(
            &kb,
            &body,
            IAE,
            "SubscriptionUsageRecordJson subscriptionId needs to be set",
        );
    }
    for body in [
        format!(r#"{{"subscriptionId":"{sub}"}}"#),
        format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":null}}"#),
    ] {
        refused(
            &kb,
            &body,
            IAE,
            "SubscriptionUsageRecordJson unitUsageRecords needs to be set",
        );
    }
    refused(
        &kb,
        &format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":[]}}"#),
        IAE,
        "json.getUnitUsageRecords() is empty",
    );
}

#[test]
fn rows6_and_7_units() {
    let (kb, sub) = kb_and_sub();
    let with_units = |units: &str| format!(r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{units}]}}"#);
    for unit in [
        format!(r#"{{"usageRecords":[{GOOD}]}}"#),
        format!(r#"{{"unitType":null,"usageRecords":[{GOOD}]}}"#),
        format!(r#"{{"unitType":"","usageRecords":[{GOOD}]}}"#),
    ] {
        refused(
            &kb,
            &with_units(&unit),
            IAE,
            "UnitUsageRecordJson unitType need to be set",
        );
    }
    refused(
        &kb,
        &with_units(r#"{"unitType":"a","usageRecords":[]}"#),
        IAE,
        "UnitUsageRecordJson usageRecords must have at least one element.",
    );
    // 7': null lists and null elements are NullPointerExceptions.
    let npe = r#"{"className":"java.lang.NullPointerException","code":null,"message":null,"causeClassName":null,"causeMessage":null,"stackTrace":[]}"#;
    for units in [
        r#"{"unitType":"a"}"#.to_string(),
        r#"{"unitType":"a","usageRecords":null}"#.to_string(),
        format!(r#"{{"unitType":"a","usageRecords":[{GOOD},null]}}"#),
        "null".to_string(),
    ] {
        let response = Raw::post(with_units(&units)).send(&kb);
        assert_eq!(response.status(), 400, "{units}");
        assert_eq!(text(&response), npe, "{units}");
    }
    // Units are checked one after the other: the first unit's fault is the answer.
    let first_faulty = with_units(r#"{"unitType":"a","usageRecords":[]},{"unitType":"","usageRecords":[]}"#);
    refused(
        &kb,
        &first_faulty,
        IAE,
        "UnitUsageRecordJson usageRecords must have at least one element.",
    );
    assert_eq!(kb.row_count(), 0);
}

#[test]
fn rows8_and_9_records_amount_first_then_date_in_list_order() {
    let (kb, sub) = kb_and_sub();
    refused(
        &kb,
        &body_with(sub, r#"{"recordDate":"2013-08-01"}"#),
        IAE,
        "UsageRecordJson amount needs to be set",
    );
    refused(
        &kb,
        &body_with(sub, r#"{"recordDate":"2013-08-01","amount":null}"#),
        IAE,
        "UsageRecordJson amount needs to be set",
    );
    refused(
        &kb,
        &body_with(sub, r#"{"recordDate":null,"amount":null}"#),
        IAE,
        "UsageRecordJson amount needs to be set",
    );
    refused(
        &kb,
        &body_with(sub, r#"{"amount":1}"#),
        IAE,
        "UsageRecordJson recordDate needs to be set",
    );
    refused(
        &kb,
        &body_with(sub, r#"{"recordDate":"","amount":1}"#),
        IAE,
        "UsageRecordJson recordDate needs to be set",
    );
    // Record 0's date is checked before record 1's amount.
    refused(
        &kb,
        &body_with(sub, r#"{"amount":1},{"recordDate":"2013-08-01"}"#),
        IAE,
        "UsageRecordJson recordDate needs to be set",
    );
    // The Go client's mistake: amount 0 omitted.
    refused(
        &kb,
        &body_with(sub, r#"{"recordDate":"2013-08-01"}"#),
        IAE,
        "UsageRecordJson amount needs to be set",
    );
}

#[tokio::test]
async fn row10_created_by_is_required_but_may_be_empty() {
    let (kb, sub) = kb_and_sub();
    let response = Raw::post(body_with(sub, GOOD))
        .without("x-killbill-createdby")
        .send(&kb);
    assert_eq!(response.status(), 400);
    assert_eq!(
        text(&response),
        error_body(IAE, "Header X-Killbill-CreatedBy needs to be set")
    );
    // docs/contract.md §4 row 9 comes before row 10.
    let response = Raw::post(body_with(sub, r#"{"amount":1}"#))
        .without("x-killbill-createdby")
        .send(&kb);
    assert_eq!(
        text(&response),
        error_body(IAE, "UsageRecordJson recordDate needs to be set")
    );
    assert_eq!(kb.row_count(), 0);
    client(&kb)
        .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
        .options(RequestOptions::builder().created_by("").build().unwrap())
        .await
        .unwrap();
    assert_eq!(kb.rows(sub)[0].created_by(), "");
}

#[tokio::test]
async fn rows11_and_12_unknown_and_foreign_subscriptions() {
    let (kb, _) = kb_and_sub();
    let client = client(&kb);
    let unknown = SubscriptionId::random();
    let error = client
        .record_usage(&one(unknown, "gallons", "2013-08-01", "1"))
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(
        error.kill_bill_error().unwrap().message(),
        Some(format!("Object id={unknown} type=SUBSCRIPTION doesn't exist!").as_str())
    );
    let acme = kb.add_tenant("acme", "acme-secret");
    let theirs = kb.create_subscription_in("acme").unwrap();
    let error = client
        .record_usage(&one(theirs, "gallons", "2013-08-01", "1"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    let bob = kb.tenant_id("bob").unwrap();
    assert_eq!(
        error.kill_bill_error().unwrap().message(),
        Some(format!("Object id={theirs} type=SUBSCRIPTION doesn't belong to tenant id={bob}").as_str())
    );
    assert_ne!(acme, bob);
    // docs/contract.md §4 row 11 comes after the header check of row 10.
    let response = Raw::post(body_with(unknown, GOOD))
        .without("x-killbill-createdby")
        .send(&kb);
    assert_eq!(
        text(&response),
        error_body(IAE, "Header X-Killbill-CreatedBy needs to be set")
    );
    // As acme, it works.
    client
        .record_usage(&one(theirs, "gallons", "2013-08-01", "1"))
        .options(
            RequestOptions::builder()
                .tenant(TenantCredentials::new("acme", "acme-secret"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(kb.rows(theirs).len(), 1);
}

#[tokio::test]
async fn row13_usage_after_the_effective_end_date_is_400_with_an_empty_body() {
    let kb = InMemoryKillBill::new();
    let sub = kb
        .add_subscription(NewSubscription::new().effective_end_date("2013-08-15T00:00:00Z".parse().unwrap()))
        .unwrap();
    let client = client(&kb);
    let record = SubscriptionUsageRecord::builder(sub)
        .record("gallons", day("2013-08-01"), 1)
        .record("gallons", day("2013-08-15T00:00:00.001Z"), 1)
        .build()
        .unwrap();
    let error = client.record_usage(&record).await.unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::BAD_REQUEST));
    match &error {
        usage_core::Error::Api(api) => assert!(api.body().is_empty()),
        other => panic!("{other:?}"),
    }
    assert_eq!(kb.row_count(), 0, "all or nothing");
    // Exactly at the end date is fine.
    client
        .record_usage(&one(sub, "gallons", "2013-08-15T00:00:00Z", "1"))
        .await
        .unwrap();
    // Cancelling later applies to later requests.
    kb.cancel_subscription(sub, "2013-08-10T00:00:00Z".parse().unwrap())
        .unwrap();
    let error = client
        .record_usage(&one(sub, "gallons", "2013-08-11", "1"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::BAD_REQUEST));
    assert_eq!(kb.row_count(), 1);
}

#[tokio::test]
async fn row14_duplicate_tracking_id_is_code_50000() {
    let (kb, sub) = kb_and_sub();
    let client = client(&kb);
    let record = SubscriptionUsageRecord::builder(sub)
        .tracking_id("abc")
        .record("gallons", day("2013-08-01"), 1)
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    let error = client.record_usage(&record).await.unwrap_err();
    assert!(error.is_duplicate_tracking_id());
    assert_eq!(error.kill_bill_code(), Some(50000));
    let response = Raw::post(format!(
        r#"{{"subscriptionId":"{sub}","trackingId":"abc","unitUsageRecords":[{{"unitType":"other","usageRecords":[{GOOD}]}}]}}"#
    ))
    .send(&kb);
    assert_eq!(response.status(), 400);
    assert_eq!(
        text(&response),
        r#"{"className":"org.killbill.billing.usage.api.UsageApiException","code":50000,"message":"A usage record with tracking ID abc already exists","causeClassName":null,"causeMessage":null,"stackTrace":[]}"#
    );
    assert_eq!(kb.row_count(), 1);
    // The same tracking id on another subscription is fine.
    let other = kb.create_subscription();
    let again = SubscriptionUsageRecord::builder(other)
        .tracking_id("abc")
        .record("gallons", day("2013-08-01"), 1)
        .build()
        .unwrap();
    client.record_usage(&again).await.unwrap();
    assert_eq!(kb.row_count(), 2);
}

#[test]
fn ok_is_201_with_an_empty_json_body_and_one_generated_tracking_id() {
    let (kb, sub) = kb_and_sub();
    for tracking in ["", r#""trackingId":"","#] {
        let body = format!(
            r#"{{"subscriptionId":"{sub}",{tracking}"unitUsageRecords":[{{"unitType":"a","usageRecords":[{GOOD},{GOOD}]}},{{"unitType":"b","usageRecords":[{GOOD}]}}]}}"#
        );
        let response = Raw::post(body).send(&kb);
        assert_eq!(response.status(), 201);
        assert!(response.body().is_empty());
        assert_eq!(content_type(&response), "application/json");
        assert!(response.headers().get("location").is_none());
    }
    let rows = kb.rows(sub);
    assert_eq!(rows.len(), 6, "two POSTs without tracking id both count");
    let mut ids: Vec<&str> = rows.iter().map(|r| r.tracking_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one generated id per request");
    for id in ids {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}

#[test]
fn record_dates_in_every_form_and_exact_amounts() {
    let (kb, sub) = kb_and_sub();
    let body = body_with(
        sub,
        r#"{"recordDate":"2013-08-01T10:00:00+02:00","amount":333333333.333333333},
           {"recordDate":"2013-08-01T06:30:00Z","amount":-2.5},
           {"recordDate":"2013-08-01","amount":0},
           {"recordDate":1375338600000,"amount":"7"},
           {"recordDate":"2099-01-01T00:00:00.123Z","amount":1E-9}"#,
    );
    assert_eq!(Raw::post(body).send(&kb).status(), 201);
    let rows: Vec<(String, String)> = kb
        .rows(sub)
        .into_iter()
        .map(|r| {
            (
                r.record_date().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                r.amount().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2013-08-01T00:00:00.000Z".to_string(), "0".to_string()),
            ("2013-08-01T06:30:00.000Z".to_string(), "-2.5".to_string()),
            ("2013-08-01T06:30:00.000Z".to_string(), "7".to_string()),
            (
                "2013-08-01T08:00:00.000Z".to_string(),
                "333333333.333333333".to_string()
            ),
            ("2099-01-01T00:00:00.123Z".to_string(), "0.000000001".to_string()),
        ]
    );
}

#[test]
fn column_limits_are_500_and_store_nothing() {
    let (kb, sub) = kb_and_sub();
    let truncation = |column: &str, problem: &str| {
        let cause = format!("Data truncation: {problem} for column '{column}' at row 1");
        format!(
            r#"{{"className":"org.jdbi.v3.core.statement.UnableToExecuteStatementException","code":null,"message":"com.mysql.cj.jdbc.exceptions.MysqlDataTruncation: {cause}","causeClassName":"com.mysql.cj.jdbc.exceptions.MysqlDataTruncation","causeMessage":"{cause}","stackTrace":[]}}"#
        )
    };
    let long_unit = format!(
        r#"{{"subscriptionId":"{sub}","unitUsageRecords":[{{"unitType":"ok","usageRecords":[{GOOD}]}},{{"unitType":"{}","usageRecords":[{GOOD}]}}]}}"#,
        "u".repeat(256)
    );
    let long_tracking = format!(
        r#"{{"subscriptionId":"{sub}","trackingId":"{}","unitUsageRecords":[{{"unitType":"a","usageRecords":[{GOOD}]}}]}}"#,
        "t".repeat(129)
    );
    let huge_amount = body_with(
        sub,
        r#"{"recordDate":"2013-08-01","amount":1},{"recordDate":"2013-08-01","amount":1000000000}"#,
    );
    for (body, created_by, expected) in [
        (
            long_unit,
            "tester".to_string(),
            truncation("unit_type", "Data too long"),
        ),
        (
            long_tracking,
            "tester".to_string(),
            truncation("tracking_id", "Data too long"),
        ),
        (
            body_with(sub, GOOD),
            "c".repeat(51),
            truncation("created_by", "Data too long"),
        ),
        (
            huge_amount,
            "tester".to_string(),
            truncation("amount", "Out of range value"),
        ),
    ] {
        let response = Raw::post(body).header("x-killbill-createdby", &created_by).send(&kb);
        assert_eq!(response.status(), 500);
        assert_eq!(text(&response), expected);
        assert_eq!(kb.row_count(), 0);
    }
    // At the limits, everything is stored; more than 9 fraction digits are rounded like MySQL.
    let at_limits = format!(
        r#"{{"subscriptionId":"{sub}","trackingId":"{}","unitUsageRecords":[{{"unitType":"{}","usageRecords":[{{"recordDate":"2013-08-01","amount":999999999.9999999994}}]}}]}}"#,
        "t".repeat(128),
        "u".repeat(255)
    );
    let response = Raw::post(at_limits)
        .header("x-killbill-createdby", &"c".repeat(50))
        .send(&kb);
    assert_eq!(response.status(), 201);
    assert_eq!(kb.rows(sub)[0].amount().to_string(), "999999999.999999999");
}

#[tokio::test]
async fn audit_headers_are_decoded_from_base64() {
    let (kb, sub) = kb_and_sub();
    client(&kb)
        .record_usage(&one(sub, "gallons", "2013-08-01", "1"))
        .options(
            RequestOptions::builder()
                .created_by("Jürgen")
                .reason("relevé")
                .comment("ok")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let row = &kb.rows(sub)[0];
    assert_eq!(row.created_by(), "Jürgen");
    assert_eq!(row.reason(), Some("relevé"));
    assert_eq!(row.comment(), Some("ok"));
    let response = Raw::post(body_with(sub, GOOD))
        .header("x-killbill-encoding", "base64")
        .header("x-killbill-createdby", "dGVzdGVy")
        .send(&kb);
    assert_eq!(response.status(), 201);
    assert_eq!(kb.rows(sub)[1].created_by(), "tester");
}

#[test]
fn several_rows_with_the_same_date_add_up_and_others_are_not_json_415() {
    let (kb, sub) = kb_and_sub();
    let body = body_with(sub, &[GOOD, GOOD, GOOD].join(","));
    assert_eq!(Raw::post(body.clone()).send(&kb).status(), 201);
    let response = Raw::get(&format!(
        "/1.0/kb/usages/{sub}/gallons?startDate=2013-08-01&endDate=2013-08-02"
    ))
    .send(&kb);
    assert_eq!(json(&response)["rolledUpUnits"][0]["amount"].to_string(), "3.0");
    assert!(text(&response).contains(r#""amount":3.000000000"#));
    let response = Raw::post(body.clone()).header("content-type", "text/plain").send(&kb);
    assert_eq!(response.status(), 415);
    let response = Raw::post(body).without("content-type").send(&kb);
    assert_eq!(response.status(), 415);
    assert_eq!(kb.row_count(), 3);
}

#[test]
fn stack_traces_only_when_asked() {
    let (kb, _) = kb_and_sub();
    let mut request = Raw::post("null").build();
    *request.uri_mut() = "http://kb.test/1.0/kb/usages?withStackTrace=true".parse().unwrap();
    let response = kb.handle(request);
    let error = json(&response);
    assert_eq!(error["message"], "SubscriptionUsageRecordJson body should be specified");
    assert_eq!(error["stackTrace"].as_array().unwrap().len(), 1);
}
