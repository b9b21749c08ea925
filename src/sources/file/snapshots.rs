//! Stage snapshots: when a file of deals is imported again, the stages it holds are diffed
//! against the raw rows it replaces, and each change is appended to
//! `raw.<source>_stage_snapshots`, so that a source that only exports current state still gets
//! a stage history.
//!
//! | column | meaning |
//! | --- | --- |
//! | `workspace_id` | the workspace |
//! | `deal_key` | the deal's id in the source (the object's key) |
//! | `from_stage` | the stage the raw table held; null the first time a deal is seen |
//! | `to_stage` | the stage in the file |
//! | `observed_at` | the deal's last-modified time in the file, else the import time |
//! | `batch_id` | the import batch (rolling it back deletes its rows) |
//! | `_sync_id` | the sync id of the landed rows |

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{col, lit};

use super::error::{FileError, Result};
use super::kind::timestamp_type;
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};

/// One observed stage change.
#[derive(Debug, Clone, PartialEq)]
pub struct StageChange {
    pub deal_key: String,
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    /// Microseconds since the epoch, UTC.
    pub observed_at: i64,
}

/// The snapshots table of `source`: `raw.<source>_stage_snapshots`.
pub fn dataset(source: &str) -> Result<DatasetRef> {
    DatasetRef::new(Layer::Raw, format!("{source}_stage_snapshots"))
        .map_err(|source| FileError::ops("naming the stage snapshots table", source))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("deal_key", DataType::Utf8, false),
        Field::new("from_stage", DataType::Utf8, true),
        Field::new("to_stage", DataType::Utf8, true),
        Field::new("observed_at", timestamp_type(), false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("_sync_id", DataType::Utf8, false),
    ]))
}

/// The changes between `current` (key → stage in the raw table) and `landed` (key, stage,
/// last-modified of each landed record, in file order; a repeated key counts once, last).
pub fn changes(
    current: &HashMap<String, Option<String>>,
    landed: &[(String, Option<String>, Option<i64>)],
    now: i64,
) -> Vec<StageChange> {
    let mut order: Vec<&str> = Vec::new();
    let mut last: HashMap<&str, (&Option<String>, Option<i64>)> = HashMap::new();
    for (key, stage, modified) in landed {
        if last.insert(key, (stage, *modified)).is_none() {
            order.push(key);
        }
    }
    let mut out = Vec::new();
    for key in order {
        let (stage, modified) = last[key];
        let from = match current.get(key) {
            None if stage.is_none() => continue,
            None => None,
            Some(old) if old == stage => continue,
            Some(old) => old.clone(),
        };
        out.push(StageChange {
            deal_key: key.to_string(),
            from_stage: from,
            to_stage: stage.clone(),
            observed_at: modified.unwrap_or(now),
        });
    }
    out
}

/// Appends `changes` to `dataset` in one commit.
pub(crate) async fn append(
    lake: &Lake,
    dataset: &DatasetRef,
    workspace: &WorkspaceId,
    batch_id: &str,
    sync_id: &str,
    changes: &[StageChange],
) -> Result<()> {
    let ops = |source| {
        FileError::ops(
            format!("appending {} stage changes to {dataset}", changes.len()),
            source,
        )
    };
    let n = changes.len();
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![workspace.as_str(); n])),
            Arc::new(StringArray::from_iter_values(
                changes.iter().map(|c| c.deal_key.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                changes.iter().map(|c| c.from_stage.as_deref()),
            )),
            Arc::new(StringArray::from_iter(
                changes.iter().map(|c| c.to_stage.as_deref()),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(changes.iter().map(|c| c.observed_at))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![batch_id; n])),
            Arc::new(StringArray::from(vec![sync_id; n])),
        ],
    )
    .map_err(|e| FileError::internal("building the stage snapshot batch", e))?;
    lake.write(dataset.clone())
        .with_batches(schema(), vec![batch])
        .with_commit_metadata("revlake.batch_id", batch_id.into())
        .await
        .map_err(ops)?;
    Ok(())
}

/// Deletes the rows of `batch_ids` from `dataset` (a rollback), if the table exists.
pub(crate) async fn delete_batches(
    lake: &Lake,
    dataset: &DatasetRef,
    batch_ids: &[String],
) -> Result<()> {
    let ops = |source| {
        FileError::ops(
            format!("deleting rolled-back stage changes from {dataset}"),
            source,
        )
    };
    let Some(table) = lake.try_load(dataset).await.map_err(ops)? else {
        return Ok(());
    };
    let Some(predicate) = batch_ids
        .iter()
        .map(|b| col("batch_id").eq(lit(b.as_str())))
        .reduce(|a, b| a.or(b))
    else {
        return Ok(());
    };
    table
        .delete()
        .with_predicate(predicate)
        .await
        .map_err(|source| FileError::Ops {
            what: format!("deleting rolled-back stage changes from {dataset}"),
            source: Box::new(crate::lake::LakeError::Delta {
                operation: "delete",
                dataset: dataset.clone(),
                url: lake.table_url(dataset).to_string(),
                source: Box::new(source),
            }),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_new_deals_and_moved_stages() {
        let current: HashMap<String, Option<String>> = [
            ("d1".to_string(), Some("Prospecting".to_string())),
            ("d2".to_string(), Some("Qualification".to_string())),
            ("d3".to_string(), Some("Closed Won".to_string())),
        ]
        .into();
        let s = |v: &str| Some(v.to_string());
        let landed = vec![
            ("d1".to_string(), s("Prospecting"), Some(10)),
            ("d2".to_string(), s("Needs Analysis"), Some(20)),
            ("d4".to_string(), s("Prospecting"), None),
            ("d5".to_string(), None, None),
        ];
        assert_eq!(
            changes(&current, &landed, 99),
            vec![
                StageChange {
                    deal_key: "d2".into(),
                    from_stage: s("Qualification"),
                    to_stage: s("Needs Analysis"),
                    observed_at: 20
                },
                StageChange {
                    deal_key: "d4".into(),
                    from_stage: None,
                    to_stage: s("Prospecting"),
                    observed_at: 99
                },
            ]
        );
    }
}
