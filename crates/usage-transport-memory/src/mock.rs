//! A scripted transport: rules answer requests, every request is captured.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use usage_core::{Transport, TransportError, TransportErrorKind};
use usage_models::KillBillError;

use crate::query::Query;

/// A request the mock received, as it was sent.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CapturedRequest {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl CapturedRequest {
    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The (absolute) URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The path of the URI (still percent-encoded).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The first value of query parameter `name`, decoded as Kill Bill decodes it (`+` is a
    /// space, then percent-decoding; see the emulator's routing).
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_values(name).into_iter().next()
    }

    /// Every value of query parameter `name`, decoded as [`query`](Self::query), in order.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        Query::parse(self.uri.query())
            .values(name)
            .map(str::to_string)
            .collect()
    }

    /// The value of header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A one-paragraph description with the secret headers redacted.
    fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {}", shown(name, value)))
            .collect();
        let body = self.body_text();
        let body = match body.char_indices().nth(2000) {
            Some((at, _)) => format!("{}... ({} bytes)", &body[..at], self.body.len()),
            None => body,
        };
        format!(
            "{} {}\n  headers: {}\n  body: {}",
            self.method,
            self.uri,
            headers.join(", "),
            if body.is_empty() { "(empty)".into() } else { body }
        )
    }
}

/// A header value for messages: secrets redacted.
fn shown(name: &HeaderName, value: &HeaderValue) -> String {
    let secret = value.is_sensitive() || name == http::header::AUTHORIZATION || name.as_str() == "x-killbill-apisecret";
    if secret {
        "[redacted]".to_string()
    } else {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }
}

/// What a rule answers: a response, or a transport error.
///
/// ```
/// use usage_core::TransportErrorKind;
/// use usage_transport_memory::Reply;
///
/// let throttled = Reply::status(429).header("retry-after", "2");
/// let usage = Reply::json_text(200, r#"{"subscriptionId":"8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11",
///     "startDate":"2013-08-01T00:00:00.000Z","endDate":"2013-09-01T00:00:00.000Z",
///     "rolledUpUnits":[{"unitType":"gallons","amount":15.000000000}]}"#);
/// let reset = Reply::error(TransportErrorKind::Io, "connection reset by peer");
/// # let _ = (throttled, usage, reset);
/// ```
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer this response.
    Response {
        /// The status.
        status: StatusCode,
        /// The headers.
        headers: HeaderMap,
        /// The body.
        body: Bytes,
    },
    /// Fail with this transport error.
    Error {
        /// The kind.
        kind: TransportErrorKind,
        /// The message.
        message: String,
    },
}

impl Reply {
    /// `status` with an empty body and `Content-Type: application/json` (as Kill Bill answers
    /// even its empty responses). A code outside `100..=999` becomes 500.
    pub fn status(status: u16) -> Reply {
        Reply::body(status, "application/json", Bytes::new())
    }

    /// 201 with an empty body: Kill Bill's answer to a good POST.
    pub fn created() -> Reply {
        Reply::status(201)
    }

    /// `status` with a body and its content type.
    pub fn body(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Reply::Response {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers,
            body: body.into(),
        }
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::json_text(status, body.to_string())
    }

    /// `status` with JSON text as the body, sent exactly as given (so numbers such as
    /// `15.000000000` or `0E-9` keep their form).
    pub fn json_text(status: u16, body: impl Into<String>) -> Reply {
        Reply::body(status, "application/json", body.into())
    }

    /// `status` with a Kill Bill error body.
    pub fn kill_bill_error(status: u16, error: &KillBillError) -> Reply {
        let body = serde_json::to_string(error).unwrap_or_default();
        Reply::json_text(status, body)
    }

    /// Kill Bill's 404 for an unknown subscription.
    pub fn subscription_not_found(subscription_id: &str) -> Reply {
        Reply::kill_bill_error(
            404,
            &KillBillError::new(
                "org.killbill.billing.util.callcontext.InternalCallContextFactory$ObjectDoesNotExist",
                format!("Object id={subscription_id} type=SUBSCRIPTION doesn't exist!"),
            ),
        )
    }

    /// Kill Bill's 400 for a tracking id already used (code 50000).
    pub fn duplicate_tracking_id(tracking_id: &str) -> Reply {
        let error = KillBillError::new(
            "org.killbill.billing.usage.api.UsageApiException",
            format!("A usage record with tracking ID {tracking_id} already exists"),
        )
        .with_code(crate::emulator::contract::DUPLICATE_TRACKING_ID_CODE);
        Reply::kill_bill_error(400, &error)
    }

    /// A transport error of `kind`.
    pub fn error(kind: TransportErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }

    /// Adds a header to a response (an invalid name or value is ignored; nothing for an
    /// error).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Response { headers, .. } = &mut self {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                headers.append(name, value);
            }
        }
        self
    }

    fn produce(&self) -> Result<Response<Bytes>, TransportError> {
        match self {
            Reply::Response { status, headers, body } => {
                let mut response = Response::new(body.clone());
                *response.status_mut() = *status;
                *response.headers_mut() = headers.clone();
                Ok(response)
            }
            Reply::Error { kind, message } => Err(TransportError::new(*kind, message.clone())),
        }
    }

    fn describe(&self) -> String {
        match self {
            Reply::Response { status, .. } => status.as_u16().to_string(),
            Reply::Error { kind, .. } => format!("{kind:?} error"),
        }
    }
}

