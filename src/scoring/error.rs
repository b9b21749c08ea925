//! Errors of risk scoring.

use crate::lake::{DatasetRef, LakeError};
use crate::sql::SqlError;

/// Everything that can go wrong while building features, training, scoring or alerting.
///
/// Variants name what is wrong and where (workspace, deal, dataset, column) and whose fault it
/// is: the user's input (a deal id, a workspace), the data in the lake, or an internal bug.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// The workspace has no `staging.deals` table (user input: nothing landed and modelled yet).
    #[error(
        "workspace `{workspace}` has no staging.deals table: land and model the data first (revlake run, or revlake demo)"
    )]
    NoDeals { workspace: String },
    /// The asked deal is not an open deal of the workspace (user input).
    #[error("deal `{deal}` is not an open deal of workspace `{workspace}`{hint}")]
    NoSuchDeal {
        deal: String,
        workspace: String,
        hint: String,
    },
    /// A column of a staging table or mart is missing or has another type than scoring reads.
    #[error("{dataset}: column `{column}` is missing or not {expected}")]
    BadColumn {
        dataset: DatasetRef,
        column: String,
        expected: &'static str,
    },
    /// A stored model row of `marts.risk_models` cannot be read back.
    #[error("marts.risk_models version {version} of workspace `{workspace}`: {reason}")]
    BadStoredModel {
        workspace: String,
        version: i64,
        reason: String,
    },
    /// Fitting the logistic regression failed (data fault: e.g. a singular design matrix).
    #[error("fitting the risk model failed: {reason}")]
    Fit { reason: String },
    /// Settings out of range (user input).
    #[error("invalid scoring settings: {reason}")]
    InvalidConfig { reason: String },
    /// Writing an exported file (features CSV, digest HTML) failed.
    #[error("writing {path} failed: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// Building an output batch failed (an internal bug: the columns are built to the schema).
    #[error("building {dataset} rows failed: {source}")]
    Arrow {
        dataset: DatasetRef,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The blocking scoring task panicked or was cancelled (an internal bug).
    #[error("the scoring task failed: {reason}")]
    Task { reason: String },
}

impl ScoringError {
    /// Whether the error is the user's input rather than the data or the system.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ScoringError::NoDeals { .. }
                | ScoringError::NoSuchDeal { .. }
                | ScoringError::InvalidConfig { .. }
        )
    }
}

/// The scoring module's result type.
pub type Result<T, E = ScoringError> = std::result::Result<T, E>;
