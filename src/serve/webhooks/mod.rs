//! Webhook receivers: HubSpot, Stripe, Salesforce (CDC or outbound messages relayed as JSON) and
//! a generic signed webhook, at `POST /api/webhooks/{workspace}/{source}`.
//!
//! They are not behind the API key: each request is authenticated by its signature, with the
//! secret read from the environment variable the workspace's pipeline names in `[webhooks]`
//! (never from a file). A verified request's events are committed to `ops.webhook_events`
//! ([`crate::serve::queue`]) before the 2xx; the processor then lands them in raw (with the
//! stage history of stage changes, and Stripe's subscriptions and invoices), rebuilds the staging
//! models reading them, re-forecasts the changed deals, rescores and raises alerts ([`apply`]).
//!
//! ```toml
//! # pipelines/default.toml
//! [webhooks]
//! public_url = "https://hooks.example.com"     # what HubSpot signs; default http://<Host>
//! hubspot_secret_env = "HUBSPOT_CLIENT_SECRET"
//! stripe_secret_env = "STRIPE_WEBHOOK_SECRET"
//! salesforce_secret_env = "SALESFORCE_RELAY_SECRET"
//! generic_secret_env = "REVLAKE_WEBHOOK_SECRET"
//! tolerance_secs = 300
//! ```
//!
//! | answer | when |
//! | --- | --- |
//! | 200 `{accepted, duplicates}` | verified; new events committed. A replay (every event id seen before) is also 200, with `accepted: 0`, and logged as a warning: the sender stops retrying and nothing is applied twice |
//! | 400 | the body is not JSON of the source's shape |
//! | 401 | signature missing, malformed, wrong, or its timestamp is more than `tolerance_secs` from now (logged as a warning) |
//! | 404 | no pipeline has the workspace, or its `[webhooks]` does not enable the source |
//! | 413 | the body is over `--max-body` |
//! | 500 | the secret's environment variable is not set (the message names it), or the commit failed |

pub mod apply;
pub mod events;
pub mod history;
pub mod resimulate;
pub mod stripe;
pub mod verify;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::queue::{Queue, QueueError, RetryPolicy};
use super::state::AppState;
use crate::lake::{Lake, WorkspaceId};
use crate::project::Project;
use events::Source;
use verify::VerifyError;

/// Default tolerance of signed timestamps.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// The `[webhooks]` section of a pipeline: which receivers its workspace enables, and the
/// environment variables holding their secrets.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Scheme and host the senders post to (`https://hooks.example.com`): HubSpot signs the
    /// full URL. Default: `http://` and the request's Host header.
    pub public_url: Option<String>,
    /// The HubSpot app's client secret (signature v3).
    pub hubspot_secret_env: Option<String>,
    /// The Stripe endpoint's signing secret (`whsec_...`).
    pub stripe_secret_env: Option<String>,
    /// The secret the Salesforce relay signs with (`X-Revlake-Signature`).
    pub salesforce_secret_env: Option<String>,
    /// The secret of the generic receiver (`X-Revlake-Signature`).
    pub generic_secret_env: Option<String>,
    /// How far a signed timestamp may be from now, in seconds (default 300).
    pub tolerance_secs: Option<u64>,
}

impl WebhooksConfig {
    fn secret_env(&self, source: Source) -> Option<&str> {
        match source {
            Source::Hubspot => self.hubspot_secret_env.as_deref(),
            Source::Stripe => self.stripe_secret_env.as_deref(),
            Source::Salesforce => self.salesforce_secret_env.as_deref(),
            Source::Generic => self.generic_secret_env.as_deref(),
        }
    }

    fn tolerance(&self) -> i64 {
        i64::try_from(self.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS)).unwrap_or(i64::MAX)
    }
}

