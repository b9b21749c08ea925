use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use revlake::generate::{GenerateConfig, generate};

use super::{Global, progress};

/// Generate a synthetic B2B org as Salesforce and HubSpot export CSVs.
///
/// Deals follow a stage process whose conversion and timing depend on context (champion,
/// blocker, deal size, industry, lead source); see docs/generator.md. Deterministic for a seed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake generate --deals 20000 --seed 7 --out /tmp/org\n  revlake import /tmp/org/salesforce/Opportunity.csv --dataset raw.salesforce_opportunity"
)]
pub struct GenerateArgs {
    /// Number of deals in total (Salesforce and HubSpot together).
    #[arg(long, default_value_t = 20_000)]
    deals: u64,
    /// Random seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of the deals in the HubSpot portal (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    hubspot_share: f64,
    /// Output folder (salesforce/, hubspot/, truth.json are written in it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub async fn run(_global: &Global, args: GenerateArgs) -> Result<ExitCode> {
    let config = GenerateConfig {
        deals: args.deals,
        seed: args.seed,
        hubspot_share: args.hubspot_share,
        ..GenerateConfig::default()
    };
    let out = args.out.clone();
    let started = std::time::Instant::now();
    let summary = tokio::task::spawn_blocking(move || {
        let bar = progress::bar(config.deals, "generating", "deals");
        let result = generate(&config, &out, &mut |n| bar.set_position(n));
        bar.finish_and_clear();
        result
    })
    .await??;
    for f in &summary.files {
        println!("{:>10} rows  {}", f.rows, f.path.display());
    }
    println!(
        "generated {} deals in {:.1}s into {}",
        args.deals,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
