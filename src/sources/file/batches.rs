//! Import batches: every file import is recorded in `ops.import_batches` (declared in
//! `schemas/ops.import_batches.toml`), `pending` when it starts, then `applied` with its counts
//! and the versions before and after, or `failed` with the error. A batch rolls back by
//! restoring its dataset to the version before it: the restore is a new Delta commit, so the
//! batch's own version stays readable by time travel.
//!
//! ```text
//! pending ──▶ applied ──rollback──▶ rolled_back
//!    └──────▶ failed
//! ```

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, Utc};
use deltalake::kernel::transaction::CommitProperties;

use super::error::{FileError, Result};
use super::kind::timestamp_type;
use datafusion::prelude::{col, lit};

use crate::lake::{AsOf, DatasetRef, Lake, LakeError, Layer, WorkspaceId, WriteMode};
use crate::project::{DatasetSchema, WORKSPACE_COLUMN};

const SCHEMA_TOML: &str = include_str!("../../../schemas/ops.import_batches.toml");

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchStatus {
    Pending,
    Applied,
    RolledBack,
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Pending => "pending",
            BatchStatus::Applied => "applied",
            BatchStatus::RolledBack => "rolled_back",
            BatchStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            BatchStatus::Pending,
            BatchStatus::Applied,
            BatchStatus::RolledBack,
            BatchStatus::Failed,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

impl std::fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `ops.import_batches`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportBatch {
    pub workspace_id: String,
    pub batch_id: String,
    pub dataset: String,
    pub file: String,
    pub format: String,
    pub object: Option<String>,
    pub strategy: String,
    pub status: BatchStatus,
    pub error: Option<String>,
    pub rows_inserted: Option<i64>,
    pub rows_updated: Option<i64>,
    pub rows_skipped: Option<i64>,
    pub rows_quarantined: Option<i64>,
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    pub rollback_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub applied_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
}

/// The declared schema of `ops.import_batches`.
pub fn schema() -> Result<DatasetSchema> {
    let dataset = dataset()?;
    DatasetSchema::parse(
        dataset,
        SCHEMA_TOML,
        std::path::Path::new("schemas/ops.import_batches.toml"),
    )
    .map_err(|e| FileError::internal("the ops.import_batches schema", e))
}

fn dataset() -> Result<DatasetRef> {
    DatasetRef::new(Layer::Ops, "import_batches")
        .map_err(|e| FileError::internal("naming ops.import_batches", e))
}

fn micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

impl ImportBatch {
    /// The rows as a batch of the declared schema.
    pub fn to_record_batch(rows: &[ImportBatch]) -> Result<RecordBatch> {
        let schema: SchemaRef = schema()?.arrow_schema();
        let text = |f: fn(&ImportBatch) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
        };
        let opt_text = |f: fn(&ImportBatch) -> Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(f)))
        };
        let int = |f: fn(&ImportBatch) -> Option<i64>| -> ArrayRef {
            Arc::new(Int64Array::from_iter(rows.iter().map(f)))
        };
        let ts = |f: fn(&ImportBatch) -> Option<i64>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(f)).with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            text(|b| &b.workspace_id),
            text(|b| &b.batch_id),
            text(|b| &b.dataset),
            text(|b| &b.file),
            text(|b| &b.format),
            opt_text(|b| b.object.as_deref()),
            text(|b| &b.strategy),
            text(|b| b.status.as_str()),
            opt_text(|b| b.error.as_deref()),
            int(|b| b.rows_inserted),
            int(|b| b.rows_updated),
            int(|b| b.rows_skipped),
            int(|b| b.rows_quarantined),
            int(|b| b.version_before),
            int(|b| b.version_after),
            int(|b| b.rollback_version),
            ts(|b| Some(b.created_at.timestamp_micros())),
            ts(|b| micros(b.applied_at)),
            ts(|b| micros(b.rolled_back_at)),
        ];
        RecordBatch::try_new(schema, columns)
            .map_err(|e| FileError::internal("building an ops.import_batches row", e))
    }

    /// Rows read back from the table.
    fn from_record_batches(batches: &[RecordBatch]) -> Result<Vec<ImportBatch>> {
        let mut out = Vec::new();
        for b in batches {
            let column = |name: &str, t: &DataType| -> Result<ArrayRef> {
                let c = b.column_by_name(name).ok_or_else(|| {
                    FileError::internal("reading ops.import_batches", format!("no `{name}`"))
                })?;
                arrow::compute::cast(c, t)
                    .map_err(|e| FileError::internal("reading ops.import_batches", e))
            };
            let texts = |name: &str| -> Result<StringArray> {
                let c = column(name, &DataType::Utf8)?;
                Ok(c.as_any()
                    .downcast_ref::<StringArray>()
                    .cloned()
                    .unwrap_or_else(|| StringArray::new_null(b.num_rows())))
            };
            let ints = |name: &str| -> Result<Int64Array> {
                let c = column(name, &DataType::Int64)?;
                Ok(c.as_any()
                    .downcast_ref::<Int64Array>()
                    .cloned()
                    .unwrap_or_else(|| Int64Array::new_null(b.num_rows())))
            };
            let times = |name: &str| -> Result<TimestampMicrosecondArray> {
                let c = column(name, &timestamp_type())?;
                Ok(c.as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .cloned()
                    .unwrap_or_else(|| TimestampMicrosecondArray::new_null(b.num_rows())))
            };
            let (ws, id, ds, file, format, object, strategy, status, error) = (
                texts("workspace_id")?,
                texts("batch_id")?,
                texts("dataset")?,
                texts("file")?,
                texts("format")?,
                texts("object")?,
                texts("strategy")?,
                texts("status")?,
                texts("error")?,
            );
            let (ins, upd, skip, quar, before, after, rollback) = (
                ints("rows_inserted")?,
                ints("rows_updated")?,
                ints("rows_skipped")?,
                ints("rows_quarantined")?,
                ints("version_before")?,
                ints("version_after")?,
                ints("rollback_version")?,
            );
            let (created, applied, rolled) = (
                times("created_at")?,
                times("applied_at")?,
                times("rolled_back_at")?,
            );
            let s = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            let n = |a: &Int64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
            let t = |a: &TimestampMicrosecondArray, i: usize| {
                (!a.is_null(i))
                    .then(|| DateTime::from_timestamp_micros(a.value(i)))
                    .flatten()
            };
            for i in 0..b.num_rows() {
                out.push(ImportBatch {
                    workspace_id: s(&ws, i).unwrap_or_default(),
                    batch_id: s(&id, i).unwrap_or_default(),
                    dataset: s(&ds, i).unwrap_or_default(),
                    file: s(&file, i).unwrap_or_default(),
                    format: s(&format, i).unwrap_or_default(),
                    object: s(&object, i),
                    strategy: s(&strategy, i).unwrap_or_default(),
                    status: s(&status, i)
                        .and_then(|v| BatchStatus::parse(&v))
                        .unwrap_or(BatchStatus::Failed),
                    error: s(&error, i),
                    rows_inserted: n(&ins, i),
                    rows_updated: n(&upd, i),
                    rows_skipped: n(&skip, i),
                    rows_quarantined: n(&quar, i),
                    version_before: n(&before, i),
                    version_after: n(&after, i),
                    rollback_version: n(&rollback, i),
                    created_at: t(&created, i).unwrap_or_default(),
                    applied_at: t(&applied, i),
                    rolled_back_at: t(&rolled, i),
                });
            }
        }
        Ok(out)
    }
}

