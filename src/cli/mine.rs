use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::DatasetRef;
use revlake::lake::{AsOf, WorkspaceId};
use revlake::mining::{self, MineOptions, WorkspaceMining, render};

use super::Global;

/// Mine the stage history: transition matrices per context, time in stage, the DFG.
///
/// Reads staging.deal_stage_history with staging.deals, staging.deal_contacts (champion and
/// blocker roles) and, for the engagement factor, staging.activities; writes
/// marts.stage_transition_matrix, marts.stage_durations and marts.dfg (one workspace's rows
/// with --workspace, else the whole marts), prints the context-free matrix, and writes the DFG
/// as Graphviz DOT and SVG on request.
///
/// Contexts come from the default pipeline's [mining] factors (default: champion, blocker,
/// size, lead_source, stage_days), mined at every prefix of the list. Smoothing: `*` holds the
/// observed shares; every other context's row out of a stage is
/// (n_to + α · p_parent) / (n + α) over its parent's destinations, the parent being the same
/// context without its last factor, so sparse contexts never show 0 or 1 where the parent does
/// not, and effective_n = n + α. α is 10 (prior = { type = "fixed", strength = 10 }) or, with
/// prior = { type = "moments" }, estimated per level and stage from how far sibling contexts
/// spread beyond sampling noise. Fewer than 50 closed deals mark the output low_confidence;
/// 200+ are recommended.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake mine\n  revlake mine --workspace acme --svg dfg.svg --dot dfg.dot\n  revlake mine --as-of 2025-06-30 --dry-run\n  revlake mine --bench --workspace demo   # time it against DuckDB and polars"
)]
pub struct MineArgs {
    /// Mine only this workspace (its rows of the marts are replaced).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Read the inputs as of a Delta version or an RFC 3339 timestamp (or a date).
    #[arg(long, value_name = "VERSION|TIMESTAMP")]
    as_of: Option<String>,
    /// Write the DFG as Graphviz DOT here (with several workspaces: NAME.<workspace>.dot).
    #[arg(long, value_name = "PATH")]
    dot: Option<PathBuf>,
    /// Write the DFG as SVG here (laid out by revlake; no Graphviz needed).
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,
    /// Compute and print, but do not write the marts.
    #[arg(long)]
    dry_run: bool,
    /// Time mining on this lake (nothing written) against DuckDB SQL and polars on the same
    /// Parquet files, and pm4py's DFG with --pm4py (python3 with duckdb / polars / pm4py).
    #[arg(long)]
    bench: bool,
    #[command(flatten)]
    bench_options: super::bench_mining::BenchOptions,
}

pub async fn run(global: &Global, args: MineArgs) -> Result<ExitCode> {
    let workspace = args
        .workspace
        .as_deref()
        .map(WorkspaceId::new)
        .transpose()?;
    let as_of = args.as_of.as_deref().map(str::parse::<AsOf>).transpose()?;
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let config = mining::project_config(&project);
    if args.bench {
        return super::bench_mining::run(&lake, &project, &config, workspace, args.bench_options)
            .await;
    }
    let options = MineOptions {
        workspace,
        as_of,
        dry_run: args.dry_run,
    };
    let outcome = mining::mine(&lake, &project, &config, &options)
        .await
        .context("mining the stage history")?;
    let order = mining::stage_order(&project, &config)?;
    if outcome.results.is_empty() {
        println!(
            "no stage history to mine in {} (staging.deal_stage_history is empty or missing)",
            lake.url()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let several = outcome.results.len() > 1;
    for m in &outcome.results {
        print_workspace(m, &order, &config);
        if let Some(path) = &args.dot {
            let path = per_workspace(path, &m.workspace, several);
            mining::write_file(&path, render::dfg_dot(m, &order).as_bytes())?;
            println!("  DFG (DOT) written to {}", path.display());
        }
        if let Some(path) = &args.svg {
            let path = per_workspace(path, &m.workspace, several);
            mining::write_file(&path, render::dfg_svg(m, &order).as_bytes())?;
            println!("  DFG (SVG) written to {}", path.display());
        }
        println!();
    }
    match outcome.versions {
        Some(v) => println!(
            "wrote marts.stage_transition_matrix (version {}), marts.stage_durations (version {}), marts.dfg (version {}) in {:.2}s; read {:.2}s, mined {:.2}s",
            v.matrix,
            v.durations,
            v.dfg,
            outcome.write_seconds,
            outcome.load_seconds,
            outcome.mine_seconds
        ),
        None => println!(
            "dry run: nothing written; read {:.2}s, mined {:.2}s",
            outcome.load_seconds, outcome.mine_seconds
        ),
    }
    if outcome.versions.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let written: Vec<DatasetRef> = [
        "marts.stage_transition_matrix",
        "marts.stage_durations",
        "marts.dfg",
    ]
    .iter()
    .map(|d| d.parse())
    .collect::<std::result::Result<_, _>>()?;
    let blocked =
        super::check::after_stage(&lake, &project, &written, options.workspace.as_ref()).await?;
    Ok(super::check::exit_after(blocked))
}

fn print_workspace(m: &WorkspaceMining, order: &mining::StageOrder, config: &mining::MiningConfig) {
    let s = &m.summary;
    if s.rows == 0 {
        println!("workspace {}: no stage history", m.workspace);
        return;
    }
    println!(
        "workspace {}: {} transitions of {} deals ({} closed), {} contexts at the finest level",
        m.workspace, s.transitions, s.deals, s.closed_deals, s.contexts
    );
    if s.low_confidence {
        println!(
            "  LOW CONFIDENCE: {} closed deals, fewer than {}; the output is marked low_confidence ({}+ recommended)",
            s.closed_deals, config.min_closed_deals, config.recommended_closed_deals
        );
    } else if !s.recommended_depth {
        println!(
            "  history depth: {} closed deals; {}+ are recommended for stable contexts",
            s.closed_deals, config.recommended_closed_deals
        );
    }
    if s.unmapped > 0 {
        println!(
            "  {} history rows have no mapped stage (to_stage NULL) and were left out",
            s.unmapped
        );
    }
    println!(
        "  rework: {} backward moves; skips: {} moves skipping {} stages",
        s.rework_moves, s.skip_moves, s.skipped_stages
    );
    println!("\n  P(to | from), context-free (count):");
    for line in render::matrix_table(m, order).lines() {
        println!("  {line}");
    }
}

/// `dfg.svg` → `dfg.acme.svg` when several workspaces are mined.
fn per_workspace(path: &Path, workspace: &str, several: bool) -> PathBuf {
    if !several {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("dfg");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}.{workspace}.{ext}"),
        None => format!("{stem}.{workspace}"),
    };
    path.with_file_name(name)
}
