use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use revlake::jobs::lease::holder_id;
use revlake::jobs::metrics::Metrics;
use revlake::jobs::runlog::{HistoryQuery, history};
use revlake::jobs::schedule::{MAX_OCCURRENCES, format_duration, parse_duration};
use revlake::jobs::scheduler::{self, LeasedRun, SchedulerOptions, run_leased};
use revlake::jobs::{Finished, Job, JobRun, RunRequest, RunStatus, StageRun, Trigger};
use revlake::lake::{Lake, WorkspaceId};
use revlake::project::Project;

use super::{Global, progress};

/// List the jobs (`jobs/*.toml`) with their schedules and next run times.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake jobs\n  revlake jobs --json | jq '.[] | {name, next_run}'"
)]
pub struct JobsArgs {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// Run a job now: its stages in order, recorded in ops.job_runs.
///
/// The job's stages run in pipeline order (sync → land → models and their checks → checks →
/// mining → simulation → scoring → alerts → report → exports), each retried with backoff as
/// the job's [retries] says, all under its timeout. A failed stage ends the run; the run and
/// every stage (rows, attempts, error) are recorded in ops.job_runs and a failure is alerted
/// through the pipeline's channels. The job's lease for the workspace is held meanwhile: a
/// scheduler elsewhere does not start the same job, and a run refused because another process
/// holds it is recorded as skipped. SIGTERM or Ctrl-C stops the stage in progress at once (what
/// it had not committed is abandoned: every table stays at its last committed version) and
/// records the run as cancelled. Ends with a summary: rows per stage, failed checks, alerts,
/// the forecast headline, the reports written, the exports. Exits 1 when a run did not succeed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake run-job daily\n  revlake run-job hourly_opportunities --workspace acme\n  revlake run-job risk_scores --all-workspaces"
)]
pub struct RunJobArgs {
    /// The job (`jobs/<NAME>.toml`).
    name: String,
    /// Run for this workspace (repeat; default: the job's workspaces, else its pipeline's).
    #[arg(long, value_name = "W", conflicts_with = "all_workspaces")]
    workspace: Vec<String>,
    /// Run for every workspace with data in the lake.
    #[arg(long)]
    all_workspaces: bool,
    /// Print the runs as JSON.
    #[arg(long)]
    json: bool,
}

/// Show past job runs from ops.job_runs, newest first.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake history\n  revlake history daily --stages\n  revlake history hourly_opportunities --workspace acme --limit 50 --json"
)]
pub struct HistoryArgs {
    /// Only this job.
    job: Option<String>,
    /// Only this workspace.
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Runs shown (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: usize,
    /// Show each run's stages (rows, attempts, note, error).
    #[arg(long)]
    stages: bool,
    #[arg(long)]
    json: bool,
}

/// Run the scheduler: every job with a schedule, for each of its workspaces, until SIGTERM
/// or Ctrl-C.
///
/// Runs of the same job and workspace never overlap: a tick that finds the previous run still
/// going is skipped, and the job's lease on the lake keeps a second scheduler (another machine)
/// from running it at the same time. On start, occurrences missed while no scheduler was up
/// are skipped or caught up once, as each job's `missed` says. On SIGTERM no new run starts;
/// runs in progress finish their current stage (whole Delta commits) and are recorded as
/// cancelled.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake schedule\n  revlake schedule --metrics-addr 127.0.0.1:9464\n  revlake schedule --job hourly_opportunities --job daily --workspace acme\n  curl -s 127.0.0.1:9464/metrics | grep revlake_job_runs_total"
)]
pub struct ScheduleArgs {
    /// Serve Prometheus metrics (GET /metrics) on this address.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Only this job (repeat; default: every job with a schedule).
    #[arg(long = "job", value_name = "NAME")]
    jobs: Vec<String>,
    /// Run the jobs for these workspaces instead of each job's own (repeat).
    #[arg(long, value_name = "W")]
    workspace: Vec<String>,
    /// Stop after this long, as on SIGTERM (smoke tests): `90s`, `10m`.
    #[arg(long, value_name = "DURATION")]
    run_for: Option<String>,
}