/// Appends a new batch's row to `ops.import_batches`.
pub(crate) async fn append(lake: &Lake, row: &ImportBatch) -> Result<()> {
    let declared = schema()?;
    let batch = ImportBatch::to_record_batch(std::slice::from_ref(row))?;
    lake.write(dataset()?)
        .with_schema(Some(&declared))
        .with_mode(WriteMode::Append)
        .with_batches(declared.arrow_schema(), vec![batch])
        .await
        .map_err(|source| {
            FileError::ops(
                format!(
                    "recording import batch {} in ops.import_batches",
                    row.batch_id
                ),
                source,
            )
        })?;
    Ok(())
}

/// Writes the changing columns of a recorded batch (status, error, counts, versions, times):
/// a Delta update of its one row, in its workspace's partition.
pub(crate) async fn update(lake: &Lake, row: &ImportBatch) -> Result<()> {
    use datafusion::scalar::ScalarValue;
    let ds = dataset()?;
    let ops = |source: LakeError| {
        FileError::ops(
            format!(
                "updating import batch {} in ops.import_batches",
                row.batch_id
            ),
            source,
        )
    };
    let table = lake.load(&ds, None).await.map_err(ops)?;
    let int = |v: Option<i64>| lit(ScalarValue::Int64(v));
    let time = |t: Option<DateTime<Utc>>| {
        lit(ScalarValue::TimestampMicrosecond(
            micros(t),
            Some("UTC".into()),
        ))
    };
    table
        .update()
        .with_predicate(
            col(WORKSPACE_COLUMN)
                .eq(lit(row.workspace_id.as_str()))
                .and(col("batch_id").eq(lit(row.batch_id.as_str()))),
        )
        .with_update("status", lit(row.status.as_str()))
        .with_update("error", lit(ScalarValue::Utf8(row.error.clone())))
        .with_update("rows_inserted", int(row.rows_inserted))
        .with_update("rows_updated", int(row.rows_updated))
        .with_update("rows_skipped", int(row.rows_skipped))
        .with_update("rows_quarantined", int(row.rows_quarantined))
        .with_update("version_after", int(row.version_after))
        .with_update("rollback_version", int(row.rollback_version))
        .with_update("applied_at", time(row.applied_at))
        .with_update("rolled_back_at", time(row.rolled_back_at))
        .with_commit_properties(
            CommitProperties::default()
                .with_metadata([("revlake.batch_id".to_string(), row.batch_id.clone().into())]),
        )
        .await
        .map_err(|source| {
            ops(LakeError::Delta {
                operation: "update",
                dataset: ds.clone(),
                url: lake.table_url(&ds).to_string(),
                source: Box::new(source),
            })
        })?;
    Ok(())
}

