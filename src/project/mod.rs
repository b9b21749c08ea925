//! The project a user edits: `schemas/`, `pipelines/`, `transforms/`, `datasets/seeds/`, `jobs/`.
//!
//! [`Project::load`] reads and validates everything at once and reports every error it finds,
//! each naming its file (and line where the format gives one).

mod error;
pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::{ProjectError, Result};
pub use schema::{Column, DatasetSchema, Materialization, WORKSPACE_COLUMN};

use crate::lake::DatasetRef;

/// The default workspace used when a pipeline names none.
pub const DEFAULT_WORKSPACE: &str = "default";

/// A pipeline file as written (`pipelines/*.toml`). Later stages add their own sections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Human description.
    #[serde(default)]
    pub description: String,
    /// The lake URL or folder; relative folders are relative to the project.
    pub lake: Option<String>,
    /// The workspace this pipeline writes.
    #[serde(default = "default_workspace")]
    pub workspace: String,
    /// Named API connections (`[connections.NAME]`), synced by `revlake sync`.
    #[serde(default)]
    pub connections: BTreeMap<String, crate::sources::source::Connection>,
    /// Process-mining settings (`[mining]`): context factors, bands, the smoothing prior.
    #[serde(default)]
    pub mining: crate::mining::MiningConfig,
    /// Alert channels and routes (`[alerts]`): severity → Slack, webhook, email, PagerDuty.
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    /// Warehouse exports (`[exports.NAME]`): Snowflake or BigQuery targets of `revlake export`.
    #[serde(default)]
    pub exports: BTreeMap<String, crate::export::ExportConfig>,
    /// Webhook receivers of `revlake serve` (`[webhooks]`): secrets by environment-variable name.
    #[serde(default)]
    pub webhooks: crate::serve::webhooks::WebhooksConfig,
}

fn default_workspace() -> String {
    DEFAULT_WORKSPACE.to_string()
}

/// A loaded pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub path: PathBuf,
    pub file: PipelineFile,
}

/// A loaded, validated project.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub schemas: BTreeMap<DatasetRef, DatasetSchema>,
    pub pipelines: BTreeMap<String, Pipeline>,
    /// Job files (`jobs/*.toml`), by name.
    pub jobs: BTreeMap<String, crate::jobs::Job>,
}

impl Project {
    /// Loads the project rooted at `root`, reporting all errors together.
    pub fn load(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(ProjectError::NoProject {
                path: root.to_path_buf(),
            });
        }
        let mut errors = Vec::new();
        let mut schemas = BTreeMap::new();
        for path in toml_files(&root.join("schemas"), &mut errors) {
            match DatasetSchema::from_file(&path) {
                Ok(s) => {
                    // Checks are validated with their schema: a bad declaration fails the load.
                    if let Err(e) = crate::quality::checks_of(&s) {
                        errors.push(e);
                    }
                    schemas.insert(s.dataset.clone(), s);
                }
                Err(e) => errors.push(e),
            }
        }
        let mut pipelines = BTreeMap::new();
        for path in toml_files(&root.join("pipelines"), &mut errors) {
            match load_pipeline(&path) {
                Ok(p) => {
                    pipelines.insert(p.name.clone(), p);
                }
                Err(e) => errors.push(e),
            }
        }
        let mut jobs = BTreeMap::new();
        for path in toml_files(&root.join("jobs"), &mut errors) {
            match crate::jobs::Job::load(&path).and_then(|j| j.validate_refs(&pipelines).map(|_| j))
            {
                Ok(j) => {
                    jobs.insert(j.name.clone(), j);
                }
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(Self {
                root: root.to_path_buf(),
                schemas,
                pipelines,
                jobs,
            }),
            1 => Err(errors.remove(0)),
            _ => Err(ProjectError::Many { errors }),
        }
    }

    /// An empty project (no schemas, no pipelines) rooted at `root`.
    pub fn empty(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            schemas: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            jobs: BTreeMap::new(),
        }
    }

    /// The schema declared for `dataset`, if any.
    pub fn schema(&self, dataset: &DatasetRef) -> Option<&DatasetSchema> {
        self.schemas.get(dataset)
    }

    /// The default pipeline: `default`, else the only one.
    pub fn default_pipeline(&self) -> Option<&Pipeline> {
        self.pipelines.get("default").or_else(|| {
            if self.pipelines.len() == 1 {
                self.pipelines.values().next()
            } else {
                None
            }
        })
    }

    /// The lake location configured by the default pipeline, resolved against the project root;
    /// else `datasets/lake/` under the project.
    pub fn default_lake(&self) -> String {
        match self.default_pipeline().and_then(|p| p.file.lake.clone()) {
            Some(l) if l.contains("://") => l,
            Some(l) => self.root.join(l).display().to_string(),
            None => self.root.join("datasets/lake").display().to_string(),
        }
    }

    /// The folder of seed CSVs.
    pub fn seeds_dir(&self) -> PathBuf {
        self.root.join("datasets/seeds")
    }

    /// The folder of SQL models.
    pub fn transforms_dir(&self) -> PathBuf {
        self.root.join("transforms")
    }
}

fn load_pipeline(path: &Path) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path).map_err(|source| ProjectError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file: PipelineFile = toml::from_str(&text).map_err(|e| ProjectError::Toml {
        path: path.to_path_buf(),
        line: e.span().map(|s| schema::line_of(&text, s.start)),
        message: e.message().to_string(),
    })?;
    for (name, connection) in file.connections.iter_mut() {
        connection.name = name.clone();
        if let Err(e) = crate::sources::registry::vendor(&connection.source) {
            return Err(ProjectError::InvalidPipeline {
                path: path.to_path_buf(),
                reason: format!("connection {name}: {e}"),
            });
        }
    }
    if let Err(reason) = file.alerts.validate() {
        return Err(ProjectError::InvalidPipeline {
            path: path.to_path_buf(),
            reason,
        });
    }
    if crate::lake::WorkspaceId::new(&file.workspace).is_err() {
        return Err(ProjectError::InvalidPipeline {
            path: path.to_path_buf(),
            reason: format!("workspace `{}` is not a valid workspace id", file.workspace),
        });
    }
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("pipeline")
        .to_string();
    Ok(Pipeline {
        name,
        path: path.to_path_buf(),
        file,
    })
}

/// The `*.toml` files of `dir`, sorted; a missing folder is no error.
fn toml_files(dir: &Path, errors: &mut Vec<ProjectError>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(source) => {
            errors.push(ProjectError::Io {
                path: dir.to_path_buf(),
                source,
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}
