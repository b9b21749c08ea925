use crate::lake::DatasetRef;

/// Errors of the lake: each names the lake URL or dataset concerned and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake `{url}` cannot be opened: {reason}")]
    Open { url: String, reason: String },
    #[error(
        "`{name}` is not a dataset name: expected `<layer>.<table>` with layer raw, staging, marts or ops and a snake_case table name"
    )]
    BadDatasetName { name: String },
    #[error("`{id}` is not a workspace id: use 1-64 characters of letters, digits, `_` or `-`")]
    BadWorkspace { id: String },
    #[error("dataset {dataset} does not exist in lake `{url}`")]
    NoSuchDataset { dataset: DatasetRef, url: String },
    #[error("dataset {dataset} has no version {version} (latest is {latest})")]
    NoSuchVersion {
        dataset: DatasetRef,
        version: i64,
        latest: i64,
    },
    #[error("dataset {dataset} did not exist at {timestamp}")]
    NoVersionAtTime {
        dataset: DatasetRef,
        timestamp: String,
    },
    #[error("`{input}` is neither a table version (a whole number) nor an RFC 3339 timestamp")]
    BadAsOf { input: String },
    #[error("write to {dataset} refused: {detail}")]
    SchemaMismatch { dataset: DatasetRef, detail: String },
    #[error("merge into {dataset} needs a primary key: declare `primary_key` in its schema file")]
    NoMergeKey { dataset: DatasetRef },
    #[error("the input of the write to {dataset} failed, nothing was committed: {message}")]
    Input {
        dataset: DatasetRef,
        message: String,
    },
    #[error("Delta operation `{operation}` on {dataset} at `{url}` failed: {source}")]
    Delta {
        operation: &'static str,
        dataset: DatasetRef,
        url: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("query planning on {dataset} failed: {source}")]
    Plan {
        dataset: DatasetRef,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("listing lake `{url}` failed: {source}")]
    List {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

impl LakeError {
    /// Whether retrying the same operation may succeed (transient storage or commit conflict).
    pub fn is_retryable(&self) -> bool {
        match self {
            LakeError::Delta { source, .. } => matches!(
                source.as_ref(),
                deltalake::DeltaTableError::ObjectStore { .. }
                    | deltalake::DeltaTableError::Transaction { .. }
                    | deltalake::DeltaTableError::VersionAlreadyExists(_)
            ),
            LakeError::List { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
