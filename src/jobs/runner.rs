//! Running a job for one workspace: its stages in pipeline order, each retried with backoff,
//! the whole under the job's timeout, recorded in `ops.job_runs`, a failure alerted.
//!
//! ```text
//! sync → land → models (+checks) → checks → mining → simulation → scoring → alerts → report → exports
//! ```
//!
//! Every stage commits whole Delta versions, so a run stopped anywhere (failure, timeout,
//! shutdown, kill) leaves every table at its last committed version, and a re-run is safe.
//! A failed stage ends the run: the stages after it are recorded as skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tracing::Instrument;

use super::config::{
    ChecksStage, Job, LandStage, ModelsStage, ReportStage, ScoringStage, SimulationStage,
    SyncStage, pipeline_of,
};
use super::runlog::{self, JobRun, RunStatus, StageRun, Trigger};
use super::schedule::format_duration;
use crate::alerts::{Alert, AlertsConfig, Route};
use crate::lake::{AsOf, DatasetRef, Lake, WorkspaceId};
use crate::project::{Pipeline, Project};
use crate::quality::{CheckOptions, QualityGate, Severity, Status};
use crate::scoring::ScoreReport;
use crate::sql::models::{DatasetGate, ModelDag, RunOptions, run_selected};

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
    /// Set to `true` to stop after the current stage (shutdown).
    pub cancel: Option<watch::Receiver<bool>>,
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
}

/// How a stage ended when it did not fail.
struct Done {
    status: RunStatus,
    rows: u64,
    note: String,
}

impl Done {
    fn ok(rows: u64, note: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Succeeded,
            rows,
            note: note.into(),
        }
    }

    fn skipped(note: impl Into<String>) -> Self {
        Self {
            status: RunStatus::Skipped,
            rows: 0,
            note: note.into(),
        }
    }
}

/// A failed stage: the message (naming what failed) and whether a retry may help.
struct Fail {
    message: String,
    retryable: bool,
}

impl Fail {
    fn new(e: impl std::fmt::Display, retryable: bool) -> Self {
        Self {
            message: e.to_string(),
            retryable,
        }
    }
}

type StageResult = Result<Done, Fail>;

/// What the stages of one run share.
struct Ctx<'a> {
    project: &'a Project,
    lake: &'a Lake,
    job: &'a Job,
    pipeline: Option<&'a Pipeline>,
    workspace: &'a WorkspaceId,
    run_id: &'a str,
    as_of: Option<DateTime<Utc>>,
    /// Alerts raised and not delivered yet.
    pending: Vec<Alert>,
    raised: usize,
    score: Option<ScoreReport>,
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
        raised: 0,
        score: None,
    };
    let names = job.stage_names();
    let mut stages: Vec<StageRun> = Vec::new();
    let mut cancel = request.cancel.clone();
    let body = run_stages(&mut ctx, &names, &mut stages, &mut cancel, on_stage);
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
        .find(|s| s.status == RunStatus::Failed)
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
        ctx.pending.push(failure_alert(job, &run));
        ctx.raised += 1;
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
        alerts: ctx.raised,
    }
}

