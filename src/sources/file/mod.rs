//! File imports: a vendor export (CSV, TSV, JSON, NDJSON or xlsx; local or on an object store)
//! lands as one raw table, typed columns inferred from every record, the original record kept
//! as JSON text in `source_data`.
//!
//! ```text
//! file ─fetch─▶ local ─detect─▶ format, encoding, delimiter
//!      ─pass one─▶ columns and kinds ─map─▶ API names, landed names and types
//!      ─pass two─▶ Arrow batches ─stream─▶ one Delta commit ─▶ ops.quarantine, stage snapshots,
//!                                                               ops.import_batches
//! ```
//!
//! Two passes: the first infers each column's type over the whole file (so no late record can
//! contradict it), the second streams Arrow batches into one Delta commit. A column the table
//! (or a declared schema) already types keeps that type. Records that cannot be landed (a wrong
//! field count, a value that does not fit its column's type) go to `ops.quarantine` with the
//! file, line and reason; they are counted, never silently dropped. Headers map to the vendor's
//! API names when the file is a known object's export ([`ObjectMap`]). Every import is a batch
//! in `ops.import_batches` that can be rolled back ([`rollback`]).
//!
//! ```no_run
//! # async fn example(lake: &revlake::lake::Lake) -> revlake::sources::file::Result<()> {
//! use revlake::lake::WorkspaceId;
//! use revlake::sources::file::import_file;
//!
//! let outcome = import_file(lake, "exports/deals.csv", WorkspaceId::new("acme").unwrap())
//!     .with_object("hubspot.deals".to_string())
//!     .await?;
//! println!("{} rows in {} (version {})", outcome.rows, outcome.dataset, outcome.version);
//! # Ok(())
//! # }
//! ```

mod batches;
pub mod bench_data;
mod columnar;
mod detect;
mod error;
mod existing;
mod import;
mod json;
mod kind;
mod land;
mod mapping;
mod parts;
mod quarantine;
mod read;
mod remote;
mod snapshots;
mod xlsx;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use batches::{
    BatchFilter, BatchStatus, ImportBatch, Rollback, list as list_batches, rollback,
};
pub use detect::{
    FileFormat, TextEncoding, delimiter_name, detect_encoding, file_format, parse_delimiter,
    sniff_delimiter,
};
pub use error::{FileError, Result};
pub use mapping::{Mapped, ObjectMap, known_objects};
pub use quarantine::Quarantined;
pub use snapshots::StageChange;

use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::project::DatasetSchema;

/// How an import combines with what the raw table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStrategy {
    /// Replace the workspace's rows with the file's.
    Replace,
    /// Upsert on the key columns; records equal to the row held are skipped (unchanged).
    Merge,
    /// Add the file's rows.
    Append,
}

impl ImportStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStrategy::Replace => "replace",
            ImportStrategy::Merge => "merge",
            ImportStrategy::Append => "append",
        }
    }
}

/// The passes of an import, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Pass one: reading every record to infer the columns' types.
    Scan,
    /// Pass two: landing the records.
    Land,
}

/// A callback told how many records a pass has read so far.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(Pass, u64) + Send + Sync>>);

impl Progress {
    pub fn new(f: impl Fn(Pass, u64) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(f)))
    }

    pub fn none() -> Self {
        Progress(None)
    }

    fn report(&self, pass: Pass, records: u64) {
        if let Some(f) = &self.0 {
            f(pass, records);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(callback)"
        } else {
            "Progress(none)"
        })
    }
}

/// A column of the file and where it landed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LandedColumn {
    /// The header (or JSON key) in the file.
    pub header: String,
    /// The landed column name.
    pub column: String,
    /// The landed type (`Int64`, `Utf8`, ...).
    pub data_type: String,
}

/// What an import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportOutcome {
    pub batch_id: String,
    pub dataset: String,
    /// The file as given (a path or URL).
    pub file: String,
    pub format: FileFormat,
    pub encoding: Option<TextEncoding>,
    pub delimiter: Option<String>,
    /// The vendor object whose header map applied.
    pub object: Option<String>,
    pub strategy: String,
    /// Records read.
    pub records: u64,
    /// Rows landed (written to the table).
    pub rows: u64,
    /// Rows added (in a merge: rows with a new key).
    pub inserted: u64,
    /// Rows a merge rewrote.
    pub updated: u64,
    /// Records a merge skipped because the table holds them as they are.
    pub unchanged: u64,
    /// Records sent to `ops.quarantine`.
    pub quarantined: u64,
    /// The dataset's version before the import (`None`: the import created it).
    pub version_before: Option<i64>,
    /// The version the import committed.
    pub version: i64,
    /// Stage changes appended to `raw.<source>_stage_snapshots`.
    pub stage_changes: u64,
    pub columns: Vec<LandedColumn>,
    /// Things the user should know (a stage column the map does not know).
    pub warnings: Vec<String>,
}

impl ImportOutcome {
    /// Records not landed: quarantined plus unchanged.
    pub fn skipped(&self) -> u64 {
        self.quarantined + self.unchanged
    }
}

