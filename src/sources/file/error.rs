//! Errors of file imports: each names the file (and line), dataset or batch at fault.

use std::path::PathBuf;

use crate::lake::LakeError;

/// Errors of file imports and import batches.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(
        "{}: cannot tell the format from the extension `{extension}`: use --format csv, tsv, json, ndjson, xlsx or parquet",
        path.display()
    )]
    UnknownFormat { path: PathBuf, extension: String },
    #[error("{}:{line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    NotRecords { path: PathBuf, reason: String },
    #[error(
        "{}: cannot read it as Parquet{}: {reason}",
        path.display(),
        place.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
    )]
    Parquet {
        path: PathBuf,
        /// Where: the row group and first row of the batch that failed.
        place: Option<String>,
        reason: String,
    },
    #[error("{}: {reason}", path.display())]
    Parts { path: PathBuf, reason: String },
    #[error("{}: not an xlsx workbook: {reason}", path.display())]
    NotXlsx { path: PathBuf, reason: String },
    #[error("{}: no sheet named `{sheet}` (sheets: {})", path.display(), sheets.join(", "))]
    NoSuchSheet {
        path: PathBuf,
        sheet: String,
        sheets: Vec<String>,
    },
    #[error("{}: the file has no header row", path.display())]
    NoHeader { path: PathBuf },
    #[error("unknown object `{object}`: known objects are {}", known.join(", "))]
    UnknownObject { object: String, known: Vec<String> },
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    BadMap {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    #[error("`{value}` is not a delimiter: use one character such as `,` `;` `|` or `tab`")]
    BadDelimiter { value: String },
    #[error(
        "name the table to land in: give a dataset (raw.<source>_<object>) or an object (salesforce.Opportunity)"
    )]
    NoDataset,
    #[error("a merge into {dataset} needs key columns: give --key COLS (landed names)")]
    MergeWithoutKey { dataset: String },
    #[error("{}: key column `{column}` is not a column of the file (its columns: {})", path.display(), columns.join(", "))]
    UnknownKey {
        path: PathBuf,
        column: String,
        columns: Vec<String>,
    },
    #[error("imports land in the raw layer: `{dataset}` is not a raw.<source>_<object> dataset")]
    NotRawDataset { dataset: String },
    #[error(
        "{}: column `{column}` of {dataset} is {data_type}, which a file import cannot fill",
        path.display()
    )]
    Unfillable {
        path: PathBuf,
        dataset: String,
        column: String,
        data_type: String,
    },
    #[error("importing {} into {dataset} failed: {source}", path.display())]
    Lake {
        path: PathBuf,
        dataset: String,
        #[source]
        source: Box<LakeError>,
    },
    #[error("{what} failed: {source}")]
    Ops {
        what: String,
        #[source]
        source: Box<LakeError>,
    },
    #[error("reading {dataset} failed: {reason}")]
    Read { dataset: String, reason: String },
    #[error("no import batch `{batch}` in ops.import_batches of lake `{lake}`")]
    NoSuchBatch { batch: String, lake: String },
    #[error("import batch `{batch}` is {status}: {reason}")]
    BatchState {
        batch: String,
        status: String,
        reason: String,
    },
    #[error(
        "import batch `{batch}` cannot be rolled back: {dataset} was written after it by {}; roll those back first, or pass --force to restore version {restore_to} anyway (undoing them too)",
        later.join("; ")
    )]
    LaterWrites {
        batch: String,
        dataset: String,
        restore_to: i64,
        later: Vec<String>,
    },
    #[error("internal error in {what}: {reason} (a bug: please report it)")]
    Internal { what: &'static str, reason: String },
}

impl FileError {
    /// Whether the error is the user's input (file contents, names, arguments).
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            FileError::Fetch { .. }
                | FileError::Lake { .. }
                | FileError::Ops { .. }
                | FileError::Read { .. }
                | FileError::Internal { .. }
        )
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        FileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn ops(what: impl Into<String>, source: LakeError) -> Self {
        FileError::Ops {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn internal(what: &'static str, reason: impl std::fmt::Display) -> Self {
        FileError::Internal {
            what,
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = FileError> = std::result::Result<T, E>;
