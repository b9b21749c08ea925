use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use revlake::lake::{DatasetRef, Layer, WorkspaceId};
use revlake::sources::file::{CsvImport, ImportStrategy, import_csv};

use super::{Global, progress};

/// Land a CSV file in a raw table (typed columns inferred, the record kept as JSON).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake import exports/Opportunity.csv --dataset raw.salesforce_opportunity\n  revlake import deals.csv --dataset raw.hubspot_deals --strategy merge --key record_id --workspace acme"
)]
pub struct ImportArgs {
    /// The CSV file.
    file: PathBuf,
    /// The raw table to land in, `raw.<source>_<object>`.
    #[arg(long, value_name = "raw.TABLE")]
    dataset: DatasetRef,
    /// The workspace the rows belong to (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// replace: the workspace's rows; merge: upsert on --key; append: add.
    #[arg(long, value_enum, default_value_t = ImportStrategy::Replace)]
    strategy: ImportStrategy,
    /// Key columns (landed snake_case names) for --strategy merge.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    key: Vec<String>,
}

pub async fn run(global: &Global, args: ImportArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.dataset.layer == Layer::Raw,
        "imports land in the raw layer: use --dataset raw.<source>_<object>"
    );
    anyhow::ensure!(
        args.strategy != ImportStrategy::Merge || !args.key.is_empty(),
        "--strategy merge needs --key COLS"
    );
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let spinner = progress::spinner(&format!("importing {}", args.file.display()));
    let outcome = import_csv(
        &lake,
        &CsvImport {
            path: args.file.clone(),
            dataset: args.dataset.clone(),
            workspace,
            strategy: args.strategy,
            key: args.key.clone(),
            sync_id: uuid::Uuid::new_v4().to_string(),
        },
    )
    .await;
    spinner.finish_and_clear();
    let outcome = outcome?;
    println!(
        "{}: {} rows landed in {} (version {}), {} quarantined",
        outcome.file, outcome.rows, outcome.dataset, outcome.version, outcome.quarantined
    );
    Ok(ExitCode::SUCCESS)
}
