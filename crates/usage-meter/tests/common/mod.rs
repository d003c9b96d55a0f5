//! Helpers shared by the meter's tests against the in-memory emulator.
#![allow(dead_code)]

use std::time::Duration;

use rust_decimal::Decimal;
use usage_core::{RetryPolicy, UsageClient};
use usage_models::SubscriptionId;
use usage_transport_memory::{InMemoryKillBill, InstantTimer};

/// How long a test waits for a flush or a shutdown at most.
pub const LONG: Duration = Duration::from_secs(30);

/// A client of `kb` (admin, tenant bob) with an instant timer and two attempts per call.
pub fn client(kb: &InMemoryKillBill) -> UsageClient {
    UsageClient::builder("http://kb.test")
        .user("admin", "password")
        .tenant("bob", "lazar")
        .transport(kb.clone())
        .timer(InstantTimer::new())
        .retry_policy(RetryPolicy::default().with_max_attempts(2))
        .build()
        .unwrap()
}

/// The exact sum of every row stored for `subscription`.
pub fn total(kb: &InMemoryKillBill, subscription: SubscriptionId) -> Decimal {
    kb.rows(subscription).iter().map(|r| r.amount()).sum()
}
