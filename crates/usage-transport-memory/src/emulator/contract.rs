//! What the emulator knows about Kill Bill's wire, in one place, each fact from
//! `docs/contract.md`. These are the emulator's own copies: it checks the client, so it
//! shares none of the client's constants (a typo on either side must make a test fail, not
//! pass on both).

use http::HeaderName;

/// `X-Killbill-ApiKey` (docs/contract.md §1, §5.2).
pub(crate) const API_KEY: HeaderName = HeaderName::from_static("x-killbill-apikey");
/// `X-Killbill-ApiSecret` (docs/contract.md §1, §5.2).
pub(crate) const API_SECRET: HeaderName = HeaderName::from_static("x-killbill-apisecret");
/// `X-Killbill-CreatedBy` (docs/contract.md §1, §4 row 10).
pub(crate) const CREATED_BY: HeaderName = HeaderName::from_static("x-killbill-createdby");
/// `X-Killbill-Reason` (docs/contract.md §1).
pub(crate) const REASON: HeaderName = HeaderName::from_static("x-killbill-reason");
/// `X-Killbill-Comment` (docs/contract.md §1).
pub(crate) const COMMENT: HeaderName = HeaderName::from_static("x-killbill-comment");
/// `X-Killbill-Encoding` (docs/contract.md §1).
pub(crate) const ENCODING: HeaderName = HeaderName::from_static("x-killbill-encoding");

/// The `code` of Kill Bill's answer to a tracking id already used (docs/contract.md §4 row 14).
pub(crate) const DUPLICATE_TRACKING_ID_CODE: i64 = 50000;

/// The longest `unitType` the database stores, `unit_type varchar(255)` (docs/contract.md §2).
pub(crate) const MAX_UNIT_TYPE_CHARS: usize = 255;
/// The longest `trackingId` the database stores, `tracking_id varchar(128)` (docs/contract.md §2).
pub(crate) const MAX_TRACKING_ID_CHARS: usize = 128;
/// The longest `X-Killbill-CreatedBy` the database stores, `created_by varchar(50)`
/// (docs/contract.md §2).
pub(crate) const MAX_CREATED_BY_CHARS: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract itself: every value above must be written there as it is here.
    const CONTRACT: &str = include_str!("../../../../docs/contract.md");

    #[test]
    fn constants_are_the_contracts_literal_values() {
        // Literal values, copied from docs/contract.md by hand.
        assert_eq!(DUPLICATE_TRACKING_ID_CODE, 50000);
        assert_eq!(MAX_UNIT_TYPE_CHARS, 255);
        assert_eq!(MAX_TRACKING_ID_CHARS, 128);
        assert_eq!(MAX_CREATED_BY_CHARS, 50);
        for (name, written) in [
            (&API_KEY, "X-Killbill-ApiKey"),
            (&API_SECRET, "X-Killbill-ApiSecret"),
            (&CREATED_BY, "X-Killbill-CreatedBy"),
            (&REASON, "X-Killbill-Reason"),
            (&COMMENT, "X-Killbill-Comment"),
            (&ENCODING, "X-Killbill-Encoding"),
        ] {
            assert_eq!(name.as_str(), written.to_ascii_lowercase());
            assert!(
                CONTRACT.contains(&format!("`{written}`")),
                "{written} is not in the contract"
            );
        }
    }

    #[test]
    fn constants_are_written_in_the_contract() {
        for needle in [
            format!("`code` `{DUPLICATE_TRACKING_ID_CODE}`"),
            format!("`unit_type varchar({MAX_UNIT_TYPE_CHARS})`"),
            format!("`tracking_id varchar({MAX_TRACKING_ID_CHARS})`"),
            format!("`created_by varchar({MAX_CREATED_BY_CHARS})`"),
            format!("`unitType`: at most {MAX_UNIT_TYPE_CHARS} characters"),
            format!("`trackingId`: at most {MAX_TRACKING_ID_CHARS} characters"),
            format!("`X-Killbill-CreatedBy`: at most {MAX_CREATED_BY_CHARS} characters"),
        ] {
            assert!(CONTRACT.contains(&needle), "docs/contract.md does not say {needle}");
        }
    }
}
