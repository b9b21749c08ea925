//! Adding a connection to the workspace's pipeline file, the way `revlake connect` does: the
//! `[connections.NAME]` table appended (the file's comments and layout kept), the result parsed
//! as a pipeline file before it replaces the old one atomically.

use std::path::{Path, PathBuf};

use crate::lake::WorkspaceId;
use crate::project::{PipelineFile, Project};
use crate::sources::source::Connection;

/// Why a connection could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum PipelineEditError {
    /// The project's files do not load (the operator's fault, not the client's).
    #[error("loading the project at {}: {reason}", root.display())]
    Project { root: PathBuf, reason: String },
    /// A connection of that name exists in one of the workspace's pipeline files.
    #[error("the workspace already has a connection `{name}` (in {})", file.display())]
    Exists { name: String, file: PathBuf },
    /// The file the workspace's new pipeline would go in belongs to another workspace.
    #[error("{} exists and is not a pipeline of this workspace", path.display())]
    Taken { path: PathBuf },
    #[error("{} would not be a valid pipeline file: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The connections of `workspace`'s pipelines, by name (the first pipeline's wins).
pub fn connections(project: &Project, workspace: &WorkspaceId) -> Vec<(Connection, PathBuf)> {
    let mut out: Vec<(Connection, PathBuf)> = Vec::new();
    for pipeline in project
        .pipelines
        .values()
        .filter(|p| p.file.workspace == workspace.as_str())
    {
        for c in pipeline.file.connections.values() {
            if !out.iter().any(|(o, _)| o.name == c.name) {
                out.push((c.clone(), pipeline.path.clone()));
            }
        }
    }
    out
}

/// Loads the project at `root`.
pub fn load(root: &Path) -> Result<Project, PipelineEditError> {
    Project::load(root).map_err(|e| PipelineEditError::Project {
        root: root.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Appends `table` as connection `name` to the pipeline file of `workspace` (the `default`
/// pipeline when it is the workspace's, else its first; a new `pipelines/<workspace>.toml` when
/// it has none) and returns the file.
pub fn add_connection(
    root: &Path,
    workspace: &WorkspaceId,
    name: &str,
    table: toml::Table,
) -> Result<PathBuf, PipelineEditError> {
    let project = load(root)?;
    if let Some((_, file)) = connections(&project, workspace)
        .into_iter()
        .find(|(c, _)| c.name == name)
    {
        return Err(PipelineEditError::Exists {
            name: name.to_string(),
            file,
        });
    }
    let mine: Vec<_> = project
        .pipelines
        .values()
        .filter(|p| p.file.workspace == workspace.as_str())
        .collect();
    let chosen = mine
        .iter()
        .find(|p| p.name == "default")
        .or_else(|| mine.first());
    let (path, text) = match chosen {
        Some(p) => {
            let text =
                std::fs::read_to_string(&p.path).map_err(|source| PipelineEditError::Io {
                    path: p.path.clone(),
                    source,
                })?;
            (p.path.clone(), text)
        }
        None => {
            let path = root
                .join("pipelines")
                .join(format!("{}.toml", workspace.as_str()));
            if path.exists() {
                return Err(PipelineEditError::Taken { path });
            }
            let text = format!(
                "# Connections of workspace {ws}, added through the API.\nworkspace = \"{ws}\"\n",
                ws = workspace.as_str()
            );
            (path, text)
        }
    };
    let mut wrapper = toml::Table::new();
    let mut inner = toml::Table::new();
    inner.insert(name.to_string(), table.into());
    wrapper.insert("connections".into(), inner.into());
    let appended = toml::to_string(&wrapper).map_err(|e| PipelineEditError::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut new_text = text;
    if !new_text.is_empty() && !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    new_text.push('\n');
    new_text.push_str(&appended);
    // The result must still parse as a pipeline file (a `[connections]` table written as a
    // table header elsewhere in the file would make this a duplicate key).
    if let Err(e) = toml::from_str::<PipelineFile>(&new_text) {
        return Err(PipelineEditError::Invalid {
            path,
            reason: e.to_string(),
        });
    }
    let io = |source| PipelineEditError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
    // Written beside it, then renamed: the pipeline file is never half-written.
    let tmp = path.with_extension(format!("toml.{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, &new_text).map_err(io)?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(source: &str, var: &str) -> toml::Table {
        let mut t = toml::Table::new();
        t.insert("source".into(), source.into());
        let mut creds = toml::Table::new();
        creds.insert("api_token".into(), var.into());
        t.insert("credentials".into(), creds.into());
        t
    }

    #[test]
    fn a_connection_lands_in_the_workspaces_pipeline_and_keeps_its_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pipelines")).unwrap();
        let default = dir.path().join("pipelines/default.toml");
        std::fs::write(&default, "# keep me\nworkspace = \"acme\"\n").unwrap();
        let acme = WorkspaceId::new("acme").unwrap();
        let path = add_connection(dir.path(), &acme, "pd", table("pipedrive", "PD")).unwrap();
        assert_eq!(path, default);
        let text = std::fs::read_to_string(&default).unwrap();
        assert!(text.starts_with("# keep me\n"), "{text}");
        let project = load(dir.path()).unwrap();
        let found = connections(&project, &acme);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.credentials["api_token"], "PD");

        // Another workspace gets its own file and does not see acme's connection.
        let globex = WorkspaceId::new("globex").unwrap();
        let other = add_connection(dir.path(), &globex, "pd", table("pipedrive", "PD2")).unwrap();
        assert_eq!(other, dir.path().join("pipelines/globex.toml"));
        let project = load(dir.path()).unwrap();
        assert_eq!(
            connections(&project, &globex)[0].0.credentials["api_token"],
            "PD2"
        );

        let again = add_connection(dir.path(), &acme, "pd", table("pipedrive", "X")).unwrap_err();
        assert!(matches!(again, PipelineEditError::Exists { .. }), "{again}");
        assert!(
            !std::fs::read_dir(dir.path().join("pipelines"))
                .unwrap()
                .any(|e| e.unwrap().path().to_string_lossy().ends_with(".tmp"))
        );
    }
}
