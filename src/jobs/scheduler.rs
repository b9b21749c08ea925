//! The scheduler: every scheduled job for each of its workspaces, run at its cron times until
//! shut down.
//!
//! - No overlap: a tick that finds the previous run of the same job and workspace still going
//!   is skipped (and counted); across processes and machines the job's lease decides, and a
//!   run the lease refused is recorded in `ops.job_runs` as `skipped`, naming the holder.
//! - Missed runs: on start, the occurrences since the last recorded run (`ops.job_runs`) are
//!   skipped or caught up once, as each job's `missed` says.
//! - Shutdown: no new run starts; runs in progress stop after their current stage (each stage
//!   commits whole Delta versions) and are recorded as cancelled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Result;
use super::config::Job;
use super::lease::{Acquired, Leases};
use super::metrics::Metrics;
use super::runlog::{self, JobRun, RunStatus, StageRun, Trigger};
use super::runner::{Finished, RunRequest, run_job};
use super::schedule::{MissedPolicy, Schedule, missed_runs};
use crate::lake::{Lake, WorkspaceId};
use crate::project::Project;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This process's lease holder id.
    pub holder: String,
    /// Lease time beyond a job's timeout (a run never outlives its lease).
    pub lease_margin: Duration,
    /// Only these jobs (every job with a schedule when empty).
    pub jobs: Vec<String>,
    /// These workspaces instead of each job's own.
    pub workspaces: Option<Vec<WorkspaceId>>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            holder: super::lease::holder_id(),
            lease_margin: Duration::from_secs(60),
            jobs: Vec::new(),
            workspaces: None,
        }
    }
}

/// What a scheduler did before it shut down.
#[derive(Debug, Default)]
pub struct SchedulerSummary {
    pub runs: Vec<JobRun>,
    /// Ticks skipped because the previous run was still going.
    pub overlaps_skipped: u64,
    /// Runs not started because another process held the lease.
    pub lease_refused: u64,
    /// Missed occurrences skipped on start (policy `skip`).
    pub missed_skipped: u64,
}

/// A run under the job's lease, or who holds it.
#[derive(Debug)]
pub enum LeasedRun {
    Ran(Box<Finished>),
    Refused {
        holder: String,
        expires_at: DateTime<Utc>,
    },
}

/// The lease refusals a scheduler has recorded: while another process holds a job's lease, a
/// run refused on every tick (of a one-second schedule, say) writes one `ops.job_runs` row per
/// holder, not one per tick. A run that gets the lease forgets the refusal.
#[derive(Debug, Default)]
pub struct RefusalMemo(std::sync::Mutex<HashMap<(String, String), String>>);

impl RefusalMemo {
    /// Whether `holder` refusing `job` for `workspace` is news (and remembers it).
    pub fn first(&self, job: &str, workspace: &str, holder: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = (job.to_string(), workspace.to_string());
        if seen.get(&key).is_some_and(|h| h == holder) {
            return false;
        }
        seen.insert(key, holder.to_string());
        true
    }

    /// Forgets the refusals of `job` for `workspace` (it got the lease).
    pub fn clear(&self, job: &str, workspace: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&(job.to_string(), workspace.to_string()));
    }
}

/// Runs `job` for `request.workspace` if its lease is free, holding the lease for the job's
/// timeout plus its `lease_margin` (else `margin`), then releasing it. A refusal is recorded in
/// `ops.job_runs`; with a `memo`, only the first of a holder's streak.
pub async fn run_leased(
    project: &Project,
    lake: &Lake,
    job: &Job,
    request: RunRequest,
    margin: Duration,
    memo: Option<&RefusalMemo>,
    on_stage: &mut (dyn FnMut(&StageRun) + Send),
) -> Result<LeasedRun> {
    let leases = Leases::for_lake(lake)?;
    let ttl = job
        .timeout
        .saturating_add(job.lease_margin.unwrap_or(margin));
    let lease = match leases
        .acquire(
            &job.name,
            &request.workspace,
            &request.holder,
            ttl,
            Utc::now(),
        )
        .await?
    {
        Acquired::Held(l) => {
            if let Some(m) = memo {
                m.clear(&job.name, request.workspace.as_str());
            }
            l
        }
        Acquired::Refused { holder, expires_at } => {
            if memo.is_none_or(|m| m.first(&job.name, request.workspace.as_str(), &holder)) {
                record_refused(lake, job, &request, &holder, expires_at).await;
            }
            return Ok(LeasedRun::Refused { holder, expires_at });
        }
    };
    let finished = run_job(project, lake, job, request, on_stage).await;
    if let Err(e) = leases.release(&lease, Utc::now()).await {
        tracing::warn!(job = %job.name, error = %e, "releasing the lease failed; it expires by itself");
    }
    Ok(LeasedRun::Ran(Box::new(finished)))
}