async fn run_stages(
    ctx: &mut Ctx<'_>,
    names: &[&'static str],
    stages: &mut Vec<StageRun>,
    cancel: &mut Option<watch::Receiver<bool>>,
    on_stage: &mut (dyn FnMut(&StageRun) + Send),
) -> RunStatus {
    let retries = ctx.job.retries.clone();
    for name in names {
        if cancel.as_ref().is_some_and(|c| *c.borrow()) {
            return RunStatus::Cancelled;
        }
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let span = tracing::info_span!("stage", stage = name, attempt);
            let result = run_stage(ctx, name).instrument(span).await;
            match result {
                Err(f) if f.retryable && attempt < retries.attempts => {
                    let wait = retries.delay(attempt);
                    tracing::warn!(stage = name, attempt, error = %f.message, wait_ms = wait.as_millis() as u64, "stage failed; retrying");
                    if !sleep_unless_cancelled(wait, cancel).await {
                        break Err(f);
                    }
                }
                other => break other,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let stage = match result {
            Ok(done) => StageRun {
                stage: name.to_string(),
                status: done.status,
                rows: done.rows,
                attempts: attempt,
                seconds,
                note: done.note,
                error: None,
            },
            Err(f) => StageRun {
                stage: name.to_string(),
                status: RunStatus::Failed,
                rows: 0,
                attempts: attempt,
                seconds,
                note: String::new(),
                error: Some(f.message),
            },
        };
        tracing::info!(stage = name, status = %stage.status, rows = stage.rows, attempts = stage.attempts, seconds, "stage ended");
        let failed = stage.status == RunStatus::Failed;
        stages.push(stage);
        on_stage(&stages[stages.len() - 1]);
        if failed {
            return RunStatus::Failed;
        }
    }
    RunStatus::Succeeded
}

/// Sleeps `wait`; `false` when cancelled meanwhile.
async fn sleep_unless_cancelled(
    wait: Duration,
    cancel: &mut Option<watch::Receiver<bool>>,
) -> bool {
    match cancel {
        None => {
            tokio::time::sleep(wait).await;
            true
        }
        Some(rx) => {
            if *rx.borrow() {
                return false;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => true,
                _ = rx.changed() => !*rx.borrow(),
            }
        }
    }
}

async fn run_stage(ctx: &mut Ctx<'_>, name: &str) -> StageResult {
    let stages = ctx.job.file.stages.clone();
    match name {
        "sync" => sync(ctx, stages.sync.as_ref().unwrap_or(&SyncStage::default())).await,
        "land" => match stages.land.as_ref() {
            Some(l) => land(ctx, l).await,
            None => Ok(Done::skipped("not selected")),
        },
        "models" => {
            models(
                ctx,
                stages.models.as_ref().unwrap_or(&ModelsStage::default()),
            )
            .await
        }
        "checks" => match stages.checks.as_ref() {
            Some(c) => checks(ctx, c).await,
            None => Ok(Done::skipped("not selected")),
        },
        "mining" => mining(ctx).await,
        "simulation" => {
            simulation(
                ctx,
                stages
                    .simulation
                    .as_ref()
                    .unwrap_or(&SimulationStage::default()),
            )
            .await
        }
        "scoring" => {
            scoring(
                ctx,
                stages.scoring.as_ref().unwrap_or(&ScoringStage::default()),
            )
            .await
        }
        "alerts" => Ok(alerts_stage(ctx).await),
        "report" => {
            report(
                ctx,
                stages.report.as_ref().unwrap_or(&ReportStage::default()),
            )
            .await
        }
        "exports" => Ok(Done::skipped(
            "exports are not part of this build yet: nothing exported",
        )),
        other => Err(Fail::new(format!("unknown stage `{other}`"), false)),
    }
}

async fn sync(ctx: &mut Ctx<'_>, cfg: &SyncStage) -> StageResult {
    use crate::sources::registry;
    use crate::sources::sync::{SyncOptions, sync_source};
    if ctx.as_of.is_some() {
        return Ok(Done::skipped(
            "backfill: sources are read as they are now, not synced",
        ));
    }
    let Some(pipeline) = ctx.pipeline else {
        return Ok(Done::skipped("no pipeline: nothing to sync"));
    };
    let connections: Vec<_> = pipeline
        .file
        .connections
        .values()
        .filter(|c| cfg.connections.is_empty() || cfg.connections.contains(&c.name))
        .collect();
    if connections.is_empty() {
        return Ok(Done::skipped(format!(
            "pipeline {} has no connections",
            pipeline.name
        )));
    }
    let mut rows = 0;
    let mut streams_done = 0;
    let mut failures = Vec::new();
    let mut not_here = Vec::new();
    for connection in connections {
        let source = match registry::open(connection) {
            Ok(s) => s,
            Err(e) => {
                ctx.pending.push(crate::alerts::sync_failed_alert(
                    ctx.workspace.as_str(),
                    &connection.name,
                    "(all streams)",
                    "",
                    &e.to_string(),
                ));
                ctx.raised += 1;
                failures.push(format!("{}: {e}", connection.name));
                continue;
            }
        };
        // The job's streams that this connection has (vendors name them differently).
        let streams: Vec<String> = if cfg.streams.is_empty() {
            Vec::new()
        } else {
            let have = source.streams();
            let chosen: Vec<String> = cfg
                .streams
                .iter()
                .filter(|w| have.iter().any(|s| s.name.eq_ignore_ascii_case(w)))
                .cloned()
                .collect();
            if chosen.is_empty() {
                not_here.push(connection.name.clone());
                continue;
            }
            chosen
        };
        let options = SyncOptions {
            full: cfg.full,
            streams,
            ..SyncOptions::default()
        };
        match sync_source(
            ctx.lake,
            source.as_ref(),
            connection,
            ctx.workspace,
            &options,
            &mut |_| {},
        )
        .await
        {
            Ok(outcomes) => {
                for o in &outcomes {
                    rows += o.records;
                    streams_done += 1;
                    if let Some(e) = &o.error {
                        ctx.pending.push(crate::alerts::sync_failed_alert(
                            ctx.workspace.as_str(),
                            &o.connection,
                            &o.stream,
                            &o.dataset,
                            e,
                        ));
                        ctx.raised += 1;
                        failures.push(format!("{}/{}: {e}", o.connection, o.stream));
                    }
                }
            }
            Err(e) => {
                ctx.pending.push(crate::alerts::sync_failed_alert(
                    ctx.workspace.as_str(),
                    &connection.name,
                    "(all streams)",
                    "",
                    &e.to_string(),
                ));
                ctx.raised += 1;
                failures.push(format!("{}: {e}", connection.name));
            }
        }
    }
    if !failures.is_empty() {
        return Err(Fail::new(
            format!(
                "{} stream(s) or connection(s) failed (see ops.sync_log): {}",
                failures.len(),
                failures.join("; ")
            ),
            true,
        ));
    }
    let mut note = format!("{streams_done} streams synced");
    if !not_here.is_empty() {
        note.push_str(&format!(
            " ({} has none of the job's streams)",
            not_here.join(", ")
        ));
    }
    Ok(Done::ok(rows, note))
}

async fn land(ctx: &mut Ctx<'_>, cfg: &LandStage) -> StageResult {
    if ctx.as_of.is_some() {
        return Ok(Done::skipped("backfill: export files are not landed again"));
    }
    let dir = ctx.project.root.join(&cfg.dir);
    let outcomes =
        crate::pipeline::land_exports(ctx.lake, &dir, ctx.workspace, ctx.run_id, &mut |_| {})
            .await
            .map_err(|e| {
                let user = matches!(&e, crate::pipeline::PipelineError::Input { .. });
                Fail::new(e, !user)
            })?;
    let rows = outcomes.iter().map(|o| o.rows).sum();
    Ok(Done::ok(
        rows,
        format!("{} files landed from {}", outcomes.len(), dir.display()),
    ))
}

async fn models(ctx: &mut Ctx<'_>, cfg: &ModelsStage) -> StageResult {
    let dag = ModelDag::load(ctx.project).map_err(|e| Fail::new(e, false))?;
    let gate = Arc::new(
        QualityGate::new(ctx.lake, ctx.project, Some(ctx.workspace))
            .await
            .map_err(|e| Fail::new(e, true))?,
    );
    let options = RunOptions {
        workspace: Some(ctx.workspace.clone()),
        select: cfg.select.clone(),
        full_refresh: cfg.full_refresh,
        gate: Some(gate.clone() as Arc<dyn DatasetGate>),
        ..RunOptions::default()
    };
    let result = run_selected(ctx.lake, ctx.project, &dag, &options, &mut |_| {}).await;
    let mut note = String::new();
    match gate.finish().await {
        Ok(checks) => {
            let total = checks.results().count();
            let failed = checks
                .results()
                .filter(|r| r.status != Status::Pass)
                .count();
            let alerts = crate::alerts::quality_alerts(&checks);
            ctx.raised += alerts.len();
            ctx.pending.extend(alerts);
            note = format!("{total} checks, {failed} failed");
        }
        Err(e) => tracing::error!(error = %e, "recording the checks failed"),
    }
    let runs = result.map_err(|e| {
        let retryable =
            !e.is_user_error() && !matches!(e, crate::sql::SqlError::ModelsFailed { .. });
        Fail::new(e, retryable)
    })?;
    let rows = runs.iter().map(|r| r.outcome.rows).sum();
    Ok(Done::ok(rows, format!("{} models; {note}", runs.len())))
}

async fn checks(ctx: &mut Ctx<'_>, cfg: &ChecksStage) -> StageResult {
    let options = CheckOptions {
        workspace: Some(ctx.workspace.clone()),
        select: cfg.select.clone(),
    };
    let run = crate::quality::run_checks(ctx.lake, ctx.project, &options)
        .await
        .map_err(|e| Fail::new(e, true))?;
    let alerts = crate::alerts::quality_alerts(&run);
    ctx.raised += alerts.len();
    ctx.pending.extend(alerts);
    let total = run.results().count() as u64;
    let failing: Vec<String> = run
        .results()
        .filter(|r| r.status != Status::Pass && r.severity >= cfg.fail_on)
        .map(|r| format!("{}.{} [{}]", r.dataset, r.check, r.severity))
        .collect();
    if !failing.is_empty() {
        return Err(Fail::new(
            format!(
                "{} check(s) at or above {} failed: {}",
                failing.len(),
                cfg.fail_on,
                failing.join(", ")
            ),
            false,
        ));
    }
    let failed = run.results().filter(|r| r.status != Status::Pass).count();
    Ok(Done::ok(
        total,
        format!("{total} checks, {failed} failed below {}", cfg.fail_on),
    ))
}

async fn mining(ctx: &mut Ctx<'_>) -> StageResult {
    use crate::mining::{self, MineOptions};
    let config = mining::project_config(ctx.project);
    let options = MineOptions {
        workspace: Some(ctx.workspace.clone()),
        as_of: ctx.as_of.map(AsOf::Timestamp),
        dry_run: false,
    };
    let outcome = mining::mine(ctx.lake, ctx.project, &config, &options)
        .await
        .map_err(|e| {
            let user = e.is_user_error();
            Fail::new(e, !user)
        })?;
    if outcome.results.iter().all(|m| m.summary.rows == 0) {
        return Ok(Done::skipped("no stage history to mine"));
    }
    let rows = outcome
        .results
        .iter()
        .map(|m| (m.matrix.len() + m.durations.len() + m.dfg.len()) as u64)
        .sum();
    let transitions: u64 = outcome.results.iter().map(|m| m.summary.transitions).sum();
    Ok(Done::ok(rows, format!("{transitions} transitions mined")))
}

async fn simulation(ctx: &mut Ctx<'_>, cfg: &SimulationStage) -> StageResult {
    use crate::simulate::forecast::DEAL_FORECASTS;
    use crate::simulate::pipeline::{
        Dimension, ForecastInputs, PIPELINE_FORECAST, PeriodKind, View, pipeline_forecast,
    };
    use crate::simulate::{ForecastOptions, SimConfig, forecast_workspace};
    let sim_err = |e: crate::simulate::SimulateError| {
        let user = e.is_user_error();
        Fail::new(e, !user)
    };
    let config = SimConfig {
        runs: cfg.runs,
        seed: cfg.seed,
        ..SimConfig::default()
    };
    let options = ForecastOptions {
        config: config.clone(),
        as_of: ctx.as_of,
        months: cfg.months,
        deal: None,
    };
    let forecast = forecast_workspace(ctx.lake, ctx.workspace, &options)
        .await
        .map_err(sim_err)?;
    let mut rows = 0;
    if !forecast.deals.is_empty() {
        let dataset: DatasetRef = DEAL_FORECASTS.parse().map_err(|e| Fail::new(e, false))?;
        rows += forecast
            .write(ctx.lake, ctx.project.schema(&dataset))
            .await
            .map_err(sim_err)?
            .rows;
    }
    let inputs = ForecastInputs::load(ctx.lake, ctx.workspace, ctx.as_of)
        .await
        .map_err(sim_err)?;
    let pipeline = pipeline_forecast(&inputs, cfg.months, &config)
        .await
        .map_err(sim_err)?;
    let dataset: DatasetRef = PIPELINE_FORECAST.parse().map_err(|e| Fail::new(e, false))?;
    rows += pipeline
        .write(ctx.lake, ctx.project.schema(&dataset))
        .await
        .map_err(sim_err)?
        .rows;
    let headline = pipeline
        .result
        .rows
        .iter()
        .find(|r| {
            r.dimension == Dimension::Workspace
                && r.view == View::CurrentTrajectory
                && r.period.kind == PeriodKind::All
        })
        .map(|r| {
            format!(
                "{} open deals: closed-won revenue p10 {:.0} / p50 {:.0} / p90 {:.0} USD",
                r.open_deals, r.revenue.p10, r.revenue.p50, r.revenue.p90
            )
        })
        .unwrap_or_else(|| format!("{} deals forecast", forecast.deals.len()));
    Ok(Done::ok(rows, headline))
}

async fn scoring(ctx: &mut Ctx<'_>, cfg: &ScoringStage) -> StageResult {
    use crate::scoring::{Schemas, ScoreOptions, score_workspace};
    let options = ScoreOptions {
        train: cfg.train,
        now: ctx.as_of,
        ..ScoreOptions::default()
    };
    let report = score_workspace(
        ctx.lake,
        &Schemas::from_project(ctx.project),
        ctx.workspace,
        &options,
    )
    .await
    .map_err(|e| {
        let user = e.is_user_error();
        Fail::new(e, !user)
    })?;
    let alerts = crate::alerts::scoring_alerts(ctx.workspace.as_str(), &report.new_alerts());
    let new = alerts.len();
    ctx.raised += new;
    ctx.pending.extend(alerts);
    let rows = report.scores.len() as u64;
    let method = match &report.method {
        crate::scoring::Method::Model { version } => format!("model version {version}"),
        crate::scoring::Method::Rules { .. } => "rules".to_string(),
    };
    let note = format!("{rows} open deals scored by {method}; {new} new insight alerts");
    ctx.score = Some(report);
    Ok(Done::ok(rows, note))
}

async fn alerts_stage(ctx: &mut Ctx<'_>) -> Done {
    let count = ctx.pending.len();
    let (deliveries, failed) = deliver(ctx).await;
    if count == 0 {
        return Done::ok(0, "no alerts raised");
    }
    if deliveries == 0 {
        return Done::ok(
            count as u64,
            format!("{count} alerts raised; no alert channel routes them"),
        );
    }
    Done::ok(
        count as u64,
        format!(
            "{count} alerts raised, {deliveries} deliveries, {failed} failed (ops.alert_deliveries)"
        ),
    )
}

async fn report(ctx: &mut Ctx<'_>, cfg: &ReportStage) -> StageResult {
    use crate::quality::report::{ReportFormat, build, render};
    let built = build(ctx.lake, Some(ctx.workspace))
        .await
        .map_err(|e| Fail::new(e, true))?;
    let html = render(&built, ReportFormat::Html).map_err(|e| Fail::new(e, false))?;
    let path = ctx
        .project
        .root
        .join(cfg.quality.replace("{workspace}", ctx.workspace.as_str()));
    write_file(&path, html.as_bytes())?;
    let mut note = format!(
        "quality report {} ({} checks, {} failed)",
        path.display(),
        built.checks,
        built.failed + built.errors
    );
    if let Some(digest) = &cfg.digest {
        let path = ctx
            .project
            .root
            .join(digest.replace("{workspace}", ctx.workspace.as_str()));
        match &ctx.score {
            Some(score) => {
                write_file(&path, score.digest_html().as_bytes())?;
                note.push_str(&format!("; digest {}", path.display()));
            }
            None => note.push_str("; no digest (it needs the scoring stage)"),
        }
    }
    Ok(Done::ok(0, note))
}

/// Writes beside the target and renames: a failed write leaves no half page.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Fail> {
    let fail =
        |e: &dyn std::fmt::Display| Fail::new(format!("writing {}: {e}", path.display()), false);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e))?;
    Ok(())
}

