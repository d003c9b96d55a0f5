//! The emulator answers any input with one of Kill Bill's statuses and never panics.

mod common;

use common::*;
use proptest::prelude::*;
use usage_transport_memory::InMemoryKillBill;

/// A status and body Kill Bill could have sent for a POST: 201 empty, 400 empty or a JSON error,
/// 404 or 500 JSON errors.
fn plausible(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!([201, 400, 404, 500].contains(&status), "status {}", status);
    if body.is_empty() {
        prop_assert!(status == 201 || status == 400);
    } else {
        let error: serde_json::Value = serde_json::from_slice(body).unwrap();
        prop_assert!(error["className"].is_string());
        prop_assert_eq!(&error["stackTrace"], &serde_json::json!([]));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let kb = InMemoryKillBill::builder().auto_provision(true).build();
        let mut request = Raw::post("").build();
        *request.body_mut() = bytes::Bytes::from(body);
        let response = kb.handle(request);
        plausible(response.status().as_u16(), response.body())?;
    }

    #[test]
    fn mutated_records(
        amount in prop_oneof![Just("1".to_string()), "-?[0-9]{1,12}(\\.[0-9]{1,12})?", "\\PC{0,8}"],
        date in prop_oneof![Just("\"2013-08-01\"".to_string()), "\"[0-9T:\\-+Z. ]{0,25}\"", "[0-9]{1,15}"],
        unit in "\\PC{0,6}",
    ) {
        let kb = InMemoryKillBill::builder().auto_provision(true).build();
        let body = format!(
            r#"{{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11","unitUsageRecords":[{{"unitType":{},"usageRecords":[{{"recordDate":{date},"amount":{amount}}}]}}]}}"#,
            serde_json::to_string(&unit).unwrap()
        );
        let response = kb.handle(Raw::post(body).build());
        plausible(response.status().as_u16(), response.body())?;
        prop_assert_eq!(kb.row_count(), usize::from(response.status() == 201));
    }

    #[test]
    fn arbitrary_query_dates(start in "\\PC{0,30}", end in "[0-9\\-T:Z+]{0,25}") {
        let kb = InMemoryKillBill::new();
        let sub = kb.create_subscription();
        let start = percent_encoding::utf8_percent_encode(&start, percent_encoding::NON_ALPHANUMERIC);
        let end = percent_encoding::utf8_percent_encode(&end, percent_encoding::NON_ALPHANUMERIC);
        let response = Raw::get(&format!("/1.0/kb/usages/{sub}?startDate={start}&endDate={end}")).send(&kb);
        let status = response.status().as_u16();
        prop_assert!(status == 200 || status == 400, "{}", status);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        if status == 200 {
            prop_assert_eq!(&body["rolledUpUnits"], &serde_json::json!([]));
        } else {
            prop_assert_eq!(&body["className"], "java.lang.IllegalArgumentException");
        }
    }
}
