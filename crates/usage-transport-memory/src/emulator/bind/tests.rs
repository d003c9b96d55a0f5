//! Unit tests of the binder: Jackson's answers, one by one.

use super::*;

fn bind_ok(body: &str) -> BoundRecord {
    match bind(body.as_bytes(), WireFormat::V024) {
        Ok(Some(record)) => record,
        Ok(None) => panic!("null"),
        Err(e) => panic!("{}: {}", e.class_name, e.message),
    }
}

fn bind_err(body: &str) -> (String, String) {
    match bind(body.as_bytes(), WireFormat::V024) {
        Err(e) => (e.class_name.to_string(), e.message),
        Ok(_) => panic!("bound {body}"),
    }
}

const SUB: &str = "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11";

#[test]
fn binds_exact_amounts_and_every_date_form() {
    let body = format!(
        r#"{{"subscriptionId":"{SUB}","trackingId":7,"unitUsageRecords":[{{"unitType":"a","usageRecords":[
        {{"recordDate":"2013-08-01","amount":333333333.333333333}},
        {{"recordDate":"2013-08-01T10:00:00+02:00","amount":"1.5"}},
        {{"recordDate":1375338600000,"amount":1E-7}},
        {{"recordDate":"","amount":""}}]}}]}} trailing"#
    );
    let record = bind_ok(&body);
    assert_eq!(record.subscription_id.unwrap().to_string(), SUB);
    assert_eq!(record.tracking_id.as_deref(), Some("7"));
    let units = record.units.unwrap();
    let records = units[0].as_ref().unwrap().records.as_ref().unwrap();
    let amount = |i: usize| match records[i].as_ref().unwrap().amount {
        Some(BoundAmount::Fits(d)) => d.to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(amount(0), "333333333.333333333");
    assert_eq!(amount(1), "1.5");
    assert_eq!(amount(2), "0.0000001");
    assert_eq!(amount(3), "None");
    let date = |i: usize| records[i].as_ref().unwrap().record_date.map(|d| d.to_rfc3339());
    assert_eq!(date(0).unwrap(), "2013-08-01T00:00:00+00:00");
    assert_eq!(date(1).unwrap(), "2013-08-01T08:00:00+00:00");
    assert_eq!(date(2).unwrap(), "2013-08-01T06:30:00+00:00");
    assert_eq!(date(3), None);
}

#[test]
fn column_range_and_rounding() {
    assert!(matches!(
        fit_column("999999999.999999999".parse().unwrap()),
        BoundAmount::Fits(_)
    ));
    assert!(matches!(
        fit_column("1000000000".parse().unwrap()),
        BoundAmount::OutOfRange
    ));
    match fit_column("0.0000000005".parse().unwrap()) {
        BoundAmount::Fits(d) => assert_eq!(d.to_string(), "0.000000001"),
        other => panic!("{other:?}"),
    }
    assert_eq!(parse_big_decimal("1e400"), None);
}