/// Which batches [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct BatchFilter {
    pub dataset: Option<DatasetRef>,
    pub workspace: Option<WorkspaceId>,
    pub status: Option<BatchStatus>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// The recorded batches, newest first.
pub async fn list(lake: &Lake, filter: &BatchFilter) -> Result<Vec<ImportBatch>> {
    let ds = dataset()?;
    let Some(table) = lake
        .try_load(&ds)
        .await
        .map_err(|source| FileError::ops("loading ops.import_batches", source))?
    else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = schema()?.columns.iter().map(|c| c.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let batches = super::existing::read_raw(&table, &ds, filter.workspace.as_ref(), &names).await?;
    let mut rows: Vec<ImportBatch> = ImportBatch::from_record_batches(&batches)?
        .into_iter()
        .filter(|b| {
            filter
                .dataset
                .as_ref()
                .is_none_or(|d| b.dataset == d.to_string())
                && filter.status.is_none_or(|s| b.status == s)
        })
        .collect();
    rows.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(b.batch_id.cmp(&a.batch_id))
    });
    if let Some(n) = filter.limit {
        rows.truncate(n);
    }
    Ok(rows)
}

/// What a rollback did.
#[derive(Debug, Clone)]
pub struct Rollback {
    pub batch: ImportBatch,
    pub dataset: String,
    /// The version the dataset was restored to.
    pub restored_to: i64,
    /// The version the restore committed.
    pub version: i64,
    /// Later batches undone with it (`--force`).
    pub also_rolled_back: Vec<String>,
}

