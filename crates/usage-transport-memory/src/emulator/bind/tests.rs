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

// The fast path (`bind/fast.rs`): a subset of the binder, with the binder's values.

/// Whether the fast path binds `body`; when it does, the binder must bind it to the same values.
fn fast_agrees(body: &str, format: WireFormat) -> Result<bool, proptest::test_runner::TestCaseError> {
    let Some(fast) = fast::bind(body.as_bytes(), format) else {
        return Ok(false);
    };
    let slow = match bind_until(body.as_bytes(), body.len(), format) {
        Ok(Some(record)) => record,
        Ok(None) => panic!("the fast path bound {body:?}, the binder read null"),
        Err(e) => panic!(
            "the fast path bound {body:?}, the binder refused it: {}: {}",
            e.class_name, e.message
        ),
    };
    proptest::prop_assert_eq!(&fast, &slow, "{:?}", body);
    // `Decimal`'s `==` ignores the scale; its `Debug` shows it.
    proptest::prop_assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{:?}", body);
    Ok(true)
}

#[test]
fn what_the_client_sends_takes_the_fast_path() {
    use usage_models::{SubscriptionUsageRecord, UsageDate};
    let day = |s: &str| s.parse::<UsageDate>().unwrap();
    let record = SubscriptionUsageRecord::builder(SUB.parse().unwrap())
        .tracking_id("meter \"1\" é")
        .record("gallons", day("2013-08-01"), 10)
        .record("gallons", day("2013-08-02T06:30:00Z"), "2.5")
        .record("liters", day("2013-08-01"), "-0.000000001")
        .build()
        .unwrap();
    let without_id = SubscriptionUsageRecord::builder(SUB.parse().unwrap())
        .record("gallons", day("2013-08-01"), "999999999.999999999")
        .build()
        .unwrap();
    for record in [record, without_id] {
        let body = serde_json::to_string(&record).unwrap();
        assert!(matches!(fast_agrees(&body, WireFormat::V024), Ok(true)), "{body}");
    }
}

