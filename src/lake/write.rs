//! Writing datasets: append, overwrite (whole table or one workspace) and merge on the primary
//! key, each as one Delta commit.
//!
//! The input is streamed through DataFusion into Parquet files; the commit happens only after the
//! whole input was written, so an input that fails midway (or a process killed midway) leaves
//! the table at its previous version, with at most some unreferenced files behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column as DfColumn, TableReference};
use datafusion::datasource::MemTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col, lit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;

use super::{DatasetRef, Lake, LakeError, Layer, Result, WorkspaceId};
use crate::project::schema::canonical_type;
use crate::project::{DatasetSchema, WORKSPACE_COLUMN};

/// How a write combines with what the table holds.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace every row of the table.
    Overwrite,
    /// Replace the rows of one workspace; every input row must belong to it.
    OverwriteWorkspace(WorkspaceId),
    /// Upsert on the primary key: matching rows are updated, new ones inserted.
    Merge,
    /// Replace the rows of one workspace whose `column` holds one of `values` (a model rebuilt
    /// for a few records); every input row must be one of them. One commit: readers see the old
    /// rows or the new ones.
    ReplaceWhere {
        workspace: WorkspaceId,
        column: String,
        values: Vec<String>,
    },
}

/// What a committed write did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutcome {
    /// The Delta version the write committed.
    pub version: i64,
    /// Rows read from the input.
    pub rows: u64,
    /// Rows the commit added: every input row, except in a merge, where it is the rows whose
    /// key was not in the table.
    pub inserted: u64,
    /// Rows a merge matched and rewrote (0 for the other modes).
    pub updated: u64,
}

enum Input {
    Batches(SchemaRef, Vec<RecordBatch>),
    Stream(SendableRecordBatchStream),
}

/// Builds and runs one write to a dataset; run it with `.await`.
#[must_use]
pub struct WriteBuilder {
    lake: Lake,
    dataset: DatasetRef,
    schema: Option<DatasetSchema>,
    mode: WriteMode,
    /// In a mutex only so that the builder is `Sync` (a stream is not); taken once.
    input: std::sync::Mutex<Option<Input>>,
    metadata: serde_json::Map<String, serde_json::Value>,
    app_transaction: Option<(String, i64)>,
    merge_key: Option<Vec<String>>,
}

impl Lake {
    /// Starts a write to `dataset` (append by default).
    pub fn write(&self, dataset: DatasetRef) -> WriteBuilder {
        WriteBuilder {
            lake: self.clone(),
            dataset,
            schema: None,
            mode: WriteMode::Append,
            input: std::sync::Mutex::new(None),
            metadata: serde_json::Map::new(),
            app_transaction: None,
            merge_key: None,
        }
    }
}

impl WriteBuilder {
    /// The declared schema the input must match (raw layers may carry extra columns).
    pub fn with_schema(mut self, schema: Option<&DatasetSchema>) -> Self {
        self.schema = schema.cloned();
        self
    }

    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Rows to write, all in memory.
    pub fn with_batches(mut self, schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        self.input = std::sync::Mutex::new(Some(Input::Batches(schema, batches)));
        self
    }

    /// Rows to write, streamed; an error in the stream aborts the write before any commit.
    pub fn with_stream(mut self, stream: SendableRecordBatchStream) -> Self {
        self.input = std::sync::Mutex::new(Some(Input::Stream(stream)));
        self
    }

    /// The columns a merge matches on, when the dataset has no declared primary key (raw tables
    /// landed from a source with a known key).
    pub fn with_merge_key(mut self, key: Vec<String>) -> Self {
        self.merge_key = Some(key);
        self
    }

    /// Extra key/values recorded in the commit's `commitInfo`.
    pub fn with_commit_metadata(mut self, key: &str, value: serde_json::Value) -> Self {
        self.metadata.insert(key.to_string(), value);
        self
    }

    /// Records an application transaction (`txn` action: app id and version) in the same commit
    /// as the data, e.g. a sync cursor, so that data and cursor move together.
    pub fn with_app_transaction(mut self, app_id: impl Into<String>, version: i64) -> Self {
        self.app_transaction = Some((app_id.into(), version));
        self
    }