/// Run a job for each of its schedule's occurrences in a past window, reading the data as of
/// each occurrence.
///
/// Mining, simulation and scoring read the stored tables as of the occurrence's time; sync
/// and landing are skipped (sources can only be read as they are now). Each run is recorded
/// in ops.job_runs with trigger `backfill`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake backfill risk_scores --from 2025-06-01 --to 2025-06-30\n  revlake backfill executive_report --from 2025-04-01T00:00:00Z --to 2025-06-30 --workspace acme"
)]
pub struct BackfillArgs {
    /// The job.
    name: String,
    /// The window's start (RFC 3339 or YYYY-MM-DD, UTC midnight).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// The window's end (RFC 3339 or YYYY-MM-DD, end of that day).
    #[arg(long, value_name = "TIME")]
    to: String,
    /// The workspace (repeat; default: the job's).
    #[arg(long, value_name = "W")]
    workspace: Vec<String>,
    /// Refuse windows with more occurrences than this.
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_runs: usize,
}

fn job<'a>(project: &'a Project, name: &str) -> Result<&'a Job> {
    project.jobs.get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "no job `{name}` in {} (jobs: {})",
            project.root.join("jobs").display(),
            if project.jobs.is_empty() {
                "none".to_string()
            } else {
                project.jobs.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )
    })
}

fn workspaces_of(names: &[String]) -> Result<Vec<WorkspaceId>> {
    names
        .iter()
        .map(|w| WorkspaceId::new(w).map_err(anyhow::Error::from))
        .collect()
}

/// The workspaces with rows in the lake (from the Delta logs).
async fn lake_workspaces(lake: &Lake) -> Result<Vec<WorkspaceId>> {
    let datasets = lake.datasets().await?;
    let known: BTreeSet<String> = revlake::quality::known_workspaces(lake, &datasets).await;
    Ok(known
        .iter()
        .filter_map(|w| WorkspaceId::new(w).ok())
        .collect())
}

