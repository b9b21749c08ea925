//! Landing a connection's streams: pages from a [`Source`] are buffered into checkpoints, each
//! merged into `raw.<table>` on the stream's key in one Delta commit that also records the
//! stream's cursor as a Delta transaction action (`txn`). A sync killed at any point leaves the
//! table and the cursor at the last checkpoint: the next run resumes there, re-reading the
//! boundary (inclusive cursor) and merging, so nothing is lost or duplicated.
//!
//! Every stream's run appends a row to `ops.sync_log`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::records::timestamp_type;
use super::source::{Connection, CursorRole, ReadFrom, Source, StreamSpec};
use super::{Result, SourceError};
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode};
use crate::project::WORKSPACE_COLUMN;

/// How a sync runs.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Ignore the stored cursors and read everything.
    pub full: bool,
    /// Records per checkpoint (one Delta commit each).
    pub checkpoint_records: usize,
    /// Only these streams (vendor names, case-insensitive); all when empty.
    pub streams: Vec<String>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            full: false,
            checkpoint_records: 50_000,
            streams: Vec::new(),
        }
    }
}

/// What one stream's sync did (also its `ops.sync_log` row).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamOutcome {
    pub sync_id: String,
    pub connection: String,
    pub source: String,
    pub stream: String,
    pub dataset: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub records: u64,
    /// Records that could not be landed (the stream's failure discards its uncommitted pages).
    pub failed: u64,
    pub pages: u64,
    pub checkpoints: u64,
    pub requests: u64,
    pub retries: u64,
    /// Values that did not fit their column type (landed null, kept in `source_data`).
    pub values_nulled: u64,
    pub cursor_before: Option<DateTime<Utc>>,
    pub cursor_after: Option<DateTime<Utc>>,
    pub version: Option<i64>,
    pub error: Option<String>,
}

/// Progress of a stream, for bars and logs.
#[derive(Debug, Clone, Copy)]
pub enum SyncEvent<'a> {
    Started {
        stream: &'a StreamSpec,
    },
    Page {
        stream: &'a StreamSpec,
        records: u64,
    },
    Finished {
        outcome: &'a StreamOutcome,
    },
}

/// The Delta `txn` application id holding a stream's cursor.
pub fn cursor_app_id(connection: &str, stream: &str, workspace: &WorkspaceId) -> String {
    format!("revlake.sync/{connection}/{stream}/{workspace}")
}

/// The committed cursor of a stream, if any.
pub async fn stored_cursor(
    lake: &Lake,
    connection: &Connection,
    spec: &StreamSpec,
    workspace: &WorkspaceId,
) -> Result<Option<DateTime<Utc>>> {
    let dataset = raw_dataset(connection, spec)?;
    let micros = lake
        .app_transaction(
            &dataset,
            &cursor_app_id(&connection.name, &spec.name, workspace),
        )
        .await
        .map_err(|source| SourceError::Landing {
            dataset: dataset.to_string(),
            source,
        })?;
    Ok(micros.and_then(DateTime::from_timestamp_micros))
}

pub(super) fn raw_dataset(connection: &Connection, spec: &StreamSpec) -> Result<DatasetRef> {
    DatasetRef::new(Layer::Raw, spec.table.clone()).map_err(|e| SourceError::Config {
        connection: connection.name.clone(),
        reason: format!(
            "stream {} cannot land as raw.{}: {e}",
            spec.name, spec.table
        ),
    })
}

