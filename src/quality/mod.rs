//! Data quality: checks declared next to each dataset's schema, evaluated as DataFusion
//! queries, recorded in `ops.quality_results`, gating the stages downstream, reported as
//! HTML / JSON / JUnit / Markdown and routed as alerts.
//!
//! - [`spec`]: the check declarations (`[[checks]]` in `schemas/*.toml`).
//! - [`eval`]: one dataset's checks, one aggregate scan for the row-level kinds.
//! - [`run_checks`]: `revlake check`: every selected dataset, recorded as one run.
//! - [`QualityGate`]: the same checks after each model of `revlake run` commits; a critical
//!   failure blocks what reads the dataset.
//! - [`report`]: the quality reports over the recorded runs.

pub mod eval;
pub mod report;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use chrono::{DateTime, Utc};

pub use eval::{CheckResult, DatasetReport, SAMPLE_SIZE, Scope, Status, check_dataset};
pub use spec::{Check, CheckKind, Severity, checks_of};

use crate::lake::{DatasetRef, Lake, LakeError, WorkspaceId, WriteMode};
use crate::project::{DatasetSchema, Project, ProjectError};
use crate::sql::models::DatasetGate;
use crate::sql::{SessionOptions, SqlError, SqlSession};

/// Where every check run appends its results.
pub const RESULTS_DATASET: &str = "ops.quality_results";

const RESULTS_SCHEMA: &str = include_str!("../../schemas/ops.quality_results.toml");

/// Errors of the quality stage.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("{dataset}: check {check} could not run: {message}")]
    Check {
        dataset: String,
        check: String,
        message: String,
    },
    #[error("{selector}: {reason}")]
    Select { selector: String, reason: String },
    #[error("building the quality results: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("writing the report to {path}: {reason}")]
    Report { path: String, reason: String },
}

pub type Result<T, E = QualityError> = std::result::Result<T, E>;

/// The datasets with declared checks, and their checks (validated).
pub fn project_checks(
    project: &Project,
) -> Result<BTreeMap<DatasetRef, (DatasetSchema, Vec<Check>)>> {
    let mut out = BTreeMap::new();
    for (dataset, schema) in &project.schemas {
        let checks = checks_of(schema)?;
        if !checks.is_empty() {
            out.insert(dataset.clone(), (schema.clone(), checks));
        }
    }
    Ok(out)
}

/// What `revlake check` does.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Only these workspaces' rows (all when `None`).
    pub workspace: Option<WorkspaceId>,
    /// Dataset selectors: `staging.deals`, `deals`, `staging.*`; all datasets with checks when
    /// empty.
    pub select: Vec<String>,
}

/// One recorded check run.
#[derive(Debug, Clone, Default)]
pub struct CheckRun {
    pub run_id: String,
    pub reports: Vec<DatasetReport>,
    /// Datasets with checks that are not in the lake (not checked).
    pub missing: Vec<DatasetRef>,
    /// The version of `ops.quality_results` the run committed.
    pub recorded_version: Option<i64>,
}

impl CheckRun {
    pub fn results(&self) -> impl Iterator<Item = &CheckResult> {
        self.reports.iter().flat_map(|r| r.results.iter())
    }

    /// Whether a check of at least `severity` failed or errored.
    pub fn failed_at(&self, severity: Severity) -> bool {
        self.results()
            .any(|r| r.status != Status::Pass && r.severity >= severity)
    }
}