type Predicate = Arc<dyn Fn(&CapturedRequest) -> bool + Send + Sync>;

/// How many times a rule may answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Times {
    Exactly(usize),
    Always,
}

/// A rule: which requests it matches (method and path, and optionally query, header and body
/// predicates), what it answers, and how many times.
///
/// By default a rule answers once per reply: `.replies([a, b, c])` answers `a`, then `b`,
/// then `c`, then is used up. `.times(n)` and `.always()` change that (past the last reply,
/// the last one repeats). Without any reply, a rule answers 200 with an empty body.
///
/// ```
/// use usage_transport_memory::{Reply, Rule};
///
/// let rule = Rule::get("/1.0/kb/usages/8b9c1e0e-5a0b-4d47-9a7e-1f3c2c8f4a11")
///     .query("startDate", "2013-08-01")
///     .header("x-killbill-apikey", "bob")
///     .reply(Reply::status(404))
///     .times(2);
/// # let _ = rule;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Rule {
    method: Method,
    path: String,
    predicates: Vec<(String, Predicate)>,
    replies: Vec<Reply>,
    times: Option<Times>,
    name: Option<String>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Rule {
    /// Matches `method` on exactly `path` (the URI's path, percent-encoded as sent).
    pub fn new(method: Method, path: impl Into<String>) -> Rule {
        Rule {
            method,
            path: path.into(),
            predicates: Vec::new(),
            replies: Vec::new(),
            times: None,
            name: None,
        }
    }

    /// Matches `GET path`.
    pub fn get(path: impl Into<String>) -> Rule {
        Rule::new(Method::GET, path)
    }

    /// Matches `POST path`.
    pub fn post(path: impl Into<String>) -> Rule {
        Rule::new(Method::POST, path)
    }

    /// Also requires query parameter `name` to have `value` (decoded; any of its values).
    pub fn query(self, name: &str, value: &str) -> Rule {
        let (name, value) = (name.to_string(), value.to_string());
        let description = format!("query {name}={value}");
        self.matching(description, move |r| r.query_values(&name).contains(&value))
    }

    /// Also requires header `name` to be `value`.
    pub fn header(self, name: &str, value: &str) -> Rule {
        let (name, value) = (name.to_ascii_lowercase(), value.to_string());
        let description = format!("header {name}: {value}");
        self.matching(description, move |r| {
            r.headers
                .get_all(name.as_str())
                .iter()
                .any(|v| v.as_bytes() == value.as_bytes())
        })
    }

    /// Also requires the body to be JSON equal to `expected` (key order and whitespace do
    /// not matter).
    pub fn body_json(self, expected: serde_json::Value) -> Rule {
        let description = format!("body json {expected}");
        self.matching(description, move |r| r.body_json().as_ref() == Some(&expected))
    }

    /// Also requires the body to contain `text`.
    pub fn body_contains(self, text: &str) -> Rule {
        let text = text.to_string();
        let description = format!("body contains {text:?}");
        self.matching(description, move |r| r.body_text().contains(&text))
    }

    /// Also requires `predicate`, described by `description` in messages.
    pub fn matching(
        mut self,
        description: impl Into<String>,
        predicate: impl Fn(&CapturedRequest) -> bool + Send + Sync + 'static,
    ) -> Rule {
        self.predicates.push((description.into(), Arc::new(predicate)));
        self
    }

    /// Answers `reply` (replacing any replies set before).
    pub fn reply(mut self, reply: Reply) -> Rule {
        self.replies = vec![reply];
        self
    }

    /// Answers these replies in order, one per use (replacing any set before).
    pub fn replies(mut self, replies: impl IntoIterator<Item = Reply>) -> Rule {
        self.replies = replies.into_iter().collect();
        self
    }

    /// Answers once.
    pub fn once(self) -> Rule {
        self.times(1)
    }

    /// Answers `n` times.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(Times::Exactly(n));
        self
    }

    /// Answers any number of times.
    pub fn always(mut self) -> Rule {
        self.times = Some(Times::Always);
        self
    }

    /// A name for messages.
    pub fn named(mut self, name: impl Into<String>) -> Rule {
        self.name = Some(name.into());
        self
    }

    fn times_allowed(&self) -> Times {
        self.times.unwrap_or(Times::Exactly(self.replies.len().max(1)))
    }

    fn matches(&self, request: &CapturedRequest) -> bool {
        request.method == self.method
            && request.uri.path() == self.path
            && self.predicates.iter().all(|(_, p)| p(request))
    }

    fn describe(&self) -> String {
        let mut out = format!("{} {}", self.method, self.path);
        for (description, _) in &self.predicates {
            out.push_str(&format!(", {description}"));
        }
        let replies: Vec<String> = self.replies.iter().map(Reply::describe).collect();
        out.push_str(&format!(" -> [{}]", replies.join(", ")));
        if let Some(name) = &self.name {
            out = format!("{name:?}: {out}");
        }
        out
    }
}

