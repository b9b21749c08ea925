//! The one HTTP client every API connector uses: authentication (API keys, tokens, basic auth,
//! OAuth 2.0 refresh-token and client-credentials flows with a cached token refreshed once on a
//! 401), retries with exponential backoff and jitter on 5xx and connection errors, 429 handling
//! that honours `Retry-After`, vendor quota headers, a per-connection request budget, request
//! timeouts, and a guard against a pagination cursor that repeats.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` never show the value, and every URL
//! that reaches an error or a log line goes through [`redact_url`] first.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::SourceError;

/// A credential value read from an environment variable. Only [`Secret::expose`] shows it.
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// Where it came from, for messages: `env SALESFORCE_REFRESH_TOKEN`.
    origin: String,
}

impl Secret {
    /// Reads `var`; a missing or empty variable is an error naming the variable and connection.
    pub fn from_env(var: &str, connection: &str, credential: &str) -> Result<Secret, SourceError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret {
                value: v.trim().to_string(),
                origin: format!("env {var}"),
            }),
            _ => Err(SourceError::MissingCredential {
                connection: connection.to_string(),
                credential: credential.to_string(),
                var: var.to_string(),
            }),
        }
    }

    /// A secret from a literal (tests, tokens returned by an OAuth server).
    pub fn new(value: impl Into<String>, origin: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            origin: origin.into(),
        }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}, ***)", self.origin)
    }
}

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `Authorization: Bearer <token>`: API keys, HubSpot private-app tokens.
    Bearer(Secret),
    /// A vendor header such as `x-api-token`.
    Header {
        name: String,
        value: Secret,
    },
    /// A query parameter such as Pipedrive's `api_token`.
    Query {
        name: String,
        value: Secret,
    },
    /// HTTP basic auth (Gong access keys, Stripe keys).
    Basic {
        user: String,
        password: Secret,
    },
    /// OAuth 2.0 with a token endpoint.
    OAuth(OAuth),
}

/// An OAuth 2.0 client: the token endpoint, the client, and the grant.
#[derive(Debug, Clone)]
pub struct OAuth {
    pub token_url: Url,
    pub client_id: Secret,
    pub client_secret: Secret,
    pub grant: Grant,
}

#[derive(Debug, Clone)]
pub enum Grant {
    RefreshToken(Secret),
    ClientCredentials { scope: Option<String> },
}

/// Vendor rate-limit headers: when `remaining` reaches zero, the client waits `reset` seconds
/// (milliseconds with `reset_in_millis`; or until the epoch second it names) before its next
/// request.
#[derive(Debug, Clone)]
pub struct QuotaHeaders {
    pub remaining: &'static str,
    pub reset: Option<&'static str>,
    pub reset_in_millis: bool,
}

/// What a vendor hook makes of an error response before the generic handling.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The token is no longer valid: refresh it once and retry.
    RefreshAuth,
    /// Transient: retry after the given delay (or the backoff's).
    Retry(Option<Duration>),
    /// Permanent: fail with this explanation.
    Fail(String),
    /// The vendor's way of saying nothing matches (Gong answers 404 "No calls found"): read
    /// the response as a success whose body is this JSON (an empty page).
    Empty(Value),
}

/// A vendor's reading of an error response: `(status, body) → verdict`, `None` for the
/// generic rules.
pub type Classifier = fn(StatusCode, &str) -> Option<Verdict>;

/// Everything a client needs for one connection.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The connection's name, for messages.
    pub connection: String,
    /// The API root relative URLs resolve against (an OAuth `instance_url` replaces it).
    pub base_url: Url,
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per request (first try included) on retryable failures.
    pub max_attempts: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; longer waits fail the request instead.
    pub max_retry_after: Duration,
    /// Requests this connection may make in one sync; `None` for no limit.
    pub request_budget: Option<u64>,
    pub quota: Option<QuotaHeaders>,
    pub classify: Option<Classifier>,
    /// Also run `classify` on successful (2xx) answers, for vendors that report errors in the
    /// body of a 200 (Slack's `"ok": false`, GraphQL `errors`); `None` keeps the answer.
    pub classify_success: bool,
}

impl ClientConfig {
    pub fn new(connection: &str, base_url: Url, auth: Auth) -> Self {
        ClientConfig {
            connection: connection.to_string(),
            base_url,
            auth,
            timeout: Duration::from_secs(60),
            max_attempts: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
            request_budget: None,
            quota: None,
            classify: None,
            classify_success: false,
        }
    }
}