/// Records a run that did not start because `holder` holds the lease: status `skipped`, no
/// stages, the holder named in the error. Best effort: a failure is logged.
async fn record_refused(
    lake: &Lake,
    job: &Job,
    request: &RunRequest,
    holder: &str,
    expires_at: DateTime<Utc>,
) {
    let now = Utc::now();
    let run = JobRun {
        run_id: uuid::Uuid::new_v4().to_string(),
        job: job.name.clone(),
        workspace: request.workspace.to_string(),
        trigger: request.trigger,
        scheduled_for: request.scheduled_for.or(request.as_of),
        started_at: now,
        ended_at: now,
        status: RunStatus::Skipped,
        stages: Vec::new(),
        error: Some(format!(
            "not run: the job's lease is held by {holder} until {}",
            expires_at.to_rfc3339()
        )),
        holder: request.holder.clone(),
    };
    tracing::info!(job = %job.name, workspace = %request.workspace, holder, %expires_at, "lease held elsewhere: not run");
    if let Err(e) = runlog::record(lake, std::slice::from_ref(&run)).await {
        tracing::warn!(job = %job.name, error = %e, "recording the refused run in ops.job_runs failed");
    }
}

/// The (job, workspace) pairs a scheduler runs.
pub fn entries(
    project: &Project,
    options: &SchedulerOptions,
) -> Vec<(Arc<Job>, WorkspaceId, Schedule)> {
    let mut out = Vec::new();
    for job in project.jobs.values() {
        if !options.jobs.is_empty() && !options.jobs.contains(&job.name) {
            continue;
        }
        let Some(schedule) = &job.schedule else {
            continue;
        };
        let job = Arc::new(job.clone());
        let workspaces = options
            .workspaces
            .clone()
            .unwrap_or_else(|| job.default_workspaces(&project.pipelines));
        for ws in workspaces {
            out.push((job.clone(), ws, schedule.clone()));
        }
    }
    out
}

struct Entry {
    job: Arc<Job>,
    workspace: WorkspaceId,
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    running: Arc<AtomicBool>,
}

/// Clears an entry's running flag when its task ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

enum TaskEnd {
    Ran(Box<JobRun>),
    Refused,
    Error,
}

