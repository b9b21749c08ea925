//! Landing a [`StatefulSource`]: one run emits pages of all its streams, interleaved, and state
//! documents (checkpoints). Pages are buffered per stream; at each state document every
//! stream's buffer is committed to its `raw.<table>` (merged on its key, or appended when it
//! has none), and only then is the document stored in `ops.sync_state`, so a stored state never
//! runs ahead of the landed data. A run that fails keeps nothing after its last state; the next
//! run resumes from the stored state, and the records it re-reads merge on their key (a stream
//! without a key may land the records between a commit and a crash twice).
//!
//! Every stream seen in the run appends its row to `ops.sync_log`, as in [`super::sync`].

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::Utc;
use datafusion::prelude::{SessionContext, col, lit};
use futures::StreamExt;
use serde_json::Value;

use super::records::timestamp_type;
use super::source::{Connection, StatefulEvent, StatefulSource, StreamSpec};
use super::sync::{
    StreamOutcome, SyncEvent, SyncOptions, add_sync_columns, commit, raw_dataset, write_sync_log,
};
use super::{Result, SourceError};
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode};
use crate::project::WORKSPACE_COLUMN;

/// `ops.sync_state`: the last committed state document per (workspace, connection).
fn state_dataset() -> Result<DatasetRef> {
    DatasetRef::new(Layer::Ops, "sync_state").map_err(|source| SourceError::Landing {
        dataset: "ops.sync_state".into(),
        source,
    })
}

fn state_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(WORKSPACE_COLUMN, DataType::Utf8, false),
        Field::new("connection", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("sync_id", DataType::Utf8, false),
        Field::new("committed_at", timestamp_type(), false),
    ]))
}

/// The state document last committed for `connection` in `workspace`, if any.
pub async fn stored_state(
    lake: &Lake,
    connection: &Connection,
    workspace: &WorkspaceId,
) -> Result<Option<Value>> {
    let dataset = state_dataset()?;
    let failed = |reason: String| SourceError::Landing {
        dataset: dataset.to_string(),
        source: crate::lake::LakeError::Input {
            dataset: dataset.clone(),
            message: reason,
        },
    };
    let table = lake
        .try_load(&dataset)
        .await
        .map_err(|source| SourceError::Landing {
            dataset: dataset.to_string(),
            source,
        })?;
    let Some(table) = table else {
        return Ok(None);
    };
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| failed(e.to_string()))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let batches = ctx
        .read_table(provider)
        .and_then(|df| {
            df.filter(
                col(WORKSPACE_COLUMN)
                    .eq(lit(workspace.as_str()))
                    .and(col("connection").eq(lit(connection.name.as_str()))),
            )
        })
        .and_then(|df| df.select(vec![col("state")]))
        .map_err(|e| failed(e.to_string()))?
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let Some(column) = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0))
    else {
        return Ok(None);
    };
    // Delta may hand text back as a view array.
    let column =
        arrow::compute::cast(column, &DataType::Utf8).map_err(|e| failed(e.to_string()))?;
    let text = column.as_string::<i32>().value(0).to_string();
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| failed(format!("the stored state is not JSON: {e}")))
}

/// Stores `state` as the connection's committed state (one merge commit).
async fn store_state(
    lake: &Lake,
    connection: &Connection,
    vendor: &str,
    workspace: &WorkspaceId,
    state: &Value,
    sync_id: &str,
) -> Result<()> {
    let dataset = state_dataset()?;
    let landing = |source| SourceError::Landing {
        dataset: dataset.to_string(),
        source,
    };
    let s = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let batch = RecordBatch::try_new(
        state_schema(),
        vec![
            s(workspace.as_str()),
            s(&connection.name),
            s(vendor),
            s(&state.to_string()),
            s(sync_id),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Utc::now().timestamp_micros()])
                    .with_timezone("UTC"),
            ),
        ],
    )
    .map_err(|e| {
        landing(crate::lake::LakeError::Input {
            dataset: dataset.clone(),
            message: e.to_string(),
        })
    })?;
    lake.write(dataset.clone())
        .with_mode(WriteMode::Merge)
        .with_merge_key(vec![WORKSPACE_COLUMN.to_string(), "connection".to_string()])
        .with_batches(state_schema(), vec![batch])
        .with_commit_metadata("revlake.connection", connection.name.clone().into())
        .await
        .map_err(landing)?;
    Ok(())
}

/// One stream of the run: its spec, table and the pages since the last checkpoint.
struct Landing {
    spec: StreamSpec,
    dataset: DatasetRef,
    key: Vec<String>,
    known: Option<SchemaRef>,
    buffer: Vec<RecordBatch>,
    buffered: u64,
    outcome: StreamOutcome,
}

impl Landing {
    async fn checkpoint(&mut self, lake: &Lake) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        commit(
            lake,
            &self.dataset,
            &self.key,
            &mut self.known,
            &mut self.buffer,
            None,
            "",
            &mut self.outcome,
        )
        .await?;
        self.buffered = 0;
        Ok(())
    }
}

