//! The four channel kinds: their payloads (each receiver's documented format) and sending,
//! with retries.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::{Value, json};

use super::{Alert, AlertsConfig, ChannelConfig, SmtpTls};
use crate::quality::Severity;

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug, Clone)]
pub struct SendError {
    pub message: String,
    pub retryable: bool,
    /// The receiver's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl SendError {
    fn fatal(message: String) -> Self {
        SendError {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}

/// Sends `alert` through `channel`, retrying transient failures; returns the attempts made.
pub(super) async fn send_with_retries(
    client: &reqwest::Client,
    config: &AlertsConfig,
    channel: &ChannelConfig,
    alert: &Alert,
) -> (usize, Result<(), SendError>) {
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(config.min_backoff_ms.unwrap_or(500)))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(config.max_attempts.unwrap_or(3).saturating_sub(1));
    let result = (|| async {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        send(client, channel, alert).await
    })
    .retry(backoff)
    .when(|e: &SendError| e.retryable)
    .adjust(|e: &SendError, planned| {
        // A receiver's Retry-After wins over the planned delay (capped at a minute).
        e.retry_after
            .map(|d| d.min(Duration::from_secs(60)))
            .or(planned)
    })
    .await;
    (attempts.into_inner(), result)
}

fn env_secret(var: &str, what: &str) -> Result<String, SendError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        _ => Err(SendError::fatal(format!(
            "environment variable {var} ({what}) is not set"
        ))),
    }
}

async fn send(
    client: &reqwest::Client,
    channel: &ChannelConfig,
    alert: &Alert,
) -> Result<(), SendError> {
    match channel {
        ChannelConfig::Slack { webhook_url_env } => {
            let url = env_secret(webhook_url_env, "the Slack webhook URL")?;
            post_json(client, &url, &slack_payload(alert), &[]).await
        }
        ChannelConfig::Webhook { url, secret_env } => {
            let body = serde_json::to_vec(&webhook_body(alert))
                .map_err(|e| SendError::fatal(e.to_string()))?;
            let ts = chrono::Utc::now().timestamp().to_string();
            let mut headers = vec![
                ("X-Revlake-Timestamp".to_string(), ts.clone()),
                ("X-Revlake-Alert-Id".to_string(), alert.id.clone()),
            ];
            if let Some(var) = secret_env {
                let secret = env_secret(var, "the webhook signing secret")?;
                headers.push((
                    "X-Revlake-Signature".to_string(),
                    format!("v1={}", sign(&secret, &ts, &body)),
                ));
            }
            post_bytes(client, url, body, &headers).await
        }
        ChannelConfig::Pagerduty {
            routing_key_env,
            url,
        } => {
            let key = env_secret(routing_key_env, "the PagerDuty routing key")?;
            let url = url
                .as_deref()
                .unwrap_or("https://events.pagerduty.com/v2/enqueue");
            post_json(client, url, &pagerduty_payload(alert, &key), &[]).await
        }
        ChannelConfig::Email {
            smtp_host,
            smtp_port,
            tls,
            username_env,
            password_env,
            from,
            to,
        } => {
            send_email(
                alert,
                smtp_host,
                *smtp_port,
                *tls,
                username_env,
                password_env,
                from,
                to,
            )
            .await
        }
    }
}

/// `hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`: what a receiver recomputes to verify a
/// webhook (and rejects when the timestamp is old, against replays).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    headers: &[(String, String)],
) -> Result<(), SendError> {
    let bytes = serde_json::to_vec(body).map_err(|e| SendError::fatal(e.to_string()))?;
    post_bytes(client, url, bytes, headers).await
}

async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> Result<(), SendError> {
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    // The URL may hold a secret (Slack's does): messages name only its host.
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(invalid URL)".into());
    let response = request.send().await.map_err(|e| SendError {
        message: format!("POST to {host} failed: {}", without_url(&e)),
        retryable: e.is_timeout() || e.is_connect() || e.is_request(),
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    Err(SendError {
        message: format!("{host} answered {status}: {}", text.trim()),
        retryable: status.as_u16() == 429 || status.is_server_error(),
        retry_after,
    })
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "(url)");
    }
    s
}

fn severity_emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => ":red_circle:",
        Severity::High => ":large_orange_circle:",
        Severity::Medium => ":large_yellow_circle:",
        Severity::Low => ":white_circle:",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Slack's `&`, `<`, `>` escaping for mrkdwn text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Block Kit message: a header, the body, the fields, a context line; `text` is the
/// notification fallback. Header text is limited to 150 characters, section text to 3000.
pub fn slack_payload(alert: &Alert) -> Value {
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", alert.severity)}),
        json!({"type": "mrkdwn", "text": format!("*Workspace*\n{}", slack_escape(&alert.workspace_id))}),
        json!({"type": "mrkdwn", "text": format!("*Source*\n{}", alert.source)}),
    ];
    if let Some(d) = &alert.dataset {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Dataset*\n`{}`", slack_escape(d))}));
    }
    json!({
        "text": truncate(&format!("[{}] {}", alert.severity.as_str().to_uppercase(), alert.title), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&alert.title, 150), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("{} {}", severity_emoji(alert.severity), slack_escape(&alert.body)), 3000)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("revlake · alert `{}` · {}", alert.id, alert.raised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))}
            ]}
        ]
    })
}

