//! Credentials never appear in `Debug`, `Display`, error messages or logs of any public type of
//! the workspace that holds or carries one.
#![cfg(all(feature = "hyper", feature = "test-util"))]

use killbill_usage::client::{
    ClientConfig, RequestOptions, Secret, TenantCredentials, UsageClient, UsageWindow, UserCredentials,
};
use killbill_usage::hyper::HyperTransport;
use killbill_usage::memory::{InMemoryKillBill, MockTransport, Reply, Rule};
use killbill_usage::models::SubscriptionId;
use usage_transport_memory::serve::ServeConfig;

const SECRETS: [&str; 4] = ["pw-hunter2", "secret-lazar", "pw-other", "secret-acme"];

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
    // Nor their Basic-auth encodings (admin:pw-hunter2 and metering:pw-other).
    for encoded in ["YWRtaW46cHctaHVudGVyMg", "bWV0ZXJpbmc6cHctb3RoZXI"] {
        assert!(!text.contains(encoded), "{what} shows a Basic-auth value: {text}");
    }
}

fn options() -> RequestOptions {
    RequestOptions::builder()
        .user(UserCredentials::new("metering", "pw-other"))
        .tenant(TenantCredentials::new("acme", "secret-acme"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn no_public_type_shows_a_credential() {
    let secret = Secret::new("pw-hunter2");
    assert_clean("Secret", &format!("{secret:?} {secret}"));
    let user = UserCredentials::new("admin", "pw-hunter2");
    let tenant = TenantCredentials::new("bob", "secret-lazar");
    assert_clean("credentials", &format!("{user:?} {tenant:?}"));
    let config = ClientConfig::new("http://127.0.0.1:1", user.clone(), tenant.clone()).unwrap();
    assert_clean("ClientConfig", &format!("{config:?}"));
    assert_clean("RequestOptions", &format!("{:?}", options()));

    let builder = UsageClient::builder("http://127.0.0.1:1")
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar");
    assert_clean("UsageClientBuilder", &format!("{builder:?}"));

    // The emulator and its builder hold credentials too.
    let emulator = InMemoryKillBill::builder()
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar")
        .build();
    assert_clean("InMemoryKillBill", &format!("{emulator:?}"));
    let emulator_builder = InMemoryKillBill::builder()
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar");
    assert_clean("InMemoryKillBillBuilder", &format!("{emulator_builder:?}"));
    let serve = ServeConfig::new("127.0.0.1:0".parse().unwrap())
        .with_users(vec![("admin".into(), "pw-hunter2".into())])
        .with_tenants(vec![("bob".into(), "secret-lazar".into())]);
    assert_clean("ServeConfig", &format!("{serve:?}"));

    // A client over the emulator (wrong credentials: 401) and over the mock (captured requests).
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar")
        .transport(emulator.clone())
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()
        .unwrap();
    assert_clean("UsageClient", &format!("{client:?}"));
    let window = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let err = client
        .get_all_usage(SubscriptionId::random(), window)
        .options(options())
        .await
        .unwrap_err();
    assert!(err.is_unauthorized());
    assert_clean("Error (401 from the emulator)", &format!("{err:?} {err}"));

    let mock = MockTransport::new();
    mock.expect(Rule::get("/nothing").reply(Reply::status(200)));
    let client = UsageClient::builder("http://kill-bill.test")
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar")
        .transport(mock.clone())
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()
        .unwrap();
    let err = client
        .get_all_usage(SubscriptionId::random(), window)
        .await
        .unwrap_err();
    assert_clean("Error (no mock rule)", &format!("{err:?} {err}"));
    assert_clean("MockTransport", &format!("{mock:?}"));
    assert_clean("CapturedRequest", &format!("{:?}", mock.requests()));

    // The production transport, and its errors.
    let transport = HyperTransport::new().unwrap();
    let client = UsageClient::builder("http://127.0.0.1:1")
        .user("admin", "pw-hunter2")
        .tenant("bob", "secret-lazar")
        .transport(transport.clone())
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()
        .unwrap();
    assert_clean(
        "HyperTransport",
        &format!("{transport:?} {:?}", HyperTransport::builder()),
    );
    let err = client
        .get_all_usage(SubscriptionId::random(), window)
        .options(options())
        .await
        .unwrap_err();
    assert_eq!(
        err.transport_error().map(|e| e.kind()),
        Some(killbill_usage::TransportErrorKind::Connect)
    );
    assert_clean("Error (connection refused)", &format!("{err:?} {err}"));

    // Invalid credentials are refused without quoting them.
    let err = UsageClient::builder("http://127.0.0.1:1")
        .user("admin", "pw-hunter2\n")
        .tenant("bob", "secret-lazar")
        .transport(mock)
        .retry_policy(killbill_usage::RetryPolicy::none().without_deadline())
        .build()
        .unwrap_err();
    assert!(err.is_invalid_input());
    assert_clean("Error (invalid password)", &format!("{err:?} {err}"));
}
