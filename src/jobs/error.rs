use std::path::PathBuf;

use crate::lake::LakeError;
use crate::sql::SqlError;

/// Errors of jobs, the scheduler, leases and the run log: each names the job, lease, dataset
/// or address concerned.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// User input: a job that is not in `jobs/`.
    #[error("no job `{name}` in {} (jobs: {known})", dir.display())]
    NoSuchJob {
        name: String,
        dir: PathBuf,
        known: String,
    },
    /// User input: a bad backfill window or an option that does not apply.
    #[error("job {job}: {reason}")]
    BadRequest { job: String, reason: String },
    /// External (retryable): the lake's object store refused or failed a lease operation.
    #[error("lease {key} on lake `{url}`: {source}")]
    Lease {
        key: String,
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// Internal: a lease object that is not what revlake writes.
    #[error("lease object {key} on lake `{url}` is unreadable: {reason}")]
    BadLease {
        key: String,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Project(#[from] crate::project::ProjectError),
    /// Internal: a run-log batch that does not fit `ops.job_runs`.
    #[error("building the rows of ops.job_runs: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// External: the metrics endpoint could not listen or answer.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl JobsError {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobsError::Lease { .. } => true,
            JobsError::Lake(e) => e.is_retryable(),
            _ => false,
        }
    }
}

pub type Result<T, E = JobsError> = std::result::Result<T, E>;
