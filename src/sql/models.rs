//! SQL models: one `SELECT` per file under `transforms/<layer>/<table>.sql`, building the
//! dataset `<layer>.<table>`. Inputs are the `layer.table` names a model reads; the runner
//! orders models by them and refuses cycles and unknown inputs, naming file and line. Raw
//! tables declared in `transforms/sources.toml` may be absent from the lake: a run reads them
//! as empty (see [`super::sources`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::error::{Result, SqlError};
use super::session::{SessionOptions, SqlSession};
use super::sources::SourceTable;
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::{DatasetSchema, Materialization, Project};

/// One SQL model.
#[derive(Debug, Clone)]
pub struct Model {
    pub dataset: DatasetRef,
    pub path: PathBuf,
    pub sql: String,
    /// The `layer.table` names the model reads (seeds excluded).
    pub inputs: BTreeSet<DatasetRef>,
    /// From the dataset's schema file (`table` when it has none).
    pub materialized: Materialization,
    pub tags: Vec<String>,
    pub incremental_inputs: Vec<DatasetRef>,
}

/// The models of a project in an order that runs each after its inputs.
#[derive(Debug, Clone, Default)]
pub struct ModelDag {
    pub models: Vec<Model>,
    /// The raw tables declared in `transforms/sources.toml`.
    pub sources: Vec<SourceTable>,
}

/// What running one model did.
#[derive(Debug, Clone)]
pub struct ModelRun {
    pub dataset: DatasetRef,
    pub outcome: WriteOutcome,
    pub elapsed: Duration,
}

impl Model {
    fn parse(layer: Layer, path: &Path) -> Result<Self> {
        let err = |message: String| SqlError::Model {
            path: path.display().to_string(),
            message,
        };
        let sql = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| err("no file name".into()))?;
        let dataset = DatasetRef::new(layer, stem).map_err(|e| err(e.to_string()))?;
        super::guard::check_read_only(&sql).map_err(|e| err(e.to_string()))?;
        let statements = DFParser::parse_sql_with_dialect(&sql, &GenericDialect {})
            .map_err(|e| err(e.to_string()))?;
        let statement = statements
            .front()
            .ok_or_else(|| err("the file holds no statement".into()))?;
        let (refs, _ctes) =
            resolve_table_references(statement, true).map_err(|e| err(e.to_string()))?;
        let mut inputs = BTreeSet::new();
        for r in refs {
            let name = r.to_string();
            if name.starts_with("seeds.") {
                continue;
            }
            let input: DatasetRef = name.parse().map_err(|_| {
                err(format!(
                    "line {}: `{name}` is not a `layer.table` name",
                    line_of(&sql, &name)
                ))
            })?;
            inputs.insert(input);
        }
        Ok(Self {
            dataset,
            path: path.to_path_buf(),
            sql,
            inputs,
            materialized: Materialization::Table,
            tags: Vec::new(),
            incremental_inputs: Vec::new(),
        })
    }
}

/// 1-based line of the first occurrence of `needle` in `text` (1 if absent).
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|at| text[..at].lines().count().max(1))
        .unwrap_or(1)
}

impl ModelDag {
    /// Reads `transforms/staging/*.sql` and `transforms/marts/*.sql` and orders them.
    pub fn load(project: &Project) -> Result<Self> {
        let mut models = BTreeMap::new();
        for layer in [Layer::Staging, Layer::Marts] {
            let dir = project.transforms_dir().join(layer.as_str());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            paths.sort();
            for path in paths {
                let mut model = Model::parse(layer, &path)?;
                if let Some(schema) = project.schema(&model.dataset) {
                    model.materialized = schema.materialized;
                    model.tags = schema.tags.clone();
                    model.incremental_inputs = schema.incremental_inputs.clone();
                    for input in &model.incremental_inputs {
                        if !model.inputs.contains(input) {
                            return Err(SqlError::Model {
                                path: schema.path.display().to_string(),
                                message: format!(
                                    "incremental input `{input}` is not read by {}",
                                    model.path.display()
                                ),
                            });
                        }
                    }
                }
                models.insert(model.dataset.clone(), model);
            }
        }
        let mut dag = order(models)?;
        dag.sources = super::sources::load(&project.transforms_dir())?;
        Ok(dag)
    }