/// The alert config the job's alerts go through: the pipeline's channels, routed by the
/// job's `alerts.channels` when it names some, else by the pipeline's routes.
fn alerts_config(ctx: &Ctx<'_>) -> Option<AlertsConfig> {
    let pipeline = ctx.pipeline?;
    let mut config = pipeline.file.alerts.clone();
    if config.channels.is_empty() {
        return None;
    }
    if !ctx.job.file.alerts.channels.is_empty() {
        config.routes = vec![Route {
            severity: Severity::ALL.to_vec(),
            channels: ctx.job.file.alerts.channels.clone(),
            source: Vec::new(),
        }];
    }
    Some(config)
}

/// Delivers the pending alerts: (deliveries, failed deliveries).
async fn deliver(ctx: &mut Ctx<'_>) -> (usize, usize) {
    let alerts = std::mem::take(&mut ctx.pending);
    if alerts.is_empty() {
        return (0, 0);
    }
    let Some(config) = alerts_config(ctx) else {
        return (0, 0);
    };
    let deliveries = crate::alerts::deliver_and_record(ctx.lake, &config, &alerts).await;
    let failed = deliveries.iter().filter(|d| d.status != "sent").count();
    (deliveries.len(), failed)
}

/// The alert of a failed run: one per job and workspace (repeated failures update one
/// incident).
fn failure_alert(job: &Job, run: &JobRun) -> Alert {
    let stage = run
        .stages
        .iter()
        .find(|s| s.status == RunStatus::Failed)
        .map_or("?", |s| s.stage.as_str());
    let body = run
        .stages
        .iter()
        .map(|s| {
            format!(
                "- {} {} ({} rows){}",
                s.stage,
                s.status,
                s.rows,
                s.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Alert {
        id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("revlake:job:{}:{}", run.workspace, run.job).as_bytes(),
        )
        .to_string(),
        source: "job".into(),
        severity: job.file.alerts.severity,
        title: format!(
            "job {} {} for {} in stage {stage}",
            run.job, run.status, run.workspace
        ),
        body,
        workspace_id: run.workspace.clone(),
        dataset: None,
        details: serde_json::json!({
            "run_id": run.run_id,
            "job": run.job,
            "error": run.error,
            "stages": run.stages,
        }),
        raised_at: Utc::now(),
    }
}
