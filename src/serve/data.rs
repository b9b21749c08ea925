//! The data endpoints: deals (filtered, paged), one deal with its scores, stage history and
//! stakeholders, alerts, the latest quality results and the sales roster. Every query runs in
//! the key's workspace session, with the client's values passed as parameters, never spliced
//! into SQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use datafusion::scalar::ScalarValue;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::keys::Principal;
use super::rows::{json_text, to_json_rows, typed};
use super::state::AppState;
use crate::sql::{SqlError, SqlSession};

/// Runs a server-written query with `params` ($1, $2, ...) in the workspace's session; `None`
/// when a table it reads does not exist yet (nothing landed or computed).
pub(super) async fn fetch<T: DeserializeOwned>(
    session: &SqlSession,
    context: &str,
    sql: &str,
    params: Vec<ScalarValue>,
) -> Result<Option<Vec<T>>, ApiError> {
    let df = match session.query(sql).await {
        Ok(df) => df,
        Err(SqlError::UnknownTable { table, .. }) => {
            tracing::debug!(table, context, "table not in the lake yet: empty answer");
            return Ok(None);
        }
        Err(e) => return Err(ApiError::from_sql(context, e)),
    };
    let df = if params.is_empty() {
        df
    } else {
        df.with_param_values(params)
            .map_err(|e| ApiError::internal(context, &e))?
    };
    let batches = df
        .collect()
        .await
        .map_err(|e| ApiError::internal(context, &e))?;
    let rows = to_json_rows(&batches).map_err(|e| ApiError::internal(context, &e))?;
    typed(rows)
        .map(Some)
        .map_err(|e| ApiError::internal(context, &e))
}

/// A deal of `staging.deals`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Deal {
    pub id: String,
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub amount_usd: Option<f64>,
    /// Normalized stage: lead, qualification, discovery, demo, proposal, negotiation,
    /// closed_won, closed_lost.
    pub stage: Option<String>,
    pub pipeline: Option<String>,
    pub probability: Option<f64>,
    /// YYYY-MM-DD.
    pub expected_close: Option<String>,
    pub closed_at: Option<String>,
    pub is_closed: Option<bool>,
    pub is_won: Option<bool>,
    pub lead_source: Option<String>,
    pub segment: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
    pub source_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

const DEAL_COLUMNS: &str = "id, name, account_id, owner_id, amount, currency, amount_usd, stage, \
     pipeline, probability, expected_close, closed_at, is_closed, is_won, lead_source, segment, \
     industry, source, source_id, created_at, updated_at";

/// Open, won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

/// Filters and paging of `GET /api/deals`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DealsQuery {
    /// Only deals in this normalized stage.
    pub stage: Option<String>,
    /// Only deals owned by this rep (staging.users id).
    pub owner: Option<String>,
    /// Only open, won or lost deals.
    #[param(inline)]
    pub status: Option<DealStatus>,
    /// Deals per page (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Deals skipped (default 0).
    #[param(minimum = 0, maximum = 1_000_000_000)]
    pub offset: Option<u64>,
}

/// A page of deals, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DealPage {
    pub deals: Vec<Deal>,
    /// Deals matching the filters, over all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// The offset of the next page; absent on the last page.
    pub next_offset: Option<u64>,
}

/// The largest `offset` of `GET /api/deals`.
const MAX_OFFSET: u64 = 1_000_000_000;

#[derive(Deserialize)]
struct Count {
    n: i64,
}