    /// Refuses inputs that are neither a model's output, nor an existing dataset, nor a
    /// declared source.
    pub fn check_inputs(&self, existing: &[DatasetRef]) -> Result<()> {
        let outputs: BTreeSet<&DatasetRef> = self.models.iter().map(|m| &m.dataset).collect();
        for m in &self.models {
            for input in &m.inputs {
                let declared = self.sources.iter().any(|s| &s.dataset == input);
                if !outputs.contains(input) && !existing.contains(input) && !declared {
                    return Err(SqlError::Model {
                        path: format!(
                            "{}:{}",
                            m.path.display(),
                            line_of(&m.sql, &input.to_string())
                        ),
                        message: format!(
                            "unknown input `{input}`: no model builds it and the lake has no such dataset"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Kahn's order; a cycle is reported with its members.
fn order(mut models: BTreeMap<DatasetRef, Model>) -> Result<ModelDag> {
    let mut ordered = Vec::with_capacity(models.len());
    let mut done: BTreeSet<DatasetRef> = BTreeSet::new();
    while !models.is_empty() {
        let ready: Vec<DatasetRef> = models
            .values()
            .filter(|m| {
                m.inputs
                    .iter()
                    .all(|i| done.contains(i) || !models.contains_key(i))
            })
            .map(|m| m.dataset.clone())
            .collect();
        if ready.is_empty() {
            let mut cycle: Vec<String> = models.keys().map(|d| d.to_string()).collect();
            cycle.sort();
            return Err(SqlError::Cycle { cycle });
        }
        for d in ready {
            if let Some(m) = models.remove(&d) {
                done.insert(d);
                ordered.push(m);
            }
        }
    }
    Ok(ModelDag {
        models: ordered,
        sources: Vec::new(),
    })
}

/// Checks run on a dataset once it is written (the quality stage), and on the stored inputs
/// of the run before the models that read them: a dataset the gate blocks is treated like a
/// failed model, so what reads it is skipped while independent models go on.
pub trait DatasetGate: Send + Sync + std::fmt::Debug {
    /// `None` lets what reads `dataset` run; `Some(reason)` blocks it.
    fn check<'a>(
        &'a self,
        session: &'a SqlSession,
        dataset: &'a DatasetRef,
    ) -> futures::future::BoxFuture<'a, Option<String>>;

    /// Whether the gate has checks for `dataset` (inputs without any are not visited).
    fn covers(&self, dataset: &DatasetRef) -> bool;
}

/// How a run of the models goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Build only this workspace's rows (all rows when `None`).
    pub workspace: Option<WorkspaceId>,
    /// Selectors (`staging.deals`, `deals`, `deals+`, `+deals`, `tag:daily`); all when empty.
    pub select: Vec<String>,
    /// Rebuild incremental models whole.
    pub full_refresh: bool,
    /// Models built at the same time.
    pub concurrency: usize,
    /// Checks gating each dataset (none: no checks run).
    pub gate: Option<std::sync::Arc<dyn DatasetGate>>,
    /// Rebuild only some records (see [`RunScope`]); needs `workspace`.
    pub scope: Option<std::sync::Arc<RunScope>>,
}

/// A run limited to a few records (a webhook's deals): each input named in `inputs` reads only
/// its rows whose column holds one of the given values, and each selected model, which must be
/// a `table` named in `outputs`, replaces only its workspace rows whose column (per model)
/// holds one of `values` (one commit). The SQL is the model's own: what it computes for those
/// records from the narrowed inputs must be what a full run computes for them, so only models
/// whose rows of a record depend on that record's input rows alone (plus unnarrowed inputs)
/// may run scoped.
#[derive(Debug, Clone, Default)]
pub struct RunScope {
    /// Per input: the column and the values kept.
    pub inputs: BTreeMap<DatasetRef, (String, Vec<String>)>,
    /// Per model: the column its records are replaced by.
    pub outputs: BTreeMap<DatasetRef, String>,
    /// The values of the output column replaced.
    pub values: Vec<String>,
}

impl RunScope {
    /// `SELECT * FROM input` narrowed to the values (nothing for none).
    fn narrowed(input: &DatasetRef, column: &str, values: &[String]) -> String {
        if values.is_empty() {
            return format!("SELECT * FROM {input} WHERE false");
        }
        let list: Vec<String> = values
            .iter()
            .map(|v| format!("'{}'", v.replace('\'', "''")))
            .collect();
        format!(
            "SELECT * FROM {input} WHERE CAST(\"{column}\" AS VARCHAR) IN ({})",
            list.join(", ")
        )
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workspace: None,
            select: Vec::new(),
            full_refresh: false,
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            gate: None,
            scope: None,
        }
    }
}

impl ModelDag {
    fn find(&self, name: &str) -> std::result::Result<&Model, String> {
        let matches: Vec<&Model> = self
            .models
            .iter()
            .filter(|m| m.dataset.to_string() == name || m.dataset.table == name)
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "no such model; the models are: {}",
                self.models
                    .iter()
                    .map(|m| m.dataset.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            many => Err(format!(
                "ambiguous: {}",
                many.iter()
                    .map(|m| m.dataset.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The models `dataset` reads, transitively.
    fn ancestors(&self, dataset: &DatasetRef, out: &mut BTreeSet<DatasetRef>) {
        if let Some(m) = self.models.iter().find(|m| &m.dataset == dataset) {
            for input in &m.inputs {
                if self.models.iter().any(|x| &x.dataset == input) && out.insert(input.clone()) {
                    self.ancestors(input, out);
                }
            }
        }
    }

    /// The models that read `dataset`, transitively.
    fn descendants(&self, dataset: &DatasetRef, out: &mut BTreeSet<DatasetRef>) {
        for m in &self.models {
            if m.inputs.contains(dataset) && out.insert(m.dataset.clone()) {
                self.descendants(&m.dataset, out);
            }
        }
    }

    /// The models `selectors` name (each may be comma-separated), in run order; all when empty.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<&Model>> {
        let parts: Vec<&str> = selectors
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            return Ok(self.models.iter().collect());
        }
        let mut chosen = BTreeSet::new();
        for part in parts {
            let err = |reason: String| SqlError::Selector {
                selector: part.to_string(),
                reason,
            };
            if let Some(tag) = part.strip_prefix("tag:") {
                let tagged: Vec<&Model> = self
                    .models
                    .iter()
                    .filter(|m| m.tags.iter().any(|t| t == tag))
                    .collect();
                if tagged.is_empty() {
                    return Err(err(format!("no model has the tag `{tag}`")));
                }
                chosen.extend(tagged.into_iter().map(|m| m.dataset.clone()));
                continue;
            }
            let up = part.starts_with('+');
            let down = part.ends_with('+');
            let name = part.trim_start_matches('+').trim_end_matches('+');
            let model = self.find(name).map_err(err)?;
            chosen.insert(model.dataset.clone());
            if up {
                self.ancestors(&model.dataset, &mut chosen);
            }
            if down {
                self.descendants(&model.dataset, &mut chosen);
            }
        }
        Ok(self
            .models
            .iter()
            .filter(|m| chosen.contains(&m.dataset))
            .collect())
    }

    /// The graph as text: each model in run order with its materialization and inputs.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for m in &self.models {
            let inputs: Vec<String> = m.inputs.iter().map(|i| i.to_string()).collect();
            out.push_str(&format!(
                "{:<36} {:<12} <- {}\n",
                m.dataset.to_string(),
                format!("{:?}", m.materialized).to_lowercase(),
                if inputs.is_empty() {
                    "(none)".to_string()
                } else {
                    inputs.join(", ")
                }
            ));
        }
        out
    }

    /// The graph in Graphviz DOT: sources as boxes, models as ellipses, views dashed.
    pub fn to_dot(&self) -> String {
        let mut out =
            String::from("digraph revlake {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
        let models: BTreeSet<&DatasetRef> = self.models.iter().map(|m| &m.dataset).collect();
        let mut sources = BTreeSet::new();
        for m in &self.models {
            for i in &m.inputs {
                if !models.contains(i) {
                    sources.insert(i.to_string());
                }
            }
        }
        for s in &sources {
            out.push_str(&format!("  \"{s}\" [shape=box];\n"));
        }
        for m in &self.models {
            let style = match m.materialized {
                Materialization::View => ", style=dashed",
                Materialization::Incremental => ", peripheries=2",
                Materialization::Table => "",
            };
            out.push_str(&format!("  \"{}\" [shape=ellipse{style}];\n", m.dataset));
            for i in &m.inputs {
                out.push_str(&format!("  \"{i}\" -> \"{}\";\n", m.dataset));
            }
        }
        out.push_str("}\n");
        out
    }
}

/// Runs every model in order (see [`run_selected`]).
pub async fn run_models(
    lake: &Lake,
    project: &Project,
    dag: &ModelDag,
    workspace: Option<&WorkspaceId>,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> Result<Vec<ModelRun>> {
    let options = RunOptions {
        workspace: workspace.cloned(),
        ..RunOptions::default()
    };
    run_selected(lake, project, dag, &options, on_done).await
}

/// Runs the selected models (and the views they read), independent ones at the same time,
/// each after its inputs, in one shared session that is refreshed as each model commits. A
/// failed model skips the models that read it; the others go on, and the run then fails
/// naming them all.
pub async fn run_selected(
    lake: &Lake,
    project: &Project,
    dag: &ModelDag,
    options: &RunOptions,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> Result<Vec<ModelRun>> {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;

    let existing = lake.datasets().await?;
    dag.check_inputs(&existing)?;
    let mut wanted: BTreeSet<DatasetRef> = dag
        .select(&options.select)?
        .into_iter()
        .map(|m| m.dataset.clone())
        .collect();
    // Views are not stored: a selected model reading one needs it in this run's session.
    let mut grew = true;
    while grew {
        grew = false;
        for m in &dag.models {
            if wanted.contains(&m.dataset) {
                for i in &m.inputs {
                    let is_view = dag
                        .models
                        .iter()
                        .any(|x| &x.dataset == i && x.materialized == Materialization::View);
                    if is_view && wanted.insert(i.clone()) {
                        grew = true;
                    }
                }
            }
        }
    }
    let session = std::sync::Arc::new(
        SqlSession::open(
            lake,
            &SessionOptions {
                workspace: options.workspace.clone(),
                as_of: None,
                seeds: Some(project.seeds_dir()),
            },
        )
        .await?,
    );
    session.register_sources(&dag.sources).await?;
    if let Some(scope) = &options.scope {
        if options.workspace.is_none() {
            return Err(SqlError::Model {
                path: "run options".into(),
                message: "a scoped run needs a workspace".into(),
            });
        }
        for m in dag.models.iter().filter(|m| wanted.contains(&m.dataset)) {
            if m.materialized != Materialization::Table || !scope.outputs.contains_key(&m.dataset) {
                return Err(SqlError::Model {
                    path: m.path.display().to_string(),
                    message: format!(
                        "{} cannot be rebuilt for a few records: only `table` models the scope names can",
                        m.dataset
                    ),
                });
            }
        }
        let tables = session.tables();
        for (input, (column, values)) in &scope.inputs {
            if tables.contains(input) {
                session
                    .register_view(input, &RunScope::narrowed(input, column, values))
                    .await?;
            }
        }
    }
    let mut pending: Vec<&Model> = dag
        .models
        .iter()
        .filter(|m| wanted.contains(&m.dataset))
        .collect();
    let mut running: BTreeSet<DatasetRef> = BTreeSet::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut broken: BTreeSet<DatasetRef> = BTreeSet::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut blocked: Vec<(String, String)> = Vec::new();
    let mut runs = Vec::new();
    // The stored inputs (raw tables, marts not built here) are checked before anything reads them.
    if let Some(gate) = &options.gate {
        let built: BTreeSet<&DatasetRef> = pending.iter().map(|m| &m.dataset).collect();
        let inputs: BTreeSet<&DatasetRef> = pending
            .iter()
            .flat_map(|m| m.inputs.iter())
            .filter(|i| !built.contains(i) && gate.covers(i) && session.tables().contains(i))
            .collect();
        for input in inputs {
            if let Some(reason) = gate.check(&session, input).await {
                broken.insert(input.clone());
                blocked.push((input.to_string(), reason));
            }
        }
    }
    let mut tasks = FuturesUnordered::new();
    loop {
        // Start every model whose inputs in this run are built, up to the concurrency.
        let mut i = 0;
        while i < pending.len() && running.len() < options.concurrency.max(1) {
            let m = pending[i];
            if m.inputs.iter().any(|x| broken.contains(x)) {
                broken.insert(m.dataset.clone());
                skipped.push(m.dataset.to_string());
                pending.remove(i);
                continue;
            }
            let waiting = m
                .inputs
                .iter()
                .any(|x| running.contains(x) || pending.iter().any(|p| &p.dataset == x));
            if waiting {
                i += 1;
                continue;
            }
            pending.remove(i);
            running.insert(m.dataset.clone());
            let job = ModelJob {
                lake: lake.clone(),
                session: session.clone(),
                model: m.clone(),
                schema: project.schema(&m.dataset).cloned(),
                seeds: project.seeds_dir(),
                sources: dag.sources.clone(),
                options: options.clone(),
            };
            let span = tracing::info_span!("model", model = %m.dataset);
            tasks.push(tokio::spawn(tracing::Instrument::instrument(
                job.run(),
                span,
            )));
        }
        let Some(joined) = tasks.next().await else {
            break;
        };
        let (model, result) = joined.map_err(|e| SqlError::Execution {
            source: Box::new(datafusion::error::DataFusionError::External(Box::new(e))),
        })?;
        running.remove(&model.dataset);
        match result {
            Ok(run) => {
                if model.materialized != Materialization::View
                    && let Err(e) = session.refresh(lake, &model.dataset).await
                {
                    broken.insert(model.dataset.clone());
                    failed.push((model.dataset.to_string(), e.to_string()));
                    continue;
                }
                tracing::info_span!("model", model = %run.dataset).in_scope(|| {
                    crate::telemetry::dataset_written(
                        &run.dataset.to_string(),
                        run.outcome.version,
                        run.outcome.rows,
                    )
                });
                on_done(&run);
                if let Some(gate) = &options.gate
                    && gate.covers(&model.dataset)
                    && let Some(reason) = gate.check(&session, &model.dataset).await
                {
                    broken.insert(model.dataset.clone());
                    blocked.push((model.dataset.to_string(), reason));
                }
                runs.push(run);
            }
            Err(e) => {
                tracing::error!(model = %model.dataset, error = %e, "model failed");
                broken.insert(model.dataset.clone());
                failed.push((model.path.display().to_string(), e.to_string()));
            }
        }
    }
    if !failed.is_empty() || !blocked.is_empty() {
        if failed.len() == 1 && blocked.is_empty() && skipped.is_empty() && runs.is_empty() {
            let (path, message) = failed.remove(0);
            return Err(SqlError::Model { path, message });
        }
        return Err(SqlError::ModelsFailed {
            failed,
            blocked,
            skipped,
        });
    }
    Ok(runs)
}

/// One model's build, run as its own task.
struct ModelJob {
    lake: Lake,
    session: std::sync::Arc<SqlSession>,
    model: Model,
    schema: Option<DatasetSchema>,
    seeds: PathBuf,
    sources: Vec<SourceTable>,
    options: RunOptions,
}

impl ModelJob {
    async fn run(self) -> (Model, Result<ModelRun>) {
        let started = Instant::now();
        let result = self.build().await.map(|outcome| ModelRun {
            dataset: self.model.dataset.clone(),
            outcome,
            elapsed: started.elapsed(),
        });
        (self.model, result)
    }

    fn model_err(&self, e: impl std::fmt::Display) -> SqlError {
        SqlError::Model {
            path: self.model.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The Delta `txn` app id holding an incremental model's input watermark.
    fn watermark_app(&self) -> String {
        format!(
            "revlake.model/{}/{}",
            self.model.dataset,
            self.options
                .workspace
                .as_ref()
                .map_or("all", |w| w.as_str())
        )
    }

    async fn build(&self) -> Result<WriteOutcome> {
        let m = &self.model;
        match m.materialized {
            Materialization::View => {
                self.session
                    .register_view(&m.dataset, &m.sql)
                    .await
                    .map_err(|e| self.model_err(e))?;
                Ok(WriteOutcome {
                    version: -1,
                    rows: 0,
                    ..Default::default()
                })
            }
            Materialization::Table => {
                let mode = match (&self.options.scope, &self.options.workspace) {
                    (Some(scope), Some(ws)) => WriteMode::ReplaceWhere {
                        workspace: ws.clone(),
                        column: scope.outputs.get(&m.dataset).cloned().unwrap_or_default(),
                        values: scope.values.clone(),
                    },
                    _ => self.overwrite(),
                };
                self.write(&self.session, mode, None).await
            }
            Materialization::Incremental => {
                let app = self.watermark_app();
                let previous = self.lake.app_transaction(&m.dataset, &app).await?;
                let latest = self.input_watermark().await?;
                match previous {
                    Some(since) if !self.options.full_refresh => {
                        if latest.is_none_or(|l| l <= since) {
                            tracing::info!(model = %m.dataset, "no input changed since the last run");
                            let version = self
                                .lake
                                .info(&m.dataset)
                                .await
                                .map(|i| i.version)
                                .unwrap_or(-1);
                            return Ok(WriteOutcome {
                                version,
                                rows: 0,
                                ..Default::default()
                            });
                        }
                        // A session of its own, whose incremental inputs hold only changed rows.
                        let session = SqlSession::open(
                            &self.lake,
                            &SessionOptions {
                                workspace: self.options.workspace.clone(),
                                as_of: None,
                                seeds: Some(self.seeds.clone()),
                            },
                        )
                        .await?;
                        session.register_sources(&self.sources).await?;
                        for input in &m.incremental_inputs {
                            let sql = format!(
                                "SELECT * FROM {input} WHERE CAST(_synced_at AS BIGINT) > {since}"
                            );
                            session.register_view(input, &sql).await.map_err(|e| {
                                self.model_err(format!("incremental input {input}: {e}"))
                            })?;
                        }
                        self.write(&session, WriteMode::Merge, latest.map(|l| (app, l)))
                            .await
                    }
                    _ => {
                        self.write(&self.session, self.overwrite(), latest.map(|l| (app, l)))
                            .await
                    }
                }
            }
        }
    }

    fn overwrite(&self) -> WriteMode {
        match &self.options.workspace {
            Some(ws) => WriteMode::OverwriteWorkspace(ws.clone()),
            None => WriteMode::Overwrite,
        }
    }

    /// The largest `_synced_at` (microseconds) over the incremental inputs.
    async fn input_watermark(&self) -> Result<Option<i64>> {
        let mut latest: Option<i64> = None;
        for input in &self.model.incremental_inputs {
            let df = self
                .session
                .query(&format!(
                    "SELECT CAST(max(_synced_at) AS BIGINT) AS w FROM {input}"
                ))
                .await
                .map_err(|e| {
                    self.model_err(format!(
                        "incremental input {input} needs a _synced_at column: {e}"
                    ))
                })?;
            let batches = df.collect().await.map_err(|source| SqlError::Execution {
                source: Box::new(source),
            })?;
            for b in &batches {
                if let Some(col) = b
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                {
                    for v in col.iter().flatten() {
                        latest = Some(latest.map_or(v, |l: i64| l.max(v)));
                    }
                }
            }
        }
        Ok(latest)
    }

    async fn write(
        &self,
        session: &SqlSession,
        mode: WriteMode,
        watermark: Option<(String, i64)>,
    ) -> Result<WriteOutcome> {
        let m = &self.model;
        let df = session.query(&m.sql).await.map_err(|e| self.model_err(e))?;
        let stream = df
            .execute_stream()
            .await
            .map_err(|source| SqlError::Execution {
                source: Box::new(source),
            })?;
        let mut write = self
            .lake
            .write(m.dataset.clone())
            .with_schema(self.schema.as_ref())
            .with_mode(mode)
            .with_stream(stream)
            .with_commit_metadata("revlake.model", m.path.display().to_string().into());
        if let Some((app, w)) = watermark {
            write = write.with_app_transaction(app, w);
        }
        write.await.map_err(|e| self.model_err(e))
    }
}
