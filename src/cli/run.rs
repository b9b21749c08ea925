use std::process::ExitCode;

use anyhow::Result;
use revlake::lake::WorkspaceId;
use revlake::project::{DEFAULT_WORKSPACE, Project};

use super::Global;

/// Run the SQL models under transforms/ in dependency order.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake run\n  revlake run --workspace acme --lake s3://acme-lake/prod"
)]
pub struct RunArgs {
    /// Rebuild only this workspace's rows (default: all rows).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
}

/// The default pipeline's workspace, else `default`.
pub fn default_workspace(project: &Project) -> Result<WorkspaceId> {
    let name = project
        .default_pipeline()
        .map(|p| p.file.workspace.clone())
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string());
    Ok(WorkspaceId::new(&name)?)
}

pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = args
        .workspace
        .as_deref()
        .map(WorkspaceId::new)
        .transpose()?;
    let runs = revlake::pipeline::transform(&lake, &project, workspace.as_ref(), &mut |r| {
        println!(
            "{:<36} {:>10} rows  version {:<4} {:>7.2}s",
            r.dataset.to_string(),
            r.outcome.rows,
            r.outcome.version,
            r.elapsed.as_secs_f64()
        );
    })
    .await?;
    println!("{} models built", runs.len());
    Ok(ExitCode::SUCCESS)
}
