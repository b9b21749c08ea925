//! The dry run of an upload: the same import (`sources::file::import_file`, same options, same
//! declared schema) into a scratch lake in a temporary folder that holds an empty copy of the
//! target table (so columns are typed as the real import would type them). It tells what the
//! upload would land, which records would not fit, and, against the real target, which records
//! it already holds; nothing of the real lake is written.

use std::collections::HashSet;

use arrow::array::RecordBatch;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::files::ImportOptions;
use super::read_rows;
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode};
use crate::project::{DatasetSchema, WORKSPACE_COLUMN};
use crate::serve::error::ApiError;
use crate::sources::file::{FileError, ImportOutcome, ObjectMap, import_file};

/// Bad records listed in an answer (the count is always whole).
const LISTED: usize = 20;

/// Columns every landed raw row has; not part of a mapping.
const SYSTEM_COLUMNS: &[&str] = &[WORKSPACE_COLUMN, "source_data", "_sync_id", "_synced_at"];

/// A record the import would not land.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BadRecord {
    /// The line it starts on (the row of a sheet).
    pub line: Option<i64>,
    /// The column and why (`column `amount`: `n/a` is not a number`).
    pub reason: String,
}

/// The import of the upload into the scratch lake.
pub(super) struct DryRun {
    pub outcome: ImportOutcome,
    pub bad: Vec<BadRecord>,
    scratch: Lake,
    _dir: tempfile::TempDir,
}

/// A file error: the client's (400, naming the file and line) or the server's.
pub(super) fn file_error(context: &str, e: FileError) -> ApiError {
    if e.is_user_error() {
        ApiError::bad_request("bad_file", e.to_string())
    } else {
        ApiError::internal(context, &e)
    }
}

/// Imports the upload at `url` into a scratch lake, as the real import would.
pub(super) async fn dry_run(
    lake: &Lake,
    url: &str,
    workspace: &WorkspaceId,
    dataset: &DatasetRef,
    options: &ImportOptions,
    schema: Option<&DatasetSchema>,
) -> Result<DryRun, ApiError> {
    let dir = tempfile::Builder::new()
        .prefix("revlake-preview-")
        .tempdir()
        .map_err(|e| ApiError::internal("creating the preview folder", &e))?;
    let scratch = Lake::open(&dir.path().display().to_string())
        .await
        .map_err(|e| ApiError::internal("opening the preview lake", &e))?;
    let held = lake
        .arrow_schema(dataset)
        .await
        .map_err(|e| ApiError::internal("reading the target's schema", &e))?;
    if let Some(schema) = held {
        scratch
            .write(dataset.clone())
            .with_mode(WriteMode::Append)
            .with_batches(schema.clone(), vec![RecordBatch::new_empty(schema)])
            .await
            .map_err(|e| ApiError::internal("copying the target's schema", &e))?;
    }
    let outcome = options
        .apply(import_file(&scratch, url, workspace.clone()), dataset)
        .with_schema(schema)
        .with_storage_options(lake.storage_options().clone())
        .await
        .map_err(|e| file_error("previewing the upload", e))?;
    let quarantine = DatasetRef::new(Layer::Ops, "quarantine").expect("a valid name");
    let rows = read_rows(&scratch, &quarantine, workspace, &[], &["line", "reason"]).await?;
    let mut bad: Vec<BadRecord> = rows
        .into_iter()
        .map(|r| BadRecord {
            line: r.get("line").and_then(Value::as_i64),
            reason: r
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    bad.sort_by_key(|b| b.line);
    Ok(DryRun {
        outcome,
        bad,
        scratch,
        _dir: dir,
    })
}

/// The refusal of an upload whose records do not all fit, naming the first ones.
pub(super) fn refuse_bad_records(file: &str, bad: &[BadRecord]) -> ApiError {
    let listed: Vec<String> = bad
        .iter()
        .take(5)
        .map(|b| match b.line {
            Some(l) => format!("line {l}: {}", b.reason),
            None => b.reason.clone(),
        })
        .collect();
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "bad_records",
        format!(
            "{file}: {} record(s) do not fit the target's columns, nothing was written: {}{} (fix the file, or send quarantine=true to land the rest and set these aside in ops.quarantine)",
            bad.len(),
            listed.join("; "),
            if bad.len() > listed.len() {
                "; ..."
            } else {
                ""
            }
        ),
    )
}

/// A column of the file and its place in the target.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnMapping {
    /// The header (or JSON key) in the file.
    pub header: String,
    /// The column it lands as.
    pub column: String,
    /// The type it lands with (the target's, the declared schema's, else inferred).
    pub data_type: String,
    /// The target column's type (none: the column is new to the target).
    pub target_type: Option<String>,
}

/// Records of the file the target already holds, by the key.
#[derive(Debug, Serialize, ToSchema)]
pub struct Duplicates {
    /// The key columns (landed names); empty when none is known (no duplicates counted).
    pub key: Vec<String>,
    /// Records whose key the workspace's rows of the target hold.
    pub in_target: u64,
    /// Records whose key an earlier record of the file has.
    pub in_file: u64,
    /// Some of the keys held (at most 20).
    pub sample: Vec<String>,
}

/// What applying an upload would do.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    pub upload_id: String,
    pub dataset: String,
    /// csv, tsv, json, ndjson, xlsx, parquet.
    pub format: String,
    pub encoding: Option<String>,
    pub delimiter: Option<String>,
    pub records: u64,
    /// The file's columns: detected type and the target column each maps to.
    pub columns: Vec<ColumnMapping>,
    /// Target columns the file does not have (landed null).
    pub target_columns_missing: Vec<String>,
    pub target_exists: bool,
    /// The workspace's rows in the target now.
    pub target_rows: u64,
    pub duplicates: Duplicates,
    /// Records that do not fit (applying refuses them unless quarantine=true).
    pub bad_records: u64,
    pub bad_record_lines: Vec<BadRecord>,
    /// replace, merge or append.
    pub recommended_strategy: String,
    pub reason: String,
    pub warnings: Vec<String>,
}

