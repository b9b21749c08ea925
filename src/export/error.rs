use crate::lake::LakeError;
use crate::project::ProjectError;

/// Errors of an export: each names the dataset, target, statement or job concerned, and
/// whose fault it is (the configuration, the warehouse, the network, the lake).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The `[exports.NAME]` section or the command line is wrong (user input).
    #[error("export {target}: {reason}")]
    Config { target: String, reason: String },
    /// A credential named by the configuration is missing or unreadable (user input).
    #[error("export {target}: {what}: environment variable {var} {problem}")]
    MissingCredential {
        target: String,
        what: &'static str,
        var: String,
        problem: String,
    },
    /// A key or credential file could not be parsed (user input).
    #[error("export {target}: {what}: {reason}")]
    BadCredential {
        target: String,
        what: String,
        reason: String,
    },
    /// The warehouse refused the login: account, user or credential (user input, mostly).
    #[error("export {target}: {warehouse} refused the login at {url} (code {code}): {message}")]
    Login {
        target: String,
        warehouse: &'static str,
        url: String,
        code: String,
        message: String,
    },
    /// A selector matched nothing the lake has.
    #[error("`{selector}` matches no dataset in the lake; known: {}", known.join(", "))]
    UnknownDataset {
        selector: String,
        known: Vec<String>,
    },
    /// A column type has no counterpart in the warehouse.
    #[error("{dataset}: column `{column}` of type {arrow_type} has no {warehouse} type")]
    Unmappable {
        dataset: String,
        column: String,
        arrow_type: String,
        warehouse: &'static str,
    },
    /// The target's column has a type the new data cannot be loaded into without loss.
    #[error(
        "{dataset} → {table}: column `{column}` is {target_type} in the warehouse but {source_type} in the lake; loading would lose data, so nothing was loaded (change or drop the column in the warehouse, or export to another table)"
    )]
    LossyTypeChange {
        dataset: String,
        table: String,
        column: String,
        target_type: String,
        source_type: String,
    },
    /// The warehouse answered a statement or job with an error (external, not retryable).
    #[error("{dataset}: {warehouse} refused {what}: {message}\n  statement: {statement}")]
    Warehouse {
        dataset: String,
        warehouse: &'static str,
        /// The statement handle / job id and code, when the warehouse gave them.
        what: String,
        message: String,
        /// The SQL statement or job configuration that failed.
        statement: String,
    },
    /// The warehouse could not be reached or kept failing after retries (external).
    #[error("{warehouse} at {url}: {reason}")]
    Http {
        warehouse: &'static str,
        url: String,
        reason: String,
    },
    /// Writing the staged Parquet files failed.
    #[error("{dataset}: staging Parquet files at {location} failed: {reason}")]
    Stage {
        dataset: String,
        location: String,
        reason: String,
    },
    /// Reading the dataset from the lake failed while writing the stage.
    #[error("{dataset}: reading the lake failed: {source}")]
    Read {
        dataset: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    /// Writing the plan folder failed.
    #[error("writing the plan to {path}: {source}")]
    Plan {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Building the `ops.exports` rows failed (a bug).
    #[error("recording the export in ops.exports: {0}")]
    Record(#[from] arrow::error::ArrowError),
}

impl ExportError {
    /// Whether the error is the user's input (configuration, names, credentials, schema).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ExportError::Config { .. }
                | ExportError::MissingCredential { .. }
                | ExportError::BadCredential { .. }
                | ExportError::Login { .. }
                | ExportError::UnknownDataset { .. }
                | ExportError::Unmappable { .. }
                | ExportError::LossyTypeChange { .. }
                | ExportError::Project(_)
        )
    }
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