#[test]
fn the_fast_path_gives_up_on_anything_unusual() {
    let plain = format!(
        r#"{{"subscriptionId":"{SUB}","trackingId":"t","unitUsageRecords":[{{"unitType":"a","usageRecords":[{{"recordDate":"2013-08-01","amount":1}}]}}]}}"#
    );
    assert!(fast::bind(plain.as_bytes(), WireFormat::V024).is_some(), "{plain}");
    let variants = [
        plain.replace(r#""t""#, "12"),
        plain.replace(r#""t""#, "true"),
        plain.replace(SUB, ""),
        plain.replace(SUB, &SUB.to_uppercase().replace('-', "")),
        plain.replace(r#""2013-08-01""#, r#""""#),
        plain.replace(r#""2013-08-01""#, r#"" ""#),
        plain.replace(r#""2013-08-01""#, "1375338600000"),
        plain.replace(r#""2013-08-01""#, r#""2013-08-01x""#),
        plain.replace(r#""amount":1"#, r#""amount":"1""#),
        plain.replace(r#""amount":1"#, r#""amount":true"#),
        plain.replace(r#""trackingId":"t""#, r#""trackingId":"t","trackingId":"u""#),
        plain.replace(r#""amount":1"#, r#""amount":1,"price":3"#),
        plain
            .replace(r#"{"unitType":"a","usageRecords":"#, r#"["a","#)
            .replace("]}]}", "]]]}"),
        plain
            .replace(r#"[{"unitType""#, r#"{"unitType""#)
            .replace("]}]}", "]}}"),
        format!("\u{feff}{plain}"),
        format!("{plain} trailing"),
        plain[..plain.len() - 1].to_string(),
        "null".to_string(),
        "[]".to_string(),
    ];
    for body in &variants {
        assert!(fast::bind(body.as_bytes(), WireFormat::V024).is_none(), "{body}");
    }
    // The binder answers them as before: `"trackingId": 12` is "12".
    assert_eq!(bind_ok(&variants[0]).tracking_id.as_deref(), Some("12"));
    assert_eq!(bind_err(&variants[11]).0, class::UNRECOGNIZED_PROPERTY);
    // 0.22: a JSON number outside `Long` is the binder's `InputCoercionException`.
    let huge = plain.replace(r#""amount":1"#, r#""amount":1e19"#);
    assert!(fast::bind(huge.as_bytes(), WireFormat::Legacy022).is_none());
    assert!(
        fast::bind(huge.as_bytes(), WireFormat::V024).is_some(),
        "out of the column's range"
    );
}

mod property {
    use proptest::prelude::*;

    use super::{fast_agrees, SUB};
    use crate::emulator::WireFormat;

    fn quoted(text: impl AsRef<str>) -> String {
        format!("\"{}\"", text.as_ref())
    }

    /// Plain JSON numbers, and odd ones (exponents, `-0`, too many digits, far out of range).
    fn number() -> BoxedStrategy<String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (-1_000_000_000_000i64..1_000_000_000_000, "[0-9]{1,30}").prop_map(|(i, f)| format!("{i}.{f}")),
            ("-?[1-9][0-9]{0,3}(\\.[0-9]{1,4})?", "[eE][+-]?", 0u32..40).prop_map(|(m, e, x)| format!("{m}{e}{x}")),
            prop::sample::select(vec![
                "-0",
                "0",
                "-0.0",
                "1e3",
                "1E-7",
                "1.0000000001",
                "0.0000000005",
                "-0.0000000005",
                "999999999.9999999994",
                "999999999.9999999995",
                "-999999999.999999999",
                "1000000000",
                "1e400",
                "-1e400",
                "123456789012345678901234567890",
                "0.000000000000000000000000000001",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775809",
                "2.5",
            ])
            .prop_map(str::to_string),
        ]
        .boxed()
    }

    fn date() -> BoxedStrategy<String> {
        prop_oneof![
            (1970i32..2100, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| quoted(format!("{y:04}-{m:02}-{d:02}"))),
            (1970i32..2100, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60, 0u32..1000).prop_map(|(y, mo, d, h, mi, ms)| {
                quoted(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00.{ms:03}Z"))
            }),
            prop::sample::select(vec![
                "2013-08-01T10:00:00+02:00",
                "2013-08-01T10:00:00Z",
                "2013-08-01T10:00"
            ])
            .prop_map(quoted),
        ]
        .boxed()
    }

    fn id() -> BoxedStrategy<String> {
        prop_oneof![
            "[a-zA-Z0-9 ._-]{0,12}".prop_map(quoted),
            Just(quoted(r#"a\"b\\c\u00e9\n"#)),
            Just(quoted("é€")),
        ]
        .boxed()
    }

    /// One of `plain`, or (when `near`) a near-valid variant of any JSON type.
    fn value(plain: BoxedStrategy<String>, near: bool) -> BoxedStrategy<String> {
        if !near {
            return plain;
        }
        let odd = prop::sample::select(vec![
            "null",
            "\"\"",
            "\" \"",
            "12",
            "-1.5",
            "1e3",
            "true",
            "false",
            "{}",
            "[]",
            "[1]",
            "\"1.5\"",
            "\" 2 \"",
            "\"abc\"",
            "\"2013-08-01x\"",
            "\"2013-13-01\"",
            "\" 2013-08-01 \"",
            "1375338600000",
            "\"2013-08-0\\u0031\"",
        ])
        .prop_map(str::to_string);
        // Rare enough that many bodies have one odd value or none, and take the fast path.
        prop_oneof![20 => plain, 1 => odd].boxed()
    }

    /// An object with `properties` (each maybe missing; when `near`, maybe repeated, and maybe
    /// with an unknown or escaped name), in any order.
    fn object(properties: Vec<(&'static str, BoxedStrategy<String>)>, near: bool) -> BoxedStrategy<String> {
        // How many times a property is there: mostly once, sometimes missing, and repeated when `near`.
        let times = if near {
            prop_oneof![1 => Just(0usize), 20 => Just(1), 1 => Just(2)].boxed()
        } else {
            prop_oneof![1 => Just(0usize), 5 => Just(1)].boxed()
        };
        let mut entries: Vec<BoxedStrategy<Vec<String>>> = properties
            .into_iter()
            .map(|(name, value)| {
                let entry = value.prop_map(move |v| format!("\"{name}\":{v}"));
                repeated(entry.boxed(), times.clone())
            })
            .collect();
        if near {
            let unknown = prop::sample::select(vec!["\"price\":3", "\"extra\":null", "\"unit\\u0054ype\":\"a\""])
                .prop_map(str::to_string);
            entries.push(repeated(
                unknown.boxed(),
                prop_oneof![20 => Just(0usize), 1 => Just(1)].boxed(),
            ));
        }
        entries
            .prop_map(|entries| entries.into_iter().flatten().collect::<Vec<_>>())
            .prop_shuffle()
            .prop_flat_map(|entries| {
                separator().prop_map(move |ws| format!("{{{ws}{}{ws}}}", entries.join(&format!("{ws},{ws}"))))
            })
            .boxed()
    }

    fn repeated(entry: BoxedStrategy<String>, times: BoxedStrategy<usize>) -> BoxedStrategy<Vec<String>> {
        times
            .prop_flat_map(move |n| prop::collection::vec(entry.clone(), n))
            .boxed()
    }

    fn separator() -> BoxedStrategy<String> {
        prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n  "])
            .prop_map(str::to_string)
            .boxed()
    }

    fn list(item: BoxedStrategy<String>, near: bool) -> BoxedStrategy<String> {
        let item = if near {
            prop_oneof![20 => item, 1 => Just("null".to_string())].boxed()
        } else {
            item
        };
        let list = (prop::collection::vec(item, 0..4), separator())
            .prop_map(|(items, ws)| format!("[{ws}{}{ws}]", items.join(&format!(",{ws}"))))
            .boxed();
        value(list, near)
    }

    fn body(near: bool) -> BoxedStrategy<String> {
        let usage = object(
            vec![("recordDate", value(date(), near)), ("amount", value(number(), near))],
            near,
        );
        let unit = object(
            vec![("unitType", value(id(), near)), ("usageRecords", list(usage, near))],
            near,
        );
        let uuid = prop_oneof![
            Just(quoted(SUB)),
            Just(quoted(SUB.to_uppercase())),
            any::<u128>().prop_map(|n| quoted(uuid::Uuid::from_u128(n).to_string()))
        ]
        .boxed();
        let record = object(
            vec![
                ("subscriptionId", value(uuid, near)),
                ("trackingId", value(id(), near)),
                ("unitUsageRecords", list(unit, near)),
            ],
            near,
        );
        if !near {
            return record;
        }
        let edges = prop_oneof![
            20 => Just(""),
            1 => prop::sample::select(vec![" ", "\n", "\u{feff}", " x", "]"]),
        ];
        (
            edges.clone(),
            record,
            edges,
            any::<prop::sample::Index>(),
            prop::bool::weighted(0.05),
        )
            .prop_map(|(before, record, after, cut, truncate)| {
                let body = format!("{before}{record}{after}");
                if truncate {
                    let at = cut.index(body.len() + 1);
                    return String::from_utf8_lossy(&body.as_bytes()[..at]).into_owned();
                }
                body
            })
            .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn plain_bodies_take_the_fast_path_with_the_binders_values(body in body(false)) {
            prop_assert!(fast_agrees(&body, WireFormat::V024)?, "the fast path gave up on {:?}", body);
        }

        #[test]
        fn whatever_the_fast_path_binds_the_binder_binds_the_same(body in body(true), legacy in any::<bool>()) {
            let format = if legacy { WireFormat::Legacy022 } else { WireFormat::V024 };
            fast_agrees(&body, format)?;
        }
    }
}