pub async fn list(global: &Global, args: JobsArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let now = Utc::now();
    let rows: Vec<serde_json::Value> = project
        .jobs
        .values()
        .map(|j| {
            let next = j.schedule.as_ref().and_then(|s| s.next_after(now));
            serde_json::json!({
                "name": j.name,
                "description": j.file.description,
                "pipeline": j.file.pipeline,
                "schedule": j.file.schedule,
                "timezone": j.file.timezone,
                "next_run": next.map(|t| t.to_rfc3339()),
                "next_run_local": next.zip(j.schedule.as_ref()).map(|(t, s)| s.local(t)),
                "stages": j.stage_names(),
                "workspaces": j.default_workspaces(&project.pipelines).iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                "missed": j.file.missed,
                "timeout": format_duration(j.timeout),
                "retries": j.retries.attempts,
            })
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if project.jobs.is_empty() {
        println!("no jobs in {}", project.root.join("jobs").display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<16} {:<18} {:<28} stages",
        "job", "schedule", "timezone", "next run"
    );
    for j in project.jobs.values() {
        let next = j
            .schedule
            .as_ref()
            .and_then(|s| s.next_after(now).map(|t| s.local(t)))
            .unwrap_or_else(|| "manual only".into());
        println!(
            "{:<24} {:<16} {:<18} {:<28} {}",
            j.name,
            j.file.schedule.as_deref().unwrap_or("-"),
            j.file.timezone,
            next,
            j.stage_names().join(" → ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_stage(indent: &str, s: &StageRun) {
    println!(
        "{indent}{:<11} {:<9} {:>10} rows {:>3} tries {:>7.1}s  {}",
        s.stage,
        s.status,
        s.rows,
        s.attempts,
        s.seconds,
        s.error.as_deref().unwrap_or(&s.note)
    );
}

/// `$1.23M`, `$45.6k`, `$789`.
fn usd(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("${:.2}M", x / 1e6)
    } else if a >= 1e3 {
        format!("${:.1}k", x / 1e3)
    } else {
        format!("${x:.0}")
    }
}

/// Up to `max` items, then how many more.
fn capped(items: &[String], max: usize, indent: &str) {
    for i in items.iter().take(max) {
        println!("{indent}{i}");
    }
    if items.len() > max {
        println!("{indent}… and {} more", items.len() - max);
    }
}

/// The one-screen summary of a run: rows per stage, failed checks, alerts raised, the
/// forecast headline, the reports written and the exports made.
pub(super) fn print_summary(f: &Finished) {
    let (run, sum) = (&f.run, &f.summary);
    println!(
        "\n── {} for {}: {} in {:.1}s ──",
        run.job,
        run.workspace,
        run.status,
        run.seconds()
    );
    let rows: Vec<String> = run
        .stages
        .iter()
        .map(|s| match s.status {
            RunStatus::Succeeded => format!("{} {}", s.stage, s.rows),
            other => format!("{} ({other})", s.stage),
        })
        .collect();
    println!("rows       {}", rows.join(" · "));
    println!(
        "checks     {} evaluated, {} did not pass",
        sum.checks,
        sum.failed_checks.len()
    );
    capped(&sum.failed_checks, 5, "             ");
    println!("alerts     {} raised", sum.alerts.len());
    capped(&sum.alerts, 5, "             ");
    match &sum.forecast {
        Some(h) => println!(
            "forecast   expected bookings {} (P10 {} – P90 {}) from {} open deals worth {}, {} months, {} runs",
            usd(h.expected),
            usd(h.p10),
            usd(h.p90),
            h.open_deals,
            usd(h.open_amount),
            h.months,
            h.runs
        ),
        None => println!("forecast   none (the run had no simulation stage, or it did not finish)"),
    }
    if sum.reports.is_empty() {
        println!("reports    none written");
    }
    for (i, r) in sum.reports.iter().enumerate() {
        println!(
            "{}{}",
            if i == 0 { "reports    " } else { "           " },
            r.display()
        );
    }
    let exports = run.stages.iter().find(|s| s.stage == "exports");
    match (sum.exports.is_empty(), exports) {
        (false, _) => {
            for (i, e) in sum.exports.iter().enumerate() {
                println!("{}{e}", if i == 0 { "exports    " } else { "           " });
            }
        }
        (true, Some(s)) => println!(
            "exports    {}",
            s.error.as_deref().unwrap_or(if s.note.is_empty() {
                s.status.as_str()
            } else {
                &s.note
            })
        ),
        (true, None) => println!("exports    not part of this job"),
    }
    if let Some(e) = &run.error {
        println!("error      {e}");
    }
}

/// A flag that turns true on SIGTERM or Ctrl-C, saying so in the log: the run in progress is
/// then interrupted and recorded as cancelled.
pub(super) fn interrupt_on_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = async {
                match signal(SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            let signal = tokio::select! {
                _ = term => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
            tracing::warn!(
                signal,
                "interrupted: the run in progress stops now and is recorded as cancelled"
            );
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::warn!(
                signal = "Ctrl-C",
                "interrupted: the run in progress stops now and is recorded as cancelled"
            );
        }
        let _ = tx.send(true);
    });
    rx
}

fn print_run_summary(run: &JobRun, alerts: usize) {
    println!(
        "{} {} for {}: {} in {:.1}s, {} rows; {} alerts raised; run {} (ops.job_runs)",
        run.job,
        run.trigger.as_str(),
        run.workspace,
        run.status,
        run.seconds(),
        run.rows(),
        alerts,
        run.run_id
    );
    if let Some(e) = &run.error {
        println!("  error: {e}");
    }
}

pub async fn run_job(global: &Global, args: RunJobArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let job = job(&project, &args.name)?.clone();
    let lake = global.lake(&project).await?;
    let workspaces = if args.all_workspaces {
        let mut all = lake_workspaces(&lake).await?;
        for w in job.default_workspaces(&project.pipelines) {
            if !all.contains(&w) {
                all.push(w);
            }
        }
        all
    } else if args.workspace.is_empty() {
        job.default_workspaces(&project.pipelines)
    } else {
        workspaces_of(&args.workspace)?
    };
    let holder = holder_id();
    let interrupt = interrupt_on_signal();
    let mut failed = 0;
    let mut runs = Vec::new();
    for ws in workspaces {
        if *interrupt.borrow() {
            failed += 1;
            eprintln!("{} for {ws}: not started (interrupted)", job.name);
            continue;
        }
        if !args.json {
            println!("{} for {ws}: {}", job.name, job.stage_names().join(" → "));
        }
        let spinner = progress::spinner(&format!("{} {ws}", job.name));
        let json = args.json;
        let outcome = run_leased(
            &project,
            &lake,
            &job,
            RunRequest {
                interrupt: Some(interrupt.clone()),
                ..RunRequest::manual(ws.clone(), holder.clone())
            },
            Duration::from_secs(60),
            None,
            &mut |s| {
                if !json {
                    spinner.suspend(|| print_stage("  ", s));
                }
            },
        )
        .await?;
        spinner.finish_and_clear();
        match outcome {
            LeasedRun::Ran(f) => {
                if f.run.status != RunStatus::Succeeded {
                    failed += 1;
                }
                if let Err(e) = &f.recorded {
                    eprintln!("warning: the run could not be recorded in ops.job_runs: {e}");
                }
                if !args.json {
                    print_run_summary(&f.run, f.alerts);
                    print_summary(&f);
                }
                runs.push(f.run);
            }
            LeasedRun::Refused { holder, expires_at } => {
                failed += 1;
                eprintln!(
                    "{} for {ws} is running elsewhere ({holder}, lease until {}): not started",
                    job.name,
                    expires_at.to_rfc3339()
                );
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn history_cmd(global: &Global, args: HistoryArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let runs = history(
        &lake,
        &HistoryQuery {
            job: args.job.clone(),
            workspace: args
                .workspace
                .as_deref()
                .map(WorkspaceId::new)
                .transpose()?,
            limit: args.limit,
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        println!("no job runs recorded in {} (ops.job_runs)", lake.url());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<20} {:<24} {:<12} {:<9} {:<10} {:>8} {:>10}  error",
        "started (UTC)", "ended (UTC)", "job", "workspace", "trigger", "status", "seconds", "rows"
    );
    for r in &runs {
        println!(
            "{:<20} {:<20} {:<24} {:<12} {:<9} {:<10} {:>8.1} {:>10}  {}",
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.ended_at.format("%Y-%m-%d %H:%M:%S"),
            r.job,
            r.workspace,
            r.trigger.as_str(),
            r.status,
            r.seconds(),
            r.rows(),
            r.error.as_deref().unwrap_or("")
        );
        if args.stages {
            for s in &r.stages {
                print_stage("    ", s);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn schedule(global: &Global, args: ScheduleArgs) -> Result<ExitCode> {
    let project = Arc::new(global.project()?);
    let lake = global.lake(&project).await?;
    let options = SchedulerOptions {
        jobs: args.jobs.clone(),
        workspaces: if args.workspace.is_empty() {
            None
        } else {
            Some(workspaces_of(&args.workspace)?)
        },
        ..SchedulerOptions::default()
    };
    for name in &options.jobs {
        job(&project, name)?;
    }
    let entries = scheduler::entries(&project, &options);
    if entries.is_empty() {
        bail!(
            "no scheduled job to run: add a `schedule` to a job in {}",
            project.root.join("jobs").display()
        );
    }
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = &args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening for metrics on {addr}"))?;
        let local = listener.local_addr()?;
        eprintln!("metrics: http://{local}/metrics");
        tokio::spawn(revlake::jobs::metrics::serve(
            listener,
            metrics.clone(),
            shutdown_rx.clone(),
        ));
    }
    let run_for = args
        .run_for
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let signals = shutdown_tx.clone();
    tokio::spawn(async move {
        wait_for_signal(run_for).await;
        let _ = signals.send(true);
    });
    let now = Utc::now();
    for (job, ws, s) in &entries {
        eprintln!(
            "scheduled {} for {ws}: `{}` {} (next {})",
            job.name,
            s.text(),
            s.timezone(),
            s.next_after(now)
                .map(|t| s.local(t))
                .unwrap_or_else(|| "never".into())
        );
    }
    let summary = scheduler::run(project.clone(), lake, options, metrics, shutdown_rx).await?;
    let _ = shutdown_tx.send(true);
    let failed = summary
        .runs
        .iter()
        .filter(|r| matches!(r.status, RunStatus::Failed | RunStatus::TimedOut))
        .count();
    eprintln!(
        "scheduler stopped: {} runs ({failed} failed), {} ticks skipped while a run was still going, {} runs held elsewhere, {} missed runs skipped",
        summary.runs.len(),
        summary.overlaps_skipped,
        summary.lease_refused,
        summary.missed_skipped
    );
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGTERM, SIGINT (Ctrl-C) or the end of `run_for`.
async fn wait_for_signal(run_for: Option<Duration>) {
    let timer = async {
        match run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = term => eprintln!("SIGTERM: stopping after the runs in progress finish their stage"),
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted: stopping after the runs in progress finish their stage"),
            _ = timer => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = timer => {}
        }
    }
}

fn parse_time(text: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("`{text}` is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))?;
    let t = if end_of_day {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    t.map(|t| t.and_utc())
        .ok_or_else(|| anyhow::anyhow!("`{text}` is not a valid date"))
}

pub async fn backfill(global: &Global, args: BackfillArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let job = job(&project, &args.name)?.clone();
    let (from, to) = (parse_time(&args.from, false)?, parse_time(&args.to, true)?);
    if from > to {
        bail!(
            "--from {} is after --to {}",
            from.to_rfc3339(),
            to.to_rfc3339()
        );
    }
    if to > Utc::now() {
        bail!(
            "--to {} is in the future: a backfill reruns past occurrences",
            to.to_rfc3339()
        );
    }
    let Some(schedule) = &job.schedule else {
        bail!(
            "job {} has no schedule: backfill runs a schedule's past occurrences (add `schedule` to {})",
            job.name,
            job.path.display()
        );
    };
    let limit = args.max_runs.min(MAX_OCCURRENCES);
    let Some(times) = schedule.occurrences(from, to, limit) else {
        bail!(
            "more than {limit} occurrences of `{}` between {} and {}: narrow the window or raise --max-runs",
            schedule.text(),
            from.to_rfc3339(),
            to.to_rfc3339()
        );
    };
    let lake = global.lake(&project).await?;
    let workspaces = if args.workspace.is_empty() {
        job.default_workspaces(&project.pipelines)
    } else {
        workspaces_of(&args.workspace)?
    };
    println!(
        "backfilling {}: {} occurrences × {} workspaces",
        job.name,
        times.len(),
        workspaces.len()
    );
    let holder = holder_id();
    let mut failed = 0;
    for ws in &workspaces {
        for t in &times {
            let request = RunRequest {
                workspace: ws.clone(),
                trigger: Trigger::Backfill,
                scheduled_for: Some(*t),
                as_of: Some(*t),
                holder: holder.clone(),
                cancel: None,
                interrupt: None,
            };
            match run_leased(
                &project,
                &lake,
                &job,
                request,
                Duration::from_secs(60),
                None,
                &mut |_| {},
            )
            .await?
            {
                LeasedRun::Ran(f) => {
                    if f.run.status != RunStatus::Succeeded {
                        failed += 1;
                    }
                    println!(
                        "  {} {ws}: {} ({} rows){}",
                        schedule.local(*t),
                        f.run.status,
                        f.run.rows(),
                        f.run
                            .error
                            .as_deref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                }
                LeasedRun::Refused { holder, .. } => {
                    failed += 1;
                    println!(
                        "  {} {ws}: not run, the job is running elsewhere ({holder})",
                        schedule.local(*t)
                    );
                }
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
