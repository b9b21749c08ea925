//! Reading and writing the scoring marts: `marts.deal_scores`, `marts.risk_models` and
//! `marts.alerts`. Each write replaces the workspace's rows in one commit.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use chrono::{DateTime, Utc};

use super::alerts::{ALERTS, AlertRow};
use super::columns::{collect, flags, floats, strings};
use super::error::{Result, ScoringError};
use super::metrics::CalibrationBin;
use super::model::{Metrics, RISK_MODELS, RiskModel};
use super::score::{DealScore, Method};
use super::trends::utc;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::DatasetSchema;
use crate::sql::SqlSession;

/// The mart of per-deal scores.
pub const DEAL_SCORES: &str = "marts.deal_scores";

/// The declared schemas of the marts (from the project's `schemas/`), when known.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    pub deal_scores: Option<DatasetSchema>,
    pub risk_models: Option<DatasetSchema>,
    pub alerts: Option<DatasetSchema>,
}

impl Schemas {
    /// The schemas `project` declares.
    pub fn from_project(project: &crate::project::Project) -> Self {
        let get = |name: &str| {
            name.parse::<DatasetRef>()
                .ok()
                .and_then(|d| project.schema(&d).cloned())
        };
        Self {
            deal_scores: get(DEAL_SCORES),
            risk_models: get(RISK_MODELS),
            alerts: get(ALERTS),
        }
    }
}

fn ts(values: impl IntoIterator<Item = Option<DateTime<Utc>>>) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(
            values
                .into_iter()
                .map(|t| t.map(|t| t.timestamp_micros()))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    )
}

fn strs<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn opt_strs(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn f64s(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(values))
}

fn i64s(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from_iter(values))
}

fn bools(values: impl IntoIterator<Item = bool>) -> ArrayRef {
    Arc::new(BooleanArray::from_iter(values.into_iter().map(Some)))
}

fn batch_of(dataset: &DatasetRef, columns: Vec<(&str, ArrayRef, bool)>) -> Result<RecordBatch> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a, _)| a).collect(),
    )
    .map_err(|source| ScoringError::Arrow {
        dataset: dataset.clone(),
        source,
    })
}

async fn replace_workspace(
    lake: &Lake,
    dataset: DatasetRef,
    schema: Option<&DatasetSchema>,
    workspace: &WorkspaceId,
    batch: RecordBatch,
) -> Result<WriteOutcome> {
    let name = dataset.to_string();
    let outcome = lake
        .write(dataset)
        .with_schema(schema)
        .with_mode(WriteMode::OverwriteWorkspace(workspace.clone()))
        .with_batches(batch.schema(), vec![batch])
        .await?;
    crate::telemetry::dataset_written(&name, outcome.version, outcome.rows);
    Ok(outcome)
}