/// What can go wrong starting the receivers.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Two pipelines configure webhooks for one workspace (user input).
    #[error(
        "pipelines {first} and {second} both have [webhooks] for workspace {workspace}: keep one"
    )]
    TwoPipelines {
        workspace: String,
        first: String,
        second: String,
    },
    /// A pipeline's workspace is not a valid id (user input).
    #[error("{path}: workspace `{workspace}` is not a valid workspace id")]
    BadWorkspace { path: PathBuf, workspace: String },
    /// The models under transforms/ do not load.
    #[error("loading the models to rebuild after webhooks: {0}")]
    Models(#[from] crate::sql::SqlError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A workspace's receivers.
#[derive(Debug, Clone)]
struct Site {
    pipeline: PathBuf,
    config: WebhooksConfig,
}

/// The receivers of every workspace whose pipeline has `[webhooks]`, and the queue.
pub struct Webhooks {
    sites: HashMap<WorkspaceId, Site>,
    pub queue: Arc<Queue>,
}

impl Webhooks {
    /// Reads `[webhooks]` of every pipeline, resumes the queue and starts the processor. A
    /// secret whose variable is unset is reported now (as a warning) and on each request to
    /// that receiver.
    pub async fn start(lake: &Lake, project: Arc<Project>) -> Result<Arc<Self>, WebhookError> {
        Self::start_with(lake, project, RetryPolicy::default()).await
    }

    pub async fn start_with(
        lake: &Lake,
        project: Arc<Project>,
        policy: RetryPolicy,
    ) -> Result<Arc<Self>, WebhookError> {
        let mut sites: HashMap<WorkspaceId, Site> = HashMap::new();
        let mut alerts = HashMap::new();
        for p in project.pipelines.values() {
            let workspace =
                WorkspaceId::new(&p.file.workspace).map_err(|_| WebhookError::BadWorkspace {
                    path: p.path.clone(),
                    workspace: p.file.workspace.clone(),
                })?;
            alerts
                .entry(workspace.clone())
                .or_insert_with(|| p.file.alerts.clone());
            if p.file.webhooks == WebhooksConfig::default() {
                continue;
            }
            if let Some(prev) = sites.get(&workspace) {
                return Err(WebhookError::TwoPipelines {
                    workspace: workspace.to_string(),
                    first: prev.pipeline.display().to_string(),
                    second: p.path.display().to_string(),
                });
            }
            for source in [
                Source::Hubspot,
                Source::Stripe,
                Source::Salesforce,
                Source::Generic,
            ] {
                if let Some(var) = p.file.webhooks.secret_env(source)
                    && !std::env::var(var).is_ok_and(|v| !v.trim().is_empty())
                {
                    tracing::warn!(
                        workspace = %workspace,
                        source = source.as_str(),
                        env = var,
                        pipeline = %p.path.display(),
                        "webhook secret variable is not set: the receiver answers 500 until it is"
                    );
                }
            }
            alerts.insert(workspace.clone(), p.file.alerts.clone());
            sites.insert(
                workspace,
                Site {
                    pipeline: p.path.clone(),
                    config: p.file.webhooks.clone(),
                },
            );
        }
        let applier = apply::LakeApplier::new(lake.clone(), project, alerts)?;
        let queue = Queue::start(lake.clone(), Arc::new(applier), policy).await?;
        Ok(Arc::new(Self { sites, queue }))
    }
}

/// What a verified request's events became.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Events committed now (source-prefixed ids).
    pub accepted: Vec<String>,
    /// Events already received before: not queued again.
    pub duplicates: Vec<String>,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[allow(clippy::too_many_arguments)]
async fn receive(
    state: Arc<AppState>,
    workspace: String,
    source: Source,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ApiJson<Received>, ApiError> {
    let received_at = Utc::now();
    let hooks = state.webhooks.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "webhooks_disabled",
            "this server was started without webhook receivers",
        )
    })?;
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_workspace",
            format!("no pipeline has webhooks for workspace `{workspace}`"),
        )
    };
    let ws = WorkspaceId::new(&workspace).map_err(|_| unknown())?;
    let site = hooks.sites.get(&ws).ok_or_else(unknown)?;
    let var = site.config.secret_env(source).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "webhook_not_configured",
            format!(
                "the {} receiver of workspace `{ws}` is not enabled: set [webhooks] {}_secret_env in {}",
                source.as_str(),
                source.as_str(),
                site.pipeline.display()
            ),
        )
    })?;
    let secret = match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => s,
        _ => {
            tracing::error!(workspace = %ws, source = source.as_str(), env = var, "webhook secret variable is not set");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "webhook_secret_missing",
                format!(
                    "the server cannot verify {} webhooks: environment variable {var} (named in {}) is not set",
                    source.as_str(),
                    site.pipeline.display()
                ),
            ));
        }
    };
    let tolerance = site.config.tolerance();
    let now = Utc::now();
    let verified = match source {
        Source::Hubspot => {
            let base = match &site.config.public_url {
                Some(u) => u.clone(),
                None => format!(
                    "http://{}",
                    header(&headers, header::HOST.as_str()).unwrap_or("localhost")
                ),
            };
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            verify::hubspot_v3(
                &secret,
                method.as_str(),
                &verify::hubspot_uri(&base, path),
                &body,
                header(&headers, verify::HUBSPOT_TIMESTAMP),
                header(&headers, verify::HUBSPOT_SIGNATURE),
                now.timestamp_millis(),
                tolerance,
            )
        }
        Source::Stripe => verify::stripe(
            &secret,
            header(&headers, verify::STRIPE_SIGNATURE),
            &body,
            now.timestamp(),
            tolerance,
        )
        .map(|_| ()),
        Source::Salesforce | Source::Generic => verify::revlake(
            &secret,
            header(&headers, verify::REVLAKE_TIMESTAMP),
            header(&headers, verify::REVLAKE_SIGNATURE),
            &body,
            now.timestamp(),
            tolerance,
        )
        .map(|_| ()),
    };
    if let Err(e) = verified {
        match &e {
            VerifyError::Stale { age_secs, .. } => tracing::warn!(
                workspace = %ws, source = source.as_str(), age_secs, "webhook refused: stale timestamp (replay?)"
            ),
            other => tracing::warn!(
                workspace = %ws, source = source.as_str(), reason = %other, "webhook refused: signature not verified"
            ),
        }
        return Err(ApiError::unauthorized(format!(
            "{} webhook not verified: {e}",
            source.as_str()
        )));
    }
    let events = events::split(source, &body).map_err(|m| {
        ApiError::bad_request("bad_json", format!("{} webhook: {m}", source.as_str()))
    })?;
    let enqueued = hooks
        .queue
        .enqueue(&ws, source.as_str(), received_at, events)
        .await
        .map_err(|e| ApiError::internal("queueing the webhook's events", &e))?;
    if !enqueued.duplicates.is_empty() {
        tracing::warn!(
            workspace = %ws,
            source = source.as_str(),
            duplicates = ?enqueued.duplicates,
            accepted = enqueued.accepted.len(),
            "webhook replay: events already received were not queued again"
        );
    }
    Ok(ApiJson(Received {
        accepted: enqueued.accepted,
        duplicates: enqueued.duplicates,
    }))
}