    async fn run(self) -> Result<WriteOutcome> {
        let dataset = self.dataset.clone();
        let taken = self.input.lock().unwrap_or_else(|p| p.into_inner()).take();
        let input = taken.ok_or_else(|| LakeError::SchemaMismatch {
            dataset: dataset.clone(),
            detail: "no input was given".to_string(),
        })?;
        // Delta's own planner: its write plans hold custom nodes a plain session cannot run.
        let ctx: SessionContext = deltalake::delta_datafusion::DeltaSessionContext::new().into();
        let rows = Arc::new(AtomicU64::new(0));
        let input_failed = Arc::new(AtomicBool::new(false));
        let source =
            input_frame(&ctx, input, rows.clone(), input_failed.clone()).map_err(|source| {
                LakeError::Plan {
                    dataset: dataset.clone(),
                    source: Box::new(source),
                }
            })?;

        if self.mode == WriteMode::Merge {
            // Refuse before anything is created or written.
            self.merge_key()?;
        }
        let existing = self.lake.try_load(&dataset).await?;
        let target = self.target_schema(existing.as_ref())?;
        let source = conform(
            &dataset,
            source,
            target.as_ref(),
            self.allows_extra_columns(),
        )?;
        let source_schema: SchemaRef = Arc::new(source.schema().as_arrow().clone());
        if source_schema.column_with_name(WORKSPACE_COLUMN).is_none() {
            return Err(LakeError::SchemaMismatch {
                dataset,
                detail: format!("the input has no `{WORKSPACE_COLUMN}` column"),
            });
        }

        let table = match existing {
            Some(t) => t,
            // A new table takes the declared nullability, not the first input's: a model whose
            // first run had no NULL in a column (a literal, say) must not make the column NOT
            // NULL for every later run.
            None => {
                self.create_table(&declared_nullability(&source_schema, target.as_ref()))
                    .await?
            }
        };
        let partitions: Vec<String> = table
            .snapshot()
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default();

        let mut commit = CommitProperties::default().with_metadata(
            self.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain([
                    ("revlake.dataset".to_string(), dataset.to_string().into()),
                    (
                        "revlake.version".to_string(),
                        env!("CARGO_PKG_VERSION").into(),
                    ),
                ]),
        );
        if let Some((app, version)) = &self.app_transaction {
            commit = commit.with_application_transaction(Transaction::new(app, *version));
        }

        let state = Arc::new(ctx.state());
        let evolve = self.allows_extra_columns();
        // (inserted, updated) for a merge, from Delta's merge metrics.
        let mut merged: Option<(u64, u64)> = None;
        let result: std::result::Result<DeltaTable, DeltaTableError> = match &self.mode {
            WriteMode::Merge if has_data(&table) => {
                let key = self.merge_key()?;
                // Delta's merge reads its source more than once (file pruning, then the join),
                // so a streamed input is materialized first.
                match materialize(&ctx, source).await {
                    Ok(source) => merge(table, source, &key, evolve, commit, state).await.map(
                        |(table, counts)| {
                            merged = Some(counts);
                            table
                        },
                    ),
                    Err(e) => Err(DeltaTableError::from(e)),
                }
            }
            mode => {
                let (save, predicate) =
                    match mode {
                        WriteMode::Append | WriteMode::Merge => (SaveMode::Append, None),
                        WriteMode::Overwrite => (SaveMode::Overwrite, None),
                        WriteMode::OverwriteWorkspace(ws) => (
                            SaveMode::Overwrite,
                            Some(col(WORKSPACE_COLUMN).eq(lit(ws.as_str()))),
                        ),
                        WriteMode::ReplaceWhere {
                            workspace,
                            column,
                            values,
                        } => (
                            SaveMode::Overwrite,
                            Some(col(WORKSPACE_COLUMN).eq(lit(workspace.as_str())).and(
                                col(column.as_str()).in_list(
                                    values.iter().map(|v| lit(v.as_str())).collect(),
                                    false,
                                ),
                            )),
                        ),
                    };
                let mut op = table
                    .write(Vec::new())
                    .with_input_plan(source.into_unoptimized_plan())
                    .with_session_state(state)
                    .with_save_mode(save)
                    .with_partition_columns(partitions)
                    .with_commit_properties(commit);
                if evolve {
                    op = op.with_schema_mode(SchemaMode::Merge);
                }
                if let Some(p) = predicate {
                    op = op.with_replace_where(p);
                }
                op.await
            }
        };
        match result {
            Ok(table) => {
                let rows = rows.load(Ordering::Relaxed);
                let (inserted, updated) = merged.unwrap_or((rows, 0));
                Ok(WriteOutcome {
                    version: table.version().map_or(-1, |v| v as i64),
                    rows,
                    inserted,
                    updated,
                })
            }
            Err(e) if input_failed.load(Ordering::Relaxed) => Err(LakeError::Input {
                dataset,
                message: e.to_string(),
            }),
            Err(source) => Err(self.lake.delta_err("write", &dataset, source)),
        }
    }

    fn allows_extra_columns(&self) -> bool {
        self.dataset.layer == Layer::Raw
    }

