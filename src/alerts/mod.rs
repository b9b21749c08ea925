//! Alerts and their routing: what went wrong (a failed check, a failed sync, a risky deal) as
//! an [`Alert`], sent to the channels its severity is routed to in the pipeline's `[alerts]`
//! section: Slack incoming webhooks (Block Kit), generic webhooks (JSON, HMAC-SHA256 signed),
//! email over SMTP, and PagerDuty (Events API v2).
//!
//! ```toml
//! [alerts.channels.oncall]
//! kind = "pagerduty"
//! routing_key_env = "PAGERDUTY_ROUTING_KEY"
//!
//! [alerts.channels.data-quality]
//! kind = "slack"
//! webhook_url_env = "SLACK_DATA_QUALITY_WEBHOOK"
//!
//! [alerts.channels.revops-mail]
//! kind = "email"
//! smtp_host = "smtp.example.com"
//! from = "revlake@example.com"
//! to = ["revops@example.com"]
//! username_env = "SMTP_USER"
//! password_env = "SMTP_PASSWORD"
//!
//! [[alerts.routes]]
//! severity = ["critical"]
//! channels = ["oncall", "data-quality"]
//! ```
//!
//! Without routes, the operating guide's defaults apply: critical → PagerDuty channels, high →
//! Slack, medium → email; webhooks get every severity. Delivery is retried with backoff
//! (after `Retry-After` on a 429), recorded in `ops.alert_deliveries`, and never fails the run:
//! an undeliverable alert is a logged, recorded failure.

mod channels;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use channels::{SendError, sign};

use crate::lake::{DatasetRef, Lake, WriteMode};
use crate::project::DatasetSchema;
use crate::quality::{CheckRun, Severity, Status};

/// Where deliveries are recorded.
pub const DELIVERIES_DATASET: &str = "ops.alert_deliveries";

const DELIVERIES_SCHEMA: &str = include_str!("../../schemas/ops.alert_deliveries.toml");

/// Something someone should know about.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Stable for the same problem (PagerDuty's dedup key): repeated runs update one incident.
    pub id: String,
    /// What raised it: `quality`, `sync`, `scoring`.
    pub source: String,
    pub severity: Severity,
    pub title: String,
    /// The details as plain text (several lines).
    pub body: String,
    pub workspace_id: String,
    pub dataset: Option<String>,
    pub details: serde_json::Value,
    pub raised_at: DateTime<Utc>,
}

/// One alert channel as declared.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    /// A Slack incoming webhook; its URL is a secret, read from `webhook_url_env`.
    Slack { webhook_url_env: String },
    /// A JSON POST signed with HMAC-SHA256 over `"<timestamp>.<body>"` by the secret in
    /// `secret_env` (header `X-Revlake-Signature: v1=<hex>`, `X-Revlake-Timestamp`).
    Webhook {
        url: String,
        secret_env: Option<String>,
    },
    /// Email over SMTP: `tls` is `starttls` (default, port 587), `tls` (465) or `none` (25,
    /// local relays only).
    Email {
        smtp_host: String,
        smtp_port: Option<u16>,
        #[serde(default)]
        tls: SmtpTls,
        username_env: Option<String>,
        password_env: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// PagerDuty Events API v2 (`url` defaults to `https://events.pagerduty.com/v2/enqueue`).
    Pagerduty {
        routing_key_env: String,
        url: Option<String>,
    },
}

impl ChannelConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Slack { .. } => "slack",
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Email { .. } => "email",
            ChannelConfig::Pagerduty { .. } => "pagerduty",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

/// A route: alerts of these severities (and sources, if given) go to these channels.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub severity: Vec<Severity>,
    pub channels: Vec<String>,
    /// Only alerts raised by these (`quality`, `sync`, `scoring`); all when empty.
    #[serde(default)]
    pub source: Vec<String>,
}

/// The `[alerts]` section of a pipeline.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Tries per delivery (default 3).
    pub max_attempts: Option<usize>,
    /// First retry delay in milliseconds (default 500; doubles each try).
    pub min_backoff_ms: Option<u64>,
    /// Per-request timeout in seconds (default 10).
    pub timeout_secs: Option<u64>,
    /// How long an unchanged alert (same id, severity and title) stays quiet on a channel
    /// after it was sent there: `"7d"` (the default), `"24h"`; `"0s"` sends it every run.
    /// Skipped sends are recorded as `suppressed`.
    pub repeat_after: Option<String>,
}

