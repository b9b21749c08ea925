//! `ops.exports`: one row per dataset per export, and the last version loaded into a table.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use datafusion::prelude::SessionContext;

use super::error::{ExportError, Result};
use super::{ExportRun, Status};
use crate::lake::{DatasetRef, Lake, WriteMode};
use crate::project::DatasetSchema;

/// Where every export appends its outcomes.
pub const EXPORTS_DATASET: &str = "ops.exports";

const EXPORTS_SCHEMA: &str = include_str!("../../schemas/ops.exports.toml");

/// The last version of `dataset` that `target` loaded into `table` for `workspace`
/// successfully, or `None`.
pub async fn last_exported_version(
    lake: &Lake,
    target: &str,
    dataset: &DatasetRef,
    workspace: &str,
    table: &str,
) -> Result<Option<i64>> {
    let ops: DatasetRef = EXPORTS_DATASET.parse()?;
    let Some(delta) = lake.try_load(&ops).await? else {
        return Ok(None);
    };
    let ctx = SessionContext::new();
    let read_err = |source| ExportError::Read {
        dataset: EXPORTS_DATASET.to_string(),
        source: Box::new(source),
    };
    delta
        .update_datafusion_session(&ctx.state())
        .map_err(|source| lake.delta_err("register", &ops, source))?;
    let provider = delta.table_provider().await.map_err(read_err)?;
    ctx.register_table("exports", provider).map_err(read_err)?;
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let sql = format!(
        "SELECT max(version) AS v FROM exports WHERE status = 'succeeded' AND target = {} AND dataset = {} AND workspace_id = {} AND target_table = {}",
        q(target),
        q(&dataset.to_string()),
        q(workspace),
        q(table)
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(read_err)?
        .collect()
        .await
        .map_err(read_err)?;
    let version = batches.first().and_then(|b| {
        let a = b.column(0).as_any().downcast_ref::<Int64Array>()?;
        (!a.is_empty() && a.is_valid(0)).then(|| a.value(0))
    });
    Ok(version)
}

/// Appends the run's outcomes to `ops.exports` as one commit.
pub async fn record(lake: &Lake, run: &ExportRun, workspace: &str) -> Result<Option<i64>> {
    let rows: Vec<_> = run
        .outcomes
        .iter()
        .filter(|o| o.status != Status::Planned)
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let dataset: DatasetRef = EXPORTS_DATASET.parse()?;
    let schema = DatasetSchema::parse(
        dataset.clone(),
        EXPORTS_SCHEMA,
        std::path::Path::new("schemas/ops.exports.toml"),
    )?;
    let now = chrono::Utc::now().timestamp_micros();
    let strs = |f: &dyn Fn(&super::DatasetOutcome) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|o| f(o)).collect::<Vec<_>>(),
        ))
    };
    let ints = |f: &dyn Fn(&super::DatasetOutcome) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|o| f(o))))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("workspace_id", strs(&|_| Some(workspace.to_string()))),
        ("export_id", strs(&|_| Some(run.export_id.clone()))),
        ("target", strs(&|_| Some(run.target.clone()))),
        ("warehouse", strs(&|_| Some(run.warehouse.to_string()))),
        ("dataset", strs(&|o| Some(o.dataset.to_string()))),
        ("version", ints(&|o| o.version)),
        ("target_table", strs(&|o| Some(o.target_table.clone()))),
        ("mode", strs(&|o| Some(o.mode.as_str().to_string()))),
        ("rows", ints(&|o| o.rows as i64)),
        ("files", ints(&|o| o.files as i64)),
        ("bytes", ints(&|o| o.bytes as i64)),
        ("status", strs(&|o| Some(o.status.to_string()))),
        ("error", strs(&|o| o.error.clone())),
        (
            "exported_at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| now))
                    .with_timezone("UTC"),
            ),
        ),
    ];
    let arrow_schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| {
                let nullable = schema.column(n).is_none_or(|c| c.nullable);
                Field::new(*n, a.data_type().clone(), nullable)
            })
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        arrow_schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    let outcome = lake
        .write(dataset)
        .with_schema(Some(&schema))
        .with_mode(WriteMode::Append)
        .with_commit_metadata("revlake.export.id", run.export_id.clone().into())
        .with_batches(arrow_schema, vec![batch])
        .await?;
    crate::telemetry::dataset_written(EXPORTS_DATASET, outcome.version, outcome.rows);
    Ok(Some(outcome.version))
}
