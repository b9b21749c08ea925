//! The mining marts as Arrow batches, and writing them to the lake.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Float64Builder, Int32Array, Int64Array, ListBuilder,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use super::error::{MiningError, Result};
use super::kernel::WorkspaceMining;
use crate::lake::{DatasetRef, Lake, WorkspaceId, WriteMode};
use crate::project::Project;

/// `marts.stage_transition_matrix`.
pub const MATRIX: &str = "marts.stage_transition_matrix";
/// `marts.stage_durations`.
pub const DURATIONS: &str = "marts.stage_durations";
/// `marts.dfg`.
pub const DFG: &str = "marts.dfg";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, t: DataType, nullable: bool) -> Field {
    Field::new(name, t, nullable)
}

pub fn matrix_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("workspace_id", DataType::Utf8, false),
        f("context_key", DataType::Utf8, false),
        f("context_level", DataType::Int32, false),
        f("from_stage", DataType::Utf8, false),
        f("to_stage", DataType::Utf8, false),
        f("count", DataType::Int64, false),
        f("probability", DataType::Float64, false),
        f("effective_n", DataType::Float64, false),
        f("prior_strength", DataType::Float64, false),
        f("low_confidence", DataType::Boolean, false),
        f("computed_at", ts_type(), false),
    ]))
}

pub fn durations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("workspace_id", DataType::Utf8, false),
        f("stage", DataType::Utf8, false),
        f("context_key", DataType::Utf8, false),
        f("context_level", DataType::Int32, false),
        f("count", DataType::Int64, false),
        f("mean_days", DataType::Float64, false),
        f("median_days", DataType::Float64, false),
        f("p10_days", DataType::Float64, false),
        f("p90_days", DataType::Float64, false),
        f(
            "quantiles",
            DataType::List(Arc::new(Field::new("element", DataType::Float64, true))),
            false,
        ),
        f("advance_rate_by_band", DataType::Utf8, false),
        f("low_confidence", DataType::Boolean, false),
        f("computed_at", ts_type(), false),
    ]))
}

pub fn dfg_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        f("workspace_id", DataType::Utf8, false),
        f("from_stage", DataType::Utf8, false),
        f("to_stage", DataType::Utf8, false),
        f("count", DataType::Int64, false),
        f("median_duration_days", DataType::Float64, true),
        f("is_rework", DataType::Boolean, false),
        f("skipped_stages", DataType::Int32, false),
        f("low_confidence", DataType::Boolean, false),
        f("computed_at", ts_type(), false),
    ]))
}

fn ts_col(at: DateTime<Utc>, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros(); n]).with_timezone("UTC"))
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>, what: &'static str) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(MiningError::arrow(what))
}

/// The matrix rows of `m` as one batch.
pub fn matrix_batch(m: &WorkspaceMining, at: DateTime<Utc>) -> Result<RecordBatch> {
    let rows = &m.matrix;
    let n = rows.len();
    batch(
        matrix_schema(),
        vec![
            Arc::new(StringArray::from(vec![m.workspace.as_str(); n])),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.context_key),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.context_level as i32),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.from_stage),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.to_stage),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.count as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.probability),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.effective_n),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.prior_strength),
            )),
            Arc::new(BooleanArray::from(vec![m.summary.low_confidence; n])),
            ts_col(at, n),
        ],
        "the transition matrix",
    )
}

/// The time-in-stage rows of `m` as one batch.
pub fn durations_batch(m: &WorkspaceMining, at: DateTime<Utc>) -> Result<RecordBatch> {
    let rows = &m.durations;
    let n = rows.len();
    let mut quantiles = ListBuilder::new(Float64Builder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Float64,
        true,
    )));
    for r in rows {
        quantiles.values().append_slice(&r.days.quantiles);
        quantiles.append(true);
    }
    let mut bands = Vec::with_capacity(n);
    for r in rows {
        bands
            .push(serde_json::to_string(&r.advance_by_band).expect("band rates serialize to JSON"));
    }
    batch(
        durations_schema(),
        vec![
            Arc::new(StringArray::from(vec![m.workspace.as_str(); n])),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.stage))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.context_key),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.context_level as i32),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.days.count as i64),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.days.mean),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.days.median),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.days.p10),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.days.p90),
            )),
            Arc::new(quantiles.finish()),
            Arc::new(StringArray::from(bands)),
            Arc::new(BooleanArray::from(vec![m.summary.low_confidence; n])),
            ts_col(at, n),
        ],
        "the stage durations",
    )
}

/// The DFG rows of `m` as one batch.
pub fn dfg_batch(m: &WorkspaceMining, at: DateTime<Utc>) -> Result<RecordBatch> {
    let rows = &m.dfg;
    let n = rows.len();
    batch(
        dfg_schema(),
        vec![
            Arc::new(StringArray::from(vec![m.workspace.as_str(); n])),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.from_stage),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.to_stage),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.count as i64),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| r.median_duration_days),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.is_rework)),
            )),
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.skipped_stages as i32),
            )),
            Arc::new(BooleanArray::from(vec![m.summary.low_confidence; n])),
            ts_col(at, n),
        ],
        "the DFG",
    )
}

/// The Delta versions the three marts were committed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MartVersions {
    pub matrix: i64,
    pub durations: i64,
    pub dfg: i64,
}

/// Writes the three marts: the rows of `workspace` only (`Some`), or the whole tables.
pub async fn write_marts(
    lake: &Lake,
    project: &Project,
    results: &[WorkspaceMining],
    workspace: Option<&WorkspaceId>,
    at: DateTime<Utc>,
) -> Result<MartVersions> {
    let mode = match workspace {
        Some(ws) => WriteMode::OverwriteWorkspace(ws.clone()),
        None => WriteMode::Overwrite,
    };
    let mut versions = [0i64; 3];
    type Builder = fn(&WorkspaceMining, DateTime<Utc>) -> Result<RecordBatch>;
    let marts: [(&str, SchemaRef, Builder); 3] = [
        (MATRIX, matrix_schema(), matrix_batch),
        (DURATIONS, durations_schema(), durations_batch),
        (DFG, dfg_schema(), dfg_batch),
    ];
    for (i, (name, schema, build)) in marts.into_iter().enumerate() {
        let dataset: DatasetRef = name.parse()?;
        let batches = results
            .iter()
            .map(|m| build(m, at))
            .collect::<Result<Vec<_>>>()?;
        let outcome = lake
            .write(dataset.clone())
            .with_schema(project.schema(&dataset))
            .with_mode(mode.clone())
            .with_batches(schema, batches)
            .with_commit_metadata("revlake.operation", "mine".into())
            .await?;
        versions[i] = outcome.version;
    }
    Ok(MartVersions {
        matrix: versions[0],
        durations: versions[1],
        dfg: versions[2],
    })
}
