//! Loading a [`ChainModel`] from the mining marts of one workspace.
//!
//! * `marts.stage_transition_matrix`: `context_key, from_stage, to_stage, count, probability,
//!   effective_n, low_confidence` (context `*` is the context-free row);
//! * `marts.stage_durations`: `stage, context_key, quantiles` (a list of evenly spaced
//!   quantiles of days in the stage, 0 % to 100 %).
//!
//! Only these columns are read, by name, so the marts may carry more.

use std::collections::BTreeSet;

use arrow::array::Array as _;

use super::columns::{booleans, collect, float_lists, floats, strings};
use super::error::{Result, SimulateError};
use super::model::{ChainModel, stage_order};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::sql::{SessionOptions, SqlSession};

/// The transition mart.
pub const TRANSITIONS: &str = "marts.stage_transition_matrix";
/// The time-in-stage mart.
pub const DURATIONS: &str = "marts.stage_durations";

struct TransitionRow {
    context: String,
    from: String,
    to: String,
    probability: f64,
    count: f64,
    low_confidence: bool,
}

struct DurationRow {
    context: String,
    stage: String,
    quantiles: Option<Vec<f64>>,
}

impl ChainModel {
    /// The chain mined for `workspace`: its transition rows and time-in-stage tables.
    ///
    /// Rows without a `from_stage` (a deal's first stage) are skipped; rows of a context are
    /// normalized; a context's weight is the sum of its transition counts. The model is
    /// low-confidence when any context-free row is.
    pub async fn from_marts(lake: &Lake, workspace: &WorkspaceId) -> Result<Self> {
        let session = SqlSession::open(
            lake,
            &SessionOptions {
                workspace: Some(workspace.clone()),
                ..SessionOptions::default()
            },
        )
        .await?;
        Self::from_session(&session, workspace).await
    }

    pub(super) async fn from_session(
        session: &SqlSession,
        workspace: &WorkspaceId,
    ) -> Result<Self> {
        let transitions_ds: DatasetRef = TRANSITIONS.parse()?;
        let durations_ds: DatasetRef = DURATIONS.parse()?;
        let tables = session.tables();
        let missing = |dataset: &DatasetRef| SimulateError::NoMinedModel {
            dataset: dataset.clone(),
            workspace: workspace.to_string(),
        };
        if !tables.contains(&transitions_ds) {
            return Err(missing(&transitions_ds));
        }
        let transitions = read_transitions(session, &transitions_ds).await?;
        if transitions.is_empty() {
            return Err(missing(&transitions_ds));
        }
        let durations = if tables.contains(&durations_ds) {
            read_durations(session, &durations_ds).await?
        } else {
            tracing::warn!(
                dataset = DURATIONS,
                workspace = workspace.as_str(),
                "no time-in-stage mart: every stay counts as zero days"
            );
            Vec::new()
        };
        Self::from_rows(&transitions, &durations, workspace, None)
    }

    /// The chain of a workspace mined in memory ([`crate::mining::mine_until`]), without the
    /// marts: the same rows as [`ChainModel::from_marts`] would read back.
    pub fn from_mining(mined: &crate::mining::WorkspaceMining) -> Result<Self> {
        let workspace = WorkspaceId::new(&mined.workspace)?;
        let transitions: Vec<TransitionRow> = mined
            .matrix
            .iter()
            .map(|r| TransitionRow {
                context: r.context_key.clone(),
                from: r.from_stage.clone(),
                to: r.to_stage.clone(),
                probability: r.probability,
                count: r.count as f64,
                low_confidence: false,
            })
            .collect();
        if transitions.is_empty() {
            return Err(SimulateError::NoMinedModel {
                dataset: TRANSITIONS.parse()?,
                workspace: workspace.to_string(),
            });
        }
        let durations: Vec<DurationRow> = mined
            .durations
            .iter()
            .map(|r| DurationRow {
                context: r.context_key.clone(),
                stage: r.stage.clone(),
                quantiles: Some(r.days.quantiles.clone()).filter(|q| !q.is_empty()),
            })
            .collect();
        Self::from_rows(
            &transitions,
            &durations,
            &workspace,
            Some(mined.summary.low_confidence),
        )
    }