/// Evaluates the checks of the selected datasets and appends the results to
/// `ops.quality_results` as one commit.
pub async fn run_checks(
    lake: &Lake,
    project: &Project,
    options: &CheckOptions,
) -> Result<CheckRun> {
    let all = project_checks(project)?;
    let selected = select(&all, &options.select)?;
    let session = SqlSession::open(
        lake,
        &SessionOptions {
            workspace: options.workspace.clone(),
            as_of: None,
            seeds: Some(project.seeds_dir()),
        },
    )
    .await?;
    let present = session.tables();
    let (present_sel, missing): (Vec<DatasetRef>, Vec<DatasetRef>) =
        selected.into_iter().partition(|d| present.contains(d));
    if !options.select.is_empty() && !missing.is_empty() {
        return Err(QualityError::Select {
            selector: missing
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            reason: "not in the lake yet (run the stage that writes it first)".into(),
        });
    }
    let scope = match &options.workspace {
        Some(w) => Scope::Workspace(w.clone()),
        None => Scope::All {
            known: known_workspaces(lake, &present_sel).await,
        },
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut reports = Vec::new();
    for dataset in &present_sel {
        let (schema, checks) = &all[dataset];
        let report = check_dataset(lake, &session, schema, checks, &scope).await?;
        tracing::info!(
            dataset = %dataset,
            checks = checks.len(),
            failed = report.results.iter().filter(|r| r.status != Status::Pass).count(),
            scans = report.scans,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "checked"
        );
        reports.push(report);
    }
    let recorded_version = record(lake, &run_id, &reports).await?;
    Ok(CheckRun {
        run_id,
        reports,
        missing,
        recorded_version,
    })
}

/// The checks of the datasets a stage just wrote (a sync's raw tables, mining's or the
/// simulation's marts), recorded as one run; `None` when none of them declares checks.
pub async fn check_written(
    lake: &Lake,
    project: &Project,
    written: &[DatasetRef],
    workspace: Option<&WorkspaceId>,
) -> Result<Option<CheckRun>> {
    let all = project_checks(project)?;
    let mut select: Vec<String> = written
        .iter()
        .filter(|d| all.contains_key(d))
        .map(|d| d.to_string())
        .collect();
    select.sort();
    select.dedup();
    if select.is_empty() {
        return Ok(None);
    }
    let options = CheckOptions {
        workspace: workspace.cloned(),
        select,
    };
    run_checks(lake, project, &options).await.map(Some)
}

/// The selected datasets (those with checks), in name order.
fn select(
    all: &BTreeMap<DatasetRef, (DatasetSchema, Vec<Check>)>,
    selectors: &[String],
) -> Result<Vec<DatasetRef>> {
    if selectors.is_empty() {
        return Ok(all.keys().cloned().collect());
    }
    let mut out = BTreeSet::new();
    for part in selectors.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let matched: Vec<&DatasetRef> = all
            .keys()
            .filter(|d| {
                let full = d.to_string();
                full == part
                    || d.table == part
                    || part
                        .strip_suffix(".*")
                        .is_some_and(|layer| d.layer.as_str() == layer)
            })
            .collect();
        if matched.is_empty() {
            return Err(QualityError::Select {
                selector: part.to_string(),
                reason: format!(
                    "no dataset with checks matches; the datasets with checks are: {}",
                    all.keys()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        out.extend(matched.into_iter().cloned());
    }
    Ok(out.into_iter().collect())
}

/// The workspaces with rows in any of `datasets` (from the Delta logs; no data is read).
pub async fn known_workspaces(lake: &Lake, datasets: &[DatasetRef]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in datasets {
        if let Ok(info) = lake.info(d).await {
            out.extend(info.workspaces.into_keys());
        }
    }
    out.remove("(unpartitioned)");
    out
}

/// Appends `reports`' results to `ops.quality_results` (one commit); `None` when there were
/// no results.
pub async fn record(lake: &Lake, run_id: &str, reports: &[DatasetReport]) -> Result<Option<i64>> {
    let results: Vec<&CheckResult> = reports.iter().flat_map(|r| r.results.iter()).collect();
    if results.is_empty() {
        return Ok(None);
    }
    let dataset: DatasetRef = RESULTS_DATASET.parse()?;
    let schema = DatasetSchema::parse(
        dataset.clone(),
        RESULTS_SCHEMA,
        std::path::Path::new("schemas/ops.quality_results.toml"),
    )?;
    let batch = results_batch(run_id, Utc::now(), &results, reports)?;
    let outcome = lake
        .write(dataset)
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_commit_metadata("revlake.quality.run_id", run_id.into())
        .with_batches(batch.schema(), vec![batch])
        .await?;
    crate::telemetry::dataset_written(RESULTS_DATASET, outcome.version, outcome.rows);
    Ok(Some(outcome.version))
}

fn results_batch(
    run_id: &str,
    at: DateTime<Utc>,
    results: &[&CheckResult],
    reports: &[DatasetReport],
) -> Result<RecordBatch> {
    let scans: BTreeMap<&str, (usize, u128)> = reports
        .iter()
        .map(|r| {
            (
                r.results.first().map(|x| x.dataset.as_str()).unwrap_or(""),
                (r.scans, r.elapsed.as_millis()),
            )
        })
        .collect();
    let strs = |f: &dyn Fn(&CheckResult) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            results.iter().map(|r| f(r)).collect::<Vec<_>>(),
        ))
    };
    let mut sample = ListBuilder::new(StringBuilder::new());
    for r in results {
        for k in &r.sample {
            sample.values().append_value(k);
        }
        sample.append(true);
    }
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "workspace_id",
            strs(&|r| Some(r.workspace_id.clone())),
            false,
        ),
        ("run_id", strs(&|_| Some(run_id.to_string())), false),
        ("dataset", strs(&|r| Some(r.dataset.clone())), false),
        (
            "version",
            Arc::new(Int64Array::from_iter_values(
                results.iter().map(|r| r.version),
            )),
            false,
        ),
        ("check_name", strs(&|r| Some(r.check.clone())), false),
        ("kind", strs(&|r| Some(r.kind.to_string())), false),
        ("column_name", strs(&|r| r.column.clone()), true),
        ("severity", strs(&|r| Some(r.severity.to_string())), false),
        ("status", strs(&|r| Some(r.status.to_string())), false),
        (
            "failing_rows",
            Arc::new(Int64Array::from_iter_values(
                results.iter().map(|r| r.failing_rows as i64),
            )),
            false,
        ),
        (
            "total_rows",
            Arc::new(Int64Array::from_iter_values(
                results.iter().map(|r| r.total_rows as i64),
            )),
            false,
        ),
        (
            "observed",
            Arc::new(Float64Array::from(
                results
                    .iter()
                    .map(|r| r.observed.filter(|v| v.is_finite()))
                    .collect::<Vec<_>>(),
            )),
            true,
        ),
        ("threshold", strs(&|r| Some(r.threshold.clone())), true),
        ("message", strs(&|r| Some(r.message.clone())), true),
        ("sample", Arc::new(sample.finish()), true),
        (
            "scans",
            Arc::new(Int64Array::from_iter_values(results.iter().map(|r| {
                scans.get(r.dataset.as_str()).map_or(0, |s| s.0 as i64)
            }))),
            true,
        ),
        (
            "elapsed_ms",
            Arc::new(Int64Array::from_iter_values(results.iter().map(|r| {
                scans.get(r.dataset.as_str()).map_or(0, |s| s.1 as i64)
            }))),
            true,
        ),
        (
            "checked_at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    results.iter().map(|_| at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            false,
        ),
    ];
    let schema = arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(|(n, a, nullable)| {
                arrow::datatypes::Field::new(*n, a.data_type().clone(), *nullable)
            })
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a, _)| a).collect(),
    )?)
}

