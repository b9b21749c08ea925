//! `revlake bench export`: staging for N synthetic deals (with accounts and users, as `bench
//! check` builds them) exported with `--plan` to a local-folder stage: Parquet files, SQL or
//! job JSON, no warehouse.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use revlake::export::{ExportOptions, Status, run_export};
use revlake::lake::Lake;
use revlake::project::Project;

use super::bench_check::{USERS_SQL, accounts_sql, deals_sql, write};

/// Time exporting staging.deals (N synthetic deals), staging.accounts (N/10) and staging.users
/// (500) to a local-folder stage with --plan: the Parquet files (zstd, 500k rows each) and the
/// Snowflake SQL or BigQuery jobs, as `revlake export --plan` writes them. Prints files, bytes,
/// seconds and MB/s per dataset and in all.
///
/// Run it on a release build: `cargo run --release -- bench export`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  revlake bench export\n  revlake bench export --deals 100000\n  revlake bench export --warehouse bigquery --dir /tmp/bench-export   # keeps lake and plan"
)]
pub struct ExportBenchArgs {
    /// Deals in staging.deals (accounts: a tenth of it; users: 500).
    #[arg(long, default_value_t = 1_000_000)]
    deals: u64,
    /// The plan's warehouse (its files differ: BigQuery stages maps as JSON text).
    #[arg(long, default_value = "snowflake", value_parser = ["snowflake", "bigquery"])]
    warehouse: String,
    /// Keep the project, lake and plan here (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

const DATASETS: [&str; 3] = ["staging.users", "staging.accounts", "staging.deals"];

/// A project of the shipped schemas of [`DATASETS`] and one export target of `warehouse`.
fn bench_project(shipped: &Project, dir: &std::path::Path, warehouse: &str) -> Result<Project> {
    std::fs::create_dir_all(dir.join("schemas"))?;
    std::fs::create_dir_all(dir.join("pipelines"))?;
    for d in DATASETS {
        let from = shipped.root.join("schemas").join(format!("{d}.toml"));
        std::fs::copy(&from, dir.join("schemas").join(format!("{d}.toml")))
            .with_context(|| format!("copying {} (run from the repository)", from.display()))?;
    }
    let target = match warehouse {
        "snowflake" => {
            "type = \"snowflake\"\naccount = \"bench\"\nuser = \"BENCH\"\ndatabase = \"ANALYTICS\"\nschema = \"REVLAKE\"\nstage = \"REVLAKE_STAGE\"\nauth = { type = \"key_pair\", private_key_env = \"UNUSED_BY_A_PLAN\" }\n"
        }
        _ => "type = \"bigquery\"\nproject = \"bench\"\ndataset = \"revlake\"\n",
    };
    std::fs::write(
        dir.join("pipelines/default.toml"),
        format!("lake = \"lake\"\n[exports.bench]\n{target}select = [\"staging.*\"]\n"),
    )?;
    Ok(Project::load(dir)?)
}

pub async fn run(shipped: &Project, args: ExportBenchArgs) -> Result<std::process::ExitCode> {
    let temp = tempfile::tempdir().context("creating a temporary folder")?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let lake_dir = dir.join("lake");
    let plan = dir.join("plan");
    if lake_dir.exists() || plan.exists() {
        bail!(
            "{} or {} exists: pass an empty --dir",
            lake_dir.display(),
            plan.display()
        );
    }
    let project = bench_project(shipped, &dir, &args.warehouse)?;
    let lake = Lake::open(&lake_dir.display().to_string()).await?;
    println!(
        "revlake bench export: staging for {} synthetic deals, {} plan in {}",
        args.deals,
        args.warehouse,
        dir.display()
    );
    let t = Instant::now();
    let users = write(&lake, &project, "staging.users", USERS_SQL).await?;
    let accounts = write(
        &lake,
        &project,
        "staging.accounts",
        &accounts_sql(args.deals),
    )
    .await?;
    let deals = write(&lake, &project, "staging.deals", &deals_sql(args.deals)).await?;
    println!(
        "  wrote {deals} deals, {accounts} accounts, {users} users in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let run = run_export(
        &lake,
        &project,
        &ExportOptions {
            warehouse: args.warehouse.clone(),
            select: vec!["staging.*".into()],
            plan: Some(plan.clone()),
            ..Default::default()
        },
    )
    .await
    .context("exporting the plan")?;
    let seconds = t.elapsed().as_secs_f64();
    if let Some(e) = &run.error {
        bail!("the export failed: {e}");
    }
    for o in &run.outcomes {
        if o.status != Status::Planned {
            bail!("{}: {} ({:?})", o.dataset, o.status, o.error);
        }
        println!(
            "  {:<18} {:>9} rows  {:>3} files  {:>8.1} MB",
            o.dataset.to_string(),
            o.rows,
            o.files,
            o.bytes as f64 / 1e6
        );
    }
    let files: usize = run.outcomes.iter().map(|o| o.files).sum();
    let bytes: u64 = run.outcomes.iter().map(|o| o.bytes).sum();
    let rows: u64 = run.outcomes.iter().map(|o| o.rows).sum();
    println!(
        "  export --plan: {rows} rows, {files} files, {:.1} MB in {seconds:.2}s: {:.1} MB/s, {:.0} rows/s",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / seconds,
        rows as f64 / seconds
    );
    println!(
        "  peak RSS {:.0} MB",
        super::bench::peak_rss_mb().unwrap_or(f64::NAN)
    );
    Ok(std::process::ExitCode::SUCCESS)
}
