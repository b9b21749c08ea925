//! Running one import: fetch, detect, pass one, names and types, current rows for diffs,
//! pass two streamed into one commit, then the quarantine, stage snapshots and the batch row.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use tracing::Instrument;

use super::batches::{self, BatchStatus, ImportBatch};
use super::columnar::ParquetParts;
use super::detect::{
    self, FileFormat, TextEncoding, delimiter_name, detect_encoding, sniff_delimiter,
};
use super::error::{FileError, Result};
use super::existing::Existing;
use super::kind::{ColumnBuilder, fillable};
use super::land::{self, ColumnPlan, LandPlan, Landed, StageColumns};
use super::mapping::{Mapped, ObjectMap};
use super::read::{Columns, Prepared};
use super::{
    ImportBuilder, ImportOutcome, ImportStrategy, LandedColumn, parts, quarantine, remote,
    snapshots, xlsx,
};
use crate::lake::{DatasetRef, Layer, WriteMode};
use crate::project::WORKSPACE_COLUMN;
use crate::sources::naming::column_names;

impl ImportBuilder {
    /// The dataset and header map, from the object, the dataset and the user map.
    fn target(&self) -> Result<(DatasetRef, Option<ObjectMap>)> {
        let builtin = match (&self.object, &self.dataset) {
            (Some(object), _) => Some(ObjectMap::builtin(object)?),
            (None, Some(dataset)) => ObjectMap::for_dataset(dataset)?,
            (None, None) => None,
        };
        let dataset = match (&self.dataset, &builtin) {
            (Some(d), _) => d.clone(),
            (None, Some(m)) => m.dataset().ok_or(FileError::NoDataset)?,
            (None, None) => return Err(FileError::NoDataset),
        };
        if dataset.layer != Layer::Raw {
            return Err(FileError::NotRawDataset {
                dataset: dataset.to_string(),
            });
        }
        let map = match (&self.map, builtin) {
            (Some(path), Some(b)) => Some(b.overlay(ObjectMap::from_file(path)?)),
            (Some(path), None) => Some(ObjectMap::from_file(path)?),
            (None, b) => b,
        };
        Ok((dataset, map))
    }

    async fn run(self) -> Result<ImportOutcome> {
        let (dataset, map) = self.target()?;
        let options = self
            .storage_options
            .clone()
            .unwrap_or_else(|| self.lake.storage_options().clone());
        // A folder or pattern of part files (an unload), else one file (fetched if a URL).
        let (fetched, files, format) = match parts::expand(&self.source, self.format)? {
            Some(parts) => {
                let format = match self.format {
                    Some(f) => f,
                    None => parts::common_format(&self.source, &parts)?,
                };
                let files: Vec<(PathBuf, String)> = parts
                    .into_iter()
                    .map(|p| {
                        let label = p.display().to_string();
                        (p, label)
                    })
                    .collect();
                (None, files, format)
            }
            None => {
                let fetched = remote::fetch(&self.source, &options).await?;
                let format = match self.format {
                    Some(f) => f,
                    None => detect::file_format(&remote::file_name(&self.source), fetched.path())?,
                };
                let files = vec![(fetched.path().to_path_buf(), self.source.clone())];
                (Some(fetched), files, format)
            }
        };
        let batch_id = self
            .batch_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let existing = Existing::load(&self.lake, &dataset).await?;
        let mut batch = ImportBatch {
            workspace_id: self.workspace.to_string(),
            batch_id: batch_id.clone(),
            dataset: dataset.to_string(),
            file: self.source.clone(),
            format: format.to_string(),
            object: map
                .as_ref()
                .filter(|m| !m.source.is_empty())
                .map(|m| m.name()),
            strategy: self.strategy.as_str().to_string(),
            status: BatchStatus::Pending,
            error: None,
            rows_inserted: None,
            rows_updated: None,
            rows_skipped: None,
            rows_quarantined: None,
            version_before: existing.version,
            version_after: None,
            rollback_version: None,
            created_at: Utc::now(),
            applied_at: None,
            rolled_back_at: None,
        };
        batches::append(&self.lake, &batch).await?;
        let span = tracing::info_span!("import", batch_id = %batch_id, dataset = %dataset, file = %self.source);
        let lake = self.lake.clone();
        let landed = Landing {
            import: self,
            dataset,
            map,
            format,
            batch_id,
            existing,
            files,
        }
        .land()
        .instrument(span)
        .await;
        drop(fetched);
        match landed {
            Ok(outcome) => {
                batch.status = BatchStatus::Applied;
                batch.rows_inserted = Some(outcome.inserted as i64);
                batch.rows_updated = Some(outcome.updated as i64);
                batch.rows_skipped = Some(outcome.skipped() as i64);
                batch.rows_quarantined = Some(outcome.quarantined as i64);
                batch.version_after = Some(outcome.version);
                batch.applied_at = Some(Utc::now());
                batches::update(&lake, &batch).await?;
                Ok(outcome)
            }
            Err(e) => {
                batch.status = BatchStatus::Failed;
                batch.error = Some(e.to_string());
                if let LandError::AfterCommit { version, .. } = &e {
                    batch.version_after = Some(*version);
                }
                if let Err(record) = batches::update(&lake, &batch).await {
                    tracing::warn!(batch_id = %batch.batch_id, error = %record, "could not mark the import batch failed");
                }
                Err(e.into())
            }
        }
    }
}

