use std::process::ExitCode;

use anyhow::{Context, Result};
use revlake::lake::WorkspaceId;
use revlake::mining;
use revlake::simulate::SimConfig;
use revlake::simulate::backtest::{Backtest, Scores, backtest};

use super::Global;
use super::simulate::{pct, print_table};

/// Backtest the forecast: simulate the deals open at a past date and score the predicted win
/// probabilities against what happened since.
///
/// Each deal is put back in the stage it was in at --as-of (from staging.deal_stage_history),
/// with the days it had spent there and its last activity by then; the chain is mined from the
/// stage changes before --as-of only (nothing is written to the marts). Deals open then that
/// have closed since are scored: Brier score, log loss, and a reliability table (predicted
/// probability in bins of 10 points: deals, mean predicted, observed win rate). Baselines: the
/// win rate of the deals closed before --as-of, and the CRM's probability for each deal's stage
/// then (read off the deals open in that stage now; the CRM keeps only its latest value).
///
/// Still read as they are now (leakage): contact roles (champion, blocker), amounts, lead
/// source and segment; deals created after --as-of count toward the median amount of the size
/// factor.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake backtest --as-of 2025-06-30\n  revlake backtest --workspace demo --as-of 2025-03-31 --runs 5000 --json > backtest.json"
)]
pub struct BacktestArgs {
    /// The workspace (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// The past date to simulate from (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    as_of: String,
    /// Runs per deal.
    #[arg(long, value_name = "N", default_value_t = 2_000)]
    runs: u32,
    /// Seed of the random streams.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON (with every scored deal) instead of tables.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &Global, args: BacktestArgs) -> Result<ExitCode> {
    let as_of = super::forecast::parse_as_of(&args.as_of)?;
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
    let mining_config = mining::project_config(&project);
    let started = std::time::Instant::now();
    let result = backtest(&lake, &project, &mining_config, &workspace, as_of, &config)
        .await
        .with_context(|| format!("backtesting workspace {workspace} as of {}", args.as_of))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_backtest(&result);
    }
    eprintln!("backtest in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn score_row(name: &str, s: &Scores) -> Vec<String> {
    vec![
        name.to_string(),
        s.n.to_string(),
        format!("{:.4}", s.brier),
        format!("{:.4}", s.log_loss),
    ]
}

fn print_backtest(b: &Backtest) {
    println!(
        "workspace {}: backtest as of {}, {} runs per deal, seed {}",
        b.workspace, b.as_of, b.runs, b.seed
    );
    println!(
        "  {} deals open then: {} closed since (scored), {} still open (left out), {} not simulated; model mined from {} transitions before it{}",
        b.open_at_as_of,
        b.model.n,
        b.still_open,
        b.not_simulated,
        b.mined_transitions,
        if b.low_confidence {
            " (low confidence)"
        } else {
            ""
        }
    );
    println!(
        "  base rate: {} won of {} deals closed before it",
        pct(b.base_rate),
        b.closed_before
    );
    println!();
    let mut rows = vec![
        score_row("model (simulated p_win)", &b.model),
        score_row("baseline: historical win rate", &b.baseline),
    ];
    if let (Some(crm), Some(m)) = (&b.crm, &b.model_on_crm_deals) {
        rows.push(score_row("baseline: CRM stage probability", crm));
        rows.push(score_row("model on the same deals", m));
    }
    print_table(&["predictor", "deals", "Brier", "log loss"], &rows);
    let skill = 1.0 - b.model.brier / b.baseline.brier;
    println!(
        "  Brier skill vs the base rate: {skill:+.3} ({})",
        if skill > 0.0 { "better" } else { "not better" }
    );
    println!();
    let rows: Vec<Vec<String>> = b
        .reliability
        .iter()
        .map(|r| {
            vec![
                format!("{:.0}–{:.0}%", r.low * 100.0, r.high * 100.0),
                r.count.to_string(),
                r.mean_predicted.map_or("-".into(), pct),
                r.observed.map_or("-".into(), pct),
            ]
        })
        .collect();
    print_table(
        &["predicted p_win", "deals", "mean predicted", "observed"],
        &rows,
    );
    println!();
    println!("leakage: {}", b.leakage);
}