/// Request counters of a client, read by the sync for `ops.sync_log`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Debug, Clone)]
struct AccessToken {
    value: Secret,
    instance_url: Option<Url>,
}

/// The shared client; cheap to clone, one per connection.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    client: reqwest::Client,
    token: Mutex<Option<AccessToken>>,
    /// Do not send before this instant (a quota header said the window is used up).
    paused_until: Mutex<Option<tokio::time::Instant>>,
    stats: Stats,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("connection", &self.inner.config.connection)
            .field("base_url", &self.inner.config.base_url.as_str())
            .finish()
    }
}

/// Query parameters whose values never appear in messages.
const SENSITIVE_PARAMS: [&str; 9] = [
    "api_token",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "client_secret",
    "token",
    "key",
    "password",
];

/// `url` with the values of credential-like query parameters replaced by `***`.
pub fn redact_url(url: &Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let mut out = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let hide = SENSITIVE_PARAMS.contains(&k.to_ascii_lowercase().as_str());
            (
                k.into_owned(),
                if hide { "***".into() } else { v.into_owned() },
            )
        })
        .collect();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out.to_string()
}

/// At most 300 characters of a response body, for an error message.
fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    match trimmed.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &trimmed[..i]),
        None => trimmed.to_string(),
    }
}

/// A `Retry-After` header: delta-seconds or an HTTP date.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// What to do with a response or a transport error.
enum Next {
    Done(Response),
    Refresh,
    Retry(Option<Duration>, String),
    Fail(SourceError),
}

