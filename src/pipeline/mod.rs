//! Pipelines: the stages of a run in order (extract → transform → …), over one lake and
//! workspace. Today: landing a folder of vendor export files and running the SQL models.

use std::path::{Path, PathBuf};

use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};
use crate::project::Project;
use crate::sources::file::{
    FileError, FileFormat, ImportOutcome, ImportStrategy, ObjectMap, import_file,
};
use crate::sources::{SourceError, naming::snake_case};
use crate::sql::SqlError;
use std::sync::Arc;

use crate::quality::{CheckRun, QualityGate};
use crate::sql::models::{DatasetGate, ModelDag, ModelRun, RunOptions, run_selected};

/// Errors of a pipeline run, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("extract stage: {0}")]
    Extract(Box<SourceError>),
    #[error("extract stage: {0}")]
    Import(#[from] FileError),
    #[error("transform stage: {0}")]
    Transform(#[from] SqlError),
    #[error("checks: {0}")]
    Quality(#[from] crate::quality::QualityError),
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
}

impl From<SourceError> for PipelineError {
    fn from(e: SourceError) -> Self {
        PipelineError::Extract(Box::new(e))
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// The export files found in `dir`: `<dir>/<source>/<Object>.<ext>` (any format
/// [`FileFormat`] reads: csv, tsv, json, ndjson, xlsx) lands as `raw.<source>_<object>`
/// (snake_case), e.g. `salesforce/OpportunityHistory.csv` → `raw.salesforce_opportunity_history`.
pub fn export_files(dir: &Path) -> Result<Vec<(PathBuf, DatasetRef)>> {
    let input_err = |reason: String| PipelineError::Input {
        path: dir.to_path_buf(),
        reason,
    };
    let mut found = Vec::new();
    let sources = std::fs::read_dir(dir).map_err(|e| input_err(e.to_string()))?;
    for source in sources.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        let source_name = snake_case(&source.file_name().to_string_lossy());
        let files = std::fs::read_dir(source.path()).map_err(|e| input_err(e.to_string()))?;
        for file in files.filter_map(|e| e.ok().map(|e| e.path())) {
            if !file.is_file() || FileFormat::from_path(&file).is_err() {
                continue;
            }
            let object = snake_case(&file.file_stem().unwrap_or_default().to_string_lossy());
            let dataset = DatasetRef::new(Layer::Raw, format!("{source_name}_{object}"))
                .map_err(|e| input_err(e.to_string()))?;
            found.push((file, dataset));
        }
    }
    found.sort();
    Ok(found)
}

/// Lands every export file of `dir` into its raw table (replacing the workspace's rows), each
/// an import batch. Files of a known vendor object (`salesforce/Opportunity.csv`,
/// `hubspot/deals.csv`) get its header map: export labels land as the API's names.
pub async fn land_exports(
    lake: &Lake,
    dir: &Path,
    workspace: &WorkspaceId,
    sync_id: &str,
    on_done: &mut (dyn FnMut(&ImportOutcome) + Send),
) -> Result<Vec<ImportOutcome>> {
    let mut outcomes = Vec::new();
    for (path, dataset) in export_files(dir)? {
        // The built-in map of the table's object, if it is one (`raw.hubspot_deals`).
        let object = ObjectMap::for_dataset(&dataset)?.map(|m| m.name());
        let outcome = import_file(lake, path.display().to_string(), workspace.clone())
            .with_dataset(dataset)
            .with_object(object)
            .with_strategy(ImportStrategy::Replace)
            .with_sync_id(sync_id)
            .await?;
        on_done(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Runs the project's SQL models, each followed by its dataset's checks (see
/// [`transform_checked`]).
pub async fn transform(
    lake: &Lake,
    project: &Project,
    workspace: Option<&WorkspaceId>,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> Result<Vec<ModelRun>> {
    let (runs, _) = transform_checked(lake, project, workspace, on_done).await;
    runs
}

/// Runs the project's SQL models with the quality gate: the checks declared for the stored
/// inputs run before the models reading them, each model's checks once it commits, and a
/// failing critical check skips what reads its dataset. Returns the models' outcome and the
/// checks' (recorded in `ops.quality_results` whether or not the models failed).
pub async fn transform_checked(
    lake: &Lake,
    project: &Project,
    workspace: Option<&WorkspaceId>,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> (Result<Vec<ModelRun>>, crate::quality::Result<CheckRun>) {
    let dag = match ModelDag::load(project) {
        Ok(d) => d,
        Err(e) => return (Err(e.into()), Ok(CheckRun::default())),
    };
    let gate = match QualityGate::new(lake, project, workspace).await {
        Ok(g) => Arc::new(g),
        Err(e) => return (Err(e.into()), Ok(CheckRun::default())),
    };
    let options = RunOptions {
        workspace: workspace.cloned(),
        gate: Some(gate.clone() as Arc<dyn DatasetGate>),
        ..RunOptions::default()
    };
    let runs = run_selected(lake, project, &dag, &options, on_done)
        .await
        .map_err(PipelineError::from);
    let checks = gate.finish().await;
    (runs, checks)
}
