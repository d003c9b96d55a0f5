//! docs/contract.md §1 and §3: reading usage, through `UsageClient` where it can send the request, raw
//! through `handle()` where the client refuses the input first.

mod common;

use common::*;
use http::Method;
use usage_core::{RequestOptions, TenantCredentials, UsageWindow};
use usage_models::SubscriptionId;
use usage_transport_memory::InMemoryKillBill;

const ILLEGAL_ARGUMENT: &str = "java.lang.IllegalArgumentException";

fn seeded() -> (InMemoryKillBill, SubscriptionId) {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let body = body_with(
        sub,
        r#"{"recordDate":"2013-08-01T06:30:00Z","amount":10},{"recordDate":"2013-08-31T06:30:00Z","amount":5}"#,
    );
    assert_eq!(Raw::post(body).send(&kb).status(), 201);
    (kb, sub)
}

#[test]
fn row1_missing_start_or_end_is_400_with_an_empty_body() {
    let (kb, sub) = seeded();
    for query in [
        "?endDate=2013-09-01",
        "?startDate=2013-08-01",
        "",
        "?startdate=2013-08-01&enddate=2013-09-01",
    ] {
        for path in [format!("/1.0/kb/usages/{sub}"), format!("/1.0/kb/usages/{sub}/gallons")] {
            let response = Raw::get(&format!("{path}{query}")).send(&kb);
            assert_eq!(response.status(), 400, "{path}{query}");
            assert!(response.body().is_empty(), "{path}{query}");
            assert_eq!(content_type(&response), "application/json");
        }
    }
}