impl std::future::IntoFuture for ImportBuilder {
    type Output = Result<ImportOutcome>;
    type IntoFuture = futures::future::BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A landing error, and whether the data was committed before it.
enum LandError {
    Before(FileError),
    AfterCommit { version: i64, error: FileError },
}

impl From<FileError> for LandError {
    fn from(e: FileError) -> Self {
        LandError::Before(e)
    }
}

impl From<LandError> for FileError {
    fn from(e: LandError) -> Self {
        match e {
            LandError::Before(e) | LandError::AfterCommit { error: e, .. } => e,
        }
    }
}

impl std::fmt::Display for LandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LandError::Before(e) => write!(f, "{e}"),
            LandError::AfterCommit { version, error } => {
                write!(f, "version {version} was committed, then: {error}")
            }
        }
    }
}

/// One import once its target is known.
struct Landing {
    import: ImportBuilder,
    dataset: DatasetRef,
    map: Option<ObjectMap>,
    format: FileFormat,
    batch_id: String,
    existing: Existing,
    /// The files to read (local path, name as given): one, or the parts of an unload.
    files: Vec<(PathBuf, String)>,
}

/// A file read, ready for pass two.
enum Input {
    Records(Prepared),
    Parquet(ParquetParts),
}

impl Input {
    fn encoding(&self) -> Option<TextEncoding> {
        match self {
            Input::Records(p) => p.encoding,
            Input::Parquet(_) => None,
        }
    }

    fn delimiter(&self) -> Option<u8> {
        match self {
            Input::Records(p) => p.delimiter,
            Input::Parquet(_) => None,
        }
    }

    fn width(&self) -> Option<usize> {
        match self {
            Input::Records(p) => p.header.as_ref().map(Vec::len),
            Input::Parquet(_) => None,
        }
    }
}

/// The position of the column whose API name is `api` (case-insensitive).
fn position_of(api_names: &[String], api: Option<&str>) -> Option<usize> {
    let api = api?;
    api_names.iter().position(|n| n.eq_ignore_ascii_case(api))
}

