//! `ops.quarantine`: records an import could not land, with the file, line and reason.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::Utc;

use super::error::{FileError, Result};
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};

/// A record that could not be landed.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// The line the record starts on (the row number in a sheet).
    pub line: u64,
    pub reason: String,
    /// The record as read.
    pub record: String,
}

/// Appends `rows` to `ops.quarantine` in one commit.
pub(crate) async fn write(
    lake: &Lake,
    workspace: &WorkspaceId,
    dataset: &DatasetRef,
    sync_id: &str,
    file: &str,
    rows: &[Quarantined],
) -> Result<()> {
    let ops = |source| {
        FileError::ops(
            format!("quarantining {} records of {file}", rows.len()),
            source,
        )
    };
    let target = DatasetRef::new(Layer::Ops, "quarantine").map_err(ops)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("sync_id", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("record", DataType::Utf8, true),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let n = rows.len();
    let now = Utc::now().timestamp_micros();
    let repeat = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s; n])) };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            repeat(workspace.as_str()),
            repeat(&dataset.to_string()),
            repeat(sync_id),
            repeat(file),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.line as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.reason.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.record.as_str()),
            )),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ],
    )
    .map_err(|e| FileError::internal("building the quarantine batch", e))?;
    lake.write(target)
        .with_batches(schema, vec![batch])
        .await
        .map_err(ops)?;
    Ok(())
}
