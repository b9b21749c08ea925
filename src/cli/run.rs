use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use revlake::lake::WorkspaceId;
use revlake::project::{DEFAULT_WORKSPACE, Project};
use revlake::quality::QualityGate;
use revlake::sql::models::{DatasetGate, ModelDag, RunOptions, run_selected};

use super::Global;

/// Run the SQL models under transforms/ in dependency order, independent ones at once.
///
/// Each model is one `SELECT` in `transforms/<layer>/<table>.sql` building `<layer>.<table>`;
/// its schema file (`schemas/<layer>.<table>.toml`) declares the columns it must produce and
/// how it materializes: `table` (overwrite), `incremental` (merge the rows built from the
/// inputs' changed rows) or `view`. A model that fails skips the models reading it; the others
/// go on and the command then exits 2 naming them.
///
/// The checks declared in the schema files run on each model's dataset once it commits, and on
/// the stored inputs (raw tables) before the first model reads them; a failing `critical`
/// check blocks what reads that dataset (the rest goes on) and makes the run fail. Results are
/// appended to `ops.quality_results` (see `revlake check`, `revlake report quality`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake run\n  revlake run --select staging.deals+ --workspace acme\n  revlake run --select tag:daily --select +staging.deal_stage_history\n  revlake run --full-refresh --lake s3://acme-lake/prod"
)]
pub struct RunArgs {
    /// Rebuild only this workspace's rows (default: all rows).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Models to run: NAME, NAME+ (and what reads it), +NAME (and what it reads), tag:T;
    /// repeat or separate by commas (default: all).
    #[arg(long, short = 's', value_name = "SELECTOR")]
    select: Vec<String>,
    /// Rebuild incremental models whole instead of merging the changed rows.
    #[arg(long)]
    full_refresh: bool,
    /// Models built at the same time (default: the number of cores).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Do not run the declared checks after each model.
    #[arg(long)]
    no_checks: bool,
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
    let mut options = RunOptions {
        workspace: args
            .workspace
            .as_deref()
            .map(WorkspaceId::new)
            .transpose()?,
        select: args.select.clone(),
        full_refresh: args.full_refresh,
        ..RunOptions::default()
    };
    if let Some(n) = args.concurrency {
        options.concurrency = n.max(1);
    }
    let dag = ModelDag::load(&project)?;
    let gate = if args.no_checks {
        None
    } else {
        Some(Arc::new(
            QualityGate::new(&lake, &project, options.workspace.as_ref()).await?,
        ))
    };
    options.gate = gate.clone().map(|g| g as Arc<dyn DatasetGate>);
    let result = run_selected(&lake, &project, &dag, &options, &mut |r| {
        println!(
            "{:<36} {:>10} rows  version {:<4} {:>7.2}s",
            r.dataset.to_string(),
            r.outcome.rows,
            r.outcome.version,
            r.elapsed.as_secs_f64()
        );
    })
    .await;
    if let Some(gate) = gate {
        let checked = gate.finish().await?;
        super::check::print_failures(&checked, "");
        super::check::send_alerts(&lake, &project, &checked).await;
    }
    let runs = result?;
    println!("{} models built", runs.len());
    Ok(ExitCode::SUCCESS)
}

/// Print the model graph: each model with its materialization and inputs, or Graphviz DOT.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake dag\n  revlake dag --select +staging.deals\n  revlake dag --format dot | dot -Tsvg > dag.svg"
)]
pub struct DagArgs {
    /// text or dot.
    #[arg(long, default_value = "text", value_parser = ["text", "dot"])]
    format: String,
    /// Only these models (same selectors as `revlake run`).
    #[arg(long, short = 's', value_name = "SELECTOR")]
    select: Vec<String>,
}

pub async fn dag(global: &Global, args: DagArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let dag = ModelDag::load(&project)?;
    let chosen: Vec<_> = dag.select(&args.select)?.into_iter().cloned().collect();
    let dag = ModelDag {
        models: chosen,
        sources: dag.sources.clone(),
    };
    match args.format.as_str() {
        "dot" => print!("{}", dag.to_dot()),
        _ => print!("{}", dag.to_text()),
    }
    Ok(ExitCode::SUCCESS)
}