/// List the workspace's deals.
#[utoipa::path(
    get,
    path = "/api/deals",
    tag = "data",
    params(DealsQuery),
    responses(
        (status = 200, description = "A page of deals", body = DealPage),
        (status = 400, description = "A bad filter or page", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn list_deals(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(q): ApiQuery<DealsQuery>,
) -> Result<ApiJson<DealPage>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit={limit}: give 1 to 500"),
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("offset={offset}: give 0 to {MAX_OFFSET}"),
        ));
    }
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(stage) = &q.stage {
        params.push(ScalarValue::from(stage.as_str()));
        conditions.push(format!("stage = ${}", params.len()));
    }
    if let Some(owner) = &q.owner {
        params.push(ScalarValue::from(owner.as_str()));
        conditions.push(format!("owner_id = ${}", params.len()));
    }
    match q.status {
        Some(DealStatus::Open) => conditions.push("NOT coalesce(is_closed, false)".into()),
        Some(DealStatus::Won) => conditions.push("coalesce(is_won, false)".into()),
        Some(DealStatus::Lost) => {
            conditions.push("coalesce(is_closed, false) AND NOT coalesce(is_won, false)".into())
        }
        None => {}
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let session = state.session(&principal.workspace).await?;
    let total: u64 = fetch::<Count>(
        &session,
        "counting deals",
        &format!("SELECT count(*) AS n FROM staging.deals{filter}"),
        params.clone(),
    )
    .await?
    .and_then(|c| c.first().map(|c| c.n.max(0) as u64))
    .unwrap_or(0);
    let deals: Vec<Deal> = fetch(
        &session,
        "listing deals",
        &format!(
            "SELECT {DEAL_COLUMNS} FROM staging.deals{filter} ORDER BY id LIMIT {limit} OFFSET {offset}"
        ),
        params,
    )
    .await?
    .unwrap_or_default();
    let next = offset + deals.len() as u64;
    Ok(ApiJson(DealPage {
        next_offset: (next < total && !deals.is_empty()).then_some(next),
        deals,
        total,
        limit,
        offset,
    }))
}

/// A deal's current risk score (marts.deal_scores, from `revlake score`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DealScore {
    pub p_win: Option<f64>,
    pub p_win_model: Option<f64>,
    pub p_win_simulated: Option<f64>,
    /// 0 (safe) to 100.
    pub deal_risk: Option<i64>,
    pub risk_band: Option<String>,
    pub velocity_score: Option<f64>,
    pub engagement_score: Option<f64>,
    pub health_score: Option<i64>,
    pub days_in_stage: Option<f64>,
    /// The largest risk factors (JSON as scored).
    #[serde(deserialize_with = "de_json_text")]
    pub top_factors: Option<Value>,
    pub factors_text: Option<String>,
    /// `model` or `rules`.
    pub method: Option<String>,
    pub model_version: Option<i64>,
    pub as_of: Option<String>,
    pub computed_at: Option<String>,
}

fn de_json_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(json_text(Option::<String>::deserialize(d)?))
}

/// One stage change of a deal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StageChange {
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    pub transitioned_at: Option<String>,
    /// Days spent in `from_stage`.
    pub duration_days: Option<f64>,
}

/// A contact on a deal, with the role they play.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stakeholder {
    pub contact_id: Option<String>,
    pub role: Option<String>,
    pub is_primary: Option<bool>,
    pub confidence: Option<f64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
}

/// One deal in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct DealDetail {
    pub deal: Deal,
    /// Absent until `revlake score` scored the deal (closed deals are not scored).
    pub score: Option<DealScore>,
    pub stage_history: Vec<StageChange>,
    pub stakeholders: Vec<Stakeholder>,
}

