//! # revlake
//!
//! The whole batch stack of a revenue-operations data team in one library and binary:
//! connectors land CRM, engagement, billing and support data as Delta tables
//! ([`lake`]); plain SQL files build the unified staging model ([`sql`]); declared checks gate
//! every stage; Arrow kernels mine stage transitions and run Monte Carlo forecasts.
//!
//! ```text
//! sources ─extract─▶ raw.* ─SQL─▶ staging.* ─kernels─▶ marts.* ─export─▶ warehouse
//! ```
//!
//! The modules talk through small typed interfaces; each has its own error enum, and
//! [`Error`] gathers them for callers that handle any failure of a run.

pub mod alerts;
pub mod export;
pub mod generate;
pub mod jobs;
pub mod lake;
pub mod mining;
pub mod pipeline;
pub mod project;
pub mod quality;
pub mod scoring;
pub mod serve;
pub mod simulate;
pub mod sources;
pub mod sql;
pub mod telemetry;

/// Any error of the library, by module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Project(#[from] project::ProjectError),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
    #[error(transparent)]
    Generate(#[from] generate::GenerateError),
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    #[error(transparent)]
    Scoring(#[from] scoring::ScoringError),
    #[error(transparent)]
    Jobs(#[from] jobs::JobsError),
}

impl Error {
    /// Whether the error is the user's input (SQL, config, names) rather than the system's.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Project(_) => true,
            Error::Sql(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