impl HttpClient {
    pub fn new(config: ClientConfig) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("revlake/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| SourceError::Http {
                connection: config.connection.clone(),
                url: config.base_url.to_string(),
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                config,
                client,
                token: Mutex::new(None),
                paused_until: Mutex::new(None),
                stats: Stats::default(),
            }),
        })
    }

    pub fn connection(&self) -> &str {
        &self.inner.config.connection
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// (requests, retries) so far, what [`super::source::Source::request_stats`] reports.
    pub fn counts(&self) -> (u64, u64) {
        let s = &self.inner.stats;
        (
            s.requests.load(Ordering::Relaxed),
            s.retries.load(Ordering::Relaxed),
        )
    }

    /// The API root: the OAuth `instance_url` once a token carried one, else the base URL.
    pub async fn api_base(&self) -> Result<Url, SourceError> {
        if matches!(self.inner.config.auth, Auth::OAuth(_)) {
            let token = self.token().await?;
            if let Some(instance) = token.instance_url {
                return Ok(instance);
            }
        }
        Ok(self.inner.config.base_url.clone())
    }

    /// Resolves `path` (absolute URL, `/absolute/path` or relative) against the API root.
    pub async fn url(&self, path: &str) -> Result<Url, SourceError> {
        if let Ok(url) = Url::parse(path) {
            return Ok(url);
        }
        let base = self.api_base().await?;
        let joined = if path.starts_with('/') {
            base.join(path)
        } else {
            let mut b = base.clone();
            if !b.path().ends_with('/') {
                b.set_path(&format!("{}/", b.path()));
            }
            b.join(path)
        };
        joined.map_err(|e| SourceError::Http {
            connection: self.connection().to_string(),
            url: format!("{base} + {path}"),
            reason: format!("not a valid URL: {e}"),
        })
    }

    /// GET `path` with `query`, parsed as JSON.
    pub async fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, SourceError> {
        let url = self.url(path).await?;
        let response = self.send(Method::GET, &url, |r| r.query(query)).await?;
        self.json(response, &url).await
    }

    /// POST `body` as JSON to `path`, the answer parsed as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, SourceError> {
        let url = self.url(path).await?;
        let response = self.send(Method::POST, &url, |r| r.json(body)).await?;
        self.json(response, &url).await
    }

    /// Reads a successful response as JSON; a body that is not JSON is a malformed page.
    pub async fn json(&self, response: Response, url: &Url) -> Result<Value, SourceError> {
        let text = response.text().await.map_err(|e| SourceError::Http {
            connection: self.connection().to_string(),
            url: redact_url(url),
            reason: format!("reading the response failed: {}", e.without_url()),
        })?;
        serde_json::from_str(&text).map_err(|e| SourceError::MalformedPage {
            connection: self.connection().to_string(),
            url: redact_url(url),
            reason: format!("the response is not valid JSON ({e}): {}", excerpt(&text)),
        })
    }

    /// Sends a request built by `build` (called again for each attempt) to `url`, with auth,
    /// retries and rate limits; returns the first successful (2xx) response.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, SourceError> {
        let cfg = &self.inner.config;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.min_backoff)
            .with_max_delay(cfg.max_backoff)
            .with_max_times(cfg.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        self.check_host(url).await?;
        let mut refreshed = false;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            self.take_budget(url)?;
            self.wait_for_quota().await;
            let request = build(self.inner.client.request(method.clone(), url.clone()));
            let request = self.authorize(request).await?;
            self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(connection = %cfg.connection, method = %method, url = %redact_url(url), attempt, "request");
            let next = match request.send().await {
                Ok(response) => self.judge(response, url, refreshed).await,
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    Next::Retry(None, format!("transport error: {}", e.without_url()))
                }
                Err(e) => Next::Fail(SourceError::Http {
                    connection: cfg.connection.clone(),
                    url: redact_url(url),
                    reason: e.without_url().to_string(),
                }),
            };
            match next {
                Next::Done(response) => return Ok(response),
                Next::Fail(e) => return Err(e),
                Next::Refresh => {
                    refreshed = true;
                    attempt -= 1;
                    *self.inner.token.lock().await = None;
                    tracing::info!(connection = %cfg.connection, "access token refused; refreshing it once");
                }
                Next::Retry(wait, reason) => {
                    let Some(delay) = backoff.next() else {
                        return Err(SourceError::Http {
                            connection: cfg.connection.clone(),
                            url: redact_url(url),
                            reason: format!("gave up after {attempt} attempts: {reason}"),
                        });
                    };
                    let delay = match wait {
                        Some(w) if w > cfg.max_retry_after => {
                            return Err(SourceError::Http {
                                connection: cfg.connection.clone(),
                                url: redact_url(url),
                                reason: format!(
                                    "{reason}; the server asks to wait {}s, more than the {}s allowed",
                                    w.as_secs(),
                                    cfg.max_retry_after.as_secs()
                                ),
                            });
                        }
                        Some(w) => w,
                        None => delay,
                    };
                    self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connection = %cfg.connection, url = %redact_url(url), attempt, delay_ms = delay.as_millis() as u64, %reason, "retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Credentials go only to the configured API host (or the OAuth instance): a next-page URL
    /// naming another host is refused rather than sent the token.
    async fn check_host(&self, url: &Url) -> Result<(), SourceError> {
        if matches!(self.inner.config.auth, Auth::None) {
            return Ok(());
        }
        let base = &self.inner.config.base_url;
        if url.origin() == base.origin() || url.origin() == self.api_base().await?.origin() {
            return Ok(());
        }
        Err(SourceError::Http {
            connection: self.connection().to_string(),
            url: redact_url(url),
            reason: format!(
                "refusing to send the connection's credentials to another host than {}",
                base.origin().ascii_serialization()
            ),
        })
    }

    fn take_budget(&self, url: &Url) -> Result<(), SourceError> {
        if let Some(budget) = self.inner.config.request_budget
            && self.inner.stats.requests.load(Ordering::Relaxed) >= budget
        {
            return Err(SourceError::Http {
                connection: self.connection().to_string(),
                url: redact_url(url),
                reason: format!(
                    "the connection's request budget ({budget} requests per sync) is used up"
                ),
            });
        }
        Ok(())
    }

    async fn wait_for_quota(&self) {
        let until = *self.inner.paused_until.lock().await;
        if let Some(until) = until
            && until > tokio::time::Instant::now()
        {
            tracing::info!(connection = %self.connection(), wait_ms = (until - tokio::time::Instant::now()).as_millis() as u64, "rate-limit window used up; waiting");
            tokio::time::sleep_until(until).await;
        }
    }

    async fn note_quota(&self, response: &Response) {
        let Some(quota) = &self.inner.config.quota else {
            return;
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        if header(quota.remaining).is_some_and(|r| r <= 0.0) {
            let reset = quota.reset.and_then(header).unwrap_or(1.0);
            // A large value is an epoch second; a small one a number of seconds.
            let now = chrono::Utc::now().timestamp() as f64;
            let secs = if quota.reset_in_millis {
                reset / 1000.0
            } else if reset > 1e9 {
                reset - now
            } else {
                reset
            };
            let wait = Duration::from_secs_f64(
                secs.clamp(0.0, self.inner.config.max_retry_after.as_secs_f64()),
            );
            *self.inner.paused_until.lock().await = Some(tokio::time::Instant::now() + wait);
        }
    }

    async fn judge(&self, response: Response, url: &Url, refreshed: bool) -> Next {
        self.note_quota(&response).await;
        let status = response.status();
        let cfg = &self.inner.config;
        let inspect = cfg.classify_success && cfg.classify.is_some();
        if status.is_success() && !inspect {
            return Next::Done(response);
        }
        let wait = retry_after(&response);
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) if status.is_success() => {
                return Next::Retry(
                    None,
                    format!("reading the response failed: {}", e.without_url()),
                );
            }
            Err(_) => String::new(),
        };
        if status.is_success() {
            match cfg.classify.and_then(|c| c(status, &body)) {
                // A 2xx answer the vendor hook reads as an error falls through to the verdict
                // handling below; any other is handed back as it came.
                Some(_) => {}
                None => {
                    return match http::Response::builder()
                        .status(status)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body)
                    {
                        Ok(r) => Next::Done(Response::from(r)),
                        Err(e) => Next::Fail(SourceError::Http {
                            connection: cfg.connection.clone(),
                            url: redact_url(url),
                            reason: format!("cannot hand back the response: {e}"),
                        }),
                    };
                }
            }
        }
        let fail = |reason: String| {
            Next::Fail(SourceError::Http {
                connection: cfg.connection.clone(),
                url: redact_url(url),
                reason,
            })
        };
        let verdict = cfg
            .classify
            .and_then(|c| c(status, &body))
            .or(match status {
                StatusCode::UNAUTHORIZED => Some(Verdict::RefreshAuth),
                StatusCode::TOO_MANY_REQUESTS => Some(Verdict::Retry(wait)),
                StatusCode::REQUEST_TIMEOUT
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => Some(Verdict::Retry(wait)),
                _ => None,
            });
        match verdict {
            Some(Verdict::RefreshAuth) => {
                if matches!(cfg.auth, Auth::OAuth(_)) && !refreshed {
                    Next::Refresh
                } else {
                    Next::Fail(SourceError::Unauthorized {
                        connection: cfg.connection.clone(),
                        url: redact_url(url),
                        reason: format!(
                            "{status}{}: {}",
                            if refreshed {
                                " after a token refresh"
                            } else {
                                ""
                            },
                            excerpt(&body)
                        ),
                        credentials: self.credential_origins(),
                    })
                }
            }
            Some(Verdict::Retry(w)) => {
                Next::Retry(w.or(wait), format!("{status}: {}", excerpt(&body)))
            }
            Some(Verdict::Fail(reason)) => fail(format!("{status}: {reason}")),
            Some(Verdict::Empty(answer)) => {
                tracing::debug!(connection = %cfg.connection, url = %redact_url(url), %status, "no records match; an empty page");
                match http::Response::builder()
                    .status(StatusCode::OK)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(answer.to_string())
                {
                    Ok(r) => Next::Done(Response::from(r)),
                    Err(e) => fail(format!("{status}: cannot stand in an empty page: {e}")),
                }
            }
            None => fail(format!("{status}: {}", excerpt(&body))),
        }
    }

    /// Where the connection's credentials come from (env var names), for messages.
    fn credential_origins(&self) -> String {
        let origins: Vec<&str> = match &self.inner.config.auth {
            Auth::None => vec![],
            Auth::Bearer(s) | Auth::Header { value: s, .. } | Auth::Query { value: s, .. } => {
                vec![s.origin()]
            }
            Auth::Basic { password, .. } => vec![password.origin()],
            Auth::OAuth(o) => {
                let mut v = vec![o.client_id.origin(), o.client_secret.origin()];
                if let Grant::RefreshToken(r) = &o.grant {
                    v.push(r.origin());
                }
                v
            }
        };
        if origins.is_empty() {
            "no credentials configured".into()
        } else {
            origins.join(", ")
        }
    }

    async fn authorize(&self, request: RequestBuilder) -> Result<RequestBuilder, SourceError> {
        Ok(match &self.inner.config.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
            Auth::Header { name, value } => request.header(name.as_str(), value.expose()),
            Auth::Query { name, value } => request.query(&[(name.as_str(), value.expose())]),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password.expose())),
            Auth::OAuth(_) => request.bearer_auth(self.token().await?.value.expose()),
        })
    }

    /// The cached OAuth token, fetched from the token endpoint when there is none.
    async fn token(&self) -> Result<AccessToken, SourceError> {
        let mut cached = self.inner.token.lock().await;
        if let Some(t) = cached.as_ref() {
            return Ok(t.clone());
        }
        let Auth::OAuth(oauth) = &self.inner.config.auth else {
            unreachable!("token() is only called for OAuth connections");
        };
        let token = self.fetch_token(oauth).await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    async fn fetch_token(&self, oauth: &OAuth) -> Result<AccessToken, SourceError> {
        let cfg = &self.inner.config;
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", oauth.client_id.expose()),
            ("client_secret", oauth.client_secret.expose()),
        ];
        match &oauth.grant {
            Grant::RefreshToken(r) => {
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", r.expose()));
            }
            Grant::ClientCredentials { scope } => {
                form.push(("grant_type", "client_credentials"));
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
            }
        }
        let url = &oauth.token_url;
        let mut last = String::new();
        for attempt in 1..=cfg.max_attempts.max(1) {
            self.take_budget(url)?;
            self.inner.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = self.inner.client.post(url.clone()).form(&form).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    let value = self.json(r, url).await?;
                    let access = value
                        .get("access_token")
                        .and_then(Value::as_str)
                        .ok_or_else(|| SourceError::MalformedPage {
                            connection: cfg.connection.clone(),
                            url: redact_url(url),
                            reason: "the token response has no access_token".into(),
                        })?;
                    let instance_url = value
                        .get("instance_url")
                        .and_then(Value::as_str)
                        .and_then(|u| Url::parse(u).ok());
                    tracing::info!(connection = %cfg.connection, "obtained an access token");
                    return Ok(AccessToken {
                        value: Secret::new(access, "oauth token"),
                        instance_url,
                    });
                }
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    last = format!("{}", r.status());
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    let detail = serde_json::from_str::<Value>(&body)
                        .ok()
                        .map(|v| {
                            let err = v.get("error").and_then(Value::as_str).unwrap_or("");
                            let desc = v
                                .get("error_description")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            format!("{err} {desc}").trim().to_string()
                        })
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| excerpt(&body));
                    return Err(SourceError::Unauthorized {
                        connection: cfg.connection.clone(),
                        url: redact_url(url),
                        reason: format!(
                            "the token endpoint refused the credentials ({status}): {detail}"
                        ),
                        credentials: self.credential_origins(),
                    });
                }
                Err(e) => last = e.without_url().to_string(),
            }
            if attempt < cfg.max_attempts {
                tokio::time::sleep(cfg.min_backoff * (1 << attempt.min(6)) as u32).await;
            }
        }
        Err(SourceError::Http {
            connection: cfg.connection.clone(),
            url: redact_url(url),
            reason: format!("the token endpoint failed: {last}"),
        })
    }
}

/// Stops a pagination loop whose cursor comes back: a server bug that would otherwise loop
/// forever (and duplicate rows).
#[derive(Debug, Default)]
pub struct CursorGuard {
    seen: HashSet<String>,
}

impl CursorGuard {
    pub fn check(&mut self, connection: &str, url: &str, cursor: &str) -> Result<(), SourceError> {
        if self.seen.insert(cursor.to_string()) {
            Ok(())
        } else {
            Err(SourceError::MalformedPage {
                connection: connection.to_string(),
                url: url.to_string(),
                reason: format!(
                    "the pagination cursor {cursor:?} repeats; stopping instead of looping"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let url =
            Url::parse("https://api.pipedrive.com/v1/deals?api_token=s3cr3t&start=0").unwrap();
        let shown = redact_url(&url);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("start=0"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2", "env X");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_repeating_cursor_is_refused() {
        let mut g = CursorGuard::default();
        g.check("c", "u", "a").unwrap();
        g.check("c", "u", "b").unwrap();
        let e = g.check("c", "u", "a").unwrap_err().to_string();
        assert!(e.contains("repeats"), "{e}");
    }
}