/// Runs the scheduler until `shutdown` turns true, then waits for the runs in progress to
/// stop after their current stage.
pub async fn run(
    project: Arc<Project>,
    lake: Lake,
    options: SchedulerOptions,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SchedulerSummary> {
    let mut summary = SchedulerSummary::default();
    let mut entries: Vec<Entry> = entries(&project, &options)
        .into_iter()
        .map(|(job, workspace, schedule)| Entry {
            job,
            workspace,
            schedule,
            next: None,
            running: Arc::new(AtomicBool::new(false)),
        })
        .collect();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let memo = Arc::new(RefusalMemo::default());
    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<TaskEnd>, e: &Entry, trigger: Trigger, at: DateTime<Utc>| {
        e.running.store(true, Ordering::SeqCst);
        let guard = Running(e.running.clone());
        let (project, lake, job, metrics, memo) = (
            project.clone(),
            lake.clone(),
            e.job.clone(),
            metrics.clone(),
            memo.clone(),
        );
        let request = RunRequest {
            workspace: e.workspace.clone(),
            trigger,
            scheduled_for: Some(at),
            as_of: None,
            holder: options.holder.clone(),
            cancel: Some(cancel_rx.clone()),
            interrupt: None,
        };
        let margin = options.lease_margin;
        tasks.spawn(async move {
            let _guard = guard;
            let (name, ws) = (job.name.clone(), request.workspace.to_string());
            metrics.started(&name, &ws);
            let result =
                run_leased(&project, &lake, &job, request, margin, Some(&memo), &mut |_| {}).await;
            match result {
                Ok(LeasedRun::Ran(f)) => {
                    metrics.finished(&f.run);
                    TaskEnd::Ran(Box::new(f.run))
                }
                Ok(LeasedRun::Refused { holder, expires_at }) => {
                    metrics.finished_without_run(&name, &ws);
                    metrics.lease_refused(&name, &ws);
                    tracing::info!(job = %name, workspace = %ws, holder, %expires_at, "lease held elsewhere: not run here");
                    TaskEnd::Refused
                }
                Err(e) => {
                    metrics.finished_without_run(&name, &ws);
                    tracing::error!(job = %name, workspace = %ws, error = %e, "the run could not start");
                    TaskEnd::Error
                }
            }
        });
    };

    // Missed runs since the last recorded one.
    let last = match runlog::last_runs(&lake).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "reading ops.job_runs failed: no missed run is caught up");
            Default::default()
        }
    };
    let now = Utc::now();
    for e in &mut entries {
        let key = (e.job.name.clone(), e.workspace.to_string());
        if let Some(m) = missed_runs(&e.schedule, last.get(&key).copied(), now) {
            match e.job.file.missed {
                MissedPolicy::Skip => {
                    summary.missed_skipped += m.count as u64;
                    tracing::info!(job = %e.job.name, workspace = %e.workspace, missed = m.count, "missed runs skipped (missed = \"skip\")");
                }
                MissedPolicy::CatchUpOnce => {
                    tracing::info!(job = %e.job.name, workspace = %e.workspace, missed = m.count, latest = %m.latest, "catching up once");
                    spawn(&mut tasks, e, Trigger::CatchUp, m.latest);
                }
            }
        }
        e.next = e.schedule.next_after(now);
        tracing::info!(job = %e.job.name, workspace = %e.workspace, schedule = e.schedule.text(), timezone = e.schedule.timezone(), next = ?e.next, "scheduled");
    }

    loop {
        if *shutdown.borrow() {
            break;
        }
        let earliest = entries.iter().filter_map(|e| e.next).min();
        let wait = earliest
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                collect(&mut summary, done);
                continue;
            }
        }
        let now = Utc::now();
        for e in &mut entries {
            let Some(due) = e.next.filter(|t| *t <= now) else {
                continue;
            };
            if e.running.load(Ordering::SeqCst) {
                summary.overlaps_skipped += 1;
                metrics.overlap_skipped(&e.job.name, e.workspace.as_str());
                tracing::warn!(job = %e.job.name, workspace = %e.workspace, scheduled_for = %due, "previous run still going: this occurrence is skipped");
            } else {
                spawn(&mut tasks, e, Trigger::Schedule, due);
            }
            e.next = e.schedule.next_after(now.max(due));
        }
    }
    tracing::info!(
        running = tasks.len(),
        "shutting down: runs in progress stop after their current stage"
    );
    let _ = cancel_tx.send(true);
    while let Some(done) = tasks.join_next().await {
        collect(&mut summary, done);
    }
    Ok(summary)
}

fn collect(
    summary: &mut SchedulerSummary,
    done: std::result::Result<TaskEnd, tokio::task::JoinError>,
) {
    match done {
        Ok(TaskEnd::Ran(run)) => summary.runs.push(*run),
        Ok(TaskEnd::Refused) => summary.lease_refused += 1,
        Ok(TaskEnd::Error) => {}
        Err(e) => tracing::error!(error = %e, "a job task panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::RefusalMemo;

    #[test]
    fn a_refusal_is_news_once_per_holder_until_the_lease_is_had() {
        let memo = RefusalMemo::default();
        assert!(memo.first("daily", "demo", "a"));
        assert!(!memo.first("daily", "demo", "a"));
        // another workspace, another job: their own streaks
        assert!(memo.first("daily", "acme", "a"));
        assert!(memo.first("hourly", "demo", "a"));
        // a new holder is news
        assert!(memo.first("daily", "demo", "b"));
        assert!(!memo.first("daily", "demo", "b"));
        // after a run got the lease, the next refusal is news again
        memo.clear("daily", "demo");
        assert!(memo.first("daily", "demo", "b"));
    }
}