/// Rolls batch `batch_id` back: restores its dataset to the version before it (a new commit)
/// and deletes the stage changes it recorded. Refused, naming them, when the dataset was
/// written after the batch, unless `force` (which undoes those writes too).
pub async fn rollback(lake: &Lake, batch_id: &str, force: bool) -> Result<Rollback> {
    let all = list(lake, &BatchFilter::default()).await?;
    let batch = all
        .iter()
        .find(|b| b.batch_id == batch_id)
        .cloned()
        .ok_or_else(|| FileError::NoSuchBatch {
            batch: batch_id.to_string(),
            lake: lake.url().to_string(),
        })?;
    let state = |reason: String| FileError::BatchState {
        batch: batch_id.to_string(),
        status: batch.status.to_string(),
        reason,
    };
    let after = match (batch.status, batch.version_after) {
        (BatchStatus::Applied | BatchStatus::Failed, Some(v)) => v,
        (BatchStatus::RolledBack, _) => {
            return Err(state(format!(
                "it was rolled back already{}",
                batch
                    .rollback_version
                    .map(|v| format!(" (version {v} of {})", batch.dataset))
                    .unwrap_or_default()
            )));
        }
        (BatchStatus::Pending, _) => {
            return Err(state(
                "it has not finished (or was killed before it committed): nothing to roll back"
                    .into(),
            ));
        }
        _ => return Err(state("it committed nothing: nothing to roll back".into())),
    };
    let ds: DatasetRef = batch
        .dataset
        .parse()
        .map_err(|source| FileError::ops(format!("reading batch {batch_id}"), source))?;
    let lake_err = |what: String| move |source: LakeError| FileError::ops(what, source);
    let table = lake
        .load(&ds, None)
        .await
        .map_err(lake_err(format!("loading {ds}")))?;
    let current = table.version().map_or(-1, |v| v as i64);
    let restore_to = match batch.version_before {
        Some(v) => v,
        None => {
            // The batch created the table: version 0 is the empty creation commit.
            let first = lake
                .load(&ds, Some(&AsOf::Version(0)))
                .await
                .map_err(lake_err(format!("loading version 0 of {ds}")))?;
            let empty = first
                .snapshot()
                .map(|s| s.log_data().num_files() == 0)
                .unwrap_or(false);
            if !empty || after == 0 {
                return Err(state(format!("{ds} has no version before it to restore")));
            }
            0
        }
    };
    let later_batches: Vec<&ImportBatch> = all
        .iter()
        .filter(|b| {
            b.dataset == batch.dataset
                && b.batch_id != batch.batch_id
                && b.status == BatchStatus::Applied
                && b.version_after.is_some_and(|v| v > after)
        })
        .collect();
    if current > after && !force {
        let mut later = Vec::new();
        for v in (after + 1)..=current {
            later.push(describe_commit(&table, v, &all).await);
        }
        return Err(FileError::LaterWrites {
            batch: batch_id.to_string(),
            dataset: ds.to_string(),
            restore_to,
            later,
        });
    }
    let commit = CommitProperties::default().with_metadata([
        ("revlake.rollback_of".to_string(), batch_id.into()),
        ("revlake.dataset".to_string(), ds.to_string().into()),
    ]);
    let (restored, _) = table
        .restore()
        .with_version_to_restore(restore_to as u64)
        .with_commit_properties(commit)
        .await
        .map_err(|source| FileError::Ops {
            what: format!("restoring {ds} to version {restore_to}"),
            source: Box::new(LakeError::Delta {
                operation: "restore",
                dataset: ds.clone(),
                url: lake.table_url(&ds).to_string(),
                source: Box::new(source),
            }),
        })?;
    let version = restored.version().map_or(-1, |v| v as i64);

    let mut undone: Vec<ImportBatch> = std::iter::once(&batch)
        .chain(if force {
            later_batches.clone()
        } else {
            Vec::new()
        })
        .cloned()
        .collect();
    let ids: Vec<String> = undone.iter().map(|b| b.batch_id.clone()).collect();
    let source = batch
        .object
        .as_deref()
        .and_then(|o| o.split_once('.'))
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| ds.table.split('_').next().unwrap_or("").to_string());
    if !source.is_empty() {
        super::snapshots::delete_batches(lake, &super::snapshots::dataset(&source)?, &ids).await?;
    }
    let now = Utc::now();
    for b in &mut undone {
        b.status = BatchStatus::RolledBack;
        b.rolled_back_at = Some(now);
        b.rollback_version = Some(version);
    }
    for b in &undone {
        update(lake, b).await?;
    }
    tracing::info!(batch = batch_id, dataset = %ds, restored_to = restore_to, version, "import batch rolled back");
    let mut updated = undone.remove(0);
    updated.rollback_version = Some(version);
    Ok(Rollback {
        batch: updated,
        dataset: ds.to_string(),
        restored_to: restore_to,
        version,
        also_rolled_back: undone.into_iter().map(|b| b.batch_id).collect(),
    })
}

