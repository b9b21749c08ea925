use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use revlake::lake::{AsOf, DatasetRef, WorkspaceId};
use revlake::simulate::bench::{self, BenchRun};
use revlake::simulate::forecast::DEAL_FORECASTS;
use revlake::simulate::scenario::Interval;
use revlake::simulate::{
    DealForecast, ForecastOptions, Scenario, ScenarioComparison, SimConfig, WorkspaceForecast,
    forecast_workspace, simulate_scenario,
};

use super::Global;

/// The numpy peer of the benchmark, run with python3 from a temporary copy.
const NUMPY_PEER: &str = include_str!("../../benches/simulate_numpy.py");

/// Simulate open deals forward to closed_won / closed_lost: Monte Carlo over the mined stage
/// chain (marts.stage_transition_matrix, marts.stage_durations), written to
/// marts.deal_forecasts.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake simulate\n  revlake simulate --workspace acme --runs 20000 --seed 7\n  revlake simulate --deal 6f1c2a… --scenario add_champion\n  revlake simulate --deal 6f1c2a… --scenario accelerate_stage:demo=1w\n  cargo run --release -- simulate --bench"
)]
pub struct SimulateArgs {
    /// The workspace (default: the default pipeline's).
    #[arg(long, value_name = "W")]
    workspace: Option<String>,
    /// Only this deal (its id in staging.deals): its forecast in detail.
    #[arg(long, value_name = "ID")]
    deal: Option<String>,
    /// A what-if for --deal, shown as baseline / modified / delta: add_champion,
    /// remove_blocker, accelerate_stage:[STAGE=]DAYS, increase_touchpoints[:K],
    /// change_amount:AMOUNT|+P%|xR, set_context:FACTOR=LEVEL[,...].
    #[arg(long, value_name = "TYPE[:PARAM]", requires = "deal")]
    scenario: Option<String>,
    /// Runs per deal.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    runs: u32,
    /// Seed of the random streams: the same seed gives the same numbers.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Simulate as of this time (RFC 3339 or YYYY-MM-DD; default: the latest stage change).
    #[arg(long, value_name = "TIMESTAMP")]
    as_of: Option<String>,
    /// Calendar months in the close-date distribution (then `later`).
    #[arg(long, value_name = "N", default_value_t = 12)]
    months: u32,
    /// Deals printed, by expected value (0: all).
    #[arg(long, value_name = "N", default_value_t = 25)]
    limit: usize,
    /// Print only; do not write marts.deal_forecasts.
    #[arg(long)]
    no_write: bool,
    /// Run the benchmark instead: a synthetic 10-state chain, against numpy.
    #[arg(long, conflicts_with_all = ["deal", "scenario"])]
    bench: bool,
    /// Benchmark size DEALSxRUNS (repeatable; default 10000x10000 and 100000x1000).
    #[arg(long = "bench-size", value_name = "DEALSxRUNS", requires = "bench")]
    bench_sizes: Vec<String>,
    /// Benchmark without the numpy peer.
    #[arg(long, requires = "bench")]
    no_peer: bool,
}

