//! The JSON error body of every Kill Bill error.

use serde::{Deserialize, Serialize};

/// The error body Kill Bill writes for every JSON error. All keys are always written (nulls
/// included), in this order; `stackTrace` is empty unless the request asked for it.
///
/// ```
/// use usage_models::KillBillError;
///
/// let body = r#"{"className":"org.killbill.billing.usage.api.UsageApiException","code":50000,
///   "message":"A usage record with tracking ID abc already exists",
///   "causeClassName":null,"causeMessage":null,"stackTrace":[]}"#;
/// let error: KillBillError = serde_json::from_str(body).unwrap();
/// assert_eq!(error.code, Some(50000));
/// assert_eq!(error.short_class_name(), "UsageApiException");
/// ```
///
/// The struct may gain fields as Kill Bill's error body does: build one with
/// [`KillBillError::new`] and set the fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KillBillError {
    /// The Java exception class.
    pub class_name: String,
    /// Kill Bill's error code (`50000` for a duplicate tracking id), when the exception has one.
    pub code: Option<i64>,
    /// The message.
    pub message: Option<String>,
    /// The class of the cause, if any.
    pub cause_class_name: Option<String>,
    /// The message of the cause, if any.
    pub cause_message: Option<String>,
    /// The stack trace, when the request had `?withStackTrace=true`.
    #[serde(default)]
    pub stack_trace: Vec<StackTraceElement>,
}

impl KillBillError {
    /// An error body with no code, no cause and no stack trace.
    pub fn new(class_name: impl Into<String>, message: impl Into<String>) -> Self {
        KillBillError {
            class_name: class_name.into(),
            code: None,
            message: Some(message.into()),
            cause_class_name: None,
            cause_message: None,
            stack_trace: Vec::new(),
        }
    }

    /// The class name without its package (`UsageApiException`).
    pub fn short_class_name(&self) -> &str {
        self.class_name.rsplit(['.', '$']).next().unwrap_or(&self.class_name)
    }
}

/// One frame of a Java stack trace, as Kill Bill writes it. Build one from
/// [`StackTraceElement::default`] and set the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StackTraceElement {
    /// The class.
    pub class_name: Option<String>,
    /// The source file.
    pub file_name: Option<String>,
    /// The line.
    pub line_number: Option<i64>,
    /// The method.
    pub method_name: Option<String>,
    /// Whether the method is native.
    #[serde(default)]
    pub native_method: bool,
}
