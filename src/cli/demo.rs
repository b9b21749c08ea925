use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use revlake::generate::{GenerateConfig, generate};
use revlake::jobs::config::LandStage;
use revlake::jobs::lease::holder_id;
use revlake::jobs::scheduler::{LeasedRun, run_leased};
use revlake::jobs::{Job, RunRequest, RunStatus};
use revlake::lake::WorkspaceId;
use revlake::project::Project;
use revlake::sql::{Format, SessionOptions, SqlSession, output};

use super::{Global, progress};

/// Generate a mid-size org and run the whole daily batch over it on the local lake.
///
/// Writes the vendor export files into a temporary folder (kept with --keep), then runs the
/// project's `daily` job with the jobs runner (the same code as `revlake run-job daily`), the
/// files landed in place of the sync: raw tables → staging models and their checks → mining →
/// simulation → scoring → alerts → HTML reports → exports (those configured). The run is
/// recorded in ops.job_runs. Ends with a one-screen summary: rows per stage, failed checks,
/// alerts, the forecast and where the reports are. Exits 1 when the run did not succeed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake demo\n  revlake demo --deals 100000 --seed 7 --keep /tmp/org\n  revlake demo --deals 2000 --runs 500\n  revlake history daily --stages"
)]
pub struct DemoArgs {
    /// Deals in the generated org.
    #[arg(long, default_value_t = 20_000)]
    deals: u64,
    /// Random seed of the generated org.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the generated export files in this folder instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
    /// The workspace the demo writes.
    #[arg(long, default_value = "demo")]
    workspace: String,
    /// Monte Carlo runs of the forecast (the daily job's own setting is used by `run-job`;
    /// fewer keep the demo quick).
    #[arg(long, default_value_t = 2_000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

pub async fn run(global: &Global, args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let project = global.project()?;
    let lake = global.lake(&project).await?;
    let workspace = WorkspaceId::new(&args.workspace)?;
    let temp = tempfile::tempdir().context("creating a temporary folder")?;
    let out = args
        .keep
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());

    println!("revlake demo: {} deals, seed {}", args.deals, args.seed);
    println!("  lake:      {}", lake.url());
    println!("  workspace: {workspace}");

    // 1. Generate the vendor exports.
    let config = GenerateConfig {
        deals: args.deals,
        seed: args.seed,
        ..GenerateConfig::default()
    };
    let gen_out = out.clone();
    let t = Instant::now();
    let summary = tokio::task::spawn_blocking(move || {
        let bar = progress::bar(config.deals, "generating", "deals");
        let r = generate(&config, &gen_out, &mut |n| bar.set_position(n));
        bar.finish_and_clear();
        r
    })
    .await??;
    println!(
        "\n1. generated {} export files in {:.1}s into {}",
        summary.files.len(),
        t.elapsed().as_secs_f64(),
        out.display()
    );

    // 2. The daily batch, by the jobs runner: the generated files stand in for the sync.
    let job = demo_job(&project, &out, args.runs)?;
    println!(
        "\n2. running the {} job over them: {}",
        job.name,
        job.stage_names().join(" → ")
    );
    let interrupt = super::jobs::interrupt_on_signal();
    let spinner = progress::spinner(&format!("{} {workspace}", job.name));
    let outcome = run_leased(
        &project,
        &lake,
        &job,
        RunRequest {
            interrupt: Some(interrupt),
            ..RunRequest::manual(workspace.clone(), holder_id())
        },
        Duration::from_secs(60),
        None,
        &mut |s| spinner.suspend(|| println!("{}", stage_line(s))),
    )
    .await?;
    spinner.finish_and_clear();
    let finished = match outcome {
        LeasedRun::Ran(f) => f,
        LeasedRun::Refused { holder, expires_at } => bail!(
            "the {} job for {workspace} is running elsewhere ({holder}, lease until {}): wait for it or use another --workspace",
            job.name,
            expires_at.to_rfc3339()
        ),
    };
    if let Err(e) = &finished.recorded {
        eprintln!("warning: the run could not be recorded in ops.job_runs: {e}");
    }
    // What the lake now holds, by layer.
    let mut by_layer: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for d in lake.datasets().await? {
        by_layer
            .entry(d.layer.as_str().to_string())
            .or_default()
            .push(d.table.clone());
    }
    println!("   the lake now holds:");
    for (layer, tables) in &by_layer {
        println!(
            "   {layer:<8} {}",
            tables
                .iter()
                .map(|t| format!("{layer}.{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let built = finished
        .run
        .stages
        .iter()
        .any(|s| s.stage == "models" && s.status == RunStatus::Succeeded);

    // 3. A first look.
    if built {
        println!("\n3. open pipeline and win rate by stage (staging.deals):");
        let session = SqlSession::open(
            &lake,
            &SessionOptions {
                workspace: Some(workspace.clone()),
                ..SessionOptions::default()
            },
        )
        .await?;
        let df = session
            .query(
                "SELECT source, stage, count(*) AS deals, round(sum(amount_usd)) AS amount_usd \
                 FROM staging.deals GROUP BY source, stage ORDER BY source, stage",
            )
            .await?;
        let mut stdout = std::io::stdout();
        output::write_result(df, Format::Table, &mut stdout).await?;
    }

    super::jobs::print_summary(&finished);
    println!(
        "\ndone in {:.1}s. Try:\n  revlake tables --lake {}\n  revlake history daily --stages --lake {}\n  revlake sql --lake {} \"SELECT stage, count(*) FROM staging.deals GROUP BY stage\"",
        started.elapsed().as_secs_f64(),
        lake.url(),
        lake.url(),
        lake.url()
    );
    Ok(if finished.run.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The project's `daily` job (else the whole batch with default settings), landing the
/// generated files from `dir` instead of syncing, with no retries (nothing here is flaky) and
/// `runs` Monte Carlo runs.
fn demo_job(project: &Project, dir: &Path, runs: u32) -> Result<Job> {
    let mut job = match project.jobs.get("daily") {
        Some(j) => j.clone(),
        None => Job::parse(
            "daily",
            DEFAULT_BATCH,
            &project.root.join("jobs/daily.toml"),
        )?,
    };
    job.file.stages.sync = None;
    job.file.stages.land = Some(LandStage {
        dir: dir.display().to_string(),
    });
    job.retries.attempts = 1;
    if let Some(sim) = job.file.stages.simulation.as_mut() {
        sim.runs = runs;
    }
    Ok(job)
}

/// The whole batch, when the project has no `jobs/daily.toml`.
const DEFAULT_BATCH: &str = "[stages.models]\n[stages.mining]\n[stages.simulation]\n[stages.scoring]\n[stages.alerts]\n[stages.report]\ndigest = \"datasets/reports/digest-{workspace}.html\"\n[stages.exports]\n";

/// A finished stage of a job run as the demo prints it: name, status, rows, seconds, and the
/// error or note.
pub(super) fn stage_line(s: &revlake::jobs::runlog::StageRun) -> String {
    format!(
        "   {:<11} {:<9} {:>9} rows {:>7.1}s  {}",
        s.stage,
        s.status,
        s.rows,
        s.seconds,
        s.error.as_deref().unwrap_or(&s.note)
    )
}
