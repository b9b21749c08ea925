//! One scoring run of a workspace: read the inputs, train (or load) the risk model, score the
//! open deals, compute the trends and alerts, and write the marts.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::alerts::{
    AlertRow, AlertThresholds, high_risk_deals, pipeline_anomalies, pipeline_health, reconcile,
    rep_risk, win_rate_declines,
};
use super::data::{Inputs, load_from_session};
use super::digest::{DigestInput, render};
use super::error::{Result, ScoringError};
use super::features::{RateBook, Reference};
use super::model::{Decision, RiskModel, TrainOptions, Training, decide, is_current, train};
use super::score::{DealScore, Method, Scorer, score_all, score_deal};
use super::store::{
    Schemas, read_alerts, read_models, write_alerts, write_deal_scores, write_models,
};
use super::trends::{DealFact, HealthIndex, anomalies, daily_movements, facts, health_index, utc};
use crate::lake::{Lake, WorkspaceId, WriteOutcome};
use crate::sql::{SessionOptions, SqlSession};

/// Settings of a run.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// Train a new model even when one is active.
    pub train: bool,
    /// Activate the new model even when the active one is better on the new holdout.
    pub force: bool,
    pub training: TrainOptions,
    pub thresholds: AlertThresholds,
    /// The run's wall-clock time (alerts' first/last seen); default now.
    pub now: Option<DateTime<Utc>>,
    /// Write the training features as CSV into this folder when a model is trained.
    pub export_features: Option<PathBuf>,
    /// Print only: write no marts.
    pub no_write: bool,
}

/// What training did in a run.
#[derive(Debug, Clone)]
pub struct TrainingReport {
    /// The new model, with its stored version and status.
    pub model: RiskModel,
    pub decision: Decision,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct ScoreReport {
    pub workspace: WorkspaceId,
    /// The data's "now" the deals were scored at.
    pub as_of: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub method: Method,
    /// The model the scores come from.
    pub model: Option<RiskModel>,
    pub training: Option<TrainingReport>,
    /// Why training did not produce a model (too little history), when it was tried.
    pub training_skipped: Option<String>,
    pub scores: Vec<DealScore>,
    /// Open deals with an unmapped stage: not scored.
    pub skipped: usize,
    pub facts: Vec<DealFact>,
    pub health: Option<HealthIndex>,
    /// Every alert of the workspace after this run (open and resolved).
    pub alerts: Vec<AlertRow>,
    /// Staging tables that were missing and read as empty.
    pub missing: Vec<String>,
    /// Marts written: (dataset, outcome).
    pub written: Vec<(String, WriteOutcome)>,
}

impl ScoreReport {
    /// The alerts first seen in this run: to be sent.
    pub fn new_alerts(&self) -> Vec<&AlertRow> {
        super::alerts::new_alerts(&self.alerts)
    }

