//! The output stages of a run: delivering the alerts raised so far, writing the HTML
//! reports, and exporting to the configured warehouses; and the alert a failed run raises.

use chrono::Utc;

use super::config::{ExportsStage, Job, ReportStage};
use super::runlog::{JobRun, RunStatus};
use super::runner::{Ctx, Done, Fail, StageResult};
use crate::alerts::{Alert, AlertsConfig, Route};
use crate::quality::Severity;

pub(super) async fn alerts_stage(ctx: &mut Ctx<'_>) -> Done {
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

pub(super) async fn report(ctx: &mut Ctx<'_>, cfg: &ReportStage) -> StageResult {
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
    ctx.summary.reports.push(path.clone());
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
                ctx.summary.reports.push(path.clone());
                note.push_str(&format!("; digest {}", path.display()));
            }
            None => note.push_str("; no digest (it needs the scoring stage)"),
        }
    }
    Ok(Done::ok(0, note))
}

/// Exports the workspace's rows to the pipeline's `[exports.NAME]` targets (those the stage
/// names, else all), one target after the other, through the same entry point as
/// `revlake export`. A target that fails fails the stage with the exporter's message; the
/// targets before it stay exported (each records its datasets in `ops.exports`).
pub(super) async fn exports(ctx: &mut Ctx<'_>, cfg: &ExportsStage) -> StageResult {
    use crate::export::{ExportOptions, Status};
    let configured = ctx
        .pipeline
        .map(|p| &p.file.exports)
        .filter(|e| !e.is_empty());
    let Some(configured) = configured else {
        return Ok(Done::skipped(format!(
            "no exports configured: pipeline {} has no [exports.NAME] section",
            ctx.pipeline
                .map_or(ctx.job.file.pipeline.as_str(), |p| p.name.as_str())
        )));
    };
    let mut targets = Vec::new();
    for name in &cfg.targets {
        match configured.get(name) {
            Some(config) => targets.push((name.clone(), config)),
            None => {
                return Err(Fail::new(
                    format!(
                        "stages.exports.targets: the pipeline has no export `{name}` (exports: {})",
                        configured.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    false,
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = configured.iter().map(|(n, c)| (n.clone(), c)).collect();
    }
    let mut rows = 0;
    let mut notes = Vec::new();
    for (name, config) in targets {
        let options = ExportOptions {
            warehouse: config.kind().to_string(),
            target: Some(name.clone()),
            workspace: Some(ctx.workspace.clone()),
            ..ExportOptions::default()
        };
        let run = crate::export::run_export(ctx.lake, ctx.project, &options)
            .await
            .map_err(|e| {
                let retryable = !e.is_user_error()
                    && matches!(
                        e,
                        crate::export::ExportError::Http { .. }
                            | crate::export::ExportError::Lake(_)
                    );
                Fail::new(format!("export {name} ({}): {e}", config.kind()), retryable)
            })?;
        if let Some(e) = &run.error {
            return Err(Fail::new(
                format!(
                    "export {name} ({}): {e} (export {}, see ops.exports)",
                    config.kind(),
                    run.export_id
                ),
                false,
            ));
        }
        let count = |s: Status| run.outcomes.iter().filter(|o| o.status == s).count();
        let target_rows: u64 = run
            .outcomes
            .iter()
            .filter(|o| o.status == Status::Succeeded)
            .map(|o| o.rows)
            .sum();
        rows += target_rows;
        let line = format!(
            "{name} ({}): {} datasets loaded, {} unchanged, {target_rows} rows",
            config.kind(),
            count(Status::Succeeded),
            count(Status::Skipped)
        );
        ctx.summary.exports.push(line.clone());
        notes.push(line);
    }
    Ok(Done::ok(rows, notes.join("; ")))
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
pub(super) async fn deliver(ctx: &mut Ctx<'_>) -> (usize, usize) {
    let alerts = std::mem::take(&mut ctx.pending);
    if alerts.is_empty() {
        return (0, 0);
    }
    let Some(config) = alerts_config(ctx) else {
        return (0, 0);
    };
    let deliveries = crate::alerts::deliver_and_record(ctx.lake, &config, &alerts).await;
    let failed = deliveries.iter().filter(|d| d.status == "failed").count();
    (deliveries.len(), failed)
}

/// The alert of a failed run: one per job and workspace (repeated failures update one
/// incident).
pub(super) fn failure_alert(job: &Job, run: &JobRun) -> Alert {
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
