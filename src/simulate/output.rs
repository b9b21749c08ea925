//! Writing the simulation marts (`marts.deal_forecasts`, `marts.pipeline_forecast`,
//! `marts.recommendations`): one batch built from named columns, one commit carrying the run's
//! seed and runs.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};

use super::engine::SimConfig;
use super::error::{Result, SimulateError};
use crate::lake::{DatasetRef, Lake, WriteMode, WriteOutcome};
use crate::project::DatasetSchema;

/// A batch of `columns` (name, values, nullable), its schema taken from the arrays.
pub(crate) fn batch_of(
    dataset: DatasetRef,
    columns: Vec<(&str, ArrayRef, bool)>,
) -> Result<RecordBatch> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, a, nullable)| Field::new(*name, a.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a, _)| a).collect(),
    )
    .map_err(|source| SimulateError::Arrow { dataset, source })
}

/// Writes `batch` to the mart `name` in `mode` (a merge on `merge_key` when given), the commit
/// recording the seed and runs that produced it.
pub(crate) async fn write_mart(
    lake: &Lake,
    name: &str,
    schema: Option<&DatasetSchema>,
    mode: WriteMode,
    merge_key: Option<Vec<String>>,
    config: &SimConfig,
    batch: RecordBatch,
) -> Result<WriteOutcome> {
    let dataset: DatasetRef = name.parse()?;
    let mut write = lake
        .write(dataset)
        .with_schema(schema)
        .with_mode(mode)
        .with_commit_metadata("revlake.simulate.seed", config.seed.into())
        .with_commit_metadata("revlake.simulate.runs", config.runs.into());
    if let Some(key) = merge_key {
        write = write.with_merge_key(key);
    }
    let outcome = write.with_batches(batch.schema(), vec![batch]).await?;
    crate::telemetry::dataset_written(name, outcome.version, outcome.rows);
    Ok(outcome)
}
