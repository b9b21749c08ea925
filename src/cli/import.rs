use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::{DatasetRef, WorkspaceId};
use revlake::sources::file::{
    BatchFilter, BatchStatus, FileFormat, ImportBatch, ImportStrategy, ObjectMap, Pass, Progress,
    TextEncoding, import_file, list_batches, parse_delimiter, rollback,
};

use super::{Global, progress};

/// Land a file in a raw table (CSV, TSV, JSON, NDJSON, xlsx or Parquet, text also gzipped as
/// `.csv.gz` / `.ndjson.gz`; a path, a folder or `*` pattern of part files such as a warehouse
/// unload, or an s3://, gs://, az://, file:// or memory:// URL), or list and roll back import
/// batches.
///
/// Column types are inferred from every record (a column the table already has keeps its
/// type); records that do not fit go to ops.quarantine with their line. With --object (or a
/// --dataset that is a known object's table) export labels map to the vendor's API names, and a
/// deals file also records the stage changes it brings in raw.<source>_stage_snapshots. Every
/// import is a batch in ops.import_batches.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  revlake import exports/Opportunity.csv --dataset raw.salesforce_opportunity\n  revlake import \"Opportunities report.xlsx\" --object salesforce.Opportunity --sheet Report\n  revlake import hubspot-deals.csv --object hubspot.deals --strategy merge --workspace acme\n  revlake import s3://acme-exports/2025-06/deals.ndjson --dataset raw.crm_deals\n  revlake import unload/ --dataset raw.snowflake_events\n  revlake import 'exports/123456_2025-01-02_*.json.gz' --dataset raw.amplitude_events\n  revlake import legacy.txt --dataset raw.legacy_accounts --format csv --delimiter ';' --encoding windows-1252\n  revlake import batches --dataset raw.hubspot_deals\n  revlake import rollback 0b7c6a52-0d3e-4a43-9a1e-2f0c2b8f3f10"
)]
pub struct ImportArgs {
    #[command(subcommand)]
    action: Option<ImportAction>,
    #[command(flatten)]
    file: FileArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ImportAction {
    Rollback(RollbackArgs),
    Batches(BatchesArgs),
}

#[derive(Debug, clap::Args)]
struct FileArgs {
    /// The file: a path, a folder or `*` pattern of part files (one batch), or a URL (s3://,
    /// gs://, az://, file://, memory://).
    #[arg(value_name = "FILE", required = true)]
    file: Option<String>,
    /// The raw table to land in, `raw.<source>_<object>` (default: the --object's).
    #[arg(long, value_name = "raw.TABLE")]
    dataset: Option<DatasetRef>,
    /// The vendor object the file is an export of: its labels map to API names
    /// (salesforce.Opportunity, salesforce.Account, hubspot.deals, ...).
    #[arg(long, value_name = "SOURCE.OBJECT")]
    object: Option<String>,
    /// A header map (TOML: [columns] "Label" = "ApiName"), on top of the object's.
    #[arg(long, value_name = "FILE.toml")]
    map: Option<PathBuf>,
    /// The workspace the rows belong to (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// replace: the workspace's rows; merge: upsert on --key (unchanged records skipped);
    /// append: add.
    #[arg(long, value_enum, default_value_t = ImportStrategy::Replace)]
    strategy: ImportStrategy,
    /// Key columns (landed snake_case names) for --strategy merge (default: the object's id).
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    key: Vec<String>,
    /// The format (default: from the extension).
    #[arg(long, value_enum)]
    format: Option<FileFormat>,
    /// The text encoding (default: detected from the BOM and bytes).
    #[arg(long, value_enum)]
    encoding: Option<TextEncoding>,
    /// The delimiter of delimited text: one character, or `tab` (default: sniffed).
    #[arg(long, value_name = "CHAR")]
    delimiter: Option<String>,
    /// The sheet of an xlsx workbook (default: the first).
    #[arg(long, value_name = "NAME")]
    sheet: Option<String>,
    /// Print what the import did as JSON.
    #[arg(long)]
    json: bool,
}

/// Undo an import batch: restore its table to the version before it (a new commit; the
/// batch's version stays readable with --as-of) and delete the stage changes it recorded.
///
/// Refused, naming them, when the table was written after the batch, unless --force.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake import batches --dataset raw.hubspot_deals --limit 5\n  revlake import rollback 0b7c6a52-0d3e-4a43-9a1e-2f0c2b8f3f10\n  revlake import rollback 0b7c6a52-0d3e-4a43-9a1e-2f0c2b8f3f10 --force"
)]
struct RollbackArgs {
    /// The batch id (see `revlake import batches`).
    batch: String,
    /// Roll back even when later writes exist (they are undone too).
    #[arg(long)]
    force: bool,
}