macro_rules! receiver {
    ($name:ident, $source:expr, $path:literal, $doc:literal, $headers:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            tag = "webhooks",
            security(()),
            params(("workspace" = String, Path, description = "The workspace whose pipeline enables the receiver")),
            request_body(content = Object, description = $headers, content_type = "application/json"),
            responses(
                (status = 200, description = "Verified; new events committed to ops.webhook_events (a replay answers 200 with them under `duplicates`)", body = Received),
                (status = 400, description = "Not JSON of the source's shape", body = ErrorBody),
                (status = 401, description = "Signature missing, wrong or stale", body = ErrorBody),
                (status = 404, description = "Unknown workspace or receiver not enabled", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 500, description = "Secret variable unset or the commit failed", body = ErrorBody),
            )
        )]
        pub async fn $name(
            State(state): State<Arc<AppState>>,
            Path(workspace): Path<String>,
            method: Method,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> Result<ApiJson<Received>, ApiError> {
            receive(state, workspace, $source, method, uri, headers, body).await
        }
    };
}

receiver!(
    hubspot,
    Source::Hubspot,
    "/api/webhooks/{workspace}/hubspot",
    "HubSpot webhook events (signature v3).",
    "A JSON array of HubSpot events; headers X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp (ms)"
);
receiver!(
    stripe,
    Source::Stripe,
    "/api/webhooks/{workspace}/stripe",
    "A Stripe event (Stripe-Signature).",
    "A Stripe event; header Stripe-Signature: t=...,v1=..."
);
receiver!(
    salesforce,
    Source::Salesforce,
    "/api/webhooks/{workspace}/salesforce",
    "Salesforce Change Data Capture events or outbound messages, relayed as JSON.",
    "A CDC event or outbound message (or an array); headers X-Revlake-Signature: sha256=<hex of HMAC-SHA256 over timestamp.body> and X-Revlake-Timestamp"
);
receiver!(
    generic,
    Source::Generic,
    "/api/webhooks/{workspace}/generic",
    "A generic signed change to a deal's raw record.",
    "{id, source: hubspot|salesforce, object_id, properties, occurred_at}; headers X-Revlake-Signature: sha256=<hex> and X-Revlake-Timestamp"
);
