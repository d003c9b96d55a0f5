//! Every operation, error and authentication case of the contract (docs/contract.md) through `UsageClient` and the
//! hyper transport over real TCP, against `kb-usage serve`'s server started in-process on
//! 127.0.0.1 (the emulator the in-memory tests check answer for answer).
#![cfg(all(feature = "hyper", feature = "test-util"))]

use chrono::{Duration as Days, Utc};
use killbill_usage::memory::InMemoryKillBill;
use killbill_usage::models::{Decimal, SubscriptionId, SubscriptionUsageRecord, UsageDate};
use killbill_usage::{RequestOptions, UsageClient, UsageWindow};
use usage_transport_memory::serve::{ServeConfig, Server};

struct Running {
    url: String,
    emulator: InMemoryKillBill,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn start() -> Running {
        let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap());
        config = config.with_tenants(vec![
            ("bob".into(), "lazar".into()),
            ("acme".into(), "acme-secret".into()),
        ]);
        let server = Server::bind(config).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        let emulator = server.emulator().unwrap().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        Running {
            url,
            emulator,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn client(&self, user: &str, password: &str, key: &str, secret: &str) -> UsageClient {
        killbill_usage::client_builder(&self.url)
            .unwrap()
            .user(user, password)
            .tenant(key, secret)
            .build()
            .unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

fn day(offset: i64) -> UsageDate {
    UsageDate::Date(Utc::now().date_naive() + Days::days(offset))
}

fn window(start: impl Into<UsageDate>, end: impl Into<UsageDate>) -> UsageWindow {
    UsageWindow::new(start, end).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_over_real_http() {
    let server = Running::start().await;
    let bob = server.client("admin", "password", "bob", "lazar");
    let subscription = server.emulator.create_subscription_in("bob").unwrap();

    // docs/contract.md §6: bullets at today-1 = 10 and today = 5, no tracking id.
    let record = SubscriptionUsageRecord::builder(subscription)
        .record("bullets", day(-1), 10)
        .record("bullets", day(0), 5)
        .build()
        .unwrap();
    let outcome = bob.record_usage(&record).await.unwrap();
    assert_eq!((outcome.attempts(), outcome.already_recorded()), (1, false));
    for (start, end, expected) in [(-1, 0, "10"), (-1, 1, "15"), (0, 1, "5")] {
        let usage = bob
            .get_usage(subscription, "bullets", window(day(start), day(end)))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(usage.subscription_id(), subscription);
        assert_eq!(usage.amount_of("bullets"), Some(dec(expected)), "[{start}, {end})");
    }
    let all = bob.get_all_usage(subscription, window(day(0), day(1))).await.unwrap();
    assert_eq!(all.rolled_up_units().len(), 1);
    assert_eq!(all.amount_of("bullets"), Some(dec("5")));
    assert_eq!(
        all.amount_of("bullets").unwrap().to_string(),
        "5.000000000",
        "scale 9, as the server writes"
    );

    // docs/contract.md §6: decimals and large decimals, exact.
    let decimals = server.emulator.create_subscription_in("bob").unwrap();
    for (unit, amounts, sums) in [
        ("decimals", ["4.75", "6.25", "8.5"], ["11", "19.5", "14.75"]),
        (
            "large",
            ["111111111.111111111", "222222222.222222222", "333333333.333333333"],
            ["333333333.333333333", "666666666.666666666", "555555555.555555555"],
        ),
    ] {
        let record = SubscriptionUsageRecord::builder(decimals)
            .record(unit, day(-1), amounts[0])
            .record(unit, day(0), amounts[1])
            .record(unit, day(1), amounts[2])
            .build()
            .unwrap();
        bob.record_usage(&record).await.unwrap();
        for ((start, end), expected) in [(-1, 1), (-1, 2), (0, 2)].into_iter().zip(sums) {
            let usage = bob
                .get_usage(decimals, unit, window(day(start), day(end)))
                .unwrap()
                .await
                .unwrap();
            assert_eq!(usage.amount_of(unit), Some(dec(expected)), "{unit} [{start}, {end})");
        }
    }

    // docs/contract.md §6 boundaries: a one-digit day in the query is the server's business; the client sends
    // dates and instants exactly, and a row exactly at the end is excluded.
    let gallons = server.emulator.create_subscription_in("bob").unwrap();
    let at = |s: &str| s.parse::<UsageDate>().unwrap();
    let record = SubscriptionUsageRecord::builder(gallons)
        .tracking_id("gallons-august")
        .record("gallons", at("2013-08-01T06:30:00Z"), 10)
        .record("gallons", at("2013-08-31T06:30:00Z"), 5)
        .record("gallons", at("2013-01-01T13:15:46Z"), 1)
        .build()
        .unwrap();
    bob.record_usage(&record).await.unwrap();
    let usage = bob
        .get_usage(
            gallons,
            "gallons",
            UsageWindow::parse("2013-08-01", "2013-08-31").unwrap(),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some(dec("10")));
    assert_eq!(usage.start_date().to_string(), "2013-08-01T00:00:00.000Z");
    assert_eq!(usage.end_date().to_string(), "2013-08-31T00:00:00.000Z");
    let usage = bob
        .get_usage(
            gallons,
            "gallons",
            UsageWindow::parse("2013-08-01", "2013-09-01").unwrap(),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("gallons"), Some(dec("15")));
    let exact = UsageWindow::parse("2013-01-01T13:15:46Z", "2013-01-01T13:15:46.001Z").unwrap();
    assert_eq!(
        bob.get_usage(gallons, "gallons", exact)
            .unwrap()
            .await
            .unwrap()
            .amount_of("gallons"),
        Some(dec("1"))
    );
    let ends_at_row = UsageWindow::parse("2013-01-01", "2013-01-01T13:15:46Z").unwrap();
    assert!(bob
        .get_usage(gallons, "gallons", ends_at_row)
        .unwrap()
        .await
        .unwrap()
        .rolled_up_units()
        .is_empty());

    // docs/contract.md §4 row 14: the same tracking id again is refused with code 50000 on the first attempt.
    let err = bob.record_usage(&record).await.unwrap_err();
    assert!(err.is_duplicate_tracking_id(), "{err}");
    assert_eq!(
        err.kill_bill_error().unwrap().message(),
        Some("A usage record with tracking ID gallons-august already exists")
    );

    // Unit types that are not path-safe travel as one segment (`:` as it is); unknown units give [].
    let odd = SubscriptionUsageRecord::builder(gallons)
        .record("liters/day:per ?#%", at("2013-08-02"), "0.5")
        .build()
        .unwrap();
    bob.record_usage(&odd).await.unwrap();
    let august = UsageWindow::parse("2013-08-01", "2013-09-01").unwrap();
    let usage = bob
        .get_usage(gallons, "liters/day:per ?#%", august)
        .unwrap()
        .await
        .unwrap();
    assert_eq!(usage.amount_of("liters/day:per ?#%"), Some(dec("0.5")));
    assert!(bob
        .get_usage(gallons, "nothing", august)
        .unwrap()
        .await
        .unwrap()
        .rolled_up_units()
        .is_empty());
    assert!(bob
        .get_usage(gallons, "GALLONS", august)
        .unwrap()
        .await
        .unwrap()
        .rolled_up_units()
        .is_empty());

    // docs/contract.md §3.5 / §4 rows 11-12: unknown subscriptions are 404s, another tenant's are 500s.
    let unknown = SubscriptionId::random();
    let err = bob.get_all_usage(unknown, august).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.kill_bill_error().unwrap().short_class_name(), "ObjectDoesNotExist");
    let orphan = SubscriptionUsageRecord::builder(unknown)
        .record("u", at("2013-08-01"), 1)
        .build()
        .unwrap();
    assert!(bob.record_usage(&orphan).await.unwrap_err().is_not_found());
    let acme = server.client("admin", "password", "acme", "acme-secret");
    let err = acme.get_all_usage(subscription, august).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    assert_eq!(
        err.kill_bill_error().unwrap().class_name(),
        "java.lang.IllegalStateException"
    );
    // The same client reaches the other tenant per call.
    let options = RequestOptions::builder()
        .tenant(killbill_usage::client::TenantCredentials::new("bob", "lazar"))
        .build()
        .unwrap();
    let usage = acme
        .get_all_usage(subscription, window(day(-1), day(1)))
        .options(options)
        .await
        .unwrap();
    assert_eq!(usage.amount_of("bullets"), Some(dec("15")));

    // docs/contract.md §4 row 13: a record after the subscription's effective end date: 400, empty body.
    let ending = server.emulator.create_subscription_in("bob").unwrap();
    server
        .emulator
        .cancel_subscription(ending, Utc::now() - Days::days(1))
        .unwrap();
    let late = SubscriptionUsageRecord::builder(ending)
        .record("u", day(0), 1)
        .build()
        .unwrap();
    let err = bob.record_usage(&late).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    let killbill_usage::Error::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert!(api.body().is_empty());
    assert!(server.emulator.rows(ending).is_empty(), "all or nothing");

    // docs/contract.md §5: authentication.
    let err = server
        .client("admin", "wrong", "bob", "lazar")
        .get_all_usage(subscription, august)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized());
    let killbill_usage::Error::Api(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.headers()["www-authenticate"], "BASIC realm=\"application\"");
    assert!(api.body().is_empty());
    let err = server
        .client("admin", "password", "bob", "wrong")
        .get_all_usage(subscription, august)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized());
    assert!(err.kill_bill_error().is_none(), "a servlet page, not a JSON error");

    // Audit headers, base64-encoded when not ASCII, reach the store decoded.
    let audited = SubscriptionUsageRecord::builder(gallons)
        .record("audited", at("2013-08-03"), 2)
        .build()
        .unwrap();
    bob.record_usage(&audited)
        .options(
            RequestOptions::builder()
                .created_by("Zoë")
                .reason("über")
                .comment("plain")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let row = server
        .emulator
        .rows(gallons)
        .into_iter()
        .find(|r| r.unit_type() == "audited")
        .unwrap();
    assert_eq!(
        (row.created_by(), row.reason(), row.comment()),
        ("Zoë", Some("über"), Some("plain"))
    );

    server.stop().await;
}
