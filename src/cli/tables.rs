use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// List the lake's datasets: layer, rows, files, bytes, Delta version, last commit.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake tables\n  revlake tables --workspaces\n  revlake tables --json --lake s3://acme-lake/prod"
)]
pub struct TablesArgs {
    /// Also show rows per workspace.
    #[arg(long)]
    workspaces: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &Global, args: TablesArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let mut infos = Vec::new();
    for dataset in lake.datasets().await? {
        infos.push(lake.info(&dataset).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lake: {}", lake.url());
    if infos.is_empty() {
        println!("(no datasets yet: try `revlake demo` or `revlake import`)");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<44} {:>8} {:>12} {:>6} {:>12}  last commit",
        "dataset", "version", "rows", "files", "bytes"
    );
    for i in &infos {
        println!(
            "{:<44} {:>8} {:>12} {:>6} {:>12}  {}",
            i.dataset,
            i.version,
            i.rows,
            i.files,
            i.bytes,
            i.last_commit
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default()
        );
        if args.workspaces {
            for (ws, rows) in &i.workspaces {
                println!("  {:<42} {:>8} {:>12}", format!("workspace {ws}"), "", rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