    /// The weekly executive digest of this run, as self-contained HTML.
    pub fn digest_html(&self) -> String {
        render(&DigestInput {
            workspace: self.workspace.as_str(),
            as_of: self.as_of,
            method: &self.method,
            scores: &self.scores,
            facts: &self.facts,
            health: self.health.as_ref(),
            alerts: &self.alerts,
        })
    }
}

async fn session(lake: &Lake, workspace: &WorkspaceId) -> Result<SqlSession> {
    Ok(SqlSession::open(
        lake,
        &SessionOptions {
            workspace: Some(workspace.clone()),
            ..SessionOptions::default()
        },
    )
    .await?)
}

/// The model a run scores with: the active one whose features are today's.
fn active(models: &[RiskModel]) -> Option<&RiskModel> {
    models.iter().rev().find(|m| m.active)
}

struct Computed {
    method: Method,
    model: Option<RiskModel>,
    training: Option<TrainingReport>,
    training_skipped: Option<String>,
    models: Vec<RiskModel>,
    scores: Vec<DealScore>,
    skipped: usize,
    facts: Vec<DealFact>,
    health: Option<HealthIndex>,
    current_alerts: Vec<super::alerts::Alert>,
}

fn compute(
    inputs: &Inputs,
    mut models: Vec<RiskModel>,
    options: &ScoreOptions,
    now: DateTime<Utc>,
) -> Result<Computed> {
    let reference = Reference::build(inputs);
    let rates = RateBook::build(inputs);
    let current = active(&models).filter(|m| is_current(m)).cloned();
    let mut training = None;
    let mut training_skipped = None;
    let mut model = current.clone();
    if options.train || current.is_none() {
        match train(inputs, &rates, &options.training, now)? {
            Training::Model(new, set) => {
                if let Some(dir) = &options.export_features {
                    set.export_csv(dir)?;
                }
                let mut new = *new;
                let previous = active(&models).cloned();
                let decision = decide(previous.as_ref(), &new, &set, options.force);
                new.version = models.iter().map(|m| m.version).max().unwrap_or(0) + 1;
                match &decision {
                    Decision::Kept {
                        previous,
                        previous_auc,
                    } => {
                        new.active = false;
                        new.status = "rejected".into();
                        new.note = format!(
                            "kept version {previous} active: its holdout AUC {previous_auc:.4} beats this model's {:.4} (--force to activate)",
                            new.metrics.auc
                        );
                    }
                    other => {
                        for m in models.iter_mut().filter(|m| m.active) {
                            m.active = false;
                            m.status = "retired".into();
                        }
                        new.note = match other {
                            Decision::First => "first model".to_string(),
                            Decision::Better {
                                previous,
                                previous_auc,
                            } => format!(
                                "replaces version {previous} (its AUC on this holdout {previous_auc:.4})"
                            ),
                            Decision::Forced {
                                previous,
                                previous_auc,
                            } => format!(
                                "forced over version {previous}, whose AUC on this holdout is better ({previous_auc:.4})"
                            ),
                            Decision::Kept { .. } => String::new(),
                        };
                        model = Some(new.clone());
                    }
                }
                models.push(new.clone());
                training = Some(TrainingReport {
                    model: new,
                    decision,
                });
            }
            Training::TooFew { reason } => training_skipped = Some(reason),
        }
    }
    let method = match &model {
        Some(m) => Method::Model { version: m.version },
        None => Method::Rules {
            reason: training_skipped
                .clone()
                .unwrap_or_else(|| "no trained risk model".to_string()),
        },
    };
    let scorer = match &model {
        Some(m) => Scorer::Model(&m.logistic),
        None => Scorer::Rules,
    };
    let (scores, skipped) = score_all(inputs, &reference, &rates, scorer);
    let facts = facts(inputs);
    let health = health_index(&facts, inputs.as_of);
    let t = &options.thresholds;
    let mut current_alerts = high_risk_deals(&scores, &inputs.users, t);
    current_alerts.extend(win_rate_declines(&facts, inputs.as_of, t));
    current_alerts.extend(rep_risk(&scores, &inputs.users, t));
    current_alerts.extend(pipeline_health(&inputs.workspace, health.as_ref(), t));
    current_alerts.extend(pipeline_anomalies(&anomalies(
        &daily_movements(&facts, inputs.as_of, 84),
        7,
    )));
    Ok(Computed {
        method,
        model,
        training,
        training_skipped,
        models,
        scores,
        skipped,
        facts,
        health,
        current_alerts,
    })
}

/// Scores the open deals of `workspace` and writes `marts.deal_scores`, `marts.alerts` and,
/// when a model was trained, `marts.risk_models`.
pub async fn score_workspace(
    lake: &Lake,
    schemas: &Schemas,
    workspace: &WorkspaceId,
    options: &ScoreOptions,
) -> Result<ScoreReport> {
    options.training.validate()?;
    let now = options.now.unwrap_or_else(Utc::now);
    let session = session(lake, workspace).await?;
    let inputs = Arc::new(load_from_session(&session, workspace).await?);
    let models = read_models(&session, workspace).await?;
    let stored_alerts = read_alerts(&session).await?;
    let (task_inputs, task_options) = (inputs.clone(), options.clone());
    let computed =
        tokio::task::spawn_blocking(move || compute(&task_inputs, models, &task_options, now))
            .await
            .map_err(|e| ScoringError::Task {
                reason: e.to_string(),
            })??;
    let alerts = reconcile(
        workspace.as_str(),
        stored_alerts,
        &computed.current_alerts,
        now,
    );
    let as_of = utc(inputs.as_of);
    let mut written = Vec::new();
    if !options.no_write {
        if computed.training.is_some() {
            let o = write_models(
                lake,
                schemas.risk_models.as_ref(),
                workspace,
                &computed.models,
            )
            .await?;
            written.push((super::model::RISK_MODELS.to_string(), o));
        }
        let o = write_deal_scores(
            lake,
            schemas.deal_scores.as_ref(),
            workspace,
            &computed.scores,
            &computed.method,
            as_of,
            now,
        )
        .await?;
        written.push((super::store::DEAL_SCORES.to_string(), o));
        let o = write_alerts(lake, schemas.alerts.as_ref(), workspace, &alerts, now).await?;
        written.push((super::alerts::ALERTS.to_string(), o));
    }
    Ok(ScoreReport {
        workspace: workspace.clone(),
        as_of,
        computed_at: now,
        method: computed.method,
        model: computed.model,
        training: computed.training,
        training_skipped: computed.training_skipped,
        scores: computed.scores,
        skipped: computed.skipped,
        facts: computed.facts,
        health: computed.health,
        alerts,
        missing: inputs.missing.clone(),
        written,
    })
}

/// A deal's scores and every factor, for `revlake explain`.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub score: DealScore,
    pub method: Method,
    pub as_of: DateTime<Utc>,
}

