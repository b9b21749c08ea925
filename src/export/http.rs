//! The one HTTP path of the exporters: JSON requests on the shared reqwest client, retried on
//! 429, 5xx and lost connections with exponential backoff, a `Retry-After` winning.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;

use super::error::{ExportError, Result};

/// A failed attempt: whether another may pass, and the server's `Retry-After`.
#[derive(Debug)]
struct Attempt {
    retryable: bool,
    retry_after: Option<Duration>,
    reason: String,
}

/// A reply: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Sends the request `build` makes, retrying transient failures up to `attempts` times in
/// all; any non-retryable status is returned to the caller to interpret.
pub async fn send(
    warehouse: &'static str,
    url: &str,
    attempts: usize,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(attempts.max(1).saturating_sub(1));
    (|| async {
        let response = build().send().await.map_err(|e| Attempt {
            retryable: e.is_timeout() || e.is_connect() || e.is_request(),
            retry_after: None,
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| Attempt {
            retryable: true,
            retry_after: None,
            reason: format!("reading the reply: {e}"),
        })?;
        if status == 429 || (500..600).contains(&status) {
            tracing::warn!(
                warehouse,
                url,
                status,
                "transient warehouse reply; retrying"
            );
            return Err(Attempt {
                retryable: true,
                retry_after,
                reason: format!("HTTP {status}: {}", truncate(&text)),
            });
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    })
    .retry(backoff)
    .when(|a: &Attempt| a.retryable)
    .adjust(|a: &Attempt, planned| {
        a.retry_after
            .map(|d| d.min(Duration::from_secs(60)))
            .or(planned)
    })
    .await
    .map_err(|a| ExportError::Http {
        warehouse,
        url: url.to_string(),
        reason: format!("{} (after {attempts} attempts at most)", a.reason),
    })
}

fn truncate(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// A value of an environment variable that must be set, naming it when it is not.
pub fn env_var(target: &str, var: &str, what: &'static str) -> Result<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) => Err(ExportError::MissingCredential {
            target: target.into(),
            what,
            var: var.into(),
            problem: "is empty".into(),
        }),
        Err(_) => Err(ExportError::MissingCredential {
            target: target.into(),
            what,
            var: var.into(),
            problem: "is not set".into(),
        }),
    }
}

/// The variable's value, or the contents of the file it names (a value that does not look
/// like inline content: no `-----BEGIN` and no `{`).
pub fn env_content(target: &str, var: &str, what: &'static str) -> Result<String> {
    let v = env_var(target, var, what)?;
    let t = v.trim_start();
    if t.starts_with("-----BEGIN") || t.starts_with('{') {
        return Ok(v);
    }
    std::fs::read_to_string(t.trim()).map_err(|e| ExportError::MissingCredential {
        target: target.into(),
        what,
        var: var.into(),
        problem: format!("names the file {}, which cannot be read: {e}", t.trim()),
    })
}