struct RuleState {
    rule: Rule,
    used: usize,
}

impl RuleState {
    fn available(&self) -> bool {
        match self.rule.times_allowed() {
            Times::Always => true,
            Times::Exactly(n) => self.used < n,
        }
    }

    fn consumed(&self) -> bool {
        match self.rule.times_allowed() {
            Times::Always => self.used > 0,
            Times::Exactly(n) => self.used >= n,
        }
    }

    fn describe(&self, index: usize) -> String {
        let allowed = match self.rule.times_allowed() {
            Times::Always => "any number of times".to_string(),
            Times::Exactly(n) => format!("{n} time(s)"),
        };
        format!(
            "#{} {} (used {} of {allowed})",
            index + 1,
            self.rule.describe(),
            self.used
        )
    }
}

#[derive(Default)]
struct State {
    rules: Vec<RuleState>,
    requests: Vec<CapturedRequest>,
}

/// A scripted [`Transport`]: [`Rule`]s answer requests (the first matching rule that is not
/// used up), every request is captured in order, and a request that no rule matches fails
/// with a [`TransportError`] of kind [`Other`](TransportErrorKind::Other) naming the request
/// and the rules: never a silent 404, never the network.
///
/// Cheap to clone: clones share rules and captures, so keep one and give one to the client.
///
/// ```
/// use usage_core::UsageClient;
/// use usage_models::{SubscriptionId, SubscriptionUsageRecord, UsageDate};
/// use usage_transport_memory::{MockTransport, Reply, Rule};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mock = MockTransport::new();
/// mock.expect(Rule::post("/1.0/kb/usages").reply(Reply::created()));
/// let client = UsageClient::builder("http://kb.test")
///     .user("admin", "password")
///     .tenant("bob", "lazar")
///     .transport(mock.clone())
///     .retry_policy(usage_core::RetryPolicy::none().without_deadline())
///     .build()
///     .unwrap();
/// let record = SubscriptionUsageRecord::builder(SubscriptionId::random())
///     .record("gallons", "2013-08-01".parse::<UsageDate>().unwrap(), 10)
///     .build()
///     .unwrap();
/// client.record_usage(&record).await.unwrap();
///
/// let sent = &mock.requests()[0];
/// assert_eq!(sent.header("x-killbill-createdby"), Some("killbill-usage"));
/// assert_eq!(sent.body_json().unwrap()["unitUsageRecords"][0]["unitType"], "gallons");
/// mock.assert_all_consumed();
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MockTransport {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for MockTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MockTransport")
            .field("rules", &state.rules.len())
            .field("requests", &state.requests.len())
            .finish()
    }
}

impl MockTransport {
    /// A mock with no rules.
    pub fn new() -> Self {
        MockTransport::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule (after those already added: the first matching rule answers).
    pub fn expect(&self, rule: Rule) -> &Self {
        self.state().rules.push(RuleState { rule, used: 0 });
        self
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.state().requests.clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<CapturedRequest> {
        self.state().requests.last().cloned()
    }

    /// The rules not used up (an `always` rule counts as used once it has answered), each
    /// described with its number, matchers, replies and uses.
    pub fn unconsumed_rules(&self) -> Vec<String> {
        self.state()
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| !rule.consumed())
            .map(|(index, rule)| rule.describe(index))
            .collect()
    }

    /// Checks that every rule was used up.
    ///
    /// # Panics
    ///
    /// When some rule was not, naming each.
    #[track_caller]
    pub fn assert_all_consumed(&self) {
        let unconsumed = self.unconsumed_rules();
        assert!(
            unconsumed.is_empty(),
            "MockTransport: {} rule(s) not used up:\n  {}",
            unconsumed.len(),
            unconsumed.join("\n  ")
        );
    }

    /// Answers `request` as [`Transport::send`] does, synchronously.
    pub fn respond(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        let (parts, body) = request.into_parts();
        let captured = CapturedRequest {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        };
        let mut state = self.state();
        state.requests.push(captured.clone());
        let found = state
            .rules
            .iter_mut()
            .find(|rule| rule.available() && rule.rule.matches(&captured));
        if let Some(rule) = found {
            let index = rule.used.min(rule.rule.replies.len().saturating_sub(1));
            rule.used += 1;
            return match rule.rule.replies.get(index) {
                Some(reply) => reply.produce(),
                None => Reply::status(200).produce(),
            };
        }
        let list = |available: bool| {
            let rules: Vec<String> = state
                .rules
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.available() == available)
                .map(|(index, rule)| rule.describe(index))
                .collect();
            if rules.is_empty() {
                "(none)".to_string()
            } else {
                rules.join("\n  ")
            }
        };
        Err(TransportError::new(
            TransportErrorKind::Other,
            format!(
                "MockTransport: no rule matches the request\n  {}\nremaining rules:\n  {}\nused-up rules:\n  {}",
                captured.describe(),
                list(true),
                list(false)
            ),
        ))
    }
}

#[async_trait::async_trait]
impl Transport for MockTransport {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, TransportError> {
        self.respond(request)
    }
}
