//! Jobs: a stage selection of a pipeline on a cron schedule, run by `revlake run-job`, the
//! long-running `revlake schedule`, and `revlake backfill`; every run recorded in
//! `ops.job_runs`.
//!
//! - [`config`]: job files (`jobs/*.toml`), validated at project load.
//! - [`schedule`]: cron in a time zone, durations, the missed-run policy.
//! - [`runner`]: one run of a job for a workspace: retries, timeout, cancellation, recording;
//!   its stages are in `stages` (sync to scoring) and `outputs` (alerts, reports, exports).
//! - [`runlog`]: `ops.job_runs` and `revlake history`.
//! - [`lease`]: a lease per (job, workspace) on the lake's object store.
//! - [`scheduler`]: the scheduler loop: no overlapping runs, missed runs, graceful shutdown.
//! - [`metrics`]: the Prometheus text endpoint.
//! - [`status`]: freshness per dataset; [`doctor`]: what is wrong with a setup.

pub mod config;
pub mod doctor;
mod error;
pub mod lease;
pub mod metrics;
mod outputs;
pub mod runlog;
pub mod runner;
pub mod schedule;
pub mod scheduler;
mod stages;
pub mod status;

pub use config::{Job, JobFile};
pub use error::{JobsError, Result};
pub use runlog::{JobRun, RunStatus, StageRun, Trigger};
pub use runner::{Finished, ForecastHeadline, RunRequest, RunSummary, run_job};
pub use schedule::{MissedPolicy, Schedule};