/// Explains one open deal (by id, source id or exact name) with the active model, or with the
/// rules when there is none. Reads only.
pub async fn explain_deal(lake: &Lake, workspace: &WorkspaceId, deal: &str) -> Result<Explanation> {
    let session = session(lake, workspace).await?;
    let inputs = load_from_session(&session, workspace).await?;
    let models = read_models(&session, workspace).await?;
    let found = inputs
        .deals
        .iter()
        .position(|d| d.id == deal)
        .or_else(|| inputs.deals.iter().position(|d| d.source_id == deal))
        .or_else(|| inputs.deals.iter().position(|d| d.name == deal));
    let no_such = |hint: String| ScoringError::NoSuchDeal {
        deal: deal.to_string(),
        workspace: workspace.to_string(),
        hint,
    };
    let Some(i) = found else {
        return Err(no_such(format!(
            ": no deal has that id, source id or name ({} deals in staging.deals)",
            inputs.deals.len()
        )));
    };
    let d = &inputs.deals[i];
    if d.is_closed {
        return Err(no_such(format!(
            ": it is closed ({})",
            if d.is_won { "won" } else { "lost" }
        )));
    }
    let model = active(&models).filter(|m| is_current(m)).cloned();
    let reference = Reference::build(&inputs);
    let rates = RateBook::build(&inputs);
    let (scorer, method) = match &model {
        Some(m) => (
            Scorer::Model(&m.logistic),
            Method::Model { version: m.version },
        ),
        None => (
            Scorer::Rules,
            Method::Rules {
                reason: "no trained risk model in marts.risk_models (revlake score --train)"
                    .to_string(),
            },
        ),
    };
    let score = score_deal(&inputs, &reference, &rates, scorer, i).ok_or_else(|| {
        no_such(format!(
            ": its stage `{}` is not an open stage",
            d.stage.as_deref().unwrap_or("(unmapped)")
        ))
    })?;
    Ok(Explanation {
        score,
        method,
        as_of: utc(inputs.as_of),
    })
}
