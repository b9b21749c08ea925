//! Running a job for one workspace: its stages in pipeline order, each retried with backoff,
//! the whole under the job's timeout, recorded in `ops.job_runs`, a failure alerted.
//!
//! ```text
//! sync → land → models (+checks) → checks → mining → simulation → scoring → alerts → report → exports
//! ```
//!
//! This file is the orchestration (retries, timeout, cancellation, recording); the stages are
//! in [`super::stages`] (data: sync to scoring) and [`super::outputs`] (alerts, reports,
//! exports).
//!
//! Every stage commits whole Delta versions, so a run stopped anywhere (failure, timeout,
//! shutdown, interrupt, kill) leaves every table at its last committed version, and a re-run
//! is safe. A failed stage ends the run: the stages after it are recorded as skipped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use super::config::{Job, pipeline_of};
use super::outputs::{deliver, failure_alert};
use super::runlog::{self, JobRun, RunStatus, StageRun, Trigger};
use super::schedule::format_duration;
use super::stages::run_stage;
use crate::alerts::Alert;
use crate::lake::{Lake, WorkspaceId};
use crate::project::{Pipeline, Project};
use crate::scoring::ScoreReport;

/// What to run a job for.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub workspace: WorkspaceId,
    pub trigger: Trigger,
    /// The schedule occurrence the run is for.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Backfill: the time the stages read the data as of (sync and landing are skipped: they
    /// read the sources as they are now).
    pub as_of: Option<DateTime<Utc>>,
    /// The lease holder running it.
    pub holder: String,
    /// Set to `true` to stop after the current stage (the scheduler's graceful shutdown).
    pub cancel: Option<watch::Receiver<bool>>,
    /// Set to `true` to stop now (SIGTERM to `run-job`): the stage in progress is abandoned
    /// and recorded as cancelled. What it had not committed is never visible (Delta commits
    /// are whole), so every table stays at its last committed version.
    pub interrupt: Option<watch::Receiver<bool>>,
}

impl RunRequest {
    /// A manual run of `workspace`, now.
    pub fn manual(workspace: WorkspaceId, holder: impl Into<String>) -> Self {
        Self {
            workspace,
            trigger: Trigger::Manual,
            scheduled_for: None,
            as_of: None,
            holder: holder.into(),
            cancel: None,
            interrupt: None,
        }
    }
}

/// A finished run and whether it was recorded.
#[derive(Debug)]
pub struct Finished {
    pub run: JobRun,
    /// The version of `ops.job_runs` the run was appended as, or why it could not be.
    pub recorded: Result<Option<i64>, String>,
    /// Alerts raised by the run (delivered when the pipeline declares channels).
    pub alerts: usize,
    /// What the run found, for a one-screen summary.
    pub summary: RunSummary,
}

/// What a run found beyond rows per stage: failed checks, alerts, the forecast headline, the
/// reports it wrote and the exports it made.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Checks that did not pass: `dataset.check [severity] status`.
    pub failed_checks: Vec<String>,
    /// Checks evaluated (by the models' gate and the checks stage).
    pub checks: usize,
    /// Titles of the alerts raised, in order.
    pub alerts: Vec<String>,
    pub forecast: Option<ForecastHeadline>,
    /// HTML reports written.
    pub reports: Vec<PathBuf>,
    /// Per export target: `target (warehouse): n datasets, m rows`.
    pub exports: Vec<String>,
}

/// The workspace's closed-won revenue over its open pipeline (current trajectory, the whole
/// horizon).
#[derive(Debug, Clone, Serialize)]
pub struct ForecastHeadline {
    pub open_deals: u64,
    pub open_amount: f64,
    /// Expected closed-won revenue (mean) and its quantiles, in USD.
    pub expected: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// The horizon, in calendar months.
    pub months: u32,
    pub runs: u32,
}

/// How a stage ended when it did not fail.
pub(super) struct Done {
    pub status: RunStatus,
    pub rows: u64,
    pub note: String,
}

impl Done {
    pub fn ok(rows: u64, note: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Succeeded,
            rows,
            note: note.into(),
        }
    }

    pub fn skipped(note: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Skipped,
            rows: 0,
            note: note.into(),
        }
    }
}

