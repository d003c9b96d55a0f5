//! In-memory transports for the Kill Bill Usage client.

mod emulator;
mod java;

pub use emulator::{
    EmulatorError, Fault, InMemoryKillBill, InMemoryKillBillBuilder, NewSubscription, StoredRow, WireFormat,
};
pub use java::{java_big_decimal_string, kill_bill_sum_string, SUM_SCALE};
