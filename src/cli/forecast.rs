use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use revlake::lake::{AsOf, DatasetRef, WorkspaceId};
use revlake::simulate::SimConfig;
use revlake::simulate::pipeline::{
    Dimension, ForecastInputs, PIPELINE_FORECAST, PeriodKind, PipelineForecast, PipelineRow, View,
    pipeline_forecast,
};
use revlake::simulate::recommend::{
    DEFAULT_RECOMMENDATION_RUNS, RECOMMENDATIONS, WorkspaceRecommendations, recommend_workspace,
};
use revlake::simulate::render::revenue_histogram_svg;

use super::Global;
use super::simulate::{money, pct, print_table};

/// Forecast the pipeline: the distribution of closed-won revenue per workspace, rep, segment
/// and period, and per-deal recommendations.
///
/// Every open deal is simulated through the mined stage chain (run `revlake mine` first); a
/// run of every deal together is one outcome of the pipeline, so revenue is summed run by run
/// and its p10 / p50 / p90 are those of the sums. Three views, with the same random numbers:
/// current trajectory (deals as they are), best case (every deal with a champion, no
/// unresolved blocker, a fresh touch) and worst case (no champion, a blocker, gone cold), as
/// far as the mined model has those factors. A period's revenue includes what was already won
/// in it before the as-of time; `all` is the open pipeline alone. P(quota) reads
/// staging.quotas (rep quotas per period; a period must be a month, a quarter or whole months)
/// and is empty without it.
///
/// Writes marts.pipeline_forecast (every view, dimension and period) and
/// marts.recommendations: per open deal, every applicable what-if (identify a champion,
/// resolve the blocker, move the current stage along a week sooner, double the touchpoints)
/// against the deal's baseline with common random numbers, ranked by expected-value gain and by
/// days saved. Recommendations use fewer runs per deal (--recommendation-runs, default 1000):
/// the pairing keeps their deltas tight.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake forecast\n  revlake forecast --by rep --period quarter\n  revlake forecast --workspace acme --by period --runs 20000 --seed 7 --svg revenue.svg\n  revlake forecast --as-of 2025-06-30 --view best_case --by segment"
)]
pub struct ForecastArgs {
    /// The workspace (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Rows by rep (owner_id), segment, or period (the workspace per month and quarter);
    /// default: the workspace.
    #[arg(long, value_enum)]
    by: Option<By>,
    /// Periods shown with --by rep|segment (and the workspace table): all (the whole open
    /// pipeline), month or quarter.
    #[arg(long, value_enum, default_value_t = PeriodArg::All)]
    period: PeriodArg,
    /// The view of the per-group tables.
    #[arg(long, value_enum, default_value_t = ViewArg::CurrentTrajectory)]
    view: ViewArg,
    /// Runs per deal of the forecast.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    runs: u32,
    /// Runs per deal and scenario of the recommendations.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RECOMMENDATION_RUNS)]
    recommendation_runs: u32,
    /// Seed of the random streams: the same seed gives the same numbers.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Forecast as of this time (RFC 3339 or YYYY-MM-DD; default: the latest stage change):
    /// the deals open then, as the stage history stood.
    #[arg(long, value_name = "TIMESTAMP")]
    as_of: Option<String>,
    /// Calendar months of the horizon (months and quarters in it get rows).
    #[arg(long, value_name = "N", default_value_t = 12)]
    months: u32,
    /// Write the histogram of the workspace's revenue (current trajectory, all) as SVG here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Recommendations printed (0: none).
    #[arg(long, value_name = "N", default_value_t = 10)]
    limit: usize,
    /// Skip the recommendations.
    #[arg(long)]
    no_recommendations: bool,
    /// Print only; write no marts.
    #[arg(long)]
    no_write: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum By {
    Rep,
    Segment,
    Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PeriodArg {
    All,
    Month,
    Quarter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
enum ViewArg {
    CurrentTrajectory,
    BestCase,
    WorstCase,
}

impl ViewArg {
    fn view(self) -> View {
        match self {
            ViewArg::CurrentTrajectory => View::CurrentTrajectory,
            ViewArg::BestCase => View::BestCase,
            ViewArg::WorstCase => View::WorstCase,
        }
    }
}

impl PeriodArg {
    fn kind(self) -> PeriodKind {
        match self {
            PeriodArg::All => PeriodKind::All,
            PeriodArg::Month => PeriodKind::Month,
            PeriodArg::Quarter => PeriodKind::Quarter,
        }
    }
}

/// Parses `--as-of`: a timestamp or a date, not a table version.
pub(super) fn parse_as_of(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    match text
        .parse::<AsOf>()
        .with_context(|| format!("--as-of `{text}`"))?
    {
        AsOf::Timestamp(t) => Ok(t),
        AsOf::Version(_) => bail!("--as-of takes a timestamp or a date, not a version: `{text}`"),
    }
}

pub async fn run(global: &Global, args: ForecastArgs) -> Result<ExitCode> {
    let as_of = args.as_of.as_deref().map(parse_as_of).transpose()?;
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let config = SimConfig {
        runs: args.runs,
        seed: args.seed,
        ..SimConfig::default()
    };
    let inputs = ForecastInputs::load(&lake, &workspace, as_of)
        .await
        .with_context(|| format!("loading the forecast inputs of workspace {workspace}"))?;
    let started = std::time::Instant::now();
    let forecast = pipeline_forecast(&inputs, args.months, &config)
        .await
        .with_context(|| format!("forecasting the pipeline of workspace {workspace}"))?;
    let seconds = started.elapsed().as_secs_f64();
    print_forecast(&forecast, &args, inputs.quotas.is_empty());
    eprintln!(
        "simulated {} open deals × {} runs × 3 views in {seconds:.2}s",
        inputs.deals.len() - forecast.result.skipped.len(),
        config.runs
    );
    for s in &forecast.result.skipped {
        eprintln!("skipped deal {} ({}): {}", s.deal_id, s.stage, s.reason);
    }
    if forecast.result.skipped_quotas > 0 {
        eprintln!(
            "{} quota period(s) of staging.quotas are not whole months within the {}-month horizon: no P(quota) for them",
            forecast.result.skipped_quotas, args.months
        );
    }
    if let Some(path) = &args.svg {
        let svg = revenue_histogram_svg(
            &format!(
                "{workspace}: closed-won revenue of the open pipeline ({} runs)",
                config.runs
            ),
            &forecast.result.workspace_runs,
        )
        .map_err(|e| anyhow::anyhow!("drawing the revenue histogram: {e}"))?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the revenue histogram to {}", path.display());
    }
    let recommendations = if args.no_recommendations {
        None
    } else {
        let rec_config = SimConfig {
            runs: args.recommendation_runs,
            ..config.clone()
        };
        let recs = recommend_workspace(
            &workspace,
            inputs.model.clone(),
            inputs.deals.clone(),
            inputs.as_of,
            &rec_config,
        )
        .await
        .with_context(|| format!("recommending actions on the deals of workspace {workspace}"))?;
        print_recommendations(&recs, args.limit);
        Some(recs)
    };
    if !args.no_write {
        let dataset: DatasetRef = PIPELINE_FORECAST.parse()?;
        let outcome = forecast.write(&lake, project.schema(&dataset)).await?;
        eprintln!(
            "wrote {} rows to {PIPELINE_FORECAST} (version {})",
            outcome.rows, outcome.version
        );
        let mut written = vec![dataset];
        if let Some(recs) = recommendations.filter(|r| !r.recommendations.is_empty()) {
            let dataset: DatasetRef = RECOMMENDATIONS.parse()?;
            let outcome = recs.write(&lake, project.schema(&dataset)).await?;
            eprintln!(
                "wrote {} rows to {RECOMMENDATIONS} (version {})",
                outcome.rows, outcome.version
            );
            written.push(dataset);
        }
        let blocked =
            super::check::after_stage(&lake, &project, &written, Some(&workspace)).await?;
        return Ok(super::check::exit_after(blocked));
    }
    Ok(ExitCode::SUCCESS)
}

fn quota_cells(r: &PipelineRow) -> [String; 2] {
    [
        r.quota.map_or("-".into(), money),
        r.p_quota.map_or("-".into(), pct),
    ]
}

fn row_cells(first: Vec<String>, r: &PipelineRow) -> Vec<String> {
    let mut cells = first;
    cells.extend([
        r.open_deals.to_string(),
        money(r.booked),
        money(r.revenue.mean),
        money(r.revenue.p10),
        money(r.revenue.p50),
        money(r.revenue.p90),
    ]);
    cells.extend(quota_cells(r));
    cells
}

const NUMBERS: [&str; 8] = [
    "open deals",
    "booked",
    "mean",
    "p10",
    "p50",
    "p90",
    "quota",
    "P(quota)",
];

fn print_forecast(f: &PipelineForecast, args: &ForecastArgs, no_quotas: bool) {
    println!(
        "workspace {}: closed-won revenue (USD) of the open pipeline as of {}, {} runs per deal, seed {}{}",
        f.workspace,
        f.as_of.format("%Y-%m-%d %H:%M UTC"),
        f.config.runs,
        f.config.seed,
        if f.low_confidence {
            " (model mined from little closed history: low confidence)"
        } else {
            ""
        }
    );
    let rows = &f.result.rows;
    let view = args.view.view();
    let kind = args.period.kind();
    let headers = |first: &[&'static str]| -> Vec<&'static str> {
        first.iter().copied().chain(NUMBERS).collect()
    };
    match args.by {
        None => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .filter(|r| r.dimension == Dimension::Workspace && r.period.kind == kind)
                .map(|r| row_cells(vec![r.view.name().to_string(), r.period.label.clone()], r))
                .collect();
            print_table(&headers(&["view", "period"]), &table);
        }
        Some(By::Period) => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .filter(|r| {
                    r.dimension == Dimension::Workspace
                        && r.view == view
                        && r.period.kind != PeriodKind::All
                })
                .map(|r| row_cells(vec![r.period.label.clone()], r))
                .collect();
            println!("view {}", view.name());
            print_table(&headers(&["period"]), &table);
        }
        Some(by) => {
            let dim = if by == By::Rep {
                Dimension::Rep
            } else {
                Dimension::Segment
            };
            let mut table: Vec<(&PipelineRow, Vec<String>)> = rows
                .iter()
                .filter(|r| r.dimension == dim && r.view == view && r.period.kind == kind)
                .map(|r| {
                    (
                        r,
                        row_cells(vec![r.group.clone(), r.period.label.clone()], r),
                    )
                })
                .collect();
            table.sort_by(|a, b| {
                a.0.period
                    .start
                    .cmp(&b.0.period.start)
                    .then(b.0.revenue.mean.total_cmp(&a.0.revenue.mean))
            });
            println!("view {}", view.name());
            let name = if dim == Dimension::Rep {
                "rep"
            } else {
                "segment"
            };
            print_table(
                &headers(&[name, "period"]),
                &table.into_iter().map(|t| t.1).collect::<Vec<_>>(),
            );
        }
    }
    if no_quotas {
        println!("(no staging.quotas: P(quota) is not computed)");
    }
}

fn print_recommendations(recs: &WorkspaceRecommendations, limit: usize) {
    if limit == 0 {
        return;
    }
    let mut top: Vec<_> = recs
        .recommendations
        .iter()
        .filter(|r| r.helps && r.rank_value == 1)
        .collect();
    top.sort_by(|a, b| {
        b.delta
            .expected_value
            .estimate
            .total_cmp(&a.delta.expected_value.estimate)
            .then(a.deal_id.cmp(&b.deal_id))
    });
    println!();
    println!(
        "top recommendations ({} runs per deal and scenario, common random numbers):",
        recs.config.runs
    );
    let shown = top.len().min(limit);
    let rows: Vec<Vec<String>> = top[..shown]
        .iter()
        .map(|r| {
            vec![
                r.deal_id.clone(),
                r.stage.clone(),
                pct(r.p_win),
                money(r.amount),
                r.text.clone(),
            ]
        })
        .collect();
    print_table(
        &["deal", "stage", "p_win", "amount", "recommendation"],
        &rows,
    );
    if top.len() > shown {
        println!(
            "… {} more deals with a helpful action (--limit)",
            top.len() - shown
        );
    }
}