/// A failed stage: the message (naming what failed) and whether a retry may help.
pub(super) struct Fail {
    pub message: String,
    pub retryable: bool,
}

impl Fail {
    pub fn new(e: impl std::fmt::Display, retryable: bool) -> Self {
        Self {
            message: e.to_string(),
            retryable,
        }
    }
}

pub(super) type StageResult = Result<Done, Fail>;

/// What the stages of one run share.
pub(super) struct Ctx<'a> {
    pub project: &'a Project,
    pub lake: &'a Lake,
    pub job: &'a Job,
    pub pipeline: Option<&'a Pipeline>,
    pub workspace: &'a WorkspaceId,
    pub run_id: &'a str,
    pub as_of: Option<DateTime<Utc>>,
    /// Alerts raised and not delivered yet.
    pub pending: Vec<Alert>,
    pub score: Option<ScoreReport>,
    pub summary: RunSummary,
}

impl Ctx<'_> {
    /// Queues `alerts` for delivery and counts them in the summary.
    pub fn raise(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for a in alerts {
            self.summary.alerts.push(a.title.clone());
            self.pending.push(a);
        }
    }
}

/// Runs `job` for `request.workspace`, records the run in `ops.job_runs` and delivers its
/// alerts. `on_stage` sees each stage as it ends. Never fails: a failure is the run's status.
pub async fn run_job(
    project: &Project,
    lake: &Lake,
    job: &Job,
    request: RunRequest,
    on_stage: &mut (dyn FnMut(&StageRun) + Send),
) -> Finished {
    let run_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("job", job = %job.name, workspace = %request.workspace, run_id = %run_id, trigger = request.trigger.as_str());
    run_inner(project, lake, job, request, &run_id, on_stage)
        .instrument(span)
        .await
}

async fn run_inner(
    project: &Project,
    lake: &Lake,
    job: &Job,
    request: RunRequest,
    run_id: &str,
    on_stage: &mut (dyn FnMut(&StageRun) + Send),
) -> Finished {
    let started_at = Utc::now();
    tracing::info!("job started");
    let mut ctx = Ctx {
        project,
        lake,
        job,
        pipeline: pipeline_of(&project.pipelines, &job.file.pipeline),
        workspace: &request.workspace,
        run_id,
        as_of: request.as_of,
        pending: Vec::new(),
        score: None,
        summary: RunSummary::default(),
    };
    let names = job.stage_names();
    let mut stages: Vec<StageRun> = Vec::new();
    let mut signals = Signals {
        cancel: request.cancel.clone(),
        interrupt: request.interrupt.clone(),
    };
    let body = run_stages(&mut ctx, &names, &mut stages, &mut signals, on_stage);
    let mut status = match tokio::time::timeout(job.timeout, body).await {
        Ok(status) => status,
        Err(_) => {
            let message = format!(
                "timed out after {} (the job's timeout)",
                format_duration(job.timeout)
            );
            if let Some(name) = names.get(stages.len()) {
                stages.push(StageRun {
                    stage: name.to_string(),
                    status: RunStatus::Failed,
                    rows: 0,
                    attempts: 1,
                    seconds: 0.0,
                    note: String::new(),
                    error: Some(message),
                });
                on_stage(&stages[stages.len() - 1]);
            }
            RunStatus::TimedOut
        }
    };
    for name in names.iter().skip(stages.len()) {
        let note = match status {
            RunStatus::Cancelled if signals.interrupted() => "not run: the run was interrupted",
            RunStatus::Cancelled => "not run: the scheduler is shutting down",
            _ => "not run: an earlier stage failed",
        };
        stages.push(StageRun {
            stage: name.to_string(),
            status: RunStatus::Skipped,
            rows: 0,
            attempts: 0,
            seconds: 0.0,
            note: note.into(),
            error: None,
        });
    }
    if status == RunStatus::Succeeded && stages.iter().any(|s| s.status == RunStatus::Failed) {
        status = RunStatus::Failed;
    }
    let error = stages
        .iter()
        .find(|s| matches!(s.status, RunStatus::Failed | RunStatus::Cancelled))
        .map(|s| {
            format!(
                "stage {}: {}",
                s.stage,
                s.error.as_deref().unwrap_or("failed")
            )
        });
    let run = JobRun {
        run_id: run_id.to_string(),
        job: job.name.clone(),
        workspace: request.workspace.to_string(),
        trigger: request.trigger,
        scheduled_for: request.scheduled_for.or(request.as_of),
        started_at,
        ended_at: Utc::now(),
        status,
        stages,
        error,
        holder: request.holder.clone(),
    };
    if matches!(run.status, RunStatus::Failed | RunStatus::TimedOut) && job.file.alerts.on_failure {
        ctx.raise([failure_alert(job, &run)]);
    }
    deliver(&mut ctx).await;
    match run.status {
        RunStatus::Succeeded => {
            tracing::info!(rows = run.rows(), seconds = run.seconds(), "job succeeded")
        }
        s => {
            tracing::error!(status = %s, error = run.error.as_deref().unwrap_or(""), "job did not succeed")
        }
    }
    let recorded = runlog::record(lake, std::slice::from_ref(&run))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "recording the run in ops.job_runs failed");
            e.to_string()
        });
    Finished {
        run,
        recorded,
        alerts: ctx.summary.alerts.len(),
        summary: ctx.summary,
    }
}

