//! `native-roots` on a machine with no CA bundle: the transport builds all the same.
//!
//! The system's root lookup (`rustls-native-certs`) reads `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! when they are set; this test points both at empty locations. It is a test binary of its own
//! because the environment is process-wide.
#![cfg(feature = "native-roots")]

use usage_transport_hyper::HyperTransport;

#[test]
fn no_system_roots_is_not_an_error() {
    let empty = std::env::temp_dir().join(format!("kb-usage-no-roots-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let bundle = empty.join("bundle.pem");
    std::fs::write(&bundle, "").unwrap();
    std::env::set_var("SSL_CERT_FILE", &bundle);
    std::env::set_var("SSL_CERT_DIR", &empty);

    let only_native = HyperTransport::builder()
        .webpki_roots(false)
        .native_roots(true)
        .build()
        .expect("no system roots is not an error");
    assert!(
        format!("{only_native:?}").contains("root_certificates: 0"),
        "{only_native:?}"
    );
    let default = HyperTransport::new().expect("the default transport builds without system roots");
    assert!(!format!("{default:?}").contains("root_certificates: 0"), "{default:?}");

    std::fs::remove_dir_all(&empty).unwrap();
}