impl Landing {
    async fn land(self) -> std::result::Result<ImportOutcome, LandError> {
        let import = &self.import;
        let lake = &import.lake;
        let started = Utc::now();
        let sync_id = import
            .sync_id
            .clone()
            .unwrap_or_else(|| self.batch_id.clone());

        // 1. Detect and read the file once (pass one), off the async runtime.
        let (prepared, scan) = {
            let (files, format) = (self.files.clone(), self.format);
            let (encoding, delimiter, sheet) =
                (import.encoding, import.delimiter, import.sheet.clone());
            let progress = import.progress.clone();
            tokio::task::spawn_blocking(move || -> Result<(Input, land::Scan)> {
                if format == FileFormat::Parquet {
                    let parts = ParquetParts::open(&files)?;
                    let scan = parts.scan(&progress);
                    return Ok((Input::Parquet(parts), scan));
                }
                let prepared = Prepared::parts(
                    files
                        .iter()
                        .map(|(path, _)| {
                            prepare(path, format, encoding, delimiter, sheet.as_deref())
                        })
                        .collect::<Result<Vec<_>>>()?,
                )?;
                let scan = land::scan(&prepared, &progress)?;
                Ok((Input::Records(prepared), scan))
            })
            .await
            .map_err(|e| FileError::internal("reading the file", e))??
        };
        tracing::info!(
            records = scan.records,
            columns = scan.columns.len(),
            format = %self.format,
            encoding = prepared.encoding().map(|e| e.as_str()),
            delimiter = prepared.delimiter().map(delimiter_name),
            "file read"
        );

        let detected_encoding = prepared.encoding();
        let detected_delimiter = prepared.delimiter().map(delimiter_name);

        // 2. Names: headers → API names → landed names.
        let header = scan.columns.names.clone();
        let mut warnings = Vec::new();
        let api_names: Vec<String> = header
            .iter()
            .map(|h| match self.map.as_ref().map(|m| m.map(h)) {
                Some(Mapped::Api(api)) => api,
                Some(Mapped::UnknownStage { stage, pipeline }) => {
                    warnings.push(format!(
                        "column `{h}`: stage `{stage}` of pipeline `{pipeline}` has no stage id in the map; landed as `{}` (map it with --map: [stages] \"{stage} ({pipeline})\" = \"<id>\")",
                        crate::sources::naming::snake_case(h)
                    ));
                    h.clone()
                }
                _ => h.clone(),
            })
            .collect();
        for w in &warnings {
            tracing::warn!(file = %import.source, "{w}");
        }
        let landed_names = column_names(&api_names);

        // 3. Types: declared, else the table's, else inferred.
        let mut columns = Vec::with_capacity(header.len());
        for (i, name) in landed_names.iter().enumerate() {
            let declared = import.schema.as_ref().and_then(|s| s.column(name));
            let held = self
                .existing
                .schema
                .as_ref()
                .and_then(|s| s.field_with_name(name).ok());
            let (data_type, nullable) = match (declared, held) {
                (Some(c), _) => (c.data_type.clone(), c.nullable),
                (None, Some(f)) => (f.data_type().clone(), true),
                (None, None) => match scan.types.as_ref().and_then(|t| t.get(i)) {
                    Some(t) => (t.clone(), true),
                    None => (scan.kinds[i].data_type(), true),
                },
            };
            if !fillable(&data_type) {
                return Err(FileError::Unfillable {
                    path: PathBuf::from(&import.source),
                    dataset: self.dataset.to_string(),
                    column: name.clone(),
                    data_type: data_type.to_string(),
                }
                .into());
            }
            columns.push(ColumnPlan {
                name: name.clone(),
                // The builder's own type: e.g. a zoneless timestamp is filled as UTC and cast
                // by the write.
                data_type: ColumnBuilder::new(&data_type, 0).data_type(),
                nullable,
            });
        }

        // 4. Keys: the merge key, the deals' key and stage.
        let object_key = position_of(&api_names, self.map.as_ref().and_then(|m| m.key.as_deref()));
        let merge_key: Vec<String> = match import.strategy {
            ImportStrategy::Merge if !import.key.is_empty() => import.key.clone(),
            ImportStrategy::Merge => match object_key {
                Some(i) => vec![landed_names[i].clone()],
                None => {
                    return Err(FileError::MergeWithoutKey {
                        dataset: self.dataset.to_string(),
                    }
                    .into());
                }
            },
            _ => Vec::new(),
        };
        let mut key_positions = Vec::new();
        for k in merge_key.iter().filter(|k| k.as_str() != WORKSPACE_COLUMN) {
            let p =
                landed_names
                    .iter()
                    .position(|n| n == k)
                    .ok_or_else(|| FileError::UnknownKey {
                        path: PathBuf::from(&import.source),
                        column: k.clone(),
                        columns: landed_names.clone(),
                    })?;
            key_positions.push(p);
        }
        let stages = match (
            object_key,
            position_of(
                &api_names,
                self.map.as_ref().and_then(|m| m.stage.as_deref()),
            ),
        ) {
            (Some(key), Some(stage)) => Some(StageColumns {
                key,
                stage,
                modified: position_of(
                    &api_names,
                    self.map.as_ref().and_then(|m| m.modified.as_deref()),
                ),
            }),
            _ => None,
        };

        // 5. What the table holds, for diffs.
        let unchanged = if key_positions.is_empty() {
            None
        } else {
            let mut names: Vec<&str> = key_positions
                .iter()
                .map(|p| landed_names[*p].as_str())
                .collect();
            names.push("source_data");
            let current = if self.existing.has_columns(&names) {
                self.existing
                    .read_text(&self.dataset, &import.workspace, &names)
                    .await?
            } else {
                Vec::new()
            };
            let map: HashMap<String, u64> = current
                .into_iter()
                .filter_map(|mut row| {
                    let data = row.pop().flatten()?;
                    let key = row
                        .into_iter()
                        .map(|v| v.unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("\u{1f}");
                    Some((key, land::text_hash(&data)))
                })
                .collect();
            Some((key_positions.clone(), map))
        };
        let current_stages: Option<HashMap<String, Option<String>>> = match stages {
            Some(s) => {
                let names = [landed_names[s.key].as_str(), landed_names[s.stage].as_str()];
                let rows = if self.existing.has_columns(&names) {
                    self.existing
                        .read_text(&self.dataset, &import.workspace, &names)
                        .await?
                } else {
                    Vec::new()
                };
                Some(
                    rows.into_iter()
                        .filter_map(|mut r| {
                            let stage = r.pop().flatten();
                            let key = r.pop().flatten()?;
                            Some((key, stage))
                        })
                        .collect(),
                )
            }
            None => None,
        };

        // 6. Pass two, streamed into one commit.
        let plan = LandPlan {
            header: header.clone(),
            schema: land::batch_schema(&columns),
            columns: columns.clone(),
            width: prepared.width(),
            delimiter: prepared.delimiter().unwrap_or(b','),
            workspace: import.workspace.to_string(),
            sync_id: sync_id.clone(),
            synced_at: started.timestamp_micros(),
            file: import.source.clone(),
            unchanged,
            stages,
        };
        let schema = plan.schema.clone();
        let (tx, rx) =
            tokio::sync::mpsc::channel::<datafusion::error::Result<arrow::array::RecordBatch>>(4);
        let landed = Arc::new(Mutex::new(Landed::default()));
        let producer = {
            let landed = landed.clone();
            let progress = import.progress.clone();
            let file_columns = Columns::from_header(header.clone());
            tokio::task::spawn_blocking(move || match &prepared {
                Input::Records(p) => {
                    land::produce(p, &file_columns, &plan, &tx, &landed, &progress)
                }
                Input::Parquet(p) => p.produce(&plan, &tx, &landed, &progress),
            })
        };
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let stream = Box::pin(RecordBatchStreamAdapter::new(schema, stream));
        let mode = match import.strategy {
            ImportStrategy::Replace => WriteMode::OverwriteWorkspace(import.workspace.clone()),
            ImportStrategy::Merge => WriteMode::Merge,
            ImportStrategy::Append => WriteMode::Append,
        };
        let mut write = lake
            .write(self.dataset.clone())
            .with_mode(mode)
            .with_schema(import.schema.as_ref())
            .with_stream(stream)
            .with_commit_metadata("revlake.sync_id", sync_id.clone().into())
            .with_commit_metadata("revlake.batch_id", self.batch_id.clone().into())
            .with_commit_metadata("revlake.source_file", import.source.clone().into());
        if !merge_key.is_empty() {
            let mut key = vec![WORKSPACE_COLUMN.to_string()];
            key.extend(merge_key.iter().filter(|k| *k != WORKSPACE_COLUMN).cloned());
            write = write.with_merge_key(key);
        }
        let written = write.await;
        // The producer's own error (an unreadable or malformed file) explains a failed write best.
        producer
            .await
            .map_err(|e| FileError::internal("landing the file", e))??;
        let outcome = written.map_err(|source| FileError::Lake {
            path: PathBuf::from(&import.source),
            dataset: self.dataset.to_string(),
            source: Box::new(source),
        })?;
        let mut landed = std::mem::take(&mut *landed.lock().unwrap_or_else(|p| p.into_inner()));
        crate::telemetry::dataset_written(&self.dataset.to_string(), outcome.version, outcome.rows);
        let after_commit = |error: FileError| LandError::AfterCommit {
            version: outcome.version,
            error,
        };

        // 7. What was set aside, and the stage changes.
        landed.quarantined.sort_by_key(|q| q.line);
        let quarantined = landed.quarantined.len() as u64;
        if quarantined > 0 {
            quarantine::write(
                lake,
                &import.workspace,
                &self.dataset,
                &sync_id,
                &import.source,
                &landed.quarantined,
            )
            .await
            .map_err(after_commit)?;
            crate::telemetry::rows_quarantined(
                &self.dataset.to_string(),
                quarantined,
                &import.source,
            );
        }
        let mut stage_changes = 0;
        if let Some(current) = current_stages {
            let changes = snapshots::changes(&current, &landed.stages, started.timestamp_micros());
            stage_changes = changes.len() as u64;
            if !changes.is_empty() {
                let source = self
                    .map
                    .as_ref()
                    .map(|m| m.source.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| {
                        self.dataset
                            .table
                            .split('_')
                            .next()
                            .unwrap_or("file")
                            .to_string()
                    });
                let target = snapshots::dataset(&source).map_err(after_commit)?;
                snapshots::append(
                    lake,
                    &target,
                    &import.workspace,
                    &self.batch_id,
                    &sync_id,
                    &changes,
                )
                .await
                .map_err(after_commit)?;
                tracing::info!(dataset = %target, changes = stage_changes, "stage changes recorded");
            }
        }

        Ok(ImportOutcome {
            batch_id: self.batch_id.clone(),
            dataset: self.dataset.to_string(),
            file: import.source.clone(),
            format: self.format,
            encoding: detected_encoding,
            delimiter: detected_delimiter,
            object: self
                .map
                .as_ref()
                .filter(|m| !m.source.is_empty())
                .map(|m| m.name()),
            strategy: import.strategy.as_str().to_string(),
            records: scan.records,
            rows: outcome.rows,
            inserted: outcome.inserted,
            updated: outcome.updated,
            unchanged: landed.unchanged,
            quarantined,
            version_before: self.existing.version,
            version: outcome.version,
            stage_changes,
            columns: header
                .iter()
                .zip(&columns)
                .map(|(h, c)| LandedColumn {
                    header: h.clone(),
                    column: c.name.clone(),
                    data_type: c.data_type.to_string(),
                })
                .collect(),
            warnings,
        })
    }
}

/// Detects what is left to detect and opens the file for reading.
fn prepare(
    path: &Path,
    format: FileFormat,
    encoding: Option<TextEncoding>,
    delimiter: Option<u8>,
    sheet: Option<&str>,
) -> Result<Prepared> {
    if format == FileFormat::Xlsx {
        return xlsx::prepare(path, sheet);
    }
    let (sample, truncated) = detect::sample(path)?;
    let encoding = encoding.unwrap_or_else(|| detect_encoding(&sample));
    match format {
        FileFormat::Json => Prepared::json(path, encoding),
        FileFormat::Ndjson => Ok(Prepared::ndjson(path, encoding)),
        _ => {
            let text = detect::decode_sample(&sample, encoding);
            let delimiter = match (delimiter, format) {
                (Some(d), _) => d,
                (None, FileFormat::Tsv) => b'\t',
                (None, _) => sniff_delimiter(&text, truncated).unwrap_or(b','),
            };
            let crlf = text.find('\n').is_some_and(|i| text[..i].ends_with('\r'));
            Prepared::delimited(path, format, encoding, delimiter, crlf)
        }
    }
}