/// Syncs every stream of a stateful source in one run (see the module docs). A failure of the
/// run is recorded in the outcome of every stream it had started; when it failed before any
/// stream emitted records, the error is returned.
pub async fn sync_stateful(
    lake: &Lake,
    vendor: &'static str,
    source: &dyn StatefulSource,
    connection: &Connection,
    workspace: &WorkspaceId,
    options: &SyncOptions,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<Vec<StreamOutcome>> {
    let stored = if options.full {
        None
    } else {
        stored_state(lake, connection, workspace).await?
    };
    // A run restricted to some streams would advance the state past the others' records.
    let keep_state = options.streams.is_empty();
    if !keep_state {
        tracing::warn!(connection = %connection.name, "a --stream selection: the tap's state is passed but not advanced");
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let synced_at = Utc::now().timestamp_micros();
    let mut landings: Vec<Landing> = Vec::new();
    let mut events = source.read_all(stored);
    let mut failure = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        match event {
            StatefulEvent::Page { stream, page } => {
                if !options.streams.is_empty()
                    && !options
                        .streams
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&stream.name))
                {
                    continue;
                }
                let i = match landings.iter().position(|l| l.spec.name == stream.name) {
                    Some(i) => i,
                    None => {
                        let landing = start(lake, connection, vendor, stream).await?;
                        on_event(SyncEvent::Started {
                            stream: &landing.spec,
                        });
                        landings.push(landing);
                        landings.len() - 1
                    }
                };
                let l = &mut landings[i];
                l.outcome.pages += 1;
                l.outcome.values_nulled += page.coerced;
                let rows = page.batch.num_rows() as u64;
                if rows == 0 {
                    continue;
                }
                let batch = add_sync_columns(&page.batch, workspace, &l.outcome.sync_id, synced_at)
                    .map_err(|e| SourceError::MalformedPage {
                        connection: connection.name.clone(),
                        url: page.url.clone(),
                        reason: e.to_string(),
                    })?;
                l.buffer.push(batch);
                l.buffered += rows;
                l.outcome.records += rows;
                on_event(SyncEvent::Page {
                    stream: &l.spec,
                    records: l.outcome.records,
                });
            }
            StatefulEvent::State(state) => {
                if let Err(e) = checkpoint(lake, &mut landings).await {
                    failure = Some(e);
                    break;
                }
                if keep_state
                    && let Err(e) =
                        store_state(lake, connection, vendor, workspace, &state, &run_id).await
                {
                    failure = Some(e);
                    break;
                }
                tracing::debug!(connection = %connection.name, "state committed");
            }
        }
    }
    drop(events);
    // Records after the last state are committed only when the run ended well.
    if failure.is_none()
        && let Err(e) = checkpoint(lake, &mut landings).await
    {
        failure = Some(e);
    }
    if landings.is_empty()
        && let Some(e) = failure
    {
        return Err(e);
    }
    let mut outcomes = Vec::with_capacity(landings.len());
    for mut l in landings {
        if let Some(e) = &failure {
            l.outcome.failed = l.buffered;
            l.outcome.records -= l.buffered;
            l.outcome.error = Some(e.to_string());
            tracing::error!(connection = %connection.name, stream = %l.spec.name, error = %e, "stream failed");
        }
        l.outcome.ended_at = Utc::now();
        tracing::info!(
            connection = %connection.name, stream = %l.spec.name, dataset = %l.outcome.dataset,
            records = l.outcome.records, pages = l.outcome.pages, "stream synced"
        );
        write_sync_log(lake, workspace, &l.outcome).await?;
        on_event(SyncEvent::Finished {
            outcome: &l.outcome,
        });
        outcomes.push(l.outcome);
    }
    Ok(outcomes)
}

/// Commits every stream's buffered pages; the first failure stops.
async fn checkpoint(lake: &Lake, landings: &mut [Landing]) -> Result<()> {
    for l in landings.iter_mut() {
        l.checkpoint(lake).await?;
    }
    Ok(())
}

async fn start(
    lake: &Lake,
    connection: &Connection,
    vendor: &str,
    spec: StreamSpec,
) -> Result<Landing> {
    let dataset = raw_dataset(connection, &spec)?;
    let known = lake
        .arrow_schema(&dataset)
        .await
        .map_err(|source| SourceError::Landing {
            dataset: dataset.to_string(),
            source,
        })?;
    let mut key = spec.primary_key.clone();
    key.push(WORKSPACE_COLUMN.to_string());
    let now = Utc::now();
    let outcome = StreamOutcome {
        sync_id: uuid::Uuid::new_v4().to_string(),
        connection: connection.name.clone(),
        source: vendor.to_string(),
        stream: spec.name.clone(),
        dataset: dataset.to_string(),
        started_at: now,
        ended_at: now,
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
    Ok(Landing {
        spec,
        dataset,
        key,
        known,
        buffer: Vec::new(),
        buffered: 0,
        outcome,
    })
}