    fn merge_key(&self) -> Result<Vec<String>> {
        if let Some(k) = self.merge_key.as_ref().filter(|k| !k.is_empty()) {
            return Ok(k.clone());
        }
        match &self.schema {
            Some(s) if !s.primary_key.is_empty() => Ok(s.primary_key.clone()),
            _ => Err(LakeError::NoMergeKey {
                dataset: self.dataset.clone(),
            }),
        }
    }

    /// The schema the input must match: the declared one, else the existing table's.
    fn target_schema(&self, existing: Option<&DeltaTable>) -> Result<Option<SchemaRef>> {
        if let Some(s) = &self.schema {
            return Ok(Some(s.arrow_schema()));
        }
        let Some(table) = existing else {
            return Ok(None);
        };
        let Ok(snapshot) = table.snapshot() else {
            return Ok(None);
        };
        let schema: Schema = snapshot
            .schema()
            .as_ref()
            .try_into_kernel_arrow()
            .map_err(|source| self.lake.delta_err("read schema", &self.dataset, source))?;
        Ok(Some(Arc::new(schema)))
    }

    async fn create_table(&self, schema: &SchemaRef) -> Result<DeltaTable> {
        let table = self
            .lake
            .table_builder(&self.dataset)?
            .build()
            .map_err(|source| self.lake.delta_err("create", &self.dataset, source))?;
        let delta_schema: StructType =
            schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| LakeError::SchemaMismatch {
                    dataset: self.dataset.clone(),
                    detail: format!("no Delta type for the input schema: {e}"),
                })?;
        let partitions = match &self.schema {
            Some(s) => s.partition_by.clone(),
            None => vec![WORKSPACE_COLUMN.to_string()],
        };
        let description = self
            .schema
            .as_ref()
            .map(|s| s.description.clone())
            .unwrap_or_default();
        let created = table
            .create()
            .with_columns(delta_schema.fields().cloned())
            .with_partition_columns(partitions)
            .with_table_name(self.dataset.to_string())
            .with_comment(description)
            .with_save_mode(SaveMode::Ignore)
            // No retry at a later version: when another writer created the table at the same
            // moment, a retried create would commit a second metadata action over theirs.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await;
        match created {
            Ok(t) => Ok(t),
            // Another writer created the table first: use theirs.
            Err(source) => match self.lake.try_load(&self.dataset).await? {
                Some(t) => Ok(t),
                None => Err(self.lake.delta_err("create", &self.dataset, source)),
            },
        }
    }
}

impl std::future::IntoFuture for WriteBuilder {
    type Output = Result<WriteOutcome>;
    type IntoFuture = futures::future::BoxFuture<'static, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// The rows of `df` held in memory, as a frame that can be scanned any number of times.
async fn materialize(ctx: &SessionContext, df: DataFrame) -> datafusion::error::Result<DataFrame> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    ctx.read_table(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// Whether the table has ever committed data files (a table created empty merges by insert).
fn has_data(table: &DeltaTable) -> bool {
    table
        .snapshot()
        .map(|s| s.log_data().num_files() > 0)
        .unwrap_or(false)
}

async fn merge(
    table: DeltaTable,
    source: DataFrame,
    key: &[String],
    evolve: bool,
    commit: CommitProperties,
    state: Arc<datafusion::execution::SessionState>,
) -> std::result::Result<(DeltaTable, (u64, u64)), DeltaTableError> {
    let qualified =
        |rel: &str, c: &str| Expr::Column(DfColumn::new(Some(TableReference::bare(rel)), c));
    let predicate = key
        .iter()
        .map(|k| qualified("target", k).eq(qualified("source", k)))
        .reduce(Expr::and)
        .ok_or_else(|| DeltaTableError::Generic("merge key is empty".into()))?;
    let columns: Vec<String> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let (table, metrics) = table
        .merge(source, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_merge_schema(evolve)
        .with_session_state(state)
        .with_commit_properties(commit)
        .when_matched_update(|mut update| {
            for c in columns.iter().filter(|c| !key.contains(c)) {
                update = update.update(c.as_str(), qualified("source", c));
            }
            update
        })?
        .when_not_matched_insert(|mut insert| {
            for c in &columns {
                insert = insert.set(c.as_str(), qualified("source", c));
            }
            insert
        })?
        .await?;
    let counts = (
        metrics.num_target_rows_inserted as u64,
        metrics.num_target_rows_updated as u64,
    );
    Ok((table, counts))
}

/// The input as a DataFrame, counting rows and noting a failure of the input itself.
fn input_frame(
    ctx: &SessionContext,
    input: Input,
    rows: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
) -> datafusion::error::Result<DataFrame> {
    match input {
        Input::Batches(schema, batches) => {
            rows.store(
                batches.iter().map(|b| b.num_rows() as u64).sum(),
                Ordering::Relaxed,
            );
            let table = MemTable::try_new(schema, vec![batches])?;
            ctx.read_table(Arc::new(table))
        }
        Input::Stream(stream) => {
            let schema = stream.schema();
            let counted = stream.inspect(move |r| match r {
                Ok(b) => {
                    rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                }
                Err(_) => failed.store(true, Ordering::Relaxed),
            });
            let once = OneShot {
                schema: schema.clone(),
                stream: std::sync::Mutex::new(Some(Box::pin(RecordBatchStreamAdapter::new(
                    schema.clone(),
                    counted,
                )))),
            };
            let table = StreamingTable::try_new(schema, vec![Arc::new(once)])?;
            ctx.read_table(Arc::new(table))
        }
    }
}

/// A partition stream that can be executed once: the write's input.
struct OneShot {
    schema: SchemaRef,
    stream: std::sync::Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        match taken {
            Some(s) => s,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(datafusion::error::DataFusionError::Internal(
                        "a streamed write input was read twice".into(),
                    ))
                }),
            )),
        }
    }
}

