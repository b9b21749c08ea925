use std::process::ExitCode;

use anyhow::Result;
use revlake::lake::WorkspaceId;
use revlake::quality::{CheckOptions, CheckRun, Severity, Status, run_checks};

use super::Global;

/// Evaluate the checks declared in the schema files and record the results.
///
/// Checks sit beside each dataset's columns in `schemas/<layer>.<table>.toml` (`[[checks]]`, or
/// `checks = [...]` on a column): not_empty, not_null, unique, accepted_values, relationships,
/// range, regex, expression, null_rate_max, row_count_change_max, freshness, custom_sql and
/// unmapped_stages, each with a severity. The row-level checks of a dataset are one scan.
/// Every run appends to `ops.quality_results` (run id, dataset version, status, failing rows,
/// up to 20 failing keys). Exits 1 when a check at or above --fail-on failed or could not run.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake check\n  revlake check --select staging.deals --workspace acme\n  revlake check --select 'staging.*' --fail-on high\n  revlake report quality --format html --output quality.html"
)]
pub struct CheckArgs {
    /// Datasets to check: layer.table, table, or layer.* (repeat or separate by commas; default:
    /// every dataset with checks that is in the lake).
    #[arg(long, short = 's', value_name = "DATASET")]
    select: Vec<String>,
    /// Check only this workspace's rows (default: every workspace, results per workspace).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// The lowest severity whose failure makes the exit code non-zero.
    #[arg(long, default_value = "critical", value_parser = ["critical", "high", "medium", "low"])]
    fail_on: String,
    /// Print every check, not only the failing ones.
    #[arg(long)]
    all: bool,
}

pub async fn run(global: &Global, args: CheckArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let options = CheckOptions {
        workspace: args
            .workspace
            .as_deref()
            .map(WorkspaceId::new)
            .transpose()?,
        select: args.select.clone(),
    };
    let run = run_checks(&lake, &project, &options).await?;
    send_alerts(&lake, &project, &run).await;
    for d in &run.missing {
        println!("{d:<36} not in the lake yet: not checked");
    }
    for report in &run.reports {
        let failed = report
            .results
            .iter()
            .filter(|r| r.status != Status::Pass)
            .count();
        println!(
            "{:<36} version {:<4} {:>3} checks {:>3} failed  {} scans {:>7.2}s",
            report.dataset.to_string(),
            report.version,
            report.results.len(),
            failed,
            report.scans,
            report.elapsed.as_secs_f64()
        );
        for r in report
            .results
            .iter()
            .filter(|r| args.all || r.status != Status::Pass)
        {
            println!(
                "  {:<6} {:<9} {:<44} [{}] {}",
                r.status,
                r.severity,
                r.check,
                r.workspace_id,
                if r.message.is_empty() {
                    r.threshold.clone()
                } else {
                    r.message.clone()
                }
            );
        }
    }
    let total = run.results().count();
    let failed = run.results().filter(|r| r.status != Status::Pass).count();
    println!(
        "{total} checks, {failed} failed or errored; run {} recorded in ops.quality_results{}",
        run.run_id,
        run.recorded_version
            .map(|v| format!(" (version {v})"))
            .unwrap_or_default()
    );
    let fail_on: Severity = args.fail_on.parse().map_err(anyhow::Error::msg)?;
    Ok(if run.failed_at(fail_on) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the failed checks of a model run's gate.
pub fn print_failures(run: &CheckRun, indent: &str) {
    let total = run.results().count();
    if total == 0 {
        return;
    }
    let failing: Vec<_> = run.results().filter(|r| r.status != Status::Pass).collect();
    println!(
        "{indent}checks: {total} evaluated, {} failed or errored (run {}, ops.quality_results)",
        failing.len(),
        run.run_id
    );
    for r in failing {
        println!(
            "{indent}  {:<6} {:<9} {}.{} [{}] {}",
            r.status, r.severity, r.dataset, r.check, r.workspace_id, r.message
        );
    }
}

/// Routes the failures of `run` to the default pipeline's alert channels (when it declares
/// any) and prints what was delivered; delivery problems never fail the command.
pub async fn send_alerts(
    lake: &revlake::lake::Lake,
    project: &revlake::project::Project,
    run: &CheckRun,
) {
    route(lake, project, revlake::alerts::quality_alerts(run)).await;
}

/// Sends `alerts` through the default pipeline's channels, if it declares any, recording the
/// deliveries in ops.alert_deliveries.
pub async fn route(
    lake: &revlake::lake::Lake,
    project: &revlake::project::Project,
    alerts: Vec<revlake::alerts::Alert>,
) {
    let Some(config) = project.default_pipeline().map(|p| &p.file.alerts) else {
        return;
    };
    if config.channels.is_empty() || alerts.is_empty() {
        return;
    }
    let deliveries = revlake::alerts::deliver_and_record(lake, config, &alerts).await;
    let failed = deliveries.iter().filter(|d| d.status == "failed").count();
    if !deliveries.is_empty() {
        println!(
            "alerts: {} raised, {} deliveries, {failed} failed (ops.alert_deliveries)",
            alerts.len(),
            deliveries.len()
        );
    }
}

/// The checks after a stage: runs those of the datasets the stage wrote, prints the failures,
/// routes the alerts, and says whether a critical check failed (the command then exits 1:
/// what reads those datasets should not run).
pub async fn after_stage(
    lake: &revlake::lake::Lake,
    project: &revlake::project::Project,
    written: &[revlake::lake::DatasetRef],
    workspace: Option<&WorkspaceId>,
) -> Result<bool> {
    let Some(run) = revlake::quality::check_written(lake, project, written, workspace).await?
    else {
        return Ok(false);
    };
    print_failures(&run, "");
    send_alerts(lake, project, &run).await;
    Ok(run.failed_at(Severity::Critical))
}

/// `code`, or exit code 1 when a critical check failed.
pub fn exit_after(blocked: bool) -> ExitCode {
    if blocked {
        eprintln!("a critical check failed: what reads those datasets should not run (see above)");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
