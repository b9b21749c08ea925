use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::export::{ExportMode, ExportOptions, Status, run_export};
use revlake::lake::WorkspaceId;

use super::Global;

/// Load datasets of the lake into Snowflake or BigQuery.
///
/// The target is an `[exports.NAME]` section of a pipeline file (warehouse, account or
/// project, database and schema or dataset, stage, credentials by environment-variable name,
/// selection, mode). Each dataset's current Delta version is written as Parquet files to the
/// stage, loaded into a load table, then merged (on the primary key), appended or replaced
/// into the target; the target only changes when the load succeeded. New columns are added to
/// the target; a type change that would lose data stops the export. A version already loaded
/// into the same table is skipped. Every dataset's outcome is appended to `ops.exports`.
///
/// With --plan, the Parquet files and the exact SQL (Snowflake) or schema and job JSON
/// (BigQuery) are written to --output for review, and nothing is sent anywhere.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake export snowflake --plan --output export-plan\n  revlake export snowflake --select staging.deals --mode merge\n  revlake export bigquery --select 'marts.*' --workspace acme --target bq_eu\n\nConfiguration (pipelines/default.toml):\n  [exports.warehouse]\n  type = \"snowflake\"\n  account = \"myorg-myaccount\"\n  user = \"REVLAKE_LOADER\"\n  database = \"ANALYTICS\"\n  schema = \"REVLAKE\"\n  stage = \"REVLAKE_STAGE\"\n  stage_url = \"s3://acme-exports/revlake/\"\n  auth = { type = \"key_pair\", private_key_env = \"SNOWFLAKE_PRIVATE_KEY\" }\n\nSnowflake protocols (`api`):\n  api = \"sql_api\"    (default) the SQL API: key_pair, oauth or pat; loads from an external stage (stage_url)\n  api = \"connector\"  the drivers' protocol: also password auth; without stage_url the files are PUT to the\n                     internal `stage` (created if missing). Emulators (fakesnow) speak only this one:\n                     host = \"127.0.0.1\", port = 8085, protocol = \"http\""
)]
pub struct ExportArgs {
    /// The warehouse.
    #[arg(value_parser = ["snowflake", "bigquery"])]
    warehouse: String,
    /// Datasets: layer.table, table, or layer.* (repeat or separate by commas; default: the
    /// target's `select`, else staging.* and marts.*).
    #[arg(long, short = 's', value_name = "DATASET")]
    select: Vec<String>,
    /// Export only this workspace's rows (default: every workspace).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// How rows reach the target (default: the target's `mode`, else merge).
    #[arg(long, value_parser = ["append", "replace", "merge"])]
    mode: Option<String>,
    /// Write the files, SQL and job JSON to --output without contacting the warehouse.
    #[arg(long, requires = "output")]
    plan: bool,
    /// The plan folder (with --plan).
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// The `[exports.NAME]` to use (default: the only one of that warehouse).
    #[arg(long, value_name = "NAME")]
    target: Option<String>,
}

pub async fn run(global: &Global, args: ExportArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let options = ExportOptions {
        warehouse: args.warehouse.clone(),
        target: args.target.clone(),
        select: args.select.clone(),
        workspace: args
            .workspace
            .as_deref()
            .map(WorkspaceId::new)
            .transpose()?,
        mode: args
            .mode
            .as_deref()
            .map(str::parse::<ExportMode>)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        plan: if args.plan { args.output.clone() } else { None },
        storage_options: Default::default(),
    };
    let run = run_export(&lake, &project, &options)
        .await
        .with_context(|| format!("exporting to {}", args.warehouse))?;
    for o in &run.outcomes {
        let detail = match o.status {
            Status::Skipped => "already in the target: nothing to do".to_string(),
            Status::Failed => o.error.clone().unwrap_or_default(),
            _ => format!(
                "{} rows, {} files, {:.1} MB, {} {}",
                o.rows,
                o.files,
                o.bytes as f64 / 1e6,
                o.requests,
                if run.warehouse == "bigquery" {
                    "jobs"
                } else {
                    "statements"
                }
            ),
        };
        println!(
            "{:<32} version {:<4} {:<9} {:<7} → {}  {detail}",
            o.dataset.to_string(),
            o.version,
            o.status.as_str(),
            o.mode.as_str(),
            o.target_table
        );
    }
    if let Some(dir) = &options.plan {
        println!(
            "plan written to {} (files/, {}/)",
            dir.display(),
            run.warehouse
        );
    } else if let Some(v) = run.recorded_version {
        println!(
            "export {} recorded in ops.exports (version {v})",
            run.export_id
        );
    }
    match &run.error {
        Some(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
