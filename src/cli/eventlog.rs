use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::{AsOf, WorkspaceId};
use revlake::mining::eventlog::{CsvColumns, EventLogFormat, export_eventlog, import_eventlog};

use super::Global;

/// Write the stage history as an event log (XES or CSV) for pm4py, Celonis or Disco.
///
/// One event per stage entered (a deal's first stage included): case = deal id, activity =
/// the stage (the raw stage when unmapped), timestamp = when it was entered. CSV columns:
/// case_id, activity, timestamp (RFC 3339, UTC), stage_raw, source, workspace_id. XES follows
/// IEEE 1849 (concept, time and lifecycle extensions).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake export-eventlog --format xes --output deals.xes\n  revlake export-eventlog --format csv --output deals.csv --workspace acme"
)]
pub struct ExportEventlogArgs {
    /// The file format.
    #[arg(long, value_enum)]
    format: EventLogFormat,
    /// The file to write (whole or not at all).
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Only this workspace's history.
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Read the history as of a Delta version or an RFC 3339 timestamp.
    #[arg(long, value_name = "VERSION|TIMESTAMP")]
    as_of: Option<String>,
}

/// Land an event log (XES, XES.gz or CSV) as the stage history of a workspace.
///
/// Any process, not only deals: each case becomes a deal, each event a stage entered, and
/// activities keep their names (outside the stage taxonomy too), so `revlake mine` runs on it.
/// Events are ordered by timestamp within a case; ties keep file order. The workspace's
/// earlier stage history is replaced.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake import-eventlog purchase_to_pay.xes --workspace p2p\n  revlake import-eventlog BPI_2019.xes.gz --workspace bpi\n  revlake import-eventlog log.csv --case CaseID --activity Task --timestamp Completed --workspace ops"
)]
pub struct ImportEventlogArgs {
    /// The log file: .xes, .xes.gz or .csv.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The format (default: from the file name).
    #[arg(long, value_enum)]
    format: Option<EventLogFormat>,
    /// CSV: the case column (default: case_id, case:concept:name or case).
    #[arg(long, value_name = "COLUMN")]
    case: Option<String>,
    /// CSV: the activity column (default: activity or concept:name).
    #[arg(long, value_name = "COLUMN")]
    activity: Option<String>,
    /// CSV: the timestamp column (default: timestamp or time:timestamp).
    #[arg(long, value_name = "COLUMN")]
    timestamp: Option<String>,
    /// The workspace to land in (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
}

pub async fn export(global: &Global, args: ExportEventlogArgs) -> Result<ExitCode> {
    let workspace = args
        .workspace
        .as_deref()
        .map(WorkspaceId::new)
        .transpose()?;
    let as_of = args.as_of.as_deref().map(str::parse::<AsOf>).transpose()?;
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let outcome = export_eventlog(&lake, &args.output, args.format, workspace.as_ref(), as_of)
        .await
        .with_context(|| format!("exporting the event log to {}", args.output.display()))?;
    println!(
        "wrote {} events of {} cases to {}",
        outcome.events,
        outcome.cases,
        outcome.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn import(global: &Global, args: ImportEventlogArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => WorkspaceId::new(
            &project
                .default_pipeline()
                .map(|p| p.file.workspace.clone())
                .unwrap_or_else(|| revlake::project::DEFAULT_WORKSPACE.to_string()),
        )?,
    };
    let lake = global.lake(&project).await?;
    let columns = CsvColumns {
        case: args.case,
        activity: args.activity,
        timestamp: args.timestamp,
    };
    let outcome = import_eventlog(
        &lake,
        &project,
        &args.file,
        args.format,
        &columns,
        &workspace,
    )
    .await
    .with_context(|| format!("importing the event log {}", args.file.display()))?;
    println!(
        "landed {} events of {} cases ({} activities) as staging.deal_stage_history of workspace {} (version {})",
        outcome.events, outcome.cases, outcome.activities, workspace, outcome.version
    );
    println!("next: revlake mine --workspace {workspace}");
    Ok(ExitCode::SUCCESS)
}