/// The key records are told apart by: the request's, the declared primary key, else the
/// vendor object's id, as landed names the file has.
fn key_columns(
    options: &ImportOptions,
    dataset: &DatasetRef,
    schema: Option<&DatasetSchema>,
    landed: &[String],
) -> Vec<String> {
    let has = |k: &String| landed.contains(k);
    if !options.key.is_empty() {
        return options.key.clone();
    }
    if let Some(s) = schema {
        let key: Vec<String> = s
            .primary_key
            .iter()
            .filter(|k| k.as_str() != WORKSPACE_COLUMN)
            .cloned()
            .collect();
        if !key.is_empty() && key.iter().all(has) {
            return key;
        }
    }
    let map = match &options.object {
        Some(o) => ObjectMap::builtin(o).ok(),
        None => ObjectMap::for_dataset(dataset).ok().flatten(),
    };
    map.and_then(|m| m.key)
        .map(|api| crate::sources::naming::column_names(&[api]))
        .filter(|k| k.iter().all(has))
        .unwrap_or_default()
}

fn key_text(row: &serde_json::Map<String, Value>, key: &[String]) -> String {
    key.iter()
        .map(|k| match row.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// The preview of the dry run `dry` of upload `upload_id` against the real `lake`.
pub(super) async fn preview(
    lake: &Lake,
    upload_id: &str,
    workspace: &WorkspaceId,
    dataset: &DatasetRef,
    options: &ImportOptions,
    schema: Option<&DatasetSchema>,
    dry: &DryRun,
) -> Result<Preview, ApiError> {
    let o = &dry.outcome;
    let held = lake
        .arrow_schema(dataset)
        .await
        .map_err(|e| ApiError::internal("reading the target's schema", &e))?;
    let target_type = |name: &str| -> Option<String> {
        held.as_ref()
            .and_then(|s| s.field_with_name(name).ok())
            .map(|f| f.data_type().to_string())
    };
    let columns: Vec<ColumnMapping> = o
        .columns
        .iter()
        .map(|c| ColumnMapping {
            header: c.header.clone(),
            column: c.column.clone(),
            data_type: c.data_type.clone(),
            target_type: target_type(&c.column),
        })
        .collect();
    let landed: Vec<String> = o.columns.iter().map(|c| c.column.clone()).collect();
    let target_columns_missing = held
        .as_ref()
        .map(|s| {
            s.fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| !landed.contains(n) && !SYSTEM_COLUMNS.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let key = key_columns(options, dataset, schema, &landed);
    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
    let target_has_key = held
        .as_ref()
        .is_some_and(|s| key.iter().all(|k| s.field_with_name(k).is_ok()));
    // The workspace's rows of the target: their keys (or just the count when no key applies).
    let mut target_rows = 0u64;
    let mut target_keys: HashSet<String> = HashSet::new();
    if held.is_some() {
        let columns: Vec<&str> = if !key.is_empty() && target_has_key {
            key_refs.clone()
        } else {
            vec![WORKSPACE_COLUMN]
        };
        let rows = read_rows(lake, dataset, workspace, &[], &columns).await?;
        target_rows = rows.len() as u64;
        if !key.is_empty() && target_has_key {
            target_keys = rows.iter().map(|r| key_text(r, &key)).collect();
        }
    }
    let mut duplicates = Duplicates {
        key: key.clone(),
        in_target: 0,
        in_file: 0,
        sample: Vec::new(),
    };
    if !key.is_empty() {
        let file_rows = read_rows(&dry.scratch, dataset, workspace, &[], &key_refs).await?;
        let mut seen = HashSet::new();
        for r in &file_rows {
            let k = key_text(r, &key);
            if target_keys.contains(&k) {
                duplicates.in_target += 1;
                if duplicates.sample.len() < LISTED {
                    duplicates.sample.push(k.replace('\u{1f}', "|"));
                }
            }
            if !seen.insert(k) {
                duplicates.in_file += 1;
            }
        }
    }
    let (recommended, reason) = if target_rows == 0 {
        (
            "replace",
            "the workspace has no rows in the target: every strategy lands the same rows".into(),
        )
    } else if key.is_empty() {
        (
            "replace",
            "no key tells the file's records from the target's: replace swaps the workspace's rows for the file's, where append could duplicate them".into(),
        )
    } else if duplicates.in_target > 0 {
        (
            "merge",
            format!(
                "{} of {} records are already in the target (by {}): merge updates them and adds the rest, where append would duplicate them",
                duplicates.in_target,
                o.records,
                key.join(", ")
            ),
        )
    } else {
        (
            "append",
            format!(
                "none of the records is in the target (by {}): append adds them and keeps the {target_rows} rows held",
                key.join(", ")
            ),
        )
    };
    Ok(Preview {
        upload_id: upload_id.to_string(),
        dataset: dataset.to_string(),
        format: o.format.to_string(),
        encoding: o.encoding.map(|e| e.as_str().to_string()),
        delimiter: o.delimiter.clone(),
        records: o.records,
        columns,
        target_columns_missing,
        target_exists: held.is_some(),
        target_rows,
        duplicates,
        bad_records: dry.bad.len() as u64,
        bad_record_lines: dry.bad.iter().take(LISTED).cloned().collect(),
        recommended_strategy: recommended.into(),
        reason,
        warnings: o.warnings.clone(),
    })
}
