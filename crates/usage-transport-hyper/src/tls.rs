//! The rustls configuration: the ring provider, safe default protocol versions, and the roots
//! to trust. Certificates are always checked; nothing here can turn that off.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use usage_core::{InputField, InvalidInput};

/// Which roots to trust.
pub(crate) struct Roots<'a> {
    #[cfg_attr(not(feature = "webpki-roots"), allow(dead_code))]
    pub(crate) webpki: bool,
    #[cfg_attr(not(feature = "native-roots"), allow(dead_code))]
    pub(crate) native: bool,
    pub(crate) extra: &'a [Vec<u8>],
}

/// The root store and the TLS client config.
pub(crate) fn client_config(roots: &Roots<'_>) -> Result<(rustls::ClientConfig, usize), InvalidInput> {
    let mut store = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    if roots.webpki {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    // The system's roots are added when there are some. A machine without a CA bundle (a
    // minimal container) is not an error: the transport still speaks plain HTTP and trusts its
    // other roots, and a TLS server it cannot verify fails the handshake, as it should.
    // Unreadable or unparsable system certificates are skipped, as browsers do.
    #[cfg(feature = "native-roots")]
    if roots.native {
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    for (index, input) in roots.extra.iter().enumerate() {
        let field = InputField::RootCertificate { index };
        for certificate in parse_certificates(input).map_err(|reason| InvalidInput::new(field, reason))? {
            store
                .add(certificate)
                .map_err(|e| InvalidInput::new(field, "cannot be a trust anchor").with_source(e))?;
        }
    }
    let count = store.len();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InvalidInput::new(InputField::Tls, "refused by rustls").with_source(e))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok((config, count))
}

/// Every certificate of a PEM input (one or more `CERTIFICATE` blocks), or a DER certificate.
pub(crate) fn parse_certificates(input: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let is_pem = input.windows(11).any(|w| w == b"-----BEGIN ");
    if !is_pem {
        // DER: an ASN.1 SEQUENCE; the root store checks the rest.
        if input.first() != Some(&0x30) {
            return Err("neither PEM nor DER".to_string());
        }
        return Ok(vec![CertificateDer::from(input.to_vec())]);
    }
    let certificates = CertificateDer::pem_slice_iter(input)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certificates.is_empty() {
        return Err("the PEM input has no CERTIFICATE block".to_string());
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_certificate() {
        assert_eq!(parse_certificates(b"hello").unwrap_err(), "neither PEM nor DER");
        assert_eq!(parse_certificates(b"").unwrap_err(), "neither PEM nor DER");
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            parse_certificates(key_only).unwrap_err(),
            "the PEM input has no CERTIFICATE block"
        );
        let roots = Roots {
            webpki: false,
            native: false,
            extra: &[vec![0x30, 0x03, 0x02, 0x01, 0x01]],
        };
        let error = client_config(&roots).unwrap_err();
        assert_eq!(error.field(), InputField::RootCertificate { index: 0 });
        assert_eq!(error.reason(), "cannot be a trust anchor");
        assert!(
            std::error::Error::source(&error).is_some(),
            "the TLS library's error is kept: {error:?}"
        );
    }

    #[test]
    fn reads_pem_bundles_and_der() {
        let first = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let second = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        // A key block among the certificates is skipped.
        let bundle = format!(
            "{}{}{}",
            first.signing_key.serialize_pem(),
            first.cert.pem(),
            second.cert.pem()
        );
        let parsed = parse_certificates(bundle.as_bytes()).unwrap();
        assert_eq!(parsed, vec![first.cert.der().clone(), second.cert.der().clone()]);
        let der = parse_certificates(first.cert.der()).unwrap();
        assert_eq!(der, vec![first.cert.der().clone()]);

        let extra = [bundle.into_bytes(), first.cert.der().to_vec()];
        let roots = Roots {
            webpki: false,
            native: false,
            extra: &extra,
        };
        let (_config, count) = client_config(&roots).unwrap();
        assert_eq!(count, 3, "two from the bundle, one DER (the same certificate again)");
    }

    #[cfg(feature = "webpki-roots")]
    #[test]
    fn webpki_roots_are_trusted_by_default() {
        let roots = Roots {
            webpki: true,
            native: false,
            extra: &[],
        };
        let (_config, count) = client_config(&roots).unwrap();
        assert_eq!(count, webpki_roots::TLS_SERVER_ROOTS.len());
        assert!(count > 100, "{count}");
    }
}
