//! The in-process job table: work the API starts in the background (a connection's sync) runs
//! as a job that `GET /api/jobs/{id}` reports, scoped to the workspace that started it.
//!
//! ```text
//! handler ─start()─▶ queued ─(a slot of --concurrent-jobs)─▶ running ─▶ succeeded | failed
//! ```
//!
//! Jobs live in memory: a restarted server forgets them (what a sync did stays in
//! `ops.sync_log`). Finished jobs beyond [`KEPT_FINISHED`] are forgotten oldest first.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::keys::Principal;
use super::state::AppState;
use crate::lake::WorkspaceId;

/// Finished jobs kept for `GET /api/jobs/{id}`.
pub const KEPT_FINISHED: usize = 1_000;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A connection's sync (`POST /api/import/connect`, `POST /api/import/sync/{id}`).
    Sync,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a slot.
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    fn is_finished(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed)
    }
}

/// A job as `GET /api/jobs/{id}` answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: JobKind,
    /// What the job works on: the connection of a sync.
    pub target: String,
    pub status: JobStatus,
    /// RFC 3339, UTC.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    /// What the job did (a sync: its streams' outcomes), once finished.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why the job failed.
    pub error: Option<String>,
    #[serde(skip)]
    workspace: WorkspaceId,
}

/// What a job's work returns: a result, or a result and the reason it failed.
pub type JobOutcome = Result<Value, (Option<Value>, String)>;

/// The jobs of the server, with a bound on how many run at once.
pub struct JobTable {
    jobs: Mutex<HashMap<String, Job>>,
    slots: Arc<Semaphore>,
}