/// The generic webhook's JSON body: the alert as it is.
pub fn webhook_body(alert: &Alert) -> Value {
    json!({
        "id": alert.id,
        "source": alert.source,
        "severity": alert.severity,
        "title": alert.title,
        "body": alert.body,
        "workspace_id": alert.workspace_id,
        "dataset": alert.dataset,
        "details": alert.details,
        "raised_at": alert.raised_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "revlake_version": env!("CARGO_PKG_VERSION"),
    })
}

/// An Events API v2 `trigger`: `dedup_key` is the alert id, so a problem that persists across
/// runs stays one incident; severity maps critical/high/medium/low to
/// critical/error/warning/info; the summary is at most 1024 characters.
pub fn pagerduty_payload(alert: &Alert, routing_key: &str) -> Value {
    let severity = match alert.severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "info",
    };
    let mut payload = json!({
        "summary": truncate(&format!("[{}] {}", alert.workspace_id, alert.title), 1024),
        "source": "revlake",
        "severity": severity,
        "timestamp": alert.raised_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "group": alert.workspace_id,
        "class": alert.source,
        "custom_details": {"body": alert.body, "details": alert.details},
    });
    if let Some(d) = &alert.dataset {
        payload["component"] = json!(d);
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.id,
        "client": "revlake",
        "payload": payload,
    })
}

#[allow(clippy::too_many_arguments)]
async fn send_email(
    alert: &Alert,
    host: &str,
    port: Option<u16>,
    tls: SmtpTls,
    username_env: &Option<String>,
    password_env: &Option<String>,
    from: &str,
    to: &[String],
) -> Result<(), SendError> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let parse = |addr: &str| -> Result<Mailbox, SendError> {
        addr.parse()
            .map_err(|e| SendError::fatal(format!("email address {addr:?}: {e}")))
    };
    let mut message = Message::builder()
        .from(parse(from)?)
        .subject(truncate(
            &format!(
                "[revlake][{}] {}",
                alert.severity.as_str().to_uppercase(),
                alert.title
            ),
            200,
        ))
        .header(ContentType::TEXT_PLAIN);
    if to.is_empty() {
        return Err(SendError::fatal(
            "the email channel has no recipients (`to`)".into(),
        ));
    }
    for t in to {
        message = message.to(parse(t)?);
    }
    let text = format!(
        "{}\n\n{}\n\nseverity: {}\nworkspace: {}\n{}source: {}\nalert: {}\nraised: {}\n",
        alert.title,
        alert.body,
        alert.severity,
        alert.workspace_id,
        alert
            .dataset
            .as_ref()
            .map(|d| format!("dataset: {d}\n"))
            .unwrap_or_default(),
        alert.source,
        alert.id,
        alert.raised_at.to_rfc3339()
    );
    let email = message
        .body(text)
        .map_err(|e| SendError::fatal(format!("building the email: {e}")))?;
    let smtp_err = |e: lettre::transport::smtp::Error| SendError {
        message: format!("SMTP {host}: {e}"),
        // 4xx replies and lost connections may pass on a retry; 5xx replies and bad input do not.
        retryable: !e.is_permanent() && !e.is_client(),
        retry_after: None,
    };
    let mut builder = match tls {
        SmtpTls::None => {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port.unwrap_or(25))
        }
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(smtp_err)?
            .port(port.unwrap_or(587)),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
            .map_err(smtp_err)?
            .port(port.unwrap_or(465)),
    };
    builder = builder.timeout(Some(Duration::from_secs(20)));
    if let (Some(u), Some(p)) = (username_env, password_env) {
        builder = builder.credentials(Credentials::new(
            env_secret(u, "the SMTP user")?,
            env_secret(p, "the SMTP password")?,
        ));
    }
    builder
        .build()
        .send(email)
        .await
        .map(|_| ())
        .map_err(smtp_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231-style check computed independently: HMAC-SHA256("key", "1.{}").
        let s = sign("key", "1", b"{}");
        assert_eq!(s.len(), 64);
        assert_eq!(s, sign("key", "1", b"{}"));
        assert_ne!(s, sign("key", "2", b"{}"));
        assert_ne!(s, sign("other", "1", b"{}"));
        // The RFC 4231 test case 2 vector, through the same primitive.
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn long_titles_are_cut_to_the_receivers_limits() {
        let alert = Alert {
            id: "x".into(),
            source: "quality".into(),
            severity: Severity::High,
            title: "t".repeat(400),
            body: "<b>&".into(),
            workspace_id: "w".into(),
            dataset: Some("staging.deals".into()),
            details: Value::Null,
            raised_at: chrono::Utc::now(),
        };
        let slack = slack_payload(&alert);
        assert_eq!(
            slack["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            150
        );
        assert!(
            slack["blocks"][1]["text"]["text"]
                .as_str()
                .unwrap()
                .ends_with("&lt;b&gt;&amp;")
        );
        let pd = pagerduty_payload(&alert, "R0UT1NGKEY");
        assert!(pd["payload"]["summary"].as_str().unwrap().chars().count() <= 1024);
        assert_eq!(pd["payload"]["severity"], "error");
    }
}
