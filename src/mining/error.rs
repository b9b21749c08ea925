//! Errors of process mining and of event-log import and export.

use std::path::PathBuf;

use crate::lake::{DatasetRef, LakeError};
use crate::sql::SqlError;

/// Everything that can go wrong while mining the stage history or moving event logs.
///
/// Variants name what is wrong and where (dataset, column, file and line or trace) and whose
/// fault it is: the user's input (config, an event-log file), the data in the lake, or the lake.
#[derive(Debug, thiserror::Error)]
pub enum MiningError {
    /// The `[mining]` settings are out of range (user input).
    #[error("invalid [mining] settings: {reason}")]
    InvalidConfig { reason: String },
    /// An input dataset lacks a column mining reads, or has it with another type (upstream data).
    #[error("{dataset}: column `{column}` is missing or not {expected}")]
    BadColumn {
        dataset: DatasetRef,
        column: String,
        expected: &'static str,
    },
    /// More distinct stages or activities than the u16 stage codes hold (input data).
    #[error("more than {max} distinct stages or activities in workspace `{workspace}`")]
    TooManyStages { workspace: String, max: usize },
    /// The factors' levels multiply into more contexts than mining holds (config and data).
    #[error(
        "the factors {factors} give {contexts} contexts in workspace `{workspace}` (at most {max}): use fewer factors or bands"
    )]
    TooManyContexts {
        workspace: String,
        factors: String,
        contexts: u128,
        max: u64,
    },
    /// The seed file with the stage order cannot be read (project files).
    #[error("stage order from {path}: {reason}")]
    StageOrder { path: PathBuf, reason: String },
    /// An event-log file cannot be read or does not follow its format (user input).
    #[error("{path}{}: {reason}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadEventLog {
        path: PathBuf,
        line: Option<u64>,
        reason: String,
    },
    /// An event-log file or an output file cannot be opened or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Building an Arrow array or batch failed (internal bug).
    #[error("internal error building {what}: {source}")]
    Arrow {
        what: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Reading the inputs through DataFusion failed.
    #[error("reading {dataset}: {source}")]
    Read {
        dataset: DatasetRef,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Sql(#[from] SqlError),
}

impl MiningError {
    /// Whether the error is the user's input (settings, files) rather than the system's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            MiningError::InvalidConfig { .. }
                | MiningError::BadEventLog { .. }
                | MiningError::TooManyContexts { .. }
                | MiningError::StageOrder { .. }
        )
    }

    pub(crate) fn arrow(what: &'static str) -> impl FnOnce(arrow::error::ArrowError) -> Self {
        move |source| MiningError::Arrow { what, source }
    }
}

/// The result type of mining.
pub type Result<T, E = MiningError> = std::result::Result<T, E>;
