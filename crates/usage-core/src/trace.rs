//! `tracing` events and spans when the `tracing` feature is on; nothing at all when it is off.
//!
//! What is recorded: the operation, subscription id, unit type, tracking id, attempt number,
//! status or error, waits and durations. Never credentials: errors are described through
//! their redacting `Display`, and headers are never logged.

/// An event (`tracing::event!`) when the feature is on.
#[cfg(feature = "tracing")]
macro_rules! event {
    ($($arg:tt)*) => {
        tracing::event!($($arg)*)
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($arg:tt)*) => {
        ()
    };
}
pub(crate) use event;

/// The span of a call (`tracing::info_span!`) when the feature is on.
#[cfg(feature = "tracing")]
macro_rules! span {
    ($($arg:tt)*) => {
        tracing::info_span!($($arg)*)
    };
}
#[cfg(not(feature = "tracing"))]
macro_rules! span {
    ($($arg:tt)*) => {
        ()
    };
}
pub(crate) use span;

/// A call's span: a `tracing::Span` when the feature is on, nothing when it is off.
#[cfg(feature = "tracing")]
pub(crate) type Span = tracing::Span;
#[cfg(not(feature = "tracing"))]
pub(crate) type Span = ();

/// Evaluates `body` inside `span` when the feature is on; `body` alone when it is off.
#[cfg(feature = "tracing")]
macro_rules! in_span {
    ($span:expr, $body:expr) => {{
        let _entered = $span.enter();
        $body
    }};
}
#[cfg(not(feature = "tracing"))]
macro_rules! in_span {
    ($span:expr, $body:expr) => {{
        let () = $span;
        $body
    }};
}
pub(crate) use in_span;