/// Syncs the selected streams of `source` one after another. A failing stream is recorded and
/// the others still run; the outcomes say which failed.
pub async fn sync_source(
    lake: &Lake,
    source: &dyn Source,
    connection: &Connection,
    workspace: &WorkspaceId,
    options: &SyncOptions,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<Vec<StreamOutcome>> {
    if let Some(stateful) = source.stateful() {
        return super::stateful::sync_stateful(
            lake,
            source.vendor(),
            stateful,
            connection,
            workspace,
            options,
            on_event,
        )
        .await;
    }
    let streams = source.streams();
    let selected: Vec<StreamSpec> = if options.streams.is_empty() {
        streams
    } else {
        let mut chosen = Vec::new();
        for want in &options.streams {
            match streams.iter().find(|s| s.name.eq_ignore_ascii_case(want)) {
                Some(s) => chosen.push(s.clone()),
                None => {
                    return Err(SourceError::Config {
                        connection: connection.name.clone(),
                        reason: format!(
                            "no stream {want:?}; this connection syncs: {}",
                            streams
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
        chosen
    };
    let mut outcomes = Vec::with_capacity(selected.len());
    for spec in &selected {
        on_event(SyncEvent::Started { stream: spec });
        let outcome =
            sync_stream(lake, source, connection, workspace, spec, options, on_event).await?;
        on_event(SyncEvent::Finished { outcome: &outcome });
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Syncs one stream and logs it to `ops.sync_log`. A source failure is returned inside the
/// outcome (`error`), after its row was logged; only a failure to write the log is an `Err`.
pub async fn sync_stream(
    lake: &Lake,
    source: &dyn Source,
    connection: &Connection,
    workspace: &WorkspaceId,
    spec: &StreamSpec,
    options: &SyncOptions,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<StreamOutcome> {
    let started = Instant::now();
    let (requests_before, retries_before) = source.request_stats();
    let dataset = raw_dataset(connection, spec)?;
    let mut outcome = StreamOutcome {
        sync_id: uuid::Uuid::new_v4().to_string(),
        connection: connection.name.clone(),
        source: source.vendor().to_string(),
        stream: spec.name.clone(),
        dataset: dataset.to_string(),
        started_at: Utc::now(),
        ended_at: Utc::now(),
        records: 0,
        failed: 0,
        pages: 0,
        checkpoints: 0,
        requests: 0,
        retries: 0,
        values_nulled: 0,
        cursor_before: None,
        cursor_after: None,
        version: None,
        error: None,
    };
    let result = land_stream(
        lake,
        source,
        connection,
        workspace,
        spec,
        options,
        &dataset,
        &mut outcome,
        on_event,
    )
    .await;
    let (requests, retries) = source.request_stats();
    outcome.requests = requests - requests_before;
    outcome.retries = retries - retries_before;
    outcome.ended_at = Utc::now();
    if let Err(e) = result {
        outcome.error = Some(e.to_string());
        tracing::error!(connection = %connection.name, stream = %spec.name, error = %e, "stream failed");
    }
    tracing::info!(
        connection = %connection.name, stream = %spec.name, dataset = %outcome.dataset,
        records = outcome.records, pages = outcome.pages, retries = outcome.retries,
        elapsed_ms = started.elapsed().as_millis() as u64, "stream synced"
    );
    write_sync_log(lake, workspace, &outcome).await?;
    Ok(outcome)
}

/// The checkpoint loop of one stream.
#[allow(clippy::too_many_arguments)]
async fn land_stream(
    lake: &Lake,
    source: &dyn Source,
    connection: &Connection,
    workspace: &WorkspaceId,
    spec: &StreamSpec,
    options: &SyncOptions,
    dataset: &DatasetRef,
    outcome: &mut StreamOutcome,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<()> {
    let landing = |source: crate::lake::LakeError| SourceError::Landing {
        dataset: dataset.to_string(),
        source,
    };
    let app_id = cursor_app_id(&connection.name, &spec.name, workspace);
    let stored = lake
        .app_transaction(dataset, &app_id)
        .await
        .map_err(landing)?;
    outcome.cursor_before = stored.and_then(DateTime::from_timestamp_micros);
    let since = if options.full {
        None
    } else {
        outcome.cursor_before
    };
    let mut known = lake.arrow_schema(dataset).await.map_err(landing)?;
    let mut key = spec.primary_key.clone();
    key.push(WORKSPACE_COLUMN.to_string());

    let synced_at = Utc::now().timestamp_micros();
    let mut buffer: Vec<RecordBatch> = Vec::new();
    let mut buffered = 0usize;
    let mut high_water = stored;
    let mut committed = stored;
    // Whether every page so far came in cursor order, so a checkpoint may advance the cursor.
    let mut in_order = spec.ordered;
    let mut pages = source.read(spec, ReadFrom { since });
    let mut failure = None;
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        outcome.pages += 1;
        outcome.values_nulled += page.coerced;
        let rows = page.batch.num_rows();
        if rows == 0 {
            continue;
        }
        let batch = add_sync_columns(&page.batch, workspace, &outcome.sync_id, synced_at)
            .map_err(|e| malformed(connection, &page.url, e))?;
        let role = page.cursor.unwrap_or(if spec.ordered {
            CursorRole::Ordered
        } else {
            CursorRole::Unordered
        });
        if role == CursorRole::Unordered {
            in_order = false;
        }
        if role != CursorRole::Ignored
            && let Some(field) = &spec.cursor_field
            && let Some(max) = max_timestamp(&batch, field)
        {
            high_water = Some(high_water.map_or(max, |h| h.max(max)));
        }
        buffer.push(batch);
        buffered += rows;
        outcome.records += rows as u64;
        on_event(SyncEvent::Page {
            stream: spec,
            records: outcome.records,
        });
        if buffered >= options.checkpoint_records.max(1) {
            let cursor = if in_order { high_water } else { committed };
            commit(
                lake,
                dataset,
                &key,
                &mut known,
                &mut buffer,
                cursor,
                &app_id,
                outcome,
            )
            .await?;
            committed = cursor;
            buffered = 0;
        }
    }
    drop(pages);
    if let Some(e) = failure {
        outcome.failed = buffered as u64;
        outcome.records -= buffered as u64;
        outcome.cursor_after = committed.and_then(DateTime::from_timestamp_micros);
        return Err(e);
    }
    if !buffer.is_empty() || high_water != committed {
        commit(
            lake,
            dataset,
            &key,
            &mut known,
            &mut buffer,
            high_water,
            &app_id,
            outcome,
        )
        .await?;
    }
    outcome.cursor_after = high_water.and_then(DateTime::from_timestamp_micros);
    Ok(())
}

fn malformed(connection: &Connection, url: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::MalformedPage {
        connection: connection.name.clone(),
        url: url.to_string(),
        reason: e.to_string(),
    }
}

/// Merges the buffered pages into the raw table with the cursor, in one commit; a stream
/// without a primary key (`key` holds only the workspace column) appends instead.
#[allow(clippy::too_many_arguments)]
pub(super) async fn commit(
    lake: &Lake,
    dataset: &DatasetRef,
    key: &[String],
    known: &mut Option<SchemaRef>,
    buffer: &mut Vec<RecordBatch>,
    cursor: Option<i64>,
    app_id: &str,
    outcome: &mut StreamOutcome,
) -> Result<()> {
    let batches = std::mem::take(buffer);
    let (schema, batches, nulled) =
        unify(known.as_ref(), &batches).map_err(|e| SourceError::Landing {
            dataset: dataset.to_string(),
            source: crate::lake::LakeError::Input {
                dataset: dataset.clone(),
                message: e.to_string(),
            },
        })?;
    outcome.values_nulled += nulled;
    let append = key.iter().all(|k| k == WORKSPACE_COLUMN);
    let write = if append {
        lake.write(dataset.clone()).with_mode(WriteMode::Append)
    } else {
        lake.write(dataset.clone())
            .with_mode(WriteMode::Merge)
            .with_merge_key(key.to_vec())
    };
    let batches = if append {
        batches
    } else {
        dedup_last(&schema, batches, key).map_err(|e| SourceError::Landing {
            dataset: dataset.to_string(),
            source: crate::lake::LakeError::Input {
                dataset: dataset.clone(),
                message: e,
            },
        })?
    };
    let mut write = write
        .with_batches(schema.clone(), batches)
        .with_commit_metadata("revlake.sync_id", outcome.sync_id.clone().into())
        .with_commit_metadata("revlake.connection", outcome.connection.clone().into())
        .with_commit_metadata("revlake.stream", outcome.stream.clone().into());
    if let Some(c) = cursor {
        write = write.with_app_transaction(app_id, c);
    }
    let written = write.await.map_err(|source| SourceError::Landing {
        dataset: dataset.to_string(),
        source,
    })?;
    outcome.version = Some(written.version);
    outcome.checkpoints += 1;
    *known = Some(schema);
    tracing::debug!(dataset = %dataset, version = written.version, rows = written.rows, "checkpoint committed");
    Ok(())
}

/// Adds `workspace_id`, `_synced_at` and `_sync_id`.
pub(crate) fn add_sync_columns(
    batch: &RecordBatch,
    workspace: &WorkspaceId,
    sync_id: &str,
    synced_at: i64,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let n = batch.num_rows();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    fields.push(Field::new(WORKSPACE_COLUMN, DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![workspace.as_str(); n])));
    fields.push(Field::new("_synced_at", timestamp_type(), false));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![synced_at; n]).with_timezone("UTC"),
    ));
    fields.push(Field::new("_sync_id", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![sync_id; n])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The largest value of a timestamp (or timestamp-like text) column, in microseconds.
fn max_timestamp(batch: &RecordBatch, column: &str) -> Option<i64> {
    let array = batch.column_by_name(column)?;
    let cast = cast_with_options(array, &timestamp_type(), &CastOptions::default()).ok()?;
    arrow::compute::max(cast.as_primitive::<TimestampMicrosecondType>())
}

/// Brings pages with differing columns to one schema: the table's columns first (their types
/// win; values that do not cast become null and are counted), then new columns in the order
/// they appeared. Missing columns are null.
pub(crate) fn unify(
    known: Option<&SchemaRef>,
    batches: &[RecordBatch],
) -> std::result::Result<(SchemaRef, Vec<RecordBatch>, u64), arrow::error::ArrowError> {
    let mut fields: Vec<Field> = known
        .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
        .unwrap_or_default();
    for batch in batches {
        for f in batch.schema().fields() {
            if !fields.iter().any(|k| k.name() == f.name()) {
                fields.push(f.as_ref().clone().with_nullable(true));
            }
        }
    }
    // Landed columns are nullable, but for the keys and sync columns every page carries.
    let schema = Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|f| {
                let always = batches.iter().all(|b| {
                    b.column_by_name(f.name())
                        .is_some_and(|c| c.null_count() == 0)
                });
                let nullable = f.is_nullable() || !always;
                f.with_nullable(nullable)
            })
            .collect::<Vec<_>>(),
    ));
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut nulled = 0u64;
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut columns = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            let column = match batch.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => c.clone(),
                Some(c) => {
                    let cast = cast_with_options(c, f.data_type(), &options)?;
                    nulled += (cast.null_count() - c.null_count()) as u64;
                    cast
                }
                None => new_null_array(f.data_type(), batch.num_rows()),
            };
            columns.push(column);
        }
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok((schema, out, nulled))
}

/// Keeps the last occurrence of each key (a record changed while paging, or re-read at a
/// window boundary), so the merge sees each key once.
fn dedup_last(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    key: &[String],
) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut seen: HashSet<Vec<Option<String>>> = HashSet::new();
    let mut kept = Vec::with_capacity(batches.len());
    for batch in batches.iter().rev() {
        let mut key_columns = Vec::with_capacity(key.len());
        for k in key {
            let column = batch.column_by_name(k).ok_or_else(|| {
                format!(
                    "the key column {k} is missing from the records (columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let text = cast_with_options(column, &DataType::Utf8, &CastOptions::default())
                .map_err(|e| e.to_string())?;
            key_columns.push(text);
        }
        let mut mask = vec![false; batch.num_rows()];
        for row in (0..batch.num_rows()).rev() {
            let k: Vec<Option<String>> = key_columns
                .iter()
                .map(|c| {
                    let s = c.as_string::<i32>();
                    (!s.is_null(row)).then(|| s.value(row).to_string())
                })
                .collect();
            if k[..k.len() - 1].iter().all(Option::is_none) {
                return Err(format!(
                    "a record has no value for its key ({})",
                    key[..key.len() - 1].join(", ")
                ));
            }
            mask[row] = seen.insert(k);
        }
        let filtered =
            filter_record_batch(batch, &BooleanArray::from(mask)).map_err(|e| e.to_string())?;
        kept.push(filtered);
    }
    kept.reverse();
    Ok(kept)
}

/// Appends the outcome to `ops.sync_log`.
pub(super) async fn write_sync_log(
    lake: &Lake,
    workspace: &WorkspaceId,
    o: &StreamOutcome,
) -> Result<()> {
    let dataset =
        DatasetRef::new(Layer::Ops, "sync_log").map_err(|source| SourceError::Landing {
            dataset: "ops.sync_log".into(),
            source,
        })?;
    let ts = |name: &str, nullable| Field::new(name, timestamp_type(), nullable);
    let schema = Arc::new(Schema::new(vec![
        Field::new(WORKSPACE_COLUMN, DataType::Utf8, false),
        Field::new("sync_id", DataType::Utf8, false),
        Field::new("connection", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("object", DataType::Utf8, false),
        Field::new("dataset", DataType::Utf8, false),
        ts("started_at", false),
        ts("ended_at", false),
        Field::new("status", DataType::Utf8, false),
        Field::new("records_processed", DataType::Int64, false),
        Field::new("records_failed", DataType::Int64, false),
        Field::new("pages", DataType::Int64, false),
        Field::new("checkpoints", DataType::Int64, false),
        Field::new("requests", DataType::Int64, false),
        Field::new("retries", DataType::Int64, false),
        Field::new("values_nulled", DataType::Int64, false),
        ts("cursor_before", true),
        ts("cursor_after", true),
        Field::new("table_version", DataType::Int64, true),
        Field::new("error", DataType::Utf8, true),
    ]));
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let i = |v: u64| -> ArrayRef { Arc::new(Int64Array::from(vec![v as i64])) };
    let t = |v: Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(vec![v.map(|t| t.timestamp_micros())])
                .with_timezone("UTC"),
        )
    };
    let status = if o.error.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            s(workspace.as_str()),
            s(&o.sync_id),
            s(&o.connection),
            s(&o.source),
            s(&o.stream),
            s(&o.dataset),
            t(Some(o.started_at)),
            t(Some(o.ended_at)),
            s(status),
            i(o.records),
            i(o.failed),
            i(o.pages),
            i(o.checkpoints),
            i(o.requests),
            i(o.retries),
            i(o.values_nulled),
            t(o.cursor_before),
            t(o.cursor_after),
            Arc::new(Int64Array::from(vec![o.version])),
            Arc::new(StringArray::from(vec![o.error.as_deref()])),
        ],
    )
    .map_err(|e| SourceError::Landing {
        dataset: dataset.to_string(),
        source: crate::lake::LakeError::Input {
            dataset: dataset.clone(),
            message: e.to_string(),
        },
    })?;
    lake.write(dataset.clone())
        .with_batches(schema, vec![batch])
        .await
        .map_err(|source| SourceError::Landing {
            dataset: dataset.to_string(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    fn batch(ids: &[i64], values: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
            Field::new(WORKSPACE_COLUMN, DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(values.to_vec())),
                Arc::new(StringArray::from(vec!["w"; ids.len()])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn dedup_keeps_the_last_version_of_a_key() {
        let a = batch(&[1, 2], &["a1", "a2"]);
        let b = batch(&[2, 3], &["b2", "b3"]);
        let schema = a.schema();
        let key = vec!["id".to_string(), WORKSPACE_COLUMN.to_string()];
        let kept = dedup_last(&schema, vec![a, b], &key).unwrap();
        let rows: Vec<String> = kept
            .iter()
            .flat_map(|b| {
                let v = b.column_by_name("v").unwrap().as_string::<i32>().clone();
                (0..v.len()).map(move |i| v.value(i).to_string())
            })
            .collect();
        assert_eq!(rows, ["a1", "b2", "b3"]);
    }

    #[test]
    fn unify_pads_new_columns_and_casts_to_known_types() {
        let a = batch(&[1], &["x"]);
        let extra = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("new_field", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            extra,
            vec![
                Arc::new(StringArray::from(vec!["2"])),
                Arc::new(arrow::array::Float64Array::from(vec![1.5])),
            ],
        )
        .unwrap();
        let (schema, out, nulled) = unify(Some(&a.schema()), &[a, b]).unwrap();
        assert_eq!(nulled, 0);
        assert_eq!(
            schema.field_with_name("id").unwrap().data_type(),
            &DataType::Int64
        );
        assert!(schema.field_with_name("new_field").is_ok());
        assert_eq!(out[1].column_by_name("v").unwrap().null_count(), 1);
    }
}