/// `version 7 (batch 1f2e…, WRITE at 2025-06-01T12:00:00Z)`, from the commit's `commitInfo`.
async fn describe_commit(
    table: &deltalake::DeltaTable,
    version: i64,
    batches: &[ImportBatch],
) -> String {
    let info: Option<serde_json::Value> =
        match table.log_store().read_commit_entry(version as u64).await {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v.get("commitInfo").cloned()),
            _ => None,
        };
    let Some(info) = info else {
        return format!("version {version}");
    };
    let text = |k: &str| info.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let operation = text("operation").unwrap_or_else(|| "commit".into());
    let at = info
        .get("timestamp")
        .and_then(|t| t.as_i64())
        .and_then(DateTime::from_timestamp_millis)
        .map(|t| {
            format!(
                " at {}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .unwrap_or_default();
    let by = text("revlake.batch_id")
        .map(|b| {
            let status = batches
                .iter()
                .find(|x| x.batch_id == b)
                .map(|x| format!(", {}", x.status))
                .unwrap_or_default();
            format!("import batch {b}{status}, ")
        })
        .or_else(|| text("revlake.rollback_of").map(|b| format!("rollback of {b}, ")))
        .or_else(|| text("revlake.sync_id").map(|s| format!("sync {s}, ")))
        .unwrap_or_default();
    format!("version {version} ({by}{operation}{at})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImportBatch {
        ImportBatch {
            workspace_id: "acme".into(),
            batch_id: "b1".into(),
            dataset: "raw.crm_deals".into(),
            file: "deals.csv".into(),
            format: "csv".into(),
            object: Some("salesforce.Opportunity".into()),
            strategy: "replace".into(),
            status: BatchStatus::Applied,
            error: None,
            rows_inserted: Some(3),
            rows_updated: Some(0),
            rows_skipped: Some(1),
            rows_quarantined: Some(1),
            version_before: None,
            version_after: Some(1),
            rollback_version: None,
            created_at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
            applied_at: DateTime::from_timestamp_micros(1_700_000_001_000_000),
            rolled_back_at: None,
        }
    }

    #[test]
    fn batch_rows_match_the_declared_schema_and_read_back() {
        let b = sample();
        let rb = ImportBatch::to_record_batch(std::slice::from_ref(&b)).unwrap();
        assert_eq!(rb.schema(), schema().unwrap().arrow_schema());
        assert_eq!(ImportBatch::from_record_batches(&[rb]).unwrap(), vec![b]);
    }

    #[tokio::test]
    async fn batches_are_recorded_updated_and_listed_newest_first() {
        let lake = Lake::open(&format!("memory://b{}/", uuid::Uuid::new_v4().simple()))
            .await
            .unwrap();
        let mut first = sample();
        first.status = BatchStatus::Pending;
        append(&lake, &first).await.unwrap();
        first.status = BatchStatus::Applied;
        first.error = Some("none".into());
        update(&lake, &first).await.unwrap();
        let mut second = sample();
        second.batch_id = "b2".into();
        second.created_at += chrono::Duration::seconds(5);
        append(&lake, &second).await.unwrap();
        let rows = list(&lake, &BatchFilter::default()).await.unwrap();
        assert_eq!(
            rows.iter()
                .map(|b| (b.batch_id.as_str(), b.status))
                .collect::<Vec<_>>(),
            [("b2", BatchStatus::Applied), ("b1", BatchStatus::Applied)]
        );
        assert_eq!(rows[1], first);
        let err = rollback(&lake, "nope", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no import batch `nope`"), "{err}");
    }
}
