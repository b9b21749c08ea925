//! Shared fixtures: small deal tables in two workspaces, and failing streams.

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use revlake::lake::{DatasetRef, Lake};
use revlake::project::DatasetSchema;

/// A schema for `staging.deals`-like test tables: workspace_id, id, stage, amount.
pub const DEALS_SCHEMA: &str = r#"
description = "test deals"
primary_key = ["workspace_id", "id"]
partition_by = ["workspace_id"]

[[columns]]
name = "workspace_id"
type = "string"
nullable = false

[[columns]]
name = "id"
type = "string"
nullable = false

[[columns]]
name = "stage"
type = "string"

[[columns]]
name = "amount"
type = "float64"
"#;

pub fn deals_schema(dataset: &str) -> DatasetSchema {
    DatasetSchema::parse(
        dataset.parse().unwrap(),
        DEALS_SCHEMA,
        std::path::Path::new("test.toml"),
    )
    .unwrap()
}

pub fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("workspace_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]))
}

/// A batch of deals `(workspace, id, stage, amount)`.
pub fn deals(rows: &[(&str, &str, &str, f64)]) -> RecordBatch {
    RecordBatch::try_new(
        arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .unwrap()
}

/// A stream that yields `good` batches of 100 rows and then fails, like a source dying midway.
pub fn failing_stream(workspace: &'static str, good: usize) -> SendableRecordBatchStream {
    let batches: Vec<datafusion::error::Result<RecordBatch>> = (0..good)
        .map(|b| {
            let ids: Vec<String> = (0..100).map(|i| format!("fail-{b}-{i}")).collect();
            let rows: Vec<(&str, &str, &str, f64)> = ids
                .iter()
                .map(|id| (workspace, id.as_str(), "lead", 1.0))
                .collect();
            Ok(deals(&rows))
        })
        .chain(std::iter::once(Err(
            datafusion::error::DataFusionError::Execution("source connection reset".into()),
        )))
        .collect();
    Box::pin(RecordBatchStreamAdapter::new(
        arrow_schema(),
        futures::stream::iter(batches),
    ))
}

/// Rows of `sql` as strings (`col=value` joined by `,`), sorted, for order-free comparison.
pub async fn rows(session: &revlake::sql::SqlSession, sql: &str) -> Vec<String> {
    let df = session.query(sql).await.unwrap();
    let batches = df.collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = (0..b.num_columns())
                .map(|c| arrow::util::display::array_value_to_string(b.column(c), r).unwrap())
                .collect();
            out.push(cells.join(","));
        }
    }
    out.sort();
    out
}

/// Row count of `dataset` at its latest version.
pub async fn count(lake: &Lake, dataset: &str) -> u64 {
    let d: DatasetRef = dataset.parse().unwrap();
    lake.info(&d).await.unwrap().rows
}

/// A fresh, unique in-memory lake.
pub async fn memory_lake() -> Lake {
    let name = format!("t{}", uuid::Uuid::new_v4().simple());
    Lake::open(&format!("memory://{name}/")).await.unwrap()
}

/// Syncs `c` (one stream) into workspace `acme` and returns that stream's outcome.
pub async fn sync_acme(
    lake: &Lake,
    c: &revlake::sources::source::Connection,
) -> revlake::sources::sync::StreamOutcome {
    let source = revlake::sources::registry::open(c).unwrap();
    revlake::sources::sync::sync_source(
        lake,
        source.as_ref(),
        c,
        &revlake::lake::WorkspaceId::new("acme").unwrap(),
        &revlake::sources::sync::SyncOptions::default(),
        &mut |_| {},
    )
    .await
    .unwrap()
    .remove(0)
}

/// The stored cursor of `c`'s first stream in workspace `acme`, as RFC 3339.
pub async fn acme_cursor(lake: &Lake, c: &revlake::sources::source::Connection) -> Option<String> {
    let spec = revlake::sources::registry::open(c)
        .unwrap()
        .streams()
        .remove(0);
    revlake::sources::sync::stored_cursor(
        lake,
        c,
        &spec,
        &revlake::lake::WorkspaceId::new("acme").unwrap(),
    )
    .await
    .unwrap()
    .map(|t| t.to_rfc3339())
}

/// `sql` over the whole lake, each row as comma-joined text.
pub async fn query(lake: &Lake, sql: &str) -> Vec<String> {
    let session = revlake::sql::SqlSession::open(lake, &revlake::sql::SessionOptions::default())
        .await
        .unwrap();
    rows(&session, sql).await
}

/// Runs `work` to its end on a runtime of its own, in a thread of its own: for a fixture that a
/// `OnceLock` builds once for tests that each run on their own (short-lived) runtime.
pub fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}