#[test]
fn row2_empty_or_malformed_dates_are_joda_errors() {
    let (kb, sub) = seeded();
    for (start, end, message) in [
        (
            "2013-08-01x",
            "2013-09-01",
            r#"Invalid format: "2013-08-01x" is malformed at "x""#,
        ),
        ("", "2013-09-01", r#"Invalid format: """#),
        ("2013-08-01", "", r#"Invalid format: """#),
        ("2013-08-01", "next week", r#"Invalid format: "next week""#),
        // Joda reads a leading `T` (any case) as a time-only value.
        (
            "2013-08-01",
            "tomorrow",
            r#"Invalid format: "tomorrow" is malformed at "omorrow""#,
        ),
        (
            "2013-08-",
            "2013-09-01",
            r#"Invalid format: "2013-08-" is malformed at "-""#,
        ),
        (
            "2013-13-01",
            "2013-09-01",
            r#"Cannot parse "2013-13-01": Value 13 for monthOfYear must be in the range [1,12]"#,
        ),
    ] {
        let encode = |s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC);
        let response = Raw::get(&format!(
            "/1.0/kb/usages/{sub}/gallons?startDate={}&endDate={}",
            encode(start),
            encode(end)
        ))
        .send(&kb);
        assert_eq!(response.status(), 400, "{start} {end}");
        assert_eq!(text(&response), error_body(ILLEGAL_ARGUMENT, message), "{start} {end}");
    }
}

#[tokio::test]
async fn row3_iso_dates_and_date_times_in_utc() {
    let (kb, sub) = seeded();
    let client = client(&kb);
    // An offset is converted to UTC and echoed with milliseconds.
    let usage = client
        .get_all_usage(sub, window("2013-08-01T10:00:00+02:00", "2013-09-01"))
        .await
        .unwrap();
    assert_eq!(usage.start_date().to_string(), "2013-08-01T08:00:00.000Z");
    assert_eq!(usage.end_date().to_string(), "2013-09-01T00:00:00.000Z");
    // 06:30Z is before 08:00Z: only the 31st counts.
    assert_eq!(usage.amount_of("gallons"), Some("5".parse().unwrap()));
    // Raw: a one-digit day and a plain date are midnight UTC.
    let response = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-08-1&endDate=2013-08-31")).send(&kb);
    assert_eq!(
        text(&response),
        format!(
            r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-08-31T00:00:00.000Z","rolledUpUnits":[{{"unitType":"gallons","amount":10.000000000}}]}}"#
        )
    );
}

#[tokio::test]
async fn row4_half_open_windows_on_instants() {
    let (kb, sub) = seeded();
    let client = client(&kb);
    let at_end = client
        .get_usage(sub, "gallons", window("2013-08-01", "2013-08-31T06:30:00Z"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        at_end.amount_of("gallons"),
        Some("10".parse().unwrap()),
        "a row at endDate is excluded"
    );
    let at_start = client
        .get_usage(sub, "gallons", window("2013-08-31T06:30:00Z", "2013-09-01"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        at_start.amount_of("gallons"),
        Some("5".parse().unwrap()),
        "a row at startDate is included"
    );
    let empty = client
        .get_usage(sub, "gallons", window("2013-08-01T06:30:00Z", "2013-08-01T06:30:00Z"))
        .unwrap()
        .await
        .unwrap();
    assert!(empty.rolled_up_units().is_empty(), "end == start");
    // The client refuses end < start; the server answers an empty result.
    let response = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-09-01&endDate=2013-08-01")).send(&kb);
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["rolledUpUnits"], serde_json::json!([]));
}

#[tokio::test]
async fn row5_unknown_subscription_is_404_and_another_tenants_is_500() {
    let (kb, sub) = seeded();
    let client = client(&kb);
    let unknown: SubscriptionId = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap();
    let error = client
        .get_all_usage(unknown, window("2013-08-01", "2013-09-01"))
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    let kill_bill = error.kill_bill_error().unwrap();
    assert_eq!(
        kill_bill.class_name(),
        "org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist"
    );
    assert_eq!(
        kill_bill.message(),
        Some("Object id=8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 type=SUBSCRIPTION doesn't exist!")
    );
    assert_eq!(kill_bill.code(), None);

    let acme = kb.add_tenant("acme", "acme-secret");
    let as_acme = RequestOptions::builder()
        .tenant(TenantCredentials::new("acme", "acme-secret"))
        .build()
        .unwrap();
    for error in [
        client
            .get_all_usage(sub, window("2013-08-01", "2013-09-01"))
            .options(as_acme.clone())
            .await
            .unwrap_err(),
        client
            .get_usage(sub, "gallons", window("2013-08-01", "2013-09-01"))
            .unwrap()
            .options(as_acme.clone())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(error.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
        let kill_bill = error.kill_bill_error().unwrap();
        assert_eq!(kill_bill.class_name(), "java.lang.IllegalStateException");
        assert_eq!(
            kill_bill.message(),
            Some(format!("Object id={sub} type=SUBSCRIPTION doesn't belong to tenant id={acme}").as_str())
        );
    }
}

#[tokio::test]
async fn row6_exact_sums_per_unit_and_filters() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    let record = usage_models::SubscriptionUsageRecord::builder(sub)
        .record("gallons", day("2013-08-01"), "0.1")
        .record("gallons", day("2013-08-01"), "0.2")
        .record("Gallons", day("2013-08-02"), 7)
        .record("liters/day", day("2013-08-03"), "333333333.333333333")
        .build()
        .unwrap();
    client.record_usage(&record).await.unwrap();
    let august = window("2013-08-01", "2013-09-01");
    let all = client.get_all_usage(sub, august).await.unwrap();
    assert_eq!(all.subscription_id(), sub);
    assert_eq!(all.rolled_up_units().len(), 3);
    assert_eq!(all.amount_of("gallons").unwrap().to_string(), "0.300000000");
    assert_eq!(all.amount_of("Gallons").unwrap().to_string(), "7.000000000");
    assert_eq!(all.amount_of("liters/day").unwrap().to_string(), "333333333.333333333");
    // get_usage: exact and case-sensitive; the unit is one percent-encoded path segment.
    let one = client.get_usage(sub, "gallons", august).unwrap().await.unwrap();
    assert_eq!(one.rolled_up_units().len(), 1);
    assert_eq!(one.amount_of("gallons").unwrap().to_string(), "0.300000000");
    let slash = client.get_usage(sub, "liters/day", august).unwrap().await.unwrap();
    assert_eq!(
        slash.amount_of("liters/day").unwrap().to_string(),
        "333333333.333333333"
    );
    let unknown = client.get_usage(sub, "GALLONS", august).unwrap().await.unwrap();
    assert!(unknown.rolled_up_units().is_empty());
    let nothing = client
        .get_all_usage(sub, window("2014-01-01", "2014-02-01"))
        .await
        .unwrap();
    assert!(nothing.rolled_up_units().is_empty());
    // On the wire: `[]`, never null, never a zero entry.
    let response = Raw::get(&format!(
        "/1.0/kb/usages/{sub}/nope?startDate=2013-08-01&endDate=2013-09-01"
    ))
    .send(&kb);
    assert_eq!(
        text(&response),
        format!(
            r#"{{"subscriptionId":"{sub}","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[]}}"#
        )
    );
}

#[test]
fn amounts_are_written_as_java_big_decimals_at_scale_9() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    for (unit, amounts) in [
        ("zero", "1, -1"),
        ("tiny", "0.0000001"),
        ("half", "19.5"),
        ("whole", "15"),
    ] {
        let records: Vec<String> = amounts
            .split(", ")
            .map(|a| format!(r#"{{"recordDate":"2013-08-01","amount":{a}}}"#))
            .collect();
        let body = body_with(sub, &records.join(",")).replace("gallons", unit);
        assert_eq!(Raw::post(body).send(&kb).status(), 201);
    }
    for (unit, written) in [
        ("zero", "0E-9"),
        ("tiny", "1.00E-7"),
        ("half", "19.500000000"),
        ("whole", "15.000000000"),
    ] {
        let response = Raw::get(&format!(
            "/1.0/kb/usages/{sub}/{unit}?startDate=2013-08-01&endDate=2013-08-02"
        ))
        .send(&kb);
        assert!(
            text(&response).ends_with(&format!(
                r#""rolledUpUnits":[{{"unitType":"{unit}","amount":{written}}}]}}"#
            )),
            "{}",
            text(&response)
        );
    }
}

#[test]
fn subscription_ids_not_matching_the_template_are_404_with_an_empty_body() {
    let kb = InMemoryKillBill::new();
    for path in [
        "/1.0/kb/usages/not-a-uuid?startDate=2013-08-01&endDate=2013-09-01",
        "/1.0/kb/usages/123/gallons?startDate=2013-08-01&endDate=2013-09-01",
        "/1.0/kb/usages/a-b-c-d-e/x/y?startDate=2013-08-01&endDate=2013-09-01",
        "/1.0/kb/nothing",
        "/",
    ] {
        let response = Raw::get(path).send(&kb);
        assert_eq!(response.status(), 404, "{path}");
        assert!(response.body().is_empty(), "{path}");
    }
    // Matching the template but refused by Java's UUID.fromString: JAX-RS fails to convert the
    // path parameter, a 404 with an empty body before any resource code (even with no dates).
    for id in [
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        "g-b-c-d-e",
        "10000000000000000-b-c-d-e",
    ] {
        for path in [
            format!("/1.0/kb/usages/{id}?startDate=2013-08-01&endDate=2013-09-01"),
            format!("/1.0/kb/usages/{id}/gallons?startDate=2013-08-01&endDate=2013-09-01"),
            format!("/1.0/kb/usages/{id}"),
            format!("/1.0/kb/usages/{id}?startDate=x&endDate=y"),
        ] {
            let response = Raw::get(&path).send(&kb);
            assert_eq!(response.status(), 404, "{path}");
            assert!(response.body().is_empty(), "{path}: {}", text(&response));
        }
    }
    // Lenient where Java accepts: 1-2-3-4-5 is 00000001-0002-0003-0004-000000000005.
    let response = Raw::get("/1.0/kb/usages/1-2-3-4-5?startDate=2013-08-01&endDate=2013-09-01").send(&kb);
    assert_eq!(response.status(), 404);
    assert!(text(&response).contains("Object id=00000001-0002-0003-0004-000000000005 type=SUBSCRIPTION"));
    // Lenient like Java: a-b-c-d-e is a UUID, unknown here.
    let response = Raw::get("/1.0/kb/usages/a-b-c-d-e?startDate=2013-08-01&endDate=2013-09-01").send(&kb);
    assert_eq!(response.status(), 404);
    assert!(text(&response).contains("Object id=0000000a-000b-000c-000d-00000000000e type=SUBSCRIPTION"));
}

#[tokio::test]
async fn plugin_properties_are_accepted_and_ignored() {
    let (kb, sub) = seeded();
    let usage = client(&kb)
        .get_usage(sub, "gallons", window("2013-08-01", "2013-09-01"))
        .unwrap()
        .options(
            RequestOptions::builder()
                .plugin_property("source", "meter=7")
                .plugin_property("x", "")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some("15".parse().unwrap()));
}

#[test]
fn other_methods_are_405_and_head_has_no_body() {
    let (kb, sub) = seeded();
    let response = Raw::new(Method::GET, "/1.0/kb/usages").send(&kb);
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST,OPTIONS");
    for method in [Method::POST, Method::DELETE, Method::PUT] {
        let response = Raw::new(method.clone(), &format!("/1.0/kb/usages/{sub}")).send(&kb);
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "GET,HEAD,OPTIONS");
        assert!(response.body().is_empty());
    }
    let head = Raw::new(
        Method::HEAD,
        &format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01"),
    )
    .send(&kb);
    assert_eq!(head.status(), 200);
    assert!(head.body().is_empty());
    let options = Raw::new(Method::OPTIONS, &format!("/1.0/kb/usages/{sub}/gallons")).send(&kb);
    assert_eq!(options.status(), 200);
    assert_eq!(options.headers()["allow"], "GET,HEAD,OPTIONS");
}

#[tokio::test]
async fn a_path_prefix_is_honoured() {
    let kb = InMemoryKillBill::builder().path_prefix("/killbill/").build();
    let sub = kb.create_subscription();
    let client = usage_core::UsageClient::builder("http://kb.test/killbill")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kb.clone())
        .retry_policy(usage_core::RetryPolicy::none().without_deadline())
        .build()
        .unwrap();
    client
        .record_usage(&one(sub, "gallons", "2013-08-01", "3"))
        .await
        .unwrap();
    let usage = client
        .get_all_usage(sub, UsageWindow::parse("2013-08-01", "2013-08-02").unwrap())
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some("3".parse().unwrap()));
    let outside = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01")).send(&kb);
    assert_eq!(outside.status(), 404);
}
