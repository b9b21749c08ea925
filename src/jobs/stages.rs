//! The data stages of a run: sync, land, models (with their checks), checks, mining,
//! simulation and scoring; [`run_stage`] picks a stage by name. The output stages (alerts,
//! report, exports) are in [`super::outputs`].

use std::sync::Arc;

use super::config::{
    ChecksStage, ExportsStage, LandStage, ModelsStage, ReportStage, ScoringStage, SimulationStage,
    SyncStage,
};
use super::outputs::{alerts_stage, exports, report};
use super::runner::{Ctx, Done, Fail, ForecastHeadline, StageResult};
use crate::lake::{AsOf, DatasetRef};
use crate::quality::{CheckOptions, QualityGate, Status};
use crate::sql::models::{DatasetGate, ModelDag, RunOptions, run_selected};

pub(super) async fn run_stage(ctx: &mut Ctx<'_>, name: &str) -> StageResult {
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
        "exports" => {
            exports(
                ctx,
                stages.exports.as_ref().unwrap_or(&ExportsStage::default()),
            )
            .await
        }
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
                ctx.raise([crate::alerts::sync_failed_alert(
                    ctx.workspace.as_str(),
                    &connection.name,
                    "(all streams)",
                    "",
                    &e.to_string(),
                )]);
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
                        ctx.raise([crate::alerts::sync_failed_alert(
                            ctx.workspace.as_str(),
                            &o.connection,
                            &o.stream,
                            &o.dataset,
                            e,
                        )]);
                        failures.push(format!("{}/{}: {e}", o.connection, o.stream));
                    }
                }
            }
            Err(e) => {
                ctx.raise([crate::alerts::sync_failed_alert(
                    ctx.workspace.as_str(),
                    &connection.name,
                    "(all streams)",
                    "",
                    &e.to_string(),
                )]);
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
            record_checks(ctx, &checks);
            ctx.raise(crate::alerts::quality_alerts(&checks));
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
    record_checks(ctx, &run);
    ctx.raise(crate::alerts::quality_alerts(&run));
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

/// Counts the checks of `run` and names those that did not pass in the run's summary.
fn record_checks(ctx: &mut Ctx<'_>, run: &crate::quality::CheckRun) {
    ctx.summary.checks += run.results().count();
    ctx.summary.failed_checks.extend(
        run.results()
            .filter(|r| r.status != Status::Pass)
            .map(|r| format!("{}.{} [{}] {}", r.dataset, r.check, r.severity, r.status)),
    );
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
    let workspace_row = pipeline.result.rows.iter().find(|r| {
        r.dimension == Dimension::Workspace
            && r.view == View::CurrentTrajectory
            && r.period.kind == PeriodKind::All
    });
    let headline = match workspace_row {
        Some(r) => {
            ctx.summary.forecast = Some(ForecastHeadline {
                open_deals: r.open_deals,
                open_amount: r.open_amount,
                expected: r.revenue.mean,
                p10: r.revenue.p10,
                p50: r.revenue.p50,
                p90: r.revenue.p90,
                months: cfg.months,
                runs: cfg.runs,
            });
            format!(
                "{} open deals: closed-won revenue p10 {:.0} / p50 {:.0} / p90 {:.0} USD",
                r.open_deals, r.revenue.p10, r.revenue.p50, r.revenue.p90
            )
        }
        None => format!("{} deals forecast", forecast.deals.len()),
    };
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
    ctx.raise(alerts);
    let rows = report.scores.len() as u64;
    let method = match &report.method {
        crate::scoring::Method::Model { version } => format!("model version {version}"),
        crate::scoring::Method::Rules { .. } => "rules".to_string(),
    };
    let note = format!("{rows} open deals scored by {method}; {new} new insight alerts");
    ctx.score = Some(report);
    Ok(Done::ok(rows, note))
}