/// Replaces the workspace's rows of `marts.deal_scores`.
pub async fn write_deal_scores(
    lake: &Lake,
    schema: Option<&DatasetSchema>,
    workspace: &WorkspaceId,
    scores: &[DealScore],
    method: &Method,
    as_of: DateTime<Utc>,
    computed_at: DateTime<Utc>,
) -> Result<WriteOutcome> {
    let dataset: DatasetRef = DEAL_SCORES.parse()?;
    let n = scores.len();
    let note = match method {
        Method::Model { version } => format!("logistic risk model version {version}"),
        Method::Rules { reason } => format!("rule-based scoring: {reason}"),
    };
    let batch =
        batch_of(
            &dataset,
            vec![
                ("workspace_id", strs(vec![workspace.as_str(); n]), false),
                ("deal_id", strs(scores.iter().map(|s| &s.deal_id)), false),
                ("deal_name", strs(scores.iter().map(|s| &s.deal_name)), true),
                (
                    "owner_id",
                    opt_strs(scores.iter().map(|s| s.owner_id.clone())),
                    true,
                ),
                ("segment", strs(scores.iter().map(|s| &s.segment)), true),
                ("stage", strs(scores.iter().map(|s| &s.stage)), true),
                ("amount", f64s(scores.iter().map(|s| s.amount)), true),
                (
                    "days_in_stage",
                    f64s(scores.iter().map(|s| Some(s.days_in_stage))),
                    true,
                ),
                ("p_win", f64s(scores.iter().map(|s| Some(s.p_win))), true),
                (
                    "p_win_model",
                    f64s(scores.iter().map(|s| Some(s.p_win_model))),
                    true,
                ),
                (
                    "p_win_simulated",
                    f64s(scores.iter().map(|s| s.p_win_simulated)),
                    true,
                ),
                (
                    "deal_risk",
                    i64s(scores.iter().map(|s| Some(i64::from(s.deal_risk)))),
                    true,
                ),
                (
                    "risk_band",
                    strs(scores.iter().map(|s| s.risk_band())),
                    true,
                ),
                (
                    "velocity_score",
                    f64s(scores.iter().map(|s| Some(s.velocity_score))),
                    true,
                ),
                (
                    "engagement_score",
                    f64s(scores.iter().map(|s| Some(s.engagement_score))),
                    true,
                ),
                (
                    "health_score",
                    i64s(scores.iter().map(|s| Some(i64::from(s.health_score)))),
                    true,
                ),
                (
                    "top_factors",
                    strs(scores.iter().map(|s| {
                        serde_json::to_string(&s.factors).unwrap_or_else(|_| "[]".into())
                    })),
                    true,
                ),
                (
                    "factors_text",
                    strs(scores.iter().map(|s| {
                        s.factors
                            .iter()
                            .map(|f| f.text.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    })),
                    true,
                ),
                ("method", strs(vec![method.name(); n]), true),
                ("model_version", i64s(vec![method.version(); n]), true),
                ("method_note", strs(vec![note.as_str(); n]), true),
                ("as_of", ts(vec![Some(as_of); n]), true),
                ("computed_at", ts(vec![Some(computed_at); n]), true),
            ],
        )?;
    replace_workspace(lake, dataset, schema, workspace, batch).await
}

/// Every stored model of the session's workspace, by version.
pub async fn read_models(session: &SqlSession, workspace: &WorkspaceId) -> Result<Vec<RiskModel>> {
    let dataset: DatasetRef = RISK_MODELS.parse()?;
    if !session.tables().contains(&dataset) {
        return Ok(Vec::new());
    }
    let batches = collect(
        session,
        "SELECT version, date_part('epoch', trained_at) AS trained, active, status, coefficients, \
           auc, log_loss, within_stage_auc, train_auc, base_rate, train_rows, test_rows, \
           train_deals, test_deals, calibration, date_part('epoch', holdout_from) AS holdout, note \
         FROM marts.risk_models ORDER BY version",
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let version = floats(b, &dataset, "version")?;
        let trained = floats(b, &dataset, "trained")?;
        let active = flags(b, &dataset, "active")?;
        let status = strings(b, &dataset, "status")?;
        let coefficients = strings(b, &dataset, "coefficients")?;
        let num = |c: &str| floats(b, &dataset, c);
        let (auc, ll, ws, ta, br) = (
            num("auc")?,
            num("log_loss")?,
            num("within_stage_auc")?,
            num("train_auc")?,
            num("base_rate")?,
        );
        let (trr, ter, trd, ted) = (
            num("train_rows")?,
            num("test_rows")?,
            num("train_deals")?,
            num("test_deals")?,
        );
        let calibration = strings(b, &dataset, "calibration")?;
        let holdout = num("holdout")?;
        let note = strings(b, &dataset, "note")?;
        for r in 0..b.num_rows() {
            let v = version[r].unwrap_or(0.0) as i64;
            let (features, logistic) = RiskModel::logistic_from_json(
                coefficients[r].as_deref().unwrap_or(""),
                workspace.as_str(),
                v,
            )?;
            let calibration: Vec<CalibrationBin> = calibration[r]
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            let count = |x: Option<f64>| x.unwrap_or(0.0).max(0.0) as usize;
            out.push(RiskModel {
                version: v,
                trained_at: utc(trained[r].unwrap_or(0.0)),
                features,
                logistic,
                metrics: Metrics {
                    auc: auc[r].unwrap_or(0.5),
                    log_loss: ll[r].unwrap_or(f64::NAN),
                    within_stage_auc: ws[r],
                    train_auc: ta[r],
                    base_rate: br[r].unwrap_or(0.0),
                    train_rows: count(trr[r]),
                    test_rows: count(ter[r]),
                    train_deals: count(trd[r]),
                    test_deals: count(ted[r]),
                    calibration,
                },
                holdout_from: holdout[r].unwrap_or(0.0),
                active: active[r],
                status: status[r].clone().unwrap_or_default(),
                note: note[r].clone().unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// Replaces the workspace's rows of `marts.risk_models` with `models`.
pub async fn write_models(
    lake: &Lake,
    schema: Option<&DatasetSchema>,
    workspace: &WorkspaceId,
    models: &[RiskModel],
) -> Result<WriteOutcome> {
    let dataset: DatasetRef = RISK_MODELS.parse()?;
    let n = models.len();
    let m = |f: fn(&RiskModel) -> Option<f64>| f64s(models.iter().map(f));
    let c = |f: fn(&RiskModel) -> usize| i64s(models.iter().map(|x| Some(f(x) as i64)));
    let batch = batch_of(
        &dataset,
        vec![
            ("workspace_id", strs(vec![workspace.as_str(); n]), false),
            (
                "version",
                i64s(models.iter().map(|x| Some(x.version))),
                false,
            ),
            (
                "trained_at",
                ts(models.iter().map(|x| Some(x.trained_at))),
                true,
            ),
            ("active", bools(models.iter().map(|x| x.active)), true),
            ("status", strs(models.iter().map(|x| &x.status)), true),
            ("kind", strs(vec!["logistic_irls_l2"; n]), true),
            ("l2", m(|x| Some(x.logistic.l2)), true),
            ("auc", m(|x| Some(x.metrics.auc)), true),
            ("log_loss", m(|x| Some(x.metrics.log_loss)), true),
            ("within_stage_auc", m(|x| x.metrics.within_stage_auc), true),
            ("train_auc", m(|x| x.metrics.train_auc), true),
            ("base_rate", m(|x| Some(x.metrics.base_rate)), true),
            ("train_rows", c(|x| x.metrics.train_rows), true),
            ("test_rows", c(|x| x.metrics.test_rows), true),
            ("train_deals", c(|x| x.metrics.train_deals), true),
            ("test_deals", c(|x| x.metrics.test_deals), true),
            (
                "holdout_from",
                ts(models.iter().map(|x| Some(utc(x.holdout_from)))),
                true,
            ),
            (
                "coefficients",
                strs(models.iter().map(|x| x.coefficients_json())),
                true,
            ),
            (
                "calibration",
                strs(models.iter().map(|x| {
                    serde_json::to_string(&x.metrics.calibration).unwrap_or_else(|_| "[]".into())
                })),
                true,
            ),
            ("note", strs(models.iter().map(|x| &x.note)), true),
        ],
    )?;
    replace_workspace(lake, dataset, schema, workspace, batch).await
}

/// Every stored alert of the session's workspace.
pub async fn read_alerts(session: &SqlSession) -> Result<Vec<AlertRow>> {
    let dataset: DatasetRef = ALERTS.parse()?;
    if !session.tables().contains(&dataset) {
        return Ok(Vec::new());
    }
    let batches = collect(
        session,
        "SELECT alert_id, rule, severity, subject, subject_name, owner_id, manager_id, audience, \
           title, body, details, state, date_part('epoch', first_seen) AS first, \
           date_part('epoch', last_seen) AS last, is_new, status FROM marts.alerts",
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let s = |c: &str| strings(b, &dataset, c);
        let (id, rule, severity, subject, name) = (
            s("alert_id")?,
            s("rule")?,
            s("severity")?,
            s("subject")?,
            s("subject_name")?,
        );
        let (owner, manager, audience, title, body, details, state, status) = (
            s("owner_id")?,
            s("manager_id")?,
            s("audience")?,
            s("title")?,
            s("body")?,
            s("details")?,
            s("state")?,
            s("status")?,
        );
        let first = floats(b, &dataset, "first")?;
        let last = floats(b, &dataset, "last")?;
        let is_new = flags(b, &dataset, "is_new")?;
        for r in 0..b.num_rows() {
            let text = |v: &Vec<Option<String>>| v[r].clone().unwrap_or_default();
            out.push(AlertRow {
                alert_id: text(&id),
                rule: text(&rule),
                severity: text(&severity),
                subject: text(&subject),
                subject_name: text(&name),
                owner_id: owner[r].clone(),
                manager_id: manager[r].clone(),
                audience: text(&audience),
                title: text(&title),
                body: text(&body),
                details: text(&details),
                state: text(&state),
                first_seen: utc(first[r].unwrap_or(0.0)),
                last_seen: utc(last[r].unwrap_or(0.0)),
                is_new: is_new[r],
                status: text(&status),
            });
        }
    }
    Ok(out)
}

/// Replaces the workspace's rows of `marts.alerts`.
pub async fn write_alerts(
    lake: &Lake,
    schema: Option<&DatasetSchema>,
    workspace: &WorkspaceId,
    rows: &[AlertRow],
    computed_at: DateTime<Utc>,
) -> Result<WriteOutcome> {
    let dataset: DatasetRef = ALERTS.parse()?;
    let n = rows.len();
    let batch = batch_of(
        &dataset,
        vec![
            ("workspace_id", strs(vec![workspace.as_str(); n]), false),
            ("alert_id", strs(rows.iter().map(|r| &r.alert_id)), false),
            ("rule", strs(rows.iter().map(|r| &r.rule)), true),
            ("severity", strs(rows.iter().map(|r| &r.severity)), true),
            ("subject", strs(rows.iter().map(|r| &r.subject)), true),
            (
                "subject_name",
                strs(rows.iter().map(|r| &r.subject_name)),
                true,
            ),
            (
                "owner_id",
                opt_strs(rows.iter().map(|r| r.owner_id.clone())),
                true,
            ),
            (
                "manager_id",
                opt_strs(rows.iter().map(|r| r.manager_id.clone())),
                true,
            ),
            ("audience", strs(rows.iter().map(|r| &r.audience)), true),
            ("title", strs(rows.iter().map(|r| &r.title)), true),
            ("body", strs(rows.iter().map(|r| &r.body)), true),
            ("details", strs(rows.iter().map(|r| &r.details)), true),
            ("state", strs(rows.iter().map(|r| &r.state)), true),
            (
                "first_seen",
                ts(rows.iter().map(|r| Some(r.first_seen))),
                true,
            ),
            (
                "last_seen",
                ts(rows.iter().map(|r| Some(r.last_seen))),
                true,
            ),
            ("is_new", bools(rows.iter().map(|r| r.is_new)), true),
            ("status", strs(rows.iter().map(|r| &r.status)), true),
            ("computed_at", ts(vec![Some(computed_at); n]), true),
        ],
    )?;
    replace_workspace(lake, dataset, schema, workspace, batch).await
}