/// List import batches (ops.import_batches), newest first.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake import batches\n  revlake import batches --dataset raw.salesforce_opportunity --status applied --limit 5\n  revlake import batches --workspace acme --json"
)]
struct BatchesArgs {
    /// Only batches into this dataset.
    #[arg(long, value_name = "raw.TABLE")]
    dataset: Option<DatasetRef>,
    /// Only this workspace's batches.
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Only batches in this state.
    #[arg(long, value_enum)]
    status: Option<BatchStatus>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &Global, args: ImportArgs) -> Result<ExitCode> {
    match args.action {
        Some(ImportAction::Rollback(a)) => run_rollback(global, a).await,
        Some(ImportAction::Batches(a)) => run_batches(global, a).await,
        None => run_import(global, args.file).await,
    }
}

async fn run_import(global: &Global, args: FileArgs) -> Result<ExitCode> {
    let file = args
        .file
        .context("give the FILE to import (see revlake import --help)")?;
    let delimiter = args.delimiter.as_deref().map(parse_delimiter).transpose()?;
    // The dataset is known before the import (for its declared schema).
    let dataset = match (&args.dataset, &args.object) {
        (Some(d), _) => d.clone(),
        (None, Some(o)) => ObjectMap::builtin(o)?
            .dataset()
            .with_context(|| format!("{o} names no raw table"))?,
        (None, None) => anyhow::bail!(
            "name the table to land in: --dataset raw.<source>_<object>, or --object SOURCE.OBJECT (see revlake import --help)"
        ),
    };
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let spinner = progress::spinner(&format!("importing {file}"));
    let bar = spinner.clone();
    let shown = file.clone();
    let outcome = import_file(&lake, file.clone(), workspace.clone())
        .with_dataset(dataset.clone())
        .with_object(args.object.clone())
        .with_map(args.map.clone())
        .with_strategy(args.strategy)
        .with_key(args.key.clone())
        .with_format(args.format)
        .with_encoding(args.encoding)
        .with_delimiter(delimiter)
        .with_sheet(args.sheet.clone())
        .with_schema(project.schema(&dataset))
        .with_progress(Progress::new(move |pass, n| {
            let what = match pass {
                Pass::Scan => "reading",
                Pass::Land => "landing",
            };
            bar.set_message(format!("{what} {shown}: {n} records"));
        }))
        .await;
    spinner.finish_and_clear();
    let outcome = outcome.with_context(|| format!("importing {file}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        // The table's checks still run (results in ops.quality_results, alerts routed); only
        // the JSON is printed, and a critical failure still exits 1.
        let run =
            revlake::quality::check_written(&lake, &project, &[dataset], Some(&workspace)).await?;
        let Some(run) = run else {
            return Ok(ExitCode::SUCCESS);
        };
        super::check::send_alerts(&lake, &project, &run).await;
        return Ok(super::check::exit_after(
            run.failed_at(revlake::quality::Severity::Critical),
        ));
    }
    println!(
        "{}: {} rows landed in {} (version {}), {} quarantined",
        outcome.file, outcome.rows, outcome.dataset, outcome.version, outcome.quarantined
    );
    let mut details = vec![format!(
        "{} records, {}{}{}",
        outcome.records,
        outcome.format,
        outcome
            .encoding
            .map(|e| format!(", {e}"))
            .unwrap_or_default(),
        outcome
            .delimiter
            .as_ref()
            .map(|d| format!(", delimiter {d}"))
            .unwrap_or_default()
    )];
    if let Some(o) = &outcome.object {
        details.push(format!("headers mapped with {o}"));
    }
    if args.strategy == ImportStrategy::Merge {
        details.push(format!(
            "{} inserted, {} updated, {} unchanged",
            outcome.inserted, outcome.updated, outcome.unchanged
        ));
    }
    if outcome.stage_changes > 0 {
        details.push(format!("{} stage changes recorded", outcome.stage_changes));
    }
    println!("  {}", details.join("; "));
    println!(
        "  batch {} (undo: revlake import rollback {})",
        outcome.batch_id, outcome.batch_id
    );
    // The checks the table declares gate what reads it, as after a sync.
    let blocked = super::check::after_stage(&lake, &project, &[dataset], Some(&workspace)).await?;
    Ok(super::check::exit_after(blocked))
}

async fn run_rollback(global: &Global, args: RollbackArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let done = rollback(&lake, &args.batch, args.force).await?;
    println!(
        "rolled back batch {}: {} restored to version {} (committed as version {})",
        done.batch.batch_id, done.dataset, done.restored_to, done.version
    );
    if !done.also_rolled_back.is_empty() {
        println!(
            "  later batches undone with it: {}",
            done.also_rolled_back.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_batches(global: &Global, args: BatchesArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let filter = BatchFilter {
        dataset: args.dataset.clone(),
        workspace: args
            .workspace
            .as_deref()
            .map(WorkspaceId::new)
            .transpose()?,
        status: args.status,
        limit: Some(args.limit),
    };
    let rows = list_batches(&lake, &filter).await?;
    if args.json {
        let values: Vec<serde_json::Value> = rows.iter().map(batch_json).collect();
        println!("{}", serde_json::to_string_pretty(&values)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no import batches");
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<[String; 9]> = rows
        .iter()
        .map(|b| {
            let n = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            [
                b.batch_id.clone(),
                b.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                b.workspace_id.clone(),
                b.dataset.clone(),
                b.status.to_string(),
                format!(
                    "{}/{}/{}",
                    n(b.rows_inserted),
                    n(b.rows_updated),
                    n(b.rows_skipped)
                ),
                n(b.rows_quarantined),
                format!("{}→{}", n(b.version_before), n(b.version_after)),
                b.file.clone(),
            ]
        })
        .collect();
    let head = [
        "batch",
        "created (UTC)",
        "workspace",
        "dataset",
        "status",
        "ins/upd/skip",
        "quar",
        "versions",
        "file",
    ];
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(head.to_vec()));
    for r in &table {
        println!("{}", line(r.iter().map(String::as_str).collect()));
    }
    Ok(ExitCode::SUCCESS)
}

fn batch_json(b: &ImportBatch) -> serde_json::Value {
    let t = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    serde_json::json!({
        "batch_id": b.batch_id,
        "workspace_id": b.workspace_id,
        "dataset": b.dataset,
        "file": b.file,
        "format": b.format,
        "object": b.object,
        "strategy": b.strategy,
        "status": b.status.as_str(),
        "error": b.error,
        "rows_inserted": b.rows_inserted,
        "rows_updated": b.rows_updated,
        "rows_skipped": b.rows_skipped,
        "rows_quarantined": b.rows_quarantined,
        "version_before": b.version_before,
        "version_after": b.version_after,
        "rollback_version": b.rollback_version,
        "created_at": b.created_at.to_rfc3339(),
        "applied_at": t(b.applied_at),
        "rolled_back_at": t(b.rolled_back_at),
    })
}
