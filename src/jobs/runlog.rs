//! The run log, `ops.job_runs`: one row per job run and workspace, appended when the run
//! ends; `revlake history` and the scheduler's missed-run policy read it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Result;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::project::DatasetSchema;
use crate::sql::{SessionOptions, SqlError, SqlSession};

/// Where runs are recorded.
pub const RUNS_DATASET: &str = "ops.job_runs";

const RUNS_SCHEMA: &str = include_str!("../../schemas/ops.job_runs.toml");

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Manual,
    Schedule,
    CatchUp,
    Backfill,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Backfill => "backfill",
        }
    }
}

/// How a run or a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    /// A stage that did not run (not applicable, not configured, or after a failure).
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRun {
    pub stage: String,
    pub status: RunStatus,
    /// Rows the stage wrote (synced, landed, built, checked, scored).
    pub rows: u64,
    pub attempts: u32,
    pub seconds: f64,
    /// What it did, in a line (failed checks, forecast headline, report path, why skipped).
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// One run of a job for a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    pub run_id: String,
    pub job: String,
    pub workspace: String,
    pub trigger: Trigger,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub status: RunStatus,
    pub stages: Vec<StageRun>,
    pub error: Option<String>,
    pub holder: String,
}

impl JobRun {
    /// Rows of all stages.
    pub fn rows(&self) -> u64 {
        self.stages.iter().map(|s| s.rows).sum()
    }

    pub fn seconds(&self) -> f64 {
        (self.ended_at - self.started_at).num_milliseconds().max(0) as f64 / 1000.0
    }
}

fn schema() -> Result<DatasetSchema> {
    let dataset: DatasetRef = RUNS_DATASET.parse()?;
    Ok(DatasetSchema::parse(
        dataset,
        RUNS_SCHEMA,
        std::path::Path::new("schemas/ops.job_runs.toml"),
    )?)
}

/// Appends `runs` to `ops.job_runs` (one commit); returns the version.
pub async fn record(lake: &Lake, runs: &[JobRun]) -> Result<Option<i64>> {
    if runs.is_empty() {
        return Ok(None);
    }
    let schema = schema()?;
    let arrow_schema = schema.arrow_schema();
    let strs = |f: &dyn Fn(&JobRun) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(runs.iter().map(f).collect::<Vec<_>>()))
    };
    let times = |f: &dyn Fn(&JobRun) -> Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(
                runs.iter()
                    .map(|r| f(r).map(|t| t.timestamp_micros()))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    };
    let mut stages = Vec::with_capacity(runs.len());
    for r in runs {
        stages.push(serde_json::to_string(&r.stages).unwrap_or_else(|_| "[]".into()));
    }
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| Some(r.workspace.clone())),
        strs(&|r| Some(r.run_id.clone())),
        strs(&|r| Some(r.job.clone())),
        strs(&|r| Some(r.trigger.as_str().to_string())),
        times(&|r| r.scheduled_for),
        times(&|r| Some(r.started_at)),
        times(&|r| Some(r.ended_at)),
        strs(&|r| Some(r.status.as_str().to_string())),
        Arc::new(Int64Array::from_iter_values(
            runs.iter().map(|r| r.rows() as i64),
        )),
        Arc::new(StringArray::from(stages)),
        strs(&|r| r.error.clone()),
        strs(&|r| Some(r.holder.clone())),
    ];
    let batch = RecordBatch::try_new(arrow_schema.clone(), columns)?;
    let outcome = lake
        .write(schema.dataset.clone())
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_batches(arrow_schema, vec![batch])
        .await?;
    crate::telemetry::dataset_written(RUNS_DATASET, outcome.version, outcome.rows);
    Ok(Some(outcome.version))
}

/// What `revlake history` asks for.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub job: Option<String>,
    pub workspace: Option<WorkspaceId>,
    /// Newest first, at most this many (0: all).
    pub limit: usize,
}

/// The recorded runs, newest first; empty when nothing was recorded yet.
pub async fn history(lake: &Lake, query: &HistoryQuery) -> Result<Vec<JobRun>> {
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: query.workspace.clone(),
            ..SessionOptions::default()
        },
    )
    .await?;
    let dataset: DatasetRef = RUNS_DATASET.parse()?;
    if !session.tables().contains(&dataset) {
        return Ok(Vec::new());
    }
    let mut sql = format!(
        "SELECT workspace_id, run_id, job, \"trigger\", scheduled_for, started_at, ended_at, status, stages, error, holder FROM {RUNS_DATASET}"
    );
    if let Some(job) = &query.job {
        // Job names are letters, digits, `_` and `-` (validated at load); quotes are doubled
        // all the same.
        sql.push_str(&format!(" WHERE job = '{}'", job.replace('\'', "''")));
    }
    sql.push_str(" ORDER BY started_at DESC, run_id");
    if query.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", query.limit));
    }
    let batches = session
        .query(&sql)
        .await?
        .collect()
        .await
        .map_err(|e| SqlError::Execution {
            source: Box::new(e),
        })?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(runs_of(b)?);
    }
    Ok(out)
}

/// When each (job, workspace) last ran for a scheduled occurrence (or started, for runs
/// without one): the missed-run policy counts from there.
pub async fn last_runs(lake: &Lake) -> Result<BTreeMap<(String, String), DateTime<Utc>>> {
    let mut out: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
    for r in history(lake, &HistoryQuery::default()).await? {
        let t = r.scheduled_for.unwrap_or(r.started_at);
        let e = out.entry((r.job.clone(), r.workspace.clone())).or_insert(t);
        if t > *e {
            *e = t;
        }
    }
    Ok(out)
}

fn runs_of(batch: &RecordBatch) -> Result<Vec<JobRun>> {
    let text = |i: usize| -> Result<StringArray> {
        let a = arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
        Ok(a.as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .unwrap_or_else(|| StringArray::from(vec![None::<&str>; batch.num_rows()])))
    };
    let micros = |i: usize| -> Result<Int64Array> {
        let a = arrow::compute::cast(batch.column(i), &DataType::Int64)?;
        Ok(a.as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .unwrap_or_else(|| Int64Array::from(vec![None::<i64>; batch.num_rows()])))
    };
    let (ws, run_id, job, trigger) = (text(0)?, text(1)?, text(2)?, text(3)?);
    let (scheduled, started, ended) = (micros(4)?, micros(5)?, micros(6)?);
    let (status, stages, error, holder) = (text(7)?, text(8)?, text(9)?, text(10)?);
    let at = |a: &Int64Array, i: usize| -> Option<DateTime<Utc>> {
        (!a.is_null(i))
            .then(|| DateTime::from_timestamp_micros(a.value(i)))
            .flatten()
    };
    let s = |a: &StringArray, i: usize| -> String {
        if a.is_null(i) {
            String::new()
        } else {
            a.value(i).to_string()
        }
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let started_at = at(&started, i).unwrap_or_default();
        out.push(JobRun {
            run_id: s(&run_id, i),
            job: s(&job, i),
            workspace: s(&ws, i),
            trigger: serde_json::from_value(serde_json::Value::String(s(&trigger, i)))
                .unwrap_or(Trigger::Manual),
            scheduled_for: at(&scheduled, i),
            started_at,
            ended_at: at(&ended, i).unwrap_or(started_at),
            status: serde_json::from_value(serde_json::Value::String(s(&status, i)))
                .unwrap_or(RunStatus::Failed),
            stages: serde_json::from_str(&s(&stages, i)).unwrap_or_default(),
            error: (!error.is_null(i)).then(|| error.value(i).to_string()),
            holder: s(&holder, i),
        });
    }
    Ok(out)
}