#[test]
fn jackson_errors() {
    let (class, message) = bind_err(&format!(r#"{{"subscriptionId":"{SUB}","extra":1}}"#));
    assert_eq!(class, class::UNRECOGNIZED_PROPERTY);
    assert_eq!(
        message,
        format!(
            "Unrecognized field \"extra\" (class {RECORD_CLASS}), not marked as ignorable \
             (3 known properties: \"subscriptionId\", \"trackingId\", \"unitUsageRecords\"])\n \
             at [Source: {SOURCE}; line: 1, column: 68] (through reference chain: \
             {RECORD_CLASS}[\"extra\"])"
        )
    );
    // Buffered until every creator property was seen: here, never; reported past the `}`
    // (column 68), after the other properties were bound.
    let (class, _) = bind_err(r#"{"extra":1,"subscriptionId":"nope"}"#);
    assert_eq!(class, class::INVALID_FORMAT, "a later problem is met first");
    // After both creator properties: reported at once, past the value's first token.
    let usage = r#"{"unitUsageRecords":[{"usageRecords":[{"recordDate":"2013-08-01","amount":1,"price":3}]}]}"#;
    let (class, message) = bind_err(usage);
    assert_eq!(class, class::UNRECOGNIZED_PROPERTY);
    let column = usage.find("3}").unwrap() + 2;
    assert!(message.contains(&format!("line: 1, column: {column}]")), "{message}");
    // Buffered, then reported when the last creator property is bound: the parser has read
    // the next name and the first token of its value.
    let usage = r#"{"unitUsageRecords":[{"usageRecords":[{"price":3,"recordDate":"2013-08-01","amount":1,"x":[2]}]}]}"#;
    let (class, message) = bind_err(usage);
    assert_eq!(class, class::UNRECOGNIZED_PROPERTY);
    assert!(message.starts_with("Unrecognized field \"price\""), "{message}");
    let column = usage.find("[2]").unwrap() + 2;
    assert!(message.contains(&format!("line: 1, column: {column}]")), "{message}");
    let (class, message) = bind_err(r#"{"subscriptionId":"nope"}"#);
    assert_eq!(class, class::INVALID_FORMAT);
    assert!(
        message.starts_with("Cannot deserialize value of type `java.util.UUID` from String \"nope\""),
        "{message}"
    );
    let (class, _) = bind_err(r#"{"subscriptionId":12}"#);
    assert_eq!(class, class::MISMATCHED_INPUT);
    let (class, message) = bind_err(r#"{"subscriptionId": }"#);
    assert_eq!(class, class::JSON_PARSE);
    // Jackson stands past the character it refused.
    assert_eq!(
        message,
        format!(
            "Unexpected character ('}}' (code 125)): expected a value\n at [Source: {SOURCE}; line: 1, column: 21]"
        )
    );
    let (class, message) = bind_err(r#"{"unitUsageRecords":[{"usageRecords":[{"amount":true}]}]}"#);
    assert_eq!(class, class::MISMATCHED_INPUT);
    assert!(
        message.ends_with(&format!(
            "(through reference chain: {RECORD_CLASS}[\"unitUsageRecords\"]->java.util.ArrayList[0]->\
             {UNIT_CLASS}[\"usageRecords\"]->java.util.ArrayList[0]->{USAGE_CLASS}[\"amount\"])"
        )),
        "{message}"
    );
    let (class, message) = bind_err(r#"{"unitUsageRecords":[{"usageRecords":[{"recordDate":"2013-08-01x"}]}]}"#);
    assert_eq!(class, JSON_MAPPING);
    assert!(
        message.starts_with(r#"Invalid format: "2013-08-01x" is malformed at "x""#),
        "{message}"
    );
    let (class, _) = bind_err(r#"[]"#);
    assert_eq!(class, class::MISMATCHED_INPUT);
    let (class, _) = bind_err(r#"{"unitUsageRecords":{}}"#);
    assert_eq!(class, class::MISMATCHED_INPUT);
    let (class, _) = bind_err(r#"{"unitUsageRecords":[{"usageRecords":[{"amount":"abc"}]}]}"#);
    assert_eq!(class, class::INVALID_FORMAT);
}

#[test]
fn null_is_no_record() {
    assert!(matches!(bind(b"null", WireFormat::V024), Ok(None)));
}

#[test]
fn legacy_amounts_are_longs() {
    let body = r#"{"unitUsageRecords":[{"usageRecords":[{"recordDate":"2013-08-01","amount":4.75}]}]}"#;
    let record = match bind(body.as_bytes(), WireFormat::Legacy022) {
        Ok(Some(r)) => r,
        _ => panic!(),
    };
    let usage = record
        .units
        .unwrap()
        .remove(0)
        .unwrap()
        .records
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(matches!(usage.amount, Some(BoundAmount::Fits(d)) if d == Decimal::from(4)));
    let bad = r#"{"unitUsageRecords":[{"usageRecords":[{"recordDate":"2013-08-01T00:00:00Z"}]}]}"#;
    assert!(bind(bad.as_bytes(), WireFormat::Legacy022).is_err());
}
