use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use revlake::generate::{GenerateConfig, generate};
use revlake::lake::WorkspaceId;
use revlake::sql::{Format, SessionOptions, SqlSession, output};

use super::{Global, progress};

/// Generate a mid-size org and run the default pipeline over it on the local lake.
///
/// Writes the vendor export files into a temporary folder (kept with --keep), lands them as
/// raw tables, builds the staging models, and prints what it did and where the outputs are.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake demo\n  revlake demo --deals 100000 --seed 7 --keep /tmp/org"
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

    // 2. Land them as raw tables.
    let t = Instant::now();
    let sync_id = uuid::Uuid::new_v4().to_string();
    println!("\n2. landing the exports as raw tables");
    let landed = revlake::pipeline::land_exports(&lake, &out, &workspace, &sync_id, &mut |o| {
        println!(
            "   {:<40} {:>9} rows  version {:<3} {}",
            o.dataset,
            o.rows,
            o.version,
            if o.quarantined > 0 {
                format!("({} quarantined)", o.quarantined)
            } else {
                String::new()
            }
        );
    })
    .await?;
    println!(
        "   {} tables, {} rows in {:.1}s",
        landed.len(),
        landed.iter().map(|o| o.rows).sum::<u64>(),
        t.elapsed().as_secs_f64()
    );

    // 3. Build the staging models.
    let t = Instant::now();
    println!("\n3. building the SQL models (transforms/)");
    let (runs, checks) =
        revlake::pipeline::transform_checked(&lake, &project, Some(&workspace), &mut |r| {
            println!(
                "   {:<40} {:>9} rows  version {:<3} {:.2}s",
                r.dataset.to_string(),
                r.outcome.rows,
                r.outcome.version,
                r.elapsed.as_secs_f64()
            );
        })
        .await;
    let checks = checks?;
    super::check::print_failures(&checks, "   ");
    super::check::send_alerts(&lake, &project, &checks).await;
    let runs = runs?;
    println!(
        "   {} models in {:.1}s",
        runs.len(),
        t.elapsed().as_secs_f64()
    );
    let report_path = project.root.join("datasets/reports/quality.html");
    if checks.results().next().is_some() {
        let built = revlake::quality::report::build(&lake, Some(&workspace)).await?;
        let html =
            revlake::quality::report::render(&built, revlake::quality::report::ReportFormat::Html)?;
        std::fs::create_dir_all(report_path.parent().unwrap_or(&project.root))
            .with_context(|| format!("creating {}", report_path.display()))?;
        std::fs::write(&report_path, html)
            .with_context(|| format!("writing {}", report_path.display()))?;
        println!(
            "   quality report: {} ({} checks, {} failed)",
            report_path.display(),
            built.checks,
            built.failed + built.errors
        );
    }

    // 4. A first look.
    if runs
        .iter()
        .any(|r| r.dataset.to_string() == "staging.deals")
    {
        println!("\n4. open pipeline and win rate by stage (staging.deals):");
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

    println!(
        "\ndone in {:.1}s. Try:\n  revlake tables --lake {}\n  revlake sql --lake {} \"SELECT stage, count(*) FROM staging.deals GROUP BY stage\"",
        started.elapsed().as_secs_f64(),
        lake.url(),
        lake.url()
    );
    Ok(ExitCode::SUCCESS)
}
