//! SQL models: one `SELECT` per file under `transforms/<layer>/<table>.sql`, building the
//! dataset `<layer>.<table>`. Inputs are the `layer.table` names a model reads; the runner
//! orders models by them and refuses cycles and unknown inputs, naming file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::error::{Result, SqlError};
use super::session::{SessionOptions, SqlSession};
use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId, WriteMode, WriteOutcome};
use crate::project::Project;

/// One SQL model.
#[derive(Debug, Clone)]
pub struct Model {
    pub dataset: DatasetRef,
    pub path: PathBuf,
    pub sql: String,
    /// The `layer.table` names the model reads (seeds excluded).
    pub inputs: BTreeSet<DatasetRef>,
}

/// The models of a project in an order that runs each after its inputs.
#[derive(Debug, Clone, Default)]
pub struct ModelDag {
    pub models: Vec<Model>,
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
                let model = Model::parse(layer, &path)?;
                models.insert(model.dataset.clone(), model);
            }
        }
        order(models)
    }

    /// Refuses inputs that are neither a model's output nor an existing dataset.
    pub fn check_inputs(&self, existing: &[DatasetRef]) -> Result<()> {
        let outputs: BTreeSet<&DatasetRef> = self.models.iter().map(|m| &m.dataset).collect();
        for m in &self.models {
            for input in &m.inputs {
                if !outputs.contains(input) && !existing.contains(input) {
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
    Ok(ModelDag { models: ordered })
}

/// Runs every model in order, each as one overwrite of its dataset (of one workspace's rows
/// when `workspace` is given), checked against its declared schema before committing.
pub async fn run_models(
    lake: &Lake,
    project: &Project,
    dag: &ModelDag,
    workspace: Option<&WorkspaceId>,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> Result<Vec<ModelRun>> {
    let existing = lake.datasets().await?;
    dag.check_inputs(&existing)?;
    let mut runs = Vec::with_capacity(dag.models.len());
    for model in &dag.models {
        let started = Instant::now();
        let session = SqlSession::open(
            lake,
            &SessionOptions {
                workspace: workspace.cloned(),
                as_of: None,
                seeds: Some(project.seeds_dir()),
            },
        )
        .await?;
        let df = session
            .query(&model.sql)
            .await
            .map_err(|e| SqlError::Model {
                path: model.path.display().to_string(),
                message: e.to_string(),
            })?;
        let stream = df
            .execute_stream()
            .await
            .map_err(|source| SqlError::Execution {
                source: Box::new(source),
            })?;
        let mode = match workspace {
            Some(ws) => WriteMode::OverwriteWorkspace(ws.clone()),
            None => WriteMode::Overwrite,
        };
        let outcome = lake
            .write(model.dataset.clone())
            .with_schema(project.schema(&model.dataset))
            .with_mode(mode)
            .with_stream(stream)
            .with_commit_metadata("revlake.model", model.path.display().to_string().into())
            .await
            .map_err(|e| SqlError::Model {
                path: model.path.display().to_string(),
                message: e.to_string(),
            })?;
        crate::telemetry::dataset_written(
            &model.dataset.to_string(),
            outcome.version,
            outcome.rows,
        );
        let run = ModelRun {
            dataset: model.dataset.clone(),
            outcome,
            elapsed: started.elapsed(),
        };
        on_done(&run);
        runs.push(run);
    }
    Ok(runs)
}
