//! Pipelines: the stages of a run in order (extract → transform → …), over one lake and
//! workspace. Today: landing a folder of vendor export files and running the SQL models.

use std::path::{Path, PathBuf};

use crate::lake::{DatasetRef, Lake, Layer, WorkspaceId};
use crate::project::Project;
use crate::sources::file::{CsvImport, ImportOutcome, ImportStrategy, import_csv};
use crate::sources::{SourceError, naming::snake_case};
use crate::sql::SqlError;
use crate::sql::models::{ModelDag, ModelRun, run_models};

/// Errors of a pipeline run, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("extract stage: {0}")]
    Extract(#[from] SourceError),
    #[error("transform stage: {0}")]
    Transform(#[from] SqlError),
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// The export files found in `dir`: `<dir>/<source>/<Object>.csv` lands as
/// `raw.<source>_<object>` (snake_case), e.g. `salesforce/OpportunityHistory.csv` →
/// `raw.salesforce_opportunity_history`.
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
            if !file
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
            {
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

/// Lands every export file of `dir` into its raw table (replacing the workspace's rows).
pub async fn land_exports(
    lake: &Lake,
    dir: &Path,
    workspace: &WorkspaceId,
    sync_id: &str,
    on_done: &mut (dyn FnMut(&ImportOutcome) + Send),
) -> Result<Vec<ImportOutcome>> {
    let mut outcomes = Vec::new();
    for (path, dataset) in export_files(dir)? {
        let outcome = import_csv(
            lake,
            &CsvImport {
                path,
                dataset,
                workspace: workspace.clone(),
                strategy: ImportStrategy::Replace,
                key: Vec::new(),
                sync_id: sync_id.to_string(),
            },
        )
        .await?;
        on_done(&outcome);
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Runs the project's SQL models.
pub async fn transform(
    lake: &Lake,
    project: &Project,
    workspace: Option<&WorkspaceId>,
    on_done: &mut (dyn FnMut(&ModelRun) + Send),
) -> Result<Vec<ModelRun>> {
    let dag = ModelDag::load(project)?;
    Ok(run_models(lake, project, &dag, workspace, on_done).await?)
}