/// Starts an import of `source` (a local path, or a `s3://`, `gs://`, `az://`, `file://` or
/// `memory://` URL) for `workspace`; run it with `.await`.
pub fn import_file(
    lake: &Lake,
    source: impl Into<String>,
    workspace: WorkspaceId,
) -> ImportBuilder {
    ImportBuilder {
        lake: lake.clone(),
        source: source.into(),
        workspace,
        dataset: None,
        object: None,
        map: None,
        strategy: ImportStrategy::Replace,
        key: Vec::new(),
        sync_id: None,
        batch_id: None,
        format: None,
        encoding: None,
        delimiter: None,
        sheet: None,
        schema: None,
        storage_options: None,
        progress: Progress::none(),
    }
}

/// One file import; configure with `with_*`, run with `.await`.
#[must_use]
#[derive(Debug)]
pub struct ImportBuilder {
    lake: Lake,
    source: String,
    workspace: WorkspaceId,
    dataset: Option<DatasetRef>,
    object: Option<String>,
    map: Option<PathBuf>,
    strategy: ImportStrategy,
    key: Vec<String>,
    sync_id: Option<String>,
    batch_id: Option<String>,
    format: Option<FileFormat>,
    encoding: Option<TextEncoding>,
    delimiter: Option<u8>,
    sheet: Option<String>,
    schema: Option<DatasetSchema>,
    storage_options: Option<HashMap<String, String>>,
    progress: Progress,
}

impl ImportBuilder {
    /// The raw table to land in (default: the object's, `raw.<source>_<object>`). A dataset
    /// that is a built-in object's table gets that object's header map.
    pub fn with_dataset(mut self, dataset: impl Into<Option<DatasetRef>>) -> Self {
        self.dataset = dataset.into();
        self
    }

    /// The vendor object the file is an export of (`salesforce.Opportunity`, `hubspot.deals`):
    /// its headers map to API names and it lands in the object's raw table.
    pub fn with_object(mut self, object: impl Into<Option<String>>) -> Self {
        self.object = object.into();
        self
    }

    /// A user header map (TOML), on top of the object's.
    pub fn with_map(mut self, map: impl Into<Option<PathBuf>>) -> Self {
        self.map = map.into();
        self
    }

    pub fn with_strategy(mut self, strategy: ImportStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Key columns (landed names) of a merge; default: the object's key. `workspace_id` is
    /// always part of the key.
    pub fn with_key(mut self, key: Vec<String>) -> Self {
        self.key = key;
        self
    }

    /// The `_sync_id` of the landed rows (default: the batch id).
    pub fn with_sync_id(mut self, sync_id: impl Into<String>) -> Self {
        self.sync_id = Some(sync_id.into());
        self
    }

    /// The batch id (default: a new UUID).
    pub fn with_batch_id(mut self, batch_id: impl Into<String>) -> Self {
        self.batch_id = Some(batch_id.into());
        self
    }

    /// The format (default: from the extension).
    pub fn with_format(mut self, format: impl Into<Option<FileFormat>>) -> Self {
        self.format = format.into();
        self
    }

    /// The text encoding (default: detected).
    pub fn with_encoding(mut self, encoding: impl Into<Option<TextEncoding>>) -> Self {
        self.encoding = encoding.into();
        self
    }

    /// The delimiter of delimited text (default: sniffed; tab for TSV).
    pub fn with_delimiter(mut self, delimiter: impl Into<Option<u8>>) -> Self {
        self.delimiter = delimiter.into();
        self
    }

    /// The sheet of a workbook (default: the first).
    pub fn with_sheet(mut self, sheet: impl Into<Option<String>>) -> Self {
        self.sheet = sheet.into();
        self
    }

    /// The dataset's declared schema: its column types win over inferred ones.
    pub fn with_schema(mut self, schema: Option<&DatasetSchema>) -> Self {
        self.schema = schema.cloned();
        self
    }

    /// Object-store options for a URL source (default: the lake's).
    pub fn with_storage_options(mut self, options: HashMap<String, String>) -> Self {
        self.storage_options = Some(options);
        self
    }

    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
}

/// One CSV file to land (the original import API; see [`import_file`] for every option).
#[derive(Debug, Clone)]
pub struct CsvImport {
    pub path: PathBuf,
    pub dataset: DatasetRef,
    pub workspace: WorkspaceId,
    pub strategy: ImportStrategy,
    /// Key columns (landed names) for `merge`.
    pub key: Vec<String>,
    pub sync_id: String,
}

/// Lands `import.path` (delimited text, delimiter sniffed) in `import.dataset`.
pub async fn import_csv(lake: &Lake, import: &CsvImport) -> Result<ImportOutcome> {
    import_file(
        lake,
        import.path.display().to_string(),
        import.workspace.clone(),
    )
    .with_dataset(import.dataset.clone())
    .with_strategy(import.strategy)
    .with_key(import.key.clone())
    .with_sync_id(import.sync_id.clone())
    .with_format(FileFormat::Csv)
    .await
}