    /// Builds the chain from mart rows; `low_confidence` overrides the rows' flags.
    fn from_rows(
        transitions: &[TransitionRow],
        durations: &[DurationRow],
        workspace: &WorkspaceId,
        low_confidence: Option<bool>,
    ) -> Result<Self> {
        let transitions_ds: DatasetRef = TRANSITIONS.parse()?;
        let durations_ds: DatasetRef = DURATIONS.parse()?;

        let names: BTreeSet<&str> = transitions
            .iter()
            .flat_map(|r| [r.from.as_str(), r.to.as_str()])
            .chain(durations.iter().map(|r| r.stage.as_str()))
            .collect();
        let stages = stage_order(names);
        let mut builder = ChainModel::builder(&stages)?;
        let mut from_rows_flag = false;
        for r in transitions {
            let bad = |reason: String| SimulateError::BadMartRow {
                dataset: transitions_ds.clone(),
                context: r.context.clone(),
                stage: r.from.clone(),
                reason,
            };
            if !r.probability.is_finite() || r.probability < 0.0 {
                return Err(bad(format!(
                    "probability {} to `{}` is not a probability",
                    r.probability, r.to
                )));
            }
            builder
                .add_transition(&r.context, &r.from, &r.to, r.probability)
                .map_err(|e| bad(e.to_string()))?;
            builder.add_weight(&r.context, r.count);
            from_rows_flag |= r.low_confidence && r.context.trim() == "*";
        }
        for r in durations {
            let Some(q) = &r.quantiles else {
                continue;
            };
            builder
                .add_durations(&r.context, &r.stage, q)
                .map_err(|e| SimulateError::BadMartRow {
                    dataset: durations_ds.clone(),
                    context: r.context.clone(),
                    stage: r.stage.clone(),
                    reason: e.to_string(),
                })?;
        }
        builder.set_low_confidence(low_confidence.unwrap_or(from_rows_flag));
        let model = builder.build()?;
        let opaque = model.contexts().iter().filter(|c| c.opaque).count();
        if opaque > 0 {
            tracing::warn!(
                workspace = workspace.as_str(),
                contexts = opaque,
                "context keys that are not factor=level pairs: deals fall back to other contexts"
            );
        }
        Ok(model)
    }
}

async fn read_transitions(session: &SqlSession, ds: &DatasetRef) -> Result<Vec<TransitionRow>> {
    let sql = format!(
        "SELECT context_key, from_stage, to_stage, probability, count, low_confidence \
         FROM {ds} WHERE from_stage IS NOT NULL AND to_stage IS NOT NULL"
    );
    let mut out = Vec::new();
    for batch in collect(session, &sql).await? {
        let context = strings(&batch, ds, "context_key")?;
        let from = strings(&batch, ds, "from_stage")?;
        let to = strings(&batch, ds, "to_stage")?;
        let probability = floats(&batch, ds, "probability")?;
        let count = floats(&batch, ds, "count")?;
        let low = booleans(&batch, ds, "low_confidence")?;
        for i in 0..batch.num_rows() {
            out.push(TransitionRow {
                context: if context.is_valid(i) {
                    context.value(i).to_string()
                } else {
                    "*".to_string()
                },
                from: from.value(i).to_string(),
                to: to.value(i).to_string(),
                probability: if probability.is_valid(i) {
                    probability.value(i)
                } else {
                    f64::NAN
                },
                count: if count.is_valid(i) {
                    count.value(i)
                } else {
                    0.0
                },
                low_confidence: low.is_valid(i) && low.value(i),
            });
        }
    }
    Ok(out)
}

async fn read_durations(session: &SqlSession, ds: &DatasetRef) -> Result<Vec<DurationRow>> {
    let sql = format!("SELECT stage, context_key, quantiles FROM {ds} WHERE stage IS NOT NULL");
    let mut out = Vec::new();
    for batch in collect(session, &sql).await? {
        let stage = strings(&batch, ds, "stage")?;
        let context = strings(&batch, ds, "context_key")?;
        let quantiles = float_lists(&batch, ds, "quantiles")?;
        for (i, q) in quantiles.into_iter().enumerate() {
            out.push(DurationRow {
                context: if context.is_valid(i) {
                    context.value(i).to_string()
                } else {
                    "*".to_string()
                },
                stage: stage.value(i).to_string(),
                quantiles: q.filter(|q| !q.is_empty()),
            });
        }
    }
    Ok(out)
}
