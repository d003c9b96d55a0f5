//! docs/contract.md §5: authentication, tenancy and error bodies.

mod common;

use common::*;
use http::Method;
use usage_core::{RequestOptions, TenantCredentials, UserCredentials};
use usage_transport_memory::InMemoryKillBill;

fn get_path(kb: &InMemoryKillBill) -> String {
    let sub = kb.create_subscription();
    format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01")
}

#[test]
fn basic_auth_missing_or_wrong_is_401_with_the_challenge_and_no_body() {
    let kb = InMemoryKillBill::new();
    let path = get_path(&kb);
    for raw in [
        Raw::get(&path).without("authorization"),
        Raw::get(&path).header("authorization", &basic("admin:wrong")),
        Raw::get(&path).header("authorization", &basic("root:password")),
        Raw::get(&path).header("authorization", "Bearer abc"),
        Raw::get(&path).header("authorization", "Basic !!!"),
        Raw::post("{}").without("authorization"),
        // Checked before anything else, even routing and tenant headers.
        Raw::get("/nowhere")
            .without("authorization")
            .without("x-killbill-apikey"),
    ] {
        let response = raw.send(&kb);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "BASIC realm=\"application\"");
        assert!(response.body().is_empty());
    }
}

#[tokio::test]
async fn wrong_password_through_the_client() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let error = client(&kb)
        .get_all_usage(sub, window("2013-08-01", "2013-09-01"))
        .options(
            RequestOptions::builder()
                .user(UserCredentials::new("admin", "nope"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(error.is_unauthorized());
    match &error {
        usage_core::Error::Api(api) => {
            assert!(api.body().is_empty());
            assert_eq!(api.headers()["www-authenticate"], "BASIC realm=\"application\"");
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.to_string().contains("nope"));
}

#[test]
fn tenant_headers_missing_is_401_with_a_servlet_page() {
    let kb = InMemoryKillBill::new();
    let path = get_path(&kb);
    for raw in [
        Raw::get(&path).without("x-killbill-apikey"),
        Raw::get(&path).without("x-killbill-apisecret"),
        Raw::post("{}")
            .without("x-killbill-apikey")
            .without("x-killbill-apisecret"),
    ] {
        let response = raw.send(&kb);
        assert_eq!(response.status(), 401);
        assert!(response.headers().get("www-authenticate").is_none());
        assert!(content_type(&response).starts_with("text/html"));
        let body = text(&response);
        assert!(
            body.contains("Make sure to set the X-Killbill-ApiKey and X-Killbill-ApiSecret headers"),
            "{body}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&body).is_err());
    }
}

#[tokio::test]
async fn wrong_tenant_key_or_secret_is_401_with_a_non_json_body_that_echoes_nothing() {
    let kb = InMemoryKillBill::new();
    let sub = kb.create_subscription();
    let client = client(&kb);
    for (key, secret) in [("bob", "wrong-secret"), ("alice", "lazar"), ("bobb", "lazar")] {
        let error = client
            .get_all_usage(sub, window("2013-08-01", "2013-09-01"))
            .options(
                RequestOptions::builder()
                    .tenant(TenantCredentials::new(key, secret))
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(error.is_unauthorized(), "{key}");
        assert!(error.kill_bill_error().is_none(), "not JSON");
        let usage_core::Error::Api(api) = &error else {
            panic!("{error:?}")
        };
        let body = String::from_utf8_lossy(api.body());
        assert!(!body.is_empty());
        assert!(!body.contains(secret) && !body.contains("lazar"), "{body}");
    }
}

#[tokio::test]
async fn tenants_never_see_each_others_usage() {
    let kb = InMemoryKillBill::builder().tenant("acme", "acme-secret").build();
    let client = client(&kb);
    let as_acme = RequestOptions::builder()
        .tenant(TenantCredentials::new("acme", "acme-secret"))
        .build()
        .unwrap();
    let bobs = kb.create_subscription();
    let acmes = kb.create_subscription_in("acme").unwrap();
    client
        .record_usage(&one(bobs, "gallons", "2013-08-01", "1"))
        .await
        .unwrap();
    client
        .record_usage(&one(acmes, "gallons", "2013-08-01", "2"))
        .options(as_acme.clone())
        .await
        .unwrap();
    let august = window("2013-08-01", "2013-09-01");
    let mine = client
        .get_all_usage(acmes, august)
        .options(as_acme.clone())
        .await
        .unwrap();
    assert_eq!(mine.amount_of("gallons"), Some("2".parse().unwrap()));
    let error = client.get_all_usage(bobs, august).options(as_acme).await.unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    let error = client.get_all_usage(acmes, august).await.unwrap_err();
    assert_eq!(
        error.kill_bill_error().unwrap().class_name(),
        "java.lang.IllegalStateException"
    );
}

#[test]
fn custom_users_and_tenants_replace_the_defaults() {
    let kb = InMemoryKillBill::builder()
        .without_default_credentials()
        .user("ops", "s3cret")
        .tenant("t1", "k1")
        .build();
    let sub = kb.create_subscription();
    let path = format!("/1.0/kb/usages/{sub}?startDate=2013-08-01&endDate=2013-09-01");
    assert_eq!(Raw::get(&path).send(&kb).status(), 401);
    let ok = Raw::get(&path)
        .header("authorization", &basic("ops:s3cret"))
        .header("x-killbill-apikey", "t1")
        .header("x-killbill-apisecret", "k1")
        .send(&kb);
    assert_eq!(ok.status(), 200);
    kb.add_user("later", "pw");
    let later = Raw::get(&path)
        .header("authorization", &basic("later:pw"))
        .header("x-killbill-apikey", "t1")
        .header("x-killbill-apisecret", "k1")
        .send(&kb);
    assert_eq!(later.status(), 200);
    assert!(!format!("{kb:?}").contains("s3cret") && !format!("{kb:?}").contains("k1\""));
}

#[test]
fn error_bodies_have_every_key_in_order_with_nulls() {
    let kb = InMemoryKillBill::new();
    let response = Raw::new(
        Method::GET,
        "/1.0/kb/usages/8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11?startDate=2013-08-01&endDate=2013-09-01",
    )
    .send(&kb);
    assert_eq!(response.status(), 404);
    assert_eq!(content_type(&response), "application/json");
    assert_eq!(
        text(&response),
        r#"{"className":"org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist","code":null,"message":"Object id=8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11 type=SUBSCRIPTION doesn't exist!","causeClassName":null,"causeMessage":null,"stackTrace":[]}"#
    );
}

#[test]
fn setting_an_existing_user_or_tenant_replaces_its_secret() {
    let kb = InMemoryKillBill::builder()
        .user("admin", "new-password")
        .tenant("bob", "new-secret")
        .build();
    let bob = kb.tenant_id("bob").unwrap();
    let path = get_path(&kb);
    assert_eq!(Raw::get(&path).send(&kb).status(), 401, "old credentials");
    let with_new = || {
        Raw::get(&path)
            .header("authorization", &basic("admin:new-password"))
            .header("x-killbill-apisecret", "new-secret")
    };
    assert_eq!(with_new().send(&kb).status(), 200);
    assert_eq!(kb.add_tenant("bob", "newer"), bob, "same tenant, same id");
    assert_eq!(with_new().send(&kb).status(), 401);
    assert_eq!(
        with_new().header("x-killbill-apisecret", "newer").send(&kb).status(),
        200
    );
}
