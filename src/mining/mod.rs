//! Process mining over the stage history: transition matrices per context, time in stage, and
//! directly-follows graphs, as vectorized kernels over Arrow data.
//!
//! ```text
//! staging.deals ──────────┐ per-deal factors (champion, blocker, size, lead source, icp)
//! staging.deal_contacts ──┤
//! staging.activities ─────┤ (engagement recency, when configured)
//! staging.deal_stage_history ──▶ WorkspaceLog (u16 stage codes, u32 deal codes, flat columns)
//!                                   │  rayon: one fold over the transitions
//!                                   ▼
//!   counts[(context · S + from) · S + to] ──▶ marts.stage_transition_matrix (every level)
//!   days grouped by (stage, context)      ──▶ marts.stage_durations (quantiles, advance rates)
//!   context-free counts + median days     ──▶ marts.dfg (rework, skipped stages)
//! ```
//!
//! # Contexts
//!
//! A context is one level of each configured [`Factor`] (`[mining] factors`, in order). The
//! matrix is mined at every prefix of the factor list: `*` (no factor), the first factor, the
//! first two, ..., all of them; a context's parent is its prefix one factor shorter.
//! Time-in-stage tables use the per-deal factors only (the days-in-stage band is what they
//! measure). A workspace without `staging.deals` rows (an imported event log) has only the
//! per-transition factors.
//!
//! # Smoothing
//!
//! `*` holds the empirical shares `n_to / n`. Every other context's row out of a stage is the
//! posterior mean under a Dirichlet prior centred on its parent's (already smoothed) row:
//!
//! ```text
//! p(to | from, c) = (n_to + α · p(to | from, parent(c))) / (n + α)      effective_n = n + α
//! ```
//!
//! over the parent's destinations, so a sparse context is pulled toward its parent and never
//! gives 0 or 1 where the parent does not, and a context with no transitions out of a stage
//! (an empty context row) equals its parent's with `effective_n = α`. `α` is the fixed prior
//! strength (default 10 pseudo-observations: a context with 10 transitions out of a stage
//! weighs its own data and its parent's equally), or with `prior = { type = "moments" }` a
//! method-of-moments estimate per level and stage from how far sibling contexts spread around
//! their parent beyond sampling noise ([`Prior::Moments`]). Advance rates per band are smoothed
//! the same way (Beta prior, the base strength).
//!
//! # History depth
//!
//! Fewer closed deals than `min_closed_deals` (50) in a workspace marks all its output rows
//! `low_confidence`; `recommended_closed_deals` (200) is reported.

mod config;
mod context;
mod encode;
mod error;
pub mod eventlog;
mod kernel;
mod load;
mod log;
pub mod marts;
mod order;
pub mod render;
mod stats;

use std::path::Path;

use chrono::{DateTime, Utc};
use rayon::prelude::*;

pub use config::{Factor, MiningConfig, Prior};
pub use context::{ContextSpace, FactorLevels, MAX_CONTEXTS};
pub use encode::{DealIndex, Dict};
pub use error::{MiningError, Result};
pub use kernel::{
    BandRate, DENSE_CELLS, DfgRow, DurationRow, MatrixRow, MiningSummary, WorkspaceMining,
    mine_workspace,
};
pub use load::{Inputs, history_workspaces, load_workspace, load_workspace_until};
pub use log::{Activities, DealFacts, Deals, LogBuilder, Transitions, WorkspaceLog};
pub use marts::MartVersions;
pub use order::{MoveKind, StageOrder};
pub use stats::{QUANTILE_LEVELS, Summary, quantile_sorted};

use crate::lake::{AsOf, Lake, WorkspaceId};
use crate::project::Project;

/// What [`mine`] reads and whether it writes.
#[derive(Debug, Clone, Default)]
pub struct MineOptions {
    /// Only this workspace (its rows of the marts are replaced); else every workspace with
    /// stage history (the marts are replaced whole).
    pub workspace: Option<WorkspaceId>,
    /// Read the inputs as of a version or time.
    pub as_of: Option<AsOf>,
    /// Compute and return only; do not write the marts.
    pub dry_run: bool,
}