pub async fn run(global: &Global, args: SimulateArgs) -> Result<ExitCode> {
    let config = SimConfig {
        runs: args.runs,
        seed: args.seed,
        ..SimConfig::default()
    };
    if args.bench {
        return run_bench(&args, config).await;
    }
    let as_of = match args.as_of.as_deref().map(str::parse::<AsOf>).transpose()? {
        None => None,
        Some(AsOf::Timestamp(t)) => Some(t),
        Some(AsOf::Version(_)) => bail!("--as-of takes a timestamp or a date, not a version"),
    };
    let scenario = args
        .scenario
        .as_deref()
        .map(str::parse::<Scenario>)
        .transpose()?;
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = match &args.workspace {
        Some(w) => WorkspaceId::new(w)?,
        None => super::run::default_workspace(&project)?,
    };
    let options = ForecastOptions {
        config,
        as_of,
        months: args.months,
        deal: args.deal.clone(),
    };
    if let (Some(scenario), Some(deal)) = (&scenario, &args.deal) {
        let (cmp, as_of) = simulate_scenario(&lake, &workspace, deal, scenario, &options)
            .await
            .with_context(|| format!("simulating `{scenario}` on deal {deal}"))?;
        println!(
            "workspace {workspace}, deal {deal}, as of {}, {} runs, seed {}",
            as_of.format("%Y-%m-%d %H:%M UTC"),
            options.config.runs,
            options.config.seed
        );
        print_comparison(&cmp);
        return Ok(ExitCode::SUCCESS);
    }
    let forecast = forecast_workspace(&lake, &workspace, &options)
        .await
        .with_context(|| format!("forecasting the open deals of workspace {workspace}"))?;
    print_header(&forecast);
    match &args.deal {
        Some(_) => {
            if let Some(d) = forecast.deals.first() {
                print_deal(&forecast, d);
            }
        }
        None => print_deals(&forecast, args.limit),
    }
    for s in &forecast.skipped {
        eprintln!("skipped deal {} ({}): {}", s.deal_id, s.stage, s.reason);
    }
    if !args.no_write && !forecast.deals.is_empty() {
        let dataset: DatasetRef = DEAL_FORECASTS.parse()?;
        let outcome = forecast.write(&lake, project.schema(&dataset)).await?;
        eprintln!(
            "wrote {} rows to {DEAL_FORECASTS} (version {})",
            outcome.rows, outcome.version
        );
        let blocked =
            super::check::after_stage(&lake, &project, &[dataset], Some(&workspace)).await?;
        return Ok(super::check::exit_after(blocked));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_header(f: &WorkspaceForecast) {
    println!(
        "workspace {}: {} open deal{} simulated as of {}, {} runs each, seed {}{}",
        f.workspace,
        f.deals.len(),
        if f.deals.len() == 1 { "" } else { "s" },
        f.as_of.format("%Y-%m-%d %H:%M UTC"),
        f.config.runs,
        f.config.seed,
        if f.low_confidence {
            " (model mined from little closed history: low confidence)"
        } else {
            ""
        }
    );
}

fn days(v: Option<f64>) -> String {
    v.map_or("-".into(), |d| format!("{d:.0}"))
}

pub(super) fn money(v: f64) -> String {
    let whole = v.round().abs() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

pub(super) fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// Prints rows under headers, each column as wide as its widest cell; columns of numbers are
/// right-aligned, others (and the first) left-aligned.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    let mut numeric = vec![true; headers.len()];
    numeric[0] = false;
    for r in rows {
        for (i, c) in r.iter().enumerate().take(width.len()) {
            width[i] = width[i].max(c.chars().count());
            let first = c.chars().next();
            if first.is_some_and(|f| !(f.is_ascii_digit() || f == '+' || f == '-')) {
                numeric[i] = false;
            }
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = width[i])
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    line(width.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
}

fn print_deals(f: &WorkspaceForecast, limit: usize) {
    let mut deals: Vec<&DealForecast> = f.deals.iter().collect();
    deals.sort_by(|a, b| {
        b.expected_value
            .total_cmp(&a.expected_value)
            .then(a.deal_id.cmp(&b.deal_id))
    });
    let shown = if limit == 0 {
        deals.len()
    } else {
        limit.min(deals.len())
    };
    let rows: Vec<Vec<String>> = deals[..shown]
        .iter()
        .map(|d| {
            vec![
                d.deal_id.clone(),
                d.stage.clone(),
                format!("{:.0}", d.days_in_stage),
                pct(d.stats.p_win),
                format!("{}–{}", pct(d.stats.p_win_low), pct(d.stats.p_win_high)),
                days(d.stats.expected_days),
                format!("{}–{}", days(d.stats.days_p2_5), days(d.stats.days_p97_5)),
                money(d.amount),
                money(d.expected_value),
            ]
        })
        .collect();
    print_table(
        &[
            "deal",
            "stage",
            "days in stage",
            "p_win",
            "95% (Wilson)",
            "days to close",
            "95% (p2.5–p97.5)",
            "amount",
            "expected value",
        ],
        &rows,
    );
    if shown < deals.len() {
        println!("… {} more (--limit 0 shows all)", deals.len() - shown);
    }
    let total: f64 = f.deals.iter().map(|d| d.expected_value).sum();
    let amount: f64 = f.deals.iter().map(|d| d.amount).sum();
    println!(
        "total: expected value {} of {} open amount",
        money(total),
        money(amount)
    );
}

fn print_deal(f: &WorkspaceForecast, d: &DealForecast) {
    let s = &d.stats;
    let rows = vec![
        vec!["stage".into(), d.stage.clone()],
        vec!["days in stage".into(), format!("{:.1}", d.days_in_stage)],
        vec!["context".into(), d.context_key.clone()],
        vec![
            "p_win".into(),
            format!(
                "{} (95% {}–{}; {} won, {} lost, {} open of {} runs)",
                pct(s.p_win),
                pct(s.p_win_low),
                pct(s.p_win_high),
                s.won,
                s.lost,
                s.open,
                s.runs
            ),
        ],
        vec![
            "days to close".into(),
            format!(
                "{} (95% {}–{})",
                days(s.expected_days),
                days(s.days_p2_5),
                days(s.days_p97_5)
            ),
        ],
        vec!["stage moves".into(), format!("{:.2}", s.expected_steps)],
        vec![
            "expected value".into(),
            format!(
                "{} of {} (95% {}–{})",
                money(d.expected_value),
                money(d.amount),
                money(d.value_p2_5),
                money(d.value_p97_5)
            ),
        ],
    ];
    print_table(&["deal", &d.deal_id], &rows);
    println!();
    let months: Vec<Vec<String>> = f
        .calendar
        .labels()
        .iter()
        .zip(&s.won_by_month)
        .filter(|(_, p)| **p > 0.0)
        .map(|(m, p)| vec![m.clone(), pct(*p), "#".repeat((p * 100.0).round() as usize)])
        .collect();
    print_table(&["won in month", "p", ""], &months);
}

fn interval(i: &Interval, f: impl Fn(f64) -> String) -> String {
    format!("{} ({} to {})", f(i.estimate), f(i.low), f(i.high))
}

fn signed(f: impl Fn(f64) -> String) -> impl Fn(f64) -> String {
    move |v| {
        if v > 0.0 { format!("+{}", f(v)) } else { f(v) }
    }
}

fn print_comparison(c: &ScenarioComparison) {
    let (b, m, d) = (&c.baseline, &c.modified, &c.delta);
    let rows = vec![
        vec![
            "p_win".into(),
            format!(
                "{} ({}–{})",
                pct(b.stats.p_win),
                pct(b.stats.p_win_low),
                pct(b.stats.p_win_high)
            ),
            format!(
                "{} ({}–{})",
                pct(m.stats.p_win),
                pct(m.stats.p_win_low),
                pct(m.stats.p_win_high)
            ),
            interval(&d.p_win, signed(|v| format!("{:.1} pts", v * 100.0))),
        ],
        vec![
            "days to close".into(),
            format!(
                "{} ({}–{})",
                days(b.stats.expected_days),
                days(b.stats.days_p2_5),
                days(b.stats.days_p97_5)
            ),
            format!(
                "{} ({}–{})",
                days(m.stats.expected_days),
                days(m.stats.days_p2_5),
                days(m.stats.days_p97_5)
            ),
            d.expected_days.as_ref().map_or("-".into(), |i| {
                interval(i, signed(|v| format!("{v:.1} days")))
            }),
        ],
        vec![
            "expected value".into(),
            money(b.expected_value),
            money(m.expected_value),
            interval(&d.expected_value, signed(money)),
        ],
        vec![
            "context".into(),
            b.context_key.clone(),
            m.context_key.clone(),
            String::new(),
        ],
    ];
    println!("scenario {}", c.scenario);
    print_table(
        &[
            "",
            "baseline (95%)",
            "modified (95%)",
            "delta (95%, common random numbers)",
        ],
        &rows,
    );
}

/// Parses `DEALSxRUNS`.
fn parse_size(s: &str) -> Result<(usize, u32)> {
    let (d, r) = s
        .split_once(['x', 'X', '×'])
        .with_context(|| format!("`{s}` is not DEALSxRUNS (e.g. 10000x10000)"))?;
    let num = |v: &str| v.trim().replace('_', "");
    Ok((
        num(d).parse().with_context(|| format!("deals in `{s}`"))?,
        num(r).parse().with_context(|| format!("runs in `{s}`"))?,
    ))
}

/// What the numpy peer reported.
#[derive(Debug, serde::Deserialize)]
struct PeerRun {
    seconds: f64,
    steps: u64,
    peak_rss_kib: u64,
    mean_p_win: f64,
    mean_days: f64,
    numpy: String,
}

fn run_peer(dir: &std::path::Path, input: &serde_json::Value) -> Result<PeerRun> {
    let script = dir.join("simulate_numpy.py");
    std::fs::write(&script, NUMPY_PEER).context("writing the numpy peer script")?;
    let workload = dir.join("workload.json");
    std::fs::write(&workload, serde_json::to_vec(input)?).context("writing the peer workload")?;
    let out = Command::new("python3")
        .arg(&script)
        .arg(&workload)
        .stdin(Stdio::null())
        .output()
        .context("running python3 (the numpy peer)")?;
    if !out.status.success() {
        bail!(
            "the numpy peer failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("reading the peer's report `{line}`"))
}

fn numpy_available() -> bool {
    Command::new("python3")
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn run_bench(args: &SimulateArgs, base: SimConfig) -> Result<ExitCode> {
    let sizes = if args.bench_sizes.is_empty() {
        vec![(10_000, 10_000), (100_000, 1_000)]
    } else {
        args.bench_sizes
            .iter()
            .map(|s| parse_size(s))
            .collect::<Result<_>>()?
    };
    let peer = !args.no_peer && numpy_available();
    if !args.no_peer && !peer {
        println!(
            "numpy (the peer) is not installed for python3: `pip install numpy` to compare; skipped"
        );
    }
    println!(
        "revlake simulate --bench: synthetic chain of {} stages (8 open), {} threads, seed {}{}",
        bench::STAGES.len(),
        rayon::current_num_threads(),
        base.seed,
        if cfg!(debug_assertions) {
            " — a debug build: use `cargo run --release -- simulate --bench` for figures"
        } else {
            ""
        }
    );
    let model = bench::synthetic_chain();
    let temp = tempfile::tempdir().context("creating a temporary folder")?;
    let mut rows = Vec::new();
    let mut ratios = Vec::new();
    for (n_deals, runs) in sizes {
        let config = SimConfig {
            runs,
            ..base.clone()
        };
        let deals = bench::synthetic_deals(n_deals, config.seed);
        let (model2, deals2, config2) = (model.clone(), deals.clone(), config.clone());
        let ours: BenchRun =
            tokio::task::spawn_blocking(move || bench::measure(&model2, &deals2, &config2))
                .await??;
        let label = format!("{n_deals} × {runs}");
        rows.push(bench_row(
            &label,
            "revlake",
            ours.seconds,
            ours.steps,
            ours.peak_rss_kib,
            ours.mean_p_win,
            ours.mean_days,
        ));
        if peer {
            let input = bench::peer_input(&model, &deals, &config);
            drop(deals);
            let dir = temp.path().to_path_buf();
            let theirs = tokio::task::spawn_blocking(move || run_peer(&dir, &input)).await??;
            rows.push(bench_row(
                &label,
                &format!("numpy {}", theirs.numpy),
                theirs.seconds,
                theirs.steps,
                Some(theirs.peak_rss_kib),
                theirs.mean_p_win,
                theirs.mean_days,
            ));
            let ours_rate = ours.steps as f64 / ours.seconds;
            let theirs_rate = theirs.steps as f64 / theirs.seconds;
            ratios.push((
                label,
                theirs.seconds / ours.seconds,
                ours_rate / theirs_rate,
            ));
        }
    }
    print_table(
        &[
            "deals × runs",
            "engine",
            "wall s",
            "deal-steps",
            "deal-steps/s",
            "peak RSS MiB",
            "mean p_win",
            "mean days",
        ],
        &rows,
    );
    for (label, wall, rate) in ratios {
        println!(
            "{label}: revlake is {wall:.1}× faster than numpy in wall time ({rate:.1}× in deal-steps per second)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_row(
    label: &str,
    engine: &str,
    seconds: f64,
    steps: u64,
    rss_kib: Option<u64>,
    p_win: f64,
    days: f64,
) -> Vec<String> {
    vec![
        label.to_string(),
        engine.to_string(),
        format!("{seconds:.2}"),
        format!("{:.3e}", steps as f64),
        format!("{:.3e}", steps as f64 / seconds),
        rss_kib.map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        format!("{p_win:.4}"),
        format!("{days:.1}"),
    ]
}