/// The run's stop signals.
struct Signals {
    cancel: Option<watch::Receiver<bool>>,
    interrupt: Option<watch::Receiver<bool>>,
}

impl Signals {
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| *c.borrow()) || self.interrupted()
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|c| *c.borrow())
    }
}

/// Resolves when `rx` turns true; never when there is none or its sender is gone.
async fn turned_on(rx: &mut Option<watch::Receiver<bool>>) {
    match rx {
        Some(rx) => {
            if rx.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

async fn run_stages(
    ctx: &mut Ctx<'_>,
    names: &[&'static str],
    stages: &mut Vec<StageRun>,
    signals: &mut Signals,
    on_stage: &mut (dyn FnMut(&StageRun) + Send),
) -> RunStatus {
    let retries = ctx.job.retries.clone();
    for name in names {
        if signals.cancelled() {
            return RunStatus::Cancelled;
        }
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let span = tracing::info_span!("stage", stage = name, attempt);
            let result = tokio::select! {
                r = run_stage(ctx, name).instrument(span) => Some(r),
                _ = turned_on(&mut signals.interrupt) => None,
            };
            match result {
                Some(Err(f)) if f.retryable && attempt < retries.attempts => {
                    let wait = retries.delay(attempt);
                    tracing::warn!(stage = name, attempt, error = %f.message, wait_ms = wait.as_millis() as u64, "stage failed; retrying");
                    if !sleep_unless_cancelled(wait, signals).await {
                        break Some(Err(f));
                    }
                }
                other => break other,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let stage = match result {
            Some(Ok(done)) => StageRun {
                stage: name.to_string(),
                status: done.status,
                rows: done.rows,
                attempts: attempt,
                seconds,
                note: done.note,
                error: None,
            },
            Some(Err(f)) => StageRun {
                stage: name.to_string(),
                status: RunStatus::Failed,
                rows: 0,
                attempts: attempt,
                seconds,
                note: String::new(),
                error: Some(f.message),
            },
            None => StageRun {
                stage: name.to_string(),
                status: RunStatus::Cancelled,
                rows: 0,
                attempts: attempt,
                seconds,
                note: String::new(),
                error: Some(
                    "interrupted during the stage; what it had not committed was abandoned".into(),
                ),
            },
        };
        tracing::info!(stage = name, status = %stage.status, rows = stage.rows, attempts = stage.attempts, seconds, "stage ended");
        let end = match stage.status {
            RunStatus::Failed => Some(RunStatus::Failed),
            RunStatus::Cancelled => Some(RunStatus::Cancelled),
            _ => None,
        };
        stages.push(stage);
        on_stage(&stages[stages.len() - 1]);
        if let Some(end) = end {
            return end;
        }
    }
    RunStatus::Succeeded
}

/// Sleeps `wait`; `false` when cancelled or interrupted meanwhile.
async fn sleep_unless_cancelled(wait: Duration, signals: &mut Signals) -> bool {
    if signals.cancelled() {
        return false;
    }
    let Signals { cancel, interrupt } = signals;
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = turned_on(cancel) => false,
        _ = turned_on(interrupt) => false,
    }
}