/// What a mining run did.
#[derive(Debug, Clone)]
pub struct MineOutcome {
    pub results: Vec<WorkspaceMining>,
    /// The versions written (`None` on a dry run or without any workspace).
    pub versions: Option<MartVersions>,
    pub computed_at: DateTime<Utc>,
    /// Seconds reading the inputs, mining, writing.
    pub load_seconds: f64,
    pub mine_seconds: f64,
    pub write_seconds: f64,
}

/// The stage order of a project: `[mining] stage_order`, else the seed's probability order.
pub fn stage_order(project: &Project, config: &MiningConfig) -> Result<StageOrder> {
    if !config.stage_order.is_empty() {
        return Ok(StageOrder::new(&config.stage_order));
    }
    StageOrder::from_seed(&project.seeds_dir().join("stage_mappings.csv"))
}

/// The `[mining]` settings of the project's default pipeline (defaults without one).
pub fn project_config(project: &Project) -> MiningConfig {
    project
        .default_pipeline()
        .map(|p| p.file.mining.clone())
        .unwrap_or_default()
}

/// Mines the stage history of the lake (one workspace or all) and writes the three marts.
pub async fn mine(
    lake: &Lake,
    project: &Project,
    config: &MiningConfig,
    options: &MineOptions,
) -> Result<MineOutcome> {
    let started = std::time::Instant::now();
    let order = stage_order(project, config)?;
    let session = Inputs::open(lake, options.as_of.as_ref()).await?;
    let workspaces = match &options.workspace {
        Some(ws) => vec![ws.clone()],
        None => history_workspaces(&session).await?,
    };
    let mut logs = Vec::with_capacity(workspaces.len());
    for ws in &workspaces {
        logs.push(load_workspace(&session, ws, config).await?);
    }
    drop(session);
    let load_seconds = started.elapsed().as_secs_f64();

    let t = std::time::Instant::now();
    let cfg = config.clone();
    let results = tokio::task::spawn_blocking(move || {
        logs.par_iter()
            .map(|log| mine_workspace(log, &cfg, &order))
            .collect::<Result<Vec<_>>>()
    })
    .await
    .expect("the mining kernels do not panic")?;
    let mine_seconds = t.elapsed().as_secs_f64();
    for r in &results {
        tracing::info!(
            workspace = %r.workspace,
            transitions = r.summary.transitions,
            closed_deals = r.summary.closed_deals,
            low_confidence = r.summary.low_confidence,
            seconds = mine_seconds,
            "mined"
        );
    }

    let computed_at = Utc::now();
    let t = std::time::Instant::now();
    let versions = if options.dry_run || results.is_empty() {
        None
    } else {
        Some(
            marts::write_marts(
                lake,
                project,
                &results,
                options.workspace.as_ref(),
                computed_at,
            )
            .await?,
        )
    };
    Ok(MineOutcome {
        results,
        versions,
        computed_at,
        load_seconds,
        mine_seconds,
        write_seconds: t.elapsed().as_secs_f64(),
    })
}

/// Mines one workspace's history as it stood at `until` (event time): only the stage changes
/// and activities before it, deals closed only if they closed before it ([`load_workspace_until`]).
/// Nothing is written: a model for a backtest, free of what happened after `until` except the
/// deal attributes and contact roles, which are read as they are now.
pub async fn mine_until(
    lake: &Lake,
    project: &Project,
    config: &MiningConfig,
    workspace: &WorkspaceId,
    until: DateTime<Utc>,
) -> Result<WorkspaceMining> {
    let order = stage_order(project, config)?;
    let session = Inputs::open(lake, None).await?;
    let log = load_workspace_until(&session, workspace, config, Some(until)).await?;
    drop(session);
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || mine_workspace(&log, &cfg, &order))
        .await
        .expect("the mining kernels do not panic")
}

/// Writes `text` to `path` whole (a temporary file renamed into place).
pub fn write_file(path: &Path, text: &[u8]) -> Result<()> {
    let io = |source| MiningError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, text).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