/// One deal with its score, stage history and stakeholders.
#[utoipa::path(
    get,
    path = "/api/deals/{id}",
    tag = "data",
    params(("id" = String, Path, description = "The deal's id (staging.deals.id)")),
    responses(
        (status = 200, description = "The deal", body = DealDetail),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such deal in the key's workspace", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn get_deal(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<ApiJson<DealDetail>, ApiError> {
    let session = state.session(&principal.workspace).await?;
    let param = || vec![ScalarValue::from(id.as_str())];
    let deal = fetch::<Deal>(
        &session,
        "reading the deal",
        &format!("SELECT {DEAL_COLUMNS} FROM staging.deals WHERE id = $1 LIMIT 1"),
        param(),
    )
    .await?
    .and_then(|d| d.into_iter().next())
    .ok_or_else(|| ApiError::not_found("deal", &id))?;
    let score = fetch::<DealScore>(
        &session,
        "reading the deal's score",
        "SELECT p_win, p_win_model, p_win_simulated, deal_risk, risk_band, velocity_score, \
         engagement_score, health_score, days_in_stage, top_factors, factors_text, method, \
         model_version, as_of, computed_at FROM marts.deal_scores WHERE deal_id = $1 \
         ORDER BY computed_at DESC LIMIT 1",
        param(),
    )
    .await?
    .and_then(|s| s.into_iter().next());
    let stage_history = fetch(
        &session,
        "reading the stage history",
        "SELECT from_stage, to_stage, transitioned_at, duration_days \
         FROM staging.deal_stage_history WHERE deal_id = $1 ORDER BY transitioned_at, id",
        param(),
    )
    .await?
    .unwrap_or_default();
    let stakeholders = match fetch(
        &session,
        "reading the stakeholders",
        "SELECT dc.contact_id, dc.role, dc.is_primary, dc.confidence, c.first_name, c.last_name, \
         c.email, c.title FROM staging.deal_contacts dc \
         LEFT JOIN staging.contacts c ON c.id = dc.contact_id \
         WHERE dc.deal_id = $1 ORDER BY dc.is_primary DESC NULLS LAST, dc.contact_id",
        param(),
    )
    .await?
    {
        Some(s) => s,
        None => fetch(
            &session,
            "reading the stakeholders",
            "SELECT contact_id, role, is_primary, confidence FROM staging.deal_contacts \
             WHERE deal_id = $1 ORDER BY is_primary DESC NULLS LAST, contact_id",
            param(),
        )
        .await?
        .unwrap_or_default(),
    };
    Ok(ApiJson(DealDetail {
        deal,
        score,
        stage_history,
        stakeholders,
    }))
}

/// Filters of `GET /api/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// open or resolved (default: both).
    #[param(inline)]
    pub status: Option<AlertStatus>,
    /// info, warning or critical.
    #[param(inline)]
    pub severity: Option<Severity>,
    /// Alerts returned, newest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Resolved,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// An insight alert (marts.alerts, from `revlake score`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub alert_id: String,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub subject: Option<String>,
    pub subject_name: Option<String>,
    pub owner_id: Option<String>,
    pub audience: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
    #[serde(deserialize_with = "de_json_text")]
    pub details: Option<Value>,
    pub state: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub is_new: Option<bool>,
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<Alert>,
}

/// The workspace's insight alerts, newest first.
#[utoipa::path(
    get,
    path = "/api/alerts",
    tag = "data",
    params(AlertsQuery),
    responses(
        (status = 200, description = "Alerts", body = AlertList),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn list_alerts(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<ApiJson<AlertList>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit={limit}: give 1 to 1000"),
        ));
    }
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(s) = q.status {
        params.push(ScalarValue::from(match s {
            AlertStatus::Open => "open",
            AlertStatus::Resolved => "resolved",
        }));
        conditions.push(format!("status = ${}", params.len()));
    }
    if let Some(s) = q.severity {
        params.push(ScalarValue::from(match s {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }));
        conditions.push(format!("severity = ${}", params.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let session = state.session(&principal.workspace).await?;
    let alerts = fetch(
        &session,
        "listing alerts",
        &format!(
            "SELECT alert_id, rule, severity, subject, subject_name, owner_id, audience, title, \
             body, details, state, first_seen, last_seen, is_new, status FROM marts.alerts{filter} \
             ORDER BY last_seen DESC NULLS LAST, alert_id LIMIT {limit}"
        ),
        params,
    )
    .await?
    .unwrap_or_default();
    Ok(ApiJson(AlertList { alerts }))
}

/// A check's latest verdict (ops.quality_results).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QualityResult {
    pub run_id: Option<String>,
    pub dataset: Option<String>,
    pub version: Option<i64>,
    pub check_name: Option<String>,
    pub kind: Option<String>,
    pub column_name: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub failing_rows: Option<i64>,
    pub total_rows: Option<i64>,
    pub observed: Option<f64>,
    pub threshold: Option<String>,
    pub message: Option<String>,
    pub checked_at: Option<String>,
}

/// The latest verdict of every check, and how many checks have each status.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityReport {
    pub results: Vec<QualityResult>,
    pub by_status: BTreeMap<String, u64>,
}

