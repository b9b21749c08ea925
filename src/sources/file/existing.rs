//! What the lake holds before an import: a dataset's version and schema, and some of its
//! columns for one workspace (to diff a file against).

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::prelude::{SessionContext, cast, col, lit};
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryFromKernel;

use super::error::{FileError, Result};
use crate::lake::{DatasetRef, Lake, WorkspaceId};
use crate::project::WORKSPACE_COLUMN;

/// A dataset as it is before the import.
pub(crate) struct Existing {
    pub table: Option<DeltaTable>,
    pub version: Option<i64>,
    pub schema: Option<SchemaRef>,
}

impl Existing {
    pub(crate) async fn load(lake: &Lake, dataset: &DatasetRef) -> Result<Self> {
        let table = lake
            .try_load(dataset)
            .await
            .map_err(|source| FileError::ops(format!("loading {dataset}"), source))?;
        let Some(table) = table else {
            return Ok(Existing {
                table: None,
                version: None,
                schema: None,
            });
        };
        let version = table.version().map(|v| v as i64);
        let schema = match table.snapshot() {
            Ok(s) => Some(Arc::new(
                Schema::try_from_kernel(s.schema().as_ref()).map_err(|e| FileError::Read {
                    dataset: dataset.to_string(),
                    reason: format!("its schema has no Arrow equivalent: {e}"),
                })?,
            )),
            Err(_) => None,
        };
        Ok(Existing {
            table: Some(table),
            version,
            schema,
        })
    }

    /// Whether the table has every one of `columns`.
    pub(crate) fn has_columns(&self, columns: &[&str]) -> bool {
        self.schema
            .as_ref()
            .is_some_and(|s| columns.iter().all(|c| s.column_with_name(c).is_some()))
    }

    /// `columns` (as text) of the workspace's rows; empty when the table does not exist.
    pub(crate) async fn read_text(
        &self,
        dataset: &DatasetRef,
        workspace: &WorkspaceId,
        columns: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>> {
        let Some(table) = &self.table else {
            return Ok(Vec::new());
        };
        let batches = read(table, dataset, Some(workspace), columns, true).await?;
        let mut rows = Vec::new();
        for b in &batches {
            let arrays: Vec<&StringArray> = (0..b.num_columns())
                .map(|i| {
                    b.column(i)
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| FileError::internal("reading existing rows", "not text"))
                })
                .collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                rows.push(
                    arrays
                        .iter()
                        .map(|a| (!a.is_null(r)).then(|| a.value(r).to_string()))
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

/// `columns` of `table` as stored, optionally for one workspace's rows.
pub(crate) async fn read_raw(
    table: &DeltaTable,
    dataset: &DatasetRef,
    workspace: Option<&WorkspaceId>,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    read(table, dataset, workspace, columns, false).await
}

/// `columns` of `table` (cast to text with `as_text`), optionally for one workspace's rows.
async fn read(
    table: &DeltaTable,
    dataset: &DatasetRef,
    workspace: Option<&WorkspaceId>,
    columns: &[&str],
    as_text: bool,
) -> Result<Vec<RecordBatch>> {
    let failed = |e: &dyn std::fmt::Display| FileError::Read {
        dataset: dataset.to_string(),
        reason: e.to_string(),
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| failed(&e))?;
    let provider = table.table_provider().await.map_err(|e| failed(&e))?;
    let mut df = ctx.read_table(provider).map_err(|e| failed(&e))?;
    if let Some(ws) = workspace {
        df = df
            .filter(col(WORKSPACE_COLUMN).eq(lit(ws.as_str())))
            .map_err(|e| failed(&e))?;
    }
    let exprs = columns
        .iter()
        .map(|c| {
            let column = col(datafusion::common::Column::new_unqualified(*c));
            if as_text {
                cast(column, DataType::Utf8).alias(*c)
            } else {
                column
            }
        })
        .collect::<Vec<_>>();
    df.select(exprs)
        .map_err(|e| failed(&e))?
        .collect()
        .await
        .map_err(|e| failed(&e))
}
