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
/// assert_eq!(error.code(), Some(50000));
/// assert_eq!(error.short_class_name(), "UsageApiException");
/// ```
///
/// The struct may gain fields as Kill Bill's error body does: read it with the accessors, and
/// build one (for a test double's answer) with [`KillBillError::new`] and the `with_*` setters.
///
/// ```
/// use usage_models::{KillBillError, StackTraceElement};
///
/// let error = KillBillError::new("org.killbill.billing.usage.api.UsageApiException", "duplicate")
///     .with_code(50000)
///     .with_cause("java.sql.SQLException", "unique key")
///     .with_stack_trace(vec![StackTraceElement::default().with_method_name("recordUsage")]);
/// assert_eq!(error.code(), Some(50000));
/// assert_eq!(error.cause_class_name(), Some("java.sql.SQLException"));
/// assert_eq!(error.stack_trace()[0].method_name(), Some("recordUsage"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KillBillError {
    class_name: String,
    code: Option<i64>,
    message: Option<String>,
    cause_class_name: Option<String>,
    cause_message: Option<String>,
    #[serde(default)]
    stack_trace: Vec<StackTraceElement>,
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

    /// Sets Kill Bill's error code.
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    /// Clears the message (Kill Bill writes `null` for an exception without one, such as a bare
    /// `NullPointerException`).
    pub fn without_message(mut self) -> Self {
        self.message = None;
        self
    }

    /// Sets the class and the message of the cause.
    pub fn with_cause(mut self, class_name: impl Into<String>, message: impl Into<String>) -> Self {
        self.cause_class_name = Some(class_name.into());
        self.cause_message = Some(message.into());
        self
    }

    /// Sets the stack trace.
    pub fn with_stack_trace(mut self, stack_trace: Vec<StackTraceElement>) -> Self {
        self.stack_trace = stack_trace;
        self
    }

    /// The Java exception class.
    pub fn class_name(&self) -> &str {
        &self.class_name
    }

    /// The class name without its package (`UsageApiException`).
    pub fn short_class_name(&self) -> &str {
        self.class_name.rsplit(['.', '$']).next().unwrap_or(&self.class_name)
    }

    /// Kill Bill's error code (`50000` for a duplicate tracking id), when the exception has one.
    pub fn code(&self) -> Option<i64> {
        self.code
    }

    /// The message.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The class of the cause, if any.
    pub fn cause_class_name(&self) -> Option<&str> {
        self.cause_class_name.as_deref()
    }

    /// The message of the cause, if any.
    pub fn cause_message(&self) -> Option<&str> {
        self.cause_message.as_deref()
    }

    /// The stack trace, when the request had `?withStackTrace=true` (empty otherwise).
    pub fn stack_trace(&self) -> &[StackTraceElement] {
        &self.stack_trace
    }
}

/// One frame of a Java stack trace, as Kill Bill writes it. Build one from
/// [`StackTraceElement::default`] and the `with_*` setters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StackTraceElement {
    class_name: Option<String>,
    file_name: Option<String>,
    line_number: Option<i64>,
    method_name: Option<String>,
    #[serde(default)]
    native_method: bool,
}

impl StackTraceElement {
    /// Sets the class.
    pub fn with_class_name(mut self, class_name: impl Into<String>) -> Self {
        self.class_name = Some(class_name.into());
        self
    }

    /// Sets the source file.
    pub fn with_file_name(mut self, file_name: impl Into<String>) -> Self {
        self.file_name = Some(file_name.into());
        self
    }

    /// Sets the line.
    pub fn with_line_number(mut self, line_number: i64) -> Self {
        self.line_number = Some(line_number);
        self
    }

    /// Sets the method.
    pub fn with_method_name(mut self, method_name: impl Into<String>) -> Self {
        self.method_name = Some(method_name.into());
        self
    }

    /// Sets whether the method is native.
    pub fn with_native_method(mut self, native_method: bool) -> Self {
        self.native_method = native_method;
        self
    }

    /// The class.
    pub fn class_name(&self) -> Option<&str> {
        self.class_name.as_deref()
    }

    /// The source file.
    pub fn file_name(&self) -> Option<&str> {
        self.file_name.as_deref()
    }

    /// The line.
    pub fn line_number(&self) -> Option<i64> {
        self.line_number
    }

    /// The method.
    pub fn method_name(&self) -> Option<&str> {
        self.method_name.as_deref()
    }

    /// Whether the method is native.
    pub fn native_method(&self) -> bool {
        self.native_method
    }
}
