use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::WorkspaceId;
use revlake::quality::report::{self, ReportFormat};

use super::Global;

/// Write a report: `revlake report quality` over the recorded check runs.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake report quality --output quality.html\n  revlake report quality --format junit --output quality.xml\n  revlake report quality --format json | jq '.datasets[] | select(.status != \"pass\")'\n  revlake report quality --format markdown --workspace acme"
)]
pub struct ReportArgs {
    /// The report: quality (checks per dataset, trends over the last 30 runs, failing samples,
    /// row counts over time, freshness).
    #[arg(value_parser = ["quality"])]
    kind: String,
    /// html (self-contained page), json, junit (XML for CI systems) or markdown.
    #[arg(long, value_enum, default_value = "html")]
    format: ReportFormat,
    /// Write here instead of standard output.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<std::path::PathBuf>,
    /// Only this workspace's results.
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
}

pub async fn run(global: &Global, args: ReportArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = args
        .workspace
        .as_deref()
        .map(WorkspaceId::new)
        .transpose()?;
    let built = report::build(&lake, workspace.as_ref()).await?;
    let text = report::render(&built, args.format)?;
    match &args.output {
        Some(path) => {
            // Written beside the target and renamed: a failed write leaves no half page.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            std::io::Write::write_all(&mut tmp, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} datasets, {} checks ({} failed, {} errors) -> {}",
                built.datasets.len(),
                built.checks,
                built.failed,
                built.errors,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
