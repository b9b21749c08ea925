use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use revlake::lake::WorkspaceId;
use revlake::sources::registry;
use revlake::sources::source::Connection;
use revlake::sources::sync::{StreamOutcome, SyncEvent, SyncOptions, sync_source};

use super::Global;

/// Sync API connections into raw tables: incremental from each stream's stored cursor.
///
/// Each stream lands in `raw.<source>_<object>`, merged on its key, in checkpoints that commit
/// the data and the cursor together; a killed sync resumes from the last checkpoint. Every
/// stream's run is logged to `ops.sync_log`. Exits non-zero if any stream failed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake sync\n  revlake sync crm --stream Opportunity --stream OpportunityHistory\n  revlake sync hs --full --workspace acme"
)]
pub struct SyncArgs {
    /// The connection (default: every connection of the project's pipelines).
    connection: Option<String>,
    /// Only this stream (repeat).
    #[arg(long = "stream", value_name = "S")]
    streams: Vec<String>,
    /// Ignore the stored cursors and re-read everything.
    #[arg(long)]
    full: bool,
    /// The workspace the rows belong to (default: the connection's pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Records per checkpoint (one Delta commit each).
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    checkpoint: usize,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &Global, args: SyncArgs) -> Result<ExitCode> {
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let mut chosen: Vec<(Connection, String)> = Vec::new();
    for pipeline in project.pipelines.values() {
        for c in pipeline.file.connections.values() {
            if args.connection.as_deref().is_none_or(|n| n == c.name) {
                chosen.push((c.clone(), pipeline.file.workspace.clone()));
            }
        }
    }
    if chosen.is_empty() {
        match &args.connection {
            Some(n) => bail!(
                "no connection {n:?} in {}: add one with `revlake connect {n} --source ...`",
                project.root.join("pipelines").display()
            ),
            None => bail!(
                "the project has no connections: add one with `revlake connect NAME --source ...` (see `revlake sources`)"
            ),
        }
    }
    let options = SyncOptions {
        full: args.full,
        checkpoint_records: args.checkpoint,
        streams: args.streams.clone(),
    };
    let multi = if std::io::stderr().is_terminal() {
        MultiProgress::new()
    } else {
        MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    };
    let style = ProgressStyle::with_template("{spinner} {msg:<40} {pos:>10} records ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut all: Vec<StreamOutcome> = Vec::new();
    let mut failed_connections = Vec::new();
    // The workspace of each outcome in `all`, and (workspace, connection, error) of the
    // connections that failed before any stream ran.
    let mut workspace_of: Vec<String> = Vec::new();
    let mut connection_errors: Vec<(String, String, String)> = Vec::new();
    for (connection, pipeline_workspace) in &chosen {
        let workspace = WorkspaceId::new(args.workspace.as_deref().unwrap_or(pipeline_workspace))?;
        let source = match registry::open(connection) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                failed_connections.push(connection.name.clone());
                connection_errors.push((
                    workspace.as_str().to_string(),
                    connection.name.clone(),
                    e.to_string(),
                ));
                continue;
            }
        };
        let mut bars: HashMap<String, ProgressBar> = HashMap::new();
        let result = sync_source(
            &lake,
            source.as_ref(),
            connection,
            &workspace,
            &options,
            &mut |event| match event {
                SyncEvent::Started { stream } => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_message(format!("{} {}", connection.name, stream.name));
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    bars.insert(stream.name.clone(), bar);
                }
                SyncEvent::Page { stream, records } => {
                    if let Some(b) = bars.get(&stream.name) {
                        b.set_position(records);
                    }
                }
                SyncEvent::Finished { outcome } => {
                    if let Some(b) = bars.remove(&outcome.stream) {
                        b.finish_and_clear();
                    }
                }
            },
        )
        .await;
        match result {
            Ok(outcomes) => {
                workspace_of.extend(outcomes.iter().map(|_| workspace.as_str().to_string()));
                all.extend(outcomes);
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed_connections.push(connection.name.clone());
                connection_errors.push((
                    workspace.as_str().to_string(),
                    connection.name.clone(),
                    e.to_string(),
                ));
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        println!(
            "{:<16} {:<28} {:<40} {:>9} {:>6} {:>7}  status",
            "connection", "stream", "dataset", "records", "pages", "retries"
        );
        for o in &all {
            println!(
                "{:<16} {:<28} {:<40} {:>9} {:>6} {:>7}  {}",
                o.connection,
                o.stream,
                o.dataset,
                o.records,
                o.pages,
                o.retries,
                match &o.error {
                    None => format!(
                        "ok (cursor {})",
                        o.cursor_after
                            .map(|c| c.to_rfc3339())
                            .unwrap_or_else(|| "none".into())
                    ),
                    Some(e) => format!("FAILED: {e}"),
                }
            );
        }
    }
    let failed = all.iter().filter(|o| o.error.is_some()).count() + failed_connections.len();
    // A failed sync is a critical alert (the operating guide's default), through the pipeline's
    // channels; delivery problems are recorded, never fail the command.
    let mut alerts = Vec::new();
    for (ws, c, e) in &connection_errors {
        alerts.push(revlake::alerts::sync_failed_alert(
            ws,
            c,
            "(all streams)",
            "",
            e,
        ));
    }
    for (o, ws) in all
        .iter()
        .zip(&workspace_of)
        .filter(|(o, _)| o.error.is_some())
    {
        alerts.push(revlake::alerts::sync_failed_alert(
            ws,
            &o.connection,
            &o.stream,
            &o.dataset,
            o.error.as_deref().unwrap_or_default(),
        ));
    }
    if let Some(config) = project.default_pipeline().map(|p| &p.file.alerts)
        && !alerts.is_empty()
        && !config.channels.is_empty()
    {
        let deliveries = revlake::alerts::deliver_and_record(&lake, config, &alerts).await;
        eprintln!(
            "alerts: {} raised, {} deliveries, {} failed (ops.alert_deliveries)",
            alerts.len(),
            deliveries.len(),
            deliveries.iter().filter(|d| d.status == "failed").count()
        );
    }
    // The checks of the raw tables that landed (those declaring checks), per workspace.
    let mut landed: std::collections::BTreeMap<&str, Vec<revlake::lake::DatasetRef>> =
        std::collections::BTreeMap::new();
    for (o, ws) in all
        .iter()
        .zip(&workspace_of)
        .filter(|(o, _)| o.error.is_none())
    {
        if let Ok(d) = o.dataset.parse() {
            landed.entry(ws.as_str()).or_default().push(d);
        }
    }
    let mut blocked = false;
    for (ws, datasets) in &landed {
        let ws = WorkspaceId::new(ws)?;
        blocked |= super::check::after_stage(&lake, &project, datasets, Some(&ws)).await?;
    }
    if failed > 0 {
        eprintln!("{failed} stream(s) or connection(s) failed; see ops.sync_log");
        return Ok(ExitCode::from(1));
    }
    Ok(super::check::exit_after(blocked))
}