impl AlertsConfig {
    /// Seconds an unchanged alert stays quiet after it was sent ([`Self::repeat_after`]).
    pub fn repeat_after_secs(&self) -> Result<i64, String> {
        match &self.repeat_after {
            None => Ok(DEFAULT_REPEAT_AFTER_SECS),
            Some(text) => crate::quality::spec::parse_duration(text)
                .map_err(|e| format!("alerts.repeat_after: {e}")),
        }
    }

    /// Checks that routes name declared channels.
    pub fn validate(&self) -> Result<(), String> {
        self.repeat_after_secs()?;
        for (i, r) in self.routes.iter().enumerate() {
            for c in &r.channels {
                if !self.channels.contains_key(c) {
                    return Err(format!(
                        "alerts.routes[{i}] names channel {c:?}, which is not declared (declared: {})",
                        self.channels.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// The channel names an alert goes to.
    pub fn channels_for(&self, alert: &Alert) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if self.routes.is_empty() {
            for (name, c) in &self.channels {
                let wanted = match c {
                    ChannelConfig::Pagerduty { .. } => alert.severity == Severity::Critical,
                    ChannelConfig::Slack { .. } => alert.severity == Severity::High,
                    ChannelConfig::Email { .. } => alert.severity == Severity::Medium,
                    ChannelConfig::Webhook { .. } => true,
                };
                if wanted {
                    out.push(name.clone());
                }
            }
            return out;
        }
        for r in &self.routes {
            let source_ok = r.source.is_empty() || r.source.iter().any(|s| s == &alert.source);
            if source_ok && r.severity.contains(&alert.severity) {
                for c in &r.channels {
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
            }
        }
        out
    }
}

/// What delivering one alert to one channel did (a row of `ops.alert_deliveries`).
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub alert_id: String,
    pub workspace_id: String,
    pub source: String,
    pub severity: Severity,
    pub title: String,
    pub channel: String,
    pub kind: &'static str,
    /// `sent` or `failed`.
    pub status: &'static str,
    pub attempts: usize,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// An unchanged alert is re-sent to a channel a week after it was last sent there, by default.
pub const DEFAULT_REPEAT_AFTER_SECS: i64 = 7 * 86_400;

/// What identifies a sent alert as unchanged: (alert id, severity, title, channel).
type SentKey = (String, String, String, String);

fn sent_key(alert: &Alert, channel: &str) -> SentKey {
    (
        alert.id.clone(),
        alert.severity.to_string(),
        alert.title.clone(),
        channel.to_string(),
    )
}

/// Sends every alert to its channels, retrying; never fails: failures are in the result.
pub async fn deliver(config: &AlertsConfig, alerts: &[Alert]) -> Vec<Delivery> {
    deliver_except(config, alerts, &std::collections::HashSet::new()).await
}

/// [`deliver`], except to the channels an unchanged alert was sent to recently (`quiet`):
/// those are returned as `suppressed`, with no attempt.
async fn deliver_except(
    config: &AlertsConfig,
    alerts: &[Alert],
    quiet: &std::collections::HashSet<SentKey>,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    if alerts.is_empty() || config.channels.is_empty() {
        return out;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs.unwrap_or(10)))
        .user_agent(concat!("revlake/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client for alerts");
            return out;
        }
    };
    for alert in alerts {
        for name in config.channels_for(alert) {
            let Some(channel) = config.channels.get(&name) else {
                continue;
            };
            if quiet.contains(&sent_key(alert, &name)) {
                tracing::info!(alert = %alert.id, channel = %name, "alert unchanged since it was last sent: suppressed");
                out.push(Delivery {
                    alert_id: alert.id.clone(),
                    workspace_id: alert.workspace_id.clone(),
                    source: alert.source.clone(),
                    severity: alert.severity,
                    title: alert.title.clone(),
                    channel: name.clone(),
                    kind: channel.kind(),
                    status: "suppressed",
                    attempts: 0,
                    error: None,
                    at: Utc::now(),
                });
                continue;
            }
            let (attempts, result) =
                channels::send_with_retries(&client, config, channel, alert).await;
            let delivery = Delivery {
                alert_id: alert.id.clone(),
                workspace_id: alert.workspace_id.clone(),
                source: alert.source.clone(),
                severity: alert.severity,
                title: alert.title.clone(),
                channel: name.clone(),
                kind: channel.kind(),
                status: if result.is_ok() { "sent" } else { "failed" },
                attempts,
                error: result.err().map(|e| e.to_string()),
                at: Utc::now(),
            };
            match &delivery.error {
                None => tracing::info!(alert = %alert.id, channel = %name, attempts, "alert sent"),
                Some(e) => {
                    tracing::error!(alert = %alert.id, channel = %name, attempts, error = %e, "alert not delivered")
                }
            }
            out.push(delivery);
        }
    }
    out
}

/// Sends `alerts` and records the deliveries in `ops.alert_deliveries`; a failure to record is
/// logged, not returned (alerts never fail the run). An alert sent unchanged (same id,
/// severity and title) to a channel within [`AlertsConfig::repeat_after`] is not sent there
/// again but recorded as `suppressed`, so a check that stays failing does not page every run.
pub async fn deliver_and_record(
    lake: &Lake,
    config: &AlertsConfig,
    alerts: &[Alert],
) -> Vec<Delivery> {
    let window = config
        .repeat_after_secs()
        .unwrap_or(DEFAULT_REPEAT_AFTER_SECS);
    let quiet = if window > 0 && !alerts.is_empty() {
        recently_sent(lake, window).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading ops.alert_deliveries failed: no alert is suppressed");
            Default::default()
        })
    } else {
        Default::default()
    };
    let deliveries = deliver_except(config, alerts, &quiet).await;
    if let Err(e) = record(lake, &deliveries).await {
        tracing::error!(error = %e, "recording alert deliveries failed");
    }
    deliveries
}

/// The (alert, severity, title, channel) sent within the last `window_secs`.
async fn recently_sent(
    lake: &Lake,
    window_secs: i64,
) -> Result<std::collections::HashSet<SentKey>, crate::sql::SqlError> {
    use crate::sql::{SessionOptions, SqlSession};
    let dataset: DatasetRef = DELIVERIES_DATASET.parse().expect("a valid dataset name");
    let session = SqlSession::open(lake, &SessionOptions::default()).await?;
    let mut out = std::collections::HashSet::new();
    if !session.tables().contains(&dataset) {
        return Ok(out);
    }
    let since = Utc::now().timestamp() - window_secs;
    let batches = session
        .query(&format!(
            "SELECT DISTINCT alert_id, severity, title, channel FROM {DELIVERIES_DATASET} \
             WHERE status = 'sent' AND date_part('epoch', delivered_at) >= {since}"
        ))
        .await?
        .collect()
        .await
        .map_err(|source| crate::sql::SqlError::Execution {
            source: Box::new(source),
        })?;
    for b in &batches {
        let col = |i: usize| {
            arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
                .ok()
                .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (Some(a), Some(s), Some(t), Some(c)) = (col(0), col(1), col(2), col(3)) else {
            continue;
        };
        for r in 0..b.num_rows() {
            out.insert((
                a.value(r).to_string(),
                s.value(r).to_string(),
                t.value(r).to_string(),
                c.value(r).to_string(),
            ));
        }
    }
    Ok(out)
}

/// Appends `deliveries` to `ops.alert_deliveries`.
pub async fn record(
    lake: &Lake,
    deliveries: &[Delivery],
) -> Result<(), crate::quality::QualityError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let dataset: DatasetRef = DELIVERIES_DATASET.parse()?;
    let schema = DatasetSchema::parse(
        dataset.clone(),
        DELIVERIES_SCHEMA,
        std::path::Path::new("schemas/ops.alert_deliveries.toml"),
    )?;
    let s = |f: &dyn Fn(&Delivery) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            deliveries.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("workspace_id", s(&|d| Some(d.workspace_id.clone()))),
        ("alert_id", s(&|d| Some(d.alert_id.clone()))),
        ("source", s(&|d| Some(d.source.clone()))),
        ("severity", s(&|d| Some(d.severity.to_string()))),
        ("title", s(&|d| Some(d.title.clone()))),
        ("channel", s(&|d| Some(d.channel.clone()))),
        ("kind", s(&|d| Some(d.kind.to_string()))),
        ("status", s(&|d| Some(d.status.to_string()))),
        (
            "attempts",
            Arc::new(Int64Array::from_iter_values(
                deliveries.iter().map(|d| d.attempts as i64),
            )),
        ),
        ("error", s(&|d| d.error.clone())),
        (
            "delivered_at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    deliveries.iter().map(|d| d.at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ),
    ];
    let arrow_schema = schema.arrow_schema();
    let batch = RecordBatch::try_new(
        arrow_schema.clone(),
        columns.into_iter().map(|c| c.1).collect(),
    )?;
    lake.write(dataset)
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_batches(arrow_schema, vec![batch])
        .await?;
    Ok(())
}

/// The alerts of a check run: one per dataset and workspace with failing checks, at the
/// severity of its worst failure, listing them.
pub fn quality_alerts(run: &CheckRun) -> Vec<Alert> {
    let mut groups: BTreeMap<(String, String), Vec<&crate::quality::CheckResult>> = BTreeMap::new();
    for r in run.results().filter(|r| r.status != Status::Pass) {
        groups
            .entry((r.workspace_id.clone(), r.dataset.clone()))
            .or_default()
            .push(r);
    }
    let now = Utc::now();
    groups
        .into_iter()
        .map(|((ws, dataset), failing)| {
            let severity = failing
                .iter()
                .map(|r| r.severity)
                .max()
                .unwrap_or(Severity::Low);
            let mut names: Vec<&str> = failing.iter().map(|r| r.check.as_str()).collect();
            names.sort();
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("revlake:quality:{ws}:{dataset}:{}", names.join(",")).as_bytes(),
            )
            .to_string();
            let title = format!(
                "{dataset}: {} check{} failed{}",
                failing.len(),
                if failing.len() == 1 { "" } else { "s" },
                if severity == Severity::Critical {
                    " (critical: what reads it was not built)"
                } else {
                    ""
                }
            );
            let body = failing
                .iter()
                .map(|r| {
                    let mut line = format!(
                        "- {} [{}] {}: {}",
                        r.check,
                        r.severity,
                        r.status,
                        if r.message.is_empty() {
                            &r.threshold
                        } else {
                            &r.message
                        }
                    );
                    if !r.sample.is_empty() {
                        let shown: Vec<&str> =
                            r.sample.iter().take(5).map(String::as_str).collect();
                        line.push_str(&format!(" (e.g. {})", shown.join(", ")));
                    }
                    line
                })
                .collect::<Vec<_>>()
                .join("\n");
            let details = serde_json::json!({
                "run_id": run.run_id,
                "version": failing.first().map(|r| r.version),
                "checks": failing.iter().map(|r| serde_json::json!({
                    "check": r.check, "kind": r.kind, "severity": r.severity, "status": r.status,
                    "failing_rows": r.failing_rows, "total_rows": r.total_rows,
                    "threshold": r.threshold, "message": r.message, "sample": r.sample,
                })).collect::<Vec<_>>(),
            });
            Alert {
                id,
                source: "quality".into(),
                severity,
                title,
                body,
                workspace_id: ws,
                dataset: Some(dataset),
                details,
                raised_at: now,
            }
        })
        .collect()
}

/// The insight alerts a scoring run raised for the first time (or again after they were
/// resolved): `critical` stays critical, `warning` is high, `info` is low. Their ids are the
/// rows' ids in `marts.alerts`, so an unchanged alert is not sent again.
pub fn scoring_alerts(workspace: &str, rows: &[&crate::scoring::AlertRow]) -> Vec<Alert> {
    rows.iter()
        .map(|r| {
            let severity = match r.severity.as_str() {
                "critical" => Severity::Critical,
                "warning" => Severity::High,
                _ => Severity::Low,
            };
            let details: serde_json::Value =
                serde_json::from_str(&r.details).unwrap_or(serde_json::Value::String(r.details.clone()));
            Alert {
                id: r.alert_id.clone(),
                source: "scoring".into(),
                severity,
                title: r.title.clone(),
                body: r.body.clone(),
                workspace_id: workspace.to_string(),
                dataset: Some("marts.alerts".into()),
                details: serde_json::json!({
                    "rule": r.rule,
                    "subject": r.subject,
                    "subject_name": r.subject_name,
                    "audience": r.audience.split(',').map(str::trim).filter(|a| !a.is_empty()).collect::<Vec<_>>(),
                    "owner_id": r.owner_id,
                    "manager_id": r.manager_id,
                    "details": details,
                }),
                raised_at: r.last_seen,
            }
        })
        .collect()
}

/// The critical alert of a failed sync stream.
pub fn sync_failed_alert(
    workspace: &str,
    connection: &str,
    stream: &str,
    dataset: &str,
    error: &str,
) -> Alert {
    Alert {
        id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("revlake:sync:{workspace}:{connection}:{stream}").as_bytes(),
        )
        .to_string(),
        source: "sync".into(),
        severity: Severity::Critical,
        title: format!("sync failed: {connection} / {stream}"),
        body: format!(
            "The {stream} stream of connection {connection} failed and landed nothing past its last checkpoint:\n{error}"
        ),
        workspace_id: workspace.to_string(),
        dataset: (!dataset.is_empty()).then(|| dataset.to_string()),
        details: serde_json::json!({"connection": connection, "stream": stream, "error": error}),
        raised_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(severity: Severity, source: &str) -> Alert {
        Alert {
            id: "a".into(),
            source: source.into(),
            severity,
            title: "t".into(),
            body: "b".into(),
            workspace_id: "w".into(),
            dataset: None,
            details: serde_json::Value::Null,
            raised_at: Utc::now(),
        }
    }

    fn config(routes: &str) -> AlertsConfig {
        toml::from_str(&format!(
            r#"
{routes}
[channels.pd]
kind = "pagerduty"
routing_key_env = "PD"
[channels.slack]
kind = "slack"
webhook_url_env = "SLACK"
[channels.mail]
kind = "email"
smtp_host = "localhost"
from = "a@b.c"
to = ["d@e.f"]
[channels.hook]
kind = "webhook"
url = "http://127.0.0.1:1/x"
"#
        ))
        .unwrap()
    }

    #[test]
    fn scoring_alerts_keep_their_ids_and_map_severities() {
        let row = |severity: &str| crate::scoring::AlertRow {
            alert_id: format!("id-{severity}"),
            rule: "high_risk_deal".into(),
            severity: severity.into(),
            subject: "d1".into(),
            subject_name: "Acme renewal".into(),
            owner_id: Some("u1".into()),
            manager_id: Some("u0".into()),
            audience: "rep,manager".into(),
            title: "Acme renewal: risk 82".into(),
            body: "top factors ...".into(),
            details: r#"{"risk": 82}"#.into(),
            state: "risk>75".into(),
            first_seen: Utc::now(),
            last_seen: Utc::now(),
            is_new: true,
            status: "open".into(),
        };
        let rows = [row("critical"), row("warning"), row("info")];
        let refs: Vec<&crate::scoring::AlertRow> = rows.iter().collect();
        let alerts = scoring_alerts("acme", &refs);
        let got: Vec<(&str, Severity)> =
            alerts.iter().map(|a| (a.id.as_str(), a.severity)).collect();
        assert_eq!(
            got,
            [
                ("id-critical", Severity::Critical),
                ("id-warning", Severity::High),
                ("id-info", Severity::Low)
            ]
        );
        assert_eq!(
            alerts[0].details["audience"],
            serde_json::json!(["rep", "manager"])
        );
        assert_eq!(alerts[0].details["details"]["risk"], 82);
        assert_eq!(alerts[0].source, "scoring");
    }

    #[test]
    fn default_routes_follow_the_operating_guide() {
        let c = config("");
        assert_eq!(
            c.channels_for(&alert(Severity::Critical, "sync")),
            ["hook", "pd"]
        );
        assert_eq!(
            c.channels_for(&alert(Severity::High, "quality")),
            ["hook", "slack"]
        );
        assert_eq!(
            c.channels_for(&alert(Severity::Medium, "quality")),
            ["hook", "mail"]
        );
        assert_eq!(c.channels_for(&alert(Severity::Low, "quality")), ["hook"]);
    }

    #[test]
    fn declared_routes_match_severity_and_source() {
        let c = config(
            r#"
routes = [
  { severity = ["critical", "high"], channels = ["slack"] },
  { severity = ["critical"], channels = ["pd", "slack"], source = ["sync"] },
]"#,
        );
        c.validate().unwrap();
        assert_eq!(
            c.channels_for(&alert(Severity::Critical, "sync")),
            ["slack", "pd"]
        );
        assert_eq!(
            c.channels_for(&alert(Severity::Critical, "quality")),
            ["slack"]
        );
        assert!(
            c.channels_for(&alert(Severity::Medium, "quality"))
                .is_empty()
        );
        let bad = config(r#"routes = [{ severity = ["high"], channels = ["nowhere"] }]"#);
        assert!(bad.validate().unwrap_err().contains("\"nowhere\""));
        assert!(toml::from_str::<AlertsConfig>("[channels.x]\nkind = \"fax\"\n").is_err());
    }
}