/// The latest result of every quality check on the workspace's datasets.
#[utoipa::path(
    get,
    path = "/api/quality",
    tag = "data",
    responses(
        (status = 200, description = "Latest check results", body = QualityReport),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn quality(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<ApiJson<QualityReport>, ApiError> {
    let session = state.session(&principal.workspace).await?;
    let results: Vec<QualityResult> = fetch(
        &session,
        "reading the quality results",
        "SELECT run_id, dataset, version, check_name, kind, column_name, severity, status, \
         failing_rows, total_rows, observed, threshold, message, checked_at FROM ( \
           SELECT *, row_number() OVER (PARTITION BY dataset, check_name, column_name \
                                        ORDER BY checked_at DESC, run_id DESC) AS latest \
           FROM ops.quality_results) \
         WHERE latest = 1 ORDER BY dataset, check_name, column_name",
        Vec::new(),
    )
    .await?
    .unwrap_or_default();
    let mut by_status = BTreeMap::new();
    for r in &results {
        *by_status
            .entry(r.status.clone().unwrap_or_else(|| "unknown".into()))
            .or_insert(0) += 1;
    }
    Ok(ApiJson(QualityReport { results, by_status }))
}

/// A rep with their book of deals.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rep {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub manager_id: Option<String>,
    pub is_active: Option<bool>,
    pub open_deals: i64,
    /// Open amount in USD (the deal currency where no rate is known).
    pub open_amount: f64,
    pub won_deals: i64,
    pub won_amount: f64,
    pub lost_deals: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SalesRoster {
    pub workspace: String,
    pub reps: Vec<Rep>,
}

/// The workspace's reps (staging.users) with their open, won and lost deals.
#[utoipa::path(
    get,
    path = "/api/workspaces/{id}/sales-roster",
    tag = "data",
    params(("id" = String, Path, description = "The workspace: only the key's own")),
    responses(
        (status = 200, description = "The roster", body = SalesRoster),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "Not the key's workspace (or none such)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    )
)]
pub async fn sales_roster(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<ApiJson<SalesRoster>, ApiError> {
    if id != principal.workspace.as_str() {
        return Err(ApiError::not_found("workspace", &id));
    }
    let session = state.session(&principal.workspace).await?;
    let sql = "SELECT u.id, u.name, u.email, u.title, u.manager_id, u.is_active, \
           coalesce(d.open_deals, 0) AS open_deals, coalesce(d.open_amount, 0.0) AS open_amount, \
           coalesce(d.won_deals, 0) AS won_deals, coalesce(d.won_amount, 0.0) AS won_amount, \
           coalesce(d.lost_deals, 0) AS lost_deals \
         FROM staging.users u LEFT JOIN ( \
           SELECT owner_id, \
             sum(CASE WHEN NOT coalesce(is_closed, false) THEN 1 ELSE 0 END) AS open_deals, \
             sum(CASE WHEN NOT coalesce(is_closed, false) \
                      THEN coalesce(amount_usd, amount, 0.0) ELSE 0.0 END) AS open_amount, \
             sum(CASE WHEN coalesce(is_won, false) THEN 1 ELSE 0 END) AS won_deals, \
             sum(CASE WHEN coalesce(is_won, false) \
                      THEN coalesce(amount_usd, amount, 0.0) ELSE 0.0 END) AS won_amount, \
             sum(CASE WHEN coalesce(is_closed, false) AND NOT coalesce(is_won, false) \
                      THEN 1 ELSE 0 END) AS lost_deals \
           FROM staging.deals GROUP BY owner_id) d ON d.owner_id = u.id \
         ORDER BY u.name, u.id";
    let reps = fetch(&session, "reading the roster", sql, Vec::new())
        .await?
        .unwrap_or_default();
    Ok(ApiJson(SalesRoster {
        workspace: principal.workspace.to_string(),
        reps,
    }))
}