impl JobTable {
    /// A table running at most `concurrent` jobs at once.
    pub fn new(concurrent: usize) -> Arc<Self> {
        Arc::new(Self {
            jobs: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `work` for `workspace` and returns the job's id at once; the work runs on the
    /// runtime when a slot is free. A panic in the work fails the job.
    pub fn start<F>(
        self: &Arc<Self>,
        workspace: &WorkspaceId,
        kind: JobKind,
        target: &str,
        work: F,
    ) -> String
    where
        F: Future<Output = JobOutcome> + Send + 'static,
    {
        let id = format!("job_{}", uuid::Uuid::new_v4().simple());
        let job = Job {
            id: id.clone(),
            kind,
            target: target.to_string(),
            status: JobStatus::Queued,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            workspace: workspace.clone(),
        };
        {
            let mut jobs = self.lock();
            prune(&mut jobs);
            jobs.insert(id.clone(), job);
        }
        tracing::info!(job_id = %id, kind = ?kind, target, workspace = %workspace, "job queued");
        let table = self.clone();
        let job_id = id.clone();
        tokio::spawn(async move {
            let Ok(_slot) = table.slots.clone().acquire_owned().await else {
                table.finish(&job_id, Err((None, "the server is stopping".into())));
                return;
            };
            table.update(&job_id, |j| {
                j.status = JobStatus::Running;
                j.started_at = Some(Utc::now());
            });
            let outcome = match tokio::spawn(work).await {
                Ok(outcome) => outcome,
                Err(e) => Err((None, format!("the job stopped unexpectedly: {e}"))),
            };
            table.finish(&job_id, outcome);
        });
        id
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job)) {
        if let Some(job) = self.lock().get_mut(id) {
            f(job);
        }
    }

    fn finish(&self, id: &str, outcome: JobOutcome) {
        self.update(id, |j| {
            j.finished_at = Some(Utc::now());
            match outcome {
                Ok(result) => {
                    j.status = JobStatus::Succeeded;
                    j.result = Some(result);
                }
                Err((result, error)) => {
                    tracing::warn!(job_id = %j.id, target = %j.target, error, "job failed");
                    j.status = JobStatus::Failed;
                    j.result = result;
                    j.error = Some(error);
                }
            }
        });
        tracing::info!(job_id = id, "job finished");
    }

    /// The job `id` if `workspace` started it (another workspace's job is not found).
    pub fn get(&self, workspace: &WorkspaceId, id: &str) -> Option<Job> {
        self.lock()
            .get(id)
            .filter(|j| &j.workspace == workspace)
            .cloned()
    }

    /// A queued or running job of `workspace` working on `target`.
    pub fn active(&self, workspace: &WorkspaceId, kind: JobKind, target: &str) -> Option<Job> {
        self.lock()
            .values()
            .find(|j| {
                &j.workspace == workspace
                    && j.kind == kind
                    && j.target == target
                    && !j.status.is_finished()
            })
            .cloned()
    }
}

/// Forgets the oldest finished jobs above [`KEPT_FINISHED`].
fn prune(jobs: &mut HashMap<String, Job>) {
    let mut finished: Vec<(DateTime<Utc>, String)> = jobs
        .values()
        .filter(|j| j.status.is_finished())
        .map(|j| (j.finished_at.unwrap_or(j.created_at), j.id.clone()))
        .collect();
    if finished.len() < KEPT_FINISHED {
        return;
    }
    finished.sort();
    for (_, id) in finished.iter().take(finished.len() + 1 - KEPT_FINISHED) {
        jobs.remove(id);
    }
}

/// A background job of the key's workspace.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = "imports",
    params(("id" = String, Path, description = "The job id (job_...), as a sync request answered it")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 404, description = "No such job in this workspace", body = ErrorBody),
    )
)]
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<ApiJson<Job>, ApiError> {
    state
        .jobs
        .get(&principal.workspace, &id)
        .map(ApiJson)
        .ok_or_else(|| ApiError::not_found("job", &id))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn wait(table: &JobTable, ws: &WorkspaceId, id: &str) -> Job {
        for _ in 0..200 {
            let job = table.get(ws, id).unwrap();
            if job.status.is_finished() {
                return job;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("job {id} did not finish");
    }

    #[tokio::test]
    async fn a_job_runs_and_is_seen_only_by_its_workspace() {
        let table = JobTable::new(1);
        let acme = WorkspaceId::new("acme").unwrap();
        let other = WorkspaceId::new("globex").unwrap();
        let id = table.start(&acme, JobKind::Sync, "crm", async {
            Ok(serde_json::json!({"records": 3}))
        });
        let job = wait(&table, &acme, &id).await;
        assert_eq!(job.status, JobStatus::Succeeded);
        assert_eq!(job.result.unwrap()["records"], 3);
        assert!(job.started_at.is_some() && job.finished_at.is_some());
        assert!(table.get(&other, &id).is_none());
    }

    #[tokio::test]
    async fn a_failing_or_panicking_job_is_failed_with_its_reason() {
        let table = JobTable::new(2);
        let ws = WorkspaceId::new("acme").unwrap();
        let failed = table.start(&ws, JobKind::Sync, "crm", async {
            Err((None, "stream deals: 401".to_string()))
        });
        let panicked = table.start(&ws, JobKind::Sync, "hs", async {
            if true {
                panic!("boom");
            }
            Ok(Value::Null)
        });
        let f = wait(&table, &ws, &failed).await;
        assert_eq!(
            (f.status, f.error.as_deref()),
            (JobStatus::Failed, Some("stream deals: 401"))
        );
        let p = wait(&table, &ws, &panicked).await;
        assert_eq!(p.status, JobStatus::Failed);
        assert!(p.error.unwrap().contains("unexpectedly"));
    }

    #[tokio::test]
    async fn jobs_wait_for_a_slot_and_one_target_is_active_once() {
        let table = JobTable::new(1);
        let ws = WorkspaceId::new("acme").unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let first = table.start(&ws, JobKind::Sync, "crm", async move {
            let _ = rx.await;
            Ok(Value::Null)
        });
        let second = table.start(&ws, JobKind::Sync, "hs", async { Ok(Value::Null) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(table.get(&ws, &second).unwrap().status, JobStatus::Queued);
        assert_eq!(
            table.active(&ws, JobKind::Sync, "crm").map(|j| j.id),
            Some(first.clone())
        );
        tx.send(()).unwrap();
        assert_eq!(
            wait(&table, &ws, &second).await.status,
            JobStatus::Succeeded
        );
        assert!(table.active(&ws, JobKind::Sync, "crm").is_none());
    }
}
