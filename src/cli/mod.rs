//! Command-line parsing and the commands: each file parses its arguments, calls the library and
//! prints. No logic lives here beyond that.

mod backtest;
mod bench;
mod bench_check;
mod bench_export;
mod bench_mining;
mod bench_models;
mod bench_serve;
mod check;
mod demo;
mod eventlog;
mod explain;
mod export;
mod forecast;
mod generate;
mod import;
mod jobs;
mod mine;
mod ops;
mod progress;
mod report;
mod run;
mod score;
mod serve;
mod simulate;
mod sources;
mod sql;
mod sync;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use revlake::lake::Lake;
use revlake::project::Project;

/// revlake: the revenue-operations batch stack in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "revlake",
    version,
    about = "The revenue-operations batch stack in one binary: land CRM data as Delta tables, model it with SQL, check it, mine it, forecast it.",
    after_help = "Examples:\n  revlake demo\n  revlake sql \"SELECT stage, count(*) FROM staging.deals GROUP BY stage\"\n  revlake tables --workspaces"
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// The project folder (pipelines/, schemas/, transforms/, datasets/).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub project: PathBuf,
    /// The lake: a folder or a URL (file://, memory://, s3://, gs://, az://). Default: the
    /// default pipeline's `lake`, else `datasets/lake/` in the project.
    #[arg(long, global = true, env = "REVLAKE_LAKE", value_name = "URL")]
    pub lake: Option<String>,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines on stderr: `auto` (text on a terminal, JSON lines otherwise), `text`
    /// (human-readable) or `json` (one object per line, with the job / stage / model spans).
    #[arg(long, global = true, env = "REVLAKE_LOG_FORMAT", default_value = "auto", value_parser = ["auto", "text", "json"], value_name = "FORMAT")]
    pub log_format: String,
}

impl Global {
    pub fn verbosity(&self) -> i8 {
        if self.quiet {
            -1
        } else {
            self.verbose.min(3) as i8
        }
    }

    /// Loads the project; a folder without project files is an empty project.
    pub fn project(&self) -> Result<Project> {
        Project::load(&self.project)
            .with_context(|| format!("loading the project at {}", self.project.display()))
    }

    /// Opens the lake named by `--lake`, else the project's default.
    pub async fn lake(&self, project: &Project) -> Result<Lake> {
        let location = self.lake.clone().unwrap_or_else(|| project.default_lake());
        Ok(Lake::open(&location).await?)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Sql(sql::SqlArgs),
    Tables(tables::TablesArgs),
    Generate(generate::GenerateArgs),
    Import(import::ImportArgs),
    Run(run::RunArgs),
    Dag(run::DagArgs),
    Sources(sources::SourcesArgs),
    Connect(sources::ConnectArgs),
    Sync(sync::SyncArgs),
    Demo(demo::DemoArgs),
    Bench(bench::BenchArgs),
    Mine(mine::MineArgs),
    ExportEventlog(eventlog::ExportEventlogArgs),
    Export(export::ExportArgs),
    ImportEventlog(eventlog::ImportEventlogArgs),
    Simulate(simulate::SimulateArgs),
    Forecast(forecast::ForecastArgs),
    Backtest(backtest::BacktestArgs),
    Score(score::ScoreArgs),
    Explain(explain::ExplainArgs),
    Check(check::CheckArgs),
    Report(report::ReportArgs),
    Jobs(jobs::JobsArgs),
    RunJob(jobs::RunJobArgs),
    History(jobs::HistoryArgs),
    Schedule(jobs::ScheduleArgs),
    Backfill(jobs::BackfillArgs),
    Status(ops::StatusArgs),
    Doctor(ops::DoctorArgs),
    Serve(serve::ServeArgs),
    Keys(serve::KeysArgs),
}

/// Runs the parsed command on a multi-threaded runtime.
pub fn run(args: Args) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            Command::Sql(a) => sql::run(&args.global, a).await,
            Command::Check(a) => check::run(&args.global, a).await,
            Command::Report(a) => report::run(&args.global, a).await,
            Command::Tables(a) => tables::run(&args.global, a).await,
            Command::Generate(a) => generate::run(&args.global, a).await,
            Command::Import(a) => import::run(&args.global, a).await,
            Command::Run(a) => run::run(&args.global, a).await,
            Command::Dag(a) => run::dag(&args.global, a).await,
            Command::Sources(a) => sources::sources(&args.global, a).await,
            Command::Connect(a) => sources::connect(&args.global, a).await,
            Command::Sync(a) => sync::run(&args.global, a).await,
            Command::Demo(a) => demo::run(&args.global, a).await,
            Command::Bench(a) => bench::run(&args.global, a).await,
            Command::Mine(a) => mine::run(&args.global, a).await,
            Command::ExportEventlog(a) => eventlog::export(&args.global, a).await,
            Command::Export(a) => export::run(&args.global, a).await,
            Command::ImportEventlog(a) => eventlog::import(&args.global, a).await,
            Command::Simulate(a) => simulate::run(&args.global, a).await,
            Command::Forecast(a) => forecast::run(&args.global, a).await,
            Command::Backtest(a) => backtest::run(&args.global, a).await,
            Command::Score(a) => score::run(&args.global, a).await,
            Command::Explain(a) => explain::run(&args.global, a).await,
            Command::Jobs(a) => jobs::list(&args.global, a).await,
            Command::RunJob(a) => jobs::run_job(&args.global, a).await,
            Command::History(a) => jobs::history_cmd(&args.global, a).await,
            Command::Schedule(a) => jobs::schedule(&args.global, a).await,
            Command::Backfill(a) => jobs::backfill(&args.global, a).await,
            Command::Status(a) => ops::status(&args.global, a).await,
            Command::Doctor(a) => ops::doctor_cmd(&args.global, a).await,
            Command::Serve(a) => serve::run(&args.global, a).await,
            Command::Keys(a) => serve::keys(&args.global, a).await,
        }
    })
}
