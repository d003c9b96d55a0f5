//! The response parsers never panic and always give a typed error, whatever a server sends.
//!
//! `cargo test -p usage-core --test hostile` runs a modest number of cases; the ignored test
//! runs a million: `cargo test --release -p usage-core --test hostile -- --ignored`.

use bytes::Bytes;
use http::{Response, StatusCode};
use proptest::prelude::*;
use usage_core::{Error, GetAllUsage, Operation, RecordUsage, UsageWindow};
use usage_models::{RolledUpUsage, SubscriptionUsageRecord, UsageDate};

const VALID: &str = r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z","rolledUpUnits":[{"unitType":"gallons","amount":15.000000000},{"unitType":"tiny","amount":1.00E-7}]}"#;
const ERROR: &str = r#"{"className":"org.killbill.billing.usage.api.UsageApiException","code":50000,"message":"A usage record with tracking ID abc already exists","causeClassName":null,"causeMessage":null,"stackTrace":[]}"#;

/// Parses the answer of a GET, as `GetAllUsage` does.
fn parse_rolled_up_usage(response: Response<Bytes>) -> Result<RolledUpUsage, Error> {
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    GetAllUsage::new("8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap(), window).parse(response)
}

/// Bodies a broken or hostile server may send.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragments = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "true",
        "1e400",
        "-0",
        "99999999999999999999999999999999",
        "0E-9",
        "\"amount\"",
        "\"rolledUpUnits\"",
        "\"subscriptionId\"",
        "\\u0000",
        "\u{fffd}",
        "NaN",
    ]);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (0..VALID.len()).prop_map(|cut| VALID.as_bytes()[..cut].to_vec()),
        (0..ERROR.len()).prop_map(|cut| ERROR.as_bytes()[..cut].to_vec()),
        (0..VALID.len(), fragments.clone()).prop_map(|(at, f)| {
            let mut body = VALID.as_bytes().to_vec();
            body.splice(at..at, f.bytes());
            body
        }),
        (0..ERROR.len(), fragments).prop_map(|(at, f)| {
            let mut body = ERROR.as_bytes().to_vec();
            body.splice(at..at, f.bytes());
            body
        }),
        (1usize..20_000).prop_map(|depth| "[".repeat(depth).into_bytes()),
        (1usize..20_000).prop_map(|depth| format!("{{\"rolledUpUnits\":{}", "[".repeat(depth)).into_bytes()),
        Just(VALID.as_bytes().to_vec()),
    ]
}

fn check(status: u16, body: Vec<u8>) -> Result<(), TestCaseError> {
    let status = StatusCode::from_u16(status).unwrap();
    let response = || {
        Response::builder()
            .status(status)
            .body(Bytes::from(body.clone()))
            .unwrap()
    };
    let parsed = parse_rolled_up_usage(response());
    match (&parsed, status.is_success()) {
        (Ok(usage), true) => prop_assert_eq!(
            usage.subscription_id().to_string(),
            "8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11"
        ),
        (Err(Error::Decode(e)), true) => prop_assert_eq!(&e.body()[..], &body[..]),
        (Err(Error::Api(e)), false) => {
            prop_assert_eq!(e.status(), status);
            prop_assert_eq!(&e.body()[..], &body[..]);
        }
        (other, _) => prop_assert!(false, "{status}: {other:?}"),
    }
    // The error's Display never panics either, and stays one line.
    if let Err(e) = &parsed {
        prop_assert!(!e.to_string().contains('\n'));
    }
    let record = SubscriptionUsageRecord::builder("8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11".parse().unwrap())
        .record("u", "2013-08-01".parse::<UsageDate>().unwrap(), 1)
        .build()
        .unwrap();
    let recorded = RecordUsage::new(&record).parse(response());
    prop_assert_eq!(recorded.is_ok(), status.is_success());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn parsers_never_panic(status in 100u16..=599, body in body()) {
        check(status, body)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000_000, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    #[ignore = "a million cases: run with --release -- --ignored"]
    fn parsers_never_panic_a_million_times(status in 100u16..=599, body in body()) {
        check(status, body)?;
    }
}

#[test]
fn huge_bodies_are_errors_not_crashes() {
    // 16 MiB of a number, of whitespace, and of one string: typed errors, no panic.
    for body in [
        "9".repeat(16 << 20),
        format!("{}{}", " ".repeat(16 << 20), "x"),
        format!("\"{}", "a".repeat(16 << 20)),
    ] {
        let response = Response::builder().status(200).body(Bytes::from(body)).unwrap();
        assert!(matches!(parse_rolled_up_usage(response), Err(Error::Decode(_))));
    }
}