/// The checks of a model run: each model's dataset is checked once it commits, and the
/// stored inputs before the first model reads them; a failing critical check blocks what
/// reads the dataset. [`QualityGate::finish`] records every result as one run.
#[derive(Debug)]
pub struct QualityGate {
    lake: Lake,
    checks: BTreeMap<DatasetRef, (DatasetSchema, Vec<Check>)>,
    scope: Scope,
    run_id: String,
    reports: Mutex<Vec<DatasetReport>>,
}

impl QualityGate {
    pub async fn new(
        lake: &Lake,
        project: &Project,
        workspace: Option<&WorkspaceId>,
    ) -> Result<Self> {
        let checks = project_checks(project)?;
        let scope = match workspace {
            Some(w) => Scope::Workspace(w.clone()),
            None => Scope::All {
                known: known_workspaces(lake, &checks.keys().cloned().collect::<Vec<_>>()).await,
            },
        };
        Ok(Self {
            lake: lake.clone(),
            checks,
            scope,
            run_id: uuid::Uuid::new_v4().to_string(),
            reports: Mutex::new(Vec::new()),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Records the run's results in `ops.quality_results`, returning them.
    pub async fn finish(&self) -> Result<CheckRun> {
        let reports = std::mem::take(&mut *self.reports.lock().unwrap_or_else(|p| p.into_inner()));
        let recorded_version = record(&self.lake, &self.run_id, &reports).await?;
        Ok(CheckRun {
            run_id: self.run_id.clone(),
            reports,
            missing: Vec::new(),
            recorded_version,
        })
    }

    async fn gate(&self, session: &SqlSession, dataset: &DatasetRef) -> Option<String> {
        let (schema, checks) = self.checks.get(dataset)?;
        let has_critical = checks.iter().any(|c| c.severity == Severity::Critical);
        match check_dataset(&self.lake, session, schema, checks, &self.scope).await {
            Ok(report) => {
                let blocking: Vec<String> = report
                    .blocking()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} [{}] {}",
                            r.check,
                            r.workspace_id,
                            if r.message.is_empty() {
                                r.status.to_string()
                            } else {
                                r.message.clone()
                            }
                        )
                    })
                    .collect();
                self.reports
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(report);
                (!blocking.is_empty()).then(|| blocking.join("; "))
            }
            Err(e) => {
                tracing::error!(dataset = %dataset, error = %e, "checks could not run");
                has_critical.then(|| format!("its checks could not run: {e}"))
            }
        }
    }
}

impl DatasetGate for QualityGate {
    fn check<'a>(
        &'a self,
        session: &'a SqlSession,
        dataset: &'a DatasetRef,
    ) -> futures::future::BoxFuture<'a, Option<String>> {
        Box::pin(self.gate(session, dataset))
    }

    fn covers(&self, dataset: &DatasetRef) -> bool {
        self.checks.contains_key(dataset)
    }
}