/// `schema` with every column the `declared` schema lets be NULL made nullable.
fn declared_nullability(schema: &SchemaRef, declared: Option<&SchemaRef>) -> SchemaRef {
    let Some(declared) = declared else {
        return schema.clone();
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let nullable = f.is_nullable()
                || declared
                    .field_with_name(f.name())
                    .is_ok_and(|d| d.is_nullable());
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Checks the input against `target` and projects it to the target's column order and exact
/// types; with `extra_ok` (raw layers) further input columns are kept after the declared ones.
fn conform(
    dataset: &DatasetRef,
    source: DataFrame,
    target: Option<&SchemaRef>,
    extra_ok: bool,
) -> Result<DataFrame> {
    let Some(target) = target else {
        return Ok(source);
    };
    let mismatch = |detail: String| LakeError::SchemaMismatch {
        dataset: dataset.clone(),
        detail,
    };
    let input: HashMap<String, DataType> = source
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let mut exprs = Vec::with_capacity(target.fields().len());
    let mut missing = Vec::new();
    for field in target.fields() {
        match input.get(field.name()) {
            None if extra_ok && field.is_nullable() => {
                exprs.push(
                    cast(
                        lit(datafusion::scalar::ScalarValue::Null),
                        field.data_type().clone(),
                    )
                    .alias(field.name()),
                );
            }
            None => missing.push(field.name().clone()),
            Some(found) => {
                // Timestamps of any unit or zone cast to the declared one (a zoneless
                // timestamp is read as UTC); every other type must match.
                let both_timestamps = matches!(found, DataType::Timestamp(..))
                    && matches!(field.data_type(), DataType::Timestamp(..));
                let compatible = *found == DataType::Null
                    || both_timestamps
                    || canonical_type(found) == canonical_type(field.data_type());
                if !compatible {
                    return Err(mismatch(format!(
                        "column `{}` is {} in the input but {} in the schema",
                        field.name(),
                        canonical_type(found),
                        canonical_type(field.data_type())
                    )));
                }
                exprs.push(
                    cast(col(quoted(field.name())), field.data_type().clone()).alias(field.name()),
                );
            }
        }
    }
    if !missing.is_empty() {
        return Err(mismatch(format!(
            "the input lacks column(s) {}",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let declared: std::collections::HashSet<&String> =
        target.fields().iter().map(|f| f.name()).collect();
    let mut extra: Vec<&Field> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref())
        .filter(|f| !declared.contains(f.name()))
        .collect();
    if !extra.is_empty() && !extra_ok {
        return Err(mismatch(format!(
            "the input has column(s) not in the schema: {}",
            extra
                .iter()
                .map(|f| format!("`{}`", f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    extra.sort_by(|a, b| a.name().cmp(b.name()));
    for f in extra {
        exprs.push(col(quoted(f.name())));
    }
    source.select(exprs).map_err(|source| LakeError::Plan {
        dataset: dataset.clone(),
        source: Box::new(source),
    })
}

/// A column reference that keeps case and punctuation.
fn quoted(name: &str) -> DfColumn {
    DfColumn::new_unqualified(name)
}

trait KernelSchemaExt {
    fn try_into_kernel_arrow(&self) -> std::result::Result<Schema, DeltaTableError>;
}

impl KernelSchemaExt for StructType {
    fn try_into_kernel_arrow(&self) -> std::result::Result<Schema, DeltaTableError> {
        use deltalake::kernel::engine::arrow_conversion::TryFromKernel;
        Schema::try_from_kernel(self).map_err(|e| DeltaTableError::Generic(e.to_string()))
    }
}
